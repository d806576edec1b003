"""A small BVH reader: real co-speech motion as a 2-D keypoint sequence for tests and examples.

``bvh_keypoints(path)`` parses a BVH file, runs forward kinematics, projects the joints
orthographically onto the frontal (x, y) plane, resamples to a video frame rate and normalises
the sequence into ``[-1, 1]`` (image convention: y grows downwards). The result has the project's
keypoint layout ``[T, N, 2]`` (``N = 50`` by default), so a real motion stands in for detector
keypoints where no TPS detector is at hand. It is not a TPS keypoint set: the points are joints.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

_AXES = {"X": 0, "Y": 1, "Z": 2}


@dataclass(frozen=True, eq=False)
class BVH:
    """A parsed BVH file. Joints are in file order; ``parents[j] < j`` (-1 for the root)."""

    names: list[str]
    parents: list[int]
    offsets: np.ndarray  # [J, 3], in the file's length unit
    channels: list[list[str]]  # per joint, e.g. ["Xposition", ..., "Zrotation"]
    motion: np.ndarray  # [F, sum of channel counts], degrees for rotations
    frame_time: float  # seconds, as the header says
    declared_frames: int  # the header's "Frames:", which a truncated or decimated file disagrees with

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time


def read_bvh(path: str | Path) -> BVH:
    """Parse ``path``. A motion section shorter than its ``Frames:`` header is accepted with a warning."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"BVH file {str(path)!r} does not exist")
    text = path.read_text()
    head, sep, motion_text = text.partition("MOTION")
    if not sep:
        raise ValueError(f"BVH file {str(path)!r} has no MOTION section")
    names, parents, offsets, channels = _parse_hierarchy(head, path)

    lines = motion_text.strip().splitlines()
    declared = int(re.search(r"Frames:\s*(\d+)", lines[0]).group(1)) if lines else 0
    time_match = re.search(r"Frame Time:\s*([0-9.eE+-]+)", lines[1]) if len(lines) > 1 else None
    if time_match is None or float(time_match.group(1)) <= 0:
        raise ValueError(f"BVH file {str(path)!r} lacks a positive 'Frame Time:'")
    width = sum(len(c) for c in channels)
    rows = [row.split() for row in lines[2:] if row.strip()]
    rows = [r for r in rows if len(r) == width]  # a truncated file may end with a partial row
    if not rows:
        raise ValueError(f"BVH file {str(path)!r} holds no complete motion frame of {width} values")
    if len(rows) != declared:
        logger.warning("%s declares %d frames but holds %d; using those present", path, declared, len(rows))
    motion = np.asarray(rows, dtype=np.float64)
    return BVH(names, parents, np.asarray(offsets), channels, motion, float(time_match.group(1)), declared)


def _parse_hierarchy(head: str, path: Path) -> tuple[list[str], list[int], list[list[float]], list[list[str]]]:
    names: list[str] = []
    parents: list[int] = []
    offsets: list[list[float]] = []
    channels: list[list[str]] = []
    stack: list[int] = []  # joint index per open brace (-1 for an End Site)
    pending = -1
    tokens = head.split()
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok in ("ROOT", "JOINT"):
            names.append(tokens[i + 1])
            parents.append(next((j for j in reversed(stack) if j >= 0), -1))
            offsets.append([0.0, 0.0, 0.0])
            channels.append([])
            pending = len(names) - 1
            i += 2
        elif tok == "End":
            pending = -1
            i += 2
        elif tok == "{":
            stack.append(pending)
            i += 1
        elif tok == "}":
            stack.pop()
            i += 1
        elif tok == "OFFSET":
            if stack and stack[-1] >= 0:
                offsets[stack[-1]] = [float(v) for v in tokens[i + 1:i + 4]]
            i += 4
        elif tok == "CHANNELS":
            count = int(tokens[i + 1])
            channels[stack[-1]] = tokens[i + 2:i + 2 + count]
            i += 2 + count
        else:
            i += 1
    if not names:
        raise ValueError(f"BVH file {str(path)!r} has no joints")
    return names, parents, offsets, channels


def _axis_rotation(axis: str, degrees: np.ndarray) -> np.ndarray:
    """``[F, 3, 3]`` rotations about ``axis`` by ``degrees`` ``[F]``."""
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    out = np.zeros(a.shape + (3, 3))
    i = _AXES[axis]
    j, k = (i + 1) % 3, (i + 2) % 3
    out[:, i, i] = 1.0
    out[:, j, j], out[:, j, k], out[:, k, j], out[:, k, k] = c, -s, s, c
    return out


