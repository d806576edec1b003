"""Losses of tps.losses and the feature extractors of tps.vgg (tiny models, no data)."""

from __future__ import annotations

import argparse

import pytest
import torch
import torch.nn.functional as F

from tps.config import get_preset
from tps.losses import (
    LossConfig,
    PerceptualPyramidLoss,
    TPSTrainingModel,
    background_loss,
    build_perceptual_loss,
    compute_losses,
    warp_loss,
)
from tps.model import TPSMotionModel
from tps.vgg import IMAGENET_MEAN, IMAGENET_STD, RandomFeatures, VGG19Features, load_vgg19


def _images(b: int = 2, size: int = 64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.avg_pool2d(torch.rand(b, 3, size + 3, size + 3, generator=g), 4, stride=1)


def test_random_features_are_fixed_by_seed_and_multiscale() -> None:
    x = _images()
    a, b, c = RandomFeatures(seed=0), RandomFeatures(seed=0), RandomFeatures(seed=1)
    fa, fb, fc = a(x), b(x), c(x)
    assert [f.shape[1:] for f in fa] == [(3, 64, 64), (16, 64, 64), (32, 32, 32), (64, 16, 16)]
    assert all(torch.equal(u, v) for u, v in zip(fa, fb))
    assert not torch.allclose(fa[1], fc[1])
    assert list(a.state_dict()) == []  # nothing to save or train


def test_perceptual_loss_zero_for_identical_and_grad_flows_to_prediction_only() -> None:
    loss_fn = build_perceptual_loss(LossConfig())
    target = _images(seed=1)
    assert float(loss_fn(target, target)) == 0.0
    prediction = _images(seed=2).requires_grad_(True)
    target.requires_grad_(True)
    value = loss_fn(prediction, target)
    value.backward()
    assert value.item() > 0
    assert prediction.grad is not None and prediction.grad.abs().sum() > 0
    assert target.grad is None


def test_perceptual_weights_count_must_match_extractor() -> None:
    with pytest.raises(ValueError, match="3 weights"):
        build_perceptual_loss(LossConfig(perceptual=(1.0, 1.0, 1.0)))
    loss_fn = build_perceptual_loss(LossConfig(perceptual=(1.0, 0.0, 0.0, 0.0), scales=(1.0,)))
    x, y = _images(seed=3), _images(seed=4)
    assert torch.allclose(loss_fn(x, y), (x - y).abs().mean())  # only the image-level L1 term is on


def test_loss_config_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="percptual"):
        LossConfig.from_dict({"percptual": 10})
    with pytest.raises(ValueError, match="scales"):
        LossConfig(scales=(1.0, 2.0))


def _fake_vgg_state(with_classifier: bool = True) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    state = {k: torch.randn_like(v) * 0.05 for k, v in VGG19Features().state_dict().items()}
    # torchvision's vgg19 file also holds conv5_2..5_4 and the classifier: extra keys are ignored.
    state["features.30.weight"] = torch.zeros(512, 512, 3, 3)
    if with_classifier:
        state["classifier.0.weight"] = torch.zeros(8, 8)
    return state


def test_load_vgg19_torchvision_layout_and_safetensors(tmp_path) -> None:
    from safetensors.torch import save_file

    state = _fake_vgg_state()
    torch.save(state, tmp_path / "vgg19-dcbb9e9d.pth")
    save_file(state, str(tmp_path / "vgg19.safetensors"))
    x = _images(1, 32)
    for name in ("vgg19-dcbb9e9d.pth", "vgg19.safetensors"):
        vgg = load_vgg19(tmp_path / name)
        feats = vgg(x)
        assert [f.shape[1:] for f in feats] == [(64, 32, 32), (128, 16, 16), (256, 8, 8), (512, 4, 4), (512, 2, 2)]
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        relu1_1 = F.relu(F.conv2d((x - mean) / std, state["features.0.weight"], state["features.0.bias"], padding=1))
        assert torch.allclose(feats[0], relu1_1, atol=1e-5)
        assert not any(p.requires_grad for p in vgg.parameters())
    loss_fn = build_perceptual_loss(LossConfig(vgg19_weights=str(tmp_path / "vgg19.safetensors")))
    assert len(loss_fn.weights) == 5


