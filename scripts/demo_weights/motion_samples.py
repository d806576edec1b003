"""Generate motion for held-out talking clips: the clip's first frame + its own speech.

    python scripts/demo_weights/motion_samples.py --weights weights --clips DIR --out DIR [--seeds 0 1]

For every video in ``--clips`` and every seed, runs the pipeline at its default settings on the
clip's first frame and sound and writes ``OUT/<clip>_seed<S>.npz`` (``keypoints [T, N, 2]``,
``fps``, ``waveform``, ``sample_rate``: the format `python -m difftted evaluate` reads and
matches to the ground-truth clip ``<clip>`` by name) and the rendered crop ``OUT/videos/<clip>_seed<S>.mp4`` (kept apart: the evaluation
reads every clip file of ``OUT``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from difftted.pipeline import DiffTEDPipeline
from tps.video import iter_frames


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="pipeline folder (default: the pipeline's default)")
    parser.add_argument("--clips", required=True, help="folder of held-out talking clips with sound")
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args(argv)
    pipe = DiffTEDPipeline.from_pretrained(args.weights)
    out = Path(args.out)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    clips = sorted(Path(args.clips).glob("*.mp4"))
    if not clips:
        print(f"error: no .mp4 in {args.clips}", file=sys.stderr)
        return 2
    for clip in clips:
        photo = next(iter_frames(clip, max_frames=1))
        for seed in args.seeds:
            result = pipe(photo, str(clip), generator=torch.Generator().manual_seed(seed), output="crop",
                          output_path=out / "videos" / f"{clip.stem}_seed{seed}.mp4", progress=False)
            waveform, rate = result.audio
            np.savez(out / f"{clip.stem}_seed{seed}.npz", keypoints=result.keypoints, fps=result.fps,
                     waveform=waveform, sample_rate=rate)
            print(f"{clip.stem} seed {seed}: {result.keypoints.shape[0]} frames at {result.fps} fps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
