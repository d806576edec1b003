"""tps.fast: the sub-pixel form of "nearest x2 upsampling, then 3x3 convolution", and the
single-output convolution as a GEMM and shifted sums."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tps.blocks import UpBlock2d
from tps.fast import nearest_up_conv, shift_add_conv, subpixel_kernels, subpixel_upsampling


def naive(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    return conv(F.interpolate(x, scale_factor=2))


@pytest.mark.parametrize(
    "batch, c_in, c_out, height, width, bias",
    [(1, 3, 4, 1, 1, True), (2, 5, 7, 7, 5, True), (1, 8, 3, 9, 12, False), (3, 16, 16, 2, 3, True), (1, 32, 8, 16, 16, True)],
)
def test_equals_naive_form(batch: int, c_in: int, c_out: int, height: int, width: int, bias: bool) -> None:
    torch.manual_seed(height * 100 + width)
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias)
    x = torch.randn(batch, c_in, height, width)
    expected = naive(x, conv)
    got = nearest_up_conv(x, conv)
    assert got.shape == (batch, c_out, 2 * height, 2 * width)
    assert (got - expected).abs().max() <= 1e-5


def test_phase_kernels_sum_the_taps_on_one_input_pixel() -> None:
    weight = torch.arange(9, dtype=torch.float32).view(1, 1, 3, 3)
    w = weight[0, 0]
    kernels = subpixel_kernels(weight).view(2, 2, 2, 2)  # [a, b, s, t]
    # Phase (0, 0): rows (i-1 | i, i), columns (j-1 | j, j).
    expected_00 = torch.tensor(
        [[w[0, 0], w[0, 1] + w[0, 2]], [w[1, 0] + w[2, 0], w[1:, 1:].sum()]]
    )
    # Phase (1, 1): rows (i, i | i+1), columns (j, j | j+1).
    expected_11 = torch.tensor(
        [[w[:2, :2].sum(), w[0, 2] + w[1, 2]], [w[2, 0] + w[2, 1], w[2, 2]]]
    )
    assert torch.equal(kernels[0, 0], expected_00)
    assert torch.equal(kernels[1, 1], expected_11)
    # Every phase sees each of the 9 taps exactly once.
    assert torch.equal(kernels.sum(dim=(2, 3)), torch.full((2, 2), w.sum().item()))


def test_gradients_match_naive_form() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1)
    x = torch.randn(2, 4, 5, 6, requires_grad=True)
    upstream = torch.randn(2, 6, 10, 12)
    (naive(x, conv) * upstream).sum().backward()
    expected_x, expected_w = x.grad.clone(), conv.weight.grad.clone()
    x.grad, conv.weight.grad = None, None
    (nearest_up_conv(x, conv) * upstream).sum().backward()
    assert (x.grad - expected_x).abs().max() <= 1e-4
    assert (conv.weight.grad - expected_w).abs().max() <= 1e-4


@pytest.mark.parametrize(
    "conv",
    [
        nn.Conv2d(4, 4, 5, padding=2),
        nn.Conv2d(4, 4, 3, padding=0),
        nn.Conv2d(4, 4, 3, padding=1, stride=2),
        nn.Conv2d(4, 4, 3, padding=1, groups=2),
        nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"),
    ],
    ids=["kernel5", "pad0", "stride2", "groups2", "reflect"],
)
def test_rejects_other_convolutions(conv: nn.Conv2d) -> None:
    with pytest.raises(ValueError, match="3x3 convolution"):
        nearest_up_conv(torch.randn(1, 4, 4, 4), conv)


def test_rejects_bad_input() -> None:
    conv = nn.Conv2d(4, 2, 3, padding=1)
    with pytest.raises(ValueError, match=r"x must be \[B, 4, H, W\].*\(1, 3, 4, 4\)"):
        nearest_up_conv(torch.randn(1, 3, 4, 4), conv)
    with pytest.raises(TypeError, match="nn.Conv2d, got Linear"):
        nearest_up_conv(torch.randn(1, 4, 4, 4), nn.Linear(4, 4))
    with pytest.raises(ValueError, match=r"\[C_out, C_in, 3, 3\]"):
        subpixel_kernels(torch.randn(2, 2, 5, 5))


def test_upblock_switch_and_context_restores_flags() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(UpBlock2d(6, 4), UpBlock2d(4, 2))
    model[1].subpixel = True  # a setting made elsewhere must survive the context
    x = torch.randn(2, 6, 5, 7)
    with subpixel_upsampling(model, False):
        expected = model(x)
        assert not model[0].subpixel and not model[1].subpixel
    with subpixel_upsampling(model, True):
        got = model(x)
        assert model[0].subpixel and model[1].subpixel
    assert (model[0].subpixel, model[1].subpixel) == (False, True)
    assert got.shape == (2, 2, 20, 28)
    assert (got - expected).abs().max() <= 1e-5
    with pytest.raises(RuntimeError), subpixel_upsampling(model, True):
        raise RuntimeError("interrupted")
    assert (model[0].subpixel, model[1].subpixel) == (False, True)


@pytest.mark.parametrize(
    "batch, c_in, c_out, kernel, height, width, bias, channels_last",
    [(1, 29, 1, 7, 33, 40, True, False), (2, 5, 1, 3, 9, 6, False, False), (1, 8, 3, 5, 12, 7, True, False),
     (3, 6, 1, 7, 2, 3, True, False), (1, 16, 1, 7, 20, 20, True, True), (1, 4, 2, 1, 5, 5, True, False)],
    ids=["occlusion-head", "3x3-no-bias", "5x5-3-out", "map-smaller-than-kernel", "channels-last", "1x1"],
)
def test_shift_add_equals_the_convolution(batch: int, c_in: int, c_out: int, kernel: int, height: int, width: int,
                                          bias: bool, channels_last: bool) -> None:
    torch.manual_seed(kernel * 100 + height)
    conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=bias)
    with torch.no_grad():
        conv.weight.mul_(3)  # logits of the size the occlusion heads produce
        if bias:
            conv.bias.fill_(0.7)  # a bias far from 0, so a dropped or shifted bias shows
    x = torch.randn(batch, c_in, height, width)
    reference = F.conv2d(x.double(), conv.weight.double(), None if not bias else conv.bias.double(),
                         padding=kernel // 2)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        got = shift_add_conv(x, conv)
        expected = conv(x)
    assert got.shape == (batch, c_out, height, width) and got.dtype == torch.float32
    # as close to float64 as oneDNN's own float32 result, at every pixel including the borders
    assert (got.double() - reference).abs().max() <= 1e-5
    assert (got - expected).abs().max() <= 1e-5
    assert reference.abs().max() > 1.0  # a vacuous comparison of near-zero maps is ruled out


def test_shift_add_puts_each_tap_at_its_offset() -> None:
    """A single 1 at (r, c) of the input, one tap of weight 1 at (dy, dx): the output's 1 lands at
    (r - dy + p, c - dx + p), the correlation's offset, for every tap of a 5x5 kernel."""
    conv = nn.Conv2d(1, 1, 5, padding=2, bias=False)
    x = torch.zeros(1, 1, 9, 11)
    x[0, 0, 4, 6] = 1.0
    for dy in range(5):
        for dx in range(5):
            with torch.no_grad():
                conv.weight.zero_()
                conv.weight[0, 0, dy, dx] = 1.0
                out = shift_add_conv(x, conv)
            hits = (out[0, 0] == 1.0).nonzero().tolist()
            assert hits == [[4 - dy + 2, 6 - dx + 2]] and out.sum() == 1.0


