"""Where the clips of a dataset come from: input layouts, MRAA's csv, frame reading.

Used by `difftted.data.dataset` (the ``build-dataset`` command); its docstring describes the layouts
(``folder``, ``ted384``, ``mraa-csv``) and the repair of the MRAA csv's known defect.
"""

from __future__ import annotations

import argparse
import logging
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


class SkipClip(Exception):
    """A clip that cannot enter the dataset; the message says why (it goes into the manifest)."""


# ------------------------------------------------------------------------------- discovery
AUDIO_SUFFIXES = (".wav", ".m4a", ".mp3", ".flac", ".ogg", ".aac")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg")
SPLITS = ("train", "test")


@dataclass(frozen=True)
class ClipSource:
    """One clip to process: where its frames and its sound come from.

    ``video`` is a video file or a folder of PNG frames (``frames_fps`` gives its rate);
    ``audio`` None means the video's own sound track. ``start``/``end`` (seconds) cut both the
    frames and the audio of a longer video; ``audio_start``/``audio_end`` cut a separate audio
    file that covers the whole talk. ``crop`` is ``(x0, y0, x1, y1)`` in the video's pixels.
    """

    clip_id: str
    video: Path
    split: str = "train"
    audio: Path | None = None
    start: float | None = None
    end: float | None = None
    audio_start: float | None = None
    audio_end: float | None = None
    crop: tuple[int, int, int, int] | None = None
    frames_fps: float | None = None


@dataclass(frozen=True)
class MraaRow:
    """A row of MRAA's ted-metadata.csv after repairing its known defect."""

    video_id: str
    talk_id: str
    start: int
    end: int
    bbox: tuple[int, int, int, int] | None
    fps: float
    width: int
    height: int
    partition: str | None


def parse_crop(text: str) -> tuple[int, int, int, int]:
    """``"x0,y0,x1,y1"`` (or ``-`` separated, as MRAA's bbox) -> a pixel box with x1 > x0, y1 > y0."""
    parts = text.replace("-", ",").split(",") if "," not in text else text.split(",")
    try:
        x0, y0, x1, y1 = (int(float(v)) for v in parts)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"crop must be x0,y0,x1,y1 integers, got {text!r}") from err
    if x1 <= x0 or y1 <= y0:
        raise argparse.ArgumentTypeError(f"crop must have x1 > x0 and y1 > y0, got {text!r}")
    return x0, y0, x1, y1


def parse_clip_name(name: str) -> tuple[str, int, int] | None:
    """``"<talk id>#<start>#<end>"`` -> ``(talk id, start, end)``, or None for another name."""
    parts = name.split("#")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return parts[0], int(parts[1]), int(parts[2])


def parse_mraa_csv(path: str | Path) -> list[MraaRow]:
    """Rows of MRAA's ted-metadata.csv, repaired (see the module docstring).

    The frame range comes from the ``start``/``end`` columns when they hold one (``end > start``)
    and otherwise from ``video_id``; ``partition`` is None for every row when the column is absent
    or holds one value only (the shipped csv says ``train`` everywhere).
    """
    import csv

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"csv {str(path)!r} does not exist")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = {"video_id", "fps"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"csv {str(path)!r} lacks columns {sorted(missing)}; has {reader.fieldnames}")
        raw = list(reader)
    partitions = {r.get("partition", "").strip() for r in raw} - {""}
    real_partition = len(partitions) > 1
    if not real_partition:
        logger.info("csv %s: partition column %s; splitting by --test-fraction instead", path,
                    f"holds only {partitions}" if partitions else "is absent")
    rows = []
    for i, r in enumerate(raw, start=2):
        rows.append(_mraa_row(r, real_partition, f"{path.name}:{i}"))
    return rows


def _mraa_row(r: dict, real_partition: bool, where: str) -> MraaRow:
    vid = r["video_id"].strip()
    named = parse_clip_name(vid)
    start, end = int(float(r.get("start") or 0)), int(float(r.get("end") or 0))
    if end <= start:
        if named is None:
            raise ValueError(f"{where}: video_id {vid!r} has no <id>#<start>#<end> range and the "
                             f"start/end columns hold none ({start}, {end})")
        start, end = named[1], named[2]
    bbox = parse_crop(r["bbox"]) if r.get("bbox", "").strip() else None
    return MraaRow(video_id=vid, talk_id=named[0] if named else vid, start=start, end=end, bbox=bbox,
                   fps=float(r["fps"]), width=int(float(r.get("width") or 0)),
                   height=int(float(r.get("height") or 0)),
                   partition=r["partition"].strip() if real_partition else None)


