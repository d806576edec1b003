"""tps.render: prepared, batched rendering equals the official frame-by-frame path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tps.blocks import UpBlock2d
from tps.config import get_preset
from tps.model import TPSMotionModel
from tps.render import PreparedSource, Renderer, official_render, relative_keypoints

TOLERANCE = 1e-5  # the bound between the prepared path and the official one


def photo(height: int, width: int) -> torch.Tensor:
    """A real photo (scikit-image's astronaut, shipped in the wheel) as ``[1, 3, H, W]``."""
    from skimage import data

    image = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(image, size=(height, width), mode="area").clamp(0, 1)


def sway(kp_source: torch.Tensor, frames: int, seed: int = 0) -> torch.Tensor:
    """``[T, N, 2]``: the source keypoints plus a smooth seeded motion, as a driving clip."""
    generator = torch.Generator().manual_seed(seed)
    phase = torch.rand(1, *kp_source.shape[1:], generator=generator) * 6.283
    t = torch.linspace(0, 0.75, frames)[:, None, None]
    return (kp_source + 0.06 * torch.sin(6.283 * t + phase) + 0.02).clamp(-1, 1)


@pytest.fixture(scope="module")
def model() -> TPSMotionModel:
    torch.manual_seed(0)
    model = TPSMotionModel.from_config("tiny-64").eval()  # has an AVD network
    # An untrained AVD network's output hardly depends on the driving pose; narrower running
    # statistics make it respond, so the avd comparison below is not vacuous.
    for module in model.avd_network.pose_encoder.modules():
        if isinstance(module, torch.nn.BatchNorm1d):
            module.running_var.fill_(0.1)
    return model


@pytest.fixture(scope="module")
def source() -> torch.Tensor:
    return photo(64, 64)


@pytest.fixture(scope="module")
def kp_driving(model: TPSMotionModel, source: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return sway(model.detect(source), frames=7)


@pytest.mark.parametrize("mode", ["standard", "relative", "avd"])
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "plain"])
@pytest.mark.parametrize("compute_batch", [None, 1, 3], ids=["auto", "per-frame", "batched"])
def test_equals_official_frame_by_frame(
    model: TPSMotionModel, source: torch.Tensor, kp_driving: torch.Tensor, mode: str, fast: bool, compute_batch: int | None
) -> None:
    renderer = Renderer(model, fast=fast, compute_batch=compute_batch)
    prepared = renderer.prepare(source)
    got = renderer.render(prepared, kp_driving, mode=mode, batch_size=3, progress=False)
    expected = official_render(model, source, kp_driving, mode=mode)
    assert got.shape == (7, 3, 64, 64)
    assert (got - expected).abs().max() <= TOLERANCE
    # the motion reaches the output far above the tolerance, so the comparison is not vacuous
    assert (got[0] - got[-1]).abs().max() > 10 * TOLERANCE


@pytest.mark.parametrize("options, bound", [({"channels_last": True}, TOLERANCE), ({"bfloat16": True}, 2e-2)], ids=["channels_last", "bfloat16"])
def test_speed_options_stay_close(
    model: TPSMotionModel, source: torch.Tensor, kp_driving: torch.Tensor, options: dict, bound: float
) -> None:
    renderer = Renderer(model, **options)
    got = renderer.render(renderer.prepare(source), kp_driving, mode="relative", batch_size=4, progress=False)
    expected = official_render(model, source, kp_driving, mode="relative")
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert (got - expected).abs().max() <= bound


def test_non_square_and_explicit_initial_frame(model: TPSMotionModel) -> None:
    source = photo(64, 96)
    with torch.no_grad():
        kp_source = model.detect(source)
    kp_driving = sway(kp_source, frames=4, seed=3)
    initial = sway(kp_source, frames=2, seed=5)[1]
    renderer = Renderer(model)
    got = renderer.render(renderer.prepare(source), kp_driving, "relative", kp_driving_initial=initial, progress=False)
    expected = official_render(model, source, kp_driving, "relative", kp_driving_initial=initial[None])
    assert got.shape == (4, 3, 64, 96)
    assert (got - expected).abs().max() <= TOLERANCE


