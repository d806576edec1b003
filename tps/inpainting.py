"""Inpainting network: warps source features by the dense motion and decodes the driving frame.

Encoder: a 7x7 block then ``num_down_blocks`` down blocks (``e0`` at H ... ``e_nd`` at H/2**nd).
Decoder: at each level the source features are warped by the flow and multiplied by that
level's occlusion map, concatenated after the up-sampled decoder output; the output blends the
generated image with the warped source through the finest occlusion map (1 = take the warped
source, 0 = take the generated pixel).

`encode` depends on the source only, so a renderer runs it once per source and calls `decode`
per batch of driving frames; ``forward = decode(source, encode(source), dense_motion)``. `decode`
is `warp_encoder_maps` (every level's warp, which needs the flow and the source only) then
`decode_warped` (the decoder proper), so a backend can run the two parts apart (`tps.onnx_backend`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tps.blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d
from tps.transform import validate_image

__all__ = ["InpaintingNetwork", "deform_input"]


def deform_input(inp: torch.Tensor, deformation: torch.Tensor) -> torch.Tensor:
    """Sample ``inp [B|1, C, H, W]`` with the flow ``deformation [B, h, w, 2]`` (x, y).

    The flow is resized bilinearly (align_corners=True) to ``H x W`` when sizes differ; sampling
    is bilinear with zero padding. A batch-1 ``inp`` is broadcast over the flow's batch.
    """
    b, h_old, w_old, _ = deformation.shape
    h, w = inp.shape[-2:]
    if (h_old, w_old) != (h, w):
        grid = F.interpolate(deformation.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=True)
        deformation = grid.permute(0, 2, 3, 1)
    if inp.shape[0] != b:
        inp = inp.expand(b, *inp.shape[1:])
    return F.grid_sample(inp, deformation, align_corners=True)


class InpaintingNetwork(nn.Module):
    """Official ``InpaintingNetwork`` (argument names as the official constructor).

    Extra official keyword arguments (``num_tps``, ``bg``) are accepted and ignored, so
    ``InpaintingNetwork(**generator_params, **common_params)`` works as in the official scripts.
    """

    def __init__(
        self,
        num_channels: int = 3,
        block_expansion: int = 64,
        max_features: int = 512,
        num_down_blocks: int = 3,
        multi_mask: bool = True,
        num_tps: int | None = None,
        bg: bool | None = None,
    ) -> None:
        super().__init__()
        if not multi_mask:
            raise ValueError("multi_mask=False is not supported")
        self.num_channels = num_channels
        self.num_down_blocks = num_down_blocks
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=7, padding=3)

        def width(i: int) -> int:
            return min(max_features, block_expansion * 2**i)

        self.down_blocks = nn.ModuleList(DownBlock2d(width(i), width(i + 1)) for i in range(num_down_blocks))
        up_blocks, resblocks = [], []
        for i in range(num_down_blocks):
            cin = (1 if i == 0 else 2) * width(num_down_blocks - i)
            up_blocks.append(UpBlock2d(cin, width(num_down_blocks - i - 1)))
            resblocks += [ResBlock2d(cin), ResBlock2d(cin)]
        self.up_blocks = nn.ModuleList(up_blocks)
        self.resblock = nn.ModuleList(resblocks)
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=7, padding=3)

    def encode(self, source_image: torch.Tensor) -> list[torch.Tensor]:
        """Source features, fine to coarse: ``[e0 [B, be, H, W], e1 [B, 2be, H/2, W/2], ...]``."""
        validate_image("source_image", source_image, self.num_channels)
        multiple = 2**self.num_down_blocks
        h, w = source_image.shape[-2:]
        if h % multiple or w % multiple:
            raise ValueError(f"image size {h}x{w} (HxW): height and width must be multiples of {multiple}")
        maps = [self.first(source_image)]
        for block in self.down_blocks:
            maps.append(block(maps[-1]))
        return maps

    def _warp_level(
        self, feature: torch.Tensor, deformation: torch.Tensor, occlusion: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(warped * occlusion for the decoder, the same for the warp loss from detached inputs)."""
        warped = deform_input(feature, deformation) * occlusion
        if torch.is_grad_enabled() and (feature.requires_grad or occlusion.requires_grad):
            # the warp loss must only move the flow: features and masks are detached for it
            return warped, deform_input(feature.detach(), deformation) * occlusion.detach()
        return warped, warped

    def warp_encoder_maps(
        self, encoder_maps: list[torch.Tensor], deformation: torch.Tensor, occlusion_map: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Every level's source features warped by the flow and multiplied by its occlusion map.

        encoder_maps fine to coarse (`encode`), occlusion_map coarse to fine. Returns (the
        decoder's inputs, the warp loss's maps), both coarse to fine; the two are the same
        tensors unless gradients flow (see `_warp_level`). The warps depend on the flow and
        the source alone, not on the decoder, so they can be computed before it.
        """
        pairs = [
            self._warp_level(encoder_maps[-(i + 1)], deformation, occlusion_map[i])
            for i in range(self.num_down_blocks + 1)
        ]
        return [p[0] for p in pairs], [p[1] for p in pairs]

    def decode_warped(
        self, warped: list[torch.Tensor], deformed: torch.Tensor, occlusion: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder proper: ``(generated, prediction)`` from `warp_encoder_maps`' first list
        (coarse to fine), the source warped at full resolution and the finest occlusion map."""
        out = warped[0]
        for i in range(self.num_down_blocks):
            out = self.resblock[2 * i + 1](self.resblock[2 * i](out))
            out = self.up_blocks[i](out)
            if i < self.num_down_blocks - 1:
                out = torch.cat([out, warped[i + 1]], dim=1)
        out = out * (1 - occlusion) + warped[-1]
        generated = torch.sigmoid(self.final(out))
        return generated, generated * (1 - occlusion) + deformed * occlusion

    def decode(
        self, source_image: torch.Tensor, encoder_maps: list[torch.Tensor], dense_motion: dict
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """Decode the driving frame from `encode`'s maps and a `DenseMotionNetwork` output.

        source_image ``[B|1, C, H, W]`` and encoder_maps may have batch 1 (broadcast over the
        dense motion's batch B). Returns ``prediction [B, C, H, W]`` in [0, 1], ``generated``
        (the decoder's own pixels before the blend with the warped source), ``deformed``
        (source warped by the flow at full resolution), ``warped_encoder_maps`` (coarse to fine)
        and the dense-motion entries passed through.
        """
        validate_image("source_image", source_image, self.num_channels)
        if len(encoder_maps) != self.num_down_blocks + 1:
            raise ValueError(f"encoder_maps must hold {self.num_down_blocks + 1} maps, got {len(encoder_maps)}")
        for key in ("deformation", "occlusion_map"):
            if key not in dense_motion:
                raise ValueError(f"dense_motion lacks {key!r}; got keys {sorted(dense_motion)}")
        deformation = dense_motion["deformation"]
        occlusion_map = dense_motion["occlusion_map"]
        if len(occlusion_map) != self.num_down_blocks + 1:
            raise ValueError(f"dense_motion['occlusion_map'] must hold {self.num_down_blocks + 1} maps")
        warped, warped_encoder_maps = self.warp_encoder_maps(encoder_maps, deformation, occlusion_map)
        deformed = deform_input(source_image, deformation)
        generated, out = self.decode_warped(warped, deformed, occlusion_map[-1])
        result = {key: dense_motion[key] for key in ("contribution_maps", "deformed_source") if key in dense_motion}
        result.update(
            occlusion_map=occlusion_map,
            deformation=deformation,
            deformed=deformed,
            warped_encoder_maps=warped_encoder_maps,
            generated=generated,
            prediction=out,
        )
        return result

    def forward(self, source_image: torch.Tensor, dense_motion: dict) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """``decode(source_image, encode(source_image), dense_motion)``."""
        return self.decode(source_image, self.encode(source_image), dense_motion)

    def get_encode(self, driver_image: torch.Tensor, occlusion_map: list[torch.Tensor]) -> list[torch.Tensor]:
        """Warp-loss targets: the driving frame's features times the occlusion maps, fine to coarse.

        ``first(driving) * occ[-1]`` at H, then each down block (on the detached, un-occluded
        previous features) times the next coarser map. Targets carry no gradient (features and
        occlusion maps are detached, as in the official code), so a warp loss on them trains only
        the deformation.
        """
        validate_image("driver_image", driver_image, self.num_channels)
        if len(occlusion_map) != self.num_down_blocks + 1:
            raise ValueError(f"occlusion_map must hold {self.num_down_blocks + 1} maps, got {len(occlusion_map)}")
        out = self.first(driver_image)
        maps = [out.detach() * occlusion_map[-1].detach()]
        for i, block in enumerate(self.down_blocks):
            out = block(out.detach())
            maps.append(out.detach() * occlusion_map[self.num_down_blocks - 1 - i].detach())
        return maps
