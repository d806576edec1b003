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
