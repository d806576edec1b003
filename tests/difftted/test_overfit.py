"""A tiny denoiser memorises one window of real motion: the loss drops tenfold and its samples
land near the window, nearer than other real motion or noise.

The tiny model predicts x0 (``prediction_type="sample"``, as S2G-MDDiffusion does): memorising one
window that way takes a few hundred steps, while an epsilon model of this size needs many more
before its samples (not just its loss) settle. Epsilon sampling is checked exactly in
test_sampling.py with an oracle denoiser.
"""

from __future__ import annotations

import pytest
import torch

from difftted.evaluation.metrics import l1_distance
from difftted.motion.sampling import make_scheduler, sample_motion, swap_scheduler

WINDOW = 16
START = 400  # 16 s into the capture: the speaker is gesturing


def _eval_loss(model, scheduler, x0, audio, source, seed=123, n=64):
    """x0-prediction MSE on a fixed set of (timestep, noise) draws, so before/after compare."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, scheduler.config.num_train_timesteps - 1, n).long()
    noise = torch.randn((n,) + x0.shape, generator=g)
    batch = lambda x: x[None].expand(n, *x.shape)  # noqa: E731
    with torch.no_grad():
        pred = model(scheduler.add_noise(batch(x0), noise, t), t, batch(audio), batch(source))
    return torch.nn.functional.mse_loss(pred, batch(x0)).item()


def test_tiny_model_overfits_a_real_window(mocap_training_data, make_tiny_denoiser, fit):
    _, motion, audio = mocap_training_data
    target, target_audio = motion[START:START + WINDOW], audio[START:START + WINDOW]
    source = motion[START]
    model = make_tiny_denoiser(audio_dim=audio.shape[1], hidden_dim=64, num_layers=2, context_frames=0,
                               max_frames=WINDOW, prediction_type="sample").eval()
    scheduler = make_scheduler("sample")

    before = _eval_loss(model, scheduler, target, target_audio, source)
    fit(model, scheduler, motion, audio, window=WINDOW, steps=400, batch_size=32, lr=3e-3,
        p_audio=0.0, starts=[START], source=source)
    after = _eval_loss(model, scheduler, target, target_audio, source)
    assert after < before / 10, f"loss {before:.3f} -> {after:.3f}"

    sample = sample_motion(model, swap_scheduler(scheduler, "ddim"), target_audio, source,
                           num_inference_steps=25, guidance_scale=1.0,
                           generator=torch.Generator().manual_seed(0), progress=False)
    other_real = motion[START + 300:START + 300 + WINDOW]
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(1))
    error = l1_distance(sample.numpy(), target.numpy())
    assert error < 0.5 * l1_distance(other_real.numpy(), target.numpy())
    assert error < 0.5 * l1_distance(noise.numpy(), target.numpy())


def test_mocap_keypoints_come_from_a_rigid_skeleton(shared_data, mocap_keypoints):
    """The real sequence used above: forward kinematics keeps every bone's length, and the
    projected keypoints fill [-0.9, 0.9] and move."""
    import numpy as np

    from difftted.data.mocap import forward_kinematics, read_bvh

    bvh = read_bvh(shared_data / "mocap/2_scott_0_1_1.bvh")
    world = forward_kinematics(bvh)  # [F, J, 3]
    for j, parent in enumerate(bvh.parents):
        if parent >= 0:
            bone = np.linalg.norm(world[:, j] - world[:, parent], axis=-1)
            np.testing.assert_allclose(bone, np.linalg.norm(bvh.offsets[j]), rtol=1e-6, atol=1e-6)
    assert mocap_keypoints.shape[1:] == (50, 2) and mocap_keypoints.shape[0] > 1500
    assert np.abs(mocap_keypoints).max() == pytest.approx(0.9, abs=1e-5)
    assert np.abs(np.diff(mocap_keypoints, axis=0)).mean() > 1e-3
