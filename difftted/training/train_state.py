"""Checkpoints of a denoiser training run: the pipeline's parts plus what ``--resume`` needs.

``checkpoint-<step>/``::

    denoiser/                    KeypointDenoiser.save_pretrained of the EMA weights
    scheduler/                   the inference scheduler's config (MotionTrainConfig.inference_scheduler)
    pipeline.json                fps, audio config, keypoint stats, sampling defaults (difftted.pipeline.weights)
    training_state/
        model.safetensors        the raw (non-EMA) weights
        optimizer.safetensors    the optimiser's tensors, keyed "<param index>.<name>"
        state.json               step, the optimiser's param groups and scalars, EMA counters

Only json and safetensors: resuming never unpickles anything. A checkpoint folder plus a
``renderer/`` folder is a complete pipeline folder (weights/README.md).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

logger = logging.getLogger(__name__)

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
STATE_DIR = "training_state"


def save_pipeline_parts(folder: Path, model, cfg, manifest: dict, coding) -> Path:
    """``denoiser/``, ``scheduler/`` and ``pipeline.json`` of ``model`` (its current weights);
    ``coding`` is the run's `difftted.motion.keypoints.MotionCoding` (its statistics go to pipeline.json)."""
    from difftted.audio.features import AudioFeatureConfig
    from difftted.pipeline.weights import write_pipeline_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder / "denoiser", safe_serialization=True)
    noise = cfg.build_noise_scheduler(manifest)
    cfg.build_inference_scheduler(noise).save_pretrained(folder / "scheduler")
    write_pipeline_json(folder, fps=manifest["fps"], audio_config=AudioFeatureConfig.from_dict(manifest["audio_config"]),
                        keypoint_stats=coding.stats, offset_stats=coding.offset_stats,
                        num_inference_steps=cfg.num_inference_steps,
                        guidance_scale=cfg.guidance_scale, relative_motion=cfg.relative_motion,
                        keypoints=manifest.get("keypoint_source") or "detector")
    return folder


def save_checkpoint(folder: Path, model, cfg, manifest: dict, coding, *, raw_parameters: list[torch.Tensor],
                    optimizer, ema, step: int) -> Path:
    """Write ``checkpoint-<step>``; ``model`` holds the EMA weights, ``raw_parameters`` the trained ones.

    Written to a temporary folder first and renamed, so a crash never leaves half a checkpoint
    that ``--resume`` would pick.
    """
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    save_pipeline_parts(tmp, model, cfg, manifest, coding)
    state_dir = tmp / STATE_DIR
    state_dir.mkdir()
    names = [name for name, _ in model.named_parameters()]
    assert len(names) == len(raw_parameters)
    raw = {n: p.detach().cpu().contiguous() for n, p in zip(names, raw_parameters)}
    save_file(raw, str(state_dir / "model.safetensors"))
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    save_file(opt_tensors, str(state_dir / "optimizer.safetensors"))
    ema_meta = {k: v for k, v in ema.state_dict().items() if k != "shadow_params"}
    (state_dir / "state.json").write_text(json.dumps({"step": step, "optimizer": opt_meta, "ema": ema_meta}, indent=1))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    logger.info("saved %s", folder)
    return folder


def load_training_state(folder: Path, model, optimizer) -> tuple[int, dict]:
    """Load the raw weights into ``model`` and the optimiser state; returns ``(step, ema_state)``
    where ``ema_state`` is what ``diffusers.training_utils.EMAModel.load_state_dict`` takes."""
    folder = Path(folder)
    state_dir = folder / STATE_DIR
    if not (state_dir / "state.json").is_file():
        raise ValueError(f"{str(folder)!r} is not a training checkpoint (no {STATE_DIR}/state.json)")
    meta = json.loads((state_dir / "state.json").read_text())
    missing, unexpected = model.load_state_dict(load_file(str(state_dir / "model.safetensors")), strict=False)
    if unexpected or [m for m in missing if m in dict(model.named_parameters())]:
        raise ValueError(f"{folder}: weights do not fit the model (missing {missing}, unexpected {unexpected})")
    optimizer.load_state_dict(_unflatten_optimizer(load_file(str(state_dir / "optimizer.safetensors")),
                                                   meta["optimizer"]))
    shadow = _load_denoiser_weights(folder / "denoiser")
    ema_state = dict(meta["ema"])
    ema_state["shadow_params"] = [shadow[name] for name, _ in model.named_parameters()]
    return int(meta["step"]), ema_state


def _load_denoiser_weights(folder: Path) -> dict[str, torch.Tensor]:
    files = sorted(folder.glob("*.safetensors"))
    if len(files) != 1:
        raise ValueError(f"{folder} must hold exactly one safetensors file, found {[f.name for f in files]}")
    return load_file(str(files[0]))


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{key}"] = value
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in state["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for flat, value in list(tensors.items()) + list(meta["scalars"].items()):
        index, key = flat.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    return {"state": state, "param_groups": groups}


def checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's ``checkpoint-<step>`` folders, oldest step first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in run_dir.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = checkpoints(run_dir)
    return found[-1] if found else None


def prune_checkpoints(run_dir: str | Path, total_limit: int) -> None:
    """Delete the oldest checkpoints so that at most ``total_limit`` remain."""
    found = checkpoints(run_dir)
    for old in found[: max(len(found) - total_limit, 0)]:
        shutil.rmtree(old)
        logger.info("removed %s (checkpoints_total_limit %d)", old, total_limit)
