"""Which of the photo's pixels a hand's part owns: the hand (and what it holds), not the clothes
under and around it.

A part's capsule (`difftted.motion.body_keypoints.PART_CAPSULES`) is drawn generously around a
hand so that it carries a held phone, and the person mask keeps the sofa out of it, but a person
mask counts the dress the hand rests on as the person too. Raised, a hand held against the body
carried a disc of the dress with it, outline and all (the TED speaker of docs/demo_weights.md).
With clasped hands each capsule also covers the other hand's fingers, and the hand on top took
them along: a copy of fingers followed one hand while the other kept its own.

`part_foregrounds` gives each part its own mask of the source (`tps.parts.part_foreground`):

* the arms and the mouth keep the person mask;
* a hand keeps the person pixels whose colour is nearer the hand's own colours than the colours
  it lies on. The hand's colours are sampled along its own bones (within `CORE` of its capsule's
  radius), the colours it lies on in a ring around it (`RING` radii, person pixels, none inside
  another part's capsule: a raised hand's own forearm is skin too), each summarised by a few k-means centres in CIELAB. A hand colour that is
  also a ring colour (the dress showing between the fingers) is dropped from the hand's. The
  pixels on the hand's bones (`KEEP`) stay the hand's whatever their colour (a black phone in the
  fingers is the colour of a red shirt's shadows: by colour alone it tore), only the pieces of
  hand colour that touch the bones count (`OPEN_PIXELS`: stripe edges of a patterned shirt passed
  the test on their own and moved with the hand as confetti), and small holes are closed
  (`CLOSE_PIXELS`);
* where both hands' capsules overlap, a pixel goes to the hand whose bones are nearer (in
  radii), softly: the fingers of a hand that leaves the clasp leave with it, and where they
  were the renderer fills the hole (`tps.parts.ghost_mask`) instead of showing them twice.

Where the colours cannot tell (too few samples, or every hand colour is also a ring colour: a
skin-coloured sweater) a hand keeps the plain person mask, as before.

`part_extents` gives a hand what it holds past its capsule (`tps.parts.part_extent`): a phone
held upright reaches above the hand's capsule, and its top stayed where it was while the hand
took the rest away. A hand owns the person pixels out to `EXTENT` radii that its own pixels
reach along a path of small colour steps (each step's CIELAB difference less `STEP_NOISE`,
summed, under `EXTENT_BUDGET`: the phone's dark body continues, the sofa or a shirt's edge is a
jump), started from its mask eroded by `SEED_ERODE_PIXELS` (a mask's edge pixels are half
clothes). A piece that reaches the limit is dropped: it continues past it, so it is clothes or
body, not a held object, which ends. `part_masks` gives both, each hand's foreground raised to
its extent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from tps.parts import PartLayout

logger = logging.getLogger(__name__)

#: The hand's own colours: person pixels within this fraction of its capsule's radius from its bones.
CORE = 0.5
#: The colours the hand lies on: person pixels between these multiples of the capsule's radius.
RING = (1.3, 2.2)
#: k-means centres per colour set.
CENTRES = 3
#: A hand centre nearer than this (CIELAB, L in 0-100) to a ring centre is the ring showing through.
DISTINCT = 12.0
#: Width of the soft decision between a hand colour and a ring colour (CIELAB units).
SOFTNESS = 4.0
#: Pixels this near the hand's bones (in radii; the capsule's axes up to the landmarks, not the
#: reach past the fingertips) are the hand's whatever their colour (a dark phone in the fingers
#: may be the colour of the shirt's shadows); full weight at this distance, none `KEEP_EDGE`
#: radii further.
KEEP = 0.35
KEEP_EDGE = 0.2
#: Pieces of a hand's colour narrower than this (pixels of the renderer's source) are cut off
#: before only those touching the hand's bones are kept (`_attached`).
OPEN_PIXELS = 3
#: Holes in a hand's mask narrower than this (pixels of the renderer's source) are closed: a
#: phone's highlights or the shadows between fingers classified as clothes tore it.
CLOSE_PIXELS = 5
#: Width of the soft decision between two overlapping hands, in radii.
SHARE_SOFTNESS = 0.15
#: Fewer samples than this in the core or the ring: the hand keeps the person mask.
MIN_SAMPLES = 24
#: At most this many samples per colour set go to k-means (an even stride over them).
MAX_SAMPLES = 4000
#: A hand's extent (`part_extents`) lies within this many radii of its capsule's axes.
EXTENT = 1.8
#: ... and from this many radii on: the capsule's soft edge, where it owns less than all of a
#: held object the colour test missed, is part of the extent too.
EXTENT_FROM = 0.9
#: Pieces of an extent that come within this many radii of `EXTENT` continue past it: dropped.
EXTENT_RIM = 0.15
#: The colour steps (CIELAB) along a path from the hand's pixels, each less `STEP_NOISE`, sum to
#: less than this for a pixel of its extent.
EXTENT_BUDGET = 12.0
STEP_NOISE = 3.0
#: The hand's mask is eroded by a disc this wide (pixels of the renderer's source) before it seeds
#: the extent: its edge pixels mix the hand's colour and the clothes'.
SEED_ERODE_PIXELS = 5


def segment_distance(points: np.ndarray, segments: Sequence[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Distance of ``points [..., 2]`` to the nearest of ``segments`` (pairs of ``[2]`` ends)."""
    best = np.full(points.shape[:-1], np.inf)
    for a, b in segments:
        axis = b - a
        rel = points - a
        t = np.clip((rel @ axis) / max(float(axis @ axis), 1e-12), 0.0, 1.0)
        best = np.minimum(best, np.linalg.norm(rel - t[..., None] * axis, axis=-1))
    return best


