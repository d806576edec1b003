"""Photos as people have them: loading, finding the speaker, a TED-style crop, and pasting back.

The renderer works on a square crop at its own resolution (e.g. 256x256 or 384x384), framed like
the TED-talks training clips: head in the upper third, shoulders and the zone where the hands
gesture inside. `find_crop` places that square with mediapipe (the pose solution first, face
detection as a fallback; both ship their models in the mediapipe 0.10.21 wheel and work
offline). After rendering, `PasteBack` puts each animated crop back into the full-resolution
photo with a feathered seam, so only the speaker moves and the rest of the photo stays sharp.

Pixel boxes are in photo pixels, ``(x0, y0)`` the top-left corner, ``size`` the side.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

logger = logging.getLogger(__name__)

ImageInput = Union[str, Path, Image.Image, np.ndarray, torch.Tensor]

#: Smallest photo side accepted: below this there is no person to animate.
MIN_IMAGE_SIDE = 32
#: mediapipe runs on a copy whose longer side is at most this; landmarks are relative anyway.
_DETECT_MAX_SIDE = 1024
#: TED framing, as multiples of the body measures (chosen on TED384 frames: the square spans
#: about 2.4 shoulder widths or 5 head widths, whichever is larger) and the nose's height in it.
_SHOULDER_SPAN, _HEAD_SPAN, _NOSE_AT = 2.4, 5.0, 0.25
_MIN_VISIBILITY = 0.5
# mediapipe pose landmark indices.
_NOSE, _LEFT_EAR, _RIGHT_EAR, _LEFT_SHOULDER, _RIGHT_SHOULDER = 0, 7, 8, 11, 12


# ------------------------------------------------------------------------------------ loading
def load_image(image: ImageInput, *, name: str = "image", max_side: int | None = None) -> np.ndarray:
    """Any photo -> ``uint8 [H, W, 3]`` RGB.

    Accepts a path, a PIL image, a numpy array (``[H, W]``, ``[H, W, 1|3|4]``, uint8/uint16 or
    float in ``[0, 1]``) or a torch tensor (``[3, H, W]`` / ``[1, 3, H, W]`` in ``[0, 1]``).
    EXIF orientation is applied; transparency is composited on white; grayscale becomes RGB.

    ``max_side``: a file or PIL image whose longer side exceeds it is decoded already reduced
    (JPEG through its DCT scaling, others by an integer box reduction right after decoding), to
    a longer side between ``max_side`` and ``2 * max_side``; `fit_photo` finishes the resize. So
    memory follows ``max_side``, not the photo. Photos of more than
    `difftted.limits.MAX_IMAGE_PIXELS` are refused (ValueError naming ``name``) from the header.
    """
    from difftted import limits

    if isinstance(image, (str, Path)):
        image = _open_image(Path(image), name, max_side)
    elif isinstance(image, Image.Image):
        limits.check_image_pixels(*image.size, name)
        image = _reduced(image, max_side)
    elif isinstance(image, (np.ndarray, torch.Tensor)) and image.ndim >= 2:
        h, w = (image.shape[-2:] if isinstance(image, torch.Tensor) else image.shape[:2])
        limits.check_image_pixels(int(w), int(h), name)
    if isinstance(image, Image.Image):
        image = ImageOps.exif_transpose(image)
        if image.mode in {"I;16", "I;16B", "I;16L", "I", "F"}:
            image = np.asarray(image)
        else:
            if image.mode == "P":
                image = image.convert("RGBA")
            elif image.mode not in {"RGB", "RGBA", "L", "LA"}:
                image = image.convert("RGB")
            image = np.asarray(image)
    if isinstance(image, torch.Tensor):
        image = _tensor_to_hwc(image, name)
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a path, PIL image, numpy array or torch tensor, got {type(image).__name__}")
    return _array_to_rgb8(image, name)


def _open_image(path: Path, name: str, max_side: int | None) -> Image.Image:
    from difftted import limits

    if not path.exists():
        raise FileNotFoundError(f"{name} file {str(path)!r} does not exist")
    if path.is_dir():
        raise ValueError(f"{name} {str(path)!r} is a folder, expected an image file")
    what = f"{name} {str(path)!r}"
    with limits.open_image(path, what) as img:  # header only: size checked before decoding
        try:
            loaded = _reduced(img, max_side)
            return loaded.copy() if loaded is img else loaded  # a copy outlives the open file
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise ValueError(f"{what} is not a readable image ({limits.without_path(err, path)})") from err


#: Modes `PIL.Image.reduce` refuses, and what they become first.
_REDUCIBLE = {"1": "L", "P": "RGBA", "PA": "RGBA", "I;16": "I", "I;16B": "I", "I;16L": "I", "I;16N": "I"}


def _reduced(img: Image.Image, max_side: int | None) -> Image.Image:
    """``img`` loaded, its longer side reduced by an integer factor to at most ``2 * max_side`` (and
    at least ``max_side``) when it is larger; JPEGs are decoded at the reduced scale directly.
    ``info``, and so the EXIF orientation, is kept."""
    w, h = img.size
    if max_side is not None and max(w, h) > max_side and img.format == "JPEG":
        scale = max_side / max(w, h)
        img.draft(None, (math.ceil(w * scale), math.ceil(h * scale)))  # DCT scaling: 1/2, 1/4, 1/8
    img.load()
    # never below the smallest photo accepted: reducing must not turn a valid photo into a refused one
    factor = 1 if max_side is None else min(max(img.size) // max_side, min(img.size) // MIN_IMAGE_SIDE)
    if factor < 2:
        return img
    info, exif = dict(img.info), img.getexif()
    if img.mode in _REDUCIBLE:
        img = img.convert(_REDUCIBLE[img.mode])
    small = img.reduce(factor)
    small.info.update(info)
    if exif:
        small.info["exif"] = exif.tobytes()
    logger.info("photo %dx%d decoded reduced to %dx%d", w, h, *small.size)
    return small


def _tensor_to_hwc(image: torch.Tensor, name: str) -> np.ndarray:
    t = image.detach().cpu()
    if t.ndim == 4 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 3 or t.shape[0] not in (1, 3, 4):
        raise ValueError(f"{name} tensor must be [3, H, W] or [1, 3, H, W], got {tuple(image.shape)}")
    return t.permute(1, 2, 0).float().numpy()


def _array_to_rgb8(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (2, 3, 4)):
        raise ValueError(f"{name} array must be [H, W] or [H, W, 1|2|3|4], got shape {arr.shape}")
    if min(arr.shape[:2]) < MIN_IMAGE_SIDE:
        raise ValueError(f"{name} must be at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} pixels, got {arr.shape[1]}x{arr.shape[0]}")
    if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3:
        return np.ascontiguousarray(arr)  # already RGB8: no float copy
    if arr.dtype == np.uint8:
        x = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        x = arr.astype(np.float32) / 65535.0
    elif np.issubdtype(arr.dtype, np.integer):
        x = arr.astype(np.float32) / max(float(arr.max()), 1.0)
    elif np.issubdtype(arr.dtype, np.floating) or arr.dtype == np.bool_:
        x = arr.astype(np.float32)
        if not np.isfinite(x).all() or x.min() < 0.0 or x.max() > 1.0:
            raise ValueError(f"{name}: a float array must hold finite values in [0, 1], got "
                             f"[{np.nanmin(x):.3g}, {np.nanmax(x):.3g}]")
    else:
        raise TypeError(f"{name} array has unsupported dtype {arr.dtype}")
    if x.ndim == 2:
        x = x[..., None]
    if x.shape[2] in (2, 4):  # a transparent photo is shown on white, as a viewer would
        alpha = x[..., -1:]
        x = x[..., :-1] * alpha + (1.0 - alpha)
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    return np.ascontiguousarray(np.round(x * 255.0).astype(np.uint8))


def fit_photo(photo: np.ndarray, max_side: int | None) -> np.ndarray:
    """Downscale so the longer side is at most ``max_side``, and make both sides even (H.264's
    4:2:0 chroma needs even sizes). ``photo``: ``uint8 [H, W, 3]``."""
    h, w = photo.shape[:2]
    if max_side is not None and max(h, w) > max_side:
        scale = max_side / max(h, w)
        size = (max(2, round(w * scale)), max(2, round(h * scale)))
        logger.info("photo %dx%d downscaled to %dx%d for the video", w, h, *size)
        photo = np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.LANCZOS))
        h, w = photo.shape[:2]
    return np.ascontiguousarray(photo[: h - h % 2, : w - w % 2])


# ------------------------------------------------------------------------------------ the crop
@dataclass(frozen=True)
class CropBox:
    """A square in photo pixels: columns ``x0 .. x0+size``, rows ``y0 .. y0+size``."""

    x0: int
    y0: int
    size: int

    def contains(self, x: float, y: float) -> bool:
        return self.x0 <= x < self.x0 + self.size and self.y0 <= y < self.y0 + self.size


@dataclass(frozen=True)
class PersonCrop:
    """Where the speaker is. ``method``: ``"pose"``, ``"face"`` or ``"none"`` (centred crop)."""

    box: CropBox
    method: Literal["pose", "face", "none"]


def find_crop(photo: np.ndarray) -> PersonCrop:
    """The TED-style square crop around the speaker of ``photo`` (``uint8 [H, W, 3]``).

    No person found: a centred square and a warning, so any photo can still be animated.
    """
    h, w = photo.shape[:2]
    small = _downscale_for_detection(photo)
    measures = _pose_measures(small)
    method: Literal["pose", "face", "none"] = "pose"
    if measures is None:
        measures, method = _face_measures(small), "face"
    if measures is None:
        side = min(h, w)
        logger.warning("no person found in the photo: using a centred %dx%d crop", side, side)
        return PersonCrop(CropBox((w - side) // 2, (h - side) // 2, side), "none")
    cx, nose_y, span = (measures[0] * w, measures[1] * h, measures[2] * max(h, w))
    return PersonCrop(_place_square(cx, nose_y, span, w, h), method)


def _place_square(cx: float, nose_y: float, span: float, w: int, h: int) -> CropBox:
    # Never larger than the photo's shorter side, so clamping is enough and no padding is needed.
    side = int(round(min(max(span, 16.0), min(h, w))))
    x0 = int(round(np.clip(cx - side / 2, 0, w - side)))
    y0 = int(round(np.clip(nose_y - _NOSE_AT * side, 0, h - side)))
    return CropBox(x0, y0, side)


def _downscale_for_detection(photo: np.ndarray) -> np.ndarray:
    h, w = photo.shape[:2]
    if max(h, w) <= _DETECT_MAX_SIDE:
        return photo
    scale = _DETECT_MAX_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(photo).resize(size, Image.Resampling.BILINEAR))


def _pose_measures(photo: np.ndarray) -> tuple[float, float, float] | None:
    """(centre x / W, nose y / H, crop side / max(H, W)) from mediapipe pose, or None."""
    from mediapipe.python.solutions import pose as mp_pose

    h, w = photo.shape[:2]
    with mp_pose.Pose(static_image_mode=True, model_complexity=1) as detector:
        result = detector.process(photo)
    if result.pose_landmarks is None:
        return None
    lm = result.pose_landmarks.landmark
    if lm[_NOSE].visibility < _MIN_VISIBILITY:
        return None
    px = lambda i: np.array([lm[i].x * w, lm[i].y * h])  # noqa: E731 - pixel coordinates
    nose = px(_NOSE)
    spans = [_HEAD_SPAN * np.linalg.norm(px(_LEFT_EAR) - px(_RIGHT_EAR))]
    cx = nose[0]
    shoulders = (lm[_LEFT_SHOULDER], lm[_RIGHT_SHOULDER])
    if min(s.visibility for s in shoulders) >= _MIN_VISIBILITY:
        mid = (px(_LEFT_SHOULDER) + px(_RIGHT_SHOULDER)) / 2
        spans.append(_SHOULDER_SPAN * np.linalg.norm(px(_LEFT_SHOULDER) - px(_RIGHT_SHOULDER)))
        cx = (mid[0] + nose[0]) / 2  # the torso's centre, pulled toward a turned head
    return cx / w, nose[1] / h, max(spans) / max(h, w)


def _face_measures(photo: np.ndarray) -> tuple[float, float, float] | None:
    """The same measures from mediapipe face detection (full-range model), or None."""
    from mediapipe.python.solutions import face_detection as mp_face

    h, w = photo.shape[:2]
    with mp_face.FaceDetection(model_selection=1, min_detection_confidence=0.5) as detector:
        result = detector.process(photo)
    if not result.detections:
        return None
    best = max(result.detections, key=lambda d: d.score[0])
    box = best.location_data.relative_bounding_box
    cx, cy = (box.xmin + box.width / 2) * w, (box.ymin + box.height / 2) * h
    return cx / w, cy / h, _HEAD_SPAN * box.width * w / max(h, w)


def crop_to_tensor(photo: np.ndarray, box: CropBox, size: tuple[int, int]) -> torch.Tensor:
    """The crop resized to ``size`` = (height, width): ``float32 [1, 3, h, w]`` in ``[0, 1]``."""
    patch = photo[box.y0 : box.y0 + box.size, box.x0 : box.x0 + box.size]
    resized = Image.fromarray(patch).resize((size[1], size[0]), Image.Resampling.LANCZOS)
    return torch.from_numpy(np.asarray(resized).copy()).permute(2, 0, 1)[None].float() / 255.0


# ----------------------------------------------------------------------------------- paste back
def feather_mask(box: CropBox, photo_shape: tuple[int, int], feather: float = 0.04) -> np.ndarray:
    """Alpha ``float32 [size, size]`` in ``[0, 1]``: 1 inside, a smooth ramp of ``feather * size``
    pixels toward each side of the crop that lies inside the photo (a side on the photo's border
    needs no seam)."""
    if not 0.0 <= feather < 0.5:
        raise ValueError(f"feather must be in [0, 0.5), got {feather}")
    h, w = photo_shape
    ramp = max(2, int(round(feather * box.size))) if feather > 0 else 0
    pos = np.arange(box.size, dtype=np.float32) + 0.5

    def axis(start: int, limit: int) -> np.ndarray:
        a = np.ones(box.size, dtype=np.float32)
        if ramp == 0:
            return a
        t = np.clip(pos / ramp, 0.0, 1.0)
        smooth = t * t * (3.0 - 2.0 * t)  # smoothstep: no kink where the ramp meets 0 or 1
        if start > 0:
            a = np.minimum(a, smooth)
        if start + box.size < limit:
            a = np.minimum(a, smooth[::-1])
        return a

    return np.outer(axis(box.y0, h), axis(box.x0, w))


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Channel-last images ``[..., 3]`` in ``[0, 1]`` -> ``uint8`` numpy, rounded."""
    return (images.clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()


def paste_into(photo: np.ndarray, box: CropBox, crops: np.ndarray) -> np.ndarray:
    """``crops`` (``uint8 [t, s, s, 3]``, ``s = box.size``) put into copies of ``photo``
    (``uint8 [H, W, 3]``) at ``box``: ``uint8 [t, H, W, 3]``."""
    out = np.repeat(photo[None], len(crops), axis=0)
    out[:, box.y0 : box.y0 + box.size, box.x0 : box.x0 + box.size] = crops
    return out


class PasteBack:
    """Put rendered crops back into the photo: ``frames [t, 3, h, w]`` in ``[0, 1]`` ->
    ``uint8 [t, H, W, 3]`` full photos (or the crops alone with ``crop_only=True``)."""

    def __init__(self, photo: np.ndarray, box: CropBox, feather: float = 0.04, crop_only: bool = False):
        self.photo, self.box, self.crop_only = photo, box, crop_only
        self.alpha = torch.from_numpy(feather_mask(box, photo.shape[:2], feather))[None, :, :, None]
        patch = photo[box.y0 : box.y0 + box.size, box.x0 : box.x0 + box.size]
        self.background = torch.from_numpy(patch.astype(np.float32) / 255.0)[None]

    def __call__(self, frames: torch.Tensor) -> np.ndarray:
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"frames must be [t, 3, h, w], got {tuple(frames.shape)}")
        if self.crop_only:
            return to_uint8(frames.float().cpu().permute(0, 2, 3, 1))
        s = self.box.size
        big = F.interpolate(frames.float().cpu(), size=(s, s), mode="bilinear", align_corners=False,
                            antialias=s < frames.shape[-1])
        blended = big.permute(0, 2, 3, 1) * self.alpha + self.background * (1.0 - self.alpha)
        return paste_into(self.photo, self.box, to_uint8(blended))


