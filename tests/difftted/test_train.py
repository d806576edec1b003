"""Denoiser training: loss falls on real motion, checkpoints load, resume continues, 2 CPU processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from difftted.training import train
from difftted.training.train_config import MotionTrainConfig
from difftted.training.train_state import checkpoints

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "difftted" / "tiny.json"


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory, build_mocap_dataset) -> Path:
    """20 s of real motion: 16 s to train on, 4 s held out."""
    return build_mocap_dataset(tmp_path_factory.mktemp("mocap_data"),
                               [("scott_a", "train", 0, 400), ("scott_b", "test", 400, 500)])


def _losses(run: Path) -> list[dict]:
    return [r for r in map(json.loads, (run / "losses.jsonl").read_text().splitlines()) if "loss" in r]


def _validations(run: Path) -> list[dict]:
    return [r for r in map(json.loads, (run / "losses.jsonl").read_text().splitlines()) if "validation" in r]


def test_window_dataset(dataset_dir):
    from difftted.data.windows import KeypointWindowDataset

    data = KeypointWindowDataset(dataset_dir, "train", window=16, context_frames=4)
    raw = np.load(dataset_dir / "clips" / "scott_a.npz")["keypoints"]  # [400, 50, 2]
    assert len(data) == 400 - 16 + 1 and data.keypoint_dim == 100 and data.feature_dim == 66
    flat = data.stats.normalize(raw).reshape(400, -1)
    torch.manual_seed(0)
    for start in (0, 3, 4, 50, 384):
        item = data[start]
        assert item["keypoints"].shape == (16, 100) and item["audio_features"].shape == (16, 66)
        np.testing.assert_allclose(item["keypoints"].numpy(), flat[start:start + 16], rtol=1e-5, atol=1e-5)
        assert bool(item["has_context"]) == (start >= 4)
        if start >= 4:
            np.testing.assert_allclose(item["context"].numpy(), flat[start - 4:start], rtol=1e-5, atol=1e-5)
        else:
            assert not item["context"].any()
        for _ in range(20):  # the photo is a frame at or outside the window start, never inside it
            src = data[start]["source_keypoints"].numpy()
            (frame,) = np.flatnonzero(np.abs(flat - src).max(axis=1) < 1e-5)
            assert frame <= start or frame >= start + 16
    fixed = KeypointWindowDataset(dataset_dir, "train", window=16, context_frames=0, source_frame="start")
    np.testing.assert_allclose(fixed[7]["source_keypoints"].numpy(), flat[7], rtol=1e-5, atol=1e-5)
    assert fixed[7]["context"].shape == (0, 100)
    with pytest.raises(ValueError, match="split 'val'"):
        KeypointWindowDataset(dataset_dir, "val")
    with pytest.raises(ValueError, match="window"):
        KeypointWindowDataset(dataset_dir, "test", window=101)


def test_window_dataset_source_offsets(dataset_dir):
    """``source_offset`` windows hold the offsets from the photo's keypoints; decoding with
    ``source_raw`` gives the clip's keypoints back, and the offset statistics are those of motion
    within a clip (a clip moved as a whole does not change them)."""
    from difftted.data.windows import KeypointWindowDataset
    from difftted.motion.keypoints import KeypointStats

    data = KeypointWindowDataset(dataset_dir, "train", window=16, context_frames=4, motion_target="source_offset")
    raw = np.load(dataset_dir / "clips" / "scott_a.npz")["keypoints"].astype(np.float32)  # [400, 50, 2]
    assert data.coding.target == "source_offset"
    np.testing.assert_allclose(data.coding.offset_stats.std, KeypointStats.offsets_from_sequences([raw]).std)
    np.testing.assert_array_equal(data.coding.offset_stats.mean, 0.0)
    torch.manual_seed(0)
    for start in (0, 10, 384):
        item = data[start]
        source = item["source_raw"]
        assert source.shape == (100,)
        (frame,) = np.flatnonzero(np.abs(raw.reshape(400, -1) - source.numpy()).max(axis=1) < 1e-6)
        assert frame <= start or frame >= start + 16
        np.testing.assert_allclose(data.coding.decode(item["keypoints"], source).numpy(),
                                   raw.reshape(400, -1)[start:start + 16], atol=1e-5)
        np.testing.assert_allclose(item["source_keypoints"].numpy(), data.stats.normalize(source.numpy()), atol=1e-5)
        if start >= 4:
            np.testing.assert_allclose(data.coding.decode(item["context"], source).numpy(),
                                       raw.reshape(400, -1)[start - 4:start], atol=1e-5)
    # the offset scale is the motion's: sqrt(2) x the within-clip std, blind to where a clip sits
    moved = KeypointStats.offsets_from_sequences([raw, raw + 0.3])
    np.testing.assert_allclose(moved.std, np.maximum(np.sqrt(2) * raw.std(axis=0), 1e-3), rtol=1e-4)
    # while the absolute statistics count the shift between the clips as spread
    np.testing.assert_allclose(KeypointStats.from_sequences([raw, raw + 0.3]).std,
                               np.sqrt(raw.var(axis=0) + 0.15 ** 2), rtol=1e-3)
    with pytest.raises(ValueError, match="motion_target"):
        KeypointWindowDataset(dataset_dir, "train", motion_target="relative")


def test_config_rejects_unknown_keys(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"learning_rat": 1e-3}))
    with pytest.raises(ValueError, match="learning_rat"):
        MotionTrainConfig.load(path)
    with pytest.raises(ValueError, match="drop_audio"):
        MotionTrainConfig(drop_audio=1.5)


def test_train_loss_falls_checkpoints_load_and_resume(tmp_path, dataset_dir):
    from difftted.motion.denoiser import KeypointDenoiser
    from difftted.pipeline.weights import load_components
    from tps.model import TPSMotionModel

    renderer = TPSMotionModel.from_config("tiny-64").save_pretrained(tmp_path / "renderer")
    run = tmp_path / "run"
    args = ["--config", str(CONFIG), "--data", str(dataset_dir), "--out", str(run), "--no-progress"]
    assert train.main(args + ["--renderer", str(renderer)]) == 0
    losses = _losses(run)
    assert [r["step"] for r in losses] == list(range(1, 61)) and losses[0]["processes"] == 1
    first, last = np.mean([r["loss"] for r in losses[:5]]), np.mean([r["loss"] for r in losses[-5:]])
    assert last < 0.6 * first, (first, last)
    (val30, val60) = _validations(run)
    assert val30["step"] == 30 and set(val60["validation"]) >= {"bc", "jitter", "l1", "gt_bc", "gt_jitter"}
    metrics = val60["validation"]
    assert metrics["l1"] > 0 and metrics["jitter"] > 0 and metrics["gt_jitter"] > 0
    assert metrics["bc"] is None or 0.0 <= metrics["bc"] <= 1.0

    # total limit 2 of checkpoints at 20, 40, 60
    assert [p.name for p in checkpoints(run)] == ["checkpoint-40", "checkpoint-60"]
    ckpt = run / "checkpoint-60"
    model = KeypointDenoiser.from_pretrained(ckpt / "denoiser", use_safetensors=True)
    assert model.config.hidden_dim == 32 and model.config.audio_dim == 66
    meta = json.loads((ckpt / "pipeline.json").read_text())
    assert meta["fps"] == 25.0 and len(meta["keypoint_stats"]["mean"]) == 50
    assert json.loads((ckpt / "scheduler" / "scheduler_config.json").read_text())["_class_name"] == "DDIMScheduler"
    final = KeypointDenoiser.from_pretrained(run / "final" / "denoiser", use_safetensors=True)
    for a, b in zip(final.parameters(), model.parameters()):  # final = EMA weights of the last step
        torch.testing.assert_close(a, b)
    parts = load_components(run / "final")  # with --renderer, final/ is a complete pipeline folder
    assert parts["fps"] == 25.0 and parts["guidance_scale"] == 1.15

    # resume: continues from step 60 up to 80 with the optimiser state, not from scratch
    assert train.main(args + ["--resume", "--max-steps", "80"]) == 0
    resumed = _losses(run)[60:]
    assert [r["step"] for r in resumed] == list(range(61, 81))
    assert np.mean([r["loss"] for r in resumed[:5]]) < 0.8 * first
    assert [p.name for p in checkpoints(run)] == ["checkpoint-60", "checkpoint-80"]


def test_train_rejects_bad_inputs(tmp_path, dataset_dir):
    assert train.main(["--config", str(tmp_path / "none.json"), "--data", str(dataset_dir),
                       "--out", str(tmp_path / "r")]) == 2
    assert train.main(["--config", str(CONFIG), "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2


@pytest.mark.slow
def test_train_two_cpu_processes(tmp_path, dataset_dir):
    run = tmp_path / "run2"
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "-m", "difftted.train", "--config", str(CONFIG), "--data", str(dataset_dir), "--out", str(run),
           "--cpu", "--max-steps", "20", "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = _losses(run)
    assert [r["step"] for r in losses] == list(range(1, 21)) and losses[0]["processes"] == 2
    assert (run / "checkpoint-20" / "denoiser" / "config.json").is_file()


def test_train_source_offsets_to_a_pipeline(tmp_path, dataset_dir):
    """A denoiser trained on offsets writes offset_stats into pipeline.json, and the pipeline
    built from it decodes its samples around the photo's keypoints."""
    from difftted.motion.keypoints import KeypointStats
    from difftted.pipeline.weights import load_components
    from tps.model import TPSMotionModel

    cfg = json.loads(CONFIG.read_text())
    cfg["denoiser"]["motion_target"] = "source_offset"
    cfg.update(max_steps=20, validate_every=20, checkpoint_every=20, relative_motion=True)
    config = tmp_path / "offsets.json"
    config.write_text(json.dumps(cfg))
    renderer = TPSMotionModel.from_config("tiny-64").save_pretrained(tmp_path / "renderer")
    run = tmp_path / "run"
    assert train.main(["--config", str(config), "--data", str(dataset_dir), "--out", str(run), "--no-progress",
                       "--renderer", str(renderer)]) == 0
    losses = _losses(run)
    assert np.isfinite([r["loss"] for r in losses]).all()
    assert _validations(run)[0]["validation"]["l1"] > 0
    meta = json.loads((run / "final" / "pipeline.json").read_text())
    raw = np.load(dataset_dir / "clips" / "scott_a.npz")["keypoints"]
    np.testing.assert_allclose(meta["offset_stats"]["std"], KeypointStats.offsets_from_sequences([raw]).std,
                               rtol=1e-6)
    assert meta["sampling"]["relative_motion"] is True
    parts = load_components(run / "final")
    assert parts["denoiser"].config.motion_target == "source_offset"
    assert parts["offset_stats"] is not None


