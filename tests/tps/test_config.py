"""TPSConfig: presets, strict dict round trips, size rules, and the lite-256 FLOPs budget."""

from __future__ import annotations

import json

import pytest

from tps.config import (
    PRESETS,
    AVDConfig,
    DenseMotionConfig,
    GeneratorConfig,
    TPSConfig,
    config_from_official,
    get_preset,
)
from tps.model import flops_per_frame


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_round_trips_through_json(name: str, tmp_path) -> None:
    config = get_preset(name)
    assert TPSConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    config.save(tmp_path / "config.json")
    assert TPSConfig.load(tmp_path / "config.json") == config


def test_ted_384_has_the_official_ted_widths() -> None:
    config = get_preset("ted-384")
    assert config.num_tps == 10 and config.num_kp == 50 and config.bg and config.avd == AVDConfig(128, 128)
    assert config.image_size == (384, 384)
    assert config.generator == GeneratorConfig(block_expansion=64, max_features=512, num_down_blocks=3)
    assert config.dense_motion == DenseMotionConfig(64, 1024, 5, 0.25, 0.01)
    assert config.size_multiple == 128


def test_unknown_keys_are_rejected_and_named() -> None:
    data = get_preset("ted-384").to_dict()
    with pytest.raises(ValueError, match="unknown key.*'num_tsp'"):
        TPSConfig.from_dict({**data, "num_tsp": 10})
    data["generator"] = {**data["generator"], "block_expanson": 32}
    with pytest.raises(ValueError, match=r"generator: unknown key.*'block_expanson'"):
        TPSConfig.from_dict(data)
    data = get_preset("ted-384").to_dict()
    data["avd"] = {"id_bottle_size": 8, "pose_bottle": 8}
    with pytest.raises(ValueError, match=r"avd: unknown key.*'pose_bottle'"):
        TPSConfig.from_dict(data)


def test_config_is_frozen() -> None:
    config = get_preset("lite-256")
    with pytest.raises(AttributeError):
        config.num_tps = 5  # type: ignore[misc]
    assert config.replace(num_tps=5).num_tps == 5 and config.num_tps == 10


def test_image_size_must_fit_the_hourglass() -> None:
    with pytest.raises(ValueError, match=r"height 200 must be a multiple of 128"):
        TPSConfig(image_size=(200, 256))
    assert TPSConfig(image_size=(256, 384)).image_size == (256, 384)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dense_motion": {"scale_factor": 0.3}}, "scale_factor must be 1/2"),
        ({"dense_motion": {"scale_factor": 0.5}}, "gives 3 occlusion maps"),
        ({"multi_mask": False}, "multi_mask=False"),
        ({"num_tps": 0}, "num_tps must be a positive int"),
        ({"image_size": [384]}, "image_size must be"),
        ({"detector_size": [256]}, "detector_size must be"),
        ({"detector_size": [256, 0]}, "detector_size must be"),
    ],
)
def test_invalid_configs_raise(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TPSConfig.from_dict(kwargs)


def test_get_preset_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown preset 'ted-512'"):
        get_preset("ted-512")


def test_config_from_official_model_params() -> None:
    params = {
        "common_params": {"num_tps": 6, "num_channels": 3, "bg": False, "multi_mask": True},
        "generator_params": {"block_expansion": 16, "max_features": 64, "num_down_blocks": 3},
        "dense_motion_params": {"block_expansion": 16, "max_features": 128, "num_blocks": 5, "scale_factor": 0.25},
    }
    config = config_from_official(params, (256, 128))
    assert (config.num_tps, config.bg, config.avd, config.image_size) == (6, False, None, (256, 128))
    assert config.generator.max_features == 64 and config.dense_motion.max_features == 128
    with pytest.raises(ValueError, match=r"common_params: unknown key.*'estimate_jacobian'"):
        config_from_official({**params, "common_params": {"estimate_jacobian": True}}, (256, 256))


def test_lite_256_costs_at_most_an_eighth_of_ted_384_per_frame() -> None:
    ted = flops_per_frame(get_preset("ted-384"), 256, 256)
    lite = flops_per_frame(get_preset("lite-256"), 256, 256)
    # the measurement of the official code: 274 GFLOP per frame at 256x256 with ted-384 widths
    assert ted["total"] == pytest.approx(274e9, rel=0.01)
    assert lite["render"] <= ted["render"] / 8
    assert lite["total"] <= ted["total"] / 8


def test_detector_size_round_trips_and_stays_out_of_files_without_it(tmp_path) -> None:
    config = get_preset("lite-256").replace(image_size=(128, 128), detector_size=[256, 256])
    assert config.detector_size == (256, 256)
    assert config.to_dict()["detector_size"] == [256, 256]
    config.save(tmp_path / "config.json")
    assert TPSConfig.load(tmp_path / "config.json") == config
    assert "detector_size" not in get_preset("lite-256").to_dict()  # official-style files unchanged
