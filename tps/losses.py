"""Training losses of the Thin-Plate-Spline Motion Model (Zhao & Zhang 2022, sec. 3.5).

The official ``GeneratorFullModel`` computes, for a (source, driving) pair of one video:

- perceptual: ``sum_scales sum_layers w_l * mean|phi(pred) - phi(driving)|`` over an
  anti-aliased pyramid (scales 1, 0.5, 0.25, 0.125), phi = VGG-19 relu1_1..relu5_1 or the
  download-free `tps.vgg.RandomFeatures`;
- equivariance: keypoints must follow a random TPS warp of the driving frame,
  ``w * mean|kp(D) - T(kp(T^-1 D))|`` with the frame warped by ``grid_sample(reflection)``;
- warp: the driving frame's own encoder features (times the occlusion maps) must match the
  source features warped by the predicted flow, ``w * sum_levels mean|enc - warped|``; both
  sides are detached, so only the flow (dense-motion network) learns from it;
- background: the background transforms source->driving and driving->source must compose to the
  identity, ``w * mean|I - B(s, d) @ B(d, s)|``.

`TPSTrainingModel` runs every network call one step needs inside one ``forward`` (so one
DistributedDataParallel wrapper sees them all); `compute_losses` turns its outputs into the
weighted scalar losses.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from tps.blocks import ImagePyramid
from tps.config import check_keys
from tps.transform import TPS
from tps.vgg import RandomFeatures, load_vgg19

__all__ = [
    "LossConfig",
    "PerceptualPyramidLoss",
    "build_perceptual_loss",
    "equivariance_loss",
    "warp_loss",
    "background_loss",
    "TPSTrainingModel",
    "compute_losses",
]


@dataclass(frozen=True)
class LossConfig:
    """Loss weights and options; defaults are the official TED values (all weights 10).

    ``perceptual``: one weight per feature layer (5 for VGG-19, 4 for `RandomFeatures` with
    three stages) or a single float for every layer. ``vgg19_weights``: path of an ImageNet
    VGG-19 weights file, or None for `RandomFeatures`. A weight of 0 switches a term off.
    """

    scales: tuple[float, ...] = (1.0, 0.5, 0.25, 0.125)
    perceptual: float | tuple[float, ...] = 10.0
    equivariance: float = 10.0
    warp: float = 10.0
    bg: float = 10.0
    sigma_affine: float = 0.05
    sigma_tps: float = 0.005
    points_tps: int = 5
    vgg19_weights: str | None = None
    random_feature_channels: tuple[int, ...] = (16, 32, 64)
    random_feature_seed: int = 0

    def __post_init__(self) -> None:
        for name in ("scales", "random_feature_channels"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not isinstance(self.perceptual, (int, float)):
            object.__setattr__(self, "perceptual", tuple(float(w) for w in self.perceptual))
        if not self.scales or any(not 0 < s <= 1 for s in self.scales):
            raise ValueError(f"loss.scales must be in (0, 1], got {self.scales!r}")
        for name in ("equivariance", "warp", "bg", "sigma_affine", "sigma_tps"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.points_tps < 2:
            raise ValueError(f"loss.points_tps must be >= 2, got {self.points_tps!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LossConfig:
        check_keys(cls, data, "loss")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


class PerceptualPyramidLoss(nn.Module):
    """``forward(prediction, target [B, 3, H, W] in [0, 1]) -> scalar``.

    ``extractor`` maps an image to a list of feature maps; ``weights`` has one entry per map.
    Target features are detached (the official loss does the same).
    """

    def __init__(self, extractor: nn.Module, weights: tuple[float, ...], scales: tuple[float, ...]) -> None:
        super().__init__()
        self.extractor = extractor.requires_grad_(False).eval()
        self.pyramid = ImagePyramid(list(scales), num_channels=3)
        self.weights = tuple(float(w) for w in weights)
        probe = extractor(torch.zeros(1, 3, 32, 32))
        if len(probe) != len(self.weights):
            raise ValueError(
                f"loss.perceptual has {len(self.weights)} weights but the feature extractor returns {len(probe)} maps"
            )

    def train(self, mode: bool = True) -> PerceptualPyramidLoss:
        super().train(mode)
        self.extractor.eval()  # a fixed feature extractor never changes mode
        return self

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if prediction.shape != target.shape:
            raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ")
        pred_pyramid = self.pyramid(prediction)
        with torch.no_grad():
            target_pyramid = self.pyramid(target.detach())
        total = prediction.new_zeros(())
        for key, pred in pred_pyramid.items():
            pred_features = self.extractor(pred)
            with torch.no_grad():
                target_features = self.extractor(target_pyramid[key])
            for weight, a, b in zip(self.weights, pred_features, target_features):
                if weight:
                    total = total + weight * (a - b.detach()).abs().mean()
        return total


def build_perceptual_loss(config: LossConfig) -> PerceptualPyramidLoss:
    """VGG-19 perceptual loss when ``config.vgg19_weights`` is set, else the random-feature one."""
    if config.vgg19_weights:
        extractor: nn.Module = load_vgg19(config.vgg19_weights)
    else:
        extractor = RandomFeatures(config.random_feature_channels, seed=config.random_feature_seed)
    num_maps = len(extractor(torch.zeros(1, 3, 32, 32)))
    weights = config.perceptual
    if isinstance(weights, (int, float)):
        weights = (float(weights),) * num_maps
    return PerceptualPyramidLoss(extractor, tuple(weights), config.scales)


def equivariance_loss(kp_driving: torch.Tensor, kp_back: torch.Tensor) -> torch.Tensor:
    """``mean|kp_driving - kp_back|``; ``kp_back = T(kp(warped driving))``, both ``[B, N, 2]``."""
    return (kp_driving - kp_back).abs().mean()


def warp_loss(encode_maps: list[torch.Tensor], warped_encoder_maps: list[torch.Tensor]) -> torch.Tensor:
    """``sum_levels mean|enc - warped|``; ``encode_maps`` fine to coarse, ``warped_encoder_maps``
    coarse to fine (as `InpaintingNetwork.get_encode` and ``decode`` return them).

    The targets are detached here as in the official code, so the gradient reaches only the flow.
    """
    if len(encode_maps) != len(warped_encoder_maps):
        raise ValueError(f"{len(encode_maps)} encoder maps but {len(warped_encoder_maps)} warped maps")
    total = warped_encoder_maps[0].new_zeros(())
    for i, target in enumerate(encode_maps):
        total = total + (target.detach() - warped_encoder_maps[-i - 1]).abs().mean()
    return total


def background_loss(bg_param: torch.Tensor, bg_param_reverse: torch.Tensor) -> torch.Tensor:
    """``mean|I - B(s, d) @ B(d, s)|`` of two ``[B, 3, 3]`` background transforms."""
    eye = torch.eye(3, dtype=bg_param.dtype, device=bg_param.device)
    return (eye - torch.matmul(bg_param, bg_param_reverse)).abs().mean()


class TPSTrainingModel(nn.Module):
    """The trainable networks of a `tps.model.TPSMotionModel` and one training forward.

    Holds (shares, not copies) ``kp_detector``, ``dense_motion_network``,
    ``inpainting_network`` and, when the model has one, ``bg_predictor``.
    """

    def __init__(self, model: nn.Module, config: LossConfig) -> None:
        super().__init__()
        self.kp_detector = model.kp_detector
        self.dense_motion_network = model.dense_motion_network
        self.inpainting_network = model.inpainting_network
        self.bg_predictor = getattr(model, "bg_predictor", None)
        self.config = config

    def forward(
        self, source: torch.Tensor, driving: torch.Tensor, dropout_flag: bool = False, dropout_p: float = 0.0,
        use_bg: bool = True, kp_source: torch.Tensor | None = None, kp_driving: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """source, driving: ``[B, 3, H, W]`` in [0, 1]. Returns the tensors `compute_losses` needs:
        ``prediction [B, 3, H, W]``, ``kp_driving``/``kp_back [B, N, 2]`` (or None when the
        equivariance weight is 0), ``encode_maps``/``warped_encoder_maps`` and
        ``bg_param``/``bg_param_reverse [B, 3, 3]`` (None without a background predictor).

        ``kp_source``/``kp_driving`` ``[B, N, 2]``: keypoints given from outside (both or
        neither); the detector is then not run and there is no equivariance term.
        """
        cfg = self.config
        given = kp_source is not None
        if given != (kp_driving is not None):
            raise ValueError("kp_source and kp_driving must be given together (or neither)")
        if not given:
            kp_source = self.kp_detector(source)["fg_kp"]
            kp_driving = self.kp_detector(driving)["fg_kp"]
        bg_param = bg_param_reverse = None
        if use_bg and self.bg_predictor is not None:
            bg_param = self.bg_predictor(source, driving)
            if cfg.bg:
                bg_param_reverse = self.bg_predictor(driving, source)
        dense_motion = self.dense_motion_network(
            source, kp_driving, kp_source, bg_param=bg_param, dropout_flag=dropout_flag, dropout_p=dropout_p
        )
        generated = self.inpainting_network(source, dense_motion)
        out: dict[str, Any] = {
            "prediction": generated["prediction"],
            "kp_driving": kp_driving,
            "kp_back": None,
            "encode_maps": None,
            "warped_encoder_maps": generated["warped_encoder_maps"],
            "bg_param": bg_param,
            "bg_param_reverse": bg_param_reverse,
        }
        if cfg.equivariance and not given:
            transform = TPS.random(driving.shape[0], cfg.sigma_affine, cfg.sigma_tps, cfg.points_tps,
                                   device=driving.device)
            grid = transform.transform_frame(*driving.shape[-2:]).to(driving.dtype)
            warped = F.grid_sample(driving, grid, padding_mode="reflection", align_corners=True)
            out["kp_back"] = transform.warp_coordinates(self.kp_detector(warped)["fg_kp"])
        if cfg.warp:
            out["encode_maps"] = self.inpainting_network.get_encode(driving, generated["occlusion_map"])
        return out


def compute_losses(
    outputs: Mapping[str, Any], driving: torch.Tensor, perceptual: PerceptualPyramidLoss, config: LossConfig
) -> dict[str, torch.Tensor]:
    """Weighted losses from `TPSTrainingModel` outputs: ``perceptual``, and where active
    ``equivariance``, ``warp``, ``bg``. Sum them for the generator objective."""
    losses = {"perceptual": perceptual(outputs["prediction"], driving)}
    if config.equivariance and outputs.get("kp_back") is not None:
        losses["equivariance"] = config.equivariance * equivariance_loss(outputs["kp_driving"], outputs["kp_back"])
    if config.warp and outputs.get("encode_maps") is not None:
        losses["warp"] = config.warp * warp_loss(outputs["encode_maps"], outputs["warped_encoder_maps"])
    if config.bg and outputs.get("bg_param_reverse") is not None:
        losses["bg"] = config.bg * background_loss(outputs["bg_param"], outputs["bg_param_reverse"])
    return losses
