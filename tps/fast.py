"""Output-preserving fast paths for inference.

``nearest_up_conv`` computes "nearest x2 upsampling, then a 3x3 convolution with padding 1" (the
body of ``UpBlock2d``) without materialising the upsampled map. After a nearest x2 upsampling,
the four output pixels ``(2i+a, 2j+b)`` with the same phase ``(a, b)`` each see a 3x3 window that
covers only a 2x2 block of *input* pixels, so the 3x3 kernel collapses to one 2x2 kernel per
phase (taps that land on the same input pixel are summed). Four 2x2 convolutions at the low
resolution replace one 3x3 convolution at the high resolution: 4 * 4 = 16 multiply-adds per
low-resolution pixel instead of 4 * 9 = 36, i.e. 2.25x fewer FLOPs, with the same result up to
float rounding (the summed taps round differently).

Along one axis, with kernel taps ``w0, w1, w2`` at offsets -1, 0, +1 of the upsampled map:

* phase 0 (even output index 2i) reads upsampled rows 2i-1, 2i, 2i+1 = input rows i-1, i, i,
  so its 2-tap kernel over input rows (i-1, i) is ``(w0, w1 + w2)``;
* phase 1 (odd output index 2i+1) reads rows 2i, 2i+1, 2i+2 = input rows i, i, i+1,
  so its 2-tap kernel over input rows (i, i+1) is ``(w0 + w1, w2)``.

The zero padding of the upsampled map coincides with a zero padding of 1 on the input, so the
borders agree too. The 2-D kernel of phase ``(a, b)`` is the outer combination of the two axes.

``shift_add_conv`` computes a "same" KxK convolution with one (or very few) output channels, such
as the dense motion's occlusion heads (``Conv2d(C, 1, 7, padding=3)``), as one GEMM and shifted
sums. oneDNN runs such a convolution at about a tenth of its usual speed (a 29 -> 1 channel 7x7
convolution at 256x256: 16.6 ms on two AMD EPYC cores, 11 GFLOP/s). Written as

    out(p) = b + sum_{dy, dx} z_{dy, dx}(p + (dy - P, dx - P)),   z_{dy, dx} = w[:, :, dy, dx] @ x,

with ``P = K // 2`` and ``z`` zero outside the map, the K*K tap maps ``z`` come from one matrix
product ``[K*K*C_out, C] x [C, H*W]`` and are then added at their offsets: first along the rows
(K shifted adds per kernel row into a buffer padded by P on both sides), then the K row sums
along the columns. The same products and sums as the convolution, in another order: equal up to
float rounding (closer to a float64 reference than oneDNN's result, in tests/tps/test_fast.py),
4.2x faster for that layer (16.6 -> 4.0 ms). It loses for more outputs (3 outputs: 7.6 ms
against 21.8), so the renderer uses it for single-output convolutions only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["nearest_up_conv", "shift_add_conv", "subpixel_kernels", "subpixel_upsampling"]

# Row ``p`` of this matrix maps the 3 taps of one axis onto the 2 taps of phase ``p``:
# collapsed[p, t] = sum_k _PHASE_MAP[p, t, k] * w[k].
_PHASE_MAP = torch.tensor(
    [
        [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]],  # phase 0: (w0, w1 + w2) over input offsets (-1, 0)
        [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]],  # phase 1: (w0 + w1, w2) over input offsets (0, +1)
    ]
)


def subpixel_kernels(weight: torch.Tensor) -> torch.Tensor:
    """Collapse a 3x3 kernel into the four 2x2 phase kernels of ``nearest_up_conv``.

    Args:
        weight: ``[C_out, C_in, 3, 3]`` convolution weight.

    Returns:
        ``[4 * C_out, C_in, 2, 2]``: phase-major blocks ``(a, b) = (0,0), (0,1), (1,0), (1,1)``;
        block ``2a + b`` holds the kernels of output pixels ``(2i + a, 2j + b)``.
    """
    if weight.dim() != 4 or tuple(weight.shape[2:]) != (3, 3):
        raise ValueError(f"weight must be [C_out, C_in, 3, 3], got shape {tuple(weight.shape)}")
    m = _PHASE_MAP.to(device=weight.device, dtype=weight.dtype)
    # k[a, b, o, i, s, t] = sum_{u, v} m[a, s, u] * m[b, t, v] * w[o, i, u, v]
    k = torch.einsum("asu,btv,oiuv->aboist", m, m, weight)
    return k.reshape(4 * weight.shape[0], weight.shape[1], 2, 2)


def _check_same_conv(x: torch.Tensor, conv: nn.Module, kernel: int | None, what: str) -> None:
    """TypeError/ValueError unless ``conv`` is a ``kernel`` x ``kernel`` ``nn.Conv2d`` (None: any odd
    square kernel) with zero padding ``kernel // 2``, stride 1, dilation 1 and groups 1, and ``x``
    is ``[B, C_in, H, W]``."""
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"conv must be an nn.Conv2d, got {type(conv).__name__}")
    if kernel is None:
        kernel = conv.kernel_size[0] if conv.kernel_size[0] % 2 else -1
    if (
        conv.kernel_size != (kernel, kernel)
        or conv.padding != (kernel // 2, kernel // 2)
        or conv.stride != (1, 1)
        or conv.dilation != (1, 1)
        or conv.groups != 1
        or conv.padding_mode != "zeros"
    ):
        raise ValueError(f"conv must be {what}, stride 1, dilation 1, groups 1; got {conv}")
    if x.dim() != 4 or x.shape[1] != conv.in_channels:
        raise ValueError(f"x must be [B, {conv.in_channels}, H, W] for {conv}, got shape {tuple(x.shape)}")


def nearest_up_conv(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(F.interpolate(x, scale_factor=2))`` computed at the input resolution.

    Args:
        x: ``[B, C_in, H, W]`` feature map (any H, W >= 1).
        conv: a ``Conv2d(C_in, C_out, 3, padding=1)`` with stride 1, dilation 1, groups 1 and
            zero padding (bias optional).

    Returns:
        ``[B, C_out, 2H, 2W]``, equal to the naive form up to float rounding.
    """
    _check_same_conv(x, conv, 3, "a 3x3 convolution with zero padding 1")
    b, _, h, w = x.shape
    c_out = conv.out_channels
    kernels = subpixel_kernels(conv.weight)
    bias = None if conv.bias is None else conv.bias.repeat(4)
    # One GEMM for all four phases on the input padded by 1: its (H+1) x (W+1) 2x2 windows
    # contain every phase's windows; phase (a, b) is the shifted crop [a:a+H, b:b+W].
    y = F.conv2d(F.pad(x, (1, 1, 1, 1)), kernels, bias)
    y = y.view(b, 2, 2, c_out, h + 1, w + 1)
    out = x.new_empty(b, c_out, h, 2, w, 2)
    for a in (0, 1):
        for c in (0, 1):
            out[:, :, :, a, :, c] = y[:, a, c, :, a : a + h, c : c + w]
    return out.view(b, c_out, 2 * h, 2 * w)


