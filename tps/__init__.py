"""tps: the Thin-Plate-Spline Motion Model (Zhao & Zhang, CVPR 2022), plain torch.

Networks with the official numerics and checkpoint keys, a config with presets, official
checkpoint loading and conversion to safetensors + config.json, and a renderer that prepares a
source once and renders batches of driving keypoints.
"""

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
