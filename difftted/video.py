"""The product's video output: the speech as it came in, and an mp4 that carries it.

Encoding the frames is `tps.video.write_video` (H.264 through imageio-ffmpeg, chunk by chunk).
This module adds what a talking video needs around it: loading and checking the speech (empty
or silent speech is refused before any heavy work), checking the output path before rendering,
the frame count that matches the audio, the speech track muxed in at exactly the video's length,
and a check that the result lasts as long as the speech within one frame.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch

logger = logging.getLogger(__name__)

#: Peak amplitude (full scale 1.0) below which speech counts as silent: -80 dBFS, under the
#: noise floor of any real recording (16-bit dither alone is about -96 dBFS).
SILENCE_PEAK = 1e-4
#: Speech shorter than this is refused as empty: not even one frame at 25 fps.
MIN_DURATION_S = 0.04

AudioInput = Union[str, Path, tuple[np.ndarray, int]]


@dataclass(frozen=True)
class Speech:
    """The speech at its own rate: ``waveform float32 [S]`` mono, ``sample_rate`` Hz, and the file
    it came from (the video takes its audio from that file, untouched until AAC encoding)."""

    waveform: np.ndarray
    sample_rate: int
    path: Path | None = None

    @property
    def duration(self) -> float:
        """Seconds."""
        return self.waveform.shape[0] / self.sample_rate

    def num_frames(self, fps: float) -> int:
        """Frames of a video at ``fps`` lasting as long as the speech (within half a frame)."""
        return max(1, int(round(self.duration * fps)))

    @property
    def source(self) -> Path | tuple[np.ndarray, int]:
        """What `tps.video.write_video` takes as ``audio``."""
        return self.path if self.path is not None else (self.waveform, self.sample_rate)


def load_speech(audio: AudioInput | Speech, name: str = "audio") -> Speech:
    """A speech path (any format ffmpeg reads, video files too) or ``(waveform, sample_rate)``.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: not decodable as audio, empty (shorter than one frame), or silent.
        TypeError: neither a path nor a ``(waveform, sample_rate)`` tuple.
    """
    from difftted.audio import load_audio

    if isinstance(audio, Speech):
        return audio
    path = None
    if isinstance(audio, (str, Path)):
        path = Path(audio)
        if not path.exists():
            raise FileNotFoundError(f"{name} file {str(path)!r} does not exist")
        if not path.is_file():
            raise ValueError(f"{name} {str(path)!r} is not a file")
        try:
            waveform, sample_rate = load_audio(path, sample_rate=None)
        except ValueError as err:
            raise ValueError(f"{name} {str(path)!r} is not readable audio: {err}") from err
    elif isinstance(audio, tuple) and len(audio) == 2:
        waveform, sample_rate = audio
        if isinstance(waveform, torch.Tensor):
            waveform = waveform.detach().cpu().numpy()
        waveform = np.asarray(waveform, dtype=np.float32)
        if waveform.ndim == 2:  # [S, C] -> mono
            waveform = waveform.mean(axis=1)
        if waveform.ndim != 1:
            raise ValueError(f"{name} waveform must be [S] or [S, C], got shape {waveform.shape}")
        if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
            raise ValueError(f"{name} sample rate must be a positive int, got {sample_rate!r}")
    else:
        raise TypeError(f"{name} must be a path or a (waveform, sample_rate) tuple, got {type(audio).__name__}")
    speech = Speech(np.ascontiguousarray(waveform, dtype=np.float32), int(sample_rate), path)
    _check_speech(speech, name if path is None else f"{name} {str(path)!r}")
    return speech


def _check_speech(speech: Speech, what: str) -> None:
    if speech.duration < MIN_DURATION_S:
        raise ValueError(f"{what} is empty: {speech.duration:.3f} s of audio, need at least {MIN_DURATION_S} s")
    if not np.isfinite(speech.waveform).all():
        raise ValueError(f"{what} holds NaN or inf samples")
    peak = float(np.abs(speech.waveform).max())
    if peak < SILENCE_PEAK:
        raise ValueError(f"{what} is silent (peak amplitude {peak:.1e}, below {SILENCE_PEAK:.0e}): "
                         "there is no speech to animate")


def check_output_path(path: str | Path, name: str = "output_path") -> Path:
    """Refuse, before any rendering, an output path that cannot receive an mp4."""
    if not isinstance(path, (str, Path)):
        raise TypeError(f"{name} must be a str or Path, got {type(path).__name__}")
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"{name} must end in .mp4, got {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"{name} {str(path)!r} is a folder, expected a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"{name} {str(path)!r} exists and is not writable")
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"{name} {str(path)!r} cannot be created: {str(ancestor)!r} is a file, not a folder")
    try:  # os.access says yes to root on a read-only file system; a real file says the truth
        with tempfile.NamedTemporaryFile(dir=ancestor, prefix=".difftted_write_test_"):
            pass
    except OSError as err:
        raise PermissionError(f"{name} {str(path)!r} is not writable: cannot create files in "
                              f"{str(ancestor)!r} ({err.strerror})") from err
    return path


def write_talking_video(path: str | Path, frames: Iterable[np.ndarray | torch.Tensor], fps: float,
                        speech: Speech, background: bool = True) -> Path:
    """Encode ``frames`` (chunks of ``uint8 [b, H, W, 3]``) to an H.264 + AAC mp4 carrying the speech,
    and check it lasts as long as the speech within one frame.

    With ``background`` (default) the encoder runs in a worker thread fed through a queue of two
    chunks (`difftted.writer_thread`), so producing the next chunk (rendering, pasting) overlaps
    with encoding this one; the file is the same as with ``background=False``.

    The frames stream through `tps.video.write_video` into a silent temporary mp4; one ffmpeg pass
    then copies that video stream and encodes the original audio beside it, cut (or padded with
    silence) to exactly the video's length. Muxing the audio after the frames are known avoids
    ffmpeg's `apad` + `-shortest`, which overshoots by up to a few hundred ms of padding when the
    encoder's lookahead holds video packets back (measured: 1.46 s of video for 1.20 s of speech).
    """
    from tps.video import video_info, write_video

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = [0]

    def counted() -> Iterable[np.ndarray | torch.Tensor]:
        for chunk in frames:
            count[0] += 1 if chunk.ndim == 3 else len(chunk)
            yield chunk

    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".difftted_") as tmp:
        def encode(chunks: Iterable[np.ndarray | torch.Tensor]) -> Path:
            return write_video(Path(tmp) / "video.mp4", chunks, fps, audio=None)

        if background:
            from difftted.writer_thread import run_in_background

            silent = run_in_background(encode, counted())
        else:
            silent = encode(counted())
        audio = speech.path
        if audio is None:
            import soundfile

            audio = Path(tmp) / "speech.wav"
            soundfile.write(str(audio), speech.waveform, speech.sample_rate, subtype="FLOAT")
        _mux(silent, audio, path, count[0] / fps)
    info = video_info(path)
    if not info.has_audio:
        raise RuntimeError(f"the video {str(path)!r} was written without its audio stream")
    if abs(info.duration - speech.duration) > 1.0 / fps + 1e-3:
        raise RuntimeError(f"the video {str(path)!r} lasts {info.duration:.3f} s, the speech "
                           f"{speech.duration:.3f} s: more than one frame (1/{fps:g} s) apart")
    return path


def _mux(video: Path, audio: Path, out: Path, seconds: float) -> None:
    """``out`` = the video stream of ``video`` (copied) + the first audio stream of ``audio`` as
    AAC, both exactly ``seconds`` long."""
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(video), "-i", str(audio),
           "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-b:a", "192k", "-af", "apad",
           "-t", f"{seconds:.6f}", "-movflags", "+faststart", str(out)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg could not add the audio to {str(out)!r}: "
                           f"{proc.stderr.decode('utf-8', 'replace').strip()}")


def stream_codecs(path: str | Path) -> dict[str, str]:
    """``{"video": "h264", "audio": "aac"}``: the codec of the first stream of each kind, as
    ffmpeg names them (absent kinds are left out)."""
    import imageio_ffmpeg

    proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(path)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    codecs: dict[str, str] = {}
    for line in proc.stderr.decode("utf-8", "replace").splitlines():
        line = line.strip()
        for kind in ("Video", "Audio"):
            marker = f": {kind}: "
            if line.startswith("Stream #") and marker in line and kind.lower() not in codecs:
                codecs[kind.lower()] = line.split(marker, 1)[1].split()[0].rstrip(",")
    return codecs
