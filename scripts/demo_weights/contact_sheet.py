"""Contact sheet of videos: one row per video, a frame every ``--every`` seconds, as one PNG.

    python scripts/demo_weights/contact_sheet.py --videos a.mp4 b.mp4 --out sheet.png \
        [--every 0.5] [--thumb 128] [--max-frames 16] [--box X0,Y0,X1,Y1]

``--box`` cuts the same pixel box out of every frame first (a face close-up at full resolution).

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


def video_row(path: Path, every: float, thumb: int, max_frames: int,
              box: tuple[int, int, int, int] | None = None) -> list[np.ndarray]:
    """Frames at 0, every, 2*every, ... seconds (cut to ``box`` = x0, y0, x1, y1 when given),
    resized to ``thumb`` pixels high."""
    fps = video_info(path).fps
    step = max(every * fps, 1e-6)
    wanted, row = 0.0, []
    for index, frame in enumerate(iter_frames(path)):
        if index + 1e-6 >= wanted:
            if box is not None:
                frame = np.ascontiguousarray(frame[box[1] : box[3], box[0] : box[2]])
            h, w = frame.shape[:2]
            row.append(np.asarray(Image.fromarray(frame).resize((max(1, round(w * thumb / h)), thumb),
                                                               Image.Resampling.LANCZOS)))
            wanted += step
            if len(row) == max_frames:
                break
    if not row:
        raise ValueError(f"video {str(path)!r} has no frames")
    return row


def contact_sheet(videos: list[Path], every: float = 0.5, thumb: int = 128, max_frames: int = 16,
                  box: tuple[int, int, int, int] | None = None) -> Image.Image:
    """One RGB image: a row per video (left-aligned, black padding), 2 px gaps."""
    rows = [video_row(p, every, thumb, max_frames, box) for p in videos]
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
    parser.add_argument("--box", default=None, help="X0,Y0,X1,Y1: cut this pixel box from every frame first")
    args = parser.parse_args(argv)
    if args.every <= 0 or args.thumb < 8 or args.max_frames < 1:
        print("error: --every must be > 0, --thumb >= 8, --max-frames >= 1", file=sys.stderr)
        return 2
    box = None
    if args.box is not None:
        try:
            box = tuple(int(v) for v in args.box.split(","))
        except ValueError:
            box = ()
        if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1] or min(box) < 0:
            print(f"error: --box must be X0,Y0,X1,Y1 with X1 > X0 >= 0 and Y1 > Y0 >= 0, got {args.box!r}",
                  file=sys.stderr)
            return 2
    sheet = contact_sheet([Path(v) for v in args.videos], args.every, args.thumb, args.max_frames, box)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out, optimize=True)
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
