"""AVD network: re-targets driving keypoints onto the source identity (optional inference mode).

``rec = decoder(cat[pose_encoder(kp_driving), id_encoder(kp_source)])``: the pose comes from the
driving keypoints, the identity (shape) from the source's.
"""

from __future__ import annotations

import torch
from torch import nn

from tps.transform import validate_keypoints

__all__ = ["AVDNetwork"]

_HIDDEN = (256, 512, 1024)  # fixed in the official code


def _mlp(widths: list[int]) -> nn.Sequential:
    """Linear-BN1d-ReLU between hidden widths, a plain Linear at the end (official layout)."""
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1]))
        if i < len(widths) - 2:
            layers += [nn.BatchNorm1d(widths[i + 1]), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class AVDNetwork(nn.Module):
    """``(kp_source, kp_driving) [B, K*5, 2] -> [B, K*5, 2]`` keypoints with the driving pose.

    Accepts tensors or official ``{"fg_kp": tensor}`` dicts; always returns a tensor.
    Batch-norm layers: use eval mode for inference (batch statistics need B > 1).
    """

    def __init__(self, num_tps: int, id_bottle_size: int = 64, pose_bottle_size: int = 64) -> None:
        super().__init__()
        self.num_tps = num_tps
        input_size = 5 * 2 * num_tps
        self.id_encoder = _mlp([input_size, *_HIDDEN, id_bottle_size])
        self.pose_encoder = _mlp([input_size, *_HIDDEN, pose_bottle_size])
        self.decoder = _mlp([pose_bottle_size + id_bottle_size, *reversed(_HIDDEN), input_size])

    def forward(
        self, kp_source: torch.Tensor | dict[str, torch.Tensor], kp_driving: torch.Tensor | dict[str, torch.Tensor]
    ) -> torch.Tensor:
        num_kp = self.num_tps * 5
        kp_source = validate_keypoints("kp_source", kp_source, num_kp)
        kp_driving = validate_keypoints("kp_driving", kp_driving, num_kp)
        b = kp_driving.shape[0]
        if kp_source.shape[0] not in (1, b):
            raise ValueError(f"kp_source batch {kp_source.shape[0]} must be 1 or kp_driving's batch {b}")
        kp_source = kp_source.expand(b, -1, -1)
        pose = self.pose_encoder(kp_driving.reshape(b, -1))
        identity = self.id_encoder(kp_source.reshape(b, -1))
        return self.decoder(torch.cat([pose, identity], dim=1)).view(b, num_kp, 2)