def test_load_vgg19_errors_name_the_problem(tmp_path) -> None:
    state = _fake_vgg_state()
    del state["features.28.weight"]
    torch.save(state, tmp_path / "missing.pth")
    with pytest.raises(ValueError, match="features.28.weight"):
        load_vgg19(tmp_path / "missing.pth")
    state = _fake_vgg_state()
    state["features.2.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match=r"features.2.weight.*\(64, 64, 1, 1\)"):
        load_vgg19(tmp_path / "shape.pth")

    # an object whose unpickling imports arbitrary code: refused by weights_only=True
    torch.save({"features.0.weight": argparse.Namespace(x=1)}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="weights_only"):
        load_vgg19(tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="does not exist"):
        load_vgg19(tmp_path / "absent.pth")


def test_background_loss_is_zero_for_inverse_pairs() -> None:
    a = torch.tensor([[[1.1, 0.1, 0.05], [-0.05, 0.95, 0.02], [0.0, 0.0, 1.0]]])
    assert background_loss(a, torch.linalg.inv(a)) < 1e-6
    assert background_loss(a, a) > 1e-2


def _tiny_model() -> TPSMotionModel:
    torch.manual_seed(0)
    return TPSMotionModel(get_preset("tiny-64").replace(avd=None)).train()


def test_training_model_outputs_and_identity_equivariance() -> None:
    model = _tiny_model()
    source, driving = _images(2, 64, seed=5), _images(2, 64, seed=6)
    out = TPSTrainingModel(model, LossConfig(sigma_affine=0.0, sigma_tps=0.0))(source, driving)
    assert out["prediction"].shape == (2, 3, 64, 64)
    assert out["bg_param"].shape == out["bg_param_reverse"].shape == (2, 3, 3)
    # an identity random TPS reproduces the frame, so the keypoints come back unchanged
    assert (out["kp_back"] - out["kp_driving"]).abs().max() < 1e-4
    losses = compute_losses(out, driving, build_perceptual_loss(LossConfig()), LossConfig())
    assert set(losses) == {"perceptual", "equivariance", "warp", "bg"}
    assert losses["equivariance"] < 1e-3
    out = TPSTrainingModel(model, LossConfig())(source, driving)
    assert (out["kp_back"] - out["kp_driving"]).abs().mean() > 1e-4


def test_terms_switch_off_with_zero_weight() -> None:
    config = LossConfig(equivariance=0.0, warp=0.0, bg=0.0)
    source, driving = _images(1, 64, seed=7), _images(1, 64, seed=8)
    out = TPSTrainingModel(_tiny_model(), config)(source, driving)
    assert out["kp_back"] is None and out["encode_maps"] is None and out["bg_param_reverse"] is None
    assert set(compute_losses(out, driving, build_perceptual_loss(config), config)) == {"perceptual"}


def test_warp_loss_trains_only_the_dense_motion_network() -> None:
    model = _tiny_model()
    training = TPSTrainingModel(model, LossConfig())
    out = training(_images(2, 64, seed=9), _images(2, 64, seed=10))
    warp_loss(out["encode_maps"], out["warped_encoder_maps"]).backward()

    def grad_norm(module: torch.nn.Module) -> float:
        return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)

    assert grad_norm(model.dense_motion_network) > 0
    assert grad_norm(model.inpainting_network) == 0.0


def test_perceptual_module_stays_in_eval_mode() -> None:
    loss_fn = PerceptualPyramidLoss(RandomFeatures(), (1.0,) * 4, (1.0, 0.5))
    loss_fn.train()
    assert not loss_fn.extractor.training
