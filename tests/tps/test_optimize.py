"""tps.optimize and the Renderer's equal-output fast paths, on tiny seeded models.

Each fast path is compared with the reference path within the stated tolerance (1e-5 on frames
in [0, 1], the issue's bound), and each comparison is made non-vacuous: the quantity compared
moves far more than the tolerance when its input changes.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tps.model import TPSMotionModel
from tps.optimize import count_batchnorms, fold_batchnorm, fold_layer, inference_copy
from tps.render import Renderer, official_render

TOLERANCE = 1e-5


def _randomise_norms(module: nn.Module, seed: int) -> None:
    """Running statistics and affine parameters away from the identity, so folding matters."""
    generator = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            m.running_mean.copy_(0.3 * torch.randn(n, generator=generator))
            m.running_var.copy_(0.5 + torch.rand(n, generator=generator))
            with torch.no_grad():
                m.weight.copy_(1 + 0.3 * torch.randn(n, generator=generator))
                m.bias.copy_(0.2 * torch.randn(n, generator=generator))


@pytest.fixture(scope="module")
def model() -> TPSMotionModel:
    torch.manual_seed(0)
    model = TPSMotionModel.from_config("tiny-64").eval()
    _randomise_norms(model, seed=1)
    return model


@pytest.fixture(scope="module")
def source() -> torch.Tensor:
    """A real photo (scikit-image's astronaut) at 64x64, ``[1, 3, 64, 64]``."""
    import torch.nn.functional as F
    from skimage import data

    image = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(image, size=(64, 64), mode="area").clamp(0, 1)


def _driving(kp_source: torch.Tensor, frames: int) -> torch.Tensor:
    """``[T, N, 2]``: the source keypoints plus a smooth seeded sway."""
    phase = torch.rand(1, *kp_source.shape[1:], generator=torch.Generator().manual_seed(0)) * 6.283
    t = torch.linspace(0, 0.75, frames)[:, None, None]
    return (kp_source + 0.06 * torch.sin(6.283 * t + phase) + 0.02).clamp(-1, 1)


@pytest.mark.parametrize("layer", [nn.Conv2d(4, 6, 3, padding=1, bias=False), nn.Conv2d(4, 6, 1, stride=2),
                                   nn.Linear(5, 6)], ids=["conv-no-bias", "conv-bias", "linear"])
def test_fold_layer_equals_layer_then_norm(layer: nn.Module) -> None:
    torch.manual_seed(3)
    norm = nn.BatchNorm2d(6) if isinstance(layer, nn.Conv2d) else nn.BatchNorm1d(6)
    _randomise_norms(norm, seed=4)
    layer.eval(), norm.eval()
    x = torch.randn(3, 4, 8, 8) if isinstance(layer, nn.Conv2d) else torch.randn(3, 5)
    with torch.no_grad():
        expected = norm(layer(x))
        got = fold_layer(layer, norm)(x)
        assert (got - expected).abs().max() <= TOLERANCE
        assert (layer(x) - expected).abs().max() > 100 * TOLERANCE  # the norm is not the identity


def test_inference_copy_of_the_detector_and_avd(model: TPSMotionModel, source: torch.Tensor) -> None:
    before = {k: v.clone() for k, v in model.state_dict().items()}
    detector = inference_copy(model.kp_detector)
    avd = inference_copy(model.avd_network)
    assert count_batchnorms(model.kp_detector) > 0 and count_batchnorms(detector) == 0
    assert count_batchnorms(avd) == 0
    kp = torch.rand(2, 50, 2) * 1.6 - 0.8
    with torch.no_grad():
        assert (detector(source)["fg_kp"] - model.detect(source)).abs().max() <= TOLERANCE
        assert (avd(kp[:1], kp) - model.avd_network(kp[:1], kp)).abs().max() <= TOLERANCE
    # the model given is untouched: same weights and statistics, norms still there
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert count_batchnorms(model.kp_detector) > 0


def test_fold_refuses_a_training_model() -> None:
    torch.manual_seed(0)
    model = TPSMotionModel.from_config("tiny-64").train()
    with pytest.raises(ValueError, match="eval-mode"):
        fold_batchnorm(model.kp_detector)
    with pytest.raises(TypeError, match="nn.Module"):
        fold_batchnorm("detector")
    with pytest.raises(ValueError, match="features"):
        fold_layer(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(4))


# Folding changes the source keypoints by float rounding (~2e-7), which the TPS warp carries into
# the frames: up to 3.2e-5 measured with the bundled weights, hence its own, looser bound.
FOLD_TOLERANCE = 1e-4


@pytest.mark.parametrize("flags, bound", [({"channels_last": True}, TOLERANCE), ({"fold_batchnorm": True}, FOLD_TOLERANCE),
                                          ({"fold_batchnorm": True, "channels_last": True}, FOLD_TOLERANCE)],
                         ids=["channels_last", "fold", "both"])
def test_fast_renderer_equals_the_reference(model: TPSMotionModel, source: torch.Tensor, flags: dict,
                                            bound: float) -> None:
    with torch.no_grad():
        kp_driving = _driving(model.detect(source), frames=5)
    reference = Renderer(model, fold_batchnorm=False, channels_last=False)
    fast = Renderer(model, **flags)
    expected = reference.render(reference.prepare(source), kp_driving, mode="relative", progress=False)
    got = fast.render(fast.prepare(source), kp_driving, mode="relative", progress=False)
    assert (got - expected).abs().max() <= bound
    assert (expected - official_render(model, source, kp_driving, mode="relative")).abs().max() <= TOLERANCE
    assert (got[0] - got[-1]).abs().max() > 100 * TOLERANCE
    assert count_batchnorms(model.kp_detector) > 0  # the renderer folded a copy only


def test_folding_is_opt_in(model: TPSMotionModel, source: torch.Tensor) -> None:
    assert Renderer(model).fold_batchnorm is False  # not equal within 1e-5 (see FOLD_TOLERANCE)
    folded = Renderer(model, fold_batchnorm=True).prepare(source).kp_source
    assert (folded - Renderer(model).prepare(source).kp_source).abs().max() <= TOLERANCE
