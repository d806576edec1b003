"""Reconstruction strip of a renderer on a clip: the source frame, then driving frames over
prediction frames, as one PNG, to look at what the training loss does not say.

    python scripts/demo_weights/recon_strip.py --model DIR --video CLIP.mp4 --out strip.png [--num 6]

Row 1: the clip's first frame (the source) and ``--num`` driving frames spread over the clip;
row 2: the source again and the model's reconstruction of each driving frame from the source
and the keypoints detected on that frame (the training task, standard mode).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tps.model import TPSMotionModel
from tps.video import read_video


@torch.no_grad()
def strip(model: TPSMotionModel, video: Path, num: int) -> np.ndarray:
    """``uint8 [2H, (num+1)W, 3]``: driving over reconstruction, the source first."""
    frames, _ = read_video(video, size=model.config.image_size)
    picks = np.linspace(0, len(frames) - 1, num + 1).round().astype(int)
    clip = torch.from_numpy(np.ascontiguousarray(frames[picks])).permute(0, 3, 1, 2).float() / 255
    source, driving = clip[:1], clip[1:]
    prediction = model(source, model.detect(driving), kp_source=model.detect(source))["prediction"]
    top = torch.cat([source, driving]).permute(0, 2, 3, 1)
    bottom = torch.cat([source, prediction]).permute(0, 2, 3, 1)
    rows = [torch.cat(list(r), dim=1) for r in (top, bottom)]
    return (torch.cat(rows, dim=0).clamp(0, 1) * 255).round().byte().numpy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="TPSMotionModel folder")
    parser.add_argument("--video", required=True, help="a clip (a held-out one to judge generalisation)")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--num", type=int, default=6, help="driving frames (default 6)")
    args = parser.parse_args(argv)
    model = TPSMotionModel.from_pretrained(args.model).eval()
    image = strip(model, Path(args.video), max(1, args.num))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
