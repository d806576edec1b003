"""The app's figures: generated keypoints drawn over the video, and the beat plot.

Plain numpy + PIL + matplotlib (imported inside the functions), no Gradio; `difftted.interfaces.ui`
shows them. Keypoints are ``(x, y)`` in ``[-1, 1]`` of the animated crop (align_corners
semantics); ``box`` (a `difftted.pipeline.person.CropBox`) places the crop in a full-photo frame.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from difftted.pipeline.person import CropBox

#: Keypoint views are drawn and encoded this many frames at a time (bounded memory).
_CHUNK = 16


# ------------------------------------------------------------------------------ keypoint view
def keypoints_to_pixels(keypoints: np.ndarray, frame_size: tuple[int, int],
                        box: "CropBox | None" = None) -> np.ndarray:
    """``keypoints [..., N, 2]`` in ``[-1, 1]`` (x, y) of the crop -> pixel (col, row) in a frame.

    ``frame_size`` = (height, width) of the frame; ``box`` is where the crop sits in a full-photo
    frame (None: the frame is the crop). align_corners semantics: -1 and 1 are the centres of the
    first and last pixels.
    """
    keypoints = np.asarray(keypoints, dtype=np.float32)
    if keypoints.ndim < 2 or keypoints.shape[-1] != 2:
        raise ValueError(f"keypoints must be [..., N, 2], got shape {keypoints.shape}")
    if box is None:
        h, w = frame_size
        scale = np.array([(w - 1) / 2, (h - 1) / 2], dtype=np.float32)
        return (keypoints + 1.0) * scale
    offset = np.array([box.x0, box.y0], dtype=np.float32)
    return offset + (keypoints + 1.0) * (box.size - 1) / 2


def _palette(num_groups: int) -> np.ndarray:
    """``uint8 [num_groups, 3]``: one distinct colour per TPS transform (matplotlib's tab10/tab20)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if num_groups <= 10 else "tab20"]
    colours = [cmap(i % cmap.N)[:3] for i in range(num_groups)]
    return (np.asarray(colours) * 255).round().astype(np.uint8)


def draw_keypoints(frames: np.ndarray, points: np.ndarray, radius: int | None = None,
                   points_per_group: int = 5) -> np.ndarray:
    """Dots over ``frames uint8 [T, H, W, 3]`` at ``points [T, N, 2]`` pixel (col, row).

    Keypoint ``i`` gets the colour of its TPS transform ``i // points_per_group`` (5 points per
    transform), with a dark rim so it shows on light and dark clothes. Returns a new array.
    """
    from PIL import Image, ImageDraw

    frames = np.asarray(frames)
    points = np.asarray(points, dtype=np.float32)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    if points.ndim != 3 or points.shape[0] != frames.shape[0] or points.shape[-1] != 2:
        raise ValueError(f"points must be [T, N, 2] with T = {frames.shape[0]}, got shape {points.shape}")
    if radius is None:
        radius = max(2, round(min(frames.shape[1:3]) / 120))
    colours = _palette(math.ceil(points.shape[1] / points_per_group))
    out = np.empty_like(frames)
    for t, (frame, frame_points) in enumerate(zip(frames, points)):
        canvas = Image.fromarray(frame)
        pen = ImageDraw.Draw(canvas)
        for i, (x, y) in enumerate(frame_points):
            colour = tuple(int(c) for c in colours[i // points_per_group])
            pen.ellipse((x - radius, y - radius, x + radius, y + radius), fill=colour, outline=(20, 20, 20))
        out[t] = np.asarray(canvas)
    return out


def write_keypoint_video(video: str | Path, keypoints: np.ndarray, out_path: str | Path, fps: float, *,
                         box: "CropBox | None" = None, audio: Any = None) -> Path:
    """Re-read ``video`` chunk by chunk, draw ``keypoints [T, N, 2]`` over it, write ``out_path``.

    ``box``: where the animated crop sits in the frames (full-photo videos), None when the frames
    are the crop. ``audio``: what `tps.video.write_video` takes (the speech), or None.
    """
    from tps.video import iter_frames, write_video

    keypoints = np.asarray(keypoints, dtype=np.float32)

    def chunks() -> Iterator[np.ndarray]:
        frames = iter_frames(video, max_frames=len(keypoints))
        for start, batch in enumerate(_batched(frames, _CHUNK)):
            index = start * _CHUNK
            stack = np.stack(batch)
            pixels = keypoints_to_pixels(keypoints[index : index + len(stack)], stack.shape[1:3], box)
            yield draw_keypoints(stack, pixels)

    return write_video(out_path, chunks(), fps, audio=audio)


def _batched(items: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    batch: list[np.ndarray] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# ---------------------------------------------------------------------------------- beat plot
def beat_figure(waveform: np.ndarray, sample_rate: int, keypoints: np.ndarray,
                fps: float) -> tuple["Figure", float | None]:
    """The audio onsets against the motion beats of one video, and its Beat Consistency.

    Top: the speech's envelope with its onsets (librosa). Bottom: the mean keypoint speed with
    its motion beats (local minima, `difftted.evaluation.metrics.motion_beats`). Both on one time axis, so a
    visitor sees whether the gestures land on the speech. ``waveform [S]`` mono, ``keypoints
    [T, N, 2]`` at ``fps``. Returns ``(figure, bc)``, ``bc`` None where it is undefined (no onset
    or no motion beat, or fewer than 3 frames).
    """
    from matplotlib.figure import Figure

    from difftted.evaluation import metrics

    waveform = np.asarray(waveform, dtype=np.float32)
    keypoints = np.asarray(keypoints)  # as given: metrics works in float64 either way
    duration = len(keypoints) / fps
    onsets = metrics.audio_beats(waveform, sample_rate)
    onsets = onsets[onsets < duration]
    if len(keypoints) >= 3:
        speed = metrics.keypoint_speed(keypoints, fps)
        beats = metrics.motion_beats(keypoints, fps)
        score = metrics.beat_consistency_from_times(onsets, beats)
    else:
        speed, beats, score = np.zeros(len(keypoints)), np.zeros(0), float("nan")
    bc = None if math.isnan(score) else score

    figure = Figure(figsize=(7.0, 3.6), layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    times, envelope = _envelope(waveform, sample_rate, duration)
    top.fill_between(times, -envelope, envelope, color="0.6", linewidth=0)
    top.vlines(onsets, -1.0, 1.0, color="tab:orange", linewidth=1.2, label=f"audio onsets ({len(onsets)})")
    top.set_ylim(-1.05, 1.05)
    top.set_yticks([])
    top.set_ylabel("speech")
    top.legend(loc="upper right", fontsize="small", framealpha=0.8)
    frame_times = np.arange(len(speed)) / fps
    bottom.plot(frame_times, speed, color="tab:blue", linewidth=1.2)
    if len(beats):
        bottom.plot(beats, np.interp(beats, frame_times, speed), "v", color="tab:red",
                    label=f"motion beats ({len(beats)})")
        bottom.legend(loc="upper right", fontsize="small", framealpha=0.8)
    for onset in onsets:
        bottom.axvline(onset, color="tab:orange", linewidth=0.8, alpha=0.4)
    bottom.set_ylabel("keypoint speed\n(units/s)")
    bottom.set_xlabel("time (s)")
    bottom.set_xlim(0.0, max(duration, 1e-3))
    shown = "undefined (no onset or no motion beat)" if bc is None else f"{bc:.3f}"
    top.set_title(f"Beat consistency {shown}  (sigma = {metrics.BC_SIGMA:g} s)", fontsize="medium")
    return figure, bc


def _envelope(waveform: np.ndarray, sample_rate: int, duration: float,
              points: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """Peak envelope of the first ``duration`` s on ``points`` bins, scaled to a peak of 1."""
    clip = np.abs(waveform[: max(1, int(round(duration * sample_rate)))])
    bins = max(1, min(points, len(clip)))
    edges = np.linspace(0, len(clip), bins + 1).astype(int)
    peaks = np.maximum.reduceat(clip, edges[:-1])
    peaks = peaks / max(float(peaks.max()), 1e-9)
    return (edges[:-1] + edges[1:]) / 2 / sample_rate, peaks