def _held_out(talk_id: str, test_fraction: float) -> str:
    """``"test"`` for a stable ``test_fraction`` of talk ids, else ``"train"`` (same on every run)."""
    return "test" if (zlib.crc32(talk_id.encode()) & 0xFFFFFFFF) / 2**32 < test_fraction else "train"


def _find(folder: Path, stem: str, suffixes: tuple[str, ...]) -> Path | None:
    for suffix in suffixes:
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return None


def _ted_clip(path: Path, split: str, root: Path, frames_fps: float | None) -> ClipSource:
    """A TED384 clip (file or PNG folder) and the audio found beside it."""
    stem = path.stem if path.is_file() else path.name
    named = parse_clip_name(stem)
    audio = _find(path.parent, stem, AUDIO_SUFFIXES)
    a_start = a_end = None
    if audio is None and named is not None and (path.is_dir() or not _has_audio_track(path)):
        audio = _find(path.parent, named[0], AUDIO_SUFFIXES) or _find(root, named[0], AUDIO_SUFFIXES)
        if audio is not None:
            rate = frames_fps if path.is_dir() else _video_fps(path)
            a_start, a_end = named[1] / rate, named[2] / rate
    return ClipSource(clip_id=stem, video=path, split=split, audio=audio, audio_start=a_start,
                      audio_end=a_end, frames_fps=frames_fps if path.is_dir() else None)


def _clip_entries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if (p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
                  or (p.is_dir() and any(p.glob("*.png"))))