def test_iter_render_chunks_concatenate_to_render(model: TPSMotionModel, source: torch.Tensor, kp_driving: torch.Tensor) -> None:
    renderer = Renderer(model)
    prepared = renderer.prepare(source)
    chunks = list(renderer.iter_render(prepared, kp_driving, mode="relative", batch_size=3, progress=False))
    assert [len(c) for c in chunks] == [3, 3, 1]
    whole = renderer.render(prepared, kp_driving, mode="relative", batch_size=7, progress=False)
    assert (torch.cat(chunks) - whole).abs().max() <= TOLERANCE
    assert 0 <= float(whole.min()) and float(whole.max()) <= 1


def test_prepare_holds_the_source_work(model: TPSMotionModel, source: torch.Tensor) -> None:
    prepared = Renderer(model).prepare(source)
    assert isinstance(prepared, PreparedSource)
    assert prepared.image_size == (64, 64)
    with torch.no_grad():
        assert torch.equal(prepared.kp_source, model.detect(source))
        encoded = model.inpainting_network.encode(source)
        dmn = model.dense_motion_network
        assert torch.equal(prepared.source_down, dmn.downsample_source(source))
    assert [m.shape for m in prepared.encoder_maps] == [m.shape for m in encoded]
    assert all(torch.equal(a, b) for a, b in zip(prepared.encoder_maps, encoded))
    assert prepared.source_gaussians.shape == (1, 50, 16, 16)


def test_given_source_keypoints_are_used(model: TPSMotionModel, source: torch.Tensor) -> None:
    kp = torch.rand(1, 50, 2) * 1.6 - 0.8
    prepared = Renderer(model).prepare(source, kp_source=kp[0])
    assert torch.equal(prepared.kp_source, kp)


def test_relative_keypoints_formula() -> None:
    generator = torch.Generator().manual_seed(2)
    kp_initial = torch.rand(1, 50, 2, generator=generator) * 1.6 - 0.8
    kp_source = 0.5 * kp_initial + 0.1  # half the size: hull area ratio 1/4, motion scale 1/2
    motion = 0.05 * torch.randn(3, 50, 2, generator=generator)
    got = relative_keypoints(kp_source, kp_initial + motion, kp_initial)
    assert torch.allclose(got, kp_source + 0.5 * motion, atol=1e-6)


def test_relative_mode_starts_at_the_source_keypoints(model: TPSMotionModel, source: torch.Tensor, kp_driving: torch.Tensor) -> None:
    renderer = Renderer(model)
    prepared = renderer.prepare(source)
    kp = renderer.driving_keypoints(prepared, kp_driving, "relative")
    assert torch.allclose(kp[0], prepared.kp_source[0], atol=1e-6)
    assert not torch.allclose(kp[-1], prepared.kp_source[0], atol=1e-3)


def test_fast_flags_are_restored(model: TPSMotionModel, source: torch.Tensor, kp_driving: torch.Tensor) -> None:
    renderer = Renderer(model, fast=True)
    renderer.render(renderer.prepare(source), kp_driving[:2], progress=False)
    assert not any(m.subpixel for m in model.modules() if isinstance(m, UpBlock2d))


@pytest.mark.parametrize("fast, shift_add, calls", [(True, True, 4), (True, False, 0), (False, True, 0)],
                         ids=["default", "shift-add-off", "plain"])
def test_occlusion_heads_as_shifted_sums(model: TPSMotionModel, source: torch.Tensor, kp_driving: torch.Tensor,
                                         monkeypatch, fast: bool, shift_add: bool, calls: int) -> None:
    """The fast path computes every single-output occlusion head by `shift_add_conv` (4 heads in
    tiny-64, one frame per call here), and the frames equal the path without it within 1e-5."""
    import tps.render as render_module

    used = []
    real = render_module.shift_add_conv
    monkeypatch.setattr(render_module, "shift_add_conv", lambda x, conv: used.append(conv) or real(x, conv))
    renderer = Renderer(model, fast=fast, shift_add=shift_add, compute_batch=1)
    got = renderer.render(renderer.prepare(source), kp_driving[:1], progress=False)
    assert len(used) == calls
    assert all(conv.out_channels == 1 and conv.kernel_size == (7, 7) for conv in used)
    reference = Renderer(model, fast=False)
    expected = reference.render(reference.prepare(source), kp_driving[:1], progress=False)
    assert (got - expected).abs().max() <= TOLERANCE


