"""Reading video frames and writing H.264 + AAC mp4 files, chunk by chunk.

Decoding and encoding go through the ffmpeg binary that ships with moviepy (its ``imageio-ffmpeg``
dependency); both are imported inside the functions, so ``import tps`` never loads them. Frames
stream through pipes, so memory stays bounded by one chunk however long the video is.

Frames read are ``uint8 [H, W, 3]`` RGB. ``write_video`` takes any iterable of frames or chunks:
``uint8`` numpy arrays ``[H, W, 3]`` / ``[N, H, W, 3]``, or float tensors/arrays in ``[0, 1]``
``[3, H, W]`` / ``[N, 3, H, W]`` (the renderer's output), so the animation command and the
difftted pipeline share it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Union

import numpy as np
import torch

__all__ = ["VideoInfo", "video_info", "iter_frames", "read_video", "write_video", "to_uint8_frames"]

logger = logging.getLogger(__name__)

PathLike = Union[str, Path]
AudioSource = Union[str, Path, tuple[np.ndarray, int], None]


@dataclass(frozen=True)
class VideoInfo:
    """What ffmpeg reports about a file. ``num_frames`` is ffmpeg's estimate from the header."""

    path: Path
    width: int
    height: int
    fps: float
    num_frames: int
    duration: float
    has_audio: bool
    audio_sample_rate: int | None


def _existing_file(path: PathLike, name: str) -> Path:
    if not isinstance(path, (str, Path)):
        raise TypeError(f"{name} must be a str or Path, got {type(path).__name__}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no such file: {str(path)!r}")
    return path


def _probe(path: Path, name: str) -> dict:
    from moviepy.video.io.ffmpeg_reader import ffmpeg_parse_infos

    try:
        return ffmpeg_parse_infos(str(path))
    except OSError as err:
        # moviepy puts ffmpeg's whole log in the message; its last line says what went wrong.
        lines = [ln for ln in str(err).splitlines() if ln.strip()]
        reason = lines[-1] if lines else "ffmpeg could not open it"
        raise ValueError(f"{name}: {str(path)!r} is not a readable media file ({reason})") from err


def video_info(path: PathLike, name: str = "path") -> VideoInfo:
    """Size, frame rate, frame count, duration and audio presence of a video file.

    ``name`` is the argument name that error messages give (callers pass their own).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ffmpeg cannot read it, or it holds no video stream.
    """
    path = _existing_file(path, name)
    info = _probe(path, name)
    if not info.get("video_found"):
        raise ValueError(f"{name}: {str(path)!r} has no video stream")
    width, height = info["video_size"]
    fps = float(info.get("video_fps") or 0.0)
    if not fps > 0:
        raise ValueError(f"{name}: {str(path)!r} reports no frame rate")
    return VideoInfo(
        path=path,
        width=int(width),
        height=int(height),
        fps=fps,
        num_frames=int(info.get("video_n_frames") or 0),
        duration=float(info.get("video_duration") or info.get("duration") or 0.0),
        has_audio=bool(info.get("audio_found")),
        audio_sample_rate=int(info["audio_fps"]) if info.get("audio_found") else None,
    )


