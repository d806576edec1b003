"""tps.interpolation and the ``"spline"`` warp: the photo's samples kept, sub-pixel shifts sharper."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage import data

from tps.compose import compose, warp
from tps.interpolation import bspline, half_sample_filter, spline_upsample
from tps.transform import make_coordinate_grid


def shift_flow(height: int, width: int, dx: float, dy: float, low_res: int | None = None) -> torch.Tensor:
    """A flow sampling the source ``(dx, dy)`` pixels (of a ``height x width`` source) away,
    given at ``low_res`` (resized by `warp`, as the renderer's) or at full size."""
    h, w = (low_res, low_res) if low_res else (height, width)
    grid = make_coordinate_grid(h, w)
    grid[..., 0] += 2.0 * dx / (width - 1)
    grid[..., 1] += 2.0 * dy / (height - 1)
    return grid[None]


def laplacian_variance(image: torch.Tensor, margin: int = 8) -> float:
    g = image.mean(1)
    lap = 4 * g[:, 1:-1, 1:-1] - g[:, :-2, 1:-1] - g[:, 2:, 1:-1] - g[:, 1:-1, :-2] - g[:, 1:-1, 2:]
    return float(lap[:, margin:-margin, margin:-margin].var())


def test_bspline_is_the_b_spline():
    x = np.linspace(-4, 4, 801)
    for order in (1, 3, 5):
        values = bspline(x, order)
        assert values.min() > -1e-12 and values[np.abs(x) >= (order + 1) / 2].max() == 0
        # a partition of unity: the integer shifts sum to 1 everywhere
        shifts = sum(bspline(x[200:601] - k, order) for k in range(-5, 6))
        np.testing.assert_allclose(shifts, 1.0, atol=1e-12)
    np.testing.assert_allclose(bspline(np.array([0.0, 1.0, 2.0]), 3), [2 / 3, 1 / 6, 0.0], atol=1e-15)
    np.testing.assert_allclose(bspline(np.array([0.0, 1.0, 2.0]), 5), [66 / 120, 26 / 120, 1 / 120], atol=1e-15)


def test_spline_upsample_is_scipys_quintic_spline_and_keeps_the_samples():
    rng = np.random.default_rng(0)
    for shape in ((2, 2), (3, 40), (17, 23)):
        image = rng.random(shape)
        fine = spline_upsample(torch.from_numpy(image)).numpy()
        assert fine.shape == (2 * shape[0] - 1, 2 * shape[1] - 1)
        assert np.array_equal(fine[::2, ::2], image)  # the photo's own samples, copied
        yy, xx = np.mgrid[0 : fine.shape[0], 0 : fine.shape[1]] / 2.0
        reference = ndimage.map_coordinates(image, [yy, xx], order=5, mode="mirror")
        assert np.abs(fine - reference).max() < 1e-6
    taps, first = half_sample_filter(5)
    assert first == 1 - len(taps) // 2 and np.allclose(taps, taps[::-1]) and math.isclose(taps.sum(), 1.0)
    flat = spline_upsample(torch.full((1, 3, 9, 9), 0.25))
    assert (flat - 0.25).abs().max() < 1e-7


def test_zero_flow_gives_the_exact_samples():
    torch.manual_seed(0)
    source = torch.randint(0, 256, (1, 3, 97, 130)).float() / 255.0
    for low_res in (None, 16):  # the identity at full size, and resized from 16x16 as in compose
        out = warp(source, shift_flow(97, 130, 0.0, 0.0, low_res), mode="spline")
        assert (out - source).abs().max() < 1e-4  # float rounding of the grid, far below half a uint8 step
        assert torch.equal((out * 255).round(), (source * 255).round())
    # compose with the rest maps: the source again, as with bicubic
    occlusion = torch.rand(1, 1, 32, 32) * 0.5 + 0.5
    frames = compose(source, torch.rand(1, 3, 32, 32), shift_flow(97, 130, 0, 0, 16), occlusion, occlusion)
    assert torch.equal((frames * 255).round(), (source * 255).round())


def test_a_sub_pixel_shift_of_a_smooth_signal_is_nearly_exact():
    size = 64
    y, x = torch.meshgrid(torch.arange(size, dtype=torch.float64), torch.arange(size, dtype=torch.float64),
                          indexing="ij")

    def signal(x, y):
        return 0.5 + 0.4 * torch.sin(2 * math.pi * x / 16 + 0.3) * torch.cos(2 * math.pi * y / 21)

    source = signal(x, y).float()[None, None].expand(1, 3, size, size)
    dx, dy = 0.3, 0.7
    expected = signal(x + dx, y + dy).float()
    errors = {}
    for mode in ("bilinear", "bicubic", "spline"):
        out = warp(source, shift_flow(size, size, dx, dy), mode=mode)[0, 0]
        errors[mode] = float((out - expected)[6:-6, 6:-6].abs().max())  # away from the mirrored border
    # Measured: bilinear 0.010, bicubic 0.008, spline 0.0025 (0.6 of a uint8 step; what is left is
    # grid_sample's cubic on the 2x image, whose a = -0.75 is not the third-order accurate -0.5).
    assert errors["spline"] < 4e-3
    assert errors["spline"] < errors["bilinear"] / 3 and errors["spline"] < errors["bicubic"] / 2


def test_spline_keeps_more_detail_than_bicubic_over_a_half_pixel_there_and_back():
    # A patch of the astronaut (her face and the flag): half a pixel diagonally and back, the
    # worst offset for an interpolator. Measured: bicubic keeps 0.58 of the Laplacian variance,
    # the spline 0.74.
    patch = torch.from_numpy(data.astronaut()[100:228, 150:278].copy()).permute(2, 0, 1)[None].float() / 255
    n = patch.shape[-1]
    kept = {}
    for mode in ("bicubic", "spline"):
        there = warp(patch, shift_flow(n, n, 0.5, 0.5), mode=mode)
        back = warp(there, shift_flow(n, n, -0.5, -0.5), mode=mode)
        kept[mode] = laplacian_variance(back) / laplacian_variance(patch)
    assert kept["spline"] > 0.7
    assert kept["spline"] > kept["bicubic"] + 0.1


def test_bad_arguments_are_named():
    source = torch.zeros(1, 3, 8, 8)
    flow = shift_flow(8, 8, 0, 0)
    with pytest.raises(ValueError, match="mode"):
        warp(source, flow, mode="lanczos")
    with pytest.raises(ValueError, match="interpolation"):
        compose(source, torch.zeros(1, 3, 8, 8), flow, torch.ones(1, 1, 8, 8), interpolation="nearest")
    with pytest.raises(ValueError, match="upsampled"):
        warp(source, flow, mode="spline", upsampled=torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="image"):
        spline_upsample(torch.zeros(8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match="order"):
        half_sample_filter(4)
    with pytest.raises(ValueError, match="order"):
        bspline(np.zeros(3), 0)
