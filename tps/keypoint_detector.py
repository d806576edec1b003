"""Keypoint detector and background motion predictor (ResNet-18 regressors).

Checkpoint keys: ``fg_encoder.*`` (KPDetector) and ``bg_encoder.*`` (BGMotionPredictor).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tps.resnet import resnet18
from tps.transform import validate_image

__all__ = ["KPDetector", "BGMotionPredictor"]


class KPDetector(nn.Module):
    """``image [B, 3, H, W] in [0, 1] -> {"fg_kp": [B, K*5, 2]}``, (x, y) in (-1, 1).

    A ResNet-18 whose fc outputs ``K*5*2`` values, mapped by ``2*sigmoid - 1``; consecutive pairs
    are (x, y) and TPS k uses keypoints ``5k .. 5k+4``. ``input_size`` (height, width): images of
    another size are resized to it (bilinear, antialiased when shrinking) before the ResNet;
    None: used as they come (`TPSConfig.detector_size`).
    """

    def __init__(self, num_tps: int, num_channels: int = 3, width: int = 64,
                 input_size: tuple[int, int] | None = None) -> None:
        super().__init__()
        self.num_tps = num_tps
        self.num_channels = num_channels
        self.input_size = None if input_size is None else tuple(input_size)
        self.fg_encoder = resnet18(num_classes=num_tps * 5 * 2, in_channels=num_channels, width=width)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        validate_image("image", image, self.num_channels)
        if self.input_size is not None and tuple(image.shape[-2:]) != self.input_size:
            shrink = image.shape[-2] > self.input_size[0] or image.shape[-1] > self.input_size[1]
            image = F.interpolate(image, size=self.input_size, mode="bilinear", align_corners=False, antialias=shrink)
        fg_kp = torch.sigmoid(self.fg_encoder(image)) * 2 - 1
        return {"fg_kp": fg_kp.view(image.shape[0], self.num_tps * 5, 2)}


class BGMotionPredictor(nn.Module):
    """``(source, driving) [B, 3, H, W] -> [B, 3, 3]`` affine background transform.

    The matrix maps driving-frame coordinates to source coordinates (homogeneous, last row
    ``[0, 0, 1]``). The fc starts at zero weight and identity bias, so an untrained predictor
    gives the identity.
    """

    def __init__(self, num_channels: int = 3, width: int = 64) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.bg_encoder = resnet18(num_classes=6, in_channels=2 * num_channels, width=width)
        with torch.no_grad():
            self.bg_encoder.fc.weight.zero_()
            self.bg_encoder.fc.bias.copy_(torch.tensor([1.0, 0, 0, 0, 1, 0]))

    def forward(self, source_image: torch.Tensor, driving_image: torch.Tensor) -> torch.Tensor:
        validate_image("source_image", source_image, self.num_channels)
        validate_image("driving_image", driving_image, self.num_channels)
        if source_image.shape != driving_image.shape:
            raise ValueError(
                f"source_image {tuple(source_image.shape)} and driving_image {tuple(driving_image.shape)} differ"
            )
        b = source_image.shape[0]
        params = self.bg_encoder(torch.cat([source_image, driving_image], dim=1))
        last_row = torch.tensor([0.0, 0.0, 1.0], dtype=params.dtype, device=params.device).expand(b, 1, 3)
        return torch.cat([params.view(b, 2, 3), last_row], dim=1)
