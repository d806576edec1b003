"""Body-anchored TPS keypoints: the ONE table from named 2-D body points to 10 TPS x 5 keypoints.

Every keypoint source that is not the learned TPS detector goes through `table_keypoints`:
mediapipe landmarks on video frames or a photo (`difftted.motion.body_landmarks`) and joints of motion
capture projected by a virtual camera (`difftted.data.mocap_projection`) both produce the same
*named points* (`POINT_NAMES`, pixel coordinates ``[T, 2]`` each), and this module turns them into
``[T, 50, 2]`` keypoints. Transform ``k`` uses keypoints ``5k .. 5k+4`` (`TRANSFORMS` gives the
order); `TABLE` documents every keypoint. Picture and rationale: ``docs/body_keypoints.md``.

Steps of `table_keypoints` (deterministic, never NaN):

1. **Fallbacks** (`complete_points`). The shoulders, elbows, wrists, ``nose`` and the coarse
   eyes ``right_eye`` / ``left_eye`` are the *core*: a frame where one is missing (NaN) takes the
   value interpolated linearly in time between the nearest good frames (held at the clip's ends).
   The face points are stored relative to the head frame (origin ``nose``, x axis from
   ``right_eye`` to ``left_eye``, unit the clip's shoulder width); the hand points relative to the
   forearm frame (origin the wrist, x axis elbow -> wrist). A face or hand missing in a frame
   takes those local coordinates interpolated from the good frames around it when the gap is at
   most ``max_gap`` seconds, else the template (`FACE_TEMPLATE`, `HAND_TEMPLATE`): so a face
   follows the pose's head and a hand follows its wrist and elbow, never detached.
2. **Smoothing**: a zero-phase Gaussian in time (``smooth`` seconds, 0 for none) of every named
   point (landmark tracks jitter by a few pixels).
3. **The table**: each keypoint is a named point, or a point on the segment between two named
   points, plus an offset along and across that segment in shoulder widths (`KeypointSpec`).
4. Pixel -> ``[-1, 1]`` with align_corners=True: ``x = 2*col/(W-1) - 1`` of the given frame (or
   crop) size. Keypoints are not clipped: a hand outside the frame has keypoints beyond +-1.

5. **Spread guard** (`spread_guard`): a transform whose 5 points come too close or too near a
   line for their size gets a fixed pentagon added, growing continuously from 0 as the points
   degenerate, so every transform stays fit for a TPS (a hand seen edge-on, a fist, an arm
   pointing at the camera).

"Right"/"left" are the person's (a frontal person's right side is on the image's left).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SIDES = ("right", "left")
CORE_NAMES = ("nose", "right_eye", "left_eye", "right_shoulder", "left_shoulder", "right_elbow",
              "left_elbow", "right_wrist", "left_wrist")
FACE_NAMES = ("forehead", "right_eye_outer", "left_eye_outer", "right_nose_wing", "left_nose_wing",
              "mouth_right", "mouth_left", "upper_lip", "lower_lip", "chin", "right_jaw", "left_jaw")
HAND_PARTS = ("index_knuckle", "pinky_knuckle", "thumb_tip", "middle_tip")
HAND_NAMES = tuple(f"{s}_{p}" for s in SIDES for p in HAND_PARTS)
POINT_NAMES = CORE_NAMES + FACE_NAMES + HAND_NAMES

TRANSFORMS = ("head", "mouth", "neck", "torso", "right_upper_arm", "right_forearm", "right_hand",
              "left_upper_arm", "left_forearm", "left_hand")
NUM_TPS = len(TRANSFORMS)
NUM_KEYPOINTS = 5 * NUM_TPS

#: Source codes per frame and transform (`BodyKeypoints.source`).
SOURCE_DEFAULT, SOURCE_FILLED, SOURCE_MEASURED = 0, 1, 2

#: Face points in the head frame (origin nose tip, x: right eye -> left eye, y down), shoulder widths.
FACE_TEMPLATE = {
    "forehead": (0.0, -0.30), "right_eye_outer": (-0.125, -0.10), "left_eye_outer": (0.125, -0.10),
    "right_nose_wing": (-0.045, -0.01), "left_nose_wing": (0.045, -0.01),
    "mouth_right": (-0.07, 0.12), "mouth_left": (0.07, 0.12), "upper_lip": (0.0, 0.08),
    "lower_lip": (0.0, 0.16), "chin": (0.0, 0.27), "right_jaw": (-0.17, 0.14), "left_jaw": (0.17, 0.14),
}
#: Right-hand points in the forearm frame (origin wrist, x: elbow -> wrist, y: x turned +90 deg in
#: image coordinates), shoulder widths; the left hand mirrors y.
HAND_TEMPLATE = {"index_knuckle": (0.27, -0.07), "pinky_knuckle": (0.24, 0.07),
                 "thumb_tip": (0.20, -0.15), "middle_tip": (0.52, 0.0)}

#: Spread guard (step 4): `tps_condition` below which a pentagon is added, its radius relative
#: to the transform's RMS radius, and the smallest radius counted (shoulder widths).
GUARD_MIN_CONDITION = 0.06
GUARD_RADIUS = 0.3
GUARD_MIN_SIZE = 0.05


@dataclass(frozen=True)
class KeypointSpec:
    """One keypoint: ``P[a] + t (P[b] - P[a]) + sw (along u + across n)``.

    ``u`` is the unit vector from ``a`` to ``b`` (``rest`` where they coincide), ``n`` is ``u``
    turned +90 degrees in image coordinates (x right, y down), ``sw`` the clip's shoulder width.
    ``b`` None: the named point ``a`` itself.
    """

    transform: str
    label: str
    a: str
    b: str | None = None
    t: float = 0.0
    along: float = 0.0
    across: float = 0.0
    rest: tuple[float, float] = (0.0, 1.0)


def _mirror(name: str) -> str:
    if name.startswith("right_"):
        return "left_" + name[6:]
    if name.startswith("left_"):
        return "right_" + name[5:]
    return name


def _arm_specs(side: str) -> list[KeypointSpec]:
    """Upper arm, forearm and hand of ``side``; the left side mirrors the across offsets."""
    sign = 1.0 if side == "right" else -1.0
    spec = lambda tr, lab, a, b=None, t=0.0, across=0.0: KeypointSpec(  # noqa: E731
        f"{side}_{tr}", lab, a if side == "right" else _mirror(a),
        None if b is None else (b if side == "right" else _mirror(b)), t, 0.0, sign * across)
    out = []
    for tr, a, b in (("upper_arm", "right_shoulder", "right_elbow"), ("forearm", "right_elbow", "right_wrist")):
        out += [spec(tr, a.split("_", 1)[1], a), spec(tr, b.split("_", 1)[1], b),
                spec(tr, "outer third", a, b, 0.3, 0.10), spec(tr, "inner middle", a, b, 0.6, -0.10),
                spec(tr, "outer end", a, b, 0.9, 0.06)]
    out += [spec("hand", "wrist", "right_wrist")] + [spec("hand", p.replace("_", " "), f"right_{p}") for p in HAND_PARTS]
    return out


def _build_table() -> tuple[KeypointSpec, ...]:
    head = [KeypointSpec("head", n.replace("_", " "), n) for n in
            ("forehead", "right_eye_outer", "left_eye_outer", "right_nose_wing", "left_nose_wing")]
    mouth = [KeypointSpec("mouth", n.replace("_", " "), n) for n in
             ("mouth_right", "mouth_left", "upper_lip", "lower_lip", "chin")]
    sh = ("right_shoulder", "left_shoulder")
    neck = [KeypointSpec("neck", "right jaw angle", "right_jaw"), KeypointSpec("neck", "left jaw angle", "left_jaw"),
            KeypointSpec("neck", "neck base", *sh, t=0.5, across=-0.12, rest=(1.0, 0.0)),
            KeypointSpec("neck", "right trapezius", *sh, t=0.3, rest=(1.0, 0.0)),
            KeypointSpec("neck", "left trapezius", *sh, t=0.7, rest=(1.0, 0.0))]
    torso = [KeypointSpec("torso", "right shoulder", sh[0]), KeypointSpec("torso", "left shoulder", sh[1]),
             KeypointSpec("torso", "sternum", *sh, t=0.5, across=0.3, rest=(1.0, 0.0)),
             KeypointSpec("torso", "right chest", *sh, t=0.2, across=0.8, rest=(1.0, 0.0)),
             KeypointSpec("torso", "left chest", *sh, t=0.8, across=0.8, rest=(1.0, 0.0))]
    table = tuple(head + mouth + neck + torso + _arm_specs("right") + _arm_specs("left"))
    assert [s.transform for s in table] == [t for t in TRANSFORMS for _ in range(5)]
    return table


#: The table: keypoint ``i`` is ``TABLE[i]``; transform ``k`` = ``TABLE[5k:5k+5]``.
TABLE: tuple[KeypointSpec, ...] = _build_table()
#: Transform groups for per-part intensity: indices into `TRANSFORMS`.
PART_GROUPS = {"head": (0, 2), "mouth": (1,), "torso": (3,), "arms": (4, 5, 6, 7, 8, 9)}

#: The mouth's soft edge, as a fraction of its radius (the limbs keep `part_layout`'s 0.15): the
#: mouth deforms in place, and with the layout's edge the jaw, opened by mouth scale 3, met the
#: unmoved cheek in a crease from the mouth's corner down to the jaw (seen on the astronaut); from
#: 1 at a quarter of its radius to 0 at 1.75 radii it fades into the head's motion.
MOUTH_FEATHER = 1.5

#: `tps.Part.ghost_shift` of the upper arms, in capsule radii: an upper arm that moved less than
#: 0.4 of its radius leaves no ghost, one that moved 0.8 or more a full one. It lies against the
#: torso in the torso's own cloth, and a small shift uncovers a sliver of its own sleeve. On the
#: astronaut (seed 0) her right upper arm shifts 0.33-0.37 radii at 4.0-4.6 s, and the old edge
#: of its capsule was filled as a smooth band down the sleeve. Forearms and hands (skin, cuffs)
#: keep every ghost: their old pixels beside them show the limb twice.
UPPER_ARM_GHOST_SHIFT = (0.4, 0.8)

#: The parts' capsules for the renderer's part masks (`part_layout`, `tps.parts`), bottom to top:
#: ``(transform, ((label, label, t0, t1), ...), radius in shoulder widths, occludes, rigid, feather or
#: None for the layout's, ghost_shift)`` (the last three as `tps.Part`'s); labels are
#: `TABLE` labels of that transform's keypoints, each pair a capsule axis from ``t0`` to ``t1`` of
#: the way. The head has no capsule: the renderer's own maps give it the whole head, hair and ears
#: (a capsule over the face took the face from them and left the rest of the head behind: two
#: faces side by side once the head turned); the mouth only deforms; the upper arm
#: starts a quarter down from the shoulder so the shoulder itself stays with the torso; the hand
#: reaches a third again past the finger landmarks, with a wider radius, to carry what it holds (a
#: phone): the pipeline gives the renderer the photo's person mask, so the capsule takes only the
#: person's pixels (held objects count), not the sofa beside the hand (`tps.parts`, foreground).
#: Limbs move rigidly (the similarity of their 5 keypoints): a TPS through a hand's tight
#: points bends wildly past them when the sampled points are not a rigid copy of the photo's, and
#: tore held objects; only the mouth deforms.
PART_CAPSULES = (
    ("mouth", (("mouth right", "mouth left", 0.0, 1.0), ("upper lip", "chin", 0.0, 1.0)), 0.07, False, False,
     MOUTH_FEATHER, (0.0, 0.0)),
    *((f"{side}_upper_arm", (("shoulder", "elbow", 0.25, 1.0),), 0.17, True, True, None, UPPER_ARM_GHOST_SHIFT)
      for side in SIDES),
    *((f"{side}_forearm", (("elbow", "wrist", 0.0, 1.0),), 0.14, True, True, None, (0.0, 0.0)) for side in SIDES),
    *((f"{side}_hand", tuple(("wrist", p.replace("_", " "), 0.0, 1.3) for p in HAND_PARTS), 0.13, True, True, None,
       (0.0, 0.0)) for side in SIDES),
)


def keypoint_index(transform: str, label: str) -> int:
    """The index in ``[0, 50)`` of `TABLE`'s keypoint ``label`` of ``transform``."""
    for i, spec in enumerate(TABLE):
        if spec.transform == transform and spec.label == label:
            return i
    raise KeyError(f"no keypoint {label!r} in transform {transform!r}")


