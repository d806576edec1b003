"""difftted: one photo + speech -> a TED-style talking video (DiffTED).

    image + audio -> (audio features, source keypoints) -> keypoint diffusion -> driving keypoints
      -> TPS dense motion + inpainting -> frames -> mp4 with the original audio

``from difftted import DiffTEDPipeline``. The heavy imports (torch, diffusers, mediapipe) happen
on first access, so ``python -m difftted --help`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "DiffTEDPipeline": "difftted.pipeline",
    "DiffTEDPipelineOutput": "difftted.pipeline",
    "WeightsNotFoundError": "difftted.weights",
    "resolve_weights": "difftted.weights",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:
    from difftted.pipeline import DiffTEDPipeline, DiffTEDPipelineOutput
    from difftted.weights import WeightsNotFoundError, resolve_weights


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'difftted' has no attribute {name!r}")
