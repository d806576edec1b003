"""Renderer training data on body-anchored keypoints: square clips with a keypoint file beside each.

For every clip of ``../shared/data`` that shows a person, `build_renderer_clip` writes::

    OUT/{train,test}/<name>.mp4            SIZE x SIZE frames, no sound (the renderer needs none)
    OUT/{train,test}/<name>.keypoints.npy  float32 [T, 50, 2], one row per frame of the mp4

the layout ``python -m tps train --data OUT`` reads with ``"keypoint_source": "given"``
(`tps.given_keypoints`: keypoints in [-1, 1] of the mp4's frames, align_corners=True).

- Talking clips: the TED-style square `difftted.person.find_crop` places on the piece's first
  frame (the crop the pipeline takes of a photo and ``build-dataset --keypoints body`` takes of a
  clip), resized with Lanczos; mediapipe runs on the whole original frames
  (`difftted.body_landmarks.extract_body_keypoints`) and the keypoints are carried through the
  crop and the resize (`tps.given_keypoints.map_keypoints`), so they sit on the same body parts.
- Clips with jump cuts (``configs/talking_more_cuts.json``) are split into pieces, each its own
  clip (a frame pair across a cut would show two shots). The A/V-sync exclusions of that file do
  not apply here: the renderer uses no sound.
- TED clips (already TED-framed: ``ted_silent/``) are taken whole, or the real TED cell of the
  comparison grids (rows 384:768, columns 164:548), then resized.
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from difftted.data.dataset_layouts import VIDEO_SUFFIXES, ClipSource, SkipClip, decoded_fps, frame_batches

logger = logging.getLogger(__name__)

#: Held out of renderer training (test split): a talking speaker, two TED clips, a gesturing speaker.
HELD_OUT = ("examples_ref_video_WDA_KatieHill_000", "ted_grid_4", "lia_ted_driving3",
            "ub09_skyreelsA1_drv5_couch_youtuber")
#: The real TED driving clip inside ``ted_silent/ted_grid_*.mp4``: (x0, y0, x1, y1) pixels.
TED_GRID_CELL = (164, 384, 548, 768)


@dataclass(frozen=True)
class RendererClip:
    """One clip (or piece of a clip) to build: ``cell`` (x0, y0, x1, y1) is cut from every frame
    first and taken whole (TED clips); ``ted_crop`` True places the TED square with find_crop."""

    name: str
    video: Path
    split: str = "train"
    start: float | None = None
    end: float | None = None
    cell: tuple[int, int, int, int] | None = None
    ted_crop: bool = True


def default_clips(shared: str | Path, cuts_file: str | Path | None = None,
                  held_out: tuple[str, ...] = HELD_OUT) -> list[RendererClip]:
    """Every clip of the shared data folder that shows a person (module docstring), split at the
    cuts of ``cuts_file`` (`difftted.body_dataset.load_cuts`)."""
    from difftted.data.body_dataset import load_cuts, split_at_cuts

    shared = Path(shared)
    if not (shared / "talking").is_dir():
        raise ValueError(f"shared {str(shared)!r} does not hold talking/ (see ../shared/data/README.md)")
    videos = [p for folder in ("talking", "talking_more/upper_body", "talking_more/head")
              for p in sorted((shared / folder).glob("*")) if p.suffix.lower() in VIDEO_SUFFIXES]
    cuts, _ = load_cuts(cuts_file)
    sources = [ClipSource(p.stem, p) for p in videos]
    pieces, _ = split_at_cuts(sources, cuts, {})
    split = lambda name: "test" if name.split("__")[0] in held_out else "train"  # noqa: E731
    clips = [RendererClip(c.clip_id, c.video, split(c.clip_id), c.start, c.end) for c in pieces]
    ted = shared / "ted_silent"
    for path in sorted(ted.glob("*.mp4")):
        if path.stem.startswith("ted_grid_"):
            clips.append(RendererClip(path.stem, path, split(path.stem), cell=TED_GRID_CELL, ted_crop=False))
        elif path.stem.startswith(("lia_ted_driving", "ted_driving")):
            clips.append(RendererClip(path.stem, path, split(path.stem), ted_crop=False))
    return clips


def _resize(frame: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.LANCZOS))


def build_renderer_clip(clip: RendererClip, out: str | Path, size: int = 256) -> dict:
    """Write ``OUT/<split>/<name>.mp4`` and its ``.keypoints.npy`` (module docstring); returns
    its manifest entry. Raises `SkipClip` when no frame shows a person."""
    from difftted.motion.body_landmarks import extract_body_keypoints
    from difftted.pipeline.person import find_crop
    from tps.given_keypoints import keypoint_file, map_keypoints
    from tps.video import write_video

    source = ClipSource(clip.name, clip.video, start=clip.start, end=clip.end)
    fps, batches = frame_batches(source, 16)
    frames = (f for batch in batches for f in batch)
    if clip.cell is not None:
        x0, y0, x1, y1 = clip.cell
        frames = (f[y0:y1, x0:x1] for f in frames)
    first = next(frames, None)
    if first is None:
        raise SkipClip("no frames in the requested range")
    h, w = first.shape[:2]
    box, method = (0, 0, w, h), "whole"
    if clip.ted_crop:
        found = find_crop(first)
        box, method = (found.box.x0, found.box.y0, found.box.x0 + found.box.size, found.box.y0 + found.box.size), found.method
    small: list[np.ndarray] = []

    def tee(frame: np.ndarray) -> np.ndarray:
        small.append(_resize(np.ascontiguousarray(frame[box[1]:box[3], box[0]:box[2]]), size))
        return frame

    all_frames = (tee(f) for f in itertools.chain([first], frames))
    try:
        body = extract_body_keypoints(all_frames, fps=fps, crop=box)
    except ValueError as err:
        raise SkipClip(f"body keypoints: {err}") from err
    keypoints = map_keypoints(body.keypoints, body.size, None, (size, size))
    if keypoints.shape[0] != len(small):
        raise RuntimeError(f"{clip.name}: {keypoints.shape[0]} keypoint rows for {len(small)} frames")
    fps = decoded_fps(source, len(small), fps)
    dst = Path(out) / clip.split / f"{clip.name}.mp4"
    dst.parent.mkdir(parents=True, exist_ok=True)
    write_video(dst, iter(small), fps)
    np.save(keypoint_file(dst), keypoints.astype(np.float32))
    measured = (body.source == 2).mean(axis=0)
    return {"source": str(clip.video), "split": clip.split, "start": clip.start, "end": clip.end,
            "cell": clip.cell, "crop_xyxy": list(map(int, box)), "crop_method": method, "fps": float(fps),
            "frames": int(len(small)), "seconds": len(small) / float(fps),
            "measured_fraction": {"face": float(measured[0]), "right_hand": float(measured[6]),
                                  "left_hand": float(measured[9])}}


def build_renderer_data(clips: list[RendererClip], out: str | Path, size: int = 256,
                        progress: bool = True) -> dict:
    """Build every clip not built yet (both files present: kept, so an interrupted build
    resumes); writes and returns ``OUT/manifest.json`` (clips, skipped ones with the reason,
    seconds per split)."""
    from tqdm.auto import tqdm

    from tps.given_keypoints import keypoint_file

    out = Path(out)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    entries, skipped = manifest.get("clips", {}), manifest.get("skipped", {})
    for clip in tqdm(clips, desc="renderer clips", unit="clip", disable=not progress):
        dst = out / clip.split / f"{clip.name}.mp4"
        if clip.name in entries and dst.is_file() and keypoint_file(dst).is_file():
            continue
        try:
            entries[clip.name] = build_renderer_clip(clip, out, size)
            skipped.pop(clip.name, None)
        except SkipClip as err:
            logger.warning("skipped %s: %s", clip.name, err)
            skipped[clip.name] = {**asdict(clip), "video": str(clip.video), "reason": str(err)}
        manifest = {"size": size, "keypoint_source": "body", "clips": entries, "skipped": skipped,
                    "minutes": {s: sum(e["seconds"] for e in entries.values() if e["split"] == s) / 60
                                for s in ("train", "test")}}
        out.mkdir(parents=True, exist_ok=True)
        manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest
