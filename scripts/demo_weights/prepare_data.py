"""Prepare the training and held-out clips of the bundled demo weights from ``../shared/data``.

Reads the real media of ``../shared/data`` (never copied into the repository) and writes square
``SIZE x SIZE`` mp4 clips to ``--out`` (a folder outside the repository)::

    OUT/renderer/{train,test}/<name>.mp4   every clip, for `python -m tps train` / `evaluate`
    OUT/talking/{train,test}/<name>.mp4    the talking clips with their sound, for
                                           `python -m difftted build-dataset --layout ted384`
    OUT/manifest.json                      source, crop box, split, frames and fps of each clip

- Talking clips are cropped TED-style around head and torso with `difftted.pipeline.person.find_crop`
  (the crop the pipeline applies to a photo at inference), computed once per clip on its first
  frame, then resized to SIZE with Lanczos; their sound is kept.
- The TED 384 clip ``ted_silent/ted_driving_384.mp4`` is resized whole.
- The real TED driving clips inside the comparison grids ``ted_silent/ted_grid_1-4.mp4`` are cut
  at rows 384:768, columns 164:548 (the data README's geometry) and resized.

The split is fixed here (`HELD_OUT`), so every run holds out the same clips. Usage::

    python scripts/demo_weights/prepare_data.py --shared ../shared/data --out /tmp/difftted_demo/data
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from difftted.pipeline.person import find_crop
from tps.video import iter_frames, video_info, write_video

logger = logging.getLogger("prepare_data")

#: Talking clips (with sound). examples_ref_video_WDA_AlexandriaOcasioCortez_000 and
#: vexpress_AOC_gt show the same speaker; both stay in training.
TALKING = (
    "examples_ref_video_WDA_AlexandriaOcasioCortez_000",
    "examples_ref_video_WDA_KatieHill_000",
    "face_tpsmm_driving",
    "liveportrait_d6",
    "liveportrait_d10",
    "oliver_halfbody",
    "retalking_face1",
    "retalking_face2",
    "retalking_face3",
    "retalking_face4",
    "retalking_face5",
    "vexpress_AOC_gt",
)
#: TED clips: name -> (file in ted_silent/, crop "rows,cols" or None).
TED = {
    "ted_driving_384": ("ted_driving_384.mp4", None),
    **{f"ted_grid_{i}": (f"ted_grid_{i}.mp4", ((384, 768), (164, 548))) for i in range(1, 5)},
}
#: Held out for evaluation: one speaker never seen in training, one TED clip.
HELD_OUT = ("examples_ref_video_WDA_KatieHill_000", "ted_grid_4")


def _resize(frame: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.Resampling.LANCZOS))


def _talking_clip(src: Path, dst: Path, size: int) -> dict:
    """Crop a talking clip around its speaker (box from the first frame) and keep its sound."""
    first = next(iter_frames(src, max_frames=1))
    person = find_crop(first)
    box = person.box
    frames = (_resize(f[box.y0 : box.y0 + box.size, box.x0 : box.x0 + box.size], size) for f in iter_frames(src))
    info = video_info(src)
    write_video(dst, frames, info.fps, audio=src if info.has_audio else None)
    return {"crop_xywh": [box.x0, box.y0, box.size, box.size], "crop_method": person.method,
            "fps": info.fps, "has_audio": info.has_audio}


def _ted_clip(src: Path, dst: Path, size: int, crop: tuple | None) -> dict:
    def frames():
        for frame in iter_frames(src):
            if crop is not None:
                (top, bottom), (left, right) = crop
                frame = frame[top:bottom, left:right]
            yield _resize(frame, size)

    info = video_info(src)
    write_video(dst, frames(), info.fps)
    return {"crop_rows_cols": crop, "fps": info.fps, "has_audio": False}


def prepare(shared: Path, out: Path, size: int) -> dict:
    """Write every clip (see the module docstring); returns the manifest."""
    manifest = {"size": size, "held_out": list(HELD_OUT), "clips": {}}
    for name in TALKING:
        split = "test" if name in HELD_OUT else "train"
        dst = out / "renderer" / split / f"{name}.mp4"
        entry = _talking_clip(shared / "talking" / f"{name}.mp4", dst, size)
        talking = out / "talking" / split / dst.name
        talking.parent.mkdir(parents=True, exist_ok=True)
        if not talking.exists():
            os.link(dst, talking)  # the same file in both trees, no second copy
        manifest["clips"][name] = {"source": f"talking/{name}.mp4", "split": split, **entry}
        logger.info("%s: %s", name, manifest["clips"][name])
    for name, (file, crop) in TED.items():
        split = "test" if name in HELD_OUT else "train"
        entry = _ted_clip(shared / "ted_silent" / file, out / "renderer" / split / f"{name}.mp4", size, crop)
        manifest["clips"][name] = {"source": f"ted_silent/{file}", "split": split, **entry}
        logger.info("%s: %s", name, manifest["clips"][name])
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", default=str(REPO_ROOT.parent / "shared" / "data"),
                        help="the shared data folder (default: ../shared/data beside the repository)")
    parser.add_argument("--out", required=True, help="output folder, outside the repository")
    parser.add_argument("--size", type=int, default=256, help="side of the square clips (default 256)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    shared, out = Path(args.shared), Path(args.out).resolve()
    if not (shared / "talking").is_dir() or not (shared / "ted_silent").is_dir():
        print(f"error: {shared} does not hold talking/ and ted_silent/ (see ../shared/data/README.md)",
              file=sys.stderr)
        return 2
    if out == REPO_ROOT or REPO_ROOT in out.parents:
        print(f"error: --out {out} lies inside the repository; the footage must not enter it", file=sys.stderr)
        return 2
    prepare(shared, out, args.size)
    print(f"wrote {out}/renderer, {out}/talking and {out}/manifest.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
