"""mediapipe on video frames and on the photo, for ``evaluate-video`` (see `difftted.video_judge`).

mediapipe 0.10.21's legacy solutions ship their models in the wheel and run offline: Pose
(33 landmarks, ``model_complexity=1``), Face Mesh (468 points) and Selfie Segmentation.
``evaluate-video`` runs them in still-image mode on every frame (each frame on its own): measured,
tracking mode (``static_image_mode=False``) drifts on a perfectly still video, because each
frame's region comes from the previous landmarks; on the first frame of talking/oliver_halfbody.mp4
repeated 60 times it gave wrist / elbow speeds of 0.031 / 0.057 shoulder-widths per second, about
half of real motion, where still-image mode gives exactly 0. Frames are shown to mediapipe at most
`DETECT_MAX_SIDE` pixels on their longer side; landmarks come back in the full frame's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

#: mediapipe runs on a copy whose longer side is at most this (landmarks are relative anyway).
DETECT_MAX_SIDE = 1024
#: A pose landmark counts where mediapipe's visibility is at least this.
MIN_VISIBILITY = 0.5
# Pose landmark indices (the person's left / right).
NOSE, LEFT_SHOULDER, RIGHT_SHOULDER = 0, 11, 12
LEFT_ELBOW, RIGHT_ELBOW, LEFT_WRIST, RIGHT_WRIST = 13, 14, 15, 16
# Face Mesh indices: inner upper / lower lip, forehead top, chin.
UPPER_LIP, LOWER_LIP, FOREHEAD, CHIN = 13, 14, 10, 152


@dataclass(frozen=True)
class FrameLandmarks:
    """What mediapipe found on one frame, in that frame's pixels.

    ``pose``: ``float [33, 2]`` (x, y) or None; ``pose_visibility``: ``float [33]`` or None;
    ``face``: ``float [468, 2]`` (x, y) or None.
    """

    pose: np.ndarray | None
    pose_visibility: np.ndarray | None
    face: np.ndarray | None

    def mouth_opening(self) -> float:
        """Inner-lip distance over face height, ``|p13 - p14| / |p10 - p152|``; NaN without a face."""
        if self.face is None:
            return float("nan")
        height = np.linalg.norm(self.face[FOREHEAD] - self.face[CHIN])
        if height <= 0:
            return float("nan")
        return float(np.linalg.norm(self.face[UPPER_LIP] - self.face[LOWER_LIP]) / height)


def _for_detection(frame: np.ndarray) -> np.ndarray:
    h, w = frame.shape[:2]
    if max(h, w) <= DETECT_MAX_SIDE:
        return np.ascontiguousarray(frame)
    scale = DETECT_MAX_SIDE / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR))


def _to_pixels(landmarks, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    xy = np.array([(p.x * width, p.y * height) for p in landmarks.landmark], dtype=np.float64)
    vis = np.array([getattr(p, "visibility", 1.0) for p in landmarks.landmark], dtype=np.float64)
    return xy, vis


class LandmarkTracker:
    """Pose + Face Mesh on frames: with ``still=True`` each frame on its own (deterministic per
    frame: identical frames give identical landmarks), else tracking across frames in time order.

    Use as a context manager; `process` takes ``uint8 [H, W, 3]`` RGB frames.
    """

    def __init__(self, still: bool = False) -> None:
        from mediapipe.python.solutions import face_mesh as mp_face_mesh
        from mediapipe.python.solutions import pose as mp_pose

        self._pose = mp_pose.Pose(static_image_mode=still, model_complexity=1, smooth_landmarks=True,
                                  min_detection_confidence=0.5, min_tracking_confidence=0.5)
        self._face = mp_face_mesh.FaceMesh(static_image_mode=still, max_num_faces=1, refine_landmarks=False,
                                           min_detection_confidence=0.5, min_tracking_confidence=0.5)

    def __enter__(self) -> "LandmarkTracker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._pose.close()
        self._face.close()

    def process(self, frame: np.ndarray) -> FrameLandmarks:
        """Landmarks of one RGB frame ``uint8 [H, W, 3]``, in its pixels."""
        h, w = frame.shape[:2]
        small = _for_detection(frame)
        pose_result = self._pose.process(small)
        face_result = self._face.process(small)
        pose = vis = face = None
        if pose_result.pose_landmarks is not None:
            pose, vis = _to_pixels(pose_result.pose_landmarks, w, h)
        if face_result.multi_face_landmarks:
            face, _ = _to_pixels(face_result.multi_face_landmarks[0], w, h)
        return FrameLandmarks(pose, vis, face)


def person_mask(image: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Selfie Segmentation (general model) of an RGB image: ``bool [H, W]``, True on the person."""
    from mediapipe.python.solutions import selfie_segmentation as mp_selfie

    h, w = image.shape[:2]
    with mp_selfie.SelfieSegmentation(model_selection=0) as segmenter:
        result = segmenter.process(_for_detection(image))
    prob = np.asarray(result.segmentation_mask, dtype=np.float32)
    if prob.shape != (h, w):
        prob = np.asarray(Image.fromarray(prob).resize((w, h), Image.Resampling.BILINEAR))
    return prob > threshold
