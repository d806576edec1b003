"""``python -m tps convert CHECKPOINT.pth.tar --config CONFIG --out DIR``.

Converts an official TPSMM checkpoint to the project's format (``model.safetensors`` +
``config.json``, loadable with `TPSMotionModel.from_pretrained`). ``--config`` is a preset name
(``ted-384``, ``lite-256``, ...), a project ``config.json``, a JSON holding an official
``model_params`` section, or an official yaml (``config/ted-384.yaml``; its
``dataset_params.frame_shape`` gives the image size).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from tps.checkpoint import load_official_checkpoint
from tps.commands import print_error
from tps.config import PRESETS, TPSConfig, config_from_official

__all__ = ["main", "resolve_config", "convert"]

logger = logging.getLogger(__name__)


def _official_image_size(data: dict[str, Any], override: tuple[int, int] | None, source: str) -> tuple[int, int]:
    if override is not None:
        return override
    if "image_size_HW" in data:
        return tuple(int(s) for s in data["image_size_HW"][:2])
    frame_shape = data.get("dataset_params", {}).get("frame_shape")
    if frame_shape is not None:
        return tuple(int(s) for s in frame_shape[:2])
    raise ValueError(f"{source} gives no image size (dataset_params.frame_shape): pass --image-size H W")


def resolve_config(spec: str, image_size: tuple[int, int] | None = None) -> TPSConfig:
    """A `TPSConfig` from a preset name or a config file (see the module docstring)."""
    if spec in PRESETS:
        config = PRESETS[spec]
        return config if image_size is None else config.replace(image_size=image_size)
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"--config {spec!r} is neither a preset ({', '.join(PRESETS)}) nor an existing file")
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as err:  # PyYAML arrives with accelerate/huggingface-hub
            raise ValueError(f"reading {path} needs PyYAML (pip install pyyaml)") from err
        data = yaml.safe_load(path.read_text())
    else:
        data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping, got {type(data).__name__}")
    if "model_params" in data:
        return config_from_official(data["model_params"], _official_image_size(data, image_size, str(path)))
    config = TPSConfig.from_dict(data)
    return config if image_size is None else config.replace(image_size=image_size)


def convert(checkpoint: str | Path, config: TPSConfig, out: str | Path) -> Path:
    """Load ``checkpoint`` strictly for ``config`` and save it to ``out``; returns ``out``."""
    model = load_official_checkpoint(checkpoint, config)
    return model.save_pretrained(out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tps convert", description=__doc__.split("\n\n")[1])
    parser.add_argument("checkpoint", help="official *.pth.tar (read with torch.load(weights_only=True))")
    parser.add_argument("--config", required=True, help=f"preset ({', '.join(PRESETS)}) or a config file")
    parser.add_argument("--out", required=True, help="output folder (model.safetensors + config.json)")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="override the image size")
    parser.add_argument("--force", action="store_true", help="overwrite an existing model in --out")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out)
    if (out / "model.safetensors").exists() and not args.force:
        print_error(f"{out} already holds a model; pass --force to overwrite")
        return 1
    try:
        config = resolve_config(args.config, tuple(args.image_size) if args.image_size else None)
        convert(args.checkpoint, config, out)
    except (ValueError, FileNotFoundError) as err:
        print_error(err)
        return 1
    saved = TPSConfig.load(out / "config.json")
    print(f"wrote {out / 'model.safetensors'} and {out / 'config.json'} "
          f"(num_tps {saved.num_tps}, image {saved.image_size[0]}x{saved.image_size[1]}, "
          f"bg {saved.bg}, avd {saved.avd is not None})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
