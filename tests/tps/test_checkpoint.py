"""Official checkpoints: the ted-384 key manifest, strict loading, refusing code pickles, and
the converter command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tps import convert
from tps.checkpoint import load_official_checkpoint
from tps.config import get_preset
from tps.model import TPSMotionModel


class NotATensor:  # unpickling this needs code: torch.load(weights_only=True) must refuse it
    def __init__(self) -> None:
        self.payload = [1, 2, 3]


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> tuple[Path, TPSMotionModel]:
    torch.manual_seed(0)
    model = TPSMotionModel(get_preset("tiny-64")).eval()
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pth.tar"
    data = {name: net.state_dict() for name, net in model.networks().items()}
    data.update(epoch=7, optimizer_generator={"state": {}, "param_groups": []})
    torch.save(data, path)
    return path, model


def _save(path: Path, data: dict) -> Path:
    torch.save(data, path)
    return path


def _official_dict(model: TPSMotionModel) -> dict:
    return {name: dict(net.state_dict()) for name, net in model.networks().items()}


def test_ted_384_has_exactly_the_official_keys_and_shapes(shared_data: Path) -> None:
    manifest_path = shared_data / "tpsmm_reference" / "manifest_ted384.json"
    if not manifest_path.is_file():
        pytest.skip(f"{manifest_path} is absent")
    manifest = json.loads(manifest_path.read_text())["modules"]
    with torch.device("meta"):  # shapes only: no 350 MB of weights to initialise
        model = TPSMotionModel(get_preset("ted-384"))
    assert set(model.networks()) == set(manifest)
    for name, net in model.networks().items():
        ours = {k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in net.state_dict().items()}
        official = {e["key"]: (e["shape"], e["dtype"]) for e in manifest[name]["state_dict"]}
        assert ours == official, name
        assert sum(p.numel() for p in net.parameters()) == manifest[name]["num_parameters"], name


def test_loads_and_ignores_optimizer_and_epoch(tiny_checkpoint) -> None:
    path, model = tiny_checkpoint
    loaded = load_official_checkpoint(path, "tiny-64")
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(loaded.detect(image), model.detect(image), atol=0, rtol=0)
        torch.testing.assert_close(loaded(image, model.detect(image))["prediction"],
                                   model(image, model.detect(image))["prediction"], atol=0, rtol=0)


def test_optional_networks_follow_the_checkpoint(tiny_checkpoint, tmp_path) -> None:
    _, model = tiny_checkpoint
    data = _official_dict(model)
    del data["bg_predictor"], data["avd_network"]
    loaded = load_official_checkpoint(_save(tmp_path / "a.pth.tar", data), "tiny-64")
    assert loaded.bg_predictor is None and loaded.avd_network is None
    assert not loaded.config.bg and loaded.config.avd is None
    # an AVD network the config lacks is added, its sizes read from the weights
    full = load_official_checkpoint(tiny_checkpoint[0], get_preset("tiny-64").replace(avd=None, bg=False))
    assert full.config.avd == get_preset("tiny-64").avd and full.bg_predictor is not None


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["dense_motion_network"].pop("maps.bias"), r"\[dense_motion_network\].*missing keys \[maps.bias\]"),
        (lambda d: d["kp_detector"].update({"fg_encoder.extra": torch.zeros(1)}),
         r"\[kp_detector\].*unexpected keys \[fg_encoder.extra\]"),
        (lambda d: d["inpainting_network"].update({"final.weight": torch.zeros(3, 9, 7, 7)}),
         r"\[inpainting_network\].*final.weight: file has \(3, 9, 7, 7\), model expects \(3, 8, 7, 7\)"),
        (lambda d: d.pop("inpainting_network"), r"missing networks \['inpainting_network'\]"),
        (lambda d: d.update({"generator": {}}), r"unexpected top-level entries \['generator'\]"),
    ],
)
def test_strict_errors_name_network_key_and_shapes(tiny_checkpoint, tmp_path, edit, message) -> None:
    data = _official_dict(tiny_checkpoint[1])
    edit(data)
    with pytest.raises(ValueError, match=message):
        load_official_checkpoint(_save(tmp_path / "bad.pth.tar", data), "tiny-64")


def test_pickles_that_need_code_are_refused(tmp_path) -> None:
    path = _save(tmp_path / "evil.pth.tar", {"kp_detector": NotATensor()})
    with pytest.raises(ValueError, match=r"evil.pth.tar cannot be loaded with torch.load\(weights_only=True\)"):
        load_official_checkpoint(path, "tiny-64")
    (tmp_path / "junk.pth.tar").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth.tar"):
        load_official_checkpoint(tmp_path / "junk.pth.tar", "tiny-64")
    with pytest.raises(FileNotFoundError, match="missing.pth.tar"):
        load_official_checkpoint(tmp_path / "missing.pth.tar", "tiny-64")


def test_convert_command_with_a_preset(tiny_checkpoint, tmp_path, capsys) -> None:
    path, model = tiny_checkpoint
    out = tmp_path / "converted"
    assert convert.main([str(path), "--config", "tiny-64", "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    loaded = TPSMotionModel.from_pretrained(out)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert convert.main([str(path), "--config", "tiny-64", "--out", str(out)]) == 1
    assert "--force" in capsys.readouterr().err
    assert convert.main([str(path), "--config", "ted-999", "--out", str(tmp_path / "x")]) == 1
    assert "neither a preset" in capsys.readouterr().err
    assert convert.main([str(path), "--config", "ted-384", "--out", str(tmp_path / "y")]) == 1
    assert "wrong shapes" in capsys.readouterr().err


def test_convert_the_reference_checkpoint_reproduces_its_outputs(shared_data: Path, tmp_path) -> None:
    from safetensors.torch import load_file

    ref = shared_data / "tpsmm_reference"
    if not (ref / "checkpoint.pth.tar").is_file():
        pytest.skip(f"{ref} lacks the reference checkpoint")
    out = tmp_path / "ref"
    code = convert.main([str(ref / "checkpoint.pth.tar"), "--config", str(ref / "config.json"), "--out", str(out)])
    assert code == 0
    model = TPSMotionModel.from_pretrained(out)
    assert model.config.image_size == (128, 128) and model.config.bg and model.avd_network is None
    inputs, expected = load_file(str(ref / "inputs.safetensors")), load_file(str(ref / "outputs.safetensors"))
    with torch.no_grad():
        prediction = model(inputs["source"], inputs["kp_driving"], inputs["kp_source"])["prediction"]
        kp = model.detect(inputs["source"])
    torch.testing.assert_close(prediction, expected["nobg.inp.prediction"], atol=9e-5, rtol=0)
    torch.testing.assert_close(kp, expected["kp_detector.source.fg_kp"], atol=1e-5, rtol=0)


def test_convert_reads_an_official_yaml(tiny_checkpoint, tmp_path) -> None:
    path, _ = tiny_checkpoint
    yaml_text = """
dataset_params:
  frame_shape: [64, 64, 3]
model_params:
  common_params: {num_tps: 10, num_channels: 3, bg: True, multi_mask: True}
  generator_params: {block_expansion: 8, max_features: 32, num_down_blocks: 3}
  dense_motion_params: {block_expansion: 8, max_features: 32, num_blocks: 3, scale_factor: 0.25}
  avd_network_params: {id_bottle_size: 16, pose_bottle_size: 16}
"""
    (tmp_path / "tiny.yaml").write_text(yaml_text)
    config = convert.resolve_config(str(tmp_path / "tiny.yaml"))
    assert config == get_preset("tiny-64").replace(detector_width=64)
    # the official yaml cannot express the tiny detector width: loading must fail, naming the shapes
    shapes = r"fg_encoder.conv1.weight: file has \(16, 3, 7, 7\), model expects \(64, 3, 7, 7\)"
    with pytest.raises(ValueError, match=shapes):
        convert.convert(path, config, tmp_path / "out")
    assert convert.resolve_config("tiny-64", (128, 96)).image_size == (128, 96)
