"""difftted: one photo + speech -> a TED-style talking video (DiffTED).

    image + audio -> (audio features, source keypoints) -> keypoint diffusion -> driving keypoints
      -> TPS dense motion + inpainting -> frames -> mp4 with the original audio

``from difftted import DiffTEDPipeline``. The heavy imports (torch, diffusers, mediapipe) happen
on first access, so ``python -m difftted --help`` stays fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from difftted._compat import install_moved_modules, lazy_exports

__version__ = "0.1.0"

_LAZY = {
    "DiffTEDPipeline": "difftted.pipeline.pipeline",
    "DiffTEDPipelineOutput": "difftted.pipeline.pipeline",
    "WeightsNotFoundError": "difftted.pipeline.weights",
    "resolve_weights": "difftted.pipeline.weights",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:
    from difftted.pipeline.pipeline import DiffTEDPipeline, DiffTEDPipelineOutput
    from difftted.pipeline.weights import WeightsNotFoundError, resolve_weights


__getattr__ = lazy_exports(__name__, _LAZY)
install_moved_modules()  # the flat module paths of 0.1 (difftted.person, ...): deprecated aliases
