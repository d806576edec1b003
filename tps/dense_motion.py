"""Dense motion network: K TPS transforms + background -> optical flow and occlusion masks.

Everything runs at the motion resolution ``h x w = scale_factor * (H x W)``:
heatmap differences of the keypoints and the source warped by each of the K+1 transforms go
through an hourglass, whose output gives softmax contribution maps (the flow is their weighted
sum of the transforms' grids) and multi-resolution occlusion masks (coarse H/8 .. fine H).

Pieces a renderer can reuse per source (all documented below): `downsample_source` (the
anti-aliased source at ``h x w``), `kp_gaussians` (the source keypoints' Gaussians),
`heatmaps`, `transformations`, `deform_source` and `predict` (hourglass onwards). `forward`
accepts a precomputed ``source_down`` and ``source_gaussians``, and broadcasts a batch-1 source
(image and keypoints) over a batch of driving keypoints.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tps.blocks import AntiAliasInterpolation2d, Hourglass, UpBlock2d
from tps.transform import TPS, make_coordinate_grid, validate_image, validate_keypoints

__all__ = ["DenseMotionNetwork", "dropout_softmax"]


def dropout_softmax(logits: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Softmax over dim 1 with whole channels dropped (training-time TPS dropout).

    logits: ``[B, K+1, h, w]``. Channel k of item b is kept when ``U(0,1) < 1 - p`` (one
    ``torch.rand(B, K+1)`` draw on the CPU from ``generator`` or the global RNG, as the official
    code); channel 0 (background) is always kept. Returns ``exp / (sum of kept exp + 1e-6)``.
    The official code's ``/(1-p)`` rescale comes after the exponential and has no effect, so it
    is left out.
    """
    if not 0 <= p < 1:
        raise ValueError(f"dropout p must be in [0, 1), got {p!r}")
    b, c = logits.shape[:2]
    keep = (torch.rand(b, c, generator=generator) < (1 - p)).to(dtype=logits.dtype, device=logits.device)
    keep[:, 0] = 1
    shifted = logits - logits.max(dim=1, keepdim=True).values
    exp = shifted.exp() * keep[:, :, None, None]
    return exp / (exp.sum(dim=1, keepdim=True) + 1e-6)


