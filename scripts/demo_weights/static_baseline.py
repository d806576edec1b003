"""The do-nothing baseline of renderer reconstruction: every frame predicted by the first frame.

    python scripts/demo_weights/static_baseline.py --data DIR [--split test] [--size 256] [--pose-akd]

Same clips, frames, resizing and metrics as `python -m tps evaluate` (L1, PSNR, SSIM; pose AKD
over mediapipe landmarks with ``--pose-akd``), so a renderer's figures can be read against what a
still image already scores. The model-keypoint AKD has no meaning without a model and is left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tps.data import FrameStore, find_clips, to_tensor
from tps.evaluate import PoseLandmarks, l1_error, landmark_distance, psnr, ssim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--pose-akd", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    store = FrameStore((args.size, args.size), cache_bytes=0)
    pose = PoseLandmarks() if args.pose_akd else None
    rows = {}
    for clip in find_clips(args.data, args.split):
        frames = to_tensor(store.frames(clip))
        values: dict[str, list[float]] = {"l1": [], "psnr": [], "ssim": [], "pose_akd": []}
        for start in range(0, len(frames), 16):
            driving = frames[start : start + 16]
            still = frames[:1].expand_as(driving)
            values["l1"] += l1_error(still, driving).tolist()
            values["psnr"] += psnr(still, driving).tolist()
            values["ssim"] += ssim(still, driving).tolist()
            if pose is not None:
                values["pose_akd"] += landmark_distance(*pose(still), *pose(driving))[0].tolist()
        rows[clip.name] = {k: float(np.nanmean(v)) for k, v in values.items() if v}
        print(clip.name, len(frames), " ".join(f"{k} {v:.4f}" for k, v in rows[clip.name].items()))
    if pose is not None:
        pose.close()
    mean = {k: float(np.mean([r[k] for r in rows.values()])) for k in next(iter(rows.values()))}
    print("mean", " ".join(f"{k} {v:.4f}" for k, v in mean.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"clips": rows, "mean": mean}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
