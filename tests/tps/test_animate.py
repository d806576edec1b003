"""tps.animate: photo + driving video -> mp4 with the driving audio (function and command)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tps.animate import animate, iter_animation, load_image, load_model, main
from tps.model import TPSMotionModel
from tps.video import read_video, video_info, write_video


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return TPSMotionModel.from_config("tiny-64").save_pretrained(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="module")
def driving_clip(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first second (25 frames) of a real talking-face clip with its audio."""
    source = shared_data / "talking" / "face_tpsmm_driving.mp4"
    frames, fps = read_video(source, max_frames=25)
    return write_video(tmp_path_factory.mktemp("driving") / "driving_1s.mp4", [frames], fps, audio=source)


def streams(path: Path) -> list[str]:
    import imageio_ffmpeg

    log = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)], capture_output=True, text=True).stderr
    return [line.strip() for line in log.splitlines() if "Stream #" in line]


def test_command_writes_mp4_with_audio(weights: Path, driving_clip: Path, shared_data: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out.mp4"
    code = main([
        "--source", str(shared_data / "talking" / "face_tpsmm_source.png"), "--driving", str(driving_clip),
        "--weights", str(weights), "--out", str(out), "--batch-size", "8",
    ])
    assert code == 0
    assert f"wrote {out}" in capsys.readouterr().out
    info = video_info(out)
    assert (info.width, info.height, info.fps) == (64, 64, 25.0)
    found = streams(out)
    assert sum("Video: h264" in s for s in found) == 1 and sum("Audio: aac" in s for s in found) == 1, found
    frames, _ = read_video(out)
    assert len(frames) == 25
    assert abs(info.duration - 1.0) < 0.1


@pytest.mark.parametrize("mode", ["relative", "standard", "avd"])
def test_frames_are_what_the_renderer_renders(weights: Path, driving_clip: Path, mode: str) -> None:
    from skimage import data

    from tps.render import Renderer

    model = load_model(weights)
    photo = data.astronaut()  # a real photo (public domain, shipped with scikit-image)
    chunks = list(iter_animation(photo, driving_clip, model, mode=mode, batch_size=4, max_frames=6, progress=False))
    assert [tuple(c.shape) for c in chunks] == [(4, 3, 64, 64), (2, 3, 64, 64)]
    # the same frames through the detector (same batches: a batched GEMM rounds differently,
    # and avd/TPS amplify that) and the renderer directly
    driving, _ = read_video(driving_clip, max_frames=6)
    images = torch.cat([load_image(frame, (64, 64)) for frame in driving])
    with torch.no_grad():
        kp = torch.cat([model.detect(images[:4]), model.detect(images[4:])])
    renderer = Renderer(model)
    expected = renderer.render(renderer.prepare(load_image(photo, (64, 64))), kp, mode=mode, progress=False)
    assert (torch.cat(chunks) - expected).abs().max() <= 1e-5
    if mode == "relative":  # relative motion starts from the source pose: frame 0 is the photo re-rendered
        standard = renderer.render(renderer.prepare(load_image(photo, (64, 64))), kp[:1], progress=False)
        assert (chunks[0][0] - standard[0]).abs().max() > 1e-4


def test_function_writes_the_frames(weights: Path, driving_clip: Path, tmp_path: Path) -> None:
    from skimage import data

    model = load_model(weights)
    out = animate(data.astronaut(), driving_clip, model, tmp_path / "out.mp4", batch_size=4, max_frames=6, progress=False)
    frames, fps = read_video(out)
    assert frames.shape == (6, 64, 64, 3) and fps == 25.0
    assert video_info(out).has_audio
    expected = torch.cat(list(iter_animation(data.astronaut(), driving_clip, model, max_frames=6, progress=False)))
    expected = (expected.permute(0, 2, 3, 1) * 255).numpy()
    other = np.roll(expected, 1, axis=0)  # the same frames in the wrong order must compare worse
    error = np.abs(frames - expected).mean()
    assert error < np.abs(frames - other).mean() or np.allclose(expected, other)


def test_silent_driving_video_gives_silent_output(weights: Path, tmp_path: Path, caplog) -> None:
    clip = (np.random.default_rng(1).random((5, 64, 64, 3)) * 255).astype(np.uint8)
    driving = write_video(tmp_path / "silent.mp4", [clip], fps=10)
    with caplog.at_level("WARNING", logger="tps.animate"):
        out = animate(clip[0], driving, load_model(weights), tmp_path / "out.mp4", progress=False)
    assert "has no audio stream" in caplog.text
    info = video_info(out)
    assert not info.has_audio and info.fps == 10.0
    assert len(read_video(out)[0]) == 5


def test_clear_errors(weights: Path, tmp_path: Path, capsys) -> None:
    model = load_model(weights)
    photo = np.zeros((64, 64, 3), np.uint8)
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    with pytest.raises(FileNotFoundError, match="driving_video: no such file: .*missing.mp4"):
        animate(photo, tmp_path / "missing.mp4", model, tmp_path / "o.mp4", progress=False)
    with pytest.raises(ValueError, match="driving_video: .*fake.mp4' is not a readable media file"):
        animate(photo, fake, model, tmp_path / "o.mp4", progress=False)
    silent = write_video(tmp_path / "silent.mp4", [np.zeros((2, 64, 64, 3), np.uint8)], fps=10)
    with pytest.raises(FileNotFoundError, match="source_image: no such file"):
        animate(tmp_path / "missing.png", silent, model, tmp_path / "o.mp4", progress=False)
    with pytest.raises(ValueError, match="source_image: .*fake.mp4' is not an image"):
        load_image(fake, (64, 64))
    with pytest.raises(ValueError, match="mode must be one of .*'sideways'"):
        animate(photo, fake, model, tmp_path / "o.mp4", mode="sideways", progress=False)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        animate(photo, fake, model, tmp_path / "o.mp4", batch_size=0, progress=False)
    with pytest.raises(ValueError, match=r"source_image array must be uint8 \[H, W, 3 or 4\], got float64"):
        load_image(np.zeros((8, 8, 3)), (64, 64))
    with pytest.raises(TypeError, match="model must be a tps.TPSMotionModel"):
        animate(photo, fake, object(), tmp_path / "o.mp4", progress=False)
    # the command turns these into one line on stderr and exit code 1
    assert main(["--source", str(fake), "--driving", str(fake), "--weights", str(tmp_path / "nothing"), "--out", str(tmp_path / "o.mp4")]) == 1
    assert "error: weights: no such model folder or checkpoint" in capsys.readouterr().err
    assert main(["--source", str(tmp_path / "missing.png"), "--driving", str(fake), "--weights", str(weights), "--out", str(tmp_path / "o.mp4")]) == 1
    assert "error: " in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists()


def test_python_m_tps_animate_dispatches(weights: Path, tmp_path: Path) -> None:
    clip = (np.random.default_rng(2).random((3, 64, 64, 3)) * 255).astype(np.uint8)
    driving = write_video(tmp_path / "d.mp4", [clip], fps=10)
    from PIL import Image

    Image.fromarray(clip[0]).save(tmp_path / "photo.png")
    result = subprocess.run(
        [sys.executable, "-m", "tps", "animate", "--source", str(tmp_path / "photo.png"), "--driving", str(driving),
         "--weights", str(weights), "--out", str(tmp_path / "o.mp4"), "--quiet", "--threads", "1"],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert len(read_video(tmp_path / "o.mp4")[0]) == 3


def test_given_keypoints_replace_the_detector(driving_clip: Path, shared_data: Path) -> None:
    """A renderer trained on given keypoints is driven by keypoints from outside (its detector
    never runs; without them the error names both arguments), and the frames are what
    Renderer.iter_render renders from those keypoints."""
    from tps.config import get_preset
    from tps.render import Renderer

    torch.manual_seed(0)
    model = TPSMotionModel.from_config(get_preset("tiny-64").replace(keypoint_source="given")).eval()
    source = shared_data / "talking" / "face_tpsmm_source.png"
    with pytest.raises(ValueError, match="source_keypoints and driving_keypoints are required"):
        iter_animation(source, driving_clip, model)
    gen = torch.Generator().manual_seed(1)
    kp_source = torch.rand(50, 2, generator=gen) * 1.6 - 0.8
    kp_driving = kp_source + 0.05 * torch.randn(30, 50, 2, generator=gen)
    with pytest.raises(ValueError, match="driving_keypoints is missing"):
        iter_animation(source, driving_clip, model, source_keypoints=kp_source)
    with pytest.raises(ValueError, match=r"driving_keypoints must be \[T, 50, 2\]"):
        iter_animation(source, driving_clip, model, source_keypoints=kp_source, driving_keypoints=kp_driving[:, :10])

    def no_detector(*args, **kwargs):
        raise AssertionError("the detector ran")
    model.detect = no_detector
    frames = torch.cat(list(iter_animation(source, driving_clip, model, max_frames=12, progress=False,
                                           source_keypoints=kp_source, driving_keypoints=kp_driving)))
    assert frames.shape == (12, 3, 64, 64)
    renderer = Renderer(model)
    prepared = renderer.prepare(load_image(source, (64, 64)), kp_source[None])
    expected = torch.cat(list(renderer.iter_render(prepared, kp_driving[:12], mode="relative", progress=False)))
    torch.testing.assert_close(frames, expected)
