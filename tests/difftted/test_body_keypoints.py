"""Body-anchored keypoints on real frames: no NaN, every transform fit for a TPS, stable under a
1-pixel shift of the photo, deterministic, and the fallbacks (missing hand, missing frames)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from difftted.motion import body_keypoints as bk

N_FRAMES = 8


def _frames(path, n, step=1):
    from tps.video import iter_frames

    return [f for i, f in zip(range(n * step), iter_frames(path))][::step]


@pytest.fixture(scope="module")
def clip(shared_data):
    frames = _frames(shared_data / "talking" / "oliver_halfbody.mp4", N_FRAMES, step=3)
    from difftted.motion.body_landmarks import detect_named_points

    points, size = detect_named_points(frames)
    return frames, points, size


def _normalised_tps_min_singular(kp: np.ndarray) -> np.ndarray:
    """Smallest singular value of each transform's (unregularised) TPS system, its 5 points
    centred and scaled to unit RMS radius: 0 for coincident or collinear points. ``[..., 10]``."""
    g = torch.tensor(kp, dtype=torch.float64).reshape(-1, bk.NUM_TPS, 5, 2)
    g = g - g.mean(dim=2, keepdim=True)
    g = g / g.pow(2).sum(-1).mean(-1).sqrt()[..., None, None]
    d2 = torch.cdist(g, g) ** 2
    kmat = d2 * torch.log(d2 + 1e-9)
    p = torch.cat([g, torch.ones(*g.shape[:-1], 1, dtype=g.dtype)], -1)
    top = torch.cat([kmat, p], -1)
    bottom = torch.cat([p.transpose(-1, -2), torch.zeros(*g.shape[:2], 3, 3, dtype=g.dtype)], -1)
    return torch.linalg.svdvals(torch.cat([top, bottom], -2))[..., -1].numpy()


def test_real_frames_no_nan_and_every_transform_fits_a_tps(clip):
    from tps.transform import TPS

    _, points, size = clip
    body = bk.table_keypoints(points, size, fps=10.0)
    kp = body.keypoints
    assert kp.shape == (N_FRAMES, 50, 2) and kp.dtype == np.float32
    assert np.isfinite(kp).all()
    assert body.source.shape == (N_FRAMES, 10)
    assert (body.source[:, :6] == bk.SOURCE_MEASURED).all()  # face, body and a hand found: measured
    assert np.abs(kp).max() < 1.5
    assert _normalised_tps_min_singular(kp).min() > 0.05
    # the TPS fitted from each frame to the next reaches its targets and stays tame on the frame
    drv, src = torch.from_numpy(kp[1:]), torch.from_numpy(kp[:-1])
    fit = TPS.fit(drv, src)
    at_points = fit.warp_coordinates(drv).reshape(N_FRAMES - 1, 10, 10, 5, 2)
    reached = torch.stack([at_points[:, k, k] for k in range(10)], 1).reshape(N_FRAMES - 1, 50, 2)
    assert (reached - src).abs().max() < 0.05  # the official fit is regularised (0.01 I)
    # between its own points (pairwise midpoints), each transform moves no more than its points do
    g = drv.reshape(N_FRAMES - 1, 10, 5, 2)
    mids = ((g[:, :, :, None] + g[:, :, None]) / 2).reshape(N_FRAMES - 1, 10, 25, 2)
    inside = torch.stack([fit.warp_coordinates(mids[:, k])[:, k] for k in range(10)], 1)
    moved = (inside - mids).norm(dim=-1).amax(-1)
    point_moves = (src - drv).reshape(N_FRAMES - 1, 10, 5, 2).norm(dim=-1).amax(-1)
    assert torch.isfinite(inside).all() and (moved <= 2 * point_moves + 0.03).all()


def test_degenerate_points_are_spread_by_the_guard():
    sw = 100.0
    kp = np.zeros((1, 50, 2)) + 50.0  # every point coincides
    line = np.zeros((1, 50, 2))
    line[..., 0] = np.tile(np.arange(5.0) * 20, 10)  # every transform on a line
    for bad in (kp, line):
        assert _normalised_tps_min_singular(bad + 1e-6 * np.arange(100).reshape(1, 50, 2)).max() < 1e-3
        assert _normalised_tps_min_singular(bk.spread_guard(bad, sw)).min() > 0.05
    fine = np.random.default_rng(0).normal(0, sw, (1, 50, 2))
    healthy = _normalised_tps_min_singular(fine) > bk.GUARD_MIN_CONDITION
    assert healthy.sum() >= 3
    guarded = bk.spread_guard(fine, sw).reshape(10, 5, 2)
    np.testing.assert_array_equal(guarded[healthy[0]], fine.reshape(10, 5, 2)[healthy[0]])


def test_photo_keypoints_move_one_pixel_with_the_photo(shared_data):
    from difftted.motion.body_landmarks import image_body_keypoints

    frame = _frames(shared_data / "talking" / "oliver_halfbody.mp4", 1)[0]
    shifted = np.concatenate([frame[:, :1], frame[:, :-1]], axis=1)  # content moves 1 px right
    a, b = (image_body_keypoints(f).keypoints[0] for f in (frame, shifted))
    h, w = frame.shape[:2]
    move = (b - a) * (np.array([w, h]) - 1) / 2  # pixels
    err = np.linalg.norm(move - [1.0, 0.0], axis=1)
    sw = np.linalg.norm(a[16] - a[15]) * (w - 1) / 2  # torso keypoints 0, 1 are the shoulders
    assert np.isfinite(a).all() and np.isfinite(b).all()
    assert np.median(err) < 1.5, np.median(err)
    assert err.max() < 0.02 * sw, (err.max(), sw)


def test_missing_hand_follows_wrist_and_elbow(clip):
    _, points, size = clip
    dropped = {k: (np.full_like(v, np.nan) if k.startswith("right_") and k[6:] in bk.HAND_PARTS else v)
               for k, v in points.items()}
    body = bk.table_keypoints(dropped, size, fps=10.0, smooth=0.0)
    kp = body.keypoints
    assert np.isfinite(kp).all()
    assert (body.source[:, bk.TRANSFORMS.index("right_hand")] == bk.SOURCE_FILLED).all()
    pts, _, sw = bk.complete_points(dropped, fps=10.0)
    wrist, elbow = pts["right_wrist"], pts["right_elbow"]
    u = (wrist - elbow) / np.linalg.norm(wrist - elbow, axis=1, keepdims=True)
    hand = bk.to_unit(np.stack([pts[f"right_{p}"] for p in bk.HAND_PARTS], 1), size)
    hk = 5 * bk.TRANSFORMS.index("right_hand")
    np.testing.assert_allclose(kp[:, hk + 1:hk + 5], hand, atol=1e-5)
    np.testing.assert_allclose(kp[:, hk], bk.to_unit(wrist, size), atol=1e-5)
    # the template middle finger tip lies ahead of the wrist along the forearm, at its distance
    ahead = ((pts["right_middle_tip"] - wrist) * u).sum(1) / sw
    assert np.all(np.abs(ahead - bk.HAND_TEMPLATE["middle_tip"][0]) < 0.01)


def test_blanked_hand_in_a_photo_falls_back(shared_data):
    from difftted.motion.body_landmarks import image_body_keypoints

    frame = _frames(shared_data / "talking" / "oliver_halfbody.mp4", 1)[0].copy()
    full = image_body_keypoints(frame, shifts=((0, 0),))
    h, w = frame.shape[:2]
    hk = 5 * bk.TRANSFORMS.index("right_hand")
    px = (full.keypoints[0, hk:hk + 5] + 1) / 2 * (np.array([w, h]) - 1)
    x0, y0 = (px.min(0) - 40).astype(int)
    x1, y1 = (px.max(0) + 40).astype(int)
    frame[max(y0, 0):y1, max(x0, 0):x1] = 128  # the right hand painted over
    blank = image_body_keypoints(frame, shifts=((0, 0),))
    assert np.isfinite(blank.keypoints).all()
    assert blank.source[0, bk.TRANSFORMS.index("right_hand")] == bk.SOURCE_FILLED
    assert _normalised_tps_min_singular(blank.keypoints).min() > 0.05


def test_missing_frames_hold_neighbours_and_output_is_deterministic(clip):
    _, points, size = clip
    holed = {k: v.copy() for k, v in points.items()}
    for v in holed.values():
        v[[0, 3]] = np.nan  # frame 0 (an end) and frame 3 (inside): no person found
    a = bk.table_keypoints(holed, size, fps=10.0, smooth=0.0)
    b = bk.table_keypoints(holed, size, fps=10.0, smooth=0.0)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    assert np.isfinite(a.keypoints).all()
    core = 5 * bk.TRANSFORMS.index("torso")  # torso keypoints are core points and offsets of them
    np.testing.assert_allclose(a.keypoints[0, core:core + 5], a.keypoints[1, core:core + 5], atol=1e-6)
    np.testing.assert_allclose(a.keypoints[3, core:core + 2],
                               (a.keypoints[2, core:core + 2] + a.keypoints[4, core:core + 2]) / 2, atol=1e-5)
    assert (a.source[[0, 3]] == bk.SOURCE_FILLED).all()


def test_smoothing_reduces_jitter_without_lag(clip):
    _, points, size = clip
    raw = bk.table_keypoints(points, size, fps=10.0, smooth=0.0).keypoints
    smooth = bk.table_keypoints(points, size, fps=10.0, smooth=0.1).keypoints
    jitter = lambda k: np.abs(np.diff(k, n=2, axis=0)).mean()  # noqa: E731
    assert jitter(smooth) < jitter(raw)
    # zero phase: no systematic shift of the mean position
    assert np.abs((smooth - raw).mean(axis=0)).max() < 0.01


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="same length"):
        bk.table_keypoints({"nose": np.zeros((3, 2)), "right_eye": np.zeros((4, 2))}, (10, 10))
    with pytest.raises(ValueError, match="unknown name"):
        bk.table_keypoints({"elbow": np.zeros((3, 2))}, (10, 10))
    with pytest.raises(ValueError, match="core points"):
        bk.table_keypoints({"nose": np.zeros((3, 2))}, (10, 10))
