"""Draw the body-anchored keypoints on real frames (docs/images/body_keypoints.png).

    python scripts/body_keypoints_figure.py VIDEO OUT.png [--frames 0,90,150] [--width 640]

Each TPS transform has one colour; its 5 points are joined around their centre.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from difftted.motion.body_keypoints import TRANSFORMS  # noqa: E402
from difftted.motion.body_landmarks import extract_body_keypoints  # noqa: E402

COLOURS = [(255, 60, 60), (255, 0, 200), (255, 160, 0), (250, 250, 60), (0, 220, 90), (0, 200, 255),
           (60, 90, 255), (140, 255, 140), (120, 220, 255), (190, 120, 255)]


def draw(frame: np.ndarray, kp: np.ndarray, width: int) -> Image.Image:
    h, w = frame.shape[:2]
    full = (kp + 1) / 2 * (np.array([w, h]) - 1)
    lo = np.clip(full.min(0) - 0.08 * (full.max(0) - full.min(0)), 0, None).astype(int)
    hi = np.minimum(full.max(0) + 0.08 * (full.max(0) - full.min(0)), [w, h]).astype(int)
    scale = width / (hi[0] - lo[0])
    img = Image.fromarray(frame[lo[1]:hi[1], lo[0]:hi[0]])
    img = img.resize((width, round((hi[1] - lo[1]) * scale)), Image.Resampling.LANCZOS)
    d = ImageDraw.Draw(img)
    px = (full - lo) * scale
    for k, colour in enumerate(COLOURS):
        group = px[5 * k:5 * k + 5]
        order = np.argsort(np.arctan2(*(group - group.mean(0)).T[::-1]))  # outline around the centre
        pts = [tuple(p) for p in group]
        outline = [pts[i] for i in order]
        d.line(outline + [outline[0]], fill=colour, width=2)
        for i, (x, y) in enumerate(pts):
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour, outline=(0, 0, 0))
    return img


def legend(height: int) -> Image.Image:
    img = Image.new("RGB", (150, height), (255, 255, 255))
    d = ImageDraw.Draw(img)
    for k, name in enumerate(TRANSFORMS):
        d.rectangle([8, 10 + 22 * k, 22, 24 + 22 * k], fill=COLOURS[k], outline=(0, 0, 0))
        d.text((28, 11 + 22 * k), f"{k} {name}", fill=(0, 0, 0))
    return img


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("video", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--frames", default="0,90,180")
    p.add_argument("--width", type=int, default=480)
    args = p.parse_args()
    from tps.video import iter_frames, video_info

    wanted = [int(v) for v in args.frames.split(",")]
    frames = [f for i, f in zip(range(max(wanted) + 1), iter_frames(args.video))]
    body = extract_body_keypoints(frames, fps=float(video_info(args.video).fps))
    tiles = [draw(frames[i], body.keypoints[i], args.width) for i in wanted]
    height = min(t.height for t in tiles)
    tiles = [t.resize((round(t.width * height / t.height), height)) for t in tiles]
    sheet = Image.new("RGB", (sum(t.width for t in tiles) + 150, height), (255, 255, 255))
    x = 0
    for t in tiles:
        sheet.paste(t, (x, 0))
        x += t.width
    sheet.paste(legend(height), (x, 0))
    sheet.save(args.out)
    print("sources (2 measured, 1 filled):", body.source[wanted].tolist())
    return 0


if __name__ == "__main__":
    sys.exit(main())
