"""Part masks: contribution maps drawn from the keypoints where the transforms are body parts.

A dense motion network decides, per pixel, which TPS transform moves it (the contribution maps).
For learned keypoints that is the only way. For keypoints anchored on body parts (an arm's
transform has its points along the arm) the geometry already says which pixels belong to which
transform, and a network that was never taught to give a hand's pixels to the hand's transform
(a renderer trained on little footage of moving hands gives them none) leaves the hands still
however the keypoints move. A `PartLayout` fixes that without training:

* each `Part` is a *capsule* (the union of line segments between keypoints, thickened by a
  radius measured in a unit length: the source's distance between two named keypoints, e.g. the
  shoulders) around its transform's driving keypoints;
* the parts are layered bottom to top (a hand over its forearm over its upper arm); a pixel
  inside a part takes that part's transform, the network's contribution maps keep the rest
  (their weight on the parts' own transforms moves to the background transform);
* **ghosts**: where a part has moved away, the pixels it uncovers would sample the part's old
  pixels through the transform of what lies under it (the torso), and show the arm twice. A
  pixel that samples the *source* part's capsule while lying outside every *driving* part
  capsule is marked occluded (``occlusion *= 1 - ghost``), and so is a pixel whose part samples
  outside the source image (a hand raised into view from below the frame): the inpainting
  network's pixels there are replaced by a fill from the visible pixels around, each part of
  the hole from its nearest side (`fill_holes`: the decoder, never trained on such holes, paints
  them in bright blotches).
* a part whose capsule lies wholly outside the source image (hands below a head-and-shoulders
  photo) is left to the network (`active_parts`): there are no pixels of it to move.
* **visible**: a limb's pixels at its new place are the source's own, moved; the network's
  occlusion maps, never trained on a hand that moves alone, mark some of them for the decoder
  (which paints the shirt's colour into a moved phone). Inside the occluding parts' layered
  weights the occlusion is raised to that weight (`part_visibility`).
* **foreground** (optional, a person segmentation of the source): a capsule is a shape, and the
  pixels it covers beside a hand are sofa or wall; with a foreground mask a part owns only the
  pixels its transform brings from the person (what a hand holds, a phone, a pen, counts as the
  person to a selfie segmentation), so a capsule can be drawn generously enough to carry a held
  object without dragging a disc of background along (`foreground_at`). The foreground may also
  hold one channel per part: a part then owns only its own channel's pixels (a hand its skin, not
  the dress around it that a person mask counts as the person too).
* **extent** (optional, one channel per part): source pixels a part owns past its capsule (the
  top of a phone held upright above the hand): the part's mask is the larger of its capsule and
  its extent carried by its transform, and the extent's old place is a ghost too (`part_extent`).

At the source's own pose (driving = source keypoints) the parts' transforms, refitted to
interpolate their keypoints (`PART_REGULARISATION`), are the identity, and the ghost term
vanishes (a pixel samples itself, and the union of the driving capsules covers it at least as
much as any one source capsule); the network's own transforms keep the official fit's small rest
offset, which composition at the photo's resolution removes (`tps.compose.relative_flow`). `tps`
stays free of body semantics: the layout (which keypoints, which radii) is data from the caller
(difftted's body table builds one: `difftted.motion.body_keypoints.part_layout`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tps.transform import TPS, make_coordinate_grid

__all__ = ["Part", "PartLayout", "capsule_masks", "apply_part_masks", "ghost_mask", "fill_holes",
           "foreground_at", "part_foreground", "part_extent", "similarity_frame", "part_visibility",
           "part_shift", "ghost_weight",
           "PART_REGULARISATION"]

#: The parts' TPS are refitted with this regularisation instead of the official 0.01 (which the
#: network's own transforms keep, as trained): 0.01 on a hand's tight cluster of points leaves
#: the fit at the source's own pose up to ~0.06 (8 pixels at 256) away from the identity; a fit
#: that interpolates its points keeps a part still at rest and moves it by exactly its keypoints.
PART_REGULARISATION = 1e-6


@dataclass(frozen=True)
class Part:
    """One body part: the TPS transform that moves it and the capsule that covers it.

    transform: index of the TPS transform (0 .. K-1; channel ``transform + 1`` of the contribution
        maps, channel 0 being the background).
    segments: ``(i, j, t0, t1)`` per capsule axis: from ``kp[i] + t0 (kp[j] - kp[i])`` to
        ``kp[i] + t1 (kp[j] - kp[i])`` (``kp`` the K*5 keypoints; ``t0 = 0, t1 = 1`` is the whole
        segment; ``i == j`` is a disc around one keypoint).
    radius: the capsule's radius in units of `PartLayout.unit` (> 0).
    occludes: whether pixels that sample this part's source capsule from outside every driving
        part count as occluded (see the module doc). Off for parts that only deform in place
        (a jaw) and never uncover anything.
    feather: this part's soft edge (as `PartLayout.feather`), or None for the layout's. A part
        that deforms in place (a jaw) blends into the motion around it over a wider edge than a
        limb that moves over the background needs: a hard edge there shows as a crease.
    rigid: move the part by the least-squares similarity (rotation, uniform scale, translation)
        of its transform's 5 keypoints instead of their TPS (`similarity_frame`). A limb does not
        bend; and a TPS through a hand's tight cluster of points, driven by points that are not
        a rigid copy of the source's, extrapolates wildly a little past them, where a capsule
        reaches to carry what the hand holds.
    ghost_shift: ``(lo, hi)`` in capsule radii, or ``(0, 0)`` (every ghost counts): the part's
        old place is a ghost only as far as the part moved (`part_shift`): not at all below
        ``lo``, fully from ``hi`` on, smoothly between. For a limb whose old place is covered by
        its own cloth (an upper arm lies against the torso in the same suit): shifted by a
        fraction of its width it uncovers a sliver of itself, and its old pixels there (the
        sleeve's folds) look better than a smooth fill (a flat band down the sleeve).
    """

    transform: int
    segments: tuple[tuple[int, int, float, float], ...]
    radius: float
    occludes: bool = True
    rigid: bool = False
    feather: float | None = None
    ghost_shift: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        if not isinstance(self.transform, int) or self.transform < 0:
            raise ValueError(f"Part.transform must be an int >= 0, got {self.transform!r}")
        if not self.segments:
            raise ValueError("Part.segments must name at least one segment")
        for seg in self.segments:
            if len(seg) != 4:
                raise ValueError(f"Part.segments entries must be (i, j, t0, t1), got {seg!r}")
        if not self.radius > 0:
            raise ValueError(f"Part.radius must be > 0, got {self.radius!r}")
        if self.feather is not None and not 0 < self.feather <= 2:
            raise ValueError(f"Part.feather must be None or in (0, 2], got {self.feather!r}")
        lo, hi = self.ghost_shift if len(self.ghost_shift) == 2 else (-1.0, -1.0)
        if not (0 <= lo < hi or lo == hi == 0):
            raise ValueError(f"Part.ghost_shift must be (lo, hi) with 0 <= lo < hi, or (0, 0), "
                             f"got {self.ghost_shift!r}")


@dataclass(frozen=True)
class PartLayout:
    """Parts bottom to top (a later part covers an earlier one where both claim a pixel).

    unit: two keypoint indices; their distance in the *source* keypoints is the length the radii
        are measured in (one number per item, the same for source and driving capsules, so a
        part keeps its thickness as it moves).
    feather: the width of a capsule's soft edge as a fraction of its radius: the mask falls
        from 1 at ``radius * (1 - feather / 2)`` to 0 at ``radius * (1 + feather / 2)``.
    """

    parts: tuple[Part, ...]
    unit: tuple[int, int]
    feather: float = 0.5

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError("PartLayout.parts must hold at least one Part")
        transforms = [p.transform for p in self.parts]
        if len(set(transforms)) != len(transforms):
            raise ValueError(f"PartLayout.parts must own distinct transforms, got {transforms}")
        if len(self.unit) != 2 or self.unit[0] == self.unit[1]:
            raise ValueError(f"PartLayout.unit must be two different keypoint indices, got {self.unit!r}")
        if not 0 < self.feather <= 2:
            raise ValueError(f"PartLayout.feather must be in (0, 2], got {self.feather!r}")

    def check(self, num_tps: int) -> None:
        """ValueError unless every index fits a model with ``num_tps`` transforms."""
        num_kp = 5 * num_tps
        for p in self.parts:
            if p.transform >= num_tps:
                raise ValueError(f"part transform {p.transform} does not exist: the model has {num_tps} transforms")
            for i, j, _, _ in p.segments:
                if not (0 <= i < num_kp and 0 <= j < num_kp):
                    raise ValueError(f"part segment ({i}, {j}) names keypoints outside 0..{num_kp - 1}")
        if not all(0 <= u < num_kp for u in self.unit):
            raise ValueError(f"PartLayout.unit {self.unit} names keypoints outside 0..{num_kp - 1}")

    def unit_length(self, kp_source: torch.Tensor) -> torch.Tensor:
        """``[B|1, N, 2] -> [B|1]``: the source's distance between the two ``unit`` keypoints."""
        a, b = self.unit
        return (kp_source[:, a] - kp_source[:, b]).norm(dim=-1).clamp(min=1e-3)


def capsule_masks(layout: PartLayout, kp: torch.Tensor, unit: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Soft part membership of ``points`` for the capsules around ``kp``.

    layout: the parts; kp: ``[B, N, 2]`` keypoints (x, y) in [-1, 1]; unit: ``[B]`` or ``[1]``
    lengths (`PartLayout.unit_length`); points: ``[B|1, H, W, 2]`` positions (x, y). Returns
    ``[B, P, H, W]`` in [0, 1], one channel per part in layout order (not layered).
    """
    b = max(kp.shape[0], points.shape[0])
    out = []
    for part in layout.parts:
        dist = None
        for i, j, t0, t1 in part.segments:
            a = kp[:, i] + t0 * (kp[:, j] - kp[:, i])  # [B, 2]
            e = kp[:, i] + t1 * (kp[:, j] - kp[:, i])
            axis = (e - a)[:, None, None, :]
            rel = points - a[:, None, None, :]
            t = ((rel * axis).sum(-1) / (axis * axis).sum(-1).clamp(min=1e-12)).clamp(0.0, 1.0)
            d = (rel - t[..., None] * axis).norm(dim=-1)
            dist = d if dist is None else torch.minimum(dist, d)
        radius = (part.radius * unit).view(-1, 1, 1)
        edge = (layout.feather if part.feather is None else part.feather) * radius
        out.append(((radius + edge / 2 - dist) / edge).clamp(0.0, 1.0).expand(b, -1, -1))
    return torch.stack(out, dim=1)


def active_parts(layout: PartLayout, kp_source: torch.Tensor) -> torch.Tensor:
    """``[B|1, P]`` 1 for a part with a capsule end inside the source image, else 0: a part the
    photo does not show (hands below the frame) has no pixels to move and stays with the network."""
    inside = (kp_source.abs() <= 1).all(dim=-1)  # [B, N]
    rows = []
    for part in layout.parts:
        ends = sorted({i for seg in part.segments for i in seg[:2]})
        rows.append(inside[:, ends].any(dim=1))
    return torch.stack(rows, dim=1).to(kp_source.dtype)


def similarity_frame(kp_driving: torch.Tensor, kp_source: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Least-squares similarity transforms from driving to source points, sampled on a grid.

    kp_driving, kp_source: ``[B, P, n, 2]`` (x, y); returns ``[B, P, H, W, 2]``: for each grid
    point p the source position ``mu_s + z (p - mu_d)`` with ``z`` the complex factor (rotation
    and scale) minimising ``sum |z (d_i - mu_d) - (s_i - mu_s)|^2``. Equal point sets give the
    identity exactly.
    """
    mu_d, mu_s = kp_driving.mean(dim=2, keepdim=True), kp_source.mean(dim=2, keepdim=True)
    d, s = kp_driving - mu_d, kp_source - mu_s
    norm = (d * d).sum(dim=(2, 3)).clamp(min=1e-12)  # [B, P]
    re = (d[..., 0] * s[..., 0] + d[..., 1] * s[..., 1]).sum(dim=2) / norm  # z = sum(conj(d) s) / sum |d|^2
    im = (d[..., 0] * s[..., 1] - d[..., 1] * s[..., 0]).sum(dim=2) / norm
    grid = make_coordinate_grid(height, width, dtype=kp_driving.dtype, device=kp_driving.device)
    rel = grid[None, None] - mu_d[:, :, :, None, :]  # [B, P, H, W, 2]
    re, im = re[..., None, None], im[..., None, None]
    x = re * rel[..., 0] - im * rel[..., 1]
    y = im * rel[..., 0] + re * rel[..., 1]
    return torch.stack([x, y], dim=-1) + mu_s[:, :, :, None, :]


def foreground_at(foreground: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """The source's foreground mask ``[1|B, 1, Hs, Ws]`` in [0, 1] read at ``points
    [B, H, W, 2]`` ((x, y) in [-1, 1], bilinear, 0 outside the image): ``[B, H, W]``."""
    if foreground.dim() != 4 or foreground.shape[1] != 1:
        raise ValueError(f"foreground must be [1|B, 1, H, W], got shape {tuple(foreground.shape)}")
    fg = foreground.to(points.dtype).expand(points.shape[0], -1, -1, -1)
    return F.grid_sample(fg, points, mode="bilinear", padding_mode="zeros", align_corners=True)[:, 0]


def part_foreground(foreground: torch.Tensor, num_parts: int) -> list[torch.Tensor]:
    """``foreground [1|B, 1|P, Hs, Ws]`` as one ``[1|B, 1, Hs, Ws]`` mask per part: the same mask
    for every part (one channel), or channel ``p`` for part ``p`` (``P = num_parts`` channels)."""
    if foreground.dim() != 4 or foreground.shape[1] not in (1, num_parts):
        raise ValueError(f"foreground must be [1|B, 1 or {num_parts} (one per part), Hs, Ws], "
                         f"got shape {tuple(foreground.shape)}")
    if foreground.shape[1] == 1:
        return [foreground] * num_parts
    return [foreground[:, p:p + 1] for p in range(num_parts)]


def part_extent(extent: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
    """``extent [1|B, P, Hs, Ws]`` (in [0, 1]: the source pixels each part owns beyond its
    capsule) read by each part at ``grids [B, P, H, W, 2]`` (where it samples the source, (x, y)
    in [-1, 1]; bilinear, 0 outside the image): ``[B, P, H, W]``."""
    if extent.dim() != 4 or extent.shape[1] != grids.shape[1]:
        raise ValueError(f"extent must be [1|B, {grids.shape[1]} (one per part), Hs, Ws], "
                         f"got shape {tuple(extent.shape)}")
    return torch.stack([foreground_at(extent[:, p:p + 1], grids[:, p]) for p in range(grids.shape[1])], dim=1)


def _layered(masks: torch.Tensor) -> torch.Tensor:
    """``[B, P, H, W]`` bottom-to-top masks -> the weight each part keeps under the parts above it."""
    weights = torch.empty_like(masks)
    above = torch.ones_like(masks[:, 0])
    for p in range(masks.shape[1] - 1, -1, -1):
        weights[:, p] = masks[:, p] * above
        above = above * (1 - masks[:, p])
    return weights


def apply_part_masks(
    layout: PartLayout,
    contribution_maps: torch.Tensor,
    transformations: torch.Tensor,
    kp_driving: torch.Tensor,
    kp_source: torch.Tensor,
    foreground: torch.Tensor | None = None,
    extent: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The network's contribution maps with the parts drawn in; returns ``(maps, deformation)``.

    contribution_maps: ``[B, K+1, h, w]`` (softmax over dim 1, channel 0 the background);
    transformations: ``[B, K+1, H, W, 2]`` the grids of the background and the K TPS, at the size
    the parts are drawn at (the maps are resized bilinearly to it when it differs: capsules a few
    pixels wide need more than the dense motion's quarter resolution); kp_driving
    ``[B, K*5, 2]``, kp_source ``[B|1, K*5, 2]``. The parts' layered weights replace the
    network's on their pixels; the network's weight on the parts' own channels moves to the
    background channel. With ``foreground`` (``[1|B, 1, Hs, Ws]`` in [0, 1], the source's person
    mask, or ``[1|B, P, Hs, Ws]``, one mask per part in layout order: `part_foreground`) a part's
    weight at a pixel is scaled by its foreground where its transform samples the source: the
    background inside a capsule stays with the network. With ``extent`` (``[1|B, P, Hs, Ws]`` in
    [0, 1], one channel per part) a part also owns the source pixels its channel marks beyond its
    capsule (a held phone that reaches past the hand's capsule; `part_extent`): its mask is the
    larger of its driving capsule and its extent where its transform samples the source (still
    times the foreground). Returns the new maps ``[B, K+1, H, W]`` (still summing to 1) and
    ``deformation [B, H, W, 2]``.
    """
    b, n, h, w = contribution_maps.shape
    layout.check(n - 1)
    height, width = transformations.shape[2:4]
    if (h, w) != (height, width):
        contribution_maps = F.interpolate(contribution_maps, size=(height, width), mode="bilinear",
                                          align_corners=True)
    grid = make_coordinate_grid(height, width, dtype=kp_driving.dtype, device=kp_driving.device)[None]
    masks = capsule_masks(layout, kp_driving, layout.unit_length(kp_source), grid)
    masks = masks * active_parts(layout, kp_source)[:, :, None, None]
    channels = [p.transform + 1 for p in layout.parts]
    transformations = transformations.clone()
    source_kp = kp_source.expand(b, -1, -1)
    for rigid in (False, True):  # each part's own grid: its exact TPS, or its similarity
        chosen = [p.transform for p in layout.parts if p.rigid == rigid]
        if not chosen:
            continue
        idx = (5 * torch.tensor(chosen, device=kp_driving.device)[:, None]
               + torch.arange(5, device=kp_driving.device)).reshape(-1)
        drv = kp_driving[:, idx].reshape(b, len(chosen), 5, 2)
        src = source_kp[:, idx].reshape(b, len(chosen), 5, 2)
        transformations[:, [t + 1 for t in chosen]] = (
            similarity_frame(drv, src, height, width) if rigid
            else TPS.fit(drv, src, regularisation=PART_REGULARISATION).transform_frame(height, width))
    grids = transformations[:, channels]  # [B, P, H, W, 2]: where each part samples the source
    if extent is not None:
        masks = torch.maximum(masks, part_extent(extent, grids) * active_parts(layout, kp_source)[:, :, None, None])
    if foreground is not None:
        if foreground.shape[1] == 1:
            fg = foreground_at(foreground, grids.reshape(b * len(channels), height, width, 2))
            fg = fg.reshape(b, len(channels), height, width)
        else:
            fg = torch.stack([foreground_at(one, grids[:, p]) for p, one in
                              enumerate(part_foreground(foreground, len(channels)))], dim=1)
        masks = masks * fg
    weights = _layered(masks)
    rest = 1 - weights.sum(dim=1, keepdim=True)
    net = contribution_maps.clone()
    net[:, 0] += net[:, channels].sum(dim=1)
    net[:, channels] = 0
    maps = net * rest
    maps[:, channels] += weights
    deformation = (transformations * maps.unsqueeze(-1)).sum(dim=1)
    return maps, deformation


def part_shift(layout: PartLayout, kp_driving: torch.Tensor, kp_source: torch.Tensor) -> torch.Tensor:
    """``[B, P]``: each part's move, the mean distance of its transform's 5 driving keypoints
    ``[B, K*5, 2]`` from the source's ``[B|1, K*5, 2]``, in units of the part's capsule radius
    (`PartLayout.unit` times `Part.radius`)."""
    unit = layout.unit_length(kp_source)  # [B|1]
    rows = []
    for part in layout.parts:
        idx = slice(5 * part.transform, 5 * part.transform + 5)
        rows.append((kp_driving[:, idx] - kp_source[:, idx]).norm(dim=-1).mean(dim=-1) / (part.radius * unit))
    return torch.stack(rows, dim=1)


def ghost_weight(layout: PartLayout, kp_driving: torch.Tensor, kp_source: torch.Tensor) -> torch.Tensor:
    """``[B, P]`` in [0, 1]: how much of each part's old place counts as a ghost
    (`Part.ghost_shift`: a smoothstep of `part_shift` from ``lo`` to ``hi``; 1 for ``(0, 0)``)."""
    shift = part_shift(layout, kp_driving, kp_source)
    columns = []
    for k, part in enumerate(layout.parts):
        lo, hi = part.ghost_shift
        if hi == 0:
            columns.append(torch.ones_like(shift[:, k]))
            continue
        t = ((shift[:, k] - lo) / (hi - lo)).clamp(0.0, 1.0)
        columns.append(t * t * (3 - 2 * t))
    return torch.stack(columns, dim=1)


def ghost_mask(
    layout: PartLayout,
    deformation: torch.Tensor,
    kp_driving: torch.Tensor,
    kp_source: torch.Tensor,
    size: tuple[int, int],
    foreground: torch.Tensor | None = None,
    maps: torch.Tensor | None = None,
    extent: torch.Tensor | None = None,
) -> torch.Tensor:
    """``[B, 1, H, W]`` in [0, 1]: where the flow shows a part's old pixels or samples off the image.

    deformation: ``[B, h, w, 2]`` (the flow after `apply_part_masks`), resized bilinearly to
    ``size = (H, W)``; kp_driving ``[B, K*5, 2]``, kp_source ``[B|1, K*5, 2]``. A pixel p that
    samples the source at q = flow(p) is a ghost by ``max_k S_k(q) - sum_j D_j(p)`` (clamped to
    [0, 1]), with S_k the source capsule of an occluding part and D_j the driving capsules; a
    pixel inside a driving part whose q lies outside the source image is a ghost by its part
    weight. Multiply the occlusion maps by ``1 - ghost``. With ``foreground`` (as in
    `apply_part_masks`) S_k counts only the person's pixels: background beside a part's old place
    is no ghost, it never moved. With ``maps`` (`apply_part_masks`' ``[B, K+1, h, w]``) D_j is the
    weight part j really took (its layered capsule times the foreground), not its capsule: a
    pixel of a driving capsule the part did not take shows what lies under it, possibly its old
    self. With ``extent`` (as in `apply_part_masks`) S_k also covers part k's extent: the old
    place of a held phone's top is a ghost too. S_k is weighted by `ghost_weight` (how far part
    k moved; see `Part.ghost_shift`).
    """
    height, width = size
    flow = deformation
    if flow.shape[1:3] != (height, width):
        flow = F.interpolate(flow.permute(0, 3, 1, 2), size=(height, width), mode="bilinear",
                             align_corners=True).permute(0, 2, 3, 1)
    unit = layout.unit_length(kp_source)
    if maps is None:
        grid = make_coordinate_grid(height, width, dtype=flow.dtype, device=flow.device)[None]
        driving = capsule_masks(layout, kp_driving, unit, grid) * active_parts(layout, kp_source)[:, :, None, None]
        taken = _layered(driving).sum(dim=1).clamp(max=1.0)
    else:
        driving = maps[:, [p.transform + 1 for p in layout.parts]]
        if driving.shape[-2:] != (height, width):
            driving = F.interpolate(driving, size=(height, width), mode="bilinear", align_corners=False)
        taken = driving.sum(dim=1).clamp(max=1.0)
    occluding = [k for k, p in enumerate(layout.parts) if p.occludes]
    ghost = torch.zeros_like(flow[..., 0])
    if occluding:
        source = capsule_masks(layout, kp_source.expand(flow.shape[0], -1, -1), unit, flow)
        if extent is not None:
            source = torch.maximum(source, part_extent(extent, flow[:, None].expand(-1, len(layout.parts), -1, -1, -1)))
        weight = active_parts(layout, kp_source) * ghost_weight(layout, kp_driving, kp_source)  # [B, P]
        source = source * weight[:, :, None, None]
        if foreground is not None:
            source = source * torch.stack([foreground_at(one, flow) for one in
                                           part_foreground(foreground, len(layout.parts))], dim=1)
        ghost = (source[:, occluding].amax(dim=1) - driving.sum(dim=1)).clamp(0.0, 1.0)
    outside = ((flow.abs() > 1).any(dim=-1)).to(flow.dtype)
    ghost = torch.maximum(ghost, outside * taken)
    return ghost[:, None]


def part_visibility(layout: PartLayout, maps: torch.Tensor) -> torch.Tensor:
    """``[B, 1, H, W]``: the layered weight of the occluding parts in ``maps`` (`apply_part_masks`'
    ``[B, K+1, H, W]``): where a limb's own pixels are shown, so visible in the source."""
    channels = [p.transform + 1 for p in layout.parts if p.occludes]
    if not channels:
        return torch.zeros_like(maps[:, :1])
    return maps[:, channels].sum(dim=1, keepdim=True).clamp(0.0, 1.0)


#: `fill_holes`: passes of a 5x5 mean over the filled pixels after the peel (its seams between
#: the colours of two sides are rays; the mean softens them).
FILL_SMOOTHING = 8


def fill_holes(image: torch.Tensor, hole: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """``image [B, C, H, W]`` with ``hole [B, 1, H, W]`` (1 = unknown) filled from the pixels around.

    Peeled from the edge inwards: ring by ring, each unknown pixel (hole over 0.5) next to known
    ones takes their mean, so each part of the hole takes the colours of its nearest side (a hand
    that leaves the sofa's edge uncovers sofa on one side and shirt on the other, not their mix),
    then `FILL_SMOOTHING` passes of a 5x5 mean soften the seams. Pixels the peel cannot reach (no
    known pixel around at all) take a push-pull mean (`_push_pull`). Known pixels (hole 0) are
    returned unchanged; a soft hole edge mixes the image and the fill. ``exclude`` (``[B, 1, H,
    W]`` in [0, 1], optional) marks known pixels the fill must not take its colours from: the
    moved parts themselves (`part_visibility`), so that what a hand uncovers in a clasp is filled
    from the dress around it, not from the skin of the hands around the hole.
    """
    hole = hole.clamp(0.0, 1.0)
    known = 1 - hole
    if exclude is not None:
        known = known * (1 - exclude).clamp(0.0, 1.0)
    unknown = (hole > 0.5).any(dim=0)[0]
    if not bool(unknown.any()):
        return torch.lerp(image, _push_pull(image, known), hole)
    rows, cols = unknown.any(dim=1).nonzero()[:, 0], unknown.any(dim=0).nonzero()[:, 0]
    margin = 2 * FILL_SMOOTHING + 2  # the smoothing reads this far from the hole's box
    y0, y1 = max(int(rows[0]) - margin, 0), min(int(rows[-1]) + margin + 1, image.shape[-2])
    x0, x1 = max(int(cols[0]) - margin, 0), min(int(cols[-1]) + margin + 1, image.shape[-1])
    box = (..., slice(y0, y1), slice(x0, x1))
    have = (known[box] > 0.5).to(image.dtype)
    value = image[box] * have
    free = (hole[box] > 0).to(image.dtype)  # smoothed: the hole and its soft edge
    for _ in range(value.shape[-2] + value.shape[-1]):
        total = F.avg_pool2d(value, 3, 1, 1, count_include_pad=False)
        count = F.avg_pool2d(have, 3, 1, 1, count_include_pad=False)
        grow = (count > 0) & (have == 0)
        if not bool(grow.any()):
            break
        value = torch.where(grow, total / count.clamp(min=1e-12), value)
        have = torch.where(grow, torch.ones_like(have), have)
    fill = value  # known pixels: the image itself
    if bool((have == 0).any()):  # what the peel cannot reach (no known pixel around it at all)
        fill = torch.where(have > 0, value, _push_pull(image, known)[box])
    for _ in range(FILL_SMOOTHING):
        fill = torch.lerp(fill, F.avg_pool2d(fill, 5, 1, 2, count_include_pad=False), free)
    out = image.clone()
    out[box] = torch.lerp(image[box], fill, hole[box])
    return out


def _push_pull(image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """``image [B, C, H, W]`` filled where ``known [B, 1, H, W]`` (in [0, 1]) is low: halve the
    weighted image and its weights until one pixel is left, then go back up, each level keeping
    its own weighted mean where its pixels are known and taking the coarser level's colour where
    they are not (a smooth mean of everything known)."""
    levels = [(image * known, known)]
    while max(levels[-1][0].shape[-2:]) > 1:
        x, m = levels[-1]
        levels.append((F.avg_pool2d(x, 2, ceil_mode=True), F.avg_pool2d(m, 2, ceil_mode=True)))
    x, m = levels[-1]
    fill = x / m.clamp(min=1e-8)
    for x, m in reversed(levels[:-1]):
        coarse = F.interpolate(fill, size=x.shape[-2:], mode="bilinear", align_corners=False)
        weight = m.clamp(0.0, 1.0)
        fill = x / m.clamp(min=1e-8) * weight + coarse * (1 - weight)
    return fill
