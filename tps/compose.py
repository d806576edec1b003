"""Composition at the source's own resolution: the model's motion applied to the real pixels.

The networks run at the model's size (e.g. 256x256), but what they predict is resolution-free:
the flow ``deformation [B, h, w, 2]`` holds source coordinates in ``[-1, 1]`` (align_corners=True
semantics), and the occlusion map ``[B, 1, H_m, W_m]`` says where the warped source is visible
(1) and where the inpainting decoder must make pixels up (0). `compose` therefore warps the
full-resolution source itself with the flow resized to its size, and takes the model's generated
pixels, resized, only where the source is not visible. Detail the photo has is kept instead of
being rebuilt from a 256-pixel copy, and a zero motion returns the source exactly.

Both maps are taken relative to the source's own pose (``rest``: one render of the source
keypoints). At rest the networks do not return the identity: the TPS fit's regularisation
(0.01 on the whole diagonal, as the official code) shrinks the affine part, so the rest flow is
off by up to 1.6 px at 466 px (0.25 px on average, measured on the bundled weights), and the
rest occlusion is below 1 in places (0.73 at worst). The flow used is ``deformation -
deformation_rest + identity`` and the visibility ``clamp(occlusion / occlusion_rest, 0, 1)``:
the rest pose gives the source back exactly, and only what the motion uncovers is generated.
The warp of the real pixels is ``"spline"`` by default: the source upsampled 2x once by its
quintic spline (`tps.interpolation.spline_upsample`), then sampled bicubic per frame; it keeps
more of the photo's fine detail at sub-pixel offsets than ``grid_sample``'s bicubic on the source
itself (``"bicubic"``, the earlier default, still selectable; bilinear blurs most).

`motion_mask` gives the region a frame may change at all (the person where they were and where
the flow moves them, dilated and feathered): outside it a caller keeps the photo's own pixels,
so the background stays still (see ``difftted.pipeline.person.person_mask``).

All functions are plain torch, batched over frames; images are ``float32`` in ``[0, 1]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tps.interpolation import check_interpolation, spline_upsample

__all__ = ["resize_flow", "relative_flow", "warp", "visibility", "compose", "motion_mask"]

#: Floor of ``occlusion_rest`` in the division: where the model is unsure even at rest, a
#: small value must not turn noise into full visibility.
_REST_FLOOR = 0.25


def resize_flow(deformation: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Flow ``[B, h, w, 2]`` (source (x, y) in [-1, 1]) -> ``[B, H, W, 2]`` for ``size = (H, W)``.

    Bilinear with align_corners=True, as the inpainting network resizes it: the flow is a map
    from normalised coordinates to normalised coordinates, so the resized flow is the same warp
    at any pixel count.
    """
    _check_flow(deformation)
    if tuple(deformation.shape[1:3]) == tuple(size):
        return deformation
    grid = F.interpolate(deformation.permute(0, 3, 1, 2), size=tuple(size), mode="bilinear", align_corners=True)
    return grid.permute(0, 2, 3, 1)


def relative_flow(deformation: torch.Tensor, deformation_rest: torch.Tensor) -> torch.Tensor:
    """``deformation - deformation_rest + identity`` (all ``[B|1, h, w, 2]``): the motion relative
    to the rest pose's flow, so the rest pose maps every pixel to itself."""
    from tps.transform import make_coordinate_grid

    _check_flow(deformation)
    _check_flow(deformation_rest)
    if deformation_rest.shape[1:] != deformation.shape[1:]:
        raise ValueError(f"deformation_rest {tuple(deformation_rest.shape)} and deformation "
                         f"{tuple(deformation.shape)} differ in size")
    identity = make_coordinate_grid(*deformation.shape[1:3], dtype=deformation.dtype, device=deformation.device)
    return deformation - deformation_rest + identity


