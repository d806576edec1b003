"""tps: the Thin-Plate-Spline Motion Model (Zhao & Zhang, CVPR 2022), plain torch.

Networks with the official numerics and checkpoint keys, a config with presets, official
checkpoint loading and conversion to safetensors + config.json, and a renderer that prepares a
source once and renders batches of driving keypoints.
"""

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AVDNetwork": "tps.avd",
    "AntiAliasInterpolation2d": "tps.blocks",
    "DownBlock2d": "tps.blocks",
    "Hourglass": "tps.blocks",
    "ImagePyramid": "tps.blocks",
    "ResBlock2d": "tps.blocks",
    "SameBlock2d": "tps.blocks",
    "UpBlock2d": "tps.blocks",
    "load_official_checkpoint": "tps.checkpoint",
    "PRESETS": "tps.config",
    "AVDConfig": "tps.config",
    "DenseMotionConfig": "tps.config",
    "GeneratorConfig": "tps.config",
    "TPSConfig": "tps.config",
    "get_preset": "tps.config",
    "DenseMotionNetwork": "tps.dense_motion",
    "InpaintingNetwork": "tps.inpainting",
    "BGMotionPredictor": "tps.keypoint_detector",
    "KPDetector": "tps.keypoint_detector",
    "TPSMotionModel": "tps.model",
    "flops_per_frame": "tps.model",
    "Part": "tps.parts",
    "PartLayout": "tps.parts",
    "PreparedSource": "tps.render",
    "Renderer": "tps.render",
    "resnet18": "tps.resnet",
    "TPS": "tps.transform",
    "make_coordinate_grid": "tps.transform",
}

if TYPE_CHECKING:
    from tps.avd import AVDNetwork
    from tps.blocks import (
        AntiAliasInterpolation2d,
        DownBlock2d,
        Hourglass,
        ImagePyramid,
        ResBlock2d,
        SameBlock2d,
        UpBlock2d,
    )
    from tps.checkpoint import load_official_checkpoint
    from tps.config import PRESETS, AVDConfig, DenseMotionConfig, GeneratorConfig, TPSConfig, get_preset
    from tps.dense_motion import DenseMotionNetwork
    from tps.inpainting import InpaintingNetwork
    from tps.keypoint_detector import BGMotionPredictor, KPDetector
    from tps.model import TPSMotionModel, flops_per_frame
    from tps.parts import Part, PartLayout
    from tps.render import PreparedSource, Renderer
    from tps.resnet import resnet18
    from tps.transform import TPS, make_coordinate_grid

__all__ = [
    "AVDConfig",
    "AVDNetwork",
    "AntiAliasInterpolation2d",
    "BGMotionPredictor",
    "DenseMotionConfig",
    "DenseMotionNetwork",
    "DownBlock2d",
    "GeneratorConfig",
    "Hourglass",
    "ImagePyramid",
    "InpaintingNetwork",
    "KPDetector",
    "PRESETS",
    "Part",
    "PartLayout",
    "PreparedSource",
    "Renderer",
    "ResBlock2d",
    "SameBlock2d",
    "TPS",
    "TPSConfig",
    "TPSMotionModel",
    "UpBlock2d",
    "flops_per_frame",
    "get_preset",
    "load_official_checkpoint",
    "make_coordinate_grid",
    "resnet18",
]


def __getattr__(name: str) -> Any:
    """Lazy exports: ``import tps`` (or ``tps.commands``) does not import torch; the first
    ``tps.Renderer`` / ``from tps import TPSMotionModel`` imports its module."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tps' has no attribute {name!r}")