def test_loss_terms_of_a_known_error():
    """An x0 prediction off by +-e, alternating in time: MSE e^2, its velocity error (2e)^2 and its
    acceleration error (4e)^2, weighted as the config says; a zero weight leaves a term out."""
    from diffusers import DDPMScheduler

    from difftted.motion.keypoints import KeypointStats, MotionCoding

    torch.manual_seed(0)
    x0, e = torch.randn(2, 8, 4), 0.1
    error = e * (-1.0) ** torch.arange(8).float().view(1, 8, 1)
    batch = {"keypoints": x0, "audio_features": torch.zeros(2, 8, 3), "source_keypoints": torch.zeros(2, 4),
             "source_raw": torch.zeros(2, 4), "context": torch.zeros(2, 0, 4), "has_context": torch.zeros(2, dtype=bool)}
    scheduler = DDPMScheduler(num_train_timesteps=10, prediction_type="sample")
    coding = MotionCoding(KeypointStats.identity(2))
    cfg = MotionTrainConfig(loss_diffusion=1.0, loss_x0=0.5, loss_velocity=2.0, loss_acceleration=0.25, loss_pairwise=0.0)
    losses = train.diffusion_losses(lambda *args, **kwargs: x0 + error, batch, scheduler, cfg, coding)
    assert losses["loss_diffusion"].item() == pytest.approx(e ** 2)
    assert losses["loss_velocity"].item() == pytest.approx(4 * e ** 2)
    assert losses["loss_acceleration"].item() == pytest.approx(16 * e ** 2)
    assert losses["loss"].item() == pytest.approx(e ** 2 * (1.0 + 0.5 + 2.0 * 4 + 0.25 * 16))
    assert "loss_pairwise" not in losses
    no_acc = train.diffusion_losses(lambda *args, **kwargs: x0 + error, batch, scheduler,
                                    cfg.replace(loss_acceleration=0.0), coding)
    assert "loss_acceleration" not in no_acc
    with pytest.raises(ValueError, match="loss_acceleration"):
        MotionTrainConfig(loss_acceleration=-1.0)


