"""Which TPS transforms move pixels: a renderer's response to each transform's keypoints.

The renderer (dense motion network) decides, pixel by pixel, which of its ``K`` TPS transforms
moves that pixel (soft masks). A transform that no pixel is assigned to can move its keypoints as
much as the denoiser likes: nothing in the frame follows. This is the first thing to check of a
renderer trained on body-anchored keypoints (docs/body_keypoints.md): do the hands, forearms and
mouth own the pixels around them?

`part_response` shifts one transform's 5 keypoints at a time by ``shift`` (x, in [-1, 1] units
of the crop) from the photo's own keypoints, renders the flow of both, and reports per transform
how much of the shift reaches the pixels next to its keypoints (1 = they follow fully, 0 = they
stay) and the largest response anywhere (a transform that moves pixels elsewhere than its part).
It reads the flow only (no video, no landmarks on the output), so it takes a second per photo::

    python scripts/demo_weights_v2/part_response.py --weights DIR --image PHOTO [PHOTO ...]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class PartResponse:
    """One transform's response: ``near`` is the mean x displacement of the sampling grid within
    ``radius`` of the transform's keypoints over ``shift`` (1: those pixels follow the keypoints);
    ``anywhere`` the largest displacement over the whole flow, over ``shift``; ``pixels`` how many
    flow cells lie within ``radius`` (0: the part is outside the crop, ``near`` is NaN)."""

    name: str
    near: float
    anywhere: float
    pixels: int


def transform_names(num_tps: int, keypoint_source: str) -> list[str]:
    """Body part names for body keypoints (`difftted.motion.body_keypoints.TRANSFORMS`), else
    ``tps0 .. tps{K-1}`` (a learned detector's transforms belong to no named part)."""
    if keypoint_source == "body":
        from difftted.motion.body_keypoints import TRANSFORMS

        if len(TRANSFORMS) == num_tps:
            return list(TRANSFORMS)
    return [f"tps{k}" for k in range(num_tps)]


@torch.no_grad()
def part_response(pipeline, photo: np.ndarray, shift: float = 0.1, radius: float = 0.08) -> list[PartResponse]:
    """Per transform of ``pipeline``'s renderer, how far the pixels next to its keypoints follow a
    shift of those keypoints (module docstring), on ``photo`` (uint8 ``[H, W, 3]``).

    Args:
        pipeline: a `difftted.DiffTEDPipeline` (detector or body keypoints).
        photo: the speaker's photo; cropped as the pipeline crops it.
        shift: x shift of the transform's 5 keypoints, in [-1, 1] units of the crop (> 0).
        radius: "next to" = within this distance (same units) of any of the 5 keypoints (> 0).

    Returns:
        One `PartResponse` per transform, in the renderer's order.
    """
    from tps.transform import make_coordinate_grid

    if not shift > 0 or not radius > 0:
        raise ValueError(f"shift and radius must be > 0, got shift={shift!r}, radius={radius!r}")
    box, crop = pipeline.crop_person(photo)
    prepared = pipeline.prepare_source(photo, box, crop)
    source = prepared.kp_source[0]  # [K*5, 2]
    num_tps = source.shape[0] // 5
    drives = [source]
    for k in range(num_tps):
        moved = source.clone()
        moved[5 * k:5 * k + 5, 0] += shift
        drives.append(moved)
    maps = list(pipeline.frame_renderer.iter_render_maps(prepared, torch.stack(drives), batch_size=len(drives),
                                                         progress=False))
    grid = torch.cat([m.deformation for m in maps]).cpu()  # [1+K, h, w, 2]
    cells = make_coordinate_grid(*grid.shape[1:3]).reshape(-1, 2)  # [h*w, 2], (x, y) of each flow cell
    out = []
    for k, name in enumerate(transform_names(num_tps, pipeline.keypoint_source)):
        dx = (grid[1 + k, ..., 0] - grid[0, ..., 0]).reshape(-1)
        near = (torch.cdist(cells, source[5 * k:5 * k + 5].cpu().float()) < radius).any(dim=1)
        pixels = int(near.sum())
        # the sampling grid moves against the keypoints: a pixel that follows samples from -shift
        follow = float((-dx[near]).mean() / shift) if pixels else float("nan")
        out.append(PartResponse(name, follow, float(dx.abs().max() / shift), pixels))
    return out


def format_responses(responses: dict[str, list[PartResponse]]) -> str:
    """A table: one row per transform, one column per photo (``near`` / ``anywhere``)."""
    names = [r.name for r in next(iter(responses.values()))]
    header = ["transform"] + [f"{photo} near / anywhere" for photo in responses]
    rows = [[n] + [f"{rs[i].near:.2f} / {rs[i].anywhere:.2f}" if rs[i].pixels else f"- / {rs[i].anywhere:.2f}"
                   for rs in responses.values()] for i, n in enumerate(names)]
    widths = [max(len(str(r[c])) for r in [header] + rows) for c in range(len(header))]
    line = lambda r: "  ".join(str(v).ljust(widths[c]) for c, v in enumerate(r))  # noqa: E731
    return "\n".join([line(header), "-" * len(line(header))] + [line(r) for r in rows])
