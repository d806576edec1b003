"""Motion of a denoiser checkpoint on the held-out clip, at several guidance scales.

    python scripts/demo_weights/guidance_sweep.py --checkpoint RUN/final --data MOTION_DATASET \
        [--guidance 1.15 2 3] [--seeds 0 1] [--seconds 8]

For each guidance scale, samples the first test clip of the motion dataset (its first frame as
the photo, its speech) with the training run's validation sampler (`difftted.training.train.Validator`,
the run's scheduler and step count) once per seed, and prints the mean of BC, jitter, spread
(`difftted.evaluation.metrics.motion_spread`) and L1 to the real motion, beside the real motion's own.
This is how the recipes in docs/demo_weights.md were compared and how the bundled guidance
scale was chosen: the one whose spread comes closest to the real motion's.
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

from difftted.data.dataset import load_manifest
from difftted.motion.denoiser import KeypointDenoiser
from difftted.motion.keypoints import KeypointStats, MotionCoding
from difftted.training.train import Validator
from difftted.training.train_config import MotionTrainConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="a checkpoint-N/ or final/ folder of `python -m difftted train`")
    parser.add_argument("--data", type=Path, required=True, help="the motion dataset it was trained on")
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.15, 2.0, 3.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--seconds", type=float, default=8.0, help="length of the clip sampled")
    args = parser.parse_args(argv)
    config = args.checkpoint.parent / "train_config.json"
    if not config.is_file():
        print(f"error: {config} not found (--checkpoint must lie in a training run folder)", file=sys.stderr)
        return 2
    cfg = MotionTrainConfig.load(config).replace(validation_seconds=args.seconds)
    meta = json.loads((args.checkpoint / "pipeline.json").read_text())
    coding = MotionCoding(KeypointStats.from_dict(meta["keypoint_stats"]),
                          KeypointStats.from_dict(meta["offset_stats"]) if "offset_stats" in meta else None)
    model = KeypointDenoiser.from_pretrained(args.checkpoint / "denoiser", use_safetensors=True)
    manifest = load_manifest(args.data)
    print(f"{args.checkpoint}: {model.config.prediction_type} prediction, {coding.target} motion")
    for guidance in args.guidance:
        rows = [Validator(args.data, manifest, coding, cfg.replace(guidance_scale=guidance, seed=seed))(model)
                for seed in args.seeds]
        mean = {k: float(np.mean([r[k] for r in rows if r[k] is not None])) for k in rows[0]}
        print(f"guidance {guidance:5.2f}: BC {mean['bc']:.3f}  jitter {mean['jitter']:6.2f}  "
              f"spread {mean['spread']:.4f}  L1 {mean['l1']:.4f}   |  real: BC {mean['gt_bc']:.3f}  "
              f"jitter {mean['gt_jitter']:6.2f}  spread {mean['gt_spread']:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
