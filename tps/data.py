"""Frame-pair datasets for training the renderer, and clip discovery for evaluation.

Layouts accepted by `find_clips`:
- TED384 (MRAA): ``ROOT/{train,test}/<youtube id>#<start>#<end>.mp4``, or a folder of PNG/JPG
  frames per clip in place of each mp4; pass ``split="train"`` or ``"test"``.
- Any folder: every video file below it (recursive), and every folder that directly holds
  PNG/JPG frames, is a clip.
- A single video file.

A training item is two frames of one clip, ``{"source": [3, H, W], "driving": [3, H, W]}``
float32 in [0, 1], sorted by frame index and then augmented as the official code does (time
flip with p 0.5; otherwise a horizontal flip with p 0.5; colour jitter with factors shared by
both frames). Clips are grouped by video id (the name before the first ``#``), and one epoch
visits every id ``num_repeats`` times, like the official ``DatasetRepeater`` with id sampling.

Decoded video clips (after the optional crop and resize to the model resolution) are cached
per process in memory up to ``cache_bytes``; frame folders are read two files at a time. A clip
that is not cached is decoded whole to take two frames (the official loader does the same for
every item), so for a dataset much larger than the cache, PNG frame folders train faster.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

__all__ = [
    "VIDEO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "Clip",
    "CropBox",
    "find_clips",
    "FrameStore",
    "FramePairDataset",
    "augment_pair",
    "augment_pair_keypoints",
    "color_jitter",
]

logger = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class Clip:
    """One clip: a video file (``kind="video"``) or a folder of frames (``kind="frames"``)."""

    path: Path
    kind: str

    @property
    def video_id(self) -> str:
        """Grouping id for id sampling: the name before the first ``#`` (TED384 naming)."""
        name = self.path.name if self.kind == "frames" else self.path.stem
        return name.split("#", 1)[0]

    @property
    def name(self) -> str:
        return self.path.name if self.kind == "frames" else self.path.stem


@dataclass(frozen=True)
class CropBox:
    """A pixel box ``rows top:bottom, columns left:right`` cut from every frame before resizing."""

    top: int
    bottom: int
    left: int
    right: int

    def __post_init__(self) -> None:
        if min(self.top, self.left) < 0 or self.bottom <= self.top or self.right <= self.left:
            raise ValueError(f"crop box must have 0 <= top < bottom and 0 <= left < right, got {self}")

    @classmethod
    def parse(cls, text: str) -> CropBox:
        """``"384:768,164:548"`` (rows, then columns, as numpy slices) -> CropBox."""
        try:
            rows, cols = text.split(",")
            top, bottom = (int(v) for v in rows.split(":"))
            left, right = (int(v) for v in cols.split(":"))
        except ValueError as exc:
            raise ValueError(
                f"crop must look like 'TOP:BOTTOM,LEFT:RIGHT' (e.g. 384:768,164:548), got {text!r}"
            ) from exc
        return cls(top, bottom, left, right)

    def apply(self, frames: np.ndarray, where: str) -> np.ndarray:
        """Crop ``[..., H, W, 3]`` frames; a box outside the frame is a ValueError naming ``where``."""
        height, width = frames.shape[-3:-1]
        if self.bottom > height or self.right > width:
            raise ValueError(f"crop {self} lies outside the {height}x{width} frames of {where}")
        return frames[..., self.top : self.bottom, self.left : self.right, :]


def find_clips(root: str | Path, split: str | None = None) -> list[Clip]:
    """All clips under ``root`` (see the module docstring), sorted by path.

    ``split`` selects ``root/split`` when that folder exists (TED384 layout); when it does not
    and ``root`` has no such split folders either, the whole of ``root`` is used. Raises
    ValueError for a missing path or a folder without clips.
    """
    root = Path(root)
    if not root.exists():
        raise ValueError(f"data path {str(root)!r} does not exist")
    if root.is_file():
        if root.suffix.lower() not in VIDEO_EXTENSIONS:
            raise ValueError(f"data file {str(root)!r} is not a video ({', '.join(VIDEO_EXTENSIONS)})")
        return [Clip(root, "video")]
    if split is not None and (root / split).is_dir():
        root = root / split
    clips: list[Clip] = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
            clips.append(Clip(path, "video"))
        elif path.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir()):
            clips.append(Clip(path, "frames"))
    if not clips:
        raise ValueError(
            f"no clips under {str(root)!r}: expected video files ({', '.join(VIDEO_EXTENSIONS)}) "
            f"or folders of {'/'.join(IMAGE_EXTENSIONS)} frames"
        )
    return clips


