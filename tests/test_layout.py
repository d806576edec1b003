"""The package layout: the old flat module paths still import, warn, and are the new modules."""

from __future__ import annotations

import importlib
import sys

import pytest

from difftted._compat import MOVED  # noqa: E402  (old path -> new home, docs/ARCHITECTURE.md)

SINGLE = {old: new for old, new in MOVED.items() if isinstance(new, str)}


def _fresh_import(name: str):
    sys.modules.pop(name, None)
    return importlib.import_module(name)


@pytest.mark.parametrize("old", sorted(SINGLE))
def test_old_module_path_warns_and_is_the_new_module(old):
    with pytest.warns(DeprecationWarning, match=SINGLE[old].replace(".", r"\.")):
        module = _fresh_import(old)
    assert module is importlib.import_module(SINGLE[old])


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


def test_every_old_flat_module_is_mapped():
    old_modules = {"person", "weights", "video", "denoiser", "sampling", "keypoints", "dataset", "dataset_layouts",
                   "mocap", "train", "train_config", "train_state", "motion_ae", "evaluate", "metrics", "cli",
                   "batch", "ui"}
    assert set(MOVED) == {f"difftted.{name}" for name in old_modules}


def test_public_api_without_warnings(recwarn):
    from difftted import DiffTEDPipeline
    from difftted.audio import AudioFeatureConfig, Speech
    from difftted.pipeline import DiffTEDPipeline as same

    assert DiffTEDPipeline is same and AudioFeatureConfig and Speech
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning) and "difftted" in str(w.message)]
