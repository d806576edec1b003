"""Motion capture -> body-anchored keypoints: known poses land where geometry says, real clips
give finite keypoints whose wrists move, both formats through the same table."""

from __future__ import annotations

import numpy as np
import pytest

from difftted.motion import body_keypoints as bk
from difftted.data.mocap_projection import SHOULDER_WIDTH, TedCamera

TORSO = 5 * bk.TRANSFORMS.index("torso")
RIGHT_HAND = 5 * bk.TRANSFORMS.index("right_hand")
LEFT_HAND = 5 * bk.TRANSFORMS.index("left_hand")


def _keypoints_of_poses(poses: np.ndarray) -> np.ndarray:
    from difftted.data.mocap_projection import skeleton_keypoints, smplx_pose_skeleton

    return skeleton_keypoints(smplx_pose_skeleton(poses)).keypoints[0]


def _mirror_index() -> list[int]:
    """Keypoint index of each keypoint's mirror image (right <-> left)."""
    names = [(s.transform, s.label) for s in bk.TABLE]
    swap = lambda n: n.replace("right", "@").replace("left", "right").replace("@", "left")  # noqa: E731
    return [names.index((swap(t), swap(lab))) for t, lab in names]


def test_t_pose_is_symmetric_with_wrists_level_at_the_expected_distance():
    kp = _keypoints_of_poses(np.zeros((1, 165)))
    mirror = _mirror_index()
    np.testing.assert_allclose(kp[mirror, 0], -kp[:, 0], atol=1e-5)  # centred, left = -right
    np.testing.assert_allclose(kp[mirror, 1], kp[:, 1], atol=1e-5)
    wrist_r, wrist_l = kp[RIGHT_HAND], kp[LEFT_HAND]
    shoulder_r = kp[TORSO]
    # arms horizontal: the wrist at shoulder height, 0.71 m from the midline (collar + shoulder + arm)
    cam = TedCamera()
    expected = 0.71 / (cam.span * SHOULDER_WIDTH) * cam.size * 2 / (cam.size - 1)
    assert wrist_r[1] == pytest.approx(shoulder_r[1], abs=1e-5)
    assert wrist_l[0] == pytest.approx(expected, rel=1e-4) and wrist_r[0] == pytest.approx(-expected, rel=1e-4)
    # shoulders a shoulder width apart: 1/2.4 of the frame
    assert kp[TORSO + 1, 0] - kp[TORSO, 0] == pytest.approx(2 / cam.span * cam.size / (cam.size - 1), rel=1e-4)


def test_arms_down_pose_puts_wrists_under_the_shoulders():
    poses = np.zeros((1, 165))
    poses[0, 16 * 3 + 2] = -np.pi / 2  # left shoulder about z: the arm from +x to -y (down)
    poses[0, 17 * 3 + 2] = np.pi / 2
    kp = _keypoints_of_poses(poses)
    cam = TedCamera()
    px_per_m = cam.size / (cam.span * SHOULDER_WIDTH) * 2 / (cam.size - 1)
    np.testing.assert_allclose(kp[LEFT_HAND, 0], kp[TORSO + 1, 0], atol=1e-5)  # straight below
    assert kp[LEFT_HAND, 1] - kp[TORSO + 1, 1] == pytest.approx(0.53 * px_per_m, rel=1e-4)
    assert kp[RIGHT_HAND, 0] == pytest.approx(-kp[LEFT_HAND, 0], abs=1e-5)
    assert bk.tps_condition(kp[None]).min() > bk.GUARD_MIN_CONDITION * 0.9


@pytest.mark.parametrize("name", ["BEAT2_2_scott_0_1_1.npz", "2_scott_0_1_1.bvh"])
def test_real_mocap_clip_is_finite_and_its_wrists_move(shared_data, name):
    from difftted.data.mocap_projection import mocap_keypoints

    body = mocap_keypoints(shared_data / "mocap" / name)
    kp = body.keypoints
    assert kp.shape[1:] == (50, 2) and kp.shape[0] > 900
    assert np.isfinite(kp).all() and (body.source == bk.SOURCE_MEASURED).all()
    wrists = kp[:, [RIGHT_HAND, LEFT_HAND]]
    assert (wrists.std(axis=0) > 0.05).all()  # in [-1, 1] units: several pixels of motion
    head = np.abs(kp[:, 5 * bk.TRANSFORMS.index("head"):5 * bk.TRANSFORMS.index("head") + 5]).max(axis=(1, 2))
    assert np.mean(head < 1.0) > 0.95  # the fixed camera keeps the head in frame (the speaker may step aside)
    assert bk.tps_condition(kp).min() > 0.03


def test_unknown_file_kind_is_named(tmp_path):
    from difftted.data.mocap_projection import mocap_keypoints

    (tmp_path / "x.txt").write_text("")
    with pytest.raises(ValueError, match=".npz or a BEAT .bvh"):
        mocap_keypoints(tmp_path / "x.txt")


def test_camera_follows_slow_steps_and_keeps_gestures():
    """follow_speaker: a slow walk (8 s period, 0.5 m) leaves less than a tenth of itself, a 3 Hz
    hand beat keeps nine tenths, height is untouched, 0 changes nothing."""
    from difftted.data.mocap_projection import follow_speaker

    fps, t = 30.0, np.arange(600) / 30.0
    walk = np.stack([0.5 * np.sin(2 * np.pi * t / 8), 0.1 * t, 0.2 * np.cos(2 * np.pi * t / 8)], axis=-1)
    beat = np.stack([0.05 * np.sin(2 * np.pi * 3 * t), np.zeros_like(t), np.zeros_like(t)], axis=-1)
    points = {"left_shoulder": walk + [0.18, 1.4, 0], "right_shoulder": walk + [-0.18, 1.4, 0],
              "right_wrist": walk + beat + [-0.3, 1.0, 0.2]}
    followed = follow_speaker(points, fps, 0.5)
    mid = (followed["left_shoulder"] + followed["right_shoulder"]) / 2
    inner = slice(60, -60)  # away from the ends of the zero-phase filter
    assert np.ptp(mid[inner, 0]) < 0.1 * np.ptp(walk[inner, 0])
    assert np.ptp(mid[inner, 2]) < 0.1 * np.ptp(walk[inner, 2])
    np.testing.assert_allclose(followed["right_wrist"][:, 1], points["right_wrist"][:, 1])  # height kept
    hand = followed["right_wrist"][inner, 0] - mid[inner, 0]
    assert np.ptp(hand) > 0.9 * np.ptp(beat[inner, 0])
    assert follow_speaker(points, fps, 0.0) is points
    with pytest.raises(ValueError, match="seconds"):
        follow_speaker(points, fps, -1.0)