def _resize_uint8(frames: np.ndarray, size: tuple[int, int] | None) -> np.ndarray:
    """Resize ``[T, H, W, 3]`` uint8 frames to ``size`` (h, w) with anti-aliased bilinear."""
    if size is None or tuple(frames.shape[1:3]) == tuple(size):
        return np.ascontiguousarray(frames)
    out = np.empty((frames.shape[0], size[0], size[1], 3), dtype=np.uint8)
    for start in range(0, frames.shape[0], 32):  # bounded float memory for long clips
        chunk = torch.from_numpy(np.array(frames[start : start + 32])).permute(0, 3, 1, 2).float()
        chunk = F.interpolate(chunk, size=size, mode="bilinear", align_corners=False, antialias=True)
        out[start : start + 32] = chunk.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return np.array(image.convert("RGB"))
    except (OSError, UnidentifiedImageError) as exc:
        raise ValueError(f"cannot read frame image {str(path)!r}: {exc}") from exc


def _decode_video(path: Path, crop: CropBox | None, size: tuple[int, int] | None) -> np.ndarray:
    """All frames of a video, cropped then resized: ``[T, h, w, 3]`` uint8.

    Without a crop ffmpeg resizes while decoding; with one, each frame is cropped as it streams
    in (a 1700x1152 grid video never sits in memory whole) and the crops are resized together.
    """
    from tps.video import iter_frames

    try:
        if crop is None:
            frames = [frame.copy() for frame in iter_frames(path, size=size)]
        else:
            frames = [crop.apply(frame, str(path)).copy() for frame in iter_frames(path)]
    except (OSError, RuntimeError) as exc:
        raise ValueError(f"cannot decode video {str(path)!r}: {exc}") from exc
    if not frames:
        raise ValueError(f"video {str(path)!r} has no frames")
    return _resize_uint8(np.stack(frames), size)


