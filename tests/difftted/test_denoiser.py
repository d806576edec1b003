"""difftted.motion.denoiser and difftted.motion.keypoints: shapes, conditioning, CFG dropout, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from difftted.motion.denoiser import KeypointDenoiser, sample_condition_drop
from difftted.motion.keypoints import KeypointStats

KP = 100


def _inputs(batch=2, frames=12, audio_dim=8, context=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(sample=torch.randn(batch, frames, KP, generator=g), timestep=torch.tensor([5, 700])[:batch],
                audio_features=torch.randn(batch, frames, audio_dim, generator=g),
                source_keypoints=torch.randn(batch, KP, generator=g),
                context=torch.randn(batch, context, KP, generator=g) if context else None)


def test_default_size_is_near_difftted():
    model = KeypointDenoiser()
    params = sum(p.numel() for p in model.parameters())
    assert 5.5e6 < params < 7.5e6  # DiffTED's denoiser has about 6.5M
    assert model.config.hidden_dim == 256 and model.config.num_layers == 8


def test_output_shape_and_every_condition_matters(make_tiny_denoiser):
    model = make_tiny_denoiser().eval()
    inputs = _inputs()
    out = model(**inputs)
    assert out.shape == (2, 12, KP) and torch.isfinite(out).all()
    for name in ("audio_features", "source_keypoints", "context", "timestep"):
        changed = dict(inputs)
        changed[name] = inputs[name] + 1 if name != "timestep" else inputs[name] // 2
        assert not torch.allclose(model(**changed), out), f"{name} has no effect"
    # one frame of the window alone, and a scalar timestep
    assert model(**{**_inputs(batch=1, frames=1), "timestep": 3}).shape == (1, 1, KP)


def test_drop_masks_replace_conditions_with_their_nulls(make_tiny_denoiser):
    model = make_tiny_denoiser().eval()
    inputs = _inputs()
    null_audio = model(**{**inputs, "audio_features": None})
    dropped = model(**inputs, drop_audio=torch.tensor([True, False]))
    kept = model(**inputs)
    torch.testing.assert_close(dropped[0], null_audio[0])
    torch.testing.assert_close(dropped[1], kept[1])
    null_context = model(**{**inputs, "context": None})
    ctx_dropped = model(**inputs, drop_context=torch.tensor([False, True]))
    torch.testing.assert_close(ctx_dropped[1], null_context[1])
    torch.testing.assert_close(ctx_dropped[0], kept[0])


def test_null_embeddings_are_learned(make_tiny_denoiser):
    model = make_tiny_denoiser()
    inputs = _inputs()
    both = torch.tensor([True, True])
    model(**inputs, drop_audio=both, drop_context=both).square().mean().backward()
    assert model.null_audio.grad is not None and model.null_audio.grad.abs().sum() > 0
    assert model.null_context.grad is not None and model.null_context.grad.abs().sum() > 0


def test_sample_condition_drop_rate_and_seed():
    a = sample_condition_drop(4000, 0.25, torch.Generator().manual_seed(1))
    b = sample_condition_drop(4000, 0.25, torch.Generator().manual_seed(1))
    assert a.dtype == torch.bool and torch.equal(a, b)
    assert 0.22 < a.float().mean().item() < 0.28
    assert not sample_condition_drop(10, 0.0).any() and sample_condition_drop(10, 1.0).all()
    with pytest.raises(ValueError, match="p must"):
        sample_condition_drop(3, 1.5)


def test_bad_inputs_name_the_argument(make_tiny_denoiser):
    model = make_tiny_denoiser()
    inputs = _inputs()
    bad = {
        "sample": torch.randn(2, 12, KP + 2),
        "audio_features": torch.randn(2, 11, 8),
        "source_keypoints": torch.randn(2, 50, 2),
        "context": torch.randn(2, 5, KP),  # more than context_frames
        "timestep": torch.tensor([1, 2, 3]),
    }
    for name, value in bad.items():
        with pytest.raises(ValueError, match=name):
            model(**{**inputs, name: value})
    with pytest.raises(ValueError, match="max_frames"):
        model(**_inputs(frames=17))
    with pytest.raises(ValueError, match="drop_audio"):
        model(**inputs, drop_audio=torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="prediction_type"):
        KeypointDenoiser(prediction_type="x_zero")


@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_save_pretrained_round_trip(tmp_path: Path, make_tiny_denoiser, prediction_type):
    model = make_tiny_denoiser(prediction_type=prediction_type, context_frames=2).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").is_file()
    assert any(p.suffix == ".safetensors" for p in tmp_path.iterdir())
    loaded = KeypointDenoiser.from_pretrained(tmp_path).eval()
    assert loaded.config.prediction_type == prediction_type and loaded.config.context_frames == 2
    inputs = _inputs(context=2)
    torch.testing.assert_close(loaded(**inputs), model(**inputs), rtol=0, atol=0)


# ------------------------------------------------------------------------------ KeypointStats
def test_stats_normalize_round_trip_for_arrays_and_tensors(mocap_keypoints):
    stats = KeypointStats.from_sequences([mocap_keypoints[:100], mocap_keypoints[100:300]])
    normalized = stats.normalize(mocap_keypoints[:300])
    np.testing.assert_allclose(normalized.reshape(-1, 100).mean(0), 0, atol=1e-4)
    stds = normalized.reshape(-1, 100).std(0)
    moving = stats.std.reshape(-1) > 1e-3  # joints that never move keep the floored std
    np.testing.assert_allclose(stds[moving], 1, atol=1e-3)
    flat = torch.from_numpy(mocap_keypoints[:5].reshape(5, KP))
    torch.testing.assert_close(stats.denormalize(stats.normalize(flat)), flat, atol=1e-5, rtol=0)
    np.testing.assert_allclose(stats.normalize(mocap_keypoints[:5]).reshape(5, KP),
                               stats.normalize(mocap_keypoints[:5].reshape(5, KP)), atol=1e-6)


def test_stats_save_load_and_errors(tmp_path: Path):
    rng = np.random.default_rng(0)
    stats = KeypointStats(mean=rng.normal(size=(50, 2)), std=rng.uniform(0.1, 1, size=(50, 2)))
    loaded = KeypointStats.load(stats.save(tmp_path / "sub" / "stats.json"))
    np.testing.assert_array_equal(loaded.mean, stats.mean)
    np.testing.assert_array_equal(loaded.std, stats.std)
    with pytest.raises(ValueError, match="std must be positive"):
        KeypointStats(mean=np.zeros((50, 2)), std=np.zeros((50, 2)))
    with pytest.raises(ValueError, match=r"\[\.\.\., 50, 2\]"):
        stats.normalize(np.zeros((3, 49, 2)))
    with pytest.raises(ValueError, match="sequences\\[1\\]"):
        KeypointStats.from_sequences([np.zeros((4, 50, 2)), np.zeros((4, 10, 2))])
    (tmp_path / "bad.json").write_text('{"mean": [[0, 0]], "std": [[1, 1]], "extra": 1}')
    with pytest.raises(ValueError, match="extra"):
        KeypointStats.load(tmp_path / "bad.json")


@pytest.mark.shared_data
def test_stats_from_official_difftted_files(shared_data: Path):
    folder = shared_data / "ted_metadata"
    stats = KeypointStats.from_diffted_npy(folder / "diffted_kp_mean.npy", folder / "diffted_kp_std.npy")
    assert stats.num_keypoints == 50
    assert -0.9 < stats.mean.min() and stats.mean.max() < 0.9
    mean_frame = torch.from_numpy(stats.mean)[None]
    torch.testing.assert_close(stats.normalize(mean_frame), torch.zeros(1, 50, 2))


def test_motion_coding_round_trips_and_anchors_offsets_at_the_source():
    from difftted.motion.keypoints import MotionCoding

    rng = np.random.default_rng(0)
    stats = KeypointStats(mean=rng.normal(size=(50, 2)), std=rng.uniform(0.1, 1, size=(50, 2)))
    offsets = KeypointStats(mean=np.zeros((50, 2)), std=rng.uniform(0.01, 0.1, size=(50, 2)))
    kp = rng.uniform(-1, 1, size=(7, 50, 2)).astype(np.float32)
    source = rng.uniform(-1, 1, size=(50, 2)).astype(np.float32)
    absolute, relative = MotionCoding(stats), MotionCoding(stats, offsets)
    assert (absolute.target, relative.target) == ("absolute", "source_offset")
    for coding in (absolute, relative):
        np.testing.assert_allclose(coding.decode(coding.encode(kp, source), source), kp, atol=1e-5)
        flat = torch.from_numpy(kp.reshape(7, 100))
        torch.testing.assert_close(coding.encode(flat, torch.from_numpy(source.reshape(100))),
                                   torch.from_numpy(coding.encode(kp, source).reshape(7, 100)))
        np.testing.assert_allclose(coding.encode_source(source), stats.normalize(source))
    # a zero sample is the still photo with offsets, the dataset's mean pose without
    zero = np.zeros((3, 50, 2), np.float32)
    np.testing.assert_allclose(relative.decode(zero, source), np.broadcast_to(source, (3, 50, 2)), atol=1e-7)
    np.testing.assert_allclose(absolute.decode(zero, source), np.broadcast_to(stats.mean, (3, 50, 2)), atol=1e-6)
    with pytest.raises(ValueError, match="offset_stats has 49"):
        MotionCoding(stats, KeypointStats(mean=np.zeros((49, 2)), std=np.ones((49, 2))))
    with pytest.raises(ValueError, match="motion_target"):
        KeypointDenoiser(num_layers=1, hidden_dim=32, num_heads=4, motion_target="offsets")
