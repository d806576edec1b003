"""Configuration of the Thin-Plate-Spline Motion Model: nested frozen dataclasses and presets.

A `TPSConfig` fully describes the architecture (and the image size it was built for), so a saved
model (safetensors + config.json) always carries its architecture. `from_dict` rejects unknown
keys at every level, naming them, so a misspelled option never passes silently.

Presets:
- ``ted-384``: the official TED-384 widths (config/ted-384.yaml), 384x384, background predictor
  and AVD network present. Its state dict has exactly the keys and shapes of the official
  TED checkpoint.
- ``lite-256``: the CPU demo model, 256x256. Same topology and num_tps as ted-384, narrower:
  ResNet-18s of half width (32; 2.8M parameters each instead of 11.2M, so the bundled weights
  stay small), inpainting widths 16..128 (ted: 64..512; the inpainting network is 94%
  of ted-384's FLOPs, all of it at H..H/8) and dense-motion hourglass widths 32..256 (ted:
  64..1024). Per frame at 256x256 (torch.utils.flop_counter): dense motion + inpainting
  23.1 GFLOP vs 269.4 (0.086); with the detector 24.3 vs 274.1 (0.089).
  tests/tps/test_config.py asserts both ratios <= 1/8. No AVD network (it needs its own
  training run).
- ``tiny-64``: for tests only. 64x64, a 3-block hourglass (64 * 0.25 = 16 -> 8 -> 4 -> 2), widths
  of 8..32 and a ResNet-18 of width 16; a forward pass takes milliseconds.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

__all__ = [
    "KEYPOINT_SOURCES",
    "GeneratorConfig",
    "DenseMotionConfig",
    "AVDConfig",
    "TPSConfig",
    "PRESETS",
    "get_preset",
    "config_from_official",
]


#: Where a model's driving keypoints come from (`TPSConfig.keypoint_source`).
KEYPOINT_SOURCES = ("detector", "given")


def check_keys(cls: type, data: Mapping[str, Any], where: str, ignore: frozenset[str] = frozenset()) -> None:
    """Strict config reading: TypeError unless ``data`` is a mapping, ValueError naming every key
    that is not a field of the dataclass ``cls`` (keys in ``ignore`` are let through)."""
    if not isinstance(data, Mapping):
        raise TypeError(f"{where}: expected a mapping, got {type(data).__name__}")
    allowed = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - allowed - ignore)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(allowed)}")


_check_keys = check_keys


def _positive_int(where: str, name: str, value: Any) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{where}.{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class GeneratorConfig:
    """Inpainting network widths: encoder ``be, 2be, 4be, ...`` capped at ``max_features``."""

    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 3

    def __post_init__(self) -> None:
        for name in ("block_expansion", "max_features", "num_down_blocks"):
            _positive_int("generator", name, getattr(self, name))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GeneratorConfig:
        _check_keys(cls, data, "generator")
        return cls(**data)


@dataclass(frozen=True)
class DenseMotionConfig:
    """Dense motion network: hourglass widths, depth, working scale and heatmap variance."""

    block_expansion: int = 64
    max_features: int = 1024
    num_blocks: int = 5
    scale_factor: float = 0.25
    kp_variance: float = 0.01

    def __post_init__(self) -> None:
        for name in ("block_expansion", "max_features", "num_blocks"):
            _positive_int("dense_motion", name, getattr(self, name))
        inv = 1.0 / self.scale_factor if self.scale_factor > 0 else math.inf
        if not (0 < self.scale_factor <= 1) or 2 ** round(math.log2(inv)) != inv:
            raise ValueError(
                f"dense_motion.scale_factor must be 1/2**n (1, 0.5, 0.25, ...), got {self.scale_factor!r}"
            )
        if not self.kp_variance > 0:
            raise ValueError(f"dense_motion.kp_variance must be > 0, got {self.kp_variance!r}")

    @property
    def up_nums(self) -> int:
        """How many x2 up blocks bring the dense-motion resolution back to the image's."""
        return round(math.log2(1.0 / self.scale_factor))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DenseMotionConfig:
        _check_keys(cls, data, "dense_motion")
        return cls(**data)


