"""``python -m tps COMMAND ...``: the renderer's command line.

Each command lives in its own module with ``main(argv: list[str] | None) -> int``; this file only
dispatches, so ``python -m tps train`` and ``accelerate launch -m tps.train`` run the same code.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "convert": ("tps.convert", "convert an official TPSMM *.pth.tar to safetensors + config.json"),
    "animate": ("tps.animate", "animate a photo with a driving video (the official demo)"),
    "train": ("tps.train", "train the renderer on a folder of videos (run under accelerate launch)"),
    "evaluate": ("tps.evaluate", "reconstruction metrics (L1, PSNR, SSIM, AKD) on held-out clips"),
}


def _usage() -> str:
    lines = ["usage: python -m tps COMMAND [ARGS]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in COMMANDS.items()]
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
