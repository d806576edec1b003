"""tps.video: reading frames, writing H.264 + AAC mp4 chunk by chunk, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tps.video import iter_frames, read_video, to_uint8_frames, video_info, write_video


def moving_square(frames: int, height: int = 48, width: int = 64) -> np.ndarray:
    """``uint8 [T, H, W, 3]``: a smooth gradient with a bright square moving right."""
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // (width - 1), y * 255 // (height - 1), np.full_like(x, 96)], axis=-1)
    clip = np.repeat(base[None], frames, axis=0).astype(np.uint8)
    for t in range(frames):
        clip[t, 12:28, 4 + 2 * t : 20 + 2 * t] = 250
    return clip


def audio_streams(path: Path) -> list[str]:
    """The stream lines ffmpeg prints for ``path`` (its own probe, independent of tps.video)."""
    import imageio_ffmpeg

    log = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return [line.strip() for line in log.splitlines() if "Stream #" in line]


def count_frames(path: Path) -> int:
    import imageio_ffmpeg

    return imageio_ffmpeg.count_frames_and_secs(str(path))[0]


def test_round_trip_uint8_chunks_and_float_tensors(tmp_path: Path) -> None:
    clip = moving_square(10)
    tensors = torch.from_numpy(clip).permute(0, 3, 1, 2).float() / 255
    for name, chunks in {
        "uint8.mp4": [clip[:4], clip[4], clip[5:]],  # a chunk, a single frame, the rest
        "float.mp4": (tensors[i : i + 3] for i in range(0, 10, 3)),  # a generator of [N, 3, H, W]
    }.items():
        path = write_video(tmp_path / name, chunks, fps=12.5)
        info = video_info(path)
        assert (info.width, info.height, info.fps, info.has_audio) == (64, 48, 12.5, False)
        assert count_frames(path) == 10
        frames, fps = read_video(path)
        assert frames.shape == (10, 48, 64, 3) and frames.dtype == np.uint8 and fps == 12.5
        # H.264 at crf 18 is lossy but close; the square must be where it was written
        assert np.abs(frames.astype(int) - clip).mean() < 3
        assert frames[7, 20, 4 + 14 + 8].min() > 200


def test_waveform_audio_is_cut_or_padded_to_the_video(tmp_path: Path) -> None:
    clip = moving_square(25)
    for seconds in (3.0, 0.4):  # longer and shorter than the 1 s video
        wave = 0.2 * np.sin(np.linspace(0, 440 * 2 * np.pi * seconds, int(16000 * seconds))).astype(np.float32)
        path = write_video(tmp_path / f"audio_{seconds}.mp4", [clip], fps=25, audio=(wave, 16000))
        streams = audio_streams(path)
        assert any("Video: h264" in s and "yuv420p" in s for s in streams), streams
        assert any("Audio: aac" in s for s in streams), streams
        assert count_frames(path) == 25  # shorter audio never cuts frames
        assert abs(video_info(path).duration - 1.0) < 0.1


def test_audio_from_a_video_file(tmp_path: Path, shared_data: Path) -> None:
    driving = shared_data / "talking" / "face_tpsmm_driving.mp4"
    frames, fps = read_video(driving, size=(32, 48), max_frames=25)
    assert frames.shape == (25, 32, 48, 3) and fps == 25.0
    path = write_video(tmp_path / "with_audio.mp4", iter(frames), fps, audio=driving)
    streams = audio_streams(path)
    assert sum("Video:" in s for s in streams) == 1  # the driving video's picture is not copied
    assert sum("Audio: aac" in s for s in streams) == 1
    info = video_info(path)
    assert info.has_audio and info.audio_sample_rate == 44100
    assert count_frames(path) == 25 and abs(info.duration - 1.0) < 0.1


def test_read_video_size_stream_and_info(shared_data: Path) -> None:
    driving = shared_data / "talking" / "face_tpsmm_driving.mp4"
    info = video_info(driving)
    assert (info.width, info.height, info.fps, info.has_audio) == (410, 412, 25.0, True)
    stream, fps = read_video(driving, size=40, max_frames=3, stream=True)
    assert not isinstance(stream, np.ndarray) and fps == 25.0
    frames = list(stream)
    assert len(frames) == 3 and frames[0].shape == (40, 40, 3) and frames[0].dtype == np.uint8
    full = next(iter_frames(driving))
    assert full.shape == (412, 410, 3)


def test_odd_sizes_are_padded_to_even(tmp_path: Path) -> None:
    clip = moving_square(3, height=31, width=45)
    path = write_video(tmp_path / "odd.mp4", [clip], fps=10)
    info = video_info(path)
    assert (info.height, info.width) == (32, 46)
    frames, _ = read_video(path)
    assert np.abs(frames[:, :31, :45].astype(int) - clip).mean() < 3


def test_to_uint8_frames_layouts() -> None:
    chw = torch.tensor([0.0, 0.5, 1.2]).view(3, 1, 1).expand(3, 2, 2)
    out = to_uint8_frames(chw)
    assert out.shape == (1, 2, 2, 3) and out.dtype == np.uint8
    assert out[0, 0, 0].tolist() == [0, 128, 255]  # rounded, clipped
    assert to_uint8_frames(np.zeros((2, 5, 6, 3), np.uint8)).shape == (2, 5, 6, 3)
    with pytest.raises(ValueError, match=r"got \(2, 5, 6, 4\)"):
        to_uint8_frames(np.zeros((2, 5, 6, 4), np.uint8))
    with pytest.raises(TypeError, match="got int16"):
        to_uint8_frames(np.zeros((5, 6, 3), np.int16))


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="path: no such file: .*missing.mp4"):
        video_info(tmp_path / "missing.mp4")
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    with pytest.raises(ValueError, match="fake.mp4' is not a readable media file"):
        read_video(fake)
    with pytest.raises(FileNotFoundError, match="audio: no such file"):
        write_video(tmp_path / "out.mp4", [moving_square(2)], fps=10, audio=tmp_path / "missing.wav")
    silent = write_video(tmp_path / "silent.mp4", [moving_square(2)], fps=10)
    with pytest.raises(ValueError, match="silent.mp4' has no audio stream"):
        write_video(tmp_path / "out.mp4", [moving_square(2)], fps=10, audio=silent)


def test_write_video_rejects_bad_arguments(tmp_path: Path) -> None:
    clip = moving_square(2)
    with pytest.raises(ValueError, match="fps must be a positive number, got 0"):
        write_video(tmp_path / "a.mp4", [clip], fps=0)
    with pytest.raises(ValueError, match="crf must be an int in \\[0, 51\\], got 60"):
        write_video(tmp_path / "a.mp4", [clip], fps=10, crf=60)
    with pytest.raises(ValueError, match=r"chunk 1 has frame size \(24, 32\), the first had \(48, 64\)"):
        write_video(tmp_path / "b.mp4", [clip, moving_square(2, 24, 32)], fps=10)
    with pytest.raises(ValueError, match="frames: the iterable yielded no frame"):
        write_video(tmp_path / "c.mp4", [], fps=10)
    assert not (tmp_path / "c.mp4").exists()
    with pytest.raises(ValueError, match="audio sample rate must be a positive int, got 0"):
        write_video(tmp_path / "d.mp4", [clip], fps=10, audio=(np.zeros(100, np.float32), 0))
    with pytest.raises(TypeError, match="audio must be a path, a \\(waveform, sample_rate\\) tuple or None, got list"):
        write_video(tmp_path / "d.mp4", [clip], fps=10, audio=[1, 2])
    with pytest.raises(ValueError, match="size must be a positive int or \\(height, width\\)"):
        read_video(write_video(tmp_path / "e.mp4", [clip], fps=10), size=(0, 5))


def test_importing_tps_does_not_import_moviepy() -> None:
    code = "import sys, tps, tps.video, tps.render, tps.animate; print(any(m.split('.')[0] in ('moviepy', 'imageio_ffmpeg') for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2])
    assert result.stdout.strip() == "False"
