"""Fixtures for the app tests: the tiny seeded pipeline of tests/pipeline, small inputs made from
the shipped examples, and a served demo (launched on 127.0.0.1 in a thread, closed after)."""

from __future__ import annotations

import importlib.util
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "examples"
#: Short inputs keep a whole generation to a few seconds on a shared CPU.
SPEECH_SECONDS = 1.0
PHOTO_SIDE = 192
#: The served demo's cap, low so that an "over-long" file stays small.
TEST_MAX_AUDIO_SECONDS = 3.0

if str(REPO_ROOT) not in sys.path:  # `import app` from the repository root
    sys.path.insert(0, str(REPO_ROOT))


def _pipeline_fixtures():
    """tests/pipeline/conftest.py as a module of its own (its `build_tiny_pipeline`)."""
    path = REPO_ROOT / "tests" / "pipeline" / "conftest.py"
    spec = importlib.util.spec_from_file_location("_difftted_pipeline_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def app_pipeline():
    """The tiny seeded pipeline (untrained: the pictures are noise, the plumbing is real)."""
    return _pipeline_fixtures().build_tiny_pipeline(seed=0)


@pytest.fixture(scope="session")
def body_app_pipeline(tmp_path_factory):
    """The tiny pipeline on body keypoints (pipeline.json "keypoints": "body"), loaded from its folder."""
    from difftted.pipeline import DiffTEDPipeline

    folder = _pipeline_fixtures().save_body_pipeline(tmp_path_factory.mktemp("body_app_pipeline"))
    return DiffTEDPipeline.from_pretrained(folder)


@pytest.fixture(scope="session")
def small_photo(tmp_path_factory) -> Path:
    """examples/astronaut.png at PHOTO_SIDE px."""
    from PIL import Image

    path = tmp_path_factory.mktemp("app_inputs") / "astronaut_small.png"
    Image.open(EXAMPLES / "astronaut.png").resize((PHOTO_SIDE, PHOTO_SIDE), Image.Resampling.LANCZOS).save(path)
    return path


@pytest.fixture(scope="session")
def short_speech(tmp_path_factory) -> Path:
    """The first SPEECH_SECONDS of examples/speech.wav (synthesised speech, 16 kHz mono)."""
    import soundfile

    data, sr = soundfile.read(str(EXAMPLES / "speech.wav"), dtype="float32")
    path = tmp_path_factory.mktemp("app_inputs") / "speech_short.wav"
    soundfile.write(str(path), data[: int(SPEECH_SECONDS * sr)], sr)
    return path


@pytest.fixture(scope="session")
def short_driving(tmp_path_factory) -> Path:
    """The first 10 frames (0.4 s) of examples/sway.mp4, at 96 px."""
    from tps.video import read_video, write_video

    frames, fps = read_video(EXAMPLES / "sway.mp4", size=96, max_frames=10)
    return write_video(tmp_path_factory.mktemp("app_inputs") / "sway_short.mp4", frames, fps)


@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory) -> dict[str, Path]:
    """Files a visitor might upload by mistake: text named .wav, silence, over-long speech."""
    import soundfile

    folder = tmp_path_factory.mktemp("bad_inputs")
    text = folder / "notes.wav"
    text.write_text("these are my speaker notes, not a recording\n")
    silence = folder / "silence.wav"
    soundfile.write(str(silence), np.zeros(16000, dtype=np.float32), 16000)
    long_speech = folder / "long.wav"
    t = np.arange(int((TEST_MAX_AUDIO_SECONDS + 1.0) * 16000)) / 16000
    soundfile.write(str(long_speech), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    return {"text": text, "silence": silence, "long": long_speech}


@pytest.fixture(scope="session")
def max_audio_seconds() -> float:
    """The cap of the served demo and of the bad-input files (see `bad_inputs`)."""
    return TEST_MAX_AUDIO_SECONDS


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServedDemo:
    url: str
    work_root: Path


@pytest.fixture(scope="module")
def served_demo(app_pipeline, tmp_path_factory) -> Iterator[ServedDemo]:
    """`app.build_demo` on the tiny pipeline, served on 127.0.0.1:<free port> until the module ends."""
    import app

    work_root = tmp_path_factory.mktemp("app_work")
    demo = app.build_demo(app_pipeline, max_audio_seconds=TEST_MAX_AUDIO_SECONDS, work_root=work_root)
    demo.launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True,
                **app.launch_options())
    try:
        yield ServedDemo(url=demo.local_url, work_root=work_root)
    finally:
        demo.close()
