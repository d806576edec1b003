"""tps.evaluate_native: reconstruction at the clip's own size, upscaled against composed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tps.evaluate_native import PATHS, evaluate_clip_native, format_native_table, laplacian_variance, summarize_native
from tps.model import TPSMotionModel


@pytest.fixture(scope="module")
def model() -> TPSMotionModel:
    torch.manual_seed(0)
    return TPSMotionModel.from_config("tiny-64").eval()


def astronaut(size: int) -> torch.Tensor:
    from skimage import data

    image = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255
    return F.interpolate(image, size=(size, size), mode="area").clamp(0, 1)


@pytest.mark.parametrize("interpolation", ["spline", "bicubic"])
def test_a_still_clip_is_reconstructed_exactly_only_by_composition(model, interpolation):
    frames = astronaut(160).repeat(3, 1, 1, 1)  # three identical frames at 160, the model runs at 64
    rows = {r.path: r for r in evaluate_clip_native(model, frames, "still", batch_size=2, interpolation=interpolation)}
    assert set(rows) == set(PATHS) and rows["native"].size == 160 and rows["native"].frames == 3
    assert rows["native"].l1 < 1e-4 and rows["native"].sharpness == pytest.approx(1.0, abs=1e-3)
    assert rows["upscaled"].l1 > 0.01 and rows["upscaled"].sharpness < 0.5  # a 64-pixel render scaled up
    table = format_native_table(list(rows.values()) + summarize_native(list(rows.values())))
    assert "native" in table and "mean" in table


def test_laplacian_variance_ranks_sharpness():
    sharp = astronaut(96)
    blurred = F.avg_pool2d(sharp, 3, stride=1, padding=1)
    assert laplacian_variance(sharp)[0] > 2 * laplacian_variance(blurred)[0]
    with pytest.raises(ValueError, match="frames"):
        evaluate_clip_native(TPSMotionModel.from_config("tiny-64"), torch.zeros(3, 64, 64))
    with pytest.raises(ValueError, match="interpolation"):
        evaluate_clip_native(TPSMotionModel.from_config("tiny-64"), torch.zeros(2, 3, 64, 64), interpolation="cubic")


def test_bfloat16_reconstruction_is_the_renderers_and_close_to_float32(model):
    """``bfloat16=True`` measures what `Renderer(bfloat16=True)` renders: the upscaled path equals
    the renderer's frames, and moves from float32 by float rounding only."""
    from tps.render import Renderer

    frames = torch.cat([astronaut(64), astronaut(64).roll(2, dims=-1), astronaut(64).roll(-2, dims=-2)])
    rows = {b: {r.path: r for r in evaluate_clip_native(model, frames, "clip", batch_size=3, bfloat16=b)}
            for b in (False, True)}
    assert rows[True]["upscaled"].psnr != rows[False]["upscaled"].psnr  # it did run in bfloat16
    for path in PATHS:
        assert rows[True][path].psnr == pytest.approx(rows[False][path].psnr, abs=0.5)
    renderer = Renderer(model, bfloat16=True, fast=False)
    prepared = renderer.prepare(frames[:1])
    with torch.no_grad():
        rendered = renderer.render(prepared, model.detect(frames), progress=False).clamp(0, 1)
    from tps.evaluate import psnr

    assert psnr(rendered, frames).mean().item() == pytest.approx(rows[True]["upscaled"].psnr, abs=1e-3)


def test_bfloat16_flag_needs_native(capsys):
    from tps.evaluate import main

    assert main(["--weights", "nowhere", "--data", "nothing.mp4", "--bfloat16"]) == 2
    assert "--bfloat16" in capsys.readouterr().err
