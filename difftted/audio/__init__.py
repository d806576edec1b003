"""Speech in: loading and checking it (``speech``) and the denoiser's audio features (``features``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from difftted._compat import lazy_exports

_EXPORTS = {
    "load_audio": "difftted.audio.features",
    "AudioFeatureConfig": "difftted.audio.features",
    "AudioFeatureExtractor": "difftted.audio.features",
    "Speech": "difftted.audio.speech",
    "load_speech": "difftted.audio.speech",
}
__all__ = list(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from difftted.audio.features import AudioFeatureConfig, AudioFeatureExtractor, load_audio
    from difftted.audio.speech import Speech, load_speech
