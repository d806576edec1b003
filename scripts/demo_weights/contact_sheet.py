"""Contact sheet of videos: one row per video, a frame every ``--every`` seconds, as one PNG.

    python scripts/demo_weights/contact_sheet.py --videos a.mp4 b.mp4 --out sheet.png \
        [--every 0.5] [--thumb 128] [--max-frames 16]

Used to look at generated videos (docs/images/demo_*.png) and at prepared training clips.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tps.video import iter_frames, video_info


def video_row(path: Path, every: float, thumb: int, max_frames: int) -> list[np.ndarray]:
    """Frames at 0, every, 2*every, ... seconds, resized to ``thumb`` pixels high."""
    fps = video_info(path).fps
    step = max(every * fps, 1e-6)
    wanted, row = 0.0, []
    for index, frame in enumerate(iter_frames(path)):
        if index + 1e-6 >= wanted:
            h, w = frame.shape[:2]
            row.append(np.asarray(Image.fromarray(frame).resize((max(1, round(w * thumb / h)), thumb),
                                                               Image.Resampling.LANCZOS)))
            wanted += step
            if len(row) == max_frames:
                break
    if not row:
        raise ValueError(f"video {str(path)!r} has no frames")
    return row


def contact_sheet(videos: list[Path], every: float = 0.5, thumb: int = 128, max_frames: int = 16) -> Image.Image:
    """One RGB image: a row per video (left-aligned, black padding), 2 px gaps."""
    rows = [video_row(p, every, thumb, max_frames) for p in videos]
    gap = 2
    widths = [sum(f.shape[1] for f in r) + gap * (len(r) - 1) for r in rows]
    sheet = np.zeros((len(rows) * thumb + gap * (len(rows) - 1), max(widths), 3), dtype=np.uint8)
    for i, row in enumerate(rows):
        x = 0
        for frame in row:
            sheet[i * (thumb + gap) : i * (thumb + gap) + thumb, x : x + frame.shape[1]] = frame
            x += frame.shape[1] + gap
    return Image.fromarray(sheet)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", nargs="+", required=True)
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between frames (default 0.5)")
    parser.add_argument("--thumb", type=int, default=128, help="thumbnail height in pixels (default 128)")
    parser.add_argument("--max-frames", type=int, default=16, help="frames per row at most (default 16)")
    args = parser.parse_args(argv)
    if args.every <= 0 or args.thumb < 8 or args.max_frames < 1:
        print("error: --every must be > 0, --thumb >= 8, --max-frames >= 1", file=sys.stderr)
        return 2
    sheet = contact_sheet([Path(v) for v in args.videos], args.every, args.thumb, args.max_frames)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