def warp(source: torch.Tensor, deformation: torch.Tensor, mode: str = "bilinear",
         upsampled: torch.Tensor | None = None) -> torch.Tensor:
    """``source [1|B, C, H, W]`` sampled by the flow resized to ``H x W``: ``[B, C, H, W]``.

    ``mode`` ``"bilinear"`` (the official ``deform_input``), ``"bicubic"`` or ``"spline"``
    (bicubic on ``upsampled``, the source upsampled 2x by its quintic spline: pass
    `tps.interpolation.spline_upsample` of ``source`` to reuse it over calls, else it is computed
    here); zero padding, align_corners=True. Bicubic and spline may leave the source's range.
    """
    check_interpolation(mode, "mode")
    if source.dim() != 4:
        raise ValueError(f"source must be [1|B, C, H, W], got shape {tuple(source.shape)}")
    flow = resize_flow(deformation, source.shape[-2:])
    if mode == "spline":
        fine = tuple(2 * d - 1 for d in source.shape[-2:])
        if upsampled is None:
            upsampled = spline_upsample(source)
        elif tuple(upsampled.shape[:2]) != tuple(source.shape[:2]) or tuple(upsampled.shape[-2:]) != fine:
            raise ValueError(f"upsampled must be [{source.shape[0]}, {source.shape[1]}, {fine[0]}, {fine[1]}] "
                             f"(spline_upsample of the source), got shape {tuple(upsampled.shape)}")
        source, mode = upsampled, "bicubic"
    if source.shape[0] != flow.shape[0]:
        if source.shape[0] != 1:
            raise ValueError(f"source batch {source.shape[0]} does not match the flow's {flow.shape[0]}")
        source = source.expand(flow.shape[0], *source.shape[1:])
    return F.grid_sample(source, flow.to(source.dtype), mode=mode, padding_mode="zeros", align_corners=True)


def visibility(occlusion: torch.Tensor, occlusion_rest: torch.Tensor | None = None) -> torch.Tensor:
    """Where the warped source is used, ``[B, 1, h, w]`` in [0, 1].

    ``occlusion [B, 1, h, w]`` (the finest occlusion map); with ``occlusion_rest [1, 1, h, w]``
    (the map of the source's own pose) the ratio ``occlusion / max(occlusion_rest, 0.25)``,
    clamped to [0, 1], so the rest pose counts as fully visible.
    """
    if occlusion.dim() != 4 or occlusion.shape[1] != 1:
        raise ValueError(f"occlusion must be [B, 1, h, w], got shape {tuple(occlusion.shape)}")
    if occlusion_rest is None:
        return occlusion.clamp(0.0, 1.0)
    if occlusion_rest.shape[-2:] != occlusion.shape[-2:]:
        raise ValueError(f"occlusion_rest {tuple(occlusion_rest.shape)} and occlusion "
                         f"{tuple(occlusion.shape)} differ in size")
    return (occlusion / occlusion_rest.clamp(min=_REST_FLOOR)).clamp(0.0, 1.0)