class FrameStore:
    """Reads frames of clips, cropped and resized, with an in-memory LRU cache of decoded videos.

    ``image_size``: (h, w) of the returned frames, or None to keep the (cropped) size.
    ``cache_bytes``: the most decoded video bytes kept per process (a clip larger than that is
    decoded each time it is used, with a warning).
    """

    def __init__(
        self, image_size: tuple[int, int] | None = None, crop: CropBox | None = None, cache_bytes: int = 2 << 30
    ) -> None:
        if cache_bytes < 0:
            raise ValueError(f"cache_bytes must be >= 0, got {cache_bytes}")
        self.image_size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
        self.crop = crop
        self.cache_bytes = int(cache_bytes)
        self._videos: OrderedDict[Path, np.ndarray] = OrderedDict()
        self._frame_lists: dict[Path, list[Path]] = {}
        self._warned_large = False

    def _video(self, clip: Clip) -> np.ndarray:
        if clip.path in self._videos:
            self._videos.move_to_end(clip.path)
            return self._videos[clip.path]
        frames = _decode_video(clip.path, self.crop, self.image_size)
        if frames.nbytes > self.cache_bytes:
            if self.cache_bytes and not self._warned_large:
                logger.warning("clip %s (%d MB) exceeds the frame cache; decoding it on every use",
                               clip.path, frames.nbytes >> 20)
                self._warned_large = True
            return frames
        self._videos[clip.path] = frames
        while sum(v.nbytes for v in self._videos.values()) > self.cache_bytes:
            self._videos.popitem(last=False)
        return frames

    def _frame_files(self, clip: Clip) -> list[Path]:
        if clip.path not in self._frame_lists:
            files = sorted(p for p in clip.path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                raise ValueError(f"frame folder {str(clip.path)!r} holds no {'/'.join(IMAGE_EXTENSIONS)} files")
            self._frame_lists[clip.path] = files
        return self._frame_lists[clip.path]

    def num_frames(self, clip: Clip) -> int:
        if clip.kind == "frames":
            return len(self._frame_files(clip))
        return int(self._video(clip).shape[0])

    def frames(self, clip: Clip, indices: list[int] | np.ndarray | None = None) -> np.ndarray:
        """Frames ``[n, h, w, 3]`` uint8 at ``indices`` (all frames when None)."""
        if clip.kind == "video":
            video = self._video(clip)
            return video if indices is None else video[np.asarray(indices)]
        files = self._frame_files(clip)
        chosen = files if indices is None else [files[int(i)] for i in indices]
        images = []
        for path in chosen:
            image = _read_image(path)
            if self.crop is not None:
                image = self.crop.apply(image, str(path))
            images.append(image)
        shapes = {im.shape for im in images}
        if len(shapes) > 1 and self.image_size is None:
            raise ValueError(f"frames of {str(clip.path)!r} differ in size {sorted(shapes)}; pass image_size")
        return np.stack([_resize_uint8(im[None], self.image_size)[0] for im in images])


def _rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    r, g, b = rgb.unbind(-3)
    maxc, _ = rgb.max(-3)
    minc, _ = rgb.min(-3)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(maxc == r, (g - b) / safe, torch.where(maxc == g, 2 + (b - r) / safe, 4 + (r - g) / safe))
    hue = torch.where(delta > 0, (hue / 6) % 1.0, torch.zeros_like(hue))
    sat = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    return torch.stack([hue, sat, maxc], dim=-3)


def _hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    hue, sat, val = hsv.unbind(-3)
    k = torch.stack([(n + hue * 6) % 6 for n in (5.0, 3.0, 1.0)], dim=-3)
    return val.unsqueeze(-3) - (val * sat).unsqueeze(-3) * (torch.minimum(k, 4 - k).clamp(0, 1))


def color_jitter(images: torch.Tensor, brightness: float, contrast: float, saturation: float, hue: float,
                 order: list[int]) -> torch.Tensor:
    """torchvision-style colour jitter with given factors, the same for every image of the batch.

    images: ``[N, 3, H, W]`` in [0, 1]. brightness/contrast/saturation are multiplicative factors
    (1 = unchanged), hue a shift in turns (0 = unchanged); ``order`` a permutation of 0..3
    (brightness, contrast, saturation, hue). Contrast blends with each image's own mean grey.
    """
    gray_weights = images.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    for op in order:
        if op == 0:
            images = (images * brightness).clamp(0, 1)
        elif op == 1:
            mean = (images * gray_weights).sum(1, keepdim=True).mean(dim=(2, 3), keepdim=True)
            images = (contrast * images + (1 - contrast) * mean).clamp(0, 1)
        elif op == 2:
            gray = (images * gray_weights).sum(1, keepdim=True)
            images = (saturation * images + (1 - saturation) * gray).clamp(0, 1)
        else:
            hsv = _rgb_to_hsv(images)
            hsv = torch.stack([(hsv[:, 0] + hue) % 1.0, hsv[:, 1], hsv[:, 2]], dim=1)
            images = _hsv_to_rgb(hsv).clamp(0, 1)
    return images


def augment_pair(source: torch.Tensor, driving: torch.Tensor, jitter: float = 0.1,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The official TED augmentation of a frame pair ``[3, H, W]`` in [0, 1].

    With p 0.5 a time flip swaps the frames; only when it did not happen, a horizontal flip of
    both with p 0.5; then colour jitter (brightness, contrast, saturation and hue each within
    ``jitter``) with the same factors for both frames, in a random order. The official code
    rounds through uint8 PIL images in between; this stays in float.
    """
    source, driving, _ = augment_pair_keypoints(source, driving, None, jitter, generator)
    return source, driving


def augment_pair_keypoints(
    source: torch.Tensor, driving: torch.Tensor, keypoints: torch.Tensor | None, jitter: float = 0.1,
    generator: torch.Generator | None = None, flip_permutation: list[int] | tuple[int, ...] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """`augment_pair` (the same random draws) with the pair's keypoints ``[2, N, 2]`` (source,
    driving) following it: swapped by the time flip, mirrored by the horizontal flip
    (`tps.given_keypoints.flip_keypoints` with ``flip_permutation``). ``keypoints`` None: None."""
    draws = torch.rand(6, generator=generator)
    if draws[0] < 0.5:
        source, driving = driving, source
        keypoints = None if keypoints is None else keypoints.flip(0)
    elif draws[1] < 0.5:
        source, driving = source.flip(-1), driving.flip(-1)
        if keypoints is not None:
            from tps.given_keypoints import flip_keypoints

            keypoints = flip_keypoints(keypoints, flip_permutation)
    if jitter > 0:
        factors = 1 - jitter + 2 * jitter * draws[2:5]
        hue = float(jitter * (2 * torch.rand((), generator=generator) - 1))
        order = torch.randperm(4, generator=generator).tolist()
        pair = color_jitter(torch.stack([source, driving]), float(factors[0]), float(factors[1]),
                            float(factors[2]), hue, order)
        source, driving = pair[0], pair[1]
    return source, driving, keypoints


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """``[n, h, w, 3]`` uint8 -> ``[n, 3, h, w]`` float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)


