"""Keypoints given per frame from outside the model, for training the renderer on them.

A clip ``NAME.mp4`` (or a frame folder ``NAME/``) may have ``NAME.keypoints.npy`` beside it:
``float32 [T, N, 2]``, one row per frame of the clip (T = its number of frames), (x, y) in
[-1, 1] of the clip's frames as stored, with align_corners=True: ``x = 2 * col / (W - 1) - 1``
for the pixel-centre column ``col`` (0 = the centre of the first column), ``y`` likewise. Values
beyond +-1 (a hand below the frame) are allowed; NaN is not.

`KeypointFiles` reads these files and maps the keypoints through exactly the crop and resize
that `tps.data.FrameStore` applies to the frames (`map_keypoints`: a pixel-centre resize, as
``F.interpolate(align_corners=False)``, ffmpeg's scale filter and PIL's resize all do), so a
keypoint on a body part in the file lands on that body part in the training frames. Under the
horizontal flip of the augmentation the keypoints flip with the frames (`flip_keypoints`:
``x -> -x`` and, when given, a permutation that swaps left and right keypoints, so a mirrored
right arm is keyed like a left arm, as a landmark detector would key it).

This module is plain numpy/torch; whatever produced the files (mediapipe, motion capture) is
not imported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from tps.data import Clip, CropBox, FrameStore

__all__ = ["KEYPOINT_SUFFIX", "keypoint_file", "map_keypoints", "flip_keypoints", "check_permutation", "KeypointFiles"]

#: File name suffix of a clip's keypoints: ``NAME.mp4`` -> ``NAME.keypoints.npy``.
KEYPOINT_SUFFIX = ".keypoints.npy"


def keypoint_file(clip_path: str | Path) -> Path:
    """The keypoint file of a clip: ``dir/NAME.mp4`` or frame folder ``dir/NAME`` -> ``dir/NAME.keypoints.npy``."""
    path = Path(clip_path)
    name = path.name if path.is_dir() else path.stem
    return path.with_name(name + KEYPOINT_SUFFIX)


def map_keypoints(kp: np.ndarray, frame_size: tuple[int, int], crop: CropBox | None,
                  out_size: tuple[int, int] | None) -> np.ndarray:
    """Keypoints ``[..., 2]`` in [-1, 1] of a frame of ``frame_size`` (h, w) -> [-1, 1] of that
    frame cut to ``crop`` (or whole) and resized to ``out_size`` (h, w; None: no resize), with the
    pixel-centre convention of the module docstring. Returns float32."""
    kp = np.asarray(kp, dtype=np.float64)
    h0, w0 = frame_size
    pix = (kp + 1.0) / 2.0 * (np.array([w0, h0], dtype=np.float64) - 1.0)
    if crop is not None:
        pix = pix - np.array([crop.left, crop.top], dtype=np.float64)
        h0, w0 = crop.bottom - crop.top, crop.right - crop.left
    h1, w1 = (h0, w0) if out_size is None else out_size
    pix = (pix + 0.5) * (np.array([w1 / w0, h1 / h0])) - 0.5
    return (2.0 * pix / (np.array([w1, h1], dtype=np.float64) - 1.0) - 1.0).astype(np.float32)


def check_permutation(permutation: Sequence[int] | None, num_kp: int, name: str = "keypoint_flip") -> None:
    """ValueError unless ``permutation`` is None or a permutation of ``0 .. num_kp-1`` that is its own inverse."""
    if permutation is None:
        return
    perm = list(permutation)
    if sorted(perm) != list(range(num_kp)):
        raise ValueError(f"{name} must be a permutation of 0..{num_kp - 1}, got {perm!r}")
    if any(perm[perm[i]] != i for i in range(num_kp)):
        raise ValueError(f"{name} must be its own inverse (a left/right swap), got {perm!r}")


def flip_keypoints(kp: torch.Tensor, permutation: Sequence[int] | None = None) -> torch.Tensor:
    """Keypoints ``[..., N, 2]`` of a horizontally flipped frame: ``x -> -x`` (exact for
    align_corners=True coordinates), then keypoint ``i`` takes the place of ``permutation[i]``."""
    out = kp.clone()
    out[..., 0] = -out[..., 0]
    if permutation is not None:
        out = out[..., list(permutation), :]
    return out


class KeypointFiles:
    """The keypoint files of the clips a `tps.data.FrameStore` reads, mapped into its frames.

    ``pair(clip, indices)`` -> ``float32 [len(indices), N, 2]`` in [-1, 1] of the frames
    ``store.frames(clip, indices)`` returns. Each file is read once and kept (it is small);
    a missing file, a wrong shape, NaN or a frame count that differs from the clip's is a
    ValueError naming the file.
    """

    def __init__(self, store: FrameStore, num_kp: int, flip_permutation: Sequence[int] | None = None) -> None:
        if not isinstance(num_kp, int) or num_kp < 1:
            raise ValueError(f"num_kp must be a positive int, got {num_kp!r}")
        check_permutation(flip_permutation, num_kp)
        self.store, self.num_kp = store, num_kp
        self.flip_permutation = None if flip_permutation is None else tuple(int(i) for i in flip_permutation)
        self._cache: dict[Path, np.ndarray] = {}

    def check(self, clips: Sequence[Clip]) -> None:
        """Check that every clip has its keypoint file (before training starts, not at step 5000)."""
        missing = [str(keypoint_file(c.path)) for c in clips if not keypoint_file(c.path).is_file()]
        if missing:
            more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
            raise ValueError(f"keypoint_source 'given' needs a keypoint file beside every clip; missing: "
                             f"{missing[:5]}{more}")

    def pair(self, clip: Clip, indices: Sequence[int]) -> torch.Tensor:
        kp = self._clip_keypoints(clip)
        return torch.from_numpy(kp[np.asarray(indices)].copy())

    def _clip_keypoints(self, clip: Clip) -> np.ndarray:
        if clip.path in self._cache:
            return self._cache[clip.path]
        path = keypoint_file(clip.path)
        if not path.is_file():
            raise ValueError(f"keypoint file {str(path)!r} of clip {str(clip.path)!r} does not exist")
        kp = np.load(path)
        if kp.ndim != 3 or kp.shape[1:] != (self.num_kp, 2) or not np.issubdtype(kp.dtype, np.floating):
            raise ValueError(f"keypoint file {str(path)!r} must hold float [T, {self.num_kp}, 2], "
                             f"got {kp.dtype} {kp.shape}")
        if not np.isfinite(kp).all():
            raise ValueError(f"keypoint file {str(path)!r} holds NaN or inf")
        count = self.store.num_frames(clip)
        if kp.shape[0] != count:
            raise ValueError(f"keypoint file {str(path)!r} has {kp.shape[0]} frames, the clip has {count}")
        mapped = map_keypoints(kp, self._frame_size(clip), self.store.crop, self.store.image_size)
        self._cache[clip.path] = mapped
        return mapped

    def _frame_size(self, clip: Clip) -> tuple[int, int]:
        """(h, w) of the clip's frames as stored (before the store's crop and resize)."""
        if clip.kind == "video":
            from tps.video import video_info

            info = video_info(clip.path)
            return int(info.height), int(info.width)
        from PIL import Image

        first = sorted(p for p in clip.path.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))[0]
        with Image.open(first) as image:
            return image.height, image.width
