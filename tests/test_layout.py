"""The package layout: the old flat module paths still import, warn, and are the new modules."""

from __future__ import annotations

import importlib
import sys

import pytest

#: old module path -> its new home (docs/ARCHITECTURE.md, "Old module paths")
MOVED = {
    "difftted.person": "difftted.pipeline.person",
    "difftted.weights": "difftted.pipeline.weights",
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


def _fresh_import(name: str):
    sys.modules.pop(name, None)
    return importlib.import_module(name)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_old_module_path_warns_and_is_the_new_module(old):
    with pytest.warns(DeprecationWarning, match=MOVED[old].replace(".", r"\.")):
        module = _fresh_import(old)
    assert module is importlib.import_module(MOVED[old])


def test_old_video_module_warns_and_reexports_speech_and_output():
    from difftted.audio.speech import load_speech
    from difftted.pipeline.output import check_output_path

    with pytest.warns(DeprecationWarning, match="difftted.audio.speech"):
        video = _fresh_import("difftted.video")
    assert video.load_speech is load_speech and video.check_output_path is check_output_path


def test_old_train_config_name_warns():
    from difftted.training import train_config

    with pytest.warns(DeprecationWarning, match="MotionTrainConfig"):
        old = train_config.TrainConfig
    assert old is train_config.MotionTrainConfig


def test_public_api_without_warnings(recwarn):
    from difftted import DiffTEDPipeline
    from difftted.audio import AudioFeatureConfig, Speech
    from difftted.pipeline import DiffTEDPipeline as same

    assert DiffTEDPipeline is same and AudioFeatureConfig and Speech
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning) and "difftted" in str(w.message)]
