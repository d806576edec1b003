"""difftted.motion.sampling: CFG, schedulers, seeds, windows whose overlap is held, seams of real motion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from difftted.motion.denoiser import KeypointDenoiser
from difftted.motion.sampling import (SCHEDULERS, Window, apply_guidance, make_scheduler, plan_windows, sample_motion,
                               swap_scheduler)

KP = 100
AUDIO_DIM = 8


class OracleDenoiser(KeypointDenoiser):
    """Knows the clean motion: every frame equals ``target`` ``[N*2]``; predicts exactly what its
    ``prediction_type`` asks for, from the scheduler's ``alphas_cumprod``."""

    def attach(self, target: torch.Tensor, alphas_cumprod: torch.Tensor) -> "OracleDenoiser":
        self.target, self.alphas_cumprod = target, alphas_cumprod
        return self

    def forward(self, sample, timestep, audio_features, source_keypoints, context=None, drop_audio=None,
                drop_context=None):
        alpha = self.alphas_cumprod[int(timestep)]
        x0 = self.target.expand_as(sample)
        eps = (sample - alpha.sqrt() * x0) / (1 - alpha).sqrt()
        return {"epsilon": eps, "sample": x0,
                "v_prediction": alpha.sqrt() * eps - (1 - alpha).sqrt() * x0}[self.config.prediction_type]


def _oracle(prediction_type: str, scheduler) -> OracleDenoiser:
    model = OracleDenoiser(audio_dim=AUDIO_DIM, hidden_dim=8, num_layers=1, num_heads=2, max_frames=16,
                           prediction_type=prediction_type)
    target = torch.linspace(-2, 2, KP)
    return model.attach(target, scheduler.alphas_cumprod)


def _conditions(frames: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(frames, AUDIO_DIM, generator=g), torch.randn(KP, generator=g)


def test_apply_guidance_arithmetic():
    g = torch.Generator().manual_seed(0)
    uncond, cond = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    torch.testing.assert_close(apply_guidance(uncond, cond, 1.0), cond)
    torch.testing.assert_close(apply_guidance(uncond, cond, 0.0), uncond)
    torch.testing.assert_close(apply_guidance(uncond, cond, 2.5), uncond + 2.5 * (cond - uncond))
    torch.testing.assert_close(apply_guidance(uncond, cond, 3.0), 3 * cond - 2 * uncond)


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpm++"])
@pytest.mark.parametrize("prediction_type", ["epsilon", "sample", "v_prediction"])
def test_every_scheduler_recovers_the_oracle_motion(name, prediction_type):
    """Through ``X.from_config``, long audio in several windows included: the sampler is exact."""
    base = make_scheduler(prediction_type)
    scheduler = SCHEDULERS[name].from_config(base.config)
    assert type(scheduler) is SCHEDULERS[name] and scheduler.config.prediction_type == prediction_type
    oracle = _oracle(prediction_type, base)
    audio, source = _conditions(40)
    motion = sample_motion(oracle, scheduler, audio, source, num_inference_steps=20, guidance_scale=1.5,
                           generator=torch.Generator().manual_seed(0), window=16, overlap=4, progress=False)
    assert motion.shape == (40, KP)
    torch.testing.assert_close(motion, oracle.target.expand(40, -1), atol=2e-3, rtol=0)


def test_cfg_runs_one_batched_forward_per_step(make_tiny_denoiser, monkeypatch):
    model = make_tiny_denoiser(audio_dim=AUDIO_DIM)
    calls = []
    original = KeypointDenoiser.forward

    def spy(self, sample, timestep, audio_features, source_keypoints, context=None, drop_audio=None,
            drop_context=None):
        calls.append((sample.shape[0], drop_audio.tolist()))
        return original(self, sample, timestep, audio_features, source_keypoints, context, drop_audio, drop_context)

    monkeypatch.setattr(KeypointDenoiser, "forward", spy)
    audio, source = _conditions(12)
    sample_motion(model, make_scheduler(), audio, source, num_inference_steps=7, guidance_scale=2.0,
                  generator=torch.Generator().manual_seed(0), progress=False)
    assert calls == [(2, [False, True])] * 7
    calls.clear()
    sample_motion(model, make_scheduler(), audio, source, num_inference_steps=7, guidance_scale=1.0,
                  generator=torch.Generator().manual_seed(0), progress=False)
    assert calls == [(1, [False])] * 7  # scale 1 is the conditional model alone


def test_guided_step_equals_guidance_of_separate_passes(make_tiny_denoiser):
    """One step of DDIM with CFG, computed by hand from two separate forwards, matches."""
    model = make_tiny_denoiser(audio_dim=AUDIO_DIM).eval()
    scheduler = swap_scheduler(make_scheduler(), "ddim")
    audio, source = _conditions(12)
    scale = 3.0
    got = sample_motion(model, scheduler, audio, source, num_inference_steps=1, guidance_scale=scale,
                        generator=torch.Generator().manual_seed(4), progress=False)
    x = torch.randn(1, 12, KP, generator=torch.Generator().manual_seed(4))
    t = scheduler.timesteps[0]
    with torch.no_grad():
        cond = model(x, t, audio[None], source[None])
        uncond = model(x, t, None, source[None])
    expected = scheduler.step(apply_guidance(uncond, cond, scale), t, x).prev_sample[0]
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["ddpm", "ddim", "dpm++"])
def test_one_seed_one_motion_and_no_global_randomness(make_tiny_denoiser, name):
    model = make_tiny_denoiser(audio_dim=AUDIO_DIM)
    scheduler = swap_scheduler(make_scheduler(), name)
    audio, source = _conditions(30)
    run = lambda seed: sample_motion(model, scheduler, audio, source, num_inference_steps=5,  # noqa: E731
                                     generator=torch.Generator().manual_seed(seed), progress=False)
    state = torch.random.get_rng_state()
    first = run(0)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(run(0), first)
    assert not torch.allclose(run(1), first)
    assert model.training  # restored after sampling in eval mode


