"""Motion capture -> body-anchored keypoints: the same table as mediapipe landmarks on video.

Two inputs of real co-speech motion:

* BEAT2 SMPL-X ``.npz`` (``poses [T, 165]``: 55 joints x axis-angle relative to the parent, joint
  0 the global orientation; ``trans [T, 3]``; ``mocap_frame_rate``). The body-model files are
  not needed: forward kinematics runs on a fixed skeleton of typical adult proportions
  (`SMPLX_REST`: shoulder width 0.36 m, upper arm 0.28 m, forearm 0.25 m), SMPL-X's joint order
  and kinematic tree (`SMPLX_PARENTS`).
* BEAT ``.bvh`` (read by `difftted.data.mocap`): its own offsets and Euler channels.

Face points that are no joints (eyes, nose wings, lips, chin, jaw angles) sit at fixed offsets
in the head's frame (`FACE_OFFSETS`, metres; the lower lip and chin follow SMPL-X's jaw joint),
finger tips beyond the last finger joint. Then a fixed frontal pinhole camera in TED framing
(`TedCamera`: the square of ``size`` pixels spans 2.4 shoulder widths at the speaker, the nose at a
quarter from the top, looking at the clip's median pose, turned to face the speaker's median
facing, and panning with the speaker's slow steps as a camera operator would: `skeleton_keypoints`
``follow_seconds``) gives 2-D named points, which `difftted.motion.body_keypoints.table_keypoints` maps to
``[T, 50, 2]`` keypoints. World axes: x the speaker's left, y up, z forward (both formats).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from difftted.motion.body_keypoints import BodyKeypoints, table_keypoints

#: SMPL-X joint index -> parent (upper body, jaw and fingers; legs are not needed).
SMPLX_PARENTS = {0: -1, 3: 0, 6: 3, 9: 6, 12: 9, 13: 9, 14: 9, 15: 12, 16: 13, 17: 14, 18: 16, 19: 17,
                 20: 18, 21: 19, 22: 15}
#: Finger joints: (name, first joint of the left hand); the right hand is +15. Each finger has 3.
SMPLX_FINGERS = (("index", 25), ("middle", 28), ("pinky", 31), ("ring", 34), ("thumb", 37))
for _name, _first in SMPLX_FINGERS:
    for _side, _wrist in ((0, 20), (15, 21)):
        SMPLX_PARENTS[_first + _side] = _wrist
        SMPLX_PARENTS[_first + _side + 1] = _first + _side
        SMPLX_PARENTS[_first + _side + 2] = _first + _side + 1

#: Rest offsets from the parent in metres (T-pose), left side; the right side mirrors x.
_REST_LEFT = {3: (0, 0.11, -0.01), 6: (0, 0.13, 0.0), 9: (0, 0.055, 0.0), 12: (0, 0.21, -0.03),
              13: (0.075, 0.12, -0.01), 15: (0, 0.09, 0.05), 16: (0.105, 0.03, -0.01), 18: (0.28, 0, 0),
              20: (0.25, 0, 0), 22: (0, -0.01, 0.03),
              25: (0.09, 0.005, 0.025), 26: (0.035, 0, 0), 27: (0.025, 0, 0),
              28: (0.095, 0.005, 0.003), 29: (0.04, 0, 0), 30: (0.028, 0, 0),
              31: (0.08, -0.005, -0.035), 32: (0.025, 0, 0), 33: (0.02, 0, 0),
              34: (0.088, 0, -0.015), 35: (0.035, 0, 0), 36: (0.025, 0, 0),
              37: (0.02, -0.01, 0.025), 38: (0.025, -0.005, 0.02), 39: (0.025, -0.005, 0.015)}
_MIRROR = {14: 13, 17: 16, 19: 18, 21: 20, **{j + 15: j for j in range(25, 40)}}
SMPLX_REST = {0: (0.0, 0.0, 0.0), **{j: tuple(map(float, v)) for j, v in _REST_LEFT.items()},
              **{j: (-_REST_LEFT[m][0], *_REST_LEFT[m][1:]) for j, m in _MIRROR.items()}}
#: Typical shoulder width of the skeletons (metres); BVH face offsets are scaled by its own.
SHOULDER_WIDTH = 0.36

#: Face points in the head joint's frame (metres); ``"jaw"`` ones move with the jaw where there is one.
FACE_OFFSETS = {
    "nose": ("head", (0.0, 0.01, 0.12)), "right_eye": ("head", (-0.032, 0.04, 0.09)),
    "left_eye": ("head", (0.032, 0.04, 0.09)), "forehead": ("head", (0.0, 0.11, 0.09)),
    "right_eye_outer": ("head", (-0.045, 0.04, 0.08)), "left_eye_outer": ("head", (0.045, 0.04, 0.08)),
    "right_nose_wing": ("head", (-0.017, 0.005, 0.105)), "left_nose_wing": ("head", (0.017, 0.005, 0.105)),
    "mouth_right": ("head", (-0.025, -0.035, 0.09)), "mouth_left": ("head", (0.025, -0.035, 0.09)),
    "upper_lip": ("head", (0.0, -0.022, 0.105)), "lower_lip": ("jaw", (0.0, -0.048, 0.1)),
    "chin": ("jaw", (0.0, -0.08, 0.09)), "right_jaw": ("head", (-0.06, -0.04, 0.03)),
    "left_jaw": ("head", (0.06, -0.04, 0.03)),
}
#: Finger tips beyond the distal joint (metres, in its frame, left hand; right mirrors x).
TIP_OFFSETS = {"middle": (0.022, 0.0, 0.0), "thumb": (0.02, -0.003, 0.01)}


@dataclass(frozen=True)
class Skeleton3D:
    """World positions and rotations of named joints: ``positions {name: [T, 3]}``, ``rotations
    {name: [T, 3, 3]}`` (only ``head`` and, where there is one, ``jaw`` are needed), ``scale`` the
    skeleton's shoulder width in its own length unit, ``fps`` the frame rate."""

    positions: dict[str, np.ndarray]
    rotations: dict[str, np.ndarray]
    scale: float
    fps: float


