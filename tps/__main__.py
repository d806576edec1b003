"""``python -m tps COMMAND ...``: the renderer's command line (convention: `tps.commands`).

Each command lives in its own module with ``main(argv: list[str] | None) -> int``; this file only
dispatches, so ``python -m tps train`` and ``accelerate launch -m tps.train`` run the same code.
"""

from __future__ import annotations

import sys

from tps.commands import Command, dispatch

COMMANDS: dict[str, Command] = {
    "convert": Command("tps.convert", "convert an official TPSMM *.pth.tar to safetensors + config.json"),
    "animate": Command("tps.animate", "animate a photo with a driving video (the official demo)"),
    "train": Command("tps.train", "train the renderer on a folder of videos (run under accelerate launch)"),
    "evaluate": Command("tps.evaluate", "reconstruction metrics (L1, PSNR, SSIM, AKD) on held-out clips"),
}


def main(argv: list[str] | None = None) -> int:
    return dispatch("python -m tps", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
