"""Motion metrics of co-speech gesture generation (numpy in, floats out).

Keypoints are ``[T, N, 2]`` (or flat ``[T, N*2]``) in the project's keypoint units: ``(x, y)`` in
``[-1, 1]`` across the image (see docs/ARCHITECTURE.md). Times are in seconds.

- Beat Consistency (BC, higher is better, in [0, 1]): audio beats are librosa onsets; motion beats
  are local minima of the mean keypoint speed (a gesture's stroke ends, the body pauses);
  ``BC = mean_a exp(-min_m (a - m)^2 / (2 sigma^2))`` with ``sigma = 0.1`` s. NaN for a clip with no
  motion beat or no audio beat; average clips with ``np.nanmean`` (clips without beats skipped).
- Diversity (higher = more varied): mean L1 distance between motion-autoencoder features of
  generated clips and a random re-pairing of them (never an item with itself).
- FGD (lower is better): Frechet distance between real and generated feature sets.
- L1 to ground truth: mean absolute keypoint difference, keypoint units.
- Jitter (lower is smoother): mean acceleration magnitude, keypoint units per second squared.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.linalg

logger = logging.getLogger(__name__)

BC_SIGMA = 0.1  # seconds, the field's convention
#: A speed minimum counts as a motion beat when a neighbour frame is faster by more than this
#: (keypoint units per second): 1e-4 units per frame at 25 fps, the reference's threshold.
MOTION_BEAT_THRESHOLD = 2.5e-3


def _as_keypoints(keypoints: np.ndarray, name: str = "keypoints", min_frames: int = 1) -> np.ndarray:
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim == 2 and kp.shape[1] % 2 == 0:
        kp = kp.reshape(kp.shape[0], -1, 2)
    if kp.ndim != 3 or kp.shape[2] != 2 or kp.shape[1] == 0:
        raise ValueError(f"{name} must have shape [T, N, 2] or [T, N*2], got {np.shape(keypoints)}")
    if kp.shape[0] < min_frames:
        raise ValueError(f"{name} needs at least {min_frames} frames, got {kp.shape[0]}")
    if not np.isfinite(kp).all():
        raise ValueError(f"{name} holds NaN or inf")
    return kp


def _check_fps(fps: float) -> float:
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    return float(fps)


def keypoint_speed(keypoints: np.ndarray, fps: float) -> np.ndarray:
    """Mean keypoint speed per frame ``[T]``, keypoint units per second (central differences)."""
    kp = _as_keypoints(keypoints, min_frames=2)
    velocity = np.gradient(kp, 1.0 / _check_fps(fps), axis=0)
    return np.linalg.norm(velocity, axis=-1).mean(axis=1)


def motion_beats(keypoints: np.ndarray, fps: float, threshold: float = MOTION_BEAT_THRESHOLD) -> np.ndarray:
    """Times (s) of motion beats: frames whose mean keypoint speed is a local minimum and at
    least ``threshold`` (units/s) below its faster neighbour, so noise on a still pose is no beat."""
    speed = keypoint_speed(keypoints, fps)
    if threshold < 0:
        raise ValueError(f"threshold must be non-negative, got {threshold}")
    prev, mid, nxt = speed[:-2], speed[1:-1], speed[2:]
    is_min = (mid < prev) & (mid <= nxt) & (np.maximum(prev, nxt) - mid > threshold)
    return (np.flatnonzero(is_min) + 1) / fps


def audio_beats(audio: np.ndarray, sr: int, hop_seconds: float = 0.01) -> np.ndarray:
    """Times (s) of librosa onsets in mono ``audio`` ``[S]`` at rate ``sr``, on a ``hop_seconds`` grid."""
    import librosa

    y = np.asarray(audio, dtype=np.float32)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"audio must be a non-empty mono waveform [S], got shape {y.shape}")
    if sr <= 0:
        raise ValueError(f"sr must be positive, got {sr}")
    hop = max(1, int(round(hop_seconds * sr)))
    return librosa.onset.onset_detect(y=y, sr=sr, hop_length=hop, units="time")


def beat_consistency_from_times(audio_beats: np.ndarray, motion_beats: np.ndarray,
                                sigma: float = BC_SIGMA) -> float:
    """``mean_a exp(-min_m (a - m)^2 / (2 sigma^2))``; NaN when either list is empty."""
    a = np.asarray(audio_beats, dtype=np.float64).reshape(-1)
    m = np.asarray(motion_beats, dtype=np.float64).reshape(-1)
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    if a.size == 0 or m.size == 0:
        return float("nan")
    nearest = np.min(np.abs(a[:, None] - m[None, :]), axis=1)
    return float(np.mean(np.exp(-np.square(nearest) / (2 * sigma ** 2))))


def beat_consistency(keypoints: np.ndarray, audio: np.ndarray, sr: int, fps: float, sigma: float = BC_SIGMA,
                     threshold: float = MOTION_BEAT_THRESHOLD) -> float:
    """BC of one clip: ``keypoints`` ``[T, N, 2]`` at ``fps`` against mono ``audio`` at ``sr``.

    Audio beats after the motion's last frame are ignored. NaN without motion or audio beats.
    """
    kp = _as_keypoints(keypoints, min_frames=3)
    duration = kp.shape[0] / _check_fps(fps)
    onsets = audio_beats(audio, sr)
    onsets = onsets[onsets < duration]
    return beat_consistency_from_times(onsets, motion_beats(kp, fps, threshold), sigma)


def diversity(features: np.ndarray, rng: np.random.Generator | int | None = None) -> float:
    """Mean L1 distance between ``features`` ``[M, F]`` and a random re-pairing of them.

    Items are visited in a random order and each is paired with the next one (cyclically), so no
    item is paired with itself. ``rng``: a numpy Generator or seed.
    """
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"features must have shape [M>=2, F], got {f.shape}")
    order = np.random.default_rng(rng).permutation(f.shape[0])
    return float(np.abs(f[order] - f[np.roll(order, -1)]).sum(axis=1).mean())


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to ``feats_a`` ``[M, F]`` and ``feats_b`` ``[K, F]``:
    ``|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``.

    When the product's square root is singular or complex beyond round-off, ``eps * I`` is added
    to both covariances (the usual FID remedy) and the real part is kept.
    """
    a = np.asarray(feats_a, dtype=np.float64)
    b = np.asarray(feats_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(a.shape[0], b.shape[0]) < 2:
        raise ValueError(f"feats_a and feats_b must have shapes [M>=2, F] and [K>=2, F], got {a.shape} and {b.shape}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    covmean = scipy.linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        logger.warning("frechet_distance: singular product of covariances; adding %g to the diagonal", eps)
        offset = eps * np.eye(cov_a.shape[0])
        covmean = scipy.linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    if np.iscomplexobj(covmean):
        if np.abs(covmean.imag).max() > 1e-3 * max(1.0, np.abs(covmean.real).max()):
            logger.warning("frechet_distance: sqrtm has a large imaginary part (%g)", np.abs(covmean.imag).max())
        covmean = covmean.real
    value = np.sum(np.square(mu_a - mu_b)) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean)
    return float(max(value, 0.0))  # round-off can take an exact 0 slightly below


def l1_distance(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute difference between keypoint sequences of the same shape (keypoint units)."""
    p = _as_keypoints(pred, "pred")
    t = _as_keypoints(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred and target must have the same shape, got {p.shape} and {t.shape}")
    return float(np.abs(p - t).mean())


def jitter(keypoints: np.ndarray, fps: float) -> float:
    """Mean acceleration magnitude (keypoint units / s^2) by second differences; 0 for constant velocity."""
    kp = _as_keypoints(keypoints, min_frames=3)
    fps = _check_fps(fps)
    acceleration = (kp[2:] - 2 * kp[1:-1] + kp[:-2]) * fps ** 2
    return float(np.linalg.norm(acceleration, axis=-1).mean())


def motion_spread(keypoints: np.ndarray) -> float:
    """Mean distance of each keypoint from its own mean position over the clip (keypoint units).

    How far the motion ranges: 0 for a still photo. Read it beside `jitter`: low jitter with a
    low spread is frozen motion, not smooth motion.
    """
    kp = _as_keypoints(keypoints)
    return float(np.linalg.norm(kp - kp.mean(axis=0, keepdims=True), axis=-1).mean())