def kmeans(samples: np.ndarray, k: int, iterations: int = 12) -> np.ndarray:
    """Deterministic k-means of ``samples [N, C]`` -> ``[min(k, N), C]`` centres, started at
    evenly spaced order statistics of the first channel (lightness)."""
    order = np.argsort(samples[:, 0], kind="stable")
    k = min(k, len(samples))
    centres = samples[order[((np.arange(k) + 0.5) * len(samples) / k).astype(int)]].astype(np.float64)
    for _ in range(iterations):
        label = np.argmin(((samples[:, None] - centres[None]) ** 2).sum(-1), axis=1)
        for c in range(k):
            if np.any(label == c):
                centres[c] = samples[label == c].mean(0)
    return centres


def _lab(rgb: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(rgb, dtype=np.float32), cv2.COLOR_RGB2Lab).astype(np.float64)


def _nearest(lab: np.ndarray, centres: np.ndarray) -> np.ndarray:
    return np.sqrt(((lab[..., None, :] - centres) ** 2).sum(-1)).min(-1)


def _attached(own: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``bool [H, W]``: the pieces of ``own > 0.5``, opened by `OPEN_PIXELS` (thin links cut), that
    touch the hand's bones (``keep > 0``). On striped or patterned clothes single pixels and
    stripe edges pass the colour test; on their own they moved with the hand as confetti."""
    import cv2

    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (OPEN_PIXELS, OPEN_PIXELS))
    pieces = cv2.morphologyEx((own > 0.5).astype(np.uint8), cv2.MORPH_OPEN, disc) | (keep > 0).astype(np.uint8)
    count, labels = cv2.connectedComponents(pieces, connectivity=8)
    touching = np.unique(labels[keep > 0])
    return np.isin(labels, touching[touching > 0]) & (count > 1)


def _close(mask: np.ndarray) -> np.ndarray:
    """Grey-level morphological closing (dilate, then erode) with a disc `CLOSE_PIXELS` wide."""
    import cv2

    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (CLOSE_PIXELS, CLOSE_PIXELS))
    return cv2.morphologyEx(mask.astype(np.float32), cv2.MORPH_CLOSE, disc).astype(np.float64)


def _distances(kp: np.ndarray, layout: PartLayout, h: int, w: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per part of ``layout``, ``[H, W]`` maps in its capsule's radii: the distance from its
    capsule's axes (``reach``), and from its bones (the axes up to the landmarks, not the reach
    past the fingertips) for keypoints ``kp [N, 2]`` (x, y) in [-1, 1]."""
    ys, xs = np.linspace(-1.0, 1.0, h), np.linspace(-1.0, 1.0, w)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1)  # [H, W, 2] (x, y), as tps.transform.make_coordinate_grid
    unit = max(float(np.linalg.norm(kp[layout.unit[0]] - kp[layout.unit[1]])), 1e-3)
    reach, bones = [], []
    for part in layout.parts:
        segments = [(kp[i] + t0 * (kp[j] - kp[i]), kp[i] + t1 * (kp[j] - kp[i])) for i, j, t0, t1 in part.segments]
        reach.append(segment_distance(grid, segments) / (part.radius * unit))
        segments = [(kp[i] + t0 * (kp[j] - kp[i]), kp[i] + min(t1, 1.0) * (kp[j] - kp[i]))
                    for i, j, t0, t1 in part.segments]
        bones.append(segment_distance(grid, segments) / (part.radius * unit))
    return reach, bones