class FramePairDataset(Dataset):
    """Random (source, driving) frame pairs of one clip; ``len = num_ids * num_repeats``.

    Item ``i`` picks video id ``i % num_ids`` (or clip ``i % num_clips`` without id sampling), a
    random clip of that id and two random frames (with replacement, sorted, as the official
    code). Randomness comes from torch's global RNG, which DataLoader workers seed per worker
    from the main process, so `accelerate.utils.set_seed` makes the stream reproducible.

    ``keypoints`` (a `tps.given_keypoints.KeypointFiles` over the same store): items also hold
    ``kp_source`` / ``kp_driving`` ``[N, 2]``, the given keypoints of the two frames in the
    returned frames' coordinates, augmented with them.
    """

    def __init__(
        self,
        clips: list[Clip],
        store: FrameStore,
        num_repeats: int = 1,
        id_sampling: bool = True,
        augment: bool = True,
        jitter: float = 0.1,
        keypoints: Any = None,
    ) -> None:
        if not clips:
            raise ValueError("clips is empty")
        if num_repeats < 1:
            raise ValueError(f"num_repeats must be >= 1, got {num_repeats}")
        if not 0 <= jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), got {jitter}")
        groups: OrderedDict[str, list[Clip]] = OrderedDict()
        for clip in clips:
            groups.setdefault(clip.video_id if id_sampling else str(clip.path), []).append(clip)
        self.groups = list(groups.values())
        self.store = store
        self.num_repeats = int(num_repeats)
        self.augment = augment
        self.jitter = float(jitter)
        self.keypoints = keypoints
        if keypoints is not None:
            keypoints.check(clips)

    def __len__(self) -> int:
        return len(self.groups) * self.num_repeats

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        group = self.groups[index % len(self.groups)]
        clip = group[int(torch.randint(len(group), ()))]
        count = self.store.num_frames(clip)
        pair = torch.randint(count, (2,)).sort().values.tolist()
        frames = to_tensor(self.store.frames(clip, pair))
        source, driving = frames[0], frames[1]
        kp = None if self.keypoints is None else self.keypoints.pair(clip, pair)
        if self.augment:
            source, driving, kp = augment_pair_keypoints(source, driving, kp, jitter=self.jitter,
                                                         flip_permutation=getattr(self.keypoints, "flip_permutation", None))
        item = {"source": source, "driving": driving}
        if kp is not None:
            item["kp_source"], item["kp_driving"] = kp[0], kp[1]
        return item