def compose(
    source: torch.Tensor,
    generated: torch.Tensor,
    deformation: torch.Tensor,
    occlusion: torch.Tensor,
    occlusion_rest: torch.Tensor | None = None,
    deformation_rest: torch.Tensor | None = None,
    interpolation: str = "spline",
    upsampled: torch.Tensor | None = None,
    ghost: torch.Tensor | None = None,
) -> torch.Tensor:
    """Frames at the source's resolution: ``[B, 3, H, W]``.

    Args:
        source: ``[1, 3, H, W]`` the crop at its own size (any H, W >= 2).
        generated: ``[B, 3, h, w]`` the decoder's own pixels at the model's size (before its blend
            with the warped source; ``InpaintingNetwork.decode``'s ``"generated"``).
        deformation: ``[B, h', w', 2]`` the flow (any resolution).
        occlusion: ``[B, 1, h, w]`` the finest occlusion map; occlusion_rest: see `visibility`.
        deformation_rest: ``[1, h', w', 2]`` the rest pose's flow (see `relative_flow`), or None.
        interpolation: the warp of the source (`warp`'s ``mode``): ``"spline"`` (default; the
            result is clamped to [0, 1]), ``"bicubic"`` (earlier releases; may overshoot [0, 1] a
            little), ``"bilinear"``.
        upsampled: with ``"spline"``, `tps.interpolation.spline_upsample` of ``source``, computed
            once for all the frames of a source (None: computed here).
        ghost: ``[B, 1, h, w]`` in [0, 1] or None: where the source must not show whatever the
            ratio to the rest pose says (a moved part's old place, `tps.render.RenderedChunk`);
            the visibility is multiplied by ``1 - ghost``.

    ``warp(source) * v + resize(generated) * (1 - v)`` with ``v = visibility(...)`` resized to
    ``H x W``. At the rest pose (``deformation == deformation_rest`` and ``occlusion ==
    occlusion_rest``) it is ``source`` up to float rounding.
    """
    if generated.dim() != 4 or generated.shape[1] != source.shape[1]:
        raise ValueError(f"generated must be [B, {source.shape[1]}, h, w], got shape {tuple(generated.shape)}")
    size = tuple(source.shape[-2:])
    if deformation_rest is not None:
        deformation = relative_flow(deformation, deformation_rest)
    warped = warp(source, deformation, mode=check_interpolation(interpolation), upsampled=upsampled)
    if interpolation == "spline":
        warped = warped.clamp_(0.0, 1.0)
    visible = visibility(occlusion, occlusion_rest)
    if ghost is not None:
        visible = visible * (1 - _resize(ghost.to(visible.dtype), tuple(visible.shape[-2:])).clamp(0.0, 1.0))
    visible = _resize(visible, size)
    if torch.all(visible >= 1.0):
        return warped
    return torch.lerp(_resize(generated.to(warped.dtype), size), warped, visible)


def motion_mask(
    person: torch.Tensor, deformation: torch.Tensor, dilate: float = 0.02, feather: float = 0.04
) -> torch.Tensor:
    """Where a frame may differ from the source: ``[B, 1, h, w]`` in [0, 1] at ``person``'s size.

    ``person [1, 1, h, w]`` in [0, 1] is the source's person mask (1 = person). The region is
    the person where they are in the source (what a moving limb uncovers is there) united with
    where the flow puts them in the frame (``warp(person)``), grown by ``dilate`` and then
    feathered over ``feather``, both as fractions of the mask's longer side.
    """
    if person.dim() != 4 or person.shape[:2] != (1, 1):
        raise ValueError(f"person must be [1, 1, h, w], got shape {tuple(person.shape)}")
    for name, value in (("dilate", dilate), ("feather", feather)):
        if not 0.0 <= value < 0.5:
            raise ValueError(f"{name} must be in [0, 0.5), got {value!r}")
    moved = warp(person, deformation)
    region = torch.maximum(person.expand_as(moved), moved)
    side = max(person.shape[-2:])
    grow = int(round(dilate * side))
    soft = int(round(feather * side))
    # Grow by `dilate` and by the blur's reach (two box passes of radius `soft`), then blur: the
    # ramp lies outside the dilated region, so the mask stays exactly 1 over all that may move.
    region = _dilate(region, grow + 2 * soft)
    if soft > 0:
        region = _box_blur(region, soft)
    return region.clamp(0.0, 1.0)


def _dilate(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Max over a ``(2 radius + 1)`` square, as two 1-D passes (a square's max is separable)."""
    if radius <= 0:
        return x
    k = 2 * radius + 1
    x = F.max_pool2d(x, (1, k), stride=1, padding=(0, radius))
    return F.max_pool2d(x, (k, 1), stride=1, padding=(radius, 0))


def _box_blur(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Two passes of a separable box filter (close to a Gaussian), replicate padding."""
    k = 2 * radius + 1
    for _ in range(2):
        x = F.avg_pool2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), (1, k), stride=1)
        x = F.avg_pool2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), (k, 1), stride=1)
    return x


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    antialias = x.shape[-1] > size[1] or x.shape[-2] > size[0]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=antialias)


def _check_flow(deformation: torch.Tensor) -> None:
    if not isinstance(deformation, torch.Tensor) or deformation.dim() != 4 or deformation.shape[-1] != 2:
        shape = tuple(deformation.shape) if isinstance(deformation, torch.Tensor) else type(deformation).__name__
        raise ValueError(f"deformation must be a [B, h, w, 2] flow, got {shape}")