def _parse_size(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    if (
        not isinstance(size, (tuple, list))
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
    ):
        raise ValueError(f"size must be a positive int or (height, width) of positive ints, got {size!r}")
    return int(size[0]), int(size[1])


@contextlib.contextmanager
def _quiet_imageio_ffmpeg() -> Iterator[None]:
    # imageio-ffmpeg warns whenever the output size differs from the source: resizing is the point.
    log = logging.getLogger("imageio_ffmpeg")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def iter_frames(
    path: PathLike, size: int | tuple[int, int] | None = None, max_frames: int | None = None
) -> Iterator[np.ndarray]:
    """Decode a video lazily, one ``uint8 [H, W, 3]`` RGB frame at a time.

    Args:
        path: a video file.
        size: ``(height, width)`` (or one int for a square) to resize every frame to, by ffmpeg's
            area filter when shrinking and bicubic when enlarging; None keeps the file's size.
        max_frames: stop after this many frames (None: all).
    """
    info = video_info(path)
    out_size = _parse_size(size)
    if max_frames is not None and (isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 1):
        raise ValueError(f"max_frames must be a positive int or None, got {max_frames!r}")
    return _decode(info, out_size, max_frames)


def _decode(info: VideoInfo, out_size: tuple[int, int] | None, max_frames: int | None) -> Iterator[np.ndarray]:
    import imageio_ffmpeg

    output_params: list[str] = []
    if out_size is not None and out_size != (info.height, info.width):
        h, w = out_size
        shrinking = h <= info.height and w <= info.width
        output_params += ["-vf", f"scale={w}:{h}:flags={'area' if shrinking else 'bicubic'}"]
    if max_frames is not None:
        output_params += ["-frames:v", str(max_frames)]
    with _quiet_imageio_ffmpeg():
        reader = imageio_ffmpeg.read_frames(str(info.path), output_params=output_params)
        meta = next(reader)
    width, height = meta["size"]
    try:
        for raw in reader:
            yield np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
    finally:
        reader.close()


def read_video(
    path: PathLike,
    size: int | tuple[int, int] | None = None,
    max_frames: int | None = None,
    stream: bool = False,
) -> tuple[np.ndarray | Iterator[np.ndarray], float]:
    """Frames and frame rate of a video.

    Returns:
        ``(frames, fps)``: frames as one ``uint8 [T, H, W, 3]`` RGB array, or with
        ``stream=True`` an iterator of ``uint8 [H, W, 3]`` frames (bounded memory).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: not a readable video, bad ``size``/``max_frames``, or no frame decoded.
    """
    info = video_info(path)
    frames = iter_frames(path, size=size, max_frames=max_frames)
    if stream:
        return frames, info.fps
    array = [frame.copy() for frame in frames]
    if not array:
        raise ValueError(f"path: no frame could be decoded from {str(info.path)!r}")
    return np.stack(array), info.fps


def to_uint8_frames(chunk: np.ndarray | torch.Tensor) -> np.ndarray:
    """One frame or a chunk of frames as ``uint8 [N, H, W, 3]``.

    Accepts ``uint8 [H, W, 3]`` / ``[N, H, W, 3]`` (HWC), or floating point ``[3, H, W]`` /
    ``[N, 3, H, W]`` (CHW) in ``[0, 1]`` (values outside are clipped), numpy or torch.
    """
    if isinstance(chunk, torch.Tensor):
        if chunk.is_floating_point():
            chunk = chunk.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
            chunk = chunk.movedim(-3, -1)
        chunk = chunk.cpu().numpy()
    elif isinstance(chunk, np.ndarray) and np.issubdtype(chunk.dtype, np.floating):
        chunk = np.moveaxis(np.round(np.clip(chunk, 0.0, 1.0) * 255.0).astype(np.uint8), -3, -1)
    if not isinstance(chunk, np.ndarray) or chunk.dtype != np.uint8:
        got = chunk.dtype if isinstance(chunk, (np.ndarray, torch.Tensor)) else type(chunk).__name__
        raise TypeError(f"frames must be uint8 HWC or float CHW arrays/tensors, got {got}")
    if chunk.ndim == 3:
        chunk = chunk[None]
    if chunk.ndim != 4 or chunk.shape[-1] != 3:
        raise ValueError(f"frames must be [H, W, 3] / [N, H, W, 3] (uint8) or [3, H, W] / [N, 3, H, W] (float), got {chunk.shape}")
    return np.ascontiguousarray(chunk)


def _pad_even(frames: np.ndarray) -> np.ndarray:
    # yuv420p stores chroma at half resolution: H.264 needs even sides. Repeat the last row/column.
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frames


def _audio_file(audio: AudioSource, workdir: Path) -> Path | None:
    """The file ffmpeg should take the audio from (a temporary wav for a waveform)."""
    if audio is None:
        return None
    if isinstance(audio, (str, Path)):
        path = _existing_file(audio, "audio")
        if not _probe(path, "audio").get("audio_found"):
            raise ValueError(f"audio: {str(path)!r} has no audio stream")
        return path
    if isinstance(audio, tuple) and len(audio) == 2:
        waveform, sample_rate = audio
        waveform = np.asarray(waveform.detach().cpu() if isinstance(waveform, torch.Tensor) else waveform)
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise ValueError(f"audio sample rate must be a positive int, got {sample_rate!r}")
        if waveform.ndim not in (1, 2) or waveform.size == 0 or not np.issubdtype(waveform.dtype, np.number):
            raise ValueError(
                f"audio waveform must be a non-empty numeric [S] or [S, channels] array, got {waveform.dtype} {waveform.shape}"
            )
        from scipy.io import wavfile

        path = workdir / "audio.wav"
        wavfile.write(path, int(sample_rate), np.ascontiguousarray(waveform, dtype=np.float32))
        return path
    raise TypeError(f"audio must be a path, a (waveform, sample_rate) tuple or None, got {type(audio).__name__}")


def write_video(
    path: PathLike,
    frames: Iterable[np.ndarray | torch.Tensor],
    fps: float,
    audio: AudioSource = None,
    crf: int = 18,
) -> Path:
    """Encode frames to an H.264 (libx264, yuv420p) mp4, with AAC audio when given.

    Frames are encoded as they arrive, so ``frames`` may be a generator of chunks of any length
    (see ``to_uint8_frames`` for the accepted layouts); odd frame sides are padded by one edge
    row/column, because yuv420p needs even sides.

    Args:
        path: output file (``.mp4``); its folder is created.
        frames: iterable of frames or chunks of frames, all of one size.
        fps: frames per second, > 0.
        audio: None (silent), a media file whose first audio stream is used (e.g. the driving
            video), or ``(waveform [S] or [S, C], sample_rate)``. Audio longer than the video is
            cut; shorter audio is padded with silence, so the video keeps every frame.
        crf: libx264 quality, 0 (lossless) .. 51 (worst); 18 is visually lossless.

    Returns:
        the output path.
    """
    if not isinstance(path, (str, Path)):
        raise TypeError(f"path must be a str or Path, got {type(path).__name__}")
    if isinstance(fps, bool) or not isinstance(fps, (int, float, Fraction)) or not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if isinstance(crf, bool) or not isinstance(crf, int) or not 0 <= crf <= 51:
        raise ValueError(f"crf must be an int in [0, 51], got {crf!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tps_video_", dir=path.parent) as tmp:
        audio_path = _audio_file(audio, Path(tmp))
        silent = Path(tmp) / "video.mp4"
        count = _encode(silent, frames, fps, crf)
        if count == 0:
            raise ValueError("frames: the iterable yielded no frame")
        if audio_path is None:
            silent.replace(path)
        else:
            _mux(silent, audio_path, path, count / float(fps))
    logger.info("wrote %d frames at %.3f fps to %s", count, float(fps), path)
    return path


def _mux(video: Path, audio: Path, out: Path, duration: float) -> None:
    """Copy ``video``'s stream and add ``audio``'s first audio stream as AAC, exactly ``duration`` long.

    A second pass rather than ffmpeg's ``-shortest`` while encoding: ``-shortest`` overshoots
    by up to half a second when the frames arrive through a pipe. ``apad`` pads short audio.
    """
    import imageio_ffmpeg

    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(video), "-i", str(audio),
        "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-b:a", "192k",
        "-af", "apad", "-t", f"{duration:.6f}", "-movflags", "+faststart", str(out),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg could not add the audio of {str(audio)!r}: {result.stderr.strip()[-800:]}")


def _encode(path: Path, frames: Iterable, fps: float, crf: int) -> int:
    """Encode the frames (no audio) to ``path``; returns how many were written."""
    import imageio_ffmpeg

    output_params = ["-crf", str(crf), "-preset", "medium", "-movflags", "+faststart"]
    writer = None
    size: tuple[int, int] | None = None
    count = 0
    try:
        for index, chunk in enumerate(frames):
            chunk = to_uint8_frames(chunk)
            if size is None:
                size = chunk.shape[1:3]
                writer = imageio_ffmpeg.write_frames(
                    str(path),
                    (size[1] + size[1] % 2, size[0] + size[0] % 2),
                    fps=Fraction(fps).limit_denominator(100000),
                    codec="libx264",
                    pix_fmt_out="yuv420p",
                    quality=None,
                    macro_block_size=1,
                    ffmpeg_log_level="error",
                    output_params=output_params,
                )
                writer.send(None)  # start ffmpeg
            elif chunk.shape[1:3] != size:
                raise ValueError(f"frames: chunk {index} has frame size {chunk.shape[1:3]}, the first had {size}")
            for frame in _pad_even(chunk):
                writer.send(frame)
            count += len(chunk)
    finally:
        if writer is not None:
            writer.close()
    return count