class DenseMotionNetwork(nn.Module):
    """Official ``DenseMotionNetwork`` (argument names as the official constructor).

    ``bg`` is kept for the official signature: the background transform is used whenever a
    ``bg_param`` is passed to `forward`, identity otherwise.
    """

    def __init__(
        self,
        block_expansion: int,
        num_blocks: int,
        max_features: int,
        num_tps: int,
        num_channels: int = 3,
        scale_factor: float = 0.25,
        bg: bool = False,
        multi_mask: bool = True,
        kp_variance: float = 0.01,
    ) -> None:
        super().__init__()
        if not multi_mask:
            raise ValueError("multi_mask=False is not supported")
        self.num_tps = num_tps
        self.num_channels = num_channels
        self.scale_factor = float(scale_factor)
        self.kp_variance = kp_variance
        self.bg = bg
        if self.scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, self.scale_factor)
        in_features = num_channels * (num_tps + 1) + num_tps * 5 + 1
        self.hourglass = Hourglass(block_expansion, in_features, num_blocks, max_features)
        widths = self.hourglass.out_channels
        self.maps = nn.Conv2d(widths[-1], num_tps + 1, kernel_size=7, padding=3)
        self.up_nums = round(math.log2(1.0 / self.scale_factor))
        ups = [widths[-1] // 2**i for i in range(self.up_nums + 1)]
        self.up = nn.ModuleList(UpBlock2d(ups[i], ups[i + 1]) for i in range(self.up_nums))
        occlusion_widths = [widths[-2]] + ups
        self.occlusion = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=7, padding=3) for c in occlusion_widths)
        self.size_multiple = self.hourglass.multiple * 2**self.up_nums

    # ---- pieces ---------------------------------------------------------------------------
    def check_size(self, height: int, width: int) -> None:
        """ValueError unless the image size is a multiple of ``2**num_blocks / scale_factor``."""
        if height % self.size_multiple or width % self.size_multiple:
            raise ValueError(
                f"image size {height}x{width} (HxW) is not supported: height and width must be multiples "
                f"of {self.size_multiple} (2**num_blocks / scale_factor)"
            )

    def downsample_source(self, source_image: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W] -> [B, C, h, w]``: the anti-aliased source at the motion resolution."""
        return self.down(source_image) if self.scale_factor != 1 else source_image

    def kp_gaussians(self, kp: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """``[B, N, 2] -> [B, N, h, w]``: ``exp(-0.5 |p - kp|^2 / kp_variance)`` on the grid."""
        grid = make_coordinate_grid(height, width, dtype=kp.dtype, device=kp.device)
        diff = grid[None, None] - kp[:, :, None, None, :]
        return torch.exp(-0.5 * (diff**2).sum(-1) / self.kp_variance)

    def heatmaps(
        self, kp_driving: torch.Tensor, kp_source: torch.Tensor, height: int, width: int,
        source_gaussians: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[B, 5K+1, h, w]``: a zero channel, then ``G(kp_driving) - G(kp_source)``."""
        if source_gaussians is None:
            source_gaussians = self.kp_gaussians(kp_source, height, width)
        heat = self.kp_gaussians(kp_driving, height, width) - source_gaussians
        zeros = torch.zeros_like(heat[:, :1])
        return torch.cat([zeros, heat], dim=1)

    def transformations(
        self, kp_driving: torch.Tensor, kp_source: torch.Tensor, height: int, width: int,
        bg_param: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[B, K+1, h, w, 2]`` sampling grids: background (identity or ``bg_param``) then the K TPS."""
        b = kp_driving.shape[0]
        identity = make_coordinate_grid(height, width, dtype=kp_driving.dtype, device=kp_driving.device)
        bg_grid = identity.expand(b, 1, height, width, 2)
        if bg_param is not None:
            ones = torch.ones_like(identity[..., :1])
            homogeneous = torch.cat([identity, ones], dim=-1)  # [h, w, 3]
            mapped = torch.matmul(bg_param.view(b, 1, 1, 1, 3, 3), homogeneous[..., None]).squeeze(-1)
            bg_grid = mapped[..., :2] / mapped[..., 2:3]
        kp_source = kp_source.expand(b, -1, -1)
        tps_grids = TPS.fit(kp_driving, kp_source).transform_frame(height, width)
        return torch.cat([bg_grid, tps_grids], dim=1)

    def deform_source(self, source_down: torch.Tensor, transformations: torch.Tensor) -> torch.Tensor:
        """``[B|1, C, h, w]`` warped by every grid ``[B, K+1, h, w, 2]`` -> ``[B, K+1, C, h, w]``."""
        b, n, h, w, _ = transformations.shape
        c = source_down.shape[1]
        repeated = source_down.expand(b, c, h, w).unsqueeze(1).expand(b, n, c, h, w).reshape(b * n, c, h, w)
        warped = F.grid_sample(repeated, transformations.reshape(b * n, h, w, 2), align_corners=True)
        return warped.view(b, n, c, h, w)

    def predict(
        self, heatmap: torch.Tensor, deformed_source: torch.Tensor, transformations: torch.Tensor,
        dropout_p: float | None = None, generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Hourglass onwards: contribution maps, deformation and occlusion maps.

        ``dropout_p=None``: plain softmax (inference); a float: `dropout_softmax` (training).
        """
        b, n, c, h, w = deformed_source.shape
        outs = self.hourglass(torch.cat([heatmap, deformed_source.reshape(b, n * c, h, w)], dim=1))
        logits = self.maps(outs[-1])
        if dropout_p is None:
            contribution_maps = F.softmax(logits, dim=1)
        else:
            contribution_maps = dropout_softmax(logits, dropout_p, generator)
        deformation = (transformations * contribution_maps.unsqueeze(-1)).sum(dim=1)
        occlusion_map = [torch.sigmoid(self.occlusion[0](outs[-2])), torch.sigmoid(self.occlusion[1](outs[-1]))]
        features = outs[-1]
        for i, up in enumerate(self.up):
            features = up(features)
            occlusion_map.append(torch.sigmoid(self.occlusion[i + 2](features)))
        return {
            "contribution_maps": contribution_maps,
            "deformation": deformation,
            "occlusion_map": occlusion_map,
        }

    # ---- forward --------------------------------------------------------------------------
    def forward(
        self,
        source_image: torch.Tensor,
        kp_driving: torch.Tensor | dict[str, torch.Tensor],
        kp_source: torch.Tensor | dict[str, torch.Tensor],
        bg_param: torch.Tensor | None = None,
        dropout_flag: bool = False,
        dropout_p: float = 0.0,
        *,
        source_down: torch.Tensor | None = None,
        source_gaussians: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Dense motion from source to driving.

        source_image: ``[B|1, C, H, W]`` in [0, 1]; kp_driving: ``[B, K*5, 2]``; kp_source:
        ``[B|1, K*5, 2]`` (tensors or ``{"fg_kp": tensor}``); bg_param: ``[B, 3, 3]`` or None
        (identity background). With ``dropout_flag`` TPS channels are dropped with probability
        ``dropout_p`` (training). ``source_down``/``source_gaussians``: optional precomputed
        `downsample_source` / `kp_gaussians(kp_source)` results.

        Returns ``deformed_source [B, K+1, C, h, w]``, ``contribution_maps [B, K+1, h, w]``,
        ``deformation [B, h, w, 2]`` (x, y) and ``occlusion_map``: list coarse (H/8) to fine (H)
        of ``[B, 1, *, *]`` in (0, 1).
        """
        validate_image("source_image", source_image, self.num_channels)
        num_kp = self.num_tps * 5
        kp_driving = validate_keypoints("kp_driving", kp_driving, num_kp)
        kp_source = validate_keypoints("kp_source", kp_source, num_kp)
        height, width = source_image.shape[-2:]
        self.check_size(height, width)
        b = kp_driving.shape[0]
        for name, t in (("source_image", source_image), ("kp_source", kp_source)):
            if t.shape[0] not in (1, b):
                raise ValueError(f"{name} batch {t.shape[0]} must be 1 or kp_driving's batch {b}")
        if bg_param is not None and tuple(bg_param.shape) != (b, 3, 3):
            raise ValueError(f"bg_param must be [{b}, 3, 3], got {tuple(bg_param.shape)}")
        if source_down is None:
            source_down = self.downsample_source(source_image)
        h, w = source_down.shape[-2:]
        heatmap = self.heatmaps(kp_driving, kp_source, h, w, source_gaussians)
        transformations = self.transformations(kp_driving, kp_source, h, w, bg_param)
        deformed_source = self.deform_source(source_down, transformations)
        out = self.predict(heatmap, deformed_source, transformations, dropout_p if dropout_flag else None, generator)
        out["deformed_source"] = deformed_source
        return out
