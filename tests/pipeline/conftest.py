"""Fixtures for the pipeline tests: tiny seeded components, a saved tiny pipeline folder, a real
photo (scikit-image's astronaut) and short real speech (../shared/data, trimmed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

#: Long enough for several denoiser windows (max_frames 16 at 25 fps) and render chunks.
SPEECH_SECONDS = 1.2
TINY_FPS = 25.0
TINY_STEPS = 2


def build_tiny_pipeline(seed: int = 0, **denoiser_overrides):
    """A complete pipeline of tiny, seeded, untrained components (milliseconds per frame);
    ``denoiser_overrides`` go to the `KeypointDenoiser` (e.g. ``motion_target``)."""
    from diffusers import DDIMScheduler

    from difftted.audio.features import AudioFeatureConfig
    from difftted.motion.denoiser import KeypointDenoiser
    from difftted.motion.keypoints import KeypointStats
    from difftted.pipeline import DiffTEDPipeline
    from tps import TPSMotionModel, get_preset

    torch.manual_seed(seed)
    audio_config = AudioFeatureConfig(n_mels=16)
    renderer = TPSMotionModel.from_config(get_preset("tiny-64"))
    num_kp = renderer.config.num_kp
    denoiser = KeypointDenoiser(num_keypoints=num_kp, audio_dim=audio_config.feature_dim, hidden_dim=32,
                                num_layers=1, num_heads=2, max_frames=16, context_frames=2, dropout=0.0,
                                **denoiser_overrides)
    scheduler = DDIMScheduler(num_train_timesteps=100, beta_schedule="linear", clip_sample=False,
                              prediction_type=denoiser.config.prediction_type)
    rng = np.random.default_rng(seed)
    stats = KeypointStats(mean=rng.uniform(-0.5, 0.5, (num_kp, 2)), std=rng.uniform(0.02, 0.2, (num_kp, 2)))
    offsets = None
    if denoiser.config.motion_target == "source_offset":
        offsets = KeypointStats(mean=np.zeros((num_kp, 2)), std=rng.uniform(0.01, 0.05, (num_kp, 2)))
    return DiffTEDPipeline(denoiser, scheduler, renderer, stats, audio_config, fps=TINY_FPS,
                           num_inference_steps=TINY_STEPS, guidance_scale=1.5, offset_stats=offsets)


@pytest.fixture()
def make_tiny_pipeline():
    """`build_tiny_pipeline` itself, for tests that need other components."""
    return build_tiny_pipeline


@pytest.fixture(scope="session")
def tiny_pipeline():
    pipe = build_tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tiny_pipeline, tmp_path_factory) -> Path:
    return tiny_pipeline.save_pretrained(tmp_path_factory.mktemp("tiny_pipeline"))


def save_body_pipeline(folder: Path, seed: int = 1) -> Path:
    """A tiny pipeline saved in ``folder`` whose pipeline.json says ``"keypoints": "body"`` and whose
    renderer config says it was trained on given keypoints (``keypoint_source "given"``)."""
    import json

    folder = build_tiny_pipeline(seed=seed).save_pretrained(folder)
    meta = json.loads((folder / "pipeline.json").read_text())
    (folder / "pipeline.json").write_text(json.dumps({**meta, "keypoints": "body"}))
    config = json.loads((folder / "renderer" / "config.json").read_text())
    (folder / "renderer" / "config.json").write_text(json.dumps({**config, "keypoint_source": "given"}))
    return folder


@pytest.fixture(scope="session")
def body_pipeline_dir(tmp_path_factory) -> Path:
    return save_body_pipeline(tmp_path_factory.mktemp("body_pipeline"))


@pytest.fixture(scope="session")
def speech_path(shared_data, tmp_path_factory) -> Path:
    """The first SPEECH_SECONDS of real speech (44.1 kHz stereo wav), as a wav of its own."""
    import soundfile

    source = shared_data / "talking" / "speech_retalking_1.wav"
    if not source.is_file():
        pytest.skip(f"real-data test: {source} is absent")
    data, sr = soundfile.read(str(source), dtype="float32", always_2d=True)
    # start 0.5 s in: the clip opens with a breath, the speech proper follows
    clip = data[int(0.5 * sr): int((0.5 + SPEECH_SECONDS) * sr)]
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    soundfile.write(str(path), clip, sr)
    return path


@pytest.fixture(scope="session")
def tone_path(tmp_path_factory) -> Path:
    """One second of an amplitude-modulated tone: valid, non-silent audio for error-path tests
    that must not depend on ../shared/data."""
    import soundfile

    sr = 16000
    t = np.arange(sr) / sr
    wave = 0.3 * np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    path = tmp_path_factory.mktemp("tone") / "tone.wav"
    soundfile.write(str(path), wave.astype(np.float32), sr)
    return path
