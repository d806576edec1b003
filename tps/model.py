"""`TPSMotionModel`: the five networks of the Thin-Plate-Spline Motion Model and their config.

Saved as a folder: ``model.safetensors`` (state dict, keys ``<network>.<official key>``) and
``config.json`` (`TPSConfig.to_dict`), so the architecture always travels with the weights.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from torch import nn

from tps.avd import AVDNetwork
from tps.config import TPSConfig
from tps.dense_motion import DenseMotionNetwork
from tps.inpainting import InpaintingNetwork
from tps.keypoint_detector import BGMotionPredictor, KPDetector
from tps.transform import validate_image, validate_keypoints

__all__ = ["TPSMotionModel", "WEIGHTS_NAME", "CONFIG_NAME", "NETWORK_NAMES"]

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
NETWORK_NAMES = ("kp_detector", "dense_motion_network", "inpainting_network", "bg_predictor", "avd_network")


class TPSMotionModel(nn.Module):
    """Keypoint detector, dense motion, inpainting, optional background predictor and AVD.

    ``bg_predictor`` is None when ``config.bg`` is False, ``avd_network`` None when ``config.avd``
    is None. Attribute names are the official checkpoint's top-level names.
    """

    def __init__(self, config: TPSConfig) -> None:
        super().__init__()
        if not isinstance(config, TPSConfig):
            raise TypeError(f"config must be a TPSConfig, got {type(config).__name__}")
        self.config = config
        c, g, d = config, config.generator, config.dense_motion
        self.kp_detector = KPDetector(c.num_tps, c.num_channels, width=c.detector_width, input_size=c.detector_size)
        self.dense_motion_network = DenseMotionNetwork(
            block_expansion=d.block_expansion, num_blocks=d.num_blocks, max_features=d.max_features,
            num_tps=c.num_tps, num_channels=c.num_channels, scale_factor=d.scale_factor, bg=c.bg,
            multi_mask=c.multi_mask, kp_variance=d.kp_variance,
        )
        self.inpainting_network = InpaintingNetwork(
            num_channels=c.num_channels, block_expansion=g.block_expansion, max_features=g.max_features,
            num_down_blocks=g.num_down_blocks, multi_mask=c.multi_mask,
        )
        self.bg_predictor = BGMotionPredictor(c.num_channels, width=c.detector_width) if c.bg else None
        self.avd_network = (
            AVDNetwork(c.num_tps, c.avd.id_bottle_size, c.avd.pose_bottle_size) if c.avd is not None else None
        )

    @classmethod
    def from_config(cls, config: TPSConfig | str) -> TPSMotionModel:
        """A randomly initialised model; ``config`` may be a preset name."""
        if isinstance(config, str):
            from tps.config import get_preset

            config = get_preset(config)
        return cls(config)

    def networks(self) -> dict[str, nn.Module]:
        """The networks present, by official top-level name."""
        return {name: getattr(self, name) for name in NETWORK_NAMES if getattr(self, name) is not None}

    def num_parameters(self, only_trainable: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not only_trainable)

    def check_image(self, name: str, image: torch.Tensor) -> None:
        """Type, rank, channels, range and size (a multiple of ``config.size_multiple``)."""
        validate_image(name, image, self.config.num_channels)
        h, w = image.shape[-2:]
        m = self.config.size_multiple
        if h % m or w % m:
            raise ValueError(
                f"{name} size {h}x{w} (HxW) is not supported: height and width must be multiples of {m}"
            )

    def detect(self, image: torch.Tensor) -> torch.Tensor:
        """``image [B, 3, H, W] in [0, 1] -> keypoints [B, K*5, 2]`` (x, y) in (-1, 1)."""
        return self.kp_detector(image)["fg_kp"]

    def forward(
        self,
        source: torch.Tensor,
        kp_driving: torch.Tensor,
        kp_source: torch.Tensor | None = None,
        bg_param: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor | list[torch.Tensor]]:
        """One-frame reconstruction, the official path: dense motion then inpainting.

        source ``[B|1, 3, H, W]`` in [0, 1]; kp_driving ``[B, K*5, 2]``; kp_source ``[B|1, K*5, 2]``
        (detected from ``source`` when None); bg_param ``[B, 3, 3]`` or None (identity background).
        Returns the inpainting outputs (``prediction [B, 3, H, W]`` ...) plus ``kp_source``.
        """
        self.check_image("source", source)
        kp_driving = validate_keypoints("kp_driving", kp_driving, self.config.num_kp)
        if kp_source is None:
            kp_source = self.detect(source)
        kp_source = validate_keypoints("kp_source", kp_source, self.config.num_kp)
        dense_motion = self.dense_motion_network(source, kp_driving, kp_source, bg_param=bg_param)
        out = self.inpainting_network(source, dense_motion)
        out["kp_source"] = kp_source
        return out

    # ---- persistence ----------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write ``model.safetensors`` and ``config.json`` into ``directory`` (created)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": "pt"})
        self.config.save(directory / CONFIG_NAME)
        logger.info("saved TPSMotionModel (%d parameters) to %s", self.num_parameters(), directory)
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> TPSMotionModel:
        """Load a folder written by `save_pretrained`, strictly (missing/unexpected keys are errors)."""
        from safetensors.torch import load_file

        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path} not found: a TPSMotionModel folder holds {CONFIG_NAME} and {WEIGHTS_NAME}"
                )
        try:
            config = TPSConfig.from_dict(json.loads(config_path.read_text()))
        except (ValueError, TypeError) as err:
            raise ValueError(f"{config_path}: {err}") from err
        model = cls(config)
        state = load_file(str(weights_path), device=str(map_location))
        check_state_dict(model, state, source=str(weights_path))
        model.load_state_dict(state, strict=True)
        return model.eval()


def check_state_dict(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """ValueError naming every missing or unexpected key and every shape mismatch."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: file has {tuple(state[k].shape)}, model expects {tuple(expected[k].shape)}"
        for k in sorted(set(state) & set(expected))
        if tuple(state[k].shape) != tuple(expected[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys {_clip(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_clip(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes {_clip(wrong)}")
    if problems:
        raise ValueError(f"{source} does not match the model: " + "; ".join(problems))


def _clip(items: list[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return f"[{shown}{f', ... ({len(items) - limit} more)' if len(items) > limit else ''}]"


def flops_per_frame(config: TPSConfig, height: int | None = None, width: int | None = None) -> dict[str, int]:
    """FLOPs of one frame (batch 1), counted by ``torch.utils.flop_counter`` on meta tensors.

    Returns ``{"dense_motion", "inpainting", "detector", "render", "total"}``: ``render`` is
    dense motion + inpainting (the detector-less path of rendering generated keypoints),
    ``total`` adds one detector pass. A multiply-add counts as 2 FLOPs. Size defaults to
    ``config.image_size``.
    """
    from torch.utils.flop_counter import FlopCounterMode

    h, w = config.image_size if height is None else (height, width if width is not None else height)
    with torch.device("meta"):
        model = TPSMotionModel(config).eval()
        image = torch.empty(1, config.num_channels, h, w)
        kp = torch.empty(1, config.num_kp, 2)
    counts = {}
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            dense_motion = model.dense_motion_network(image, kp, kp)
        counts["dense_motion"] = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            model.inpainting_network(image, dense_motion)
        counts["inpainting"] = counter.get_total_flops()
        with FlopCounterMode(display=False) as counter:
            model.detect(image)
        counts["detector"] = counter.get_total_flops()
    counts["render"] = counts["dense_motion"] + counts["inpainting"]
    counts["total"] = counts["render"] + counts["detector"]
    return counts