def part_layout(feather: float = 0.15):
    """`PART_CAPSULES` as a `tps.PartLayout` (radii in shoulder widths: the unit is the torso's
    two shoulder keypoints). Imports torch (through `tps.parts`)."""
    from tps.parts import Part, PartLayout

    parts = tuple(
        Part(TRANSFORMS.index(name), tuple((keypoint_index(name, a), keypoint_index(name, b), t0, t1)
                                           for a, b, t0, t1 in segments), radius, occludes, rigid, edge, ghost_shift)
        for name, segments, radius, occludes, rigid, edge, ghost_shift in PART_CAPSULES
    )
    unit = (keypoint_index("torso", "right shoulder"), keypoint_index("torso", "left shoulder"))
    return PartLayout(parts, unit, feather)


@dataclass(frozen=True)
class BodyKeypoints:
    """Keypoints ``[T, 50, 2]`` float32 in [-1, 1] (x, y) and ``source [T, 10]`` int8 per transform
    (`SOURCE_MEASURED` all its points found, `SOURCE_FILLED` some from a fallback, `SOURCE_DEFAULT`
    nothing found anywhere in the clip), for frames of ``size`` = (height, width) at ``fps``."""

    keypoints: np.ndarray
    source: np.ndarray
    size: tuple[int, int]
    fps: float | None = None


