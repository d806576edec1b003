"""Audio loading and per-video-frame speech features.

``load_audio`` turns wav / flac / ogg / mp3 files and the sound track of videos (mp4, mov, webm,
...) into a mono float32 waveform at the requested rate. ``AudioFeatureExtractor`` turns a
waveform into exactly one feature row per video frame at any frame rate:

=========================  =======================  ==============================================
columns                    name                     what
=========================  =======================  ==============================================
``0 .. n_mels-1``          log-mel                  log mel power spectrum (dB), mean over the frame
``n_mels``                 onset strength           spectral flux of the log-mel (dB), max over frame
``n_mels+1``               log energy               log RMS of the waveform, mean over the frame
``n_mels+2 .. 2*n_mels+3`` deltas (``deltas=True``)  first difference over video frames of the above
=========================  =======================  ==============================================

so ``feature_dim = (n_mels + 2) * (2 if deltas else 1)``; 66 with the defaults.

Alignment: short-time features are computed at a fine hop (10 ms by default) and every fine frame
is assigned to the video frame whose interval ``[i/fps, (i+1)/fps)`` holds its centre. Frame
``i`` is therefore summarised from the audio it covers, whatever the rate (25, 29.97, 22.13...).

Loudness: with ``normalize=True`` (the default) every column is standardised over the utterance
(zero mean, unit std, std floored), which removes gain: a gain ``g`` shifts log-mel and log-energy
by a constant and leaves the flux unchanged (exactly so above the -100 dB floor, i.e. for any
recording with a noise floor). DC offset is removed before analysis, silence maps to
a finite floor (no NaN or inf), and clipping is just loud audio.

Memory: the waveform is analysed in blocks (``block_seconds``, 30 s by default) that overlap by
half an FFT window, and per-frame results are accumulated into the ``[T, D]`` output, so no
full-length spectrogram is ever allocated. Blocked and whole-file analysis give the same numbers.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import subprocess
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: Containers read through ffmpeg directly (videos, and AAC audio that libsndfile cannot decode).
FFMPEG_SUFFIXES = frozenset({".mp4", ".mov", ".webm", ".mkv", ".avi", ".m4v", ".m4a", ".aac"})
_AMIN = 1e-10  # floor of the mel power before the log: silence -> -100 dB, never -inf
_RMS_FLOOR = 1e-5  # floor of the RMS before the log (-100 dB)


# ---------------------------------------------------------------------------------- loading
def load_audio(path: str | Path, sample_rate: int | None = 16000) -> tuple[np.ndarray, int]:
    """Read ``path`` as mono float32 at ``sample_rate`` (``None`` keeps the file's rate).

    Audio files go through soundfile (wav, flac, ogg, mp3 with libsndfile >= 1.1); video files and
    whatever soundfile cannot decode go through the ffmpeg binary that imageio-ffmpeg ships
    (moviepy's own reader resamples wrongly when asked for another rate, so it is not used).
    Channels are averaged. Returns ``(waveform [S], sr)`` with values nominally in ``[-1, 1]``.

    Raises ``ValueError`` naming the path when it is missing, undecodable, has no audio stream,
    holds no samples, or decodes to NaN/inf.
    """
    path = Path(path)
    if sample_rate is not None and (not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0):
        raise ValueError(f"sample_rate must be a positive int or None, got {sample_rate!r}")
    sample_rate = None if sample_rate is None else int(sample_rate)
    if not path.is_file():
        raise ValueError(f"audio file {str(path)!r} does not exist")
    if path.stat().st_size == 0:
        raise ValueError(f"audio file {str(path)!r} is empty (0 bytes)")

    if path.suffix.lower() in FFMPEG_SUFFIXES:
        waveform, sr = _read_ffmpeg(path, sample_rate)
    else:
        try:
            waveform, sr = _read_soundfile(path)
        except (RuntimeError, ValueError, OSError) as sf_err:  # soundfile.LibsndfileError is a RuntimeError
            logger.debug("soundfile could not read %s (%s); trying ffmpeg", path, sf_err)
            try:
                waveform, sr = _read_ffmpeg(path, sample_rate)
            except ValueError as ff_err:
                raise ValueError(f"cannot decode audio file {str(path)!r}: soundfile: {sf_err}; {ff_err}") from ff_err

    if waveform.size == 0:
        raise ValueError(f"audio file {str(path)!r} holds no samples")
    if not np.isfinite(waveform).all():
        raise ValueError(f"audio file {str(path)!r} decodes to NaN or inf samples")
    if sample_rate is not None and sr != sample_rate:
        waveform = resample(waveform, sr, sample_rate)
        sr = sample_rate
    return np.ascontiguousarray(waveform, dtype=np.float32), int(sr)


def _read_soundfile(path: Path) -> tuple[np.ndarray, int]:
    import soundfile

    data, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
    return data.mean(axis=1, dtype=np.float32), int(sr)


def _read_ffmpeg(path: Path, sample_rate: int | None) -> tuple[np.ndarray, int]:
    """Decode the first audio stream of ``path`` to mono float32 with ffmpeg."""
    import imageio_ffmpeg

    sr = sample_rate if sample_rate is not None else _ffmpeg_native_rate(path)
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path),
           "-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(sr), "-f", "f32le", "-acodec", "pcm_f32le", "-"]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    err = proc.stderr.decode("utf-8", "replace").strip()
    if proc.returncode != 0:
        if "matches no streams" in err or "does not contain any stream" in err:
            raise ValueError(f"file {str(path)!r} has no audio stream")
        raise ValueError(f"ffmpeg cannot decode {str(path)!r}: {err.splitlines()[-1] if err else proc.returncode}")
    return np.frombuffer(proc.stdout, dtype="<f4").copy(), sr


def _ffmpeg_native_rate(path: Path) -> int:
    import imageio_ffmpeg

    proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-i", str(path)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    for line in proc.stderr.decode("utf-8", "replace").splitlines():
        if "Audio:" in line and " Hz" in line:
            for part in line.split(","):
                if part.strip().endswith(" Hz"):
                    return int(part.strip().split()[0])
    raise ValueError(f"file {str(path)!r} has no audio stream")


def resample(waveform: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Band-limited resampling (soxr through librosa) of a mono waveform ``[S]``."""
    import librosa

    if orig_sr <= 0 or target_sr <= 0:
        raise ValueError(f"sample rates must be positive, got orig_sr={orig_sr}, target_sr={target_sr}")
    if orig_sr == target_sr:
        return waveform
    return librosa.resample(np.asarray(waveform, dtype=np.float32), orig_sr=orig_sr, target_sr=target_sr)


# --------------------------------------------------------------------------------- features
@dataclass(frozen=True)
class AudioFeatureConfig:
    """Settings of :class:`AudioFeatureExtractor`; the extractor's output layout follows from them."""

    sample_rate: int = 16000  # Hz the analysis runs at; other rates are resampled first
    n_fft: int = 512  # FFT window in samples (32 ms at 16 kHz)
    hop_length: int = 160  # fine hop in samples (10 ms at 16 kHz)
    n_mels: int = 64
    fmin: float = 50.0  # Hz; excludes DC and mains hum
    fmax: float | None = None  # Hz; None = sample_rate / 2
    deltas: bool = False  # append first differences over video frames
    normalize: bool = True  # per-utterance standardisation of every column
    block_seconds: float = 30.0  # analysis block length (memory bound), not a feature setting

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_fft", "hop_length", "n_mels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"AudioFeatureConfig.{name} must be a positive int, got {value!r}")
        if self.hop_length > self.n_fft:
            raise ValueError(f"hop_length ({self.hop_length}) must not exceed n_fft ({self.n_fft})")
        nyquist = self.sample_rate / 2
        fmax = nyquist if self.fmax is None else self.fmax
        if not 0 <= self.fmin < fmax <= nyquist:
            raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2, got fmin={self.fmin}, fmax={self.fmax}")
        if self.block_seconds * self.sample_rate < 4 * self.n_fft:
            raise ValueError(f"block_seconds must cover at least 4 FFT windows, got {self.block_seconds}")

    @property
    def feature_dim(self) -> int:
        """``D``: columns of the extractor's output (see the module docstring)."""
        return (self.n_mels + 2) * (2 if self.deltas else 1)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "AudioFeatureConfig":
        """Strict: unknown keys raise ``ValueError`` naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown AudioFeatureConfig keys: {unknown}")
        return cls(**data)


class AudioFeatureExtractor:
    """``extractor(waveform, sample_rate, fps, num_frames=None) -> [T, D]`` float32 features."""

    def __init__(self, config: AudioFeatureConfig | None = None) -> None:
        self.config = config if config is not None else AudioFeatureConfig()
        if not isinstance(self.config, AudioFeatureConfig):
            raise TypeError(f"config must be an AudioFeatureConfig, got {type(self.config).__name__}")

    @property
    def feature_dim(self) -> int:
        return self.config.feature_dim

    @cached_property
    def _mel_basis(self) -> np.ndarray:
        import librosa

        c = self.config
        return librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax)

    @cached_property
    def _window(self) -> np.ndarray:
        n = self.config.n_fft
        return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)).astype(np.float32)  # periodic Hann

    def __call__(self, waveform: np.ndarray, sample_rate: int, fps: float,
                 num_frames: int | None = None) -> np.ndarray:
        """Features of ``waveform`` ``[S]`` (or ``[S, C]``, averaged) for video at ``fps``.

        ``T = num_frames`` when given (audio shorter than that is treated as silence past its
        end), else ``round(S / sample_rate * fps)``. Returns ``[T, feature_dim]`` float32.
        """
        c = self.config
        waveform = self._check_waveform(waveform)
        if not isinstance(fps, numbers.Real) or isinstance(fps, bool) or not math.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        if not isinstance(sample_rate, numbers.Real) or sample_rate <= 0 or int(sample_rate) != sample_rate:
            raise ValueError(f"sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
        if sample_rate != c.sample_rate:
            waveform = resample(waveform, int(sample_rate), c.sample_rate)
        if num_frames is None:
            num_frames = int(round(waveform.shape[0] / c.sample_rate * fps))
        if not isinstance(num_frames, (int, np.integer)) or num_frames <= 0:
            raise ValueError(f"num_frames must be a positive int (audio of {waveform.shape[0]} samples "
                             f"at {fps} fps gives {num_frames} frames)")
        features = self._frame_features(waveform, float(fps), int(num_frames))
        if c.deltas:
            delta = np.diff(features, axis=0, prepend=features[:1])
            features = np.concatenate([features, delta], axis=1)
        if c.normalize:
            features = (features - features.mean(axis=0)) / np.maximum(features.std(axis=0), 1e-3)
        assert features.shape == (num_frames, c.feature_dim) and np.isfinite(features).all()
        return features.astype(np.float32)

    @staticmethod
    def _check_waveform(waveform: np.ndarray) -> np.ndarray:
        waveform = np.asarray(waveform)
        if waveform.ndim == 2:
            waveform = waveform.mean(axis=1)
        if waveform.ndim != 1 or waveform.shape[0] == 0:
            raise ValueError(f"waveform must have shape [S>0] or [S>0, C], got {waveform.shape}")
        if np.issubdtype(waveform.dtype, np.integer):
            waveform = waveform.astype(np.float32) / float(np.iinfo(waveform.dtype).max)
        if not np.isfinite(waveform).all():
            raise ValueError("waveform holds NaN or inf samples")
        return waveform.astype(np.float32, copy=False)

    def _frame_features(self, waveform: np.ndarray, fps: float, num_frames: int) -> np.ndarray:
        """Fine-hop features, block by block, pooled into ``[num_frames, n_mels + 2]``."""
        c = self.config
        hop_s = c.hop_length / c.sample_rate
        # fine frame j is centred at j*hop; keep every one whose centre lies before the last frame's end
        num_fine = int(math.ceil(num_frames / fps / hop_s))
        block = max(2, int(c.block_seconds / hop_s))
        dc = float(waveform.mean(dtype=np.float64))
        dim = c.n_mels + 2
        sums = np.zeros((num_frames, dim), dtype=np.float64)
        counts = np.zeros(num_frames, dtype=np.int64)
        onset_max = np.full(num_frames, -np.inf)
        for j0 in range(0, num_fine, block):
            j1 = min(num_fine, j0 + block)
            logmel, log_rms, flux = self._fine_block(waveform, dc, j0, j1)
            idx = np.minimum((np.arange(j0, j1) * hop_s * fps).astype(np.int64), num_frames - 1)
            np.add.at(sums, idx, np.concatenate([logmel, flux[:, None], log_rms[:, None]], axis=1))
            np.add.at(counts, idx, 1)
            np.maximum.at(onset_max, idx, flux)
        if (counts == 0).any():
            # fps above the fine frame rate: some frames hold no fine centre; fill from neighbours
            filled = np.flatnonzero(counts)
            means = sums[filled] / counts[filled, None]
            out = np.stack([np.interp(np.flatnonzero(counts == 0), filled, means[:, k]) for k in range(dim)], 1)
            sums[counts == 0], counts[counts == 0] = out, 1
            onset_max[np.isinf(onset_max)] = out[:, c.n_mels]
        features = sums / counts[:, None]
        features[:, c.n_mels] = onset_max  # onsets are peaks: keep the frame's strongest
        return features

    def _fine_block(self, waveform: np.ndarray, dc: float, j0: int, j1: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Log-mel ``[j1-j0, n_mels]``, log RMS and flux ``[j1-j0]`` of fine frames ``j0..j1-1``.

        Frame ``j`` uses samples ``[j*hop - n_fft/2, j*hop + n_fft/2)``, zero outside the signal, so
        a block needs only its own samples plus half a window each side (and one frame more
        before it for the flux), which makes blocked and whole-file analysis identical.
        """
        c = self.config
        half = c.n_fft // 2
        first = j0 - 1  # one extra frame for the flux's difference
        start, stop = first * c.hop_length - half, (j1 - 1) * c.hop_length + half
        seg = np.zeros(stop - start, dtype=np.float32)
        lo, hi = max(start, 0), min(stop, waveform.shape[0])
        if hi > lo:
            seg[lo - start:hi - start] = waveform[lo:hi] - dc
            # the zero padding beyond the signal must stay silent, not carry -dc
        frames = np.lib.stride_tricks.sliding_window_view(seg, c.n_fft)[::c.hop_length]
        assert frames.shape[0] == j1 - first
        power = np.abs(np.fft.rfft(frames * self._window, axis=1)) ** 2
        mel = power @ self._mel_basis.T
        logmel = 10.0 * np.log10(np.maximum(mel, _AMIN))
        flux = np.maximum(np.diff(logmel, axis=0), 0.0).mean(axis=1)
        rms = np.sqrt(np.mean(np.square(frames[1:], dtype=np.float64), axis=1))
        log_rms = 20.0 * np.log10(np.maximum(rms, _RMS_FLOOR))
        if j0 == 0:
            flux[0] = 0.0  # no frame before the first: no flux
        return logmel[1:], log_rms, flux
