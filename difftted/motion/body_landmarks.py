"""mediapipe landmarks on frames -> the named body points of `difftted.motion.body_keypoints`.

mediapipe 0.10.21's Holistic solution (pose ``model_complexity=1``, face mesh of 468 points, both
hands cropped around the pose's wrists; every model ships in the wheel, nothing is downloaded)
runs once per frame, tracking across frames for a video (``static_image_mode=False``, with its
own landmark filter) and alone for a photo. Which landmark feeds which named point is the
``*_LANDMARKS`` tables below; what happens to a missing one is `body_keypoints`' fallbacks.

`extract_body_keypoints` (a video or frames) and `image_body_keypoints` (one photo) are the
entry points; both return `BodyKeypoints` for the frame (or ``crop``) they were given.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from difftted.motion.body_keypoints import POINT_NAMES, BodyKeypoints, table_keypoints

logger = logging.getLogger(__name__)

#: Pose landmark index -> named point (mediapipe's "left" is the person's left).
POSE_LANDMARKS = {"nose": 0, "left_eye": 2, "right_eye": 5, "left_shoulder": 11, "right_shoulder": 12,
                  "left_elbow": 13, "right_elbow": 14, "left_wrist": 15, "right_wrist": 16}
#: Face mesh index -> named point.
FACE_LANDMARKS = {"forehead": 10, "right_eye_outer": 33, "left_eye_outer": 263, "right_nose_wing": 98,
                  "left_nose_wing": 327, "mouth_right": 61, "mouth_left": 291, "upper_lip": 0,
                  "lower_lip": 17, "chin": 152, "right_jaw": 172, "left_jaw": 397}
#: Hand landmark index -> hand part (prefixed with the side).
HAND_LANDMARKS = {"index_knuckle": 5, "pinky_knuckle": 17, "thumb_tip": 4, "middle_tip": 12}
#: A pose landmark below this visibility is still used (mediapipe extrapolates it), and logged.
MIN_VISIBILITY = 0.5


def _pixels(landmarks, index: int, size: tuple[int, int]) -> np.ndarray:
    """A normalised landmark -> (col, row) pixel-centre coordinates."""
    h, w = size
    lm = landmarks.landmark[index]
    return np.array([lm.x * w - 0.5, lm.y * h - 0.5])


def named_points_from_result(result, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """One Holistic result -> ``{name: [2]}`` pixels, NaN for what was not found."""
    out = {k: np.full(2, np.nan) for k in POINT_NAMES}
    if result.pose_landmarks is not None:
        for name, i in POSE_LANDMARKS.items():
            out[name] = _pixels(result.pose_landmarks, i, size)
    if result.face_landmarks is not None:
        for name, i in FACE_LANDMARKS.items():
            out[name] = _pixels(result.face_landmarks, i, size)
    for side in ("right", "left"):
        hand = getattr(result, f"{side}_hand_landmarks")
        if hand is not None:
            for part, i in HAND_LANDMARKS.items():
                out[f"{side}_{part}"] = _pixels(hand, i, size)
    return out


def _holistic(static: bool):
    from mediapipe.python.solutions import holistic

    return holistic.Holistic(static_image_mode=static, model_complexity=1, smooth_landmarks=True,
                             refine_face_landmarks=False, min_detection_confidence=0.5,
                             min_tracking_confidence=0.5)


def _check_frame(frame: np.ndarray, index: int) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frames[{index}] must be uint8 [H, W, 3] RGB, got "
                         f"{getattr(frame, 'dtype', type(frame).__name__)} {getattr(frame, 'shape', '')}")
    return np.ascontiguousarray(frame)


def detect_named_points(frames: Iterable[np.ndarray], static: bool = False) -> tuple[dict[str, np.ndarray], tuple[int, int]]:
    """Run Holistic on ``frames`` (uint8 ``[H, W, 3]`` RGB, all one size) -> ``({name: [T, 2]}
    pixels with NaN where not found, (H, W))``."""
    rows: list[dict[str, np.ndarray]] = []
    size = None
    with _holistic(static) as model:
        for i, frame in enumerate(frames):
            frame = _check_frame(frame, i)
            if size is None:
                size = frame.shape[:2]
            elif frame.shape[:2] != size:
                raise ValueError(f"frames[{i}] is {frame.shape[:2]}, frame 0 was {size}: one size per clip")
            rows.append(named_points_from_result(model.process(frame), size))
    if not rows:
        raise ValueError("frames is empty")
    return {k: np.stack([r[k] for r in rows]) for k in POINT_NAMES}, size


def _crop_points(points: dict[str, np.ndarray], crop: tuple[int, int, int, int] | None,
                 size: tuple[int, int]) -> tuple[dict[str, np.ndarray], tuple[int, int]]:
    """Pixels of the frame -> pixels of ``crop`` = (x0, y0, x1, y1), and the crop's (H, W)."""
    if crop is None:
        return points, size
    x0, y0, x1, y1 = crop
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"crop must be (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {crop!r}")
    return {k: v - np.array([x0, y0]) for k, v in points.items()}, (y1 - y0, x1 - x0)