def test_plan_windows_cover_the_clip_with_held_overlaps():
    assert plan_windows(10, 16, 4) == [Window(0, 10, 0)]  # a short clip is one pass
    for frames in (17, 40, 57, 100):
        plan = plan_windows(frames, 16, 4)
        assert plan[0].start == 0 and plan[0].held == 0 and plan[-1].stop == frames
        for prev, win in zip(plan, plan[1:]):
            assert win.stop - win.start == 16
            assert win.held == prev.stop - win.start >= 4  # continues exactly where the last one ended


def test_overlap_is_held_at_every_step_and_context_precedes_the_window(make_tiny_denoiser, monkeypatch):
    model = make_tiny_denoiser(audio_dim=AUDIO_DIM, context_frames=3)
    scheduler = swap_scheduler(make_scheduler(), "ddim")
    seen = []
    original = KeypointDenoiser.forward

    def spy(self, sample, timestep, audio_features, source_keypoints, context=None, drop_audio=None,
            drop_context=None):
        seen.append((sample[0].clone(), int(timestep), None if context is None else context[0].clone()))
        return original(self, sample, timestep, audio_features, source_keypoints, context, drop_audio, drop_context)

    monkeypatch.setattr(KeypointDenoiser, "forward", spy)
    audio, source = _conditions(28)
    steps = 6
    motion = sample_motion(model, scheduler, audio, source, num_inference_steps=steps, guidance_scale=1.0,
                           generator=torch.Generator().manual_seed(0), window=16, overlap=4, progress=False)
    (win0, win1) = plan_windows(28, 16, 4)
    assert (win1.start, win1.held) == (12, 4)
    known = motion[win1.start:win1.start + win1.held]
    second = seen[steps:]
    assert second[0][2] is not None and seen[0][2] is None  # the first window has no context
    alphas = scheduler.alphas_cumprod
    implied_noise = []
    for sample, t, context in second:
        torch.testing.assert_close(context, motion[win1.start - 3:win1.start])
        held = sample[:win1.held]
        implied_noise.append((held - alphas[t].sqrt() * known) / (1 - alphas[t]).sqrt())
    for noise in implied_noise[1:]:  # the held frames are the known ones, noised to each step's t
        torch.testing.assert_close(noise, implied_noise[0], atol=1e-4, rtol=1e-4)


