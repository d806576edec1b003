"""``python -m difftted COMMAND ...``: the product's command line (convention: `tps.commands`).

Each command lives in its own module with ``main(argv: list[str] | None) -> int``; this file only
dispatches, so ``python -m difftted train`` and ``accelerate launch -m difftted.train`` run the
same code. The renderer's commands are reachable under one name each, the one they have in
``python -m tps``: ``python -m difftted tps CMD ...`` is ``python -m tps CMD ...``.

Errors: a user error prints one line, ``error: ...``, without a traceback (status 2 for a wrong
command line, 1 for work that failed; see `tps.commands`); anything else is a bug and keeps its
traceback. ``DIFFTTED_DEBUG=1`` shows the traceback of user errors too.
"""

from __future__ import annotations

import functools
import sys

from tps import commands
from tps.commands import USER_ERRORS, Command  # noqa: F401  (USER_ERRORS: re-exported)

DEBUG_ENV = "DIFFTTED_DEBUG"

_RENAMED = "use `python -m difftted tps {}` (the renderer's commands keep their `python -m tps` names)"
COMMANDS: dict[str, Command] = {
    "generate": Command("difftted.interfaces.cli", "photo + speech -> talking video (mp4)"),
    "build-dataset": Command("difftted.data.dataset", "talking videos -> keypoint + audio-feature training set"),
    "renderer-keypoints": Command("difftted.data.renderer_keypoints",
                                  "body keypoint files beside renderer clips (tps train on given keypoints)"),
    "train": Command("difftted.training.train", "train the keypoint denoiser (accelerate launch)"),
    "train-motion-ae": Command("difftted.training.motion_ae", "train the motion autoencoder used by Diversity / FGD"),
    "evaluate": Command("difftted.evaluation.evaluate", "motion metrics (BC, Diversity, FGD, L1, jitter) as a table"),
    "evaluate-video": Command("difftted.evaluation.video_judge",
                              "judge generated videos from their pixels (gestures, lips, face, sharpness, background)"),
    "batch": Command("difftted.interfaces.batch", "many (image, audio) jobs across processes (accelerate launch)"),
    "tps": Command("tps.__main__", "the renderer's commands: convert, animate, train, evaluate (= python -m tps)"),
    # deprecated aliases of the renderer's commands (one release)
    "animate": Command("tps.animate", _RENAMED.format("animate"), hidden=True),
    "convert-tpsmm": Command("tps.convert", _RENAMED.format("convert"), hidden=True),
    "train-renderer": Command("tps.train", _RENAMED.format("train"), hidden=True),
    "evaluate-renderer": Command("tps.evaluate", _RENAMED.format("evaluate"), hidden=True),
}

#: ``run_command(main_fn, argv) -> int`` with this dispatcher's debug variable.
run_command = functools.partial(commands.run_command, debug_env=DEBUG_ENV)


def main(argv: list[str] | None = None) -> int:
    return commands.dispatch("python -m difftted", COMMANDS, argv, debug_env=DEBUG_ENV)


if __name__ == "__main__":
    sys.exit(main())