def extract_body_keypoints(frames: Iterable[np.ndarray] | str | Path, fps: float | None = None,
                           crop: tuple[int, int, int, int] | None = None, smooth: float = 0.03,
                           max_gap: float = 0.5) -> BodyKeypoints:
    """Body-anchored keypoints ``[T, 50, 2]`` (and per-transform sources) of a clip.

    ``frames``: a video path (its frame rate is used when ``fps`` is None) or uint8 ``[H, W, 3]``
    RGB frames at ``fps`` (default 25). Landmarks are found on the whole frames; keypoints are in
    [-1, 1] of the frame or of ``crop`` = (x0, y0, x1, y1) pixels (not clipped to it). Smoothing
    over ``smooth`` seconds and fallbacks as in `difftted.motion.body_keypoints.table_keypoints`.
    Raises ValueError when no frame shows a person.
    """
    if isinstance(frames, (str, Path)):
        from tps.video import iter_frames, video_info

        path = Path(frames)
        if not path.is_file():
            raise ValueError(f"frames: video {str(path)!r} does not exist")
        fps = float(video_info(path).fps) if fps is None else fps
        frames = iter_frames(path)
    fps = 25.0 if fps is None else float(fps)
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    points, size = detect_named_points(frames, static=False)
    points, size = _crop_points(points, crop, size)
    found = np.isfinite(points["right_shoulder"]).all(axis=1)
    if not found.any():
        raise ValueError(f"no person found in any of the {len(found)} frames")
    if not found.all():
        logger.info("no person in %d of %d frames: they hold the nearest good frames", (~found).sum(), len(found))
    return table_keypoints(points, size, fps=fps, smooth=smooth, max_gap=max_gap)


#: Pixel shifts of the photo averaged by `image_body_keypoints` (mediapipe is not shift-equivariant:
#: one run moves landmarks by several pixels under a 1-pixel shift; the mean of 9 runs far less).
TTA_SHIFTS = tuple((dx, dy) for dx in (-3, 0, 3) for dy in (-3, 0, 3))


def _shifted(image: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``image`` moved by (dx, dy) pixels, the uncovered border repeating the edge."""
    h, w = image.shape[:2]
    pad = np.pad(image, ((abs(dy), abs(dy)), (abs(dx), abs(dx)), (0, 0)), mode="edge")
    return np.ascontiguousarray(pad[abs(dy) - dy:abs(dy) - dy + h, abs(dx) - dx:abs(dx) - dx + w])


def image_body_keypoints(image: np.ndarray, crop: tuple[int, int, int, int] | None = None,
                         shifts: tuple[tuple[int, int], ...] = TTA_SHIFTS) -> BodyKeypoints:
    """Body-anchored keypoints of one photo (uint8 ``[H, W, 3]`` RGB): ``keypoints [1, 50, 2]`` in
    [-1, 1] of the photo or of ``crop``; no smoothing. Each named point is the mean over the
    photo moved by ``shifts`` (pixels; the runs that found it), which steadies mediapipe's output.
    Raises ValueError when no person is found."""
    image = _check_frame(image, 0)
    if not shifts:
        raise ValueError("shifts must hold at least one (dx, dy)")
    runs, size = detect_named_points([_shifted(image, dx, dy) for dx, dy in shifts], static=True)
    offsets = np.asarray(shifts, dtype=np.float64)
    points = {}
    for k, v in runs.items():
        v = v - offsets
        found = np.isfinite(v).all(axis=1)
        points[k] = v[found].mean(axis=0, keepdims=True) if found.any() else np.full((1, 2), np.nan)
    points, size = _crop_points(points, crop, size)
    if not np.isfinite(points["right_shoulder"]).all():
        raise ValueError("image: no person found (mediapipe pose found no body)")
    return table_keypoints(points, size, smooth=0.0)