def colour_paths(lab: np.ndarray, seeds: np.ndarray, allowed: np.ndarray, noise: float = STEP_NOISE) -> np.ndarray:
    """``[H, W]``: the cheapest path from ``seeds`` (bool ``[H, W]``, cost 0) to each pixel through
    ``allowed`` ones (bool ``[H, W]``), over 8-neighbour steps costing their colour difference in
    ``lab [H, W, 3]`` less ``noise`` (not below 0); ``inf`` where no path goes."""
    cost = np.full(seeds.shape, np.inf)
    ys, xs = np.nonzero(seeds | allowed)
    if not len(ys) or not seeds.any():
        return cost
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    colour, inside = lab[y0:y1, x0:x1], (seeds | allowed)[y0:y1, x0:x1]
    box = np.where(seeds[y0:y1, x0:x1], 0.0, np.inf)
    h, w = box.shape
    steps = []
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                src = (slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx)))
                dst = (slice(max(0, dy), h - max(0, -dy)), slice(max(0, dx), w - max(0, -dx)))
                step = np.maximum(np.linalg.norm(colour[dst] - colour[src], axis=-1) - noise, 0.0)
                steps.append((src, dst, step))
    for _ in range(h * w):  # relax until nothing changes (a path has at most h * w steps)
        new = box.copy()
        for src, dst, step in steps:
            np.minimum(new[dst], box[src] + step, out=new[dst])
        new[~inside] = np.inf
        if np.array_equal(new, box):
            break
        box = new
    cost[y0:y1, x0:x1] = box
    return cost


def part_extents(source: np.ndarray, person: np.ndarray, kp_source: np.ndarray, layout: PartLayout,
                 hands: Sequence[int], foregrounds: np.ndarray) -> np.ndarray:
    """What each hand holds past its capsule, ``float32 [P, H, W]`` in [0, 1] (zero for every
    other part; `tps.parts.part_extent`; module doc).

    source, person, kp_source, layout, hands: as `part_foregrounds`; foregrounds: its result
    ``[P, H, W]``, the hands' own pixels that seed the extents.
    """
    source = np.asarray(source, dtype=np.float64)
    person = np.asarray(person, dtype=np.float64)
    h, w = person.shape
    if source.shape != (h, w, 3) or foregrounds.shape != (len(layout.parts), h, w):
        raise ValueError(f"source [H, W, 3] and foregrounds [{len(layout.parts)}, H, W] must match person "
                         f"{person.shape}, got {source.shape} and {foregrounds.shape}")
    if not hands:
        return np.zeros((len(layout.parts), h, w), dtype=np.float32)
    reach, _ = _distances(np.asarray(kp_source, dtype=np.float64), layout, h, w)
    return _extents(_lab(source), person, reach, layout, hands, foregrounds)


