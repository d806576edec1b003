"""Fixtures for the difftted tests: real motion from the BEAT motion capture, tiny models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

BVH_NAME = "mocap/2_scott_0_1_1.bvh"


@pytest.fixture(scope="session")
def mocap_keypoints(shared_data: Path) -> np.ndarray:
    """Real co-speech motion: ``[T, 50, 2]`` float32 in [-0.9, 0.9] at 25 fps (about 64 s).

    The BVH header says 7669 frames at 120 fps (64 s, the length of its wav) but the file holds
    957 rows, about every 8th frame: read at 120 fps, the hands would move at 4 m/s on average; at
    the decimated rate they move at 0.5 m/s. So the rows are spread over the declared duration.
    The first row is a glitch (the root rotation jumps back to zero after it) and is skipped.
    """
    from difftted.data.mocap import bvh_keypoints, read_bvh

    path = shared_data / BVH_NAME
    if not path.is_file():
        pytest.skip(f"real-data test: {path} is absent")
    bvh = read_bvh(path)
    declared_seconds = bvh.declared_frames * bvh.frame_time
    source_fps = bvh.motion.shape[0] / declared_seconds
    return bvh_keypoints(path, num_keypoints=50, fps=25.0, source_fps=source_fps, first_frame=1)


@pytest.fixture(scope="session")
def mocap_audio(shared_data: Path) -> tuple[np.ndarray, int]:
    """The speech that goes with :func:`mocap_keypoints` (16 kHz mono)."""
    from difftted.audio.features import load_audio

    path = shared_data / "mocap/2_scott_0_1_1.wav"
    if not path.is_file():
        pytest.skip(f"real-data test: {path} is absent")
    return load_audio(path, 16000)


@pytest.fixture()
def make_tiny_denoiser():
    """Factory of denoisers small enough to train in seconds on 2 CPU cores (seeded)."""
    return _tiny_denoiser


def _tiny_denoiser(seed: int = 0, **overrides):
    import torch

    from difftted.motion.denoiser import KeypointDenoiser

    torch.manual_seed(seed)
    config = dict(num_keypoints=50, audio_dim=8, hidden_dim=32, num_layers=2, num_heads=4, mlp_ratio=2.0,
                  dropout=0.0, max_frames=16, context_frames=4, prediction_type="epsilon")
    config.update(overrides)
    return KeypointDenoiser(**config)


def fit_denoiser(model, scheduler, motion, audio=None, *, window: int, steps: int, batch_size: int = 32,
                 lr: float = 2e-3, p_audio: float = 0.1, p_context: float = 0.3, starts=None, source=None,
                 seed: int = 0):
    """Train ``model`` on random windows of one normalised sequence; returns the batch losses.

    ``motion`` ``[F, N*2]`` and ``audio`` ``[F, D]`` tensors; ``starts`` restricts the windows to
    those start frames (an overfitting target). Context = the frames right before each window,
    dropped with ``p_context``; audio dropped with ``p_audio``; source = ``source`` ``[N*2]`` or else a
    random frame of the clip.
    The same contract as the training command, minus its extra losses, in a dozen lines.
    """
    import torch

    from difftted.motion.denoiser import sample_condition_drop

    g = torch.Generator().manual_seed(seed)
    ctx_len = model.config.context_frames
    if starts is None:
        starts = torch.arange(ctx_len, motion.shape[0] - window + 1)
    starts = torch.as_tensor(starts)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.1)
    model.train()
    losses = []
    for _ in range(steps):
        s = starts[torch.randint(len(starts), (batch_size,), generator=g)]
        frames = s[:, None] + torch.arange(window)
        x0 = motion[frames]
        noise = torch.randn(x0.shape, generator=g)
        t = torch.randint(scheduler.config.num_train_timesteps, (batch_size,), generator=g)
        ctx_frames = (s[:, None] - ctx_len + torch.arange(ctx_len)).clamp(min=0)
        pred = model(scheduler.add_noise(x0, noise, t), t, None if audio is None else audio[frames],
                     motion[torch.randint(motion.shape[0], (batch_size,), generator=g)]
                     if source is None else source[None].expand(batch_size, -1),
                     motion[ctx_frames] if ctx_len else None,
                     drop_audio=sample_condition_drop(batch_size, p_audio, g),
                     drop_context=sample_condition_drop(batch_size, p_context, g) if ctx_len else None)
        target = {"epsilon": noise, "sample": x0,
                  "v_prediction": scheduler.get_velocity(x0, noise, t)}[model.config.prediction_type]
        loss = torch.nn.functional.mse_loss(pred, target)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    return losses


@pytest.fixture()
def fit():
    """:func:`fit_denoiser` for tests."""
    return fit_denoiser


@pytest.fixture(scope="session")
def mocap_training_data(mocap_keypoints, mocap_audio):
    """The mocap sequence normalised ``[F, 100]`` with its aligned audio features ``[F, 18]``."""
    import torch

    from difftted.audio.features import AudioFeatureConfig, AudioFeatureExtractor
    from difftted.motion.keypoints import KeypointStats

    stats = KeypointStats.from_sequences([mocap_keypoints])
    motion = torch.from_numpy(stats.normalize(mocap_keypoints).reshape(len(mocap_keypoints), -1))
    waveform, sr = mocap_audio
    audio = AudioFeatureExtractor(AudioFeatureConfig(n_mels=16))(waveform, sr, 25.0, num_frames=len(mocap_keypoints))
    return stats, motion.float(), torch.from_numpy(audio)


@pytest.fixture(scope="session")
def trained_mocap_model(mocap_training_data):
    """A small denoiser trained on the whole real mocap sequence (shared by the sampling tests)."""
    from difftted.motion.sampling import make_scheduler

    _, motion, audio = mocap_training_data
    model = _tiny_denoiser(seed=0, audio_dim=audio.shape[1], hidden_dim=64, num_layers=3, max_frames=16,
                           prediction_type="sample")  # x0: a small model learns it fastest
    scheduler = make_scheduler("sample")
    losses = fit_denoiser(model, scheduler, motion, audio, window=16, steps=600, batch_size=32, lr=2e-3)
    return model, scheduler, losses


@pytest.fixture(scope="session")
def build_mocap_dataset(mocap_keypoints, mocap_audio):
    """A function ``(out, clips) -> out`` writing a dataset of real motion (the BEAT capture,
    50 keypoints at 25 fps) with its speech, in the format of ``difftted.data.dataset``; ``clips`` are
    ``(id, split, first frame, end frame)``."""
    from difftted.audio.features import AudioFeatureConfig, AudioFeatureExtractor
    from difftted.data.dataset import finalize_dataset, save_clip

    def build(out: Path, clips: list[tuple[str, str, int, int]]) -> Path:
        cfg, (wave, sr) = AudioFeatureConfig(), mocap_audio
        end = max(c[3] for c in clips)
        feats = AudioFeatureExtractor(cfg)(wave[: end * sr // 25], sr, 25.0, num_frames=end)
        entries = [save_clip(out, cid, split, mocap_keypoints[a:b], feats[a:b],
                             wave[a * sr // 25:b * sr // 25], sr, 25.0)
                   for cid, split, a, b in clips]
        finalize_dataset(out, entries, [], cfg, 25.0, window=16)
        return out

    return build
