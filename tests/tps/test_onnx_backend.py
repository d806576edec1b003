"""tps.onnx_backend: the optional onnxruntime renderer equals the torch renderer within its bound.

The equality tests skip with a reason where onnxruntime (or onnx, which the exporter needs) is
not installed; the tests of the missing-package error and of the lazy import run everywhere.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from tps.model import TPSMotionModel
from tps.render import Renderer

# backend="onnxruntime" (the decoder in onnxruntime, the flow in torch): the equal-output bound
# of the torch renderer's own fast paths (tests/tps/test_render.py).
DECODER_TOLERANCE = 1e-5
# onnx_motion=True also rounds the flow differently, which the warps amplify: an output-changing
# option (measured 5e-5 with the bundled weights, 6e-6 with this tiny model; docs/tps.md).
MOTION_TOLERANCE = 1e-4
REASON = 'the optional onnxruntime backend needs onnxruntime and onnx (pip install onnxruntime onnx "protobuf<5")'


@pytest.fixture(scope="module")
def runtime() -> None:
    pytest.importorskip("onnxruntime", reason=REASON)
    pytest.importorskip("onnx", reason=REASON)


@pytest.fixture(scope="module")
def model() -> TPSMotionModel:
    torch.manual_seed(0)
    return TPSMotionModel.from_config("tiny-64").eval()


def photo(height: int, width: int) -> torch.Tensor:
    from skimage import data

    image = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(image, size=(height, width), mode="area").clamp(0, 1)


def driving(model: TPSMotionModel, source: torch.Tensor, frames: int = 5) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        kp_source = model.detect(source)
    motion = 0.06 * torch.randn(frames, *kp_source.shape[1:], generator=generator)
    return (kp_source + motion).clamp(-1, 1)


def render_maps(renderer: Renderer, source: torch.Tensor, kp: torch.Tensor, batch_size: int = 3) -> dict:
    chunks = list(renderer.iter_render_maps(renderer.prepare(source), kp, batch_size=batch_size, progress=False))
    return {name: torch.cat([getattr(c, name) for c in chunks]) for name in ("frames", "generated", "deformation", "occlusion")}


@pytest.mark.parametrize(
    ("size", "fast", "compute_batch"),
    [((64, 64), True, None), ((64, 96), False, 1), ((64, 64), True, 2)],
    ids=["fast-auto", "plain-per-frame-64x96", "fast-batched"],
)
def test_decoder_in_onnxruntime_equals_torch(runtime, model, tmp_path, size, fast, compute_batch) -> None:
    source = photo(*size)
    kp = driving(model, source)
    reference = render_maps(Renderer(model, fast=fast), source, kp)
    ours = render_maps(
        Renderer(model, fast=fast, compute_batch=compute_batch, backend="onnxruntime", onnx_cache_dir=tmp_path),
        source, kp,
    )
    assert torch.equal(ours["deformation"], reference["deformation"])  # the flow stays in torch
    assert torch.equal(ours["occlusion"], reference["occlusion"])
    for name in ("frames", "generated"):
        assert ours[name].shape == reference[name].shape
        assert float((ours[name] - reference[name]).abs().max()) <= DECODER_TOLERANCE, name


def test_motion_in_onnxruntime_within_its_tolerance(runtime, model, tmp_path) -> None:
    source = photo(64, 64)
    kp = driving(model, source, frames=4)
    reference = render_maps(Renderer(model), source, kp, batch_size=4)
    renderer = Renderer(model, backend="onnxruntime", onnx_motion=True, onnx_cache_dir=tmp_path)
    ours = render_maps(renderer, source, kp, batch_size=4)
    for name, value in ours.items():
        assert value.shape == reference[name].shape
        assert float((value - reference[name]).abs().max()) <= MOTION_TOLERANCE, name
    # the dynamic batch axis: one frame per call works too (and rounds differently from four
    # per call, by 3e-6 here: another reason this option changes the output)
    renderer.compute_batch = 1
    single = render_maps(renderer, source, kp, batch_size=4)["frames"]
    assert float((single - reference["frames"]).abs().max()) <= MOTION_TOLERANCE


def test_exported_graphs_are_cached_by_weights(runtime, model, tmp_path, monkeypatch) -> None:
    from tps.onnx_backend import OnnxRuntimeBackend

    source = photo(64, 64)
    kp = driving(model, source, frames=2)
    first = Renderer(model, backend="onnxruntime", onnx_cache_dir=tmp_path).render(
        Renderer(model).prepare(source), kp, progress=False
    )
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 1 and files[0].startswith("decode-") and files[0].endswith(".onnx")

    def no_export(*args, **kwargs):
        raise AssertionError("exported again despite the cache")

    monkeypatch.setattr(OnnxRuntimeBackend, "_export", no_export)
    again = Renderer(model, backend="onnxruntime", onnx_cache_dir=tmp_path)
    assert torch.equal(again.render(again.prepare(source), kp, progress=False), first)

    changed = TPSMotionModel.from_config("tiny-64").eval()  # other weights: another key
    with pytest.raises(AssertionError, match="exported again"):
        other = Renderer(changed, backend="onnxruntime", onnx_cache_dir=tmp_path)
        other.render(other.prepare(source), kp, progress=False)


def test_missing_onnxruntime_names_the_package(model, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now fails
    with pytest.raises(ImportError, match=r"'onnxruntime' package.*pip install onnxruntime") as info:
        Renderer(model, backend="onnxruntime")
    assert info.value.name == "onnxruntime"


def test_missing_onnx_names_the_package_at_export(runtime, model, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnx", None)
    renderer = Renderer(model, backend="onnxruntime", onnx_cache_dir=tmp_path)
    source = photo(64, 64)
    with pytest.raises(ImportError, match=r"'onnx' package.*pip install onnxruntime onnx"):
        renderer.render(renderer.prepare(source), driving(model, source, frames=1), progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "tensorrt"}, "backend must be one of"),
        ({"onnx_motion": True}, "onnx_motion is only used by backend='onnxruntime'"),
        ({"backend": "auto", "onnx_motion": True}, "onnx_motion is only used by backend='onnxruntime'"),
        ({"onnx_cache_dir": "/tmp/x"}, "only used by backend='onnxruntime' or 'auto'"),
        ({"backend": "onnxruntime", "bfloat16": True}, "bfloat16 and channels_last must be off"),
        ({"backend": "onnxruntime", "channels_last": True}, "bfloat16 and channels_last must be off"),
    ],
)
def test_rejects_bad_backend_options(model, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        Renderer(model, **kwargs)


def test_auto_picks_onnxruntime_only_where_it_can_run(model, monkeypatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert Renderer(model).backend_for(cpu) == "torch"  # the default
    assert Renderer(model, backend="auto").backend_for(cuda) == "torch"
    assert Renderer(model, backend="auto", bfloat16=True).backend_for(cpu) == "torch"
    assert Renderer(model, backend="auto", channels_last=True).backend_for(cpu) == "torch"
    with monkeypatch.context() as patch:
        patch.setitem(sys.modules, "onnxruntime", None)
        assert Renderer(model, backend="auto").backend_for(cpu) == "torch"  # not installed: no error
    pytest.importorskip("onnxruntime", reason=REASON)
    pytest.importorskip("onnx", reason=REASON)
    assert Renderer(model, backend="auto").backend_for(cpu) == "onnxruntime"
    with pytest.raises(ValueError, match="runs on the CPU"):
        Renderer(model, backend="onnxruntime").backend_for(cuda)


def test_auto_renders_as_onnxruntime(runtime, model, tmp_path) -> None:
    source = photo(64, 64)
    kp = driving(model, source, frames=3)
    auto = Renderer(model, backend="auto", onnx_cache_dir=tmp_path)
    explicit = Renderer(model, backend="onnxruntime", onnx_cache_dir=tmp_path)
    prepared = auto.prepare(source)
    assert torch.equal(auto.render(prepared, kp, progress=False), explicit.render(prepared, kp, progress=False))


def test_importing_tps_does_not_import_onnxruntime() -> None:
    code = (
        "import sys, tps, tps.render\n"
        "tps.Renderer(tps.TPSMotionModel.from_config('tiny-64'))\n"
        "assert 'onnxruntime' not in sys.modules and 'onnx' not in sys.modules, 'imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_benchmark_quick_run_with_onnxruntime(runtime) -> None:
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "tps_cpu.py"
    command = [sys.executable, str(script), "--quick", "--threads", "1", "--no-options", "--onnxruntime"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| tiny-64 | 64 |")]
    assert len(rows) == 2, result.stdout  # the main table and the onnxruntime table
    cells = [c.strip() for c in rows[1].split("|")]
    assert float(cells[6]) <= DECODER_TOLERANCE and float(cells[10]) <= MOTION_TOLERANCE