# ------------------------------------------------------------------------------- person mask
def person_mask(photo: np.ndarray) -> np.ndarray | None:
    """Where the person is: ``float32 [H, W]`` in ``[0, 1]`` (1 = person), for ``uint8 [H, W, 3]``.

    mediapipe's selfie segmentation (the general model, in the 0.10.21 wheel, offline) on a copy
    whose longer side is at most 1024, resized back. The mask's soft edge is kept; callers grow
    and feather it (`tps.compose.motion_mask`). None when no person is found (then nothing
    can be called background, and the whole crop may move).
    """
    from mediapipe.python.solutions import selfie_segmentation as mp_selfie

    h, w = photo.shape[:2]
    small = _downscale_for_detection(photo)
    with mp_selfie.SelfieSegmentation(model_selection=0) as segmenter:
        result = segmenter.process(np.ascontiguousarray(small))
    mask = result.segmentation_mask
    mask = None if mask is None else np.clip(np.nan_to_num(mask.astype(np.float32)), 0.0, 1.0)
    if mask is None or float(mask.max()) < 0.5:
        logger.warning("person segmentation found no one: the whole crop may move (no still background)")
        return None
    if mask.shape != (h, w):
        mask = np.asarray(Image.fromarray(np.ascontiguousarray(mask, dtype=np.float32)).resize((w, h), Image.Resampling.BILINEAR))
    return np.ascontiguousarray(mask, dtype=np.float32)