def test_bad_arguments_are_named(make_tiny_denoiser):
    model = make_tiny_denoiser(audio_dim=AUDIO_DIM)
    audio, source = _conditions(20)
    scheduler = make_scheduler()
    kwargs = dict(num_inference_steps=2, progress=False)
    with pytest.raises(ValueError, match="audio_features"):
        sample_motion(model, scheduler, torch.randn(20, AUDIO_DIM + 1), source, **kwargs)
    with pytest.raises(ValueError, match="source_keypoints"):
        sample_motion(model, scheduler, audio, torch.randn(KP - 2), **kwargs)
    with pytest.raises(ValueError, match="window"):
        sample_motion(model, scheduler, audio, source, window=17, **kwargs)
    with pytest.raises(ValueError, match="overlap"):
        sample_motion(model, scheduler, audio, source, window=8, overlap=8, **kwargs)
    with pytest.raises(ValueError, match="prediction_type"):
        sample_motion(model, make_scheduler("sample"), audio, source, **kwargs)
    with pytest.raises(TypeError, match="audio_features"):
        sample_motion(model, scheduler, audio.tolist(), source, **kwargs)
    with pytest.raises(ValueError, match="scheduler name"):
        swap_scheduler(scheduler, "euler-magic")
    with pytest.raises(ValueError, match="num_train_timesteps"):
        make_scheduler(num_train_timesteps=100)


def _displacements(motion: torch.Tensor, stats) -> np.ndarray:
    """Mean keypoint displacement between consecutive frames, keypoint units ``[T-1]``."""
    kp = stats.denormalize(motion.numpy().reshape(len(motion), -1, 2))
    return np.linalg.norm(np.diff(kp, axis=0), axis=-1).mean(axis=1)


@pytest.mark.shared_data
def test_window_seams_move_like_the_inside_of_windows(trained_mocap_model, mocap_training_data):
    """A small model trained on the real capture samples 6 s of speech in 16-frame windows: the
    step across every seam (last held frame -> first new frame) is no larger than the largest step
    inside a window, and far smaller than the seams of independently sampled windows."""
    model, scheduler, losses = trained_mocap_model
    stats, motion, audio = mocap_training_data
    assert np.mean(losses[-50:]) < 0.5 * np.mean(losses[:50])  # it did learn
    frames = 150

    def seams_and_inside(overlap: int, context_frames: int) -> tuple[np.ndarray, np.ndarray]:
        sample = sample_motion(model, swap_scheduler(scheduler, "ddim"), audio[600:600 + frames], motion[600],
                               num_inference_steps=20, guidance_scale=1.5, window=16, overlap=overlap,
                               context_frames=context_frames, generator=torch.Generator().manual_seed(0),
                               progress=False)
        step = _displacements(sample, stats)
        plan = plan_windows(frames, 16, overlap)
        seams = np.array([step[w.start + w.held - 1] for w in plan[1:]])
        return seams, np.concatenate([step[w.start + w.held:w.stop - 1] for w in plan])

    seams, inside = seams_and_inside(overlap=4, context_frames=4)
    assert len(seams) >= 8
    assert seams.max() <= inside.max(), f"seams {np.round(seams, 4)} vs inside max {inside.max():.4f}"
    independent, _ = seams_and_inside(overlap=0, context_frames=0)
    assert np.median(seams) < 0.5 * np.median(independent), (np.median(seams), np.median(independent))
