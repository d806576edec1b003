"""The networks on the tiny preset: shapes, contracts, broadcasting, identity motion, errors,
save/load. No data needed."""

from __future__ import annotations

import json

import pytest
import torch

from tps.avd import AVDNetwork
from tps.blocks import AntiAliasInterpolation2d, Hourglass, ImagePyramid, UpBlock2d
from tps.config import get_preset
from tps.model import TPSMotionModel
from tps.resnet import resnet18
from tps.transform import make_coordinate_grid


@pytest.fixture(scope="module")
def model() -> TPSMotionModel:
    torch.manual_seed(0)
    return TPSMotionModel(get_preset("tiny-64")).eval()


def _image(b: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _kp(b: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(b, 50, 2, generator=torch.Generator().manual_seed(seed)) * 1.6 - 0.8


def test_resnet18_matches_torchvision_parameter_count_and_names() -> None:
    net = resnet18(num_classes=1000)
    assert sum(p.numel() for p in net.parameters()) == 11_689_512  # torchvision's resnet18
    keys = net.state_dict().keys()
    assert {"conv1.weight", "bn1.running_mean", "layer2.0.downsample.0.weight", "layer4.1.bn2.bias", "fc.bias"} <= keys


@pytest.mark.parametrize("scale, size", [(0.5, 5), (0.25, 13), (0.125, 29)])
def test_anti_alias_kernel(scale: float, size: int) -> None:
    down = AntiAliasInterpolation2d(3, scale)
    assert down.weight.shape == (3, 1, size, size)
    torch.testing.assert_close(down.weight.sum(dim=(1, 2, 3)), torch.ones(3))
    out = down(torch.ones(1, 3, 64, 96))
    assert out.shape == (1, 3, int(64 * scale), int(96 * scale))
    assert out[0, 0, 0, 0] < 0.9 < out[0, 0, out.shape[2] // 2, out.shape[3] // 2]  # zero padding darkens edges


def test_image_pyramid_keys_and_sizes() -> None:
    pyramid = ImagePyramid([1, 0.5, 0.25, 0.125], 3)
    out = pyramid(_image(2, 64, 32))
    assert list(out) == ["prediction_1", "prediction_0.5", "prediction_0.25", "prediction_0.125"]
    assert [tuple(v.shape[-2:]) for v in out.values()] == [(64, 32), (32, 16), (16, 8), (8, 4)]
    assert list(pyramid.state_dict()) == [f"downs.{i}.weight" for i in (1, 2, 3)]


def test_up_block_subpixel_flag_defaults_off() -> None:
    block = UpBlock2d(4, 2)
    assert block.subpixel is False
    assert block(torch.rand(1, 4, 5, 7)).shape == (1, 2, 10, 14)


def test_hourglass_rejects_sizes_it_cannot_take() -> None:
    hourglass = Hourglass(8, 4, num_blocks=3, max_features=32)
    outs = hourglass(torch.rand(1, 4, 16, 24))
    assert [o.shape[1] for o in outs] == hourglass.out_channels[1:] and outs[-1].shape[1] == 12
    with pytest.raises(ValueError, match=r"12x24 must be a multiple of 8"):
        hourglass(torch.rand(1, 4, 12, 24))


def test_detector_and_background_predictor(model: TPSMotionModel) -> None:
    image = _image(2, 64, 64)
    kp = model.detect(image)
    assert kp.shape == (2, 50, 2) and kp.abs().max() < 1
    assert model.kp_detector(image)["fg_kp"].shape == (2, 50, 2)
    bg = model.bg_predictor(image, _image(2, 64, 64, 3))
    identity = torch.eye(3).expand(2, 3, 3)
    torch.testing.assert_close(bg, identity)  # fc starts at zero weight, identity bias
    with pytest.raises(ValueError, match="differ"):
        model.bg_predictor(image, _image(1, 64, 64))


def test_dense_motion_shapes_on_a_non_square_image(model: TPSMotionModel) -> None:
    with torch.no_grad():
        out = model.dense_motion_network(_image(2, 64, 128), _kp(2, 1), _kp(2, 2))
    assert out["deformed_source"].shape == (2, 11, 3, 16, 32)
    assert out["contribution_maps"].shape == (2, 11, 16, 32)
    assert out["deformation"].shape == (2, 16, 32, 2)
    sizes = [(8, 16), (16, 32), (32, 64), (64, 128)]
    assert [tuple(o.shape) for o in out["occlusion_map"]] == [(2, 1, *s) for s in sizes]
    torch.testing.assert_close(out["contribution_maps"].sum(1), torch.ones(2, 16, 32))
    with torch.no_grad():
        prediction = model(_image(1, 64, 128), _kp(2, 3))["prediction"]
    assert prediction.shape == (2, 3, 64, 128)


def test_dense_motion_bad_size_names_size_and_multiple(model: TPSMotionModel) -> None:
    # tiny-64: 3 hourglass blocks at scale 0.25 -> multiples of 2**3 / 0.25 = 32
    with pytest.raises(ValueError, match=r"48x64 \(HxW\).*multiples of 32"):
        model.dense_motion_network(_image(1, 48, 64), _kp(1), _kp(1))
    with pytest.raises(ValueError, match=r"source size 96x80 \(HxW\).*multiples of 32"):
        model(_image(1, 96, 80), _kp(1), _kp(1))


def test_equal_keypoints_give_the_identity_background_and_zero_heatmaps(model: TPSMotionModel) -> None:
    dmn = model.dense_motion_network
    kp = _kp(1)
    grid = make_coordinate_grid(16, 16)
    heat = dmn.heatmaps(kp, kp, 16, 16)
    assert heat.shape == (1, 51, 16, 16) and heat.abs().max() == 0
    for bg_param in (None, torch.eye(3)[None]):
        transforms = dmn.transformations(kp, kp, 16, 16, bg_param)
        torch.testing.assert_close(transforms[0, 0], grid, atol=1e-6, rtol=0)
    # a network whose contribution maps favour the background warps by the identity
    with torch.no_grad():
        saved = dmn.maps.weight.clone(), dmn.maps.bias.clone()
        dmn.maps.weight.zero_()
        dmn.maps.bias.copy_(torch.tensor([30.0] + [0.0] * 10))
        try:
            out = dmn(_image(1, 64, 64), kp, kp)
        finally:
            dmn.maps.weight.copy_(saved[0])
            dmn.maps.bias.copy_(saved[1])
    torch.testing.assert_close(out["deformation"][0], grid, atol=1e-5, rtol=0)


def test_dense_motion_accepts_dicts_and_broadcasts_a_batch_one_source(model: TPSMotionModel) -> None:
    dmn = model.dense_motion_network
    source, kp_s, kp_d = _image(1, 64, 64), _kp(1, 5), _kp(3, 6)
    with torch.no_grad():
        broadcast = dmn(source, kp_d, kp_s)
        expanded = dmn(source.expand(3, -1, -1, -1), {"fg_kp": kp_d}, {"fg_kp": kp_s.expand(3, -1, -1)})
        pre = dmn(source, kp_d, kp_s, source_down=dmn.downsample_source(source),
                  source_gaussians=dmn.kp_gaussians(kp_s, 16, 16))
    for key in ("deformation", "contribution_maps", "deformed_source"):
        torch.testing.assert_close(broadcast[key], expanded[key], atol=1e-6, rtol=0)
        torch.testing.assert_close(pre[key], expanded[key], atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match=r"kp_source must be \[B, 50, 2\]"):
        dmn(source, kp_d, kp_s[:, :45])
    with pytest.raises(ValueError, match=r"bg_param must be \[3, 3, 3\]"):
        dmn(source, kp_d, kp_s, bg_param=torch.eye(3)[None])


def test_dropout_flag_drops_whole_channels(model: TPSMotionModel) -> None:
    with torch.no_grad():
        out = model.dense_motion_network(_image(2, 64, 64), _kp(2, 1), _kp(2, 2), dropout_flag=True, dropout_p=0.5,
                                         generator=torch.Generator().manual_seed(3))
    per_channel = out["contribution_maps"].amax(dim=(2, 3))
    assert (per_channel[:, 0] > 0).all() and (per_channel == 0).any()


def test_inpainting_forward_equals_decode_of_encode(model: TPSMotionModel) -> None:
    net = model.inpainting_network
    source = _image(1, 64, 64)
    with torch.no_grad():
        dm = model.dense_motion_network(source, _kp(2, 1), _kp(1, 2))
        maps = net.encode(source)
        assert [tuple(m.shape) for m in maps] == [(1, 8, 64, 64), (1, 16, 32, 32), (1, 32, 16, 16), (1, 32, 8, 8)]
        decoded = net.decode(source, maps, dm)
        full = net(source.expand(2, -1, -1, -1), dm)
        targets = net.get_encode(_image(2, 64, 64, 9), dm["occlusion_map"])
    torch.testing.assert_close(decoded["prediction"], full["prediction"], atol=1e-6, rtol=0)
    assert full["prediction"].shape == (2, 3, 64, 64) and 0 <= full["prediction"].min() and full["prediction"].max() <= 1
    assert [t.shape for t in targets] == [w.shape for w in reversed(full["warped_encoder_maps"])]
    for key in ("contribution_maps", "deformed_source", "occlusion_map", "deformation"):
        assert full[key] is dm[key]


def test_warp_loss_maps_carry_gradient_only_to_the_flow(model: TPSMotionModel) -> None:
    net = model.inpainting_network
    source = _image(1, 64, 64)
    dm = model.dense_motion_network(source, _kp(1, 1), _kp(1, 2))
    out = net(source, dm)
    params = list(net.parameters())
    loss = sum(m.sum() for m in out["warped_encoder_maps"])
    grads = torch.autograd.grad(loss, params + [dm["deformation"]], allow_unused=True)
    assert all(g is None or g.abs().max() == 0 for g in grads[:-1])
    assert grads[-1] is not None and grads[-1].abs().max() > 0


def test_avd_network_shapes_and_inputs() -> None:
    avd = AVDNetwork(10, 16, 16).eval()
    with torch.no_grad():
        out = avd({"fg_kp": _kp(1)}, _kp(4))
    assert out.shape == (4, 50, 2)
    with pytest.raises(ValueError, match="kp_source batch 2"):
        avd(_kp(2), _kp(4))


def test_model_input_errors_name_the_argument(model: TPSMotionModel) -> None:
    with pytest.raises(ValueError, match=r"source values must be in \[0, 1\].*max 255"):
        model(_image(1, 64, 64) * 255, _kp(1))
    with pytest.raises(ValueError, match=r"source must have 3 channels"):
        model(torch.rand(1, 1, 64, 64), _kp(1))
    with pytest.raises(ValueError, match=r"kp_driving must be \[B, 50, 2\], got shape \(50, 2\)"):
        model(_image(1, 64, 64), _kp(1)[0])
    with pytest.raises(ValueError, match=r"image must be \[B, C, H, W\]"):
        model.detect(torch.rand(3, 64, 64))


def test_save_and_load_round_trip(model: TPSMotionModel, tmp_path) -> None:
    source, kp = _image(1, 64, 64), _kp(1)
    with torch.no_grad():
        before = model(source, kp)["prediction"]
    model.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["image_size"] == [64, 64]
    loaded = TPSMotionModel.from_pretrained(tmp_path / "m")
    assert loaded.config == model.config and loaded.num_parameters() == model.num_parameters()
    assert loaded.avd_network is not None and loaded.bg_predictor is not None
    with torch.no_grad():
        torch.testing.assert_close(loaded(source, kp)["prediction"], before, atol=0, rtol=0)


def test_from_pretrained_is_strict(model: TPSMotionModel, tmp_path) -> None:
    from safetensors.torch import load_file, save_file

    model.save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    state["dense_motion_network.extra.weight"] = torch.zeros(1)
    del state["inpainting_network.final.bias"]
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"missing keys \[inpainting_network.final.bias\].*unexpected keys "
                                         r"\[dense_motion_network.extra.weight\]"):
        TPSMotionModel.from_pretrained(tmp_path)
    (tmp_path / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        TPSMotionModel.from_pretrained(tmp_path)


def test_warp_loss_targets_carry_no_gradient(model: TPSMotionModel) -> None:
    net = model.inpainting_network
    driving = _image(1, 64, 64, 5).requires_grad_(True)
    occlusion = [torch.rand(1, 1, 64 // 2**i, 64 // 2**i, requires_grad=True) for i in (3, 2, 1, 0)]
    targets = net.get_encode(driving, occlusion)
    assert len(targets) == len(occlusion)
    assert all(not t.requires_grad for t in targets)


def test_detector_size_resizes_frames_before_the_detector() -> None:
    """A model with detector_size sees a 64x64 frame as the 128x128 detector input it resizes
    to: the keypoints equal the plain detector's on the upsampled frame, and differ from the
    plain detector's on the 64x64 frame itself (so the resize is not a no-op)."""
    import torch.nn.functional as F

    torch.manual_seed(3)
    plain = TPSMotionModel.from_config("tiny-64").eval()
    sized = TPSMotionModel(plain.config.replace(detector_size=(128, 128))).eval()
    sized.load_state_dict(plain.state_dict())
    frame = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        up = F.interpolate(frame, size=(128, 128), mode="bilinear", align_corners=False)
        assert torch.allclose(sized.detect(frame), plain.detect(up), atol=1e-6)
        assert not torch.allclose(sized.detect(frame), plain.detect(frame), atol=1e-4)
        same = torch.rand(1, 3, 128, 128)
        assert torch.equal(sized.detect(same), plain.detect(same))
