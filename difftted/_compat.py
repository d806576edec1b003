"""Import helpers of the package layout: lazy exports and the old flat module paths.

``lazy_exports`` gives a package a module ``__getattr__`` that imports a name's home module on
first access (``from difftted import DiffTEDPipeline`` without importing torch at
``import difftted``).

The modules that lived flat in ``difftted/`` until 0.1 (`MOVED`) still import, through an import
hook rather than files (so that ``git`` sees the moves as renames): ``import difftted.person``
warns with a ``DeprecationWarning`` and gives the new module object itself
(``difftted.pipeline.person``), so monkeypatching one patches both. The old paths go away one
release after 0.1. Two of them stay as launch entries without a warning when run:
``accelerate launch -m difftted.train`` and ``accelerate launch -m difftted.batch`` (`LAUNCH_ENTRIES`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import types
import warnings
from typing import Any, Callable

#: old module path -> its new home (a tuple: the old module's names came from several homes)
MOVED: dict[str, str | tuple[str, ...]] = {
    "difftted.person": "difftted.pipeline.person",
    "difftted.weights": "difftted.pipeline.weights",
    "difftted.video": ("difftted.audio.speech", "difftted.pipeline.output"),
    "difftted.denoiser": "difftted.motion.denoiser",
    "difftted.sampling": "difftted.motion.sampling",
    "difftted.keypoints": "difftted.motion.keypoints",
    "difftted.dataset": "difftted.data.dataset",
    "difftted.dataset_layouts": "difftted.data.dataset_layouts",
    "difftted.mocap": "difftted.data.mocap",
    "difftted.train": "difftted.training.train",
    "difftted.train_config": "difftted.training.train_config",
    "difftted.train_state": "difftted.training.train_state",
    "difftted.motion_ae": "difftted.training.motion_ae",
    "difftted.evaluate": "difftted.evaluation.evaluate",
    "difftted.metrics": "difftted.evaluation.metrics",
    "difftted.cli": "difftted.interfaces.cli",
    "difftted.batch": "difftted.interfaces.batch",
    "difftted.ui": "difftted.interfaces.ui",
}
#: ``python -m OLD`` runs the command of NEW (kept launch entries, not deprecated when run)
LAUNCH_ENTRIES = {"difftted.train": "difftted.training.train", "difftted.batch": "difftted.interfaces.batch"}


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that serves ``exports`` (name -> home module)."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def run_launch_entry(new: str) -> None:
    """What ``python -m difftted.train`` runs: ``new``'s ``main`` under the command convention."""
    from difftted.__main__ import run_command

    sys.exit(run_command(importlib.import_module(new).main))


class _MovedLoader(importlib.abc.Loader):
    """Loads an old path (`MOVED`) as its new module, warning; runs a launch entry under ``-m``."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        old = module.__spec__.name
        homes = MOVED[old]
        shown = homes if isinstance(homes, str) else " / ".join(homes)
        warnings.warn(f"{old} is deprecated and will be removed in the next release; import {shown} instead",
                      DeprecationWarning, stacklevel=2)
        if isinstance(homes, str):  # the import system hands back sys.modules[old]: the new module
            sys.modules[old] = importlib.import_module(homes)
            return
        for home in homes:
            source = importlib.import_module(home)
            module.__dict__.update({k: v for k, v in vars(source).items() if not k.startswith("_")})

    def is_package(self, fullname: str) -> bool:
        return False

    def get_code(self, fullname: str) -> types.CodeType:
        """``python -m OLD`` (runpy): a launch entry runs its command; other old paths just import."""
        if fullname in LAUNCH_ENTRIES:
            source = f"from difftted._compat import run_launch_entry\nrun_launch_entry({LAUNCH_ENTRIES[fullname]!r})\n"
        else:
            source = f"import {fullname}\n"
        return compile(source, f"<{fullname}: moved to {MOVED[fullname]}>", "exec")


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, _LOADER, origin=f"moved to {MOVED[fullname]}")


_LOADER = _MovedLoader()


def install_moved_modules() -> None:
    """Put the finder of the old paths first on ``sys.meta_path`` (once). First, so that no other
    finder (an editable install's path map of an older checkout) hands out a stale file; it
    answers only the exact names of `MOVED`."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())