@dataclass(frozen=True)
class AVDConfig:
    """AVD network bottlenecks (the hidden widths 256/512/1024 are fixed, as in the official code)."""

    id_bottle_size: int = 128
    pose_bottle_size: int = 128

    def __post_init__(self) -> None:
        _positive_int("avd", "id_bottle_size", self.id_bottle_size)
        _positive_int("avd", "pose_bottle_size", self.pose_bottle_size)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AVDConfig:
        _check_keys(cls, data, "avd")
        return cls(**data)


@dataclass(frozen=True)
class TPSConfig:
    """The whole model. ``avd=None`` means no AVD network; ``bg=False`` no background predictor.

    ``image_size`` is (height, width) of the frames the model was built/trained for. The networks
    accept any size that is a multiple of `size_multiple`; the image size is what a renderer
    resizes photos to.
    ``detector_width`` is the stem width of both ResNet-18s (64 = torchvision's and the official
    one; smaller values are for test models only).
    ``keypoint_source``: where the keypoints that drive the dense motion come from: ``"detector"``
    (the model's own keypoint detector, the official way) or ``"given"`` (trained on keypoints
    given per frame from outside, e.g. body landmarks; the detector is unused and a caller must
    pass ``kp_source``). Config files without it mean ``"detector"``, and `to_dict` writes it
    only when it is ``"given"``, so detector models and official checkpoints keep their files.
    ``detector_size``: (height, width) the keypoint detector sees; frames of another size are
    resized to it first (bilinear). None (default, every official model): the frames as they
    come. Used by renderers trained at a smaller ``image_size`` with the detector of a larger
    one kept (its regression head reads global features, so its keypoints depend on the input
    size: lite-256 weights gave keypoints 0.12-0.15 apart at 128 and 256 input, 0.035 with the
    128 frames upsampled to 256; ad-hoc session measurements on four photos). Written by `to_dict` only when set.
    """

    num_tps: int = 10
    num_channels: int = 3
    bg: bool = True
    multi_mask: bool = True
    image_size: tuple[int, int] = (384, 384)
    detector_width: int = 64
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)
    avd: AVDConfig | None = field(default_factory=AVDConfig)
    keypoint_source: str = "detector"
    detector_size: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.keypoint_source not in KEYPOINT_SOURCES:
            raise ValueError(f"config.keypoint_source must be one of {KEYPOINT_SOURCES}, got {self.keypoint_source!r}")
        for name in ("num_tps", "num_channels", "detector_width"):
            _positive_int("config", name, getattr(self, name))
        for name in ("bg", "multi_mask"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"config.{name} must be a bool, got {getattr(self, name)!r}")
        size = tuple(self.image_size)
        if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
            raise ValueError(f"config.image_size must be (height, width) positive ints, got {self.image_size!r}")
        object.__setattr__(self, "image_size", size)
        if self.detector_size is not None:
            detector = tuple(self.detector_size) if isinstance(self.detector_size, (list, tuple)) else ()
            if len(detector) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                                             for s in detector):
                raise ValueError(
                    f"config.detector_size must be None or (height, width) positive ints, got {self.detector_size!r}"
                )
            object.__setattr__(self, "detector_size", detector)
        if not self.multi_mask:
            raise ValueError(
                "config.multi_mask=False is not supported (every official config uses multi-mask occlusion)"
            )
        levels = self.dense_motion.up_nums + 2
        if levels != self.generator.num_down_blocks + 1:
            raise ValueError(
                f"dense_motion.scale_factor={self.dense_motion.scale_factor} gives {levels} occlusion maps but "
                f"generator.num_down_blocks={self.generator.num_down_blocks} needs "
                f"{self.generator.num_down_blocks + 1}"
            )
        for side, name in zip(size, ("height", "width")):
            if side % self.size_multiple:
                raise ValueError(
                    f"config.image_size {name} {side} must be a multiple of {self.size_multiple} "
                    f"(2**num_blocks / scale_factor)"
                )

    @property
    def num_kp(self) -> int:
        """Keypoints per frame: 5 per TPS transform."""
        return self.num_tps * 5

    @property
    def size_multiple(self) -> int:
        """Image height and width must be multiples of this (hourglass depth at the motion scale)."""
        return self.size_multiple_for(self.dense_motion, self.generator)

    @staticmethod
    def size_multiple_for(dense_motion: DenseMotionConfig, generator: GeneratorConfig) -> int:
        hourglass = 2**dense_motion.num_blocks * 2**dense_motion.up_nums
        return math.lcm(hourglass, 2**generator.num_down_blocks)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["image_size"] = list(self.image_size)
        if self.keypoint_source == "detector":  # the default: config files stay as they were
            del data["keypoint_source"]
        if self.detector_size is None:
            del data["detector_size"]
        else:
            data["detector_size"] = list(self.detector_size)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TPSConfig:
        _check_keys(cls, data, "config")
        data = dict(data)
        if "generator" in data:
            data["generator"] = GeneratorConfig.from_dict(data["generator"])
        if "dense_motion" in data:
            data["dense_motion"] = DenseMotionConfig.from_dict(data["dense_motion"])
        if data.get("avd") is not None:
            data["avd"] = AVDConfig.from_dict(data["avd"])
        if "image_size" in data:
            data["image_size"] = tuple(data["image_size"])
        return cls(**data)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> TPSConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def replace(self, **changes: Any) -> TPSConfig:
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, TPSConfig] = {
    "ted-384": TPSConfig(),
    "lite-256": TPSConfig(
        image_size=(256, 256),
        detector_width=32,
        generator=GeneratorConfig(block_expansion=16, max_features=128, num_down_blocks=3),
        dense_motion=DenseMotionConfig(block_expansion=32, max_features=256, num_blocks=5),
        avd=None,
    ),
    "tiny-64": TPSConfig(
        image_size=(64, 64),
        detector_width=16,
        generator=GeneratorConfig(block_expansion=8, max_features=32, num_down_blocks=3),
        dense_motion=DenseMotionConfig(block_expansion=8, max_features=32, num_blocks=3),
        avd=AVDConfig(id_bottle_size=16, pose_bottle_size=16),
    ),
}


