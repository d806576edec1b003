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
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["nearest_up_conv", "subpixel_kernels", "subpixel_upsampling"]

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


def nearest_up_conv(x: torch.Tensor, conv: nn.Conv2d) -> torch.Tensor:
    """``conv(F.interpolate(x, scale_factor=2))`` computed at the input resolution.

    Args:
        x: ``[B, C_in, H, W]`` feature map (any H, W >= 1).
        conv: a ``Conv2d(C_in, C_out, 3, padding=1)`` with stride 1, dilation 1, groups 1 and
            zero padding (bias optional).

    Returns:
        ``[B, C_out, 2H, 2W]``, equal to the naive form up to float rounding.
    """
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"conv must be an nn.Conv2d, got {type(conv).__name__}")
    if (
        conv.kernel_size != (3, 3)
        or conv.padding != (1, 1)
        or conv.stride != (1, 1)
        or conv.dilation != (1, 1)
        or conv.groups != 1
        or conv.padding_mode != "zeros"
    ):
        raise ValueError(
            "conv must be a 3x3 convolution with zero padding 1, stride 1, dilation 1, groups 1; "
            f"got {conv}"
        )
    if x.dim() != 4 or x.shape[1] != conv.in_channels:
        raise ValueError(
            f"x must be [B, {conv.in_channels}, H, W] for {conv}, got shape {tuple(x.shape)}"
        )
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
