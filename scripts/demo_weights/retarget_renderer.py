"""Copy a trained `TPSMotionModel` folder with a new image size and/or without its background predictor.

    python scripts/demo_weights/retarget_renderer.py --model RUN/model --out DIR [--image-size 256] [--no-bg]
        [--detector-size 256]

The networks are convolutional and keypoints live in [-1, 1], so the same weights run at any
size that is a multiple of the model's ``size_multiple``; ``config.image_size`` only says which
size renderers resize photos to and which size `python -m tps train --init` trains at. The demo
recipe trains at 128x128 first and continues at 256x256 from this copy. ``--no-bg`` drops the
background predictor, which inference never uses (the official demo path), from the exported
renderer: 2.8M fewer parameters in ``weights/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tps.model import TPSMotionModel


def retarget(model: TPSMotionModel, image_size: int | None, drop_bg: bool,
             detector_size: int | None = None) -> TPSMotionModel:
    """A new model with the changed config and every kept network's weights."""
    changes: dict = {}
    if image_size is not None:
        changes["image_size"] = (image_size, image_size)
    if detector_size is not None:
        changes["detector_size"] = None if detector_size == 0 else (detector_size, detector_size)
    if drop_bg:
        changes["bg"] = False
    target = TPSMotionModel(model.config.replace(**changes))
    state = {k: v for k, v in model.state_dict().items() if not (drop_bg and k.startswith("bg_predictor."))}
    target.load_state_dict(state, strict=True)
    return target.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="TPSMotionModel folder (config.json + model.safetensors)")
    parser.add_argument("--out", required=True, help="folder to write")
    parser.add_argument("--image-size", type=int, default=None, help="new square image size (multiple of 128 for lite-256)")
    parser.add_argument("--no-bg", action="store_true", help="drop the background predictor")
    parser.add_argument("--detector-size", type=int, default=None,
                        help="square size the keypoint detector sees (frames are resized to it; e.g. 256 to keep "
                             "a 256 detector's keypoints in a 128 renderer); 0: none")
    args = parser.parse_args(argv)
    try:
        model = retarget(TPSMotionModel.from_pretrained(args.model), args.image_size, args.no_bg,
                         args.detector_size)
    except (ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    model.save_pretrained(args.out)
    print(f"wrote {args.out}: image_size {model.config.image_size}, bg {model.config.bg}, "
          f"detector_size {model.config.detector_size}, {sum(p.numel() for p in model.parameters())} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