def discover(videos: str | Path, layout: str = "auto", csv_path: str | Path | None = None,
             crop: tuple[int, int, int, int] | None = None, frames_fps: float = 10.0,
             test_fraction: float = 0.0) -> list[ClipSource]:
    """The clips of ``videos`` in ``layout`` (see the module docstring), sorted by id."""
    videos = Path(videos)
    if not videos.is_dir():
        raise ValueError(f"videos {str(videos)!r} is not a folder")
    if layout == "auto":
        layout = "mraa-csv" if csv_path else (
            "ted384" if any((videos / s).is_dir() for s in SPLITS) else "folder")
    if layout == "mraa-csv":
        if csv_path is None:
            raise ValueError("layout 'mraa-csv' needs --csv")
        clips = _discover_mraa(videos, parse_mraa_csv(csv_path), test_fraction)
    elif layout == "ted384":
        clips = [_ted_clip(p, split, videos, frames_fps) for split in SPLITS if (videos / split).is_dir()
                 for p in _clip_entries(videos / split)]
    elif layout == "folder":
        clips = [ClipSource(clip_id=p.relative_to(videos).with_suffix("").as_posix().replace("/", "__"),
                            video=p, split=_held_out(p.stem.split("#")[0], test_fraction))
                 for p in sorted(videos.rglob("*")) if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
    else:
        raise ValueError(f"layout must be auto, folder, ted384 or mraa-csv, got {layout!r}")
    if crop is not None:
        clips = [replace(c, crop=crop) for c in clips]
    if not clips:
        raise ValueError(f"no clips found in {str(videos)!r} (layout {layout!r})")
    return clips


def _discover_mraa(videos: Path, rows: list[MraaRow], test_fraction: float) -> list[ClipSource]:
    clips = []
    for row in rows:
        split = row.partition or _held_out(row.talk_id, test_fraction)
        found = None
        for folder in dict.fromkeys([videos / split, *(videos / s for s in SPLITS), videos]):
            hit = _find(folder, row.video_id, VIDEO_SUFFIXES) or (
                folder / row.video_id if (folder / row.video_id).is_dir() else None)
            if hit is not None:
                found = hit
                # without a real partition column, the TED384 folder a clip sits in is its split
                if row.partition is None and folder.name in SPLITS and folder.parent == videos:
                    split = folder.name
                break
        if found is not None:  # an already cut and cropped clip
            clips.append(replace(_ted_clip(found, split, videos, row.fps), split=split))
            continue
        talk = _find(videos, row.talk_id, VIDEO_SUFFIXES)
        if talk is None:  # listed as skipped by build_dataset
            clips.append(ClipSource(clip_id=row.video_id, video=videos / f"{row.video_id}.mp4", split=split))
            continue
        t0, t1 = row.start / row.fps, row.end / row.fps
        clips.append(ClipSource(clip_id=row.video_id, video=talk, split=split, start=t0, end=t1,
                                audio_start=t0, audio_end=t1, crop=_scaled_bbox(row, talk)))
    return clips


def _scaled_bbox(row: MraaRow, talk: Path) -> tuple[int, int, int, int] | None:
    """The csv's bbox (given for a ``width`` x ``height`` video) in the pixels of ``talk``."""
    if row.bbox is None or not row.width or not row.height:
        return row.bbox
    w, h = _video_size(talk)
    sx, sy = w / row.width, h / row.height
    x0, y0, x1, y1 = row.bbox
    return int(x0 * sx), int(y0 * sy), int(round(x1 * sx)), int(round(y1 * sy))


# ----------------------------------------------------------------------------------- frames
def _video_fps(path: Path) -> float:
    from tps.video import video_info

    return float(video_info(path).fps)


def _video_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` of a video in pixels."""
    from tps.video import video_info

    info = video_info(path)
    return int(info.width), int(info.height)


def _has_audio_track(path: Path) -> bool:
    from tps.video import video_info

    return bool(video_info(path).has_audio)


def frame_batches(clip: ClipSource, batch_size: int,
                  size: tuple[int, int] | None = None) -> tuple[float, Iterator[np.ndarray]]:
    """``(fps, batches)``: the clip's frames as uint8 ``[b, H, W, 3]`` RGB, ``batch_size`` at a time.

    Frames are decoded one at a time and batched here, so memory stays bounded whatever the
    clip's length; a ``start``/``end`` range keeps the frames whose time ``i / fps`` lies in it
    (decoding runs from the start of the file: ffmpeg is not asked to seek). ``size``
    ``(height, width)`` lets ffmpeg resize video frames while decoding; it is ignored for clips
    with a crop (the crop is in the original pixels) and for PNG folders.
    """
    if clip.video.is_dir():
        files = sorted(clip.video.glob("*.png"))
        fps = float(clip.frames_fps or 10.0)
        frames: Iterator[np.ndarray] = (_read_png(p) for p in files)
    elif clip.video.is_file():
        from tps.video import iter_frames

        try:
            fps = _video_fps(clip.video)
            frames = iter_frames(clip.video, size=size if clip.crop is None else None)
        except ValueError as err:
            raise SkipClip(f"unreadable video: {err}") from err
    else:
        raise SkipClip(f"video not found: {clip.video}")
    first = int(np.ceil(clip.start * fps - 1e-6)) if clip.start is not None else 0
    last = int(np.ceil(clip.end * fps - 1e-6)) if clip.end is not None else None

    def batches() -> Iterator[np.ndarray]:
        batch: list[np.ndarray] = []
        for i, frame in enumerate(frames):
            if last is not None and i >= last:
                break
            if i < first:
                continue
            batch.append(frame)
            if len(batch) == batch_size:
                yield np.stack(batch)
                batch = []
        if batch:
            yield np.stack(batch)

    return fps, batches()


def decoded_fps(clip: ClipSource, num_decoded: int, header_fps: float) -> float:
    """The rate of the frames actually decoded from a whole video file.

    A variable-frame-rate file (e.g. an average of 22.13 fps in a 30 fps time base) can decode to
    more frames than ``duration * header fps``, the decoder repeating frames at the time base's
    rate; timing the frames by the header rate would then stretch the motion against the audio.
    The decoded frames always span the file's duration, so their count over that duration is the
    rate that keeps them in sync. Clips cut from a longer video keep ``header_fps``.
    """
    if clip.start is not None or clip.end is not None or not clip.video.is_file():
        return header_fps
    from tps.video import video_info

    duration = video_info(clip.video).duration
    if duration <= 0:
        return header_fps
    rate = num_decoded / duration
    if abs(rate - header_fps) > 0.02 * header_fps:
        logger.warning("%s: %d frames decoded over %.2f s is %.3f fps, the header says %.3f; using %.3f",
                       clip.video, num_decoded, duration, rate, header_fps, rate)
        return rate
    return header_fps


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))