def test_out_of_frame_keypoints_leave_the_losses():
    """mask_out_of_frame: a keypoint whose target lies outside [-1, 1] (a hand below the crop)
    adds nothing to any term however wrong its prediction; one inside still counts in full."""
    from diffusers import DDPMScheduler

    from difftted.motion.keypoints import KeypointStats, MotionCoding

    torch.manual_seed(0)
    x0 = torch.rand(2, 8, 4) * 0.5  # two keypoints, both inside the frame
    x0[..., 2:] += 2.0              # the second one below/right of it
    e = 0.1
    wrong = x0.clone()
    wrong[..., :2] += e             # inside: off by e
    wrong[..., 2:] += 5.0 * (-1.0) ** torch.arange(8).float().view(1, 8, 1)  # outside: far off, jittering
    batch = {"keypoints": x0, "audio_features": torch.zeros(2, 8, 3), "source_keypoints": torch.zeros(2, 4),
             "source_raw": torch.zeros(2, 4), "context": torch.zeros(2, 0, 4), "has_context": torch.zeros(2, dtype=bool)}
    scheduler = DDPMScheduler(num_train_timesteps=10, prediction_type="sample")
    coding = MotionCoding(KeypointStats.identity(2))
    cfg = MotionTrainConfig(loss_diffusion=1.0, loss_x0=0.5, loss_velocity=2.0, loss_acceleration=1.0,
                            loss_pairwise=0.1, mask_out_of_frame=True)
    masked = train.diffusion_losses(lambda *a, **k: wrong, batch, scheduler, cfg, coding)
    assert masked["loss_diffusion"].item() == pytest.approx(e ** 2, rel=1e-5)
    assert masked["loss_velocity"].item() == pytest.approx(0.0, abs=1e-10)
    assert masked["loss_acceleration"].item() == pytest.approx(0.0, abs=1e-10)
    assert masked["loss_pairwise"].item() == pytest.approx(0.0, abs=1e-10)  # one point: its distance to itself
    plain = train.diffusion_losses(lambda *a, **k: wrong, batch, scheduler, cfg.replace(mask_out_of_frame=False), coding)
    assert plain["loss_diffusion"].item() > 100 * masked["loss_diffusion"].item()