def shift_add_conv(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(x)`` for a "same" convolution with few outputs, as one GEMM and shifted sums.

    Args:
        x: ``[B, C_in, H, W]`` (any memory layout).
        conv: a ``Conv2d(C_in, C_out, K, padding=K // 2)`` with an odd square kernel, stride 1,
            dilation 1, groups 1 and zero padding (bias optional).

    Returns:
        ``[B, C_out, H, W]`` (contiguous), equal to ``conv(x)`` up to float rounding. Faster than
        oneDNN only when ``C_out`` is 1 (module docstring).
    """
    _check_same_conv(x, conv, None,
                     "a square odd-sized convolution with zero padding kernel_size // 2 (\"same\" output)")
    b, c, h, w = x.shape
    k, o = conv.kernel_size[0], conv.out_channels
    p = k // 2
    taps = torch.matmul(conv.weight.permute(2, 3, 0, 1).reshape(k * k * o, c), x.reshape(b, c, h * w))
    taps = taps.view(b, k, k, o, h, w)  # [B, dy, dx, C_out, H, W]
    # rows[dy](i, j) = sum_dx taps[dy, dx](i, j + dx - p), held with p columns of margin each side
    rows = taps.new_zeros(b, k, o, h, w + 2 * p)
    for dx in range(k):
        rows[..., 2 * p - dx : 2 * p - dx + w] += taps[:, :, dx]
    rows = rows[..., p : p + w]
    out = taps.new_zeros(b, o, h + 2 * p, w)
    for dy in range(k):
        out[:, :, 2 * p - dy : 2 * p - dy + h] += rows[:, dy]
    out = out[:, :, p : p + h]
    if conv.bias is not None:
        out = out + conv.bias.to(out.dtype).view(1, o, 1, 1)
    return out.contiguous()


@contextlib.contextmanager
def subpixel_upsampling(module: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Within the block, every ``UpBlock2d`` under ``module`` uses (or not) `nearest_up_conv`.

    The previous settings are restored on exit, so a model shared with training code is left
    as it was.
    """
    from tps.blocks import UpBlock2d

    blocks = [m for m in module.modules() if isinstance(m, UpBlock2d)]
    saved = [block.subpixel for block in blocks]
    for block in blocks:
        block.subpixel = bool(enabled)
    try:
        yield
    finally:
        for block, value in zip(blocks, saved):
            block.subpixel = value