def forward_kinematics(bvh: BVH, return_rotations: bool = False):
    """World joint positions ``[F, J, 3]``; rotations compose in channel order (intrinsic).

    ``return_rotations``: also the world rotations ``[F, J, 3, 3]``, as ``(positions, rotations)``.
    """
    frames = bvh.motion.shape[0]
    positions = np.zeros((frames, len(bvh.names), 3))
    rotations = np.zeros((frames, len(bvh.names), 3, 3))
    col = 0
    for j, chans in enumerate(bvh.channels):
        local_r = np.broadcast_to(np.eye(3), (frames, 3, 3)).copy()
        local_t = np.broadcast_to(bvh.offsets[j], (frames, 3)).copy()
        for name in chans:
            values = bvh.motion[:, col]
            col += 1
            if name.endswith("rotation"):
                local_r = local_r @ _axis_rotation(name[0], values)
            elif name.endswith("position"):
                local_t[:, _AXES[name[0]]] += values
        parent = bvh.parents[j]
        if parent < 0:
            positions[:, j], rotations[:, j] = local_t, local_r
        else:
            positions[:, j] = positions[:, parent] + np.einsum("fab,fb->fa", rotations[:, parent], local_t)
            rotations[:, j] = rotations[:, parent] @ local_r
    return (positions, rotations) if return_rotations else positions


def _joint_priority(names: list[str]) -> list[int]:
    """Joint order for picking N points: torso, head and arms first, then thighs, then finger joints."""
    def rank(name: str) -> tuple[int, int]:
        finger = re.match(r"(Left|Right)Hand(Thumb|Index|Middle|Ring|Pinky)(\d*)$", name)
        if finger:
            return 2, {"1": 0, "3": 1, "2": 2, "4": 3}.get(finger.group(3), 4)
        if re.search(r"(UpLeg|Leg)$", name):
            return 1, 0
        if re.search(r"(Foot|Toe)", name):
            return 3, 0
        return 0, 0
    return sorted(range(len(names)), key=lambda j: rank(names[j]))  # stable: file order within a rank


def bvh_keypoints(path: str | Path, num_keypoints: int = 50, fps: float = 25.0,
                  max_seconds: float | None = None, margin: float = 0.9, *,
                  source_fps: float | None = None, first_frame: int = 0) -> np.ndarray:
    """A real keypoint sequence ``[T, num_keypoints, 2]`` float32 in ``[-margin, margin]``.

    Frontal orthographic projection (x right, y down), linearly resampled to ``fps``, centred on
    the sequence's bounding box and scaled uniformly so its larger side spans ``2 * margin``.
    ``source_fps`` overrides the header's frame rate (for decimated files); motion frames before
    ``first_frame`` are skipped (some captures start with a glitch frame).
    """
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if source_fps is not None and source_fps <= 0:
        raise ValueError(f"source_fps must be positive or None, got {source_fps}")
    if not 0 < margin <= 1:
        raise ValueError(f"margin must lie in (0, 1], got {margin}")
    bvh = read_bvh(path)
    if not 0 < num_keypoints <= len(bvh.names):
        raise ValueError(f"num_keypoints must lie in 1..{len(bvh.names)} for {path}, got {num_keypoints}")
    joints = _joint_priority(bvh.names)[:num_keypoints]
    if not 0 <= first_frame < bvh.motion.shape[0] - 1:
        raise ValueError(f"first_frame must lie in 0..{bvh.motion.shape[0] - 2}, got {first_frame}")
    world = forward_kinematics(bvh)[first_frame:, joints]  # [F, N, 3]
    xy = np.stack([world[..., 0], -world[..., 1]], axis=-1)

    frame_time = bvh.frame_time if source_fps is None else 1.0 / source_fps
    duration = (xy.shape[0] - 1) * frame_time
    if max_seconds is not None:
        duration = min(duration, max_seconds)
    times = np.arange(int(np.floor(duration * fps)) + 1) / fps
    src = np.arange(xy.shape[0]) * frame_time
    flat = xy.reshape(xy.shape[0], -1)
    resampled = np.stack([np.interp(times, src, flat[:, k]) for k in range(flat.shape[1])], axis=1)
    xy = resampled.reshape(len(times), num_keypoints, 2)

    lo, hi = xy.reshape(-1, 2).min(axis=0), xy.reshape(-1, 2).max(axis=0)
    scale = 2 * margin / max(float((hi - lo).max()), 1e-9)
    return ((xy - (lo + hi) / 2) * scale).astype(np.float32)
