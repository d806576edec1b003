"""Keypoint normalisation: one mean and std per keypoint coordinate, as DiffTED does.

The denoiser works in normalised units, ``(kp - mean) / std``, where ``kp`` are TPS keypoints
``(x, y)`` in ``[-1, 1]`` (see docs/ARCHITECTURE.md) and ``mean``/``std`` have shape ``[N, 2]``
(``N = K*5 = 50``). Arrays and tensors of shape ``[..., N, 2]`` or flat ``[..., N*2]`` are both
accepted; the flat layout is ``(x0, y0, x1, y1, ...)``, i.e. ``kp.reshape(..., N*2)``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence, TypeVar

import numpy as np
import torch

logger = logging.getLogger(__name__)

ArrayOrTensor = TypeVar("ArrayOrTensor", np.ndarray, torch.Tensor)

#: A coordinate that never moves in the data would get std 0; dividing by it would blow up,
#: so the std is floored at this value (in keypoint units, i.e. 1/2000 of the image width).
MIN_STD = 1e-3
_FORMAT = "difftted.keypoint_stats.v1"


def _checked_sequences(sequences: Sequence[np.ndarray]) -> Iterator[np.ndarray]:
    """Each of ``sequences`` as float64 ``[T_i > 0, N, 2]``, checked (same ``N``, finite), one by one."""
    if len(sequences) == 0:
        raise ValueError("sequences must hold at least one [T, N, 2] array, got none")
    first = None
    for i, seq in enumerate(sequences):
        arr = np.asarray(seq, dtype=np.float64)
        if arr.ndim != 3 or arr.shape[2] != 2 or arr.shape[0] == 0:
            raise ValueError(f"sequences[{i}] must have shape [T>0, N, 2], got {arr.shape}")
        if first is None:
            first = arr.shape[1]
        elif arr.shape[1] != first:
            raise ValueError(f"sequences[{i}] has {arr.shape[1]} keypoints, sequences[0] has {first}")
        if not np.isfinite(arr).all():
            raise ValueError(f"sequences[{i}] holds NaN or inf")
        yield arr


@dataclass(frozen=True, eq=False)
class KeypointStats:
    """Per-coordinate statistics of keypoints: ``mean`` and ``std`` of shape ``[N, 2]``."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        if mean.ndim != 2 or mean.shape[1] != 2:
            raise ValueError(f"mean must have shape [N, 2], got {mean.shape}")
        if std.shape != mean.shape:
            raise ValueError(f"std must have the shape of mean {mean.shape}, got {std.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise ValueError("mean and std must be finite")
        if (std <= 0).any():
            raise ValueError(f"std must be positive, got minimum {float(std.min())}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    @property
    def num_keypoints(self) -> int:
        """``N``, the number of keypoints per frame."""
        return int(self.mean.shape[0])

    # ----------------------------------------------------------------------------- transforms
    def _broadcastable(self, x: ArrayOrTensor) -> tuple[ArrayOrTensor, ArrayOrTensor]:
        n = self.num_keypoints
        shape = tuple(x.shape)
        if len(shape) >= 2 and shape[-2:] == (n, 2):
            mean, std = self.mean, self.std
        elif len(shape) >= 1 and shape[-1] == 2 * n:
            mean, std = self.mean.reshape(-1), self.std.reshape(-1)
        else:
            raise ValueError(f"keypoints must have shape [..., {n}, 2] or [..., {2 * n}], got {shape}")
        if isinstance(x, torch.Tensor):
            return (torch.as_tensor(mean, dtype=x.dtype, device=x.device),
                    torch.as_tensor(std, dtype=x.dtype, device=x.device))
        if isinstance(x, np.ndarray):
            dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float32
            return mean.astype(dtype), std.astype(dtype)
        raise TypeError(f"keypoints must be a numpy array or a torch tensor, got {type(x).__name__}")

    def normalize(self, keypoints: ArrayOrTensor) -> ArrayOrTensor:
        """``(keypoints - mean) / std`` for ``[..., N, 2]`` or ``[..., N*2]`` input."""
        mean, std = self._broadcastable(keypoints)
        return (keypoints - mean) / std

    def denormalize(self, normalized: ArrayOrTensor) -> ArrayOrTensor:
        """Inverse of :meth:`normalize`: ``normalized * std + mean``."""
        mean, std = self._broadcastable(normalized)
        return normalized * std + mean

    # ------------------------------------------------------------------------------ builders
    @classmethod
    def from_sequences(cls, sequences: Sequence[np.ndarray], min_std: float = MIN_STD) -> "KeypointStats":
        """Statistics over every frame of ``sequences`` (each ``[T_i, N, 2]``).

        Computed in float64 with a running sum so a large dataset needs no concatenated copy.
        """
        total, s1, s2 = 0, 0.0, 0.0
        for arr in _checked_sequences(sequences):
            s1 = s1 + arr.sum(axis=0)
            s2 = s2 + np.square(arr).sum(axis=0)
            total += arr.shape[0]
        mean = s1 / total
        var = np.maximum(s2 / total - np.square(mean), 0.0)
        return cls(mean=mean, std=np.maximum(np.sqrt(var), min_std))

    @classmethod
    def offsets_from_sequences(cls, sequences: Sequence[np.ndarray], min_std: float = MIN_STD,
                               inside_only: bool = False) -> "KeypointStats":
        """Statistics of the offset ``kp[t] - kp[s]`` between two frames of one sequence.

        Mean 0; std ``sqrt(2)`` times the pooled within-sequence std of each coordinate (the
        offset between two independent frames of a sequence), over ``sequences`` (each
        ``[T_i, N, 2]``). Unlike `from_sequences` it leaves out how sequences differ from
        each other (identity, framing): only motion. ``inside_only`` pools, per keypoint, only
        the frames where it lies inside the frame (|x|, |y| <= 1), as training with
        ``mask_out_of_frame`` sees it; a keypoint never inside keeps the pooled std of all frames.
        """
        checked = list(_checked_sequences(sequences))
        total, s2 = 0, 0.0
        for arr in checked:
            s2 = s2 + np.square(arr - arr.mean(axis=0)).sum(axis=0)
            total += arr.shape[0]
        std = np.sqrt(2.0 * s2 / total)
        if inside_only:
            count, s2_in = np.zeros(std.shape[0]), np.zeros_like(std)
            for arr in checked:
                inside = (np.abs(arr) <= 1.0).all(axis=-1)  # [T, N]
                n = inside.sum(axis=0)
                mean = np.where(n[:, None] > 0, (arr * inside[..., None]).sum(axis=0) / np.maximum(n, 1)[:, None], 0.0)
                s2_in += (np.square(arr - mean) * inside[..., None]).sum(axis=0)
                count += n
            seen = count > 1
            std[seen] = np.sqrt(2.0 * s2_in[seen] / count[seen, None])
        return cls(mean=np.zeros_like(std), std=np.maximum(std, min_std))

    @classmethod
    def from_diffted_npy(cls, mean_path: str | Path, std_path: str | Path) -> "KeypointStats":
        """The official DiffTED statistics (``diffted_kp_mean.npy`` / ``diffted_kp_std.npy``, ``[50, 2]``)."""
        mean = np.load(Path(mean_path), allow_pickle=False)
        std = np.load(Path(std_path), allow_pickle=False)
        return cls(mean=mean.reshape(-1, 2), std=std.reshape(-1, 2))

    @classmethod
    def identity(cls, num_keypoints: int) -> "KeypointStats":
        """Mean 0, std 1: normalisation that changes nothing."""
        if num_keypoints <= 0:
            raise ValueError(f"num_keypoints must be positive, got {num_keypoints}")
        return cls(mean=np.zeros((num_keypoints, 2)), std=np.ones((num_keypoints, 2)))

    # ------------------------------------------------------------------------------------ io
    def to_dict(self) -> dict:
        return {"format": _FORMAT, "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "KeypointStats":
        unknown = set(data) - {"format", "mean", "std"}
        if unknown:
            raise ValueError(f"unknown keys in keypoint stats: {sorted(unknown)}")
        if data.get("format", _FORMAT) != _FORMAT:
            raise ValueError(f"unsupported keypoint stats format {data.get('format')!r}, expected {_FORMAT!r}")
        if "mean" not in data or "std" not in data:
            raise ValueError(f"keypoint stats need 'mean' and 'std', got keys {sorted(data)}")
        return cls(mean=np.asarray(data["mean"]), std=np.asarray(data["std"]))

    def save(self, path: str | Path) -> Path:
        """Write the statistics as json (``{"format", "mean": [[x, y], ...], "std": ...}``)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "KeypointStats":
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"keypoint stats file {str(path)!r} does not exist")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"keypoint stats file {str(path)!r} is not valid json: {err}") from err
        return cls.from_dict(data)


#: How the denoiser writes motion (``KeypointDenoiser.config.motion_target``):
#: ``"absolute"`` -- the keypoints themselves, normalised by the dataset's `KeypointStats`
#: (DiffTED's choice); ``"source_offset"`` -- the offset of every frame's keypoints from the
#: source photo's, normalised by `KeypointStats.offsets_from_sequences`. With offsets, motion
#: is anchored to the photo by construction: a zero sample is the still photo, and a model that
#: has seen few identities cannot pull a new photo towards the layout of the training speakers.
MOTION_TARGETS = ("absolute", "source_offset")


@dataclass(frozen=True, eq=False)
class MotionCoding:
    """The one place where keypoints become the denoiser's samples and back.

    ``stats`` normalises absolute keypoints (the source photo's, always); ``offset_stats``,
    when given, selects ``"source_offset"`` motion. Keypoints are ``[..., N, 2]`` or flat
    ``[..., N*2]``; ``source`` has the same layout without the leading frame axes (it
    broadcasts), e.g. ``keypoints [T, N, 2]`` with ``source [N, 2]``.
    """

    stats: KeypointStats
    offset_stats: KeypointStats | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.stats, KeypointStats):
            raise TypeError(f"stats must be a KeypointStats, got {type(self.stats).__name__}")
        if self.offset_stats is not None:
            if not isinstance(self.offset_stats, KeypointStats):
                raise TypeError(f"offset_stats must be a KeypointStats or None, got {type(self.offset_stats).__name__}")
            if self.offset_stats.num_keypoints != self.stats.num_keypoints:
                raise ValueError(f"offset_stats has {self.offset_stats.num_keypoints} keypoints, "
                                 f"stats has {self.stats.num_keypoints}")

    @property
    def target(self) -> str:
        """``"absolute"`` or ``"source_offset"`` (see `MOTION_TARGETS`)."""
        return "absolute" if self.offset_stats is None else "source_offset"

    def encode_source(self, source: ArrayOrTensor) -> ArrayOrTensor:
        """The source keypoints as the denoiser's condition (normalised absolute keypoints)."""
        return self.stats.normalize(source)

    def encode(self, keypoints: ArrayOrTensor, source: ArrayOrTensor) -> ArrayOrTensor:
        """Keypoints ``[..., N, 2]`` -> the denoiser's sample space (same shape)."""
        if self.offset_stats is None:
            return self.stats.normalize(keypoints)
        return self.offset_stats.normalize(keypoints - source)

    def decode(self, motion: ArrayOrTensor, source: ArrayOrTensor) -> ArrayOrTensor:
        """Inverse of :meth:`encode`: samples ``[..., N, 2]`` -> keypoints (same shape)."""
        if self.offset_stats is None:
            return self.stats.denormalize(motion)
        return source + self.offset_stats.denormalize(motion)


#: How fast the first frames blend from the photo's pose into the de-drifted motion.
_ANCHOR_SECONDS = 0.5


def remove_drift(offsets: torch.Tensor, fps: float, seconds: float, keep_start: bool = True) -> torch.Tensor:
    """Motion with its slow part removed: ``offsets [T, N, 2]`` -> ``[T, N, 2]``.

    Windowed sampling continues each window from the last, so small offsets add up over a long
    speech and the pose wanders away from the photo (measured on the v1 weights: the mean
    keypoint distance from the photo grew from 0.049 in the first 10 s to 0.065 after 40 s of a
    64 s speech). This subtracts a zero-phase Gaussian low-pass of the offsets (sigma ``seconds``,
    edges held): gestures faster than a few seconds stay as sampled (frame-to-frame velocity is
    unchanged up to the low-pass's own slope), while posture that holds longer is pulled back to
    the photo's. The result has no trend over any length. With ``keep_start``, the offset left
    at frame 0 fades out over 0.5 s, so a clip that started at the photo still does.

    Args:
        offsets: keypoints minus the reference pose (the photo's), ``[T, N, 2]``.
        fps: frames per second of ``offsets``; seconds: the low-pass sigma (> 0).
    """
    if offsets.dim() != 3 or offsets.shape[-1] != 2:
        raise ValueError(f"offsets must be [T, N, 2], got shape {tuple(offsets.shape)}")
    for name, value in (("fps", fps), ("seconds", seconds)):
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    t, n, _ = offsets.shape
    sigma = seconds * fps
    radius = int(min(np.ceil(3 * sigma), 4 * t))
    taps = torch.arange(-radius, radius + 1, dtype=offsets.dtype, device=offsets.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).view(1, 1, -1)
    series = offsets.permute(1, 2, 0).reshape(n * 2, 1, t)
    padded = torch.nn.functional.pad(series, (radius, radius), mode="replicate")
    slow = torch.nn.functional.conv1d(padded, kernel).reshape(n, 2, t).permute(2, 0, 1)
    fast = offsets - slow
    if keep_start:
        time = torch.arange(t, dtype=offsets.dtype, device=offsets.device) / fps
        fast = fast - fast[:1] * torch.exp(-time / _ANCHOR_SECONDS)[:, None, None]
    return fast