_SMPLX_NAMES = {15: "head", 16: "left_shoulder", 17: "right_shoulder", 18: "left_elbow",
                19: "right_elbow", 20: "left_wrist", 21: "right_wrist", 25: "left_index_knuckle",
                31: "left_pinky_knuckle", 40: "right_index_knuckle", 46: "right_pinky_knuckle"}


def smplx_forward_kinematics(poses: np.ndarray, trans: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``poses [T, >=165]`` axis-angle -> world ``positions [T, 55, 3]`` and ``rotations
    [T, 55, 3, 3]`` on `SMPLX_REST` (joints outside `SMPLX_PARENTS` stay zero)."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] < 165:
        raise ValueError(f"poses must have shape [T, 165] (55 joints x axis-angle), got {poses.shape}")
    T = poses.shape[0]
    local = Rotation.from_rotvec(poses[:, :165].reshape(-1, 3)).as_matrix().reshape(T, 55, 3, 3)
    pos, rot = np.zeros((T, 55, 3)), np.zeros((T, 55, 3, 3))
    for j in sorted(SMPLX_PARENTS):
        parent = SMPLX_PARENTS[j]
        if parent < 0:
            pos[:, j] = 0.0 if trans is None else np.asarray(trans, dtype=np.float64)
            rot[:, j] = local[:, j]
        else:
            pos[:, j] = pos[:, parent] + rot[:, parent] @ np.asarray(SMPLX_REST[j])
            rot[:, j] = rot[:, parent] @ local[:, j]
    return pos, rot


def smplx_skeleton(path: str | Path) -> Skeleton3D:
    """A BEAT2 SMPL-X ``.npz`` -> `Skeleton3D` (fps from ``mocap_frame_rate``, else 30)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"npz file {str(path)!r} does not exist")
    with np.load(path, allow_pickle=False) as data:
        if "poses" not in data.files:
            raise ValueError(f"npz file {str(path)!r} has no 'poses' array; has {data.files}")
        poses = data["poses"]
        trans = data["trans"] if "trans" in data.files else None
        fps = float(data["mocap_frame_rate"]) if "mocap_frame_rate" in data.files else 30.0
    return smplx_pose_skeleton(poses, trans, fps)


def smplx_pose_skeleton(poses: np.ndarray, trans: np.ndarray | None = None, fps: float = 30.0) -> Skeleton3D:
    """SMPL-X ``poses [T, 165]`` (and ``trans [T, 3]``) -> `Skeleton3D` on `SMPLX_REST`."""
    pos, rot = smplx_forward_kinematics(poses, trans)
    positions = {name: pos[:, j] for j, name in _SMPLX_NAMES.items()}
    for finger, first in (("middle", 28), ("thumb", 37)):
        for side, off, sign in (("left", 0, 1.0), ("right", 15, -1.0)):
            distal = first + off + 2
            tip = np.asarray(TIP_OFFSETS[finger]) * (sign, 1.0, 1.0)
            positions[f"{side}_{finger}_tip"] = pos[:, distal] + rot[:, distal] @ tip
    return Skeleton3D(positions, {"head": rot[:, 15], "jaw": rot[:, 22]}, SHOULDER_WIDTH, fps)


_BVH_NAMES = {"Head": "head", "LeftArm": "left_shoulder", "RightArm": "right_shoulder",
              "LeftForeArm": "left_elbow", "RightForeArm": "right_elbow", "LeftHand": "left_wrist",
              "RightHand": "right_wrist", "LeftHandIndex1": "left_index_knuckle",
              "RightHandIndex1": "right_index_knuckle", "LeftHandPinky1": "left_pinky_knuckle",
              "RightHandPinky1": "right_pinky_knuckle", "LeftHandThumb4": "left_thumb_tip",
              "RightHandThumb4": "right_thumb_tip", "LeftHandMiddle4": "left_middle_tip",
              "RightHandMiddle4": "right_middle_tip"}


def bvh_skeleton(path: str | Path, first_frame: int = 0) -> Skeleton3D:
    """A BEAT ``.bvh`` -> `Skeleton3D` (no jaw: the lower lip and chin follow the head)."""
    from difftted.data.mocap import forward_kinematics, read_bvh

    bvh = read_bvh(path)
    missing = sorted(set(_BVH_NAMES) - set(bvh.names))
    if missing:
        raise ValueError(f"BVH file {str(path)!r} lacks the joints {missing}")
    pos, rot = forward_kinematics(bvh, return_rotations=True)
    pos, rot = pos[first_frame:], rot[first_frame:]
    positions = {ours: pos[:, bvh.names.index(theirs)] for theirs, ours in _BVH_NAMES.items()}
    rest = forward_kinematics(_rest(bvh))
    scale = float(np.linalg.norm(rest[0, bvh.names.index("LeftArm")] - rest[0, bvh.names.index("RightArm")]))
    return Skeleton3D(positions, {"head": rot[:, bvh.names.index("Head")]}, scale, bvh.fps)


def _rest(bvh):
    """The BVH's rest pose (every channel zero), one frame."""
    from dataclasses import replace

    return replace(bvh, motion=np.zeros((1, bvh.motion.shape[1])))


def world_points(skeleton: Skeleton3D) -> dict[str, np.ndarray]:
    """Every named 3-D point: the joints plus the face points from the head (and jaw) frame."""
    out = dict(skeleton.positions)
    k = skeleton.scale / SHOULDER_WIDTH
    head = skeleton.positions["head"]
    for name, (frame, offset) in FACE_OFFSETS.items():
        rot = skeleton.rotations.get(frame, skeleton.rotations["head"])
        base = head
        if frame == "jaw" and "jaw" in skeleton.rotations:
            base = head + skeleton.rotations["head"] @ (np.asarray(SMPLX_REST[22]) * k)
            offset = np.asarray(offset) - np.asarray(SMPLX_REST[22])
        out[name] = base + rot @ (np.asarray(offset) * k)
    return out


@dataclass(frozen=True)
class TedCamera:
    """A fixed frontal pinhole camera framing the speaker as TED clips do: a ``size`` pixel square
    spans ``span`` shoulder widths at the speaker (``distance`` shoulder widths away), the nose at
    ``nose_at`` of the height from the top, centred between the nose and the mid-shoulders."""

    size: int = 384
    span: float = 2.4
    nose_at: float = 0.25
    distance: float = 8.0

    def project(self, points: dict[str, np.ndarray], scale: float) -> dict[str, np.ndarray]:
        """3-D ``{name: [T, 3]}`` (x left, y up, z forward) -> pixels ``{name: [T, 2]}``."""
        ls, rs = points["left_shoulder"], points["right_shoulder"]
        across = np.median(ls - rs, axis=0)
        yaw = np.arctan2(-across[2], across[0])  # turn the median facing toward the camera
        turn = Rotation.from_euler("y", -yaw).as_matrix()
        turned = {k: v @ turn.T for k, v in points.items()}
        mid = np.median((turned["left_shoulder"] + turned["right_shoulder"]) / 2, axis=0)
        nose = np.median(turned["nose"], axis=0)
        cx, ny = (mid[0] + nose[0]) / 2, nose[1]
        dist = self.distance * scale
        eye_z = mid[2] + dist
        f = self.size * dist / (self.span * scale)
        out = {}
        for k, v in turned.items():
            depth = np.maximum(eye_z - v[:, 2], 0.1 * dist)
            col = (self.size - 1) / 2 + f * (v[:, 0] - cx) / depth
            row = self.nose_at * (self.size - 1) - f * (v[:, 1] - ny) / depth
            out[k] = np.stack([col, row], axis=-1)
        return out


def mocap_keypoints(path: str | Path, camera: TedCamera | None = None, smooth: float = 0.0,
                    first_frame: int = 0, follow_seconds: float = 0.5) -> BodyKeypoints:
    """A BEAT2 ``.npz`` or BEAT ``.bvh`` -> `BodyKeypoints` ``[T, 50, 2]`` at the capture's rate in
    the camera's ``size x size`` frame (``first_frame``: BVH frames to skip; ``follow_seconds``:
    see `skeleton_keypoints`)."""
    path = Path(path)
    camera = camera or TedCamera()
    if path.suffix.lower() == ".npz":
        skeleton = smplx_skeleton(path)
    elif path.suffix.lower() == ".bvh":
        skeleton = bvh_skeleton(path, first_frame)
    else:
        raise ValueError(f"path must be a BEAT2 .npz or a BEAT .bvh file, got {str(path)!r}")
    return skeleton_keypoints(skeleton, camera, smooth, follow_seconds)


def follow_speaker(points: dict[str, np.ndarray], fps: float, seconds: float) -> dict[str, np.ndarray]:
    """Take the speaker's slow horizontal travel out of 3-D points ``{name: [T, 3]}``: the
    mid-shoulder's x and z (y, height, is kept), low-passed by a zero-phase Gaussian of sigma
    ``seconds``, minus its median, is subtracted from every point. Mocap speakers step about the
    stage (BEAT2: the head's x spans about 40% of a TED frame over a minute); a TED camera pans
    with them, and a photo's speaker stays where the photo has them. Faster motion (sway,
    gestures, steps shorter than ``seconds``) is kept; 0 keeps every point as it is."""
    if seconds < 0:
        raise ValueError(f"seconds must be >= 0, got {seconds!r}")
    if seconds == 0:
        return points
    from scipy.ndimage import gaussian_filter1d

    mid = (points["left_shoulder"] + points["right_shoulder"]) / 2  # [T, 3]
    slow = gaussian_filter1d(mid, sigma=seconds * fps, axis=0, mode="nearest")
    shift = slow - np.median(mid, axis=0)
    shift[:, 1] = 0.0
    return {k: v - shift for k, v in points.items()}


def skeleton_keypoints(skeleton: Skeleton3D, camera: TedCamera | None = None, smooth: float = 0.0,
                       follow_seconds: float = 0.5) -> BodyKeypoints:
    """`Skeleton3D` -> named 3-D points (`follow_speaker` with ``follow_seconds``) -> ``camera`` ->
    `BodyKeypoints` through the one table."""
    camera = camera or TedCamera()
    points = follow_speaker(world_points(skeleton), skeleton.fps, follow_seconds)
    pixels = camera.project(points, skeleton.scale)
    pixels.pop("head")
    return table_keypoints(pixels, (camera.size, camera.size), fps=skeleton.fps, smooth=smooth)
