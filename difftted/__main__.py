"""``python -m difftted COMMAND ...``: the product's command line.

Each command lives in its own module with ``main(argv: list[str] | None) -> int``; this file only
dispatches, so ``python -m difftted train`` and ``accelerate launch -m difftted.train`` run the
same code.

Errors: a user error (bad input: ValueError, a missing file, no permission) prints one line,
``error: ...``, and exits with status 1, without a traceback; anything else is a bug and keeps its
traceback. ``DIFFTTED_DEBUG=1`` shows the traceback of user errors too.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Callable

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
    "evaluate-video": ("difftted.video_judge", "judge generated videos from their pixels (mediapipe landmarks)"),
    "batch": ("difftted.batch", "many (image, audio) jobs across processes (accelerate launch)"),
}


#: What bad input raises (the project's convention); TypeError is left out on purpose: from the
#: command line every argument is a string, so a TypeError there is a bug.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, PermissionError,
                                               IsADirectoryError, NotADirectoryError, FileExistsError)


def run_command(main_fn: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """``main_fn(argv)`` with the one-line reporting of user errors described above."""
    try:
        return int(main_fn(argv) or 0)
    except USER_ERRORS as err:
        if os.environ.get("DIFFTTED_DEBUG", "").strip() not in {"", "0"}:
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


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
    return run_command(module.main, rest)


if __name__ == "__main__":
    sys.exit(main())
