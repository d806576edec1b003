"""``python -m difftted COMMAND ...``: the product's command line.

Each command lives in its own module with ``main(argv: list[str] | None) -> int``; this file only
dispatches, so ``python -m difftted train`` and ``accelerate launch -m difftted.train`` run the
same code.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "generate": ("difftted.cli", "photo + speech -> talking video (mp4)"),
    "animate": ("tps.animate", "animate a photo with a driving video"),
    "convert-tpsmm": ("tps.convert", "convert an official TPSMM *.pth.tar to safetensors + config.json"),
    "train-renderer": ("tps.train", "train the TPS renderer on videos (accelerate launch)"),
    "evaluate-renderer": ("tps.evaluate", "renderer reconstruction metrics on held-out clips"),
    "build-dataset": ("difftted.dataset", "talking videos -> keypoint + audio-feature training set"),
    "train": ("difftted.train", "train the keypoint denoiser (accelerate launch)"),
    "train-motion-ae": ("difftted.motion_ae", "train the motion autoencoder used by Diversity / FGD"),
    "evaluate": ("difftted.evaluate", "motion metrics (BC, Diversity, FGD, L1, jitter) as a table"),
    "batch": ("difftted.batch", "many (image, audio) jobs across processes (accelerate launch)"),
}


def _usage() -> str:
    lines = ["usage: python -m difftted COMMAND [ARGS]", "", "commands:"]
    lines += [f"  {name:<18} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
