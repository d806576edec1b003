"""From rendered chunks to output frames: composition at the photo's resolution, a still background.

Two ways to turn the renderer's output into the video's frames (``composition``):

- ``"native"`` (default): the crop around the speaker is warped at its own size (up to the
  photo's, capped by ``max_side``) by the model's flow, and the model's generated pixels, resized,
  fill only what the occlusion map marks as not visible in the photo (`tps.compose`). The photo's
  detail is kept, and a zero motion gives the photo back exactly. Then a still background: the
  frame differs from the photo only where the person is, in the photo or where the flow moves
  them (mediapipe's selfie segmentation of the photo, `difftted.pipeline.person.person_mask`, warped by the
  flow, grown and feathered; `tps.compose.motion_mask`); everywhere else the photo's own pixels.
  The warp's ``interpolation`` is ``"spline"`` (the crop upsampled 2x by its quintic spline once,
  `tps.interpolation.spline_upsample`, then sampled bicubic each frame: sharper at sub-pixel
  offsets) or ``"bicubic"`` (the crop itself, as earlier releases).
  Background uncovered behind a moving arm lies inside the person's photo mask, so it still comes
  from the renderer.
- ``"model"``: the model's frames at its own resolution (e.g. 256x256), scaled up to the crop
  and pasted with a feathered square (`difftted.pipeline.person.PasteBack`): the path of earlier releases,
  kept for comparison and for renderers whose occlusion maps are not trusted.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from difftted.pipeline.mouth import MouthInterior
from difftted.pipeline.person import CropBox, PasteBack, feather_mask, paste_into, to_uint8
from tps.compose import compose, motion_mask, relative_flow
from tps.interpolation import INTERPOLATIONS, spline_upsample
from tps.render import RenderedChunk

COMPOSITIONS = ("native", "model")
Composition = Literal["native", "model"]


#: ``interpolation="auto"`` uses the spline warp for crops up to this side (pixels) and bicubic
#: above: on one thread the spline warp added about 7 ms/frame to a 465 px crop but 110-190 ms to
#: a 1747 px one (and a 2x copy of the crop, 146 MB), where the sub-pixel detail it keeps is also
#: least visible (benchmarks/compose_cpu.py).
SPLINE_MAX_SIDE = 1024
INTERPOLATION_CHOICES = ("auto", *INTERPOLATIONS)
#: Native composition works on at most this many crop pixels per call (frames x side^2), so a
#: large crop is composed a few frames at a time: a 1920 px crop cost about 130 MB per frame in
#: flight (float32 warps, flow and masks at the crop's size), which a chunk of 8 frames turned into
#: a peak 1 GB above a full-HD photo's. A 465 px crop still takes a chunk of 8 in one call; the
#: frames are the same either way (every step is per frame).
COMPOSE_PIXELS_PER_CALL = 4_000_000


def resolve_interpolation(interpolation: str, side: int) -> str:
    """The warp for a crop of ``side`` pixels: ``"auto"`` -> ``"spline"`` up to `SPLINE_MAX_SIDE`,
    else ``"bicubic"``; any other value must be one of `tps.interpolation.INTERPOLATIONS`."""
    if interpolation == "auto":
        return "spline" if side <= SPLINE_MAX_SIDE else "bicubic"
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATION_CHOICES}, got {interpolation!r}")
    return interpolation


class FrameComposer:
    """Rendered chunks -> ``uint8 [b, H, W, 3]`` frames (the full photo, or the crop alone).

    Args:
        photo: ``uint8 [H, W, 3]`` the (possibly downscaled) photo.
        box: the square crop the renderer animates.
        composition: ``"native"`` or ``"model"`` (module docstring).
        crop_only: return the crop alone (native: at its own size, cut to even sides for H.264;
            model: at the model's size) instead of the full photo.
        rest: the render of the photo's own keypoints: its flow and occlusion are the zero of
            the motion (`tps.compose.relative_flow`, `tps.compose.visibility`), so the rest pose
            gives the photo back exactly; None uses the maps as predicted.
        person: ``float32 [H, W]`` the photo's person mask (`difftted.pipeline.person.person_mask`), or
            None: no still background, the whole crop may move.
        feather: the seam of the crop square, as a fraction of its side.
        interpolation: the native warp's resampling of the crop: ``"auto"`` (default:
            ``"spline"`` for crops up to `SPLINE_MAX_SIDE` pixels, ``"bicubic"`` above),
            ``"spline"``, ``"bicubic"`` (earlier releases) or ``"bilinear"``, see
            `tps.compose.compose`; the model path ignores it. The resolved choice is
            ``self.interpolation``.

    A composer paints no mouth interior unless `add_mouth_interior` gives it one.
    """

    def __init__(self, photo: np.ndarray, box: CropBox, composition: Composition = "native", *,
                 crop_only: bool = False, rest: RenderedChunk | None = None,
                 person: np.ndarray | None = None, feather: float = 0.04,
                 interpolation: str = "auto") -> None:
        if composition not in COMPOSITIONS:
            raise ValueError(f"composition must be one of {COMPOSITIONS}, got {composition!r}")
        self.interpolation = resolve_interpolation(interpolation, box.size)
        if person is not None and person.shape != photo.shape[:2]:
            raise ValueError(f"person mask shape {person.shape} does not match the photo's {photo.shape[:2]}")
        self.composition, self.crop_only = composition, crop_only
        self.mouth: MouthInterior | None = None
        if composition == "model":
            self._paste = PasteBack(photo, box, feather=feather, crop_only=crop_only)
            return
        self.photo, self.box = photo, box
        s = box.size
        patch = photo[box.y0 : box.y0 + s, box.x0 : box.x0 + s]
        self.crop = torch.from_numpy(np.ascontiguousarray(patch)).permute(2, 0, 1)[None].float() / 255.0
        # the spline's 2x crop, once for every chunk (its even samples are the crop itself)
        self.upsampled = spline_upsample(self.crop) if self.interpolation == "spline" else None
        # the rest pose's maps, moved to the CPU once (the zero of the motion for every chunk)
        self.rest_flow = None if rest is None else rest.deformation.float().cpu()
        self.rest_occlusion = None if rest is None else rest.occlusion.float().cpu()
        self.square = torch.ones(1, 1, s, s) if crop_only else torch.from_numpy(
            feather_mask(box, photo.shape[:2], feather))[None, None]
        self.person, self._person_cache = None, None
        if person is not None:
            self.person = torch.from_numpy(np.ascontiguousarray(person[box.y0 : box.y0 + s, box.x0 : box.x0 + s]))[None, None]

    def add_mouth_interior(self, kp_source: torch.Tensor, **options: float) -> MouthInterior:
        """From now on, paint the inside of a mouth opened past the photo's on each frame
        (`MouthInterior` of this composer's crop; ``kp_source [1, 50, 2]`` the photo's body
        keypoints, ``options`` its keyword arguments). Every later call then needs the chunk's
        driving keypoints. Native composition only; ValueError where the photo's keypoints show
        no usable face."""
        if self.composition != "native":
            raise ValueError(f"a mouth interior needs composition='native', got {self.composition!r}")
        self.mouth = MouthInterior(self.crop, kp_source.float().cpu(), **options)
        return self.mouth

    def __call__(self, chunk: RenderedChunk, kp_driving: torch.Tensor | None = None) -> np.ndarray:
        """One chunk of `tps.Renderer.iter_render_maps` -> ``uint8 [b, H, W, 3]``; ``kp_driving
        [b, K, 2]`` the keypoints that drove it (needed with ``mouth``)."""
        if self.composition == "model":
            return self._paste(chunk.frames)
        if self.mouth is not None and (kp_driving is None or len(kp_driving) != len(chunk.deformation)):
            raise ValueError(f"a composer with a mouth needs kp_driving for each of the chunk's "
                             f"{len(chunk.deformation)} frames, got {None if kp_driving is None else len(kp_driving)}")
        step = max(1, COMPOSE_PIXELS_PER_CALL // (self.box.size * self.box.size))
        if len(chunk.deformation) <= step:
            return self._compose(chunk, kp_driving)
        parts = [self._compose(RenderedChunk(*(None if t is None else t[i : i + step]
                                               for t in (chunk.frames, chunk.generated, chunk.deformation,
                                                         chunk.occlusion, chunk.ghost))),
                               None if kp_driving is None else kp_driving[i : i + step])
                 for i in range(0, len(chunk.deformation), step)]
        return np.concatenate(parts)

    def _compose(self, chunk: RenderedChunk, kp_driving: torch.Tensor | None = None) -> np.ndarray:
        deformation = chunk.deformation.float().cpu()
        if self.rest_flow is not None:
            deformation = relative_flow(deformation, self.rest_flow)
        frames = compose(self.crop, chunk.generated.float().cpu(), deformation, chunk.occlusion.float().cpu(),
                         self.rest_occlusion, interpolation=self.interpolation, upsampled=self.upsampled,
                         ghost=None if chunk.ghost is None else chunk.ghost.float().cpu())
        if self.mouth is not None:
            frames = self.mouth(frames, kp_driving)
        alpha = self.square
        if self.person is not None:
            # at the flow's own resolution (64x64 for a 256 model; never below 64): a feathered
            # region needs no more
            size = tuple(max(64, int(d)) for d in deformation.shape[1:3])
            region = F.interpolate(motion_mask(self._person_at(size), deformation),
                                   size=self.crop.shape[-2:], mode="bilinear", align_corners=False)
            alpha = alpha * region
        blended = torch.lerp(self.crop, frames, alpha)
        pixels = to_uint8(blended.permute(0, 2, 3, 1))
        if self.crop_only:
            even = self.box.size - self.box.size % 2
            return np.ascontiguousarray(pixels[:, :even, :even])
        return paste_into(self.photo, self.box, pixels)

    def _person_at(self, size: tuple[int, int]) -> torch.Tensor:
        """The person mask at ``size`` ``[1, 1, h, w]`` (the flow's), resized once."""
        if self._person_cache is None or tuple(self._person_cache.shape[-2:]) != tuple(size):
            self._person_cache = F.interpolate(self.person, size=tuple(size), mode="bilinear",
                                               align_corners=False, antialias=self.box.size > size[0])
        return self._person_cache