def test_offset_stats_of_in_frame_keypoints_only():
    """offsets_from_sequences(inside_only=True): a keypoint that jitters wildly while outside the
    frame and moves gently inside it gets the gentle std; one never inside keeps the pooled std."""
    from difftted.motion.keypoints import KeypointStats

    rng = np.random.default_rng(0)
    t = 400
    kp = np.zeros((t, 3, 2))
    kp[:, 0] = 0.1 * rng.standard_normal((t, 2))                       # inside, std 0.1
    kp[: t // 2, 1] = 0.1 * rng.standard_normal((t // 2, 2))           # inside half the time ...
    kp[t // 2:, 1] = 3.0 + 1.0 * rng.standard_normal((t // 2, 2))      # ... then far below, jittering
    kp[:, 1, 0] = np.clip(kp[:, 1, 0], -0.9, 0.9)
    kp[:, 2] = 5.0 + rng.standard_normal((t, 2))                       # never inside
    plain = KeypointStats.offsets_from_sequences([kp])
    inside = KeypointStats.offsets_from_sequences([kp], inside_only=True)
    np.testing.assert_allclose(inside.std[0], plain.std[0])
    assert inside.std[1, 1] == pytest.approx(np.sqrt(2) * 0.1, rel=0.2)
    assert plain.std[1, 1] > 10 * inside.std[1, 1]
    np.testing.assert_allclose(inside.std[2], plain.std[2])


@pytest.mark.parametrize("source", [None, "body"])
def test_pipeline_json_names_the_datasets_keypoint_source(tmp_path, source):
    """A denoiser trained on a body-keypoint dataset writes "keypoints": "body" into pipeline.json
    (so the pipeline finds the photo's body keypoints); a detector dataset writes none."""
    from difftted.audio.features import AudioFeatureConfig
    from difftted.motion.denoiser import KeypointDenoiser
    from difftted.motion.keypoints import KeypointStats, MotionCoding
    from difftted.pipeline.weights import pipeline_keypoints
    from difftted.training.train_state import save_pipeline_parts

    manifest = {"fps": 25.0, "audio_config": AudioFeatureConfig().to_dict(), "num_keypoints": 2,
                "feature_dim": AudioFeatureConfig().feature_dim,
                **({"keypoint_source": source} if source else {})}
    cfg = MotionTrainConfig(denoiser={"hidden_dim": 16, "num_layers": 1, "num_heads": 2})
    model = KeypointDenoiser(num_keypoints=2, audio_dim=AudioFeatureConfig().feature_dim, hidden_dim=16,
                             num_layers=1, num_heads=2)
    folder = save_pipeline_parts(tmp_path / "p", model, cfg, manifest, MotionCoding(KeypointStats.identity(2)))
    meta = json.loads((folder / "pipeline.json").read_text())
    assert meta.get("keypoints") == source
    assert pipeline_keypoints(folder) == (source or "detector")