# --------------------------------------------------------------------------------- fallbacks
def _interp_nan(x: np.ndarray, max_gap: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fill NaN rows of ``x [T, ...]`` by linear interpolation in time (held at the ends).

    Returns ``(filled, ok)``: ``ok [T]`` False where a row stayed NaN (no good row at all, or a
    gap longer than ``max_gap`` frames when it is given).
    """
    flat = x.reshape(x.shape[0], -1)
    good = np.isfinite(flat).all(axis=1)
    out = flat.copy()
    if not good.any():
        return x.copy(), good
    idx = np.arange(len(flat))
    gi = idx[good]
    for c in range(flat.shape[1]):
        out[~good, c] = np.interp(idx[~good], gi, flat[good, c])
    ok = good.copy()
    if max_gap is not None:
        prev = np.maximum.accumulate(np.where(good, idx, -10**9))
        nxt = np.minimum.accumulate(np.where(good, idx, 10**9)[::-1])[::-1]
        near = np.minimum(idx - prev, nxt - idx) <= max_gap
        gap_ok = (nxt - prev) <= max_gap + 1
        ok = good | np.where((prev >= 0) & (nxt < len(flat)), gap_ok, near)
        out[~ok] = np.nan
    else:
        ok[:] = True
    return out.reshape(x.shape), ok


def _frame(origin: np.ndarray, toward: np.ndarray, rest: tuple[float, float], sw: float):
    """Unit axis ``u`` and its normal ``n`` (``[T, 2]`` each) from ``origin`` to ``toward``."""
    v = toward - origin + 0.05 * sw * np.asarray(rest)
    u = v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)
    return u, np.stack([-u[:, 1], u[:, 0]], axis=-1)


def _to_local(p, origin, u, n, sw):
    d = p - origin[:, None]
    return np.stack([(d * u[:, None]).sum(-1), (d * n[:, None]).sum(-1)], axis=-1) / sw


def _to_global(local, origin, u, n, sw):
    return origin[:, None] + sw * (local[..., :1] * u[:, None] + local[..., 1:] * n[:, None])


def _fill_group(pts: dict, names, template: np.ndarray, origin, u, n, sw, max_gap) -> np.ndarray:
    """Fill the group ``names`` in place (local-frame interpolation, else template); returns
    ``measured [T]`` (every point of the group found in that frame)."""
    stack = np.stack([pts[k] for k in names], axis=1)  # [T, m, 2]
    measured = np.isfinite(stack).all(axis=(1, 2))
    local = _to_local(np.where(measured[:, None, None], stack, np.nan), origin, u, n, sw)
    local, ok = _interp_nan(local, max_gap)
    local[~ok] = template
    glob = _to_global(local, origin, u, n, sw)
    for i, k in enumerate(names):
        pts[k] = glob[:, i]
    return measured


def complete_points(points: dict[str, np.ndarray], fps: float = 25.0,
                    max_gap: float = 0.5) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], float]:
    """Apply the fallbacks (module docstring, step 1) to named points ``{name: [T, 2]}`` (pixels,
    NaN where missing; absent names count as missing everywhere).

    Returns ``(points, measured, shoulder_width)``: every name of `POINT_NAMES` filled without
    NaN; ``measured`` per group (``"core"``, ``"face"``, ``"right_hand"``, ``"left_hand"``:
    ``[T]`` bool, found in that frame); the clip's shoulder width in pixels (median).
    Raises ValueError when no frame has the core points (nothing to anchor on).
    """
    lengths = {np.asarray(v).shape[0] for v in points.values()}
    if len(lengths) != 1:
        raise ValueError(f"points must all have the same length T, got lengths {sorted(lengths)}")
    T = lengths.pop()
    pts = {k: np.full((T, 2), np.nan) for k in POINT_NAMES}
    for k, v in points.items():
        if k not in pts:
            raise ValueError(f"points has unknown name {k!r}; known: {POINT_NAMES}")
        v = np.asarray(v, dtype=np.float64)
        if v.shape != (T, 2):
            raise ValueError(f"points[{k!r}] must have shape [T, 2], got {v.shape}")
        pts[k] = v.copy()
    core = np.stack([pts[k] for k in CORE_NAMES], axis=1)
    core_measured = np.isfinite(core).all(axis=(1, 2))
    if not core_measured.any():
        raise ValueError("no frame has all of the core points " + ", ".join(CORE_NAMES))
    core, _ = _interp_nan(np.where(core_measured[:, None, None], core, np.nan))
    for i, k in enumerate(CORE_NAMES):
        pts[k] = core[:, i]
    sw = float(np.median(np.linalg.norm(pts["left_shoulder"] - pts["right_shoulder"], axis=-1)))
    sw = max(sw, 1e-6)
    gap = int(round(max_gap * fps))
    measured = {"core": core_measured}
    u, n = _frame(pts["nose"], pts["nose"] + (pts["left_eye"] - pts["right_eye"]), (1.0, 0.0), sw)
    face_t = np.array([FACE_TEMPLATE[k] for k in FACE_NAMES])
    measured["face"] = _fill_group(pts, FACE_NAMES, face_t, pts["nose"], u, n, sw, gap)
    for side, sign in (("right", 1.0), ("left", -1.0)):
        u, n = _frame(pts[f"{side}_elbow"], pts[f"{side}_wrist"], (0.0, 1.0), sw)
        names = tuple(f"{side}_{p}" for p in HAND_PARTS)
        hand_t = np.array([HAND_TEMPLATE[p] for p in HAND_PARTS]) * (1.0, sign)
        measured[f"{side}_hand"] = _fill_group(pts, names, hand_t, pts[f"{side}_wrist"], u, n, sw, gap)
    return pts, measured, sw


# ------------------------------------------------------------------------------ smoothing, table
def smooth_points(points: dict[str, np.ndarray], sigma_frames: float) -> dict[str, np.ndarray]:
    """Zero-phase Gaussian smoothing in time of every ``[T, 2]`` track (edges: nearest)."""
    if sigma_frames <= 0:
        return dict(points)
    from scipy.ndimage import gaussian_filter1d

    return {k: gaussian_filter1d(v, sigma_frames, axis=0, mode="nearest") for k, v in points.items()}


def apply_table(points: dict[str, np.ndarray], sw: float) -> np.ndarray:
    """`TABLE` on complete named points (pixels) -> ``[T, 50, 2]`` pixels (before the guard)."""
    out = []
    for s in TABLE:
        p = points[s.a]
        if s.b is not None:
            q = points[s.b]
            u, n = _frame(p, q, s.rest, sw)
            p = p + s.t * (q - p) + sw * (s.along * u + s.across * n)
        out.append(p)
    return np.stack(out, axis=1)


_PENTAGON = np.stack([np.cos(2 * np.pi * np.arange(5) / 5 + 0.3), np.sin(2 * np.pi * np.arange(5) / 5 + 0.3)], -1)
#: The guard's pentagon per transform ``[10, 5, 2]``: the left arm's mirrors the right arm's, so a
#: mirrored person gets the mirrored guard (`flip_permutation` stays exact for the limbs).
_GUARD_SHAPES = np.stack([_PENTAGON * ((-1.0, 1.0) if t.startswith("left_") else (1.0, 1.0)) for t in TRANSFORMS])


def transform_spread(kp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(min pairwise distance, thinnest RMS spread)`` of each transform: ``kp [..., 50, 2]`` ->
    two arrays ``[..., 10]`` in the units of ``kp``."""
    g = kp.reshape(kp.shape[:-2] + (NUM_TPS, 5, 2))
    d = np.linalg.norm(g[..., :, None, :] - g[..., None, :, :], axis=-1)
    d = d + np.eye(5) * 1e9
    c = g - g.mean(axis=-2, keepdims=True)
    sv = np.linalg.svd(c, compute_uv=False)[..., -1] / np.sqrt(5)
    return d.min(axis=(-2, -1)), sv


def tps_condition(kp: np.ndarray) -> np.ndarray:
    """How fit for a TPS each transform is: ``kp [..., 50, 2]`` -> ``[..., 10]``, the smallest
    singular value of its (unregularised) 8x8 TPS system with its 5 points centred and scaled to
    unit RMS radius: 0 for coincident or collinear points, about 0.3 for a regular pentagon."""
    g = kp.reshape(kp.shape[:-2] + (NUM_TPS, 5, 2)).astype(np.float64)
    g = g - g.mean(axis=-2, keepdims=True)
    g = g / np.maximum(np.sqrt((g ** 2).sum(-1).mean(-1)), 1e-12)[..., None, None]
    d2 = ((g[..., :, None, :] - g[..., None, :, :]) ** 2).sum(-1)
    p = np.concatenate([g, np.ones(g.shape[:-1] + (1,))], axis=-1)
    top = np.concatenate([d2 * np.log(d2 + 1e-9), p], axis=-1)
    bottom = np.concatenate([np.swapaxes(p, -1, -2), np.zeros(g.shape[:-2] + (3, 3))], axis=-1)
    return np.linalg.svd(np.concatenate([top, bottom], axis=-2), compute_uv=False)[..., -1]


def spread_guard(kp: np.ndarray, sw: float, rounds: int = 8) -> np.ndarray:
    """Add a pentagon to each transform that is too close to degenerate (`tps_condition` under
    ``GUARD_MIN_CONDITION``): radius ``GUARD_RADIUS * need * r`` with ``need = 1 - condition /
    GUARD_MIN_CONDITION`` clipped to [0, 1] and ``r`` the transform's RMS radius (at least
    ``GUARD_MIN_SIZE`` shoulder widths); ``rounds`` times. 0 for a healthy transform and growing
    continuously as it degenerates, so the guard adds no jumps in time."""
    for _ in range(rounds):
        need = np.clip(1 - tps_condition(kp) / GUARD_MIN_CONDITION, 0, 1)
        if not need.any():
            break
        g = kp.reshape(kp.shape[:-2] + (NUM_TPS, 5, 2))
        rms = np.sqrt(((g - g.mean(axis=-2, keepdims=True)) ** 2).sum(-1).mean(-1))
        r = np.maximum(rms, GUARD_MIN_SIZE * sw)
        kp = (g + (need * GUARD_RADIUS * r)[..., None, None] * _GUARD_SHAPES).reshape(kp.shape)
    return kp


def to_unit(kp_pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Pixels (col, row) -> [-1, 1] with align_corners=True for a frame ``size`` = (height, width)."""
    h, w = size
    return (2.0 * kp_pixels / (np.array([w, h], dtype=np.float64) - 1.0) - 1.0).astype(np.float32)


def table_keypoints(points: dict[str, np.ndarray], size: tuple[int, int], fps: float = 25.0,
                    smooth: float = 0.03, max_gap: float = 0.5) -> BodyKeypoints:
    """Named points ``{name: [T, 2]}`` in pixels of a frame ``size`` = (height, width) (NaN where
    missing) -> `BodyKeypoints` (module docstring: fallbacks, smoothing of ``smooth`` seconds,
    the table, the spread guard, [-1, 1])."""
    if fps <= 0 or smooth < 0 or max_gap < 0:
        raise ValueError(f"fps must be positive and smooth, max_gap non-negative, got {fps}, {smooth}, {max_gap}")
    if len(size) != 2 or min(size) < 2:
        raise ValueError(f"size must be (height, width) of at least 2 pixels, got {size!r}")
    pts, measured, sw = complete_points(points, fps, max_gap)
    pts = smooth_points(pts, smooth * fps)
    kp = to_unit(apply_table(pts, sw), size)  # the guard works where the TPS does: in [-1, 1]
    kp = spread_guard(kp, 2.0 * sw / (max(size) - 1)).astype(np.float32)
    return BodyKeypoints(kp, source_codes(measured), tuple(size), fps)


def source_codes(measured: dict[str, np.ndarray]) -> np.ndarray:
    """``[T, 10]`` int8 source codes from the per-group ``measured`` flags of `complete_points`."""
    core = measured["core"]
    group = {"head": "face", "mouth": "face", "right_hand": "right_hand", "left_hand": "left_hand"}
    cols = []
    for tr in TRANSFORMS:
        ok = core & measured[group[tr]] if tr in group else core
        cols.append(np.where(ok, SOURCE_MEASURED, SOURCE_FILLED))
    return np.stack(cols, axis=1).astype(np.int8)


def flip_permutation() -> tuple[int, ...]:
    """Keypoint indices under a horizontal flip of the frame: the mirror image of a person keyed
    by the table puts keypoint ``i`` where keypoint ``flip_permutation()[i]`` belongs (right and
    left swapped: eyes, nose wings, mouth corners, jaw angles, trapezius and chest points, and
    the whole arms; the midline points map to themselves). Its own inverse. ``tps.train``'s
    ``keypoint_flip`` for renderers trained on these keypoints. Exact (tested on real frames)
    except for a head, mouth, neck or torso transform in a frame where the spread guard adds its
    pentagon, which is not mirror-symmetric (it never acts on a healthy transform)."""
    def key(s: KeypointSpec) -> tuple:
        return (s.transform, s.a, s.b, round(s.t, 6), round(s.across, 6))

    def side_swap(name: str) -> str:  # right_x <-> left_x and x_right <-> x_left (mouth corners)
        for r, l in (("_right", "_left"), ("_left", "_right")):
            if name.endswith(r):
                return name[: -len(r)] + l
        return _mirror(name)

    def mirrored(s: KeypointSpec) -> tuple:
        a, b = side_swap(s.a), None if s.b is None else side_swap(s.b)
        if s.b is not None and s.a.startswith("right_") and s.b.startswith("left_"):  # shoulder line
            return (s.transform, s.a, s.b, round(1.0 - s.t, 6), round(s.across, 6))
        return (_mirror(s.transform), a, b, round(s.t, 6), round(-s.across, 6) + 0.0)

    index = {key(s): i for i, s in enumerate(TABLE)}
    return tuple(index[mirrored(s)] for s in TABLE)
