"""Training data: building the keypoint dataset from videos (``dataset``, its input
``dataset_layouts``), the training windows (``windows``) and the BEAT/BVH motion-capture reader
(``mocap``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from difftted._compat import lazy_exports

_EXPORTS = {"KeypointWindowDataset": "difftted.data.windows", "load_clip": "difftted.data.windows"}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from difftted.data.windows import KeypointWindowDataset, load_clip
