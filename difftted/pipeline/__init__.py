"""The generation pipeline and its steps: `DiffTEDPipeline` (``pipeline``), finding and framing the
person (``person``), the weights folder (``weights``) and the output mp4 (``output``).

``from difftted.pipeline import DiffTEDPipeline`` imports torch and diffusers on first access only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from difftted._compat import lazy_exports

_EXPORTS = {"DiffTEDPipeline": "difftted.pipeline.pipeline", "DiffTEDPipelineOutput": "difftted.pipeline.pipeline"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from difftted.pipeline.pipeline import DiffTEDPipeline, DiffTEDPipelineOutput