def get_preset(name: str) -> TPSConfig:
    """The preset called ``name`` (see `PRESETS`)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]


_OFFICIAL_SECTIONS = {"common_params", "generator_params", "dense_motion_params", "avd_network_params"}


def config_from_official(model_params: Mapping[str, Any], image_size: tuple[int, int]) -> TPSConfig:
    """Build a `TPSConfig` from an official yaml's ``model_params`` section.

    ``model_params`` has ``common_params`` (num_tps, num_channels, bg, multi_mask),
    ``generator_params``, ``dense_motion_params`` and optionally ``avd_network_params``; unknown
    keys are errors. ``image_size`` is (height, width) (the yaml's ``dataset_params.frame_shape``).
    """
    _check_keys_set(model_params, _OFFICIAL_SECTIONS, "model_params")
    common = dict(model_params.get("common_params", {}))
    _check_keys_set(common, {"num_tps", "num_channels", "bg", "multi_mask"}, "model_params.common_params")
    avd_params = model_params.get("avd_network_params")
    return TPSConfig(
        **common,
        image_size=tuple(int(s) for s in image_size),
        generator=GeneratorConfig.from_dict(model_params.get("generator_params", {})),
        dense_motion=DenseMotionConfig.from_dict(model_params.get("dense_motion_params", {})),
        avd=None if avd_params is None else AVDConfig.from_dict(avd_params),
    )


def _check_keys_set(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    if not isinstance(data, Mapping):
        raise TypeError(f"{where}: expected a mapping, got {type(data).__name__}")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(allowed)}")
