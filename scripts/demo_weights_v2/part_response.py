"""Which TPS transforms move pixels (`difftted.evaluation.part_response`): per transform of a
pipeline's renderer, how far the pixels next to its keypoints follow a shift of them.

    python scripts/demo_weights_v2/part_response.py --weights DIR --image PHOTO [PHOTO ...]

1.00 = the part's pixels follow its keypoints fully; 0.00 = they stay, whatever the denoiser
samples for that part. Run it on a renderer in training (a checkpoint retargeted with
scripts/demo_weights/retarget_renderer.py into a pipeline folder) to see whether hands, forearms
and mouth have started to own their pixels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from difftted.evaluation.part_response import format_responses, part_response  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", required=True, help="pipeline folder")
    p.add_argument("--image", required=True, nargs="+", help="photos of speakers")
    p.add_argument("--shift", type=float, default=0.1, help="keypoint shift, [-1, 1] units of the crop")
    args = p.parse_args(argv)
    from difftted import DiffTEDPipeline
    from difftted.pipeline.person import load_image

    pipe = DiffTEDPipeline.from_pretrained(args.weights)
    pipe.set_progress_bar_config(disable=True)
    import numpy as np

    table = {Path(image).stem: part_response(pipe, np.asarray(load_image(image)), shift=args.shift)
             for image in args.image}
    print(format_responses(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
