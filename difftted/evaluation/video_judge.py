"""Judge a talking video from its pixels: ``python -m difftted evaluate-video VIDEO... --audio AUDIO
--photo PHOTO [--reference REAL_VIDEO] [--json out.json] [--window 10] [--stride 1]``.

Any method's output can be judged, ours or another's: nothing here reads a model's keypoints.
mediapipe (`difftted.judge_landmarks`) finds body landmarks and the face mesh on every frame;
the numbers (`difftted.judge_measures`) are, per video:

- wrist / elbow / head **speed** in shoulder-widths per second (median over frames; the head's
  from the pose's nose, and beside it, with no bar, from the centroid of the face mesh's rigid
  points, `judge_measures.RIGID_FACE`: the pose reads the head off the whole body, and its nose
  moved by 10% when only a video's hands changed);
- **body BC** (Beat Consistency, `difftted.metrics`) of nose + elbows + wrists against the audio's
  onsets, with its **chance** level (onsets shifted circularly by 1-3 s, seeded, averaged);
- **mouth opening** (face mesh ``|p13 - p14| / |p10 - p152|``): std, and best-lag (+-4 frames)
  correlation with the loudness envelope (linear RMS per frame), with its chance level;
- **face SSIM** against the photo (its face box, enlarged): mean, first and last ``--window`` s;
  and **aligned**: the same box after each frame's face is moved back onto the photo's (a
  similarity fitted to rigid face-mesh points, `judge_measures.aligned_face`), so a face that
  only moved keeps it high and a smeared or distorted one does not;
- **first-frame SSIM** against the photo; **sharpness** (variance of the Laplacian in the
  person's box) as a ratio to the photo's, first frame and median;
- **background change**: mean |frame - photo| (0-255) over the photo's background kept 15% of the
  frame height away from the person.

docs/evaluation.md describes each measure and gives figures for real footage.

Without ``--photo`` (real footage) the photo is the video's first frame; a photo of another size
is resized to the video's (and the judgement says so). Without ``--audio`` the video's own sound
track is used; a silent video gets speeds and pixel measures only. A measure that cannot be made
(no person, no face, no audio) is NaN with its reason in ``notes``, never a crash.

Frames stream (memory is one frame plus per-frame numbers). ``--stride N`` analyses every N-th
frame (N times faster; speeds and BC then see ``fps / N``, the lip lags are N frames apart, so keep
1 for final figures). Everything is deterministic: landmarks are found on each frame on its own
(still-image mode, see `difftted.judge_landmarks` for why) and the chance levels are seeded.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import asdict, dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np
from PIL import Image

from difftted.evaluation import judge_landmarks as jl
from difftted.evaluation import judge_measures as jm

logger = logging.getLogger(__name__)

FACE_BOX_ENLARGE = 1.25
PERSON_BOX_ENLARGE = 1.2
BACKGROUND_MARGIN = 0.15  # of the frame height
MAX_LIP_LAG = 4  # frames
SPEED_GROUPS = {"wrist": (jl.LEFT_WRIST, jl.RIGHT_WRIST), "elbow": (jl.LEFT_ELBOW, jl.RIGHT_ELBOW),
                "head": (jl.NOSE,)}
BC_LANDMARKS = (jl.NOSE, jl.LEFT_ELBOW, jl.RIGHT_ELBOW, jl.LEFT_WRIST, jl.RIGHT_WRIST)


@dataclass
class VideoJudgement:
    """What `judge_video` measured on one video (NaN: not measurable, see ``notes``)."""

    video: str
    photo: str  # the photo's path, or "first frame"
    audio: str | None  # the audio's path, "own track", or None
    size: tuple[int, int]  # (H, W) of the frames
    fps: float  # analysed frames per second (the video's fps / stride)
    stride: int
    frames: int  # frames analysed
    duration: float  # seconds analysed
    photo_resized: bool = False
    shoulder_width: float = math.nan  # pixels, median over frames
    wrist_speed: float = math.nan  # shoulder-widths per second
    elbow_speed: float = math.nan
    head_speed: float = math.nan  # the pose's nose
    head_speed_face: float = math.nan  # the centroid of the face mesh's rigid points (no bar; steadier)
    beat_consistency: float = math.nan
    beat_consistency_chance: float = math.nan
    mouth_std: float = math.nan
    lip_corr: float = math.nan
    lip_lag: int = 0  # frames, positive: the mouth follows the sound
    lip_corr_chance: float = math.nan
    face_ssim: float = math.nan
    face_ssim_first: float = math.nan  # first ``window`` seconds
    face_ssim_last: float = math.nan  # last ``window`` seconds
    face_ssim_windows: list[tuple[float, float, float]] = field(default_factory=list)  # (start, end, mean)
    face_ssim_aligned: float = math.nan  # the same, each frame's face moved back onto the photo's (frames with a face)
    face_ssim_aligned_first: float = math.nan
    face_ssim_aligned_last: float = math.nan
    face_ssim_aligned_windows: list[tuple[float, float, float]] = field(default_factory=list)
    first_frame_ssim: float = math.nan
    sharpness_first: float = math.nan  # ratio to the photo's
    sharpness_median: float = math.nan
    background_change: float = math.nan  # mean |frame - photo|, 0-255
    notes: list[str] = field(default_factory=list)

    def note(self, message: str) -> None:
        """Record (and log) why a measure is missing or how it was taken."""
        logger.warning("%s: %s", Path(self.video).name, message)
        self.notes.append(message)

    def to_dict(self) -> dict:
        """Plain json-ready dict (NaN -> None)."""
        def clean(value):
            if isinstance(value, float) and not math.isfinite(value):
                return None
            if isinstance(value, (list, tuple)):
                return [clean(v) for v in value]
            return value
        return {key: clean(value) for key, value in asdict(self).items()}


@dataclass
class _PhotoReference:
    """The photo and what is measured on it once: ``rgb uint8 [H, W, 3]``, ``gray [H, W]``."""

    rgb: np.ndarray
    gray: np.ndarray
    face_box: tuple[int, int, int, int] | None
    face: np.ndarray | None  # [468, 2] face-mesh points
    person_box: tuple[int, int, int, int] | None
    sharpness: float
    background: np.ndarray  # bool [H, W]


def _reference(photo: np.ndarray, judgement: VideoJudgement) -> _PhotoReference:
    h, w = photo.shape[:2]
    with jl.LandmarkTracker(still=True) as tracker:
        found = tracker.process(photo)
    gray = jm.gray(photo)
    face_box = jm.box_around(found.face, (h, w), FACE_BOX_ENLARGE) if found.face is not None else None
    if face_box is None:
        judgement.note("no face found on the photo: face SSIM is NaN")
    person_box = None
    if found.pose is not None:
        person_box = jm.box_around(found.pose[found.pose_visibility >= jl.MIN_VISIBILITY], (h, w), PERSON_BOX_ENLARGE)
    sharpness = math.nan
    if person_box is None:
        judgement.note("no person (pose) found on the photo: sharpness is NaN")
    else:
        x0, y0, x1, y1 = person_box
        sharpness = jm.laplacian_variance(gray[y0:y1, x0:x1])
        if not sharpness > 0:
            judgement.note("the photo's person box is flat (zero Laplacian variance): sharpness is NaN")
    person = jl.person_mask(photo)
    if not person.any():
        judgement.note("no person in the photo's segmentation: background change is NaN")
        background = np.zeros((h, w), dtype=bool)
    else:
        background = jm.background_mask(person, BACKGROUND_MARGIN)
        if not background.any():
            judgement.note(f"no background pixel {BACKGROUND_MARGIN:.0%} of the frame height away from the "
                           "person: background change is NaN")
    return _PhotoReference(photo, gray, face_box, found.face, person_box, sharpness, background)


def _fit_photo(photo: np.ndarray, size: tuple[int, int], judgement: VideoJudgement) -> np.ndarray:
    if photo.shape[:2] == size:
        return photo
    judgement.photo_resized = True
    judgement.note(f"photo resized from {photo.shape[1]}x{photo.shape[0]} to the video's {size[1]}x{size[0]}")
    return np.asarray(Image.fromarray(photo).resize((size[1], size[0]), Image.Resampling.LANCZOS))


class _Tracks:
    """Per analysed frame: pose landmarks, mouth opening and the pixel measures."""

    def __init__(self) -> None:
        self.pose: list[np.ndarray] = []
        self.visibility: list[np.ndarray] = []
        self.mouth: list[float] = []
        self.face_ssim: list[float] = []
        self.face_ssim_aligned: list[float] = []
        self.face_centre: list[np.ndarray] = []
        self.sharpness: list[float] = []
        self.background: list[float] = []

    def add(self, frame: np.ndarray, found: jl.FrameLandmarks, ref: _PhotoReference) -> None:
        nan33 = np.full((33, 2), np.nan)
        self.pose.append(found.pose if found.pose is not None else nan33)
        self.visibility.append(found.pose_visibility if found.pose is not None else np.zeros(33))
        self.mouth.append(found.mouth_opening())
        self.face_centre.append(np.full(2, np.nan) if found.face is None
                                else np.asarray(found.face, dtype=np.float64)[list(jm.RIGID_FACE)].mean(axis=0))
        gray = jm.gray(frame)
        self.face_ssim.append(math.nan)
        if ref.face_box is not None:
            x0, y0, x1, y1 = ref.face_box
            self.face_ssim[-1] = jm.ssim_gray(ref.gray[y0:y1, x0:x1], gray[y0:y1, x0:x1])
        self.face_ssim_aligned.append(math.nan)
        if ref.face_box is not None and found.face is not None:
            face = jm.aligned_face(gray, found.face, ref.face, ref.face_box)
            if face is not None:
                x0, y0, x1, y1 = ref.face_box
                self.face_ssim_aligned[-1] = jm.ssim_gray(ref.gray[y0:y1, x0:x1], face)
        self.sharpness.append(math.nan)
        if ref.person_box is not None and ref.sharpness > 0:
            x0, y0, x1, y1 = ref.person_box
            self.sharpness[-1] = jm.laplacian_variance(gray[y0:y1, x0:x1]) / ref.sharpness
        self.background.append(math.nan)
        if ref.background.any():
            diff = np.abs(frame[ref.background].astype(np.int16) - ref.rgb[ref.background].astype(np.int16))
            self.background[-1] = float(diff.mean())


def _load_audio(info, audio, judgement: VideoJudgement) -> tuple[np.ndarray, int] | None:
    from difftted.audio import load_audio

    if audio is None:
        if not info.has_audio:
            judgement.note("no --audio and the video has no sound track: BC and lip sync are NaN")
            return None
        judgement.audio = "own track"
        source = info.path
    else:
        source = Path(audio)
        if not source.is_file():
            raise FileNotFoundError(f"audio: no such file: {str(source)!r}")
        judgement.audio = str(source)
    waveform, sr = load_audio(source, sample_rate=16000)
    if float(np.abs(waveform).max(initial=0.0)) < 1e-4:
        judgement.note("the audio is silent: BC and lip sync are NaN")
        return None
    return waveform, sr


def _check_args(window: float, stride: int, max_seconds: float | None, shifts: int) -> None:
    if isinstance(window, bool) or not isinstance(window, (int, float)) or not window > 0 or not math.isfinite(window):
        raise ValueError(f"window must be a positive number of seconds, got {window!r}")
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be a positive int, got {stride!r}")
    if max_seconds is not None and (isinstance(max_seconds, bool) or not isinstance(max_seconds, (int, float))
                                    or not max_seconds > 0):
        raise ValueError(f"max_seconds must be a positive number or None, got {max_seconds!r}")
    if isinstance(shifts, bool) or not isinstance(shifts, int) or shifts < 1:
        raise ValueError(f"shifts must be a positive int, got {shifts!r}")


def judge_video(video: str | Path, audio: str | Path | None = None, photo=None, *, window: float = 10.0,
                stride: int = 1, max_seconds: float | None = None, shifts: int = 20, seed: int = 0,
                progress: bool = True) -> VideoJudgement:
    """Measure one video from its pixels (see the module's docstring for each number).

    Args:
        video: the video file (any format ffmpeg reads).
        audio: the speech it should follow (any format `difftted.audio.load_audio` reads); None:
            the video's own sound track (none: no BC and no lip sync).
        photo: the photo it was made from (path, PIL image or ``uint8 [H, W, 3]`` array); None:
            the video's first frame (real footage).
        window: seconds per face-SSIM window. stride: analyse every ``stride``-th frame.
        max_seconds: analyse only the first seconds. shifts, seed: the chance levels' draws.
        progress: a progress bar over frames.

    Raises:
        FileNotFoundError: video, audio or photo is missing. ValueError: unreadable media or bad
        arguments.
    """
    from tqdm.auto import tqdm

    from tps.video import iter_frames, video_info

    _check_args(window, stride, max_seconds, shifts)
    info = video_info(video, "video")
    max_frames = None if max_seconds is None else max(1, int(math.ceil(max_seconds * info.fps)))
    judgement = VideoJudgement(video=str(video), photo="first frame", audio=None, size=(info.height, info.width),
                               fps=info.fps / stride, stride=stride, frames=0, duration=0.0)
    sound = _load_audio(info, audio, judgement)
    frames = iter_frames(info.path, max_frames=max_frames)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"video: no frame could be decoded from {str(video)!r}")
    judgement.size = first.shape[:2]
    if photo is None:
        reference = first
    else:
        from difftted.pipeline.person import load_image

        if isinstance(photo, (str, Path)) and not Path(photo).is_file():
            raise FileNotFoundError(f"photo: no such file: {str(photo)!r}")
        judgement.photo = str(photo) if isinstance(photo, (str, Path)) else "array"
        reference = _fit_photo(load_image(photo, name="photo"), first.shape[:2], judgement)
    ref = _reference(reference, judgement)
    total = max_frames or info.num_frames or None
    tracks = _Tracks()
    with jl.LandmarkTracker(still=True) as tracker:
        bar = tqdm(chain([first], frames), total=total, desc=Path(video).name, unit="frame", disable=not progress)
        for index, frame in enumerate(bar):
            if index % stride == 0:
                tracks.add(frame, tracker.process(frame), ref)
    judgement.frames = len(tracks.mouth)
    judgement.duration = judgement.frames / judgement.fps
    judgement.first_frame_ssim = jm.ssim_gray(ref.gray, jm.gray(first))
    _summarise(judgement, tracks, sound, window, shifts, seed)
    return judgement


def _summarise(j: VideoJudgement, tracks: _Tracks, sound, window: float, shifts: int, seed: int) -> None:
    points, valid = np.stack(tracks.pose), np.stack(tracks.visibility) >= jl.MIN_VISIBILITY
    smoothed = jm.fill_and_smooth(points, valid, j.fps)
    j.shoulder_width = jm.median_distance(points, valid, jl.LEFT_SHOULDER, jl.RIGHT_SHOULDER)
    if not j.shoulder_width > 0:
        j.note("no frame shows both shoulders: speeds are NaN")
    for group, ids in SPEED_GROUPS.items():
        ids = list(ids)
        speed, seen = jm.group_speed(smoothed[:, ids], valid[:, ids], j.fps, j.shoulder_width)
        setattr(j, f"{group}_speed", speed)
        if not math.isfinite(speed) and j.shoulder_width > 0:
            j.note(f"{group} landmarks visible in only {seen:.0%} of the frames: {group} speed is NaN")
    centre = np.stack(tracks.face_centre)[:, None]  # [T, 1, 2]
    seen = np.isfinite(centre).all(axis=-1)
    if seen.any():
        j.head_speed_face, _ = jm.group_speed(jm.fill_and_smooth(np.nan_to_num(centre), seen, j.fps), seen, j.fps,
                                              j.shoulder_width)
    mouth = np.asarray(tracks.mouth)
    if np.isfinite(mouth).sum() >= 3:
        j.mouth_std = float(np.nanstd(mouth))
    else:
        j.note("no face found on the frames: mouth opening is NaN")
    if sound is not None:
        from difftted.evaluation.metrics import audio_beats

        waveform, sr = sound
        bc_points = smoothed[:, list(BC_LANDMARKS)].copy()
        bc_points[:, valid[:, list(BC_LANDMARKS)].mean(axis=0) < 0.3] = np.nan
        j.beat_consistency, j.beat_consistency_chance = jm.body_beat_consistency(
            bc_points, j.size, j.fps, audio_beats(waveform, sr), shifts, seed)
        if not math.isfinite(j.beat_consistency):
            j.note("no motion beat or no audio onset (or no body landmark): BC is NaN")
        envelope = jm.loudness_envelope(waveform, sr, j.fps * j.stride, j.frames, j.stride)
        j.lip_corr, j.lip_lag, j.lip_corr_chance = jm.lip_sync(mouth, envelope, j.fps, MAX_LIP_LAG, shifts, seed)
    times = np.arange(j.frames) / j.fps
    for prefix, values in (("face_ssim", tracks.face_ssim), ("face_ssim_aligned", tracks.face_ssim_aligned)):
        values = np.asarray(values)
        if not np.isfinite(values).any():
            continue
        windows = jm.window_means(values, times, window, j.duration)
        last = values[times >= j.duration - window]
        setattr(j, prefix, float(np.nanmean(values)))
        setattr(j, f"{prefix}_windows", windows)
        setattr(j, f"{prefix}_first", windows[0][2])
        setattr(j, f"{prefix}_last", float(np.nanmean(last)) if np.isfinite(last).any() else math.nan)
    seen = float(np.isfinite(np.asarray(tracks.face_ssim_aligned)).mean())
    if math.isfinite(j.face_ssim) and seen < 0.9:
        j.note(f"the face mesh found the face in only {seen:.0%} of the frames: the aligned face SSIM "
               "is their mean (a face too smeared to be found is not in it)")
    sharp = np.asarray(tracks.sharpness)
    if np.isfinite(sharp).any():
        j.sharpness_first, j.sharpness_median = float(sharp[0]), float(np.nanmedian(sharp))
    background = np.asarray(tracks.background)
    if np.isfinite(background).any():
        j.background_change = float(np.nanmean(background))


# ------------------------------------------------------------------------------------- table
def _num(value: float, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


TABLE_ROWS = [
    ("wrist speed (SW/s)", lambda j: _num(j.wrist_speed)),
    ("elbow speed (SW/s)", lambda j: _num(j.elbow_speed)),
    ("head speed (SW/s)", lambda j: _num(j.head_speed)),
    ("head speed, face mesh (SW/s)", lambda j: _num(j.head_speed_face)),
    ("body BC (chance)", lambda j: f"{_num(j.beat_consistency)} ({_num(j.beat_consistency_chance)})"),
    ("mouth opening std", lambda j: _num(j.mouth_std, 4)),
    ("lip-loudness r (chance)", lambda j: f"{_num(j.lip_corr)} ({_num(j.lip_corr_chance)})"),
    ("face SSIM mean", lambda j: _num(j.face_ssim)),
    ("face SSIM first / last window", lambda j: f"{_num(j.face_ssim_first)} / {_num(j.face_ssim_last)}"),
    ("face SSIM, aligned", lambda j: _num(j.face_ssim_aligned)),
    ("face SSIM, aligned, first / last window",
     lambda j: f"{_num(j.face_ssim_aligned_first)} / {_num(j.face_ssim_aligned_last)}"),
    ("first-frame SSIM", lambda j: _num(j.first_frame_ssim)),
    ("sharpness first / median (x photo)", lambda j: f"{_num(j.sharpness_first, 2)} / {_num(j.sharpness_median, 2)}"),
    ("background change (/255)", lambda j: _num(j.background_change, 2)),
    ("frames analysed (fps)", lambda j: f"{j.frames} ({j.fps:g})"),
]


def format_judgements(judgements: dict[str, VideoJudgement]) -> str:
    """A text table, one column per video (``{column name: judgement}``), one row per measure;
    NaN prints as ``-``, chance levels in parentheses."""
    if not judgements:
        raise ValueError("judgements is empty: nothing to format")
    lines = [["measure"] + list(judgements)]
    lines += [[label] + [cell(j) for j in judgements.values()] for label, cell in TABLE_ROWS]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    out = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
           for line in lines]
    out.insert(1, "-" * len(out[0]))
    return "\n".join(out)


# ----------------------------------------------------------------------------------- command
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m difftted evaluate-video",
                                description="Judge talking videos from their pixels (mediapipe landmarks).")
    p.add_argument("videos", nargs="+", type=Path, metavar="VIDEO", help="generated videos")
    p.add_argument("--audio", type=Path, help="the speech they follow (default: each video's own track)")
    p.add_argument("--photo", type=Path, help="the photo they were made from (default: each video's first frame)")
    p.add_argument("--reference", type=Path, action="append", default=[], metavar="VIDEO",
                   help="real footage, measured the same way with its own sound and first frame; repeatable")
    p.add_argument("--window", type=float, default=10.0, help="seconds per face-SSIM window (default 10)")
    p.add_argument("--stride", type=int, default=1, help="analyse every N-th frame (default 1: all)")
    p.add_argument("--max-seconds", type=float, help="analyse only the first seconds of each video")
    p.add_argument("--shifts", type=int, default=20, help="random shifts averaged by the chance levels")
    p.add_argument("--seed", type=int, default=0, help="seed of the chance levels' shifts")
    p.add_argument("--json", type=Path, help="also write every judgement (with per-window SSIM) here")
    p.add_argument("--no-progress", action="store_true")
    return p


def _column_names(paths: list[Path], prefix: str = "") -> list[str]:
    names = [p.name for p in paths]
    return [prefix + (str(p) if names.count(p.name) > 1 else p.name) for p in paths]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    options = dict(window=args.window, stride=args.stride, max_seconds=args.max_seconds, shifts=args.shifts,
                   seed=args.seed, progress=not args.no_progress)
    for path in [*args.videos, *args.reference, *(p for p in (args.audio, args.photo) if p is not None)]:
        if not path.is_file():
            raise FileNotFoundError(f"no such file: {str(path)!r}")
    table: dict[str, VideoJudgement] = {}
    for name, path in zip(_column_names(args.videos), args.videos):
        table[name] = judge_video(path, args.audio, args.photo, **options)
    for name, path in zip(_column_names(args.reference, "real: "), args.reference):
        table[name] = judge_video(path, None, None, **options)
    print(format_judgements(table))
    for name, judgement in table.items():
        for message in judgement.notes:
            print(f"note ({name}): {message}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({name: j.to_dict() for name, j in table.items()}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
