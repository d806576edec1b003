"""Speech as the product takes it in: loaded at its own rate, checked before any heavy work.

``load_speech`` refuses empty or silent speech with a ValueError naming the input; the resulting
`Speech` keeps the file it came from, so the output video carries that audio untouched until
AAC encoding (`difftted.pipeline.output`). Features for the denoiser are `difftted.audio.features`.
"""

from __future__ import annotations

import logging
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


def load_speech(audio: AudioInput | Speech, name: str = "audio", max_seconds: float | None = None) -> Speech:
    """A speech path (any format ffmpeg reads, video files too) or ``(waveform, sample_rate)``.

    A file's length is read from its header first (`difftted.limits.audio_duration`): one
    longer than ``max_seconds`` is refused before it is decoded, and one that decodes shorter
    than its header says (a truncated download) is used with a warning giving both lengths.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: not decodable as audio, empty (shorter than one frame), silent, or longer
            than ``max_seconds``.
        TypeError: neither a path nor a ``(waveform, sample_rate)`` tuple.
    """
    from difftted import limits
    from difftted.audio.features import load_audio

    if isinstance(audio, Speech):
        return audio
    path = None
    if isinstance(audio, (str, Path)):
        path = Path(audio)
        if not path.exists():
            raise FileNotFoundError(f"{name} file {str(path)!r} does not exist")
        if not path.is_file():
            raise ValueError(f"{name} {str(path)!r} is not a file")
        header_seconds = limits.audio_duration(path)
        limits.check_audio_duration(header_seconds, max_seconds, f"{name} {str(path)!r}")
        try:
            waveform, sample_rate = load_audio(path, sample_rate=None)
        except ValueError as err:
            raise ValueError(f"{name} {str(path)!r} is not readable audio: {err}") from err
        limits.warn_if_cut_short(header_seconds, len(waveform) / sample_rate, f"{name} {str(path)!r}")
        limits.check_audio_duration(len(waveform) / sample_rate, max_seconds, f"{name} {str(path)!r}")
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