@pytest.mark.parametrize(
    "conv",
    [nn.Conv2d(4, 1, 4, padding=2), nn.Conv2d(4, 1, 7, padding=0), nn.Conv2d(4, 1, 3, padding=1, stride=2),
     nn.Conv2d(4, 1, 3, padding=1, dilation=2), nn.Conv2d(4, 2, 3, padding=1, groups=2),
     nn.Conv2d(4, 1, 3, padding=1, padding_mode="reflect"), nn.Conv2d(4, 1, (3, 5), padding=(1, 2))],
    ids=["even", "valid", "stride2", "dilation2", "groups2", "reflect", "non-square"],
)
def test_shift_add_rejects_other_convolutions(conv: nn.Conv2d) -> None:
    with pytest.raises(ValueError, match="square odd-sized convolution"):
        shift_add_conv(torch.randn(1, 4, 6, 6), conv)


def test_shift_add_rejects_bad_input() -> None:
    conv = nn.Conv2d(4, 1, 7, padding=3)
    with pytest.raises(ValueError, match=r"x must be \[B, 4, H, W\].*\(1, 3, 8, 8\)"):
        shift_add_conv(torch.randn(1, 3, 8, 8), conv)
    with pytest.raises(TypeError, match="nn.Conv2d, got Linear"):
        shift_add_conv(torch.randn(1, 4, 8, 8), nn.Linear(4, 1))