def test_progress_bar_can_be_switched_off(model: TPSMotionModel, source: torch.Tensor, kp_driving: torch.Tensor, capsys) -> None:
    renderer = Renderer(model)
    prepared = renderer.prepare(source)
    renderer.render(prepared, kp_driving[:2], progress=False)
    assert "rendering" not in capsys.readouterr().err
    renderer.render(prepared, kp_driving[:2], progress=True)
    assert "rendering" in capsys.readouterr().err


def test_avd_needs_an_avd_network(source: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = TPSMotionModel(get_preset("tiny-64").replace(avd=None)).eval()
    renderer = Renderer(model)
    prepared = renderer.prepare(source)
    kp = prepared.kp_source.repeat(2, 1, 1)
    with pytest.raises(ValueError, match="mode='avd' needs an AVD network"):
        renderer.render(prepared, kp, mode="avd", progress=False)
    assert renderer.render(prepared, kp, mode="standard", progress=False).shape == (2, 3, 64, 64)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"kp_driving": torch.zeros(4, 49, 2)}, ValueError, r"kp_driving must be \[T, 50, 2\], got shape \(4, 49, 2\)"),
        ({"kp_driving": torch.zeros(50, 2)}, ValueError, r"kp_driving must be \[T, 50, 2\], got shape \(50, 2\)"),
        ({"kp_driving": torch.zeros(0, 50, 2)}, ValueError, "kp_driving holds no frame"),
        ({"kp_driving": torch.full((2, 50, 2), float("nan"))}, ValueError, "kp_driving holds NaN"),
        ({"kp_driving": torch.full((2, 50, 2), 200.0)}, ValueError, "kp_driving must be normalised.*magnitude 200"),
        ({"kp_driving": [[0.0, 0.0]]}, TypeError, "kp_driving must be a torch.Tensor or numpy array, got list"),
        ({"mode": "absolute"}, ValueError, "mode must be one of .*'absolute'"),
        ({"batch_size": 0}, ValueError, "batch_size must be an int >= 1, got 0"),
        ({"batch_size": 2.5}, ValueError, "batch_size must be an int >= 1, got 2.5"),
        ({"batch_size": True}, ValueError, "batch_size must be an int >= 1, got True"),
        ({"kp_driving_initial": torch.zeros(50, 2)}, ValueError, "kp_driving_initial is only used by mode='relative'"),
        ({"mode": "relative", "kp_driving_initial": torch.zeros(2, 50, 2)}, ValueError, r"kp_driving_initial must be .*\(2, 50, 2\)"),
        ({"mode": "relative", "kp_driving_initial": torch.zeros(50, 2)}, ValueError, "kp_driving_initial: its keypoints span no area"),
    ],
)
def test_render_rejects_bad_input(model: TPSMotionModel, source: torch.Tensor, kwargs: dict, error: type, message: str) -> None:
    renderer = Renderer(model)
    prepared = renderer.prepare(source)
    args = {"kp_driving": prepared.kp_source.repeat(2, 1, 1), **kwargs}
    with pytest.raises(error, match=message):
        renderer.render(prepared, progress=False, **args)


def test_numpy_keypoints_are_accepted(model: TPSMotionModel, source: torch.Tensor, kp_driving: torch.Tensor) -> None:
    renderer = Renderer(model)
    prepared = renderer.prepare(source)
    from_numpy = renderer.render(prepared, kp_driving[:2].numpy().astype(np.float64), progress=False)
    assert (from_numpy - renderer.render(prepared, kp_driving[:2], progress=False)).abs().max() <= TOLERANCE


