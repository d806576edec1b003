"""``python -m difftted renderer-keypoints DIR``: body-anchored keypoint files beside renderer clips.

For every clip `tps.data.find_clips` finds under ``DIR`` (the clips ``python -m tps train --data
DIR`` trains on: video files and folders of PNG/JPG frames), writes ``NAME.keypoints.npy`` beside
it (`tps.given_keypoints.keypoint_file`): float32 ``[T, 50, 2]``, one row per decoded frame, (x, y)
in [-1, 1] of the clip's whole frames (align_corners=True), from mediapipe landmarks through the
body keypoint table (`difftted.motion.body_landmarks.extract_body_keypoints`). `tps.train` maps
them through its own crop and resize (``"keypoint_source": "given"`` in the training config).

A clip where no frame shows a person gets no file and is listed as skipped: move it out of
``DIR`` before training (training needs a file beside every clip). Existing files are kept
unless ``overwrite``; an interrupted run resumes.

Under the horizontal-flip augmentation the body table is left/right symmetric: train with
``"keypoint_flip"`` = `difftted.motion.body_keypoints.flip_permutation` (as
``configs/tps/lite-256-body.json`` holds), so a mirrored person is keyed as mediapipe would key
it. See docs/body_keypoints.md.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)


def _frame_folder(folder: Path):
    """The frames of a frame folder in `tps.data.FrameStore`'s order, uint8 RGB."""
    from PIL import Image

    from tps.data import IMAGE_EXTENSIONS

    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS):
        with Image.open(path) as image:
            yield np.asarray(image.convert("RGB"))


def clip_keypoints(clip, fps: float = 25.0, smooth: float = 0.03) -> np.ndarray:
    """Body-anchored keypoints ``[T, 50, 2]`` float32 of one `tps.data.Clip` (whole frames).

    ``fps`` is used for frame folders (a video uses its own rate). Raises ValueError when no
    frame shows a person.
    """
    from difftted.motion.body_landmarks import extract_body_keypoints

    if clip.kind == "video":
        body = extract_body_keypoints(clip.path, smooth=smooth)
    else:
        body = extract_body_keypoints(_frame_folder(clip.path), fps=fps, smooth=smooth)
    return body.keypoints.astype(np.float32)


def write_keypoint_files(root: str | Path, split: str | None = None, overwrite: bool = False,
                         fps: float = 25.0, smooth: float = 0.03, progress: bool = True) -> dict:
    """Write the keypoint file of every clip under ``root`` (module docstring).

    Returns ``{"written": [paths], "kept": [paths], "skipped": {clip path: reason}}``.
    """
    from tqdm.auto import tqdm

    from tps.data import find_clips
    from tps.given_keypoints import keypoint_file

    if not fps > 0 or smooth < 0:
        raise ValueError(f"fps must be positive and smooth non-negative, got {fps!r}, {smooth!r}")
    report: dict = {"written": [], "kept": [], "skipped": {}}
    for clip in tqdm(find_clips(root, split), desc="renderer keypoints", unit="clip", disable=not progress):
        out = keypoint_file(clip.path)
        if out.is_file() and not overwrite:
            report["kept"].append(str(out))
            continue
        try:
            keypoints = clip_keypoints(clip, fps=fps, smooth=smooth)
        except ValueError as err:
            logger.warning("skipped %s: %s", clip.path, err)
            report["skipped"][str(clip.path)] = str(err)
            continue
        tmp = out.with_name(out.name + ".part.npy")
        np.save(tmp, keypoints)
        tmp.replace(out)
        report["written"].append(str(out))
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m difftted renderer-keypoints",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="folder of clips (as `python -m tps train --data` reads), or one video")
    parser.add_argument("--split", default=None, help="train/test sub-folder of a TED384 layout (default: all)")
    parser.add_argument("--overwrite", action="store_true", help="recompute files that exist")
    parser.add_argument("--fps", type=float, default=25.0, help="frame rate of frame folders (default 25)")
    parser.add_argument("--smooth", type=float, default=0.03, help="temporal smoothing, seconds (default 0.03)")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> int:
    from difftted.motion.body_keypoints import flip_permutation

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    report = write_keypoint_files(args.data, args.split, args.overwrite, args.fps, args.smooth,
                                  progress=not args.no_progress)
    print(f"{len(report['written'])} written, {len(report['kept'])} kept, {len(report['skipped'])} skipped")
    for path, reason in report["skipped"].items():
        print(f"skipped {path}: {reason} (move it out of the folder before training)")
    print('train with "keypoint_source": "given", "keypoint_flip": ' + str(list(flip_permutation())))
    return 0 if report["written"] or report["kept"] else 1