def _extents(lab: np.ndarray, person: np.ndarray, reach: list[np.ndarray], layout: PartLayout,
             hands: Sequence[int], foregrounds: np.ndarray) -> np.ndarray:
    """`part_extents` on the crop's CIELAB colours and the parts' `_distances`."""
    import cv2

    out = np.zeros((len(layout.parts), *person.shape), dtype=np.float32)
    erode = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (SEED_ERODE_PIXELS, SEED_ERODE_PIXELS))
    for p in hands:
        zone = (person > 0.5) & (reach[p] < EXTENT)
        for q in range(len(layout.parts)):
            if q != p:
                zone &= reach[q] > 1.0
        seeds = cv2.erode(((foregrounds[p] > 0.5) & (reach[p] < 1.0)).astype(np.uint8), erode) > 0
        reached = (colour_paths(lab, seeds, zone) < EXTENT_BUDGET) & (reach[p] >= EXTENT_FROM)
        _, labels = cv2.connectedComponents(reached.astype(np.uint8), connectivity=8)
        continuing = np.unique(labels[reached & (reach[p] > EXTENT - EXTENT_RIM)])
        past = np.unique(labels[reached & (reach[p] > 1.0 + EXTENT_RIM)])  # pieces that leave the capsule
        held = reached & np.isin(labels, past) & ~np.isin(labels, continuing) & (labels > 0)
        if held.any():
            held = _close(held) > 0.5  # the highlights on a phone's top (its camera) are no hole in it
            # one pixel wider into the background: the edge pixels there mix its colour and the wall's
            edge = (cv2.dilate(held.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0) & (person < 0.5)
            out[p] = held | edge
            logger.debug("hand part %d holds %d pixels past its capsule", p, int(held.sum()))
    return out


def part_masks(source: np.ndarray, person: np.ndarray, kp_source: np.ndarray, layout: PartLayout,
               hands: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(foregrounds, extents)``, each ``float32 [P, H, W]`` in [0, 1], for `tps.Renderer.prepare`:
    `part_foregrounds`, each hand's raised to its extent (so that it owns it) and every other
    part's without what the hands own (their capsules, `tps.parts.capsule_masks`, times their
    foregrounds, and their extents), and `part_extents`. Arguments as `part_foregrounds`; the
    colours and distances are computed once for both."""
    import torch

    from tps.parts import capsule_masks
    from tps.transform import make_coordinate_grid

    source, person, kp = _checked(source, person, kp_source)
    if not hands:
        return (_foregrounds(None, person, [], [], layout, hands),
                np.zeros((len(layout.parts), *person.shape), dtype=np.float32))
    lab, (reach, bones) = _lab(source), _distances(kp, layout, *person.shape)
    foregrounds = _foregrounds(lab, person, reach, bones, layout, hands)
    extents = _extents(lab, person, reach, layout, hands, foregrounds)
    foregrounds = np.maximum(foregrounds, extents)
    # the hands' pixels are no other part's: a forearm's capsule over the hand carried a copy of the phone
    kp_t = torch.from_numpy(kp)[None]
    capsules = capsule_masks(layout, kp_t, layout.unit_length(kp_t), make_coordinate_grid(
        *person.shape, dtype=kp_t.dtype)[None])[0].numpy()
    owned = np.zeros(person.shape, dtype=np.float32)
    for p in hands:
        owned = np.maximum(owned, np.maximum(capsules[p] * foregrounds[p], extents[p]))
    for q in range(len(layout.parts)):
        if q not in hands:
            foregrounds[q] *= 1.0 - owned
    return foregrounds, extents


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _checked(source: np.ndarray, person: np.ndarray,
             kp_source: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The inputs of `part_foregrounds` as float64 arrays, their shapes checked."""
    source = np.asarray(source, dtype=np.float64)
    person = np.asarray(person, dtype=np.float64)
    if source.shape != (*person.shape, 3):
        raise ValueError(f"source must be [H, W, 3] like person {person.shape}, got {source.shape}")
    return source, person, np.asarray(kp_source, dtype=np.float64)


def part_foregrounds(source: np.ndarray, person: np.ndarray, kp_source: np.ndarray, layout: PartLayout,
                     hands: Sequence[int]) -> np.ndarray:
    """One foreground per part of ``layout`` (a `tps.PartLayout`), ``float32 [P, H, W]`` in [0, 1].

    source: ``[H, W, 3]`` RGB in [0, 1] (the crop as the renderer sees it); person: ``[H, W]`` in
    [0, 1] (the person mask of that crop); kp_source: ``[N, 2]`` (x, y) in [-1, 1], the crop's
    keypoints; hands: indices into ``layout.parts`` of the hands. Every part but a hand gets
    ``person``; a hand gets ``person`` times its colour ownership and, where it overlaps another
    hand, its share (module doc).
    """
    source, person, kp = _checked(source, person, kp_source)
    if not hands:
        return _foregrounds(None, person, [], [], layout, hands)
    return _foregrounds(_lab(source), person, *_distances(kp, layout, *person.shape), layout, hands)


def _foregrounds(lab: np.ndarray | None, person: np.ndarray, reach: list[np.ndarray], bones: list[np.ndarray],
                 layout: PartLayout, hands: Sequence[int]) -> np.ndarray:
    """`part_foregrounds` on the crop's CIELAB colours and the parts' `_distances` (both unused
    without hands)."""
    h, w = person.shape
    out = np.repeat(person[None].astype(np.float32), len(layout.parts), axis=0)
    solid = person > 0.5
    for p in hands:
        others = [q for q in hands if q != p]
        core = solid & (reach[p] < CORE)
        ring = solid & (reach[p] > RING[0]) & (reach[p] < RING[1])
        for q in range(len(layout.parts)):
            if q != p:
                ring &= reach[q] > (RING[0] if q in hands else 1.0)
        own = np.ones((h, w))
        if core.sum() >= MIN_SAMPLES and ring.sum() >= MIN_SAMPLES:
            stride = lambda m: lab[m][:: max(1, int(m.sum()) // MAX_SAMPLES)]  # noqa: E731
            ring_centres = kmeans(stride(ring), CENTRES)
            hand_centres = kmeans(stride(core), CENTRES)
            hand_centres = hand_centres[_nearest(hand_centres, ring_centres) > DISTINCT]
            if len(hand_centres):
                own = _sigmoid((_nearest(lab, ring_centres) - _nearest(lab, hand_centres)) / SOFTNESS)
                keep = np.clip((KEEP + KEEP_EDGE - bones[p]) / KEEP_EDGE, 0.0, 1.0)
                own = _close(np.maximum(own * _attached(own, keep), keep))
            else:
                logger.debug("hand part %d: every hand colour is also a colour around it; person mask kept", p)
        else:
            logger.debug("hand part %d: too few pixels to sample colours; person mask kept", p)
        for q in others:
            own = own * _sigmoid((reach[q] - reach[p]) / SHARE_SOFTNESS)
        out[p] = (person * own).astype(np.float32)
    return out