@pytest.mark.parametrize(
    "image, error, message",
    [
        (torch.rand(2, 3, 64, 64), ValueError, r"source must hold one image \[1, 3, H, W\], got shape \(2, 3, 64, 64\)"),
        (torch.rand(1, 3, 64, 64) * 255, ValueError, "source values must be in \\[0, 1\\]"),
        (torch.rand(1, 3, 48, 64), ValueError, "source size 48x64"),
        (torch.rand(1, 1, 64, 64), ValueError, "source must have 3 channels"),
        (torch.rand(3, 64, 64), ValueError, r"source must be \[B, C, H, W\]"),
    ],
)
def test_prepare_rejects_bad_source(model: TPSMotionModel, image: torch.Tensor, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        Renderer(model).prepare(image)


def test_renderer_rejects_other_objects(model: TPSMotionModel, source: torch.Tensor) -> None:
    with pytest.raises(TypeError, match="model must be a tps.TPSMotionModel, got Linear"):
        Renderer(torch.nn.Linear(2, 2))
    renderer = Renderer(model)
    with pytest.raises(TypeError, match="prepared must be a PreparedSource"):
        renderer.render(source, torch.zeros(1, 50, 2), progress=False)


def test_benchmark_quick_smoke_run() -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "tps_cpu.py"
    result = subprocess.run([sys.executable, str(script), "--quick", "--threads", "1"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| tiny-64 | 64 |")]
    assert len(rows) == 1 + 4, result.stdout  # the main table and the four options
    cells = rows[0].split("|")
    assert float(cells[7]) <= TOLERANCE and float(cells[10]) <= TOLERANCE  # prepared, batched


def test_default_compute_batch_depends_on_device_and_model_size() -> None:
    """CPU: one frame per call above 128x128 (faster there), the whole chunk at 128 and below."""
    small = Renderer(TPSMotionModel(get_preset("lite-256").replace(image_size=(128, 128))))
    large = Renderer(TPSMotionModel(get_preset("lite-256")))
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert small.default_compute_batch(cpu, 8) == 8
    assert large.default_compute_batch(cpu, 8) == 1
    assert large.default_compute_batch(cuda, 8) == 8


@pytest.mark.parametrize("capabilities, expected", [
    ({"avx512_bf16": True, "amx_bf16": False}, True),
    ({"avx512_bf16": False, "amx_bf16": True}, True),
    ({"avx512_bf16": False, "amx_bf16": False}, False),  # emulated bfloat16 is slower than float32
    ({}, False),
])
def test_native_bfloat16_asks_the_cpu(monkeypatch: pytest.MonkeyPatch, capabilities: dict, expected: bool) -> None:
    from tps.render import native_bfloat16

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: capabilities)
    assert native_bfloat16("cpu") is expected
    assert native_bfloat16(torch.device("meta")) is False


@pytest.mark.parametrize("has_units", [True, False], ids=["bf16-cpu", "plain-cpu"])
def test_bfloat16_auto_follows_the_hardware(monkeypatch: pytest.MonkeyPatch, model: TPSMotionModel,
                                            source: torch.Tensor, kp_driving: torch.Tensor, has_units: bool) -> None:
    """``bfloat16="auto"`` renders exactly as ``True`` on a CPU with bfloat16 units and exactly as
    ``False`` without; the two differ (so which one ran is visible in the frames)."""
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": has_units, "amx_bf16": False})
    frames = {}
    for option in ("auto", True, False):
        renderer = Renderer(model, bfloat16=option)
        frames[option] = renderer.render(renderer.prepare(source), kp_driving, batch_size=4, progress=False)
    assert Renderer(model, bfloat16="auto").bfloat16_for(torch.device("cpu")) is has_units
    assert torch.equal(frames["auto"], frames[has_units])
    assert (frames[True] - frames[False]).abs().max() > 0


@pytest.mark.parametrize("value", ["yes", "bf16", 2, None])
def test_bfloat16_rejects_other_values(model: TPSMotionModel, value: object) -> None:
    with pytest.raises(ValueError, match=r"bfloat16 must be True, False or 'auto'"):
        Renderer(model, bfloat16=value)
