"""Loading official TPSMM checkpoints (``*.pth.tar``), strictly and without running pickled code.

An official checkpoint is a dict of state dicts under ``kp_detector``, ``dense_motion_network``,
``inpainting_network`` and optionally ``bg_predictor`` and ``avd_network``; ``optimizer*`` and
``epoch`` entries are ignored. It is read with ``torch.load(weights_only=True)`` only: a file that
needs arbitrary code to unpickle is refused. Every missing or unexpected key and every shape
mismatch is an error that names the network, the key and the shapes.
"""

from __future__ import annotations

import logging
import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from tps.config import AVDConfig, TPSConfig, get_preset
from tps.model import NETWORK_NAMES, TPSMotionModel, check_state_dict

__all__ = ["load_official_checkpoint", "read_official_checkpoint", "config_for_checkpoint"]

logger = logging.getLogger(__name__)

REQUIRED = ("kp_detector", "dense_motion_network", "inpainting_network")
OPTIONAL = ("bg_predictor", "avd_network")


def read_official_checkpoint(path: str | Path) -> dict[str, Mapping[str, torch.Tensor]]:
    """The networks' state dicts of an official checkpoint (optimizer and epoch entries dropped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise ValueError(
            f"{path} cannot be loaded with torch.load(weights_only=True): it needs arbitrary code to "
            f"unpickle, which is never run. Re-save it as plain tensors. ({str(err).splitlines()[0]})"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"{path} is not a readable torch checkpoint: {err}") from err
    if not isinstance(raw, Mapping):
        raise ValueError(f"{path} must hold a dict of state dicts, got {type(raw).__name__}")
    ignored = [k for k in raw if k == "epoch" or str(k).startswith("optimizer")]
    unknown = sorted(str(k) for k in raw if k not in NETWORK_NAMES and k not in ignored)
    if unknown:
        raise ValueError(f"{path}: unexpected top-level entries {unknown}; expected {list(NETWORK_NAMES)}")
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise ValueError(f"{path}: missing networks {missing} (found {sorted(map(str, raw))})")
    networks = {}
    for name in NETWORK_NAMES:
        if name not in raw:
            continue
        state = raw[name]
        if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
            raise ValueError(f"{path}: entry {name!r} must be a state dict of tensors")
        networks[name] = state
    return networks


def config_for_checkpoint(
    config: TPSConfig, networks: Mapping[str, Mapping[str, torch.Tensor]], source: str = "checkpoint"
) -> TPSConfig:
    """``config`` with ``bg``/``avd`` set to what the checkpoint holds.

    A background predictor or AVD network that the checkpoint lacks is dropped from the config;
    one the config lacks is added (AVD bottleneck sizes read from the weights' shapes).
    """
    if config.bg != ("bg_predictor" in networks):
        logger.info("%s %s a bg_predictor: setting bg=%s", source, "has" if not config.bg else "lacks", not config.bg)
        config = config.replace(bg=not config.bg)
    if "avd_network" in networks and config.avd is None:
        state = networks["avd_network"]
        try:
            avd = AVDConfig(
                id_bottle_size=int(state["id_encoder.9.weight"].shape[0]),
                pose_bottle_size=int(state["pose_encoder.9.weight"].shape[0]),
            )
        except KeyError as err:
            raise ValueError(f"{source}: avd_network lacks {err.args[0]!r}") from err
        logger.info("%s has an avd_network: adding %s", source, avd)
        config = config.replace(avd=avd)
    elif "avd_network" not in networks and config.avd is not None:
        logger.info("%s has no avd_network: setting avd=None", source)
        config = config.replace(avd=None)
    return config


def load_official_checkpoint(
    path: str | Path, config: TPSConfig | str = "ted-384", map_location: str | torch.device = "cpu"
) -> TPSMotionModel:
    """Build a `TPSMotionModel` for ``config`` (a `TPSConfig` or preset name) and load ``path``.

    Strict: every network's keys and shapes must match the model built from ``config``
    (ValueError naming network, key and shapes otherwise). ``bg``/``avd`` follow what the
    checkpoint holds (see `config_for_checkpoint`). Returns the model in eval mode.
    """
    if isinstance(config, str):
        config = get_preset(config)
    if not isinstance(config, TPSConfig):
        raise TypeError(f"config must be a TPSConfig or a preset name, got {type(config).__name__}")
    networks = read_official_checkpoint(path)
    config = config_for_checkpoint(config, networks, source=str(path))
    model = TPSMotionModel(config)
    for name, state in networks.items():
        module = getattr(model, name)
        check_state_dict(module, dict(state), source=f"{path} [{name}]")
        module.load_state_dict(state, strict=True)
    logger.info("loaded %s (%s) into a %d-parameter model", path, ", ".join(networks), model.num_parameters())
    return model.to(map_location).eval()
