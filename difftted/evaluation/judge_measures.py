"""The numbers behind ``evaluate-video``: pure numpy on landmark tracks, loudness and pixels.

Nothing here runs a model; `difftted.judge_landmarks` finds the landmarks and
`difftted.video_judge` streams the frames. Conventions:

- landmark tracks are ``points [T, K, 2]`` in pixels ``(x, y)`` with ``valid bool [T, K]``
  (found and visible); times are frame indices at ``fps`` (the analysed frames' rate);
- speeds are in shoulder-widths per second: pixel speed over the video's median shoulder width;
- chance levels shift the audio side circularly by a random ``1..3 s`` (either direction) and
  average the measure over ``shifts`` seeded draws, so they are deterministic.

Beat Consistency itself is `difftted.metrics` (one home for the formula); this module only turns
pixel tracks into its keypoint units (``[-1, 1]`` across the image) and adds the chance level.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from difftted.evaluation import metrics

#: Temporal smoothing of landmark tracks (Gaussian sigma, seconds). Landmarks found frame by frame
#: jitter; measured on talking/oliver_halfbody.mp4's first frame repeated with fresh pixel noise
#: (std 3 of 255) per frame, sigma 0.1 s takes the still-video wrist speed from 0.054 (0.04 s) to
#: 0.021 shoulder-widths/s while the real clip keeps 0.086 (a gesture's stroke lasts 0.3-1 s).
SMOOTH_SECONDS = 0.1
#: Chance levels shift the audio side by this many seconds (uniform, random sign), circularly.
CHANCE_SHIFT_S = (1.0, 3.0)


def _rng_shifts(shifts: int, seed: int) -> np.ndarray:
    if isinstance(shifts, bool) or not isinstance(shifts, (int, np.integer)) or shifts < 1:
        raise ValueError(f"shifts must be a positive int, got {shifts!r}")
    rng = np.random.default_rng(seed)
    return rng.uniform(*CHANCE_SHIFT_S, size=shifts) * rng.choice([-1.0, 1.0], size=shifts)


def _check_tracks(points: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(points, dtype=np.float64)
    v = np.asarray(valid, dtype=bool)
    if p.ndim != 3 or p.shape[2] != 2 or v.shape != p.shape[:2]:
        raise ValueError(f"points must be [T, K, 2] and valid [T, K], got {p.shape} and {v.shape}")
    return p, v & np.isfinite(p).all(axis=2)


def fill_and_smooth(points: np.ndarray, valid: np.ndarray, fps: float,
                    smooth_seconds: float = SMOOTH_SECONDS) -> np.ndarray:
    """Tracks with gaps filled (linear inside, held at the ends) and a Gaussian of
    ``smooth_seconds`` applied in time: ``[T, K, 2]``, finite wherever a landmark was ever valid
    (a landmark never valid stays NaN)."""
    p, v = _check_tracks(points, valid)
    out = np.full_like(p, np.nan)
    t = np.arange(p.shape[0])
    sigma = smooth_seconds * fps
    for k in range(p.shape[1]):
        if not v[:, k].any():
            continue
        for c in range(2):
            track = np.interp(t, t[v[:, k]], p[v[:, k], k, c])
            out[:, k, c] = ndimage.gaussian_filter1d(track, sigma, mode="nearest") if sigma >= 0.3 else track
    return out


def median_distance(points: np.ndarray, valid: np.ndarray, a: int, b: int) -> float:
    """Median over frames where both are valid of the pixel distance between landmarks ``a`` and
    ``b`` (e.g. the shoulders); NaN when no frame has both."""
    p, v = _check_tracks(points, valid)
    both = v[:, a] & v[:, b]
    if not both.any():
        return math.nan
    return float(np.median(np.linalg.norm(p[both, a] - p[both, b], axis=-1)))


def group_speed(smoothed: np.ndarray, valid: np.ndarray, fps: float, scale: float,
                min_fraction: float = 0.3) -> tuple[float, float]:
    """Median over frames of the mean speed of the landmarks in ``smoothed [T, K, 2]`` (pixels),
    counting a landmark at a frame only where it is ``valid``, divided by ``scale`` (pixels).

    Returns ``(speed, fraction of frames with a valid landmark)``; speed is NaN when that fraction
    is below ``min_fraction``, when ``scale`` is not positive, or with fewer than 3 frames.
    """
    p, v = _check_tracks(smoothed, valid)
    if p.shape[0] < 3 or not (scale > 0):
        return math.nan, 0.0
    speed = np.linalg.norm(np.gradient(p, 1.0 / fps, axis=0), axis=-1) / scale  # [T, K]
    speed = np.where(v, speed, np.nan)
    seen = v.any(axis=1)
    fraction = float(seen.mean())
    if fraction < min_fraction:
        return math.nan, fraction
    return float(np.median(np.nanmean(speed[seen], axis=1))), fraction


def shifted_times(times: np.ndarray, duration: float, shift: float) -> np.ndarray:
    """``times`` moved by ``shift`` seconds, wrapped around ``[0, duration)``, sorted."""
    return np.sort(np.mod(np.asarray(times, dtype=np.float64) + shift, duration))


def body_beat_consistency(smoothed: np.ndarray, image_size: tuple[int, int], fps: float, onsets: np.ndarray,
                          shifts: int = 20, seed: int = 0) -> tuple[float, float]:
    """BC of the landmark motion against audio ``onsets`` (s), and its chance level.

    ``smoothed [T, K, 2]`` pixel tracks (NaN columns are left out), ``image_size`` = (H, W): they
    become keypoint units ``[-1, 1]`` so `difftted.metrics`'s motion-beat threshold applies.
    Chance: the onsets shifted circularly by 1-3 s, BC averaged over ``shifts`` seeded draws.
    Returns NaN for both without onsets, landmarks or motion beats.
    """
    h, w = image_size
    kp = np.asarray(smoothed, dtype=np.float64)
    kp = kp[:, np.isfinite(kp).all(axis=(0, 2))]
    if kp.shape[0] < 3 or kp.shape[1] == 0 or len(onsets) == 0:
        return math.nan, math.nan
    kp = kp / np.array([w, h]) * 2.0 - 1.0
    duration = kp.shape[0] / fps
    onsets = np.asarray(onsets, dtype=np.float64)
    onsets = onsets[onsets < duration]
    beats = metrics.motion_beats(kp, fps)
    bc = metrics.beat_consistency_from_times(onsets, beats)
    if not math.isfinite(bc):
        return math.nan, math.nan
    chance = [metrics.beat_consistency_from_times(shifted_times(onsets, duration, s), beats)
              for s in _rng_shifts(shifts, seed)]
    return bc, float(np.mean(chance))


def loudness_envelope(waveform: np.ndarray, sample_rate: int, fps: float, num_frames: int,
                      stride: int = 1) -> np.ndarray:
    """Linear RMS of the audio under each analysed frame: frame ``i`` covers
    ``[i*stride/fps, (i*stride+1)/fps)``. ``[num_frames]``; NaN past the end of the audio.

    Linear rather than dB: in dB the pauses (where a mouth may rest open or closed) spread over
    tens of dB and dominate the correlation; measured on real clips, linear RMS gives the higher
    correlation and the lower chance level (KatieHill: 0.23 vs 0.05 linear, 0.13 vs 0.09 in dB).
    """
    y = np.asarray(waveform, dtype=np.float64).reshape(-1)
    if sample_rate <= 0 or not fps > 0:
        raise ValueError(f"sample_rate and fps must be positive, got {sample_rate!r} and {fps!r}")
    env = np.full(num_frames, np.nan)
    for i in range(num_frames):
        a = int(round(i * stride / fps * sample_rate))
        b = int(round((i * stride + 1) / fps * sample_rate))
        if b <= y.size and b > a:
            env[i] = float(np.sqrt(np.mean(np.square(y[a:b]))))
    return env


def _corr(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.std(x[ok]) == 0 or np.std(y[ok]) == 0:
        return math.nan
    return float(np.corrcoef(x[ok], y[ok])[0, 1])


def best_lag_correlation(signal: np.ndarray, envelope: np.ndarray, max_lag: int = 4) -> tuple[float, int]:
    """Highest Pearson correlation of ``signal[t]`` with ``envelope[t - lag]`` over
    ``lag in [-max_lag, max_lag]`` frames (positive lag: the signal follows the sound), and that
    lag. NaN (lag 0) when no lag has 3 common finite frames with variance."""
    x = np.asarray(signal, dtype=np.float64)
    e = np.asarray(envelope, dtype=np.float64)
    if x.shape != e.shape or x.ndim != 1:
        raise ValueError(f"signal and envelope must be 1-D of one length, got {x.shape} and {e.shape}")
    best, best_lag = math.nan, 0
    for lag in range(-max_lag, max_lag + 1):
        if lag >= 0:
            r = _corr(x[lag:], e[:e.size - lag])
        else:
            r = _corr(x[:lag], e[-lag:])
        if math.isfinite(r) and not (r <= best):
            best, best_lag = r, lag
    return best, best_lag


def lip_sync(opening: np.ndarray, envelope: np.ndarray, fps: float, max_lag: int = 4, shifts: int = 20,
             seed: int = 0) -> tuple[float, int, float]:
    """Best-lag correlation of mouth opening with loudness, its lag, and its chance level (the
    envelope rolled by 1-3 s, same best-lag search, mean over ``shifts`` seeded draws)."""
    r, lag = best_lag_correlation(opening, envelope, max_lag)
    if not math.isfinite(r):
        return math.nan, 0, math.nan
    env = np.asarray(envelope, dtype=np.float64)
    chance = [best_lag_correlation(opening, np.roll(env, int(round(s * fps))), max_lag)[0]
              for s in _rng_shifts(shifts, seed)]
    return r, lag, float(np.nanmean(chance)) if np.isfinite(chance).any() else math.nan


def box_around(points: np.ndarray, image_size: tuple[int, int], enlarge: float) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)`` pixel box of ``points [K, 2]`` (finite ones), scaled by ``enlarge``
    about its centre and clipped to the image ``(H, W)``; None when empty or under 4 pixels."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    p = p[np.isfinite(p).all(axis=1)]
    if p.size == 0:
        return None
    h, w = image_size
    centre = (p.min(axis=0) + p.max(axis=0)) / 2
    half = (p.max(axis=0) - p.min(axis=0)) / 2 * enlarge
    x0, y0 = np.floor(centre - half).astype(int)
    x1, y1 = np.ceil(centre + half).astype(int)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    return (int(x0), int(y0), int(x1), int(y1)) if x1 - x0 >= 4 and y1 - y0 >= 4 else None


def gray(image: np.ndarray) -> np.ndarray:
    """``uint8 [H, W, 3]`` RGB -> float64 ``[H, W]`` luma (ITU-R 601) on the 0-255 scale."""
    return np.asarray(image, dtype=np.float64) @ np.array([0.299, 0.587, 0.114])


def ssim_gray(a: np.ndarray, b: np.ndarray) -> float:
    """SSIM of two grayscale ``[H, W]`` images on the 0-255 scale (skimage, 7x7 window)."""
    from skimage.metrics import structural_similarity

    if a.shape != b.shape:
        raise ValueError(f"images must have one shape, got {a.shape} and {b.shape}")
    if min(a.shape) < 7:
        return math.nan
    return float(structural_similarity(a, b, data_range=255.0))


#: Face-mesh points carried by the skull, not by the jaw or the lips: eye corners, the nose's
#: bridge and tip, forehead, temples. `aligned_face` fits on these only, so an opening mouth
#: does not move the alignment.
RIGID_FACE = (33, 133, 362, 263, 168, 6, 197, 195, 5, 4, 10, 151, 9, 234, 454, 127, 356)


def aligned_face(gray_frame: np.ndarray, frame_face: np.ndarray, photo_face: np.ndarray,
                 box: tuple[int, int, int, int]) -> np.ndarray | None:
    """The photo's face ``box`` ``(x0, y0, x1, y1)`` as the frame shows it once its face is moved
    back onto the photo's: ``float64 [y1 - y0, x1 - x0]``, or None when no similarity fits.

    ``gray_frame [H, W]`` (0-255); ``frame_face``, ``photo_face``: ``[468, 2]`` face-mesh points
    (x, y) in their image's pixels. The similarity (rotation, uniform scale, shift) taking the
    photo's `RIGID_FACE` points to the frame's is fitted by least median of squares (a point the
    mesh misplaces does not pull it) and the frame is resampled through it (bicubic). SSIM of
    this against the photo's box measures what happened to the face itself, wherever the head went:
    the fixed box of the plain face SSIM also falls when a sharp face merely moves.
    """
    import cv2

    src = np.asarray(photo_face, dtype=np.float64)[list(RIGID_FACE)]
    dst = np.asarray(frame_face, dtype=np.float64)[list(RIGID_FACE)]
    if not (np.isfinite(src).all() and np.isfinite(dst).all()):
        return None
    matrix, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
    if matrix is None or not np.isfinite(matrix).all():
        return None
    x0, y0, x1, y1 = box
    matrix = matrix @ np.array([[1.0, 0.0, x0], [0.0, 1.0, y0], [0.0, 0.0, 1.0]])  # box pixels -> frame pixels
    return cv2.warpAffine(np.asarray(gray_frame, dtype=np.float64), matrix, (x1 - x0, y1 - y0),
                          flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def laplacian_variance(gray_image: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian: the usual focus measure (higher is sharper)."""
    return float(np.var(ndimage.laplace(np.asarray(gray_image, dtype=np.float64))))


def background_mask(person: np.ndarray, margin: float = 0.15) -> np.ndarray:
    """Background pixels ``bool [H, W]`` at least ``margin * H`` away from any person pixel
    (``person``: ``bool [H, W]``, e.g. the selfie segmentation above 0.5)."""
    person = np.asarray(person, dtype=bool)
    if not person.any():
        return np.ones_like(person)
    distance = ndimage.distance_transform_edt(~person)
    return distance > margin * person.shape[0]


def window_means(values: np.ndarray, times: np.ndarray, window: float, duration: float) -> list[tuple[float, float, float]]:
    """``(start, end, mean)`` of ``values`` over consecutive ``window``-second spans of
    ``[0, duration)`` (the last one may be shorter); the mean ignores NaN (NaN if all are)."""
    v, t = np.asarray(values, dtype=np.float64), np.asarray(times, dtype=np.float64)
    out = []
    start = 0.0
    while start < duration - 1e-9:
        end = min(start + window, duration)
        inside = v[(t >= start) & (t < end)]
        inside = inside[np.isfinite(inside)]
        out.append((start, end, float(inside.mean()) if inside.size else math.nan))
        start = end
    return out
