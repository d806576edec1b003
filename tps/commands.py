"""The one command-line convention of ``python -m tps`` and ``python -m difftted``.

Every command is a module with ``build_parser() -> argparse.ArgumentParser`` and
``main(argv: list[str] | None = None) -> int``; a dispatcher only maps a name to that module
(`Command`) and calls `run_command`. Exit status:

- ``0``: done;
- ``2`` (`EXIT_BAD_INPUT`): the command line was wrong: an unknown command, argparse's own usage
  errors, and arguments a command rejects before doing any work (it prints one ``error: ...``
  line and returns 2);
- ``1`` (`EXIT_FAILURE`): the work failed on what it was given: a user error (`USER_ERRORS`)
  raised while working is printed as one line ``error: ...`` without a traceback;
- anything else that escapes is a bug and keeps its traceback (set the dispatcher's debug
  variable, e.g. ``DIFFTTED_DEBUG=1``, to see the traceback of user errors too).
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from typing import Callable

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2

#: What bad input raises (the project's convention); TypeError is left out on purpose: from the
#: command line every argument is a string, so a TypeError there is a bug.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, PermissionError,
                                               IsADirectoryError, NotADirectoryError, FileExistsError)


@dataclass(frozen=True)
class Command:
    """A command of a dispatcher: the module holding its ``main`` and a one-line help."""

    module: str
    help: str
    hidden: bool = False  # deprecated aliases: dispatched, not listed


def print_error(message: object) -> None:
    """The convention's one line on stderr: ``error: <message on one line>``."""
    text = " ".join(str(message).split()) or type(message).__name__
    print(f"error: {text}", file=sys.stderr)


def run_command(main_fn: Callable[[list[str] | None], int | None], argv: list[str] | None = None,
                *, debug_env: str = "TPS_DEBUG") -> int:
    """``main_fn(argv)``, a user error that escapes it reported as one line and status 1."""
    try:
        return int(main_fn(argv) or 0)
    except USER_ERRORS as err:
        if os.environ.get(debug_env, "").strip() not in {"", "0"}:
            raise
        print_error(err)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print_error("interrupted")
        return 130


def usage(prog: str, commands: dict[str, Command]) -> str:
    """The dispatcher's usage text: one line per listed command."""
    listed = {name: c for name, c in commands.items() if not c.hidden}
    width = max(map(len, listed), default=0) + 2
    lines = [f"usage: {prog} COMMAND [ARGS]", "", "commands:"]
    return "\n".join(lines + [f"  {name:<{width}}{c.help}" for name, c in listed.items()])


def dispatch(prog: str, commands: dict[str, Command], argv: list[str] | None = None,
             *, debug_env: str = "TPS_DEBUG") -> int:
    """``prog COMMAND ARGS``: run ``commands[COMMAND]``'s ``main(ARGS)`` through `run_command`.

    No command: the usage and status 2; ``-h``/``--help``: the usage and 0; an unknown one:
    ``error: unknown command ...`` and 2.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(usage(prog, commands))
        return EXIT_OK if argv else EXIT_BAD_INPUT
    name, rest = argv[0], argv[1:]
    if name not in commands:
        print_error(f"unknown command {name!r} (`{prog} --help` lists them)")
        return EXIT_BAD_INPUT
    if commands[name].hidden:
        print(f"warning: `{prog} {name}` is deprecated: {commands[name].help}", file=sys.stderr)
    module = importlib.import_module(commands[name].module)
    return run_command(module.main, rest, debug_env=debug_env)
