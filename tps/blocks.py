"""Building blocks of the dense motion and inpainting networks (names as in official checkpoints).

"IN" is ``InstanceNorm2d(C, affine=True)``: per-instance statistics even in eval mode.
Upsampling is nearest x2, downsampling avg-pool 2, every convolution has a bias.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "SameBlock2d",
    "DownBlock2d",
    "UpBlock2d",
    "ResBlock2d",
    "Hourglass",
    "AntiAliasInterpolation2d",
    "ImagePyramid",
]


class SameBlock2d(nn.Module):
    """conv(k, pad p) -> IN -> ReLU, same resolution."""

    def __init__(self, in_features: int, out_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding)
        self.norm = nn.InstanceNorm2d(out_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.norm(self.conv(x)))


class DownBlock2d(nn.Module):
    """conv3x3 -> IN -> ReLU -> avg-pool 2: ``[B, Cin, H, W] -> [B, Cout, H/2, W/2]``."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.InstanceNorm2d(out_features, affine=True)
        self.pool = nn.AvgPool2d(kernel_size=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.norm(self.conv(x))))


class UpBlock2d(nn.Module):
    """nearest x2 -> conv3x3 -> IN -> ReLU: ``[B, Cin, H, W] -> [B, Cout, 2H, 2W]``.

    ``subpixel`` (default False) switches the first two steps to `tps.fast.nearest_up_conv`, an
    equivalent (up to float rounding) sub-pixel form that convolves at the low resolution.
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=3, padding=1)
        self.norm = nn.InstanceNorm2d(out_features, affine=True)
        self.subpixel = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.subpixel:
            from tps.fast import nearest_up_conv  # optional fast path, imported only when enabled

            out = nearest_up_conv(x, self.conv)
        else:
            out = self.conv(F.interpolate(x, scale_factor=2.0))
        return F.relu(self.norm(out))


class ResBlock2d(nn.Module):
    """Pre-activation residual block: ``x + conv2(relu(IN2(conv1(relu(IN1(x))))))``."""

    def __init__(self, in_features: int, kernel_size: int = 3, padding: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.norm1 = nn.InstanceNorm2d(in_features, affine=True)
        self.norm2 = nn.InstanceNorm2d(in_features, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return x + out


class _Encoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        blocks = []
        for i in range(num_blocks):
            cin = in_features if i == 0 else min(max_features, block_expansion * 2**i)
            blocks.append(DownBlock2d(cin, min(max_features, block_expansion * 2 ** (i + 1))))
        self.down_blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class _Decoder(nn.Module):
    def __init__(self, block_expansion: int, in_features: int, num_blocks: int, max_features: int) -> None:
        super().__init__()
        blocks = []
        self.out_channels: list[int] = []
        for i in reversed(range(num_blocks)):
            cin = (1 if i == num_blocks - 1 else 2) * min(max_features, block_expansion * 2 ** (i + 1))
            self.out_channels.append(cin)
            blocks.append(UpBlock2d(cin, min(max_features, block_expansion * 2**i)))
        self.up_blocks = nn.ModuleList(blocks)
        self.out_channels.append(block_expansion + in_features)

    def forward(self, skips: list[torch.Tensor]) -> list[torch.Tensor]:
        skips = list(skips)
        out = skips.pop()
        outs = []
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)  # up-block output first, then the skip
            outs.append(out)
        return outs


class Hourglass(nn.Module):
    """U-Net of `num_blocks` down and up blocks; returns every decoder output, coarse to fine.

    Input ``[B, in_features, h, w]`` with h, w multiples of ``2**num_blocks``; the last output has
    ``block_expansion + in_features`` channels at ``h x w``. ``out_channels[-2:]`` are the widths
    of the last two outputs.
    """

    def __init__(self, block_expansion: int, in_features: int, num_blocks: int = 3, max_features: int = 256) -> None:
        super().__init__()
        self.encoder = _Encoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = _Decoder(block_expansion, in_features, num_blocks, max_features)
        self.out_channels = self.decoder.out_channels
        self.multiple = 2**num_blocks

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, w = x.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise ValueError(f"Hourglass input size {h}x{w} must be a multiple of {self.multiple} (2**num_blocks)")
        return self.decoder(self.encoder(x))


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur then nearest downsampling by ``scale`` (the official anti-aliased resize).

    sigma = (1/scale - 1)/2, kernel size 2*round(4 sigma)+1, zero padding (darker borders, as
    official), then pixel ``i/scale`` is taken (no half-pixel centring). Identity for scale 1.
    The kernel is the persistent buffer ``weight`` ``[C, 1, ks, ks]`` (official checkpoints store it;
    scale 1 has none).
    """

    def __init__(self, channels: int, scale: float) -> None:
        super().__init__()
        if not 0 < scale <= 1:
            raise ValueError(f"scale must be in (0, 1], got {scale!r}")
        self.scale = float(scale)
        self.channels = channels
        sigma = (1 / scale - 1) / 2
        size = 2 * round(sigma * 4) + 1
        self.pad_before = size // 2
        self.pad_after = self.pad_before - 1 if size % 2 == 0 else self.pad_before
        if scale == 1:
            return
        taps = torch.arange(size, dtype=torch.float32)
        g = torch.exp(-((taps - (size - 1) / 2) ** 2) / (2 * sigma**2))
        kernel = g[:, None] * g[None, :]
        kernel = kernel / torch.sum(kernel)
        self.register_buffer("weight", kernel.view(1, 1, size, size).repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale == 1.0:
            return x
        out = F.pad(x, (self.pad_before, self.pad_after, self.pad_before, self.pad_after))
        out = F.conv2d(out, self.weight.to(out.dtype), groups=self.channels)
        return F.interpolate(out, scale_factor=(self.scale, self.scale))


class ImagePyramid(nn.Module):
    """Anti-aliased pyramid for the multi-scale perceptual loss.

    ``ImagePyramid([1, 0.5, 0.25, 0.125], 3)(x)`` returns ``{"prediction_1": x, "prediction_0.5":
    [B, C, H/2, W/2], ...}`` (the official key names).
    """

    def __init__(self, scales: list[float], num_channels: int = 3) -> None:
        super().__init__()
        self.scales = [float(s) for s in scales]
        self.downs = nn.ModuleList(AntiAliasInterpolation2d(num_channels, s) for s in self.scales)

    @staticmethod
    def key(scale: float) -> str:
        return f"prediction_{float(scale):g}"

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {self.key(s): down(x) for s, down in zip(self.scales, self.downs)}
