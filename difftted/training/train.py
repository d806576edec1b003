"""Command: train the keypoint denoiser with accelerate.

Usage::

    accelerate launch -m difftted.train --config configs/difftted/small.json \\
        --data DATASET_DIR --out RUN_DIR [--resume] [--max-steps N] [--renderer TPS_DIR] [--cpu]

    # the same on 2 CPU processes (what the tests run):
    ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes 2 --num_machines 1 \\
        --mixed_precision no --dynamo_backend no -m difftted.train --config ... --cpu

    python -m difftted train ...       # one process, no launcher

DATASET_DIR comes from ``python -m difftted build-dataset``; the config is a json of
`MotionTrainConfig` fields (``denoiser`` holds `KeypointDenoiser` arguments; ``num_keypoints`` and
``audio_dim`` default to the dataset's). One optimisation step:

* a window of motion ``x0 [B, T, N*2]`` (normalised keypoints, or their offsets from the source
  frame's when the denoiser's ``motion_target`` is ``"source_offset"``; `difftted.data.windows`) is
  noised to a random DDPM step ``t``;
* the denoiser predicts ``config.prediction_type`` from ``x_t``, the audio features, the source
  keypoints and the context frames; the audio (``drop_audio``) and the context
  (``drop_context``) are replaced by their learned null embeddings at random, which trains the
  unconditional branch of classifier-free guidance;
* loss = ``loss_diffusion`` * MSE(prediction, target) + ``loss_x0`` * MSE(x0_hat, x0)
  + ``loss_velocity`` * MSE of frame differences + ``loss_acceleration`` * MSE of second
  frame differences + ``loss_pairwise`` * MSE of the pairwise
  keypoint distances within each frame (in keypoint units, after denormalising);
* with ``mask_out_of_frame`` every term leaves out the keypoints whose target lies outside the
  frame (|x| or |y| > 1): body keypoints of a hand below a head-and-shoulders crop are
  mediapipe's guesses, not motion to learn.

RUN_DIR receives ``losses.jsonl`` (one json line per ``log_every`` steps, validation metrics
included), ``train_config.json``, and ``checkpoint-<step>/`` folders (at most
``checkpoints_total_limit``), each a pipeline folder without renderer (``denoiser/`` with the EMA
weights, ``scheduler/``, ``pipeline.json`` with the keypoint stats, audio config and fps, as
`difftted.pipeline.weights` reads) plus ``training_state/`` for ``--resume`` (raw weights and optimiser
state as safetensors + json: no pickles). ``RUN_DIR/final/`` holds the last EMA weights, and the
renderer too when ``--renderer`` is given, which makes it a complete pipeline folder.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from difftted.motion.keypoints import MotionCoding
from difftted.training.train_config import MotionTrainConfig
from difftted.training.train_state import (latest_checkpoint, load_training_state, prune_checkpoints,
                                  save_checkpoint)
from tps.commands import print_error

logger = logging.getLogger(__name__)

LOSSES_FILE = "losses.jsonl"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m difftted train", description="train the keypoint denoiser")
    p.add_argument("--config", required=True, type=Path, help="training config json (configs/difftted/)")
    p.add_argument("--data", required=True, type=Path, help="dataset folder from build-dataset")
    p.add_argument("--out", required=True, type=Path, help="run folder (checkpoints, losses.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue from the run folder's latest checkpoint")
    p.add_argument("--max-steps", type=int, help="override the config's max_steps")
    p.add_argument("--renderer", type=Path, help="tps model folder copied into RUN_DIR/final/renderer")
    p.add_argument("--cpu", action="store_true", help="train on CPU even where a GPU exists")
    p.add_argument("--no-progress", action="store_true")
    return p


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the entries where ``mask`` (same shape, 0/1) is 1; 0 when none is."""
    return (mask * (prediction - target) ** 2).sum() / mask.sum().clamp_min(1.0)


def diffusion_losses(model, batch: dict[str, torch.Tensor], scheduler, cfg: MotionTrainConfig,
                     coding: MotionCoding) -> dict[str, torch.Tensor]:
    """The weighted loss terms of one batch (see the module docstring); ``"loss"`` is their sum.

    ``coding`` decodes samples to keypoints (with ``batch["source_raw"] [B, N*2]``) for the
    pairwise-distance term.
    """
    x0 = batch["keypoints"]
    b = x0.shape[0]
    noise = torch.randn_like(x0)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (b,), device=x0.device)
    x_t = scheduler.add_noise(x0, noise, t)
    drop_audio = torch.rand(b, device=x0.device) < cfg.drop_audio
    drop_context = (torch.rand(b, device=x0.device) < cfg.drop_context) | ~batch["has_context"]
    pred = model(x_t, t, batch["audio_features"], batch["source_keypoints"],
                 context=batch["context"] if batch["context"].shape[1] > 0 else None,
                 drop_audio=drop_audio, drop_context=drop_context)

    alpha_bar = scheduler.alphas_cumprod.to(x0.device)[t].view(b, 1, 1)
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        target, x0_hat = noise, (x_t - (1 - alpha_bar).sqrt() * pred) / alpha_bar.sqrt()
    elif kind == "sample":
        target, x0_hat = x0, pred
    else:  # v_prediction
        target, x0_hat = scheduler.get_velocity(x0, noise, t), alpha_bar.sqrt() * x_t - (1 - alpha_bar).sqrt() * pred
    mask = None
    if cfg.mask_out_of_frame:  # [B, T, N*2]: 1 where the target keypoint lies in the frame
        source = batch["source_raw"][:, None]
        inside = (coding.decode(x0, source).reshape(b, x0.shape[1], -1, 2).abs() <= 1.0).all(-1)
        mask = inside.to(x0.dtype).repeat_interleave(2, dim=-1)

    def mse(a: torch.Tensor, b_: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
        return torch.nn.functional.mse_loss(a, b_) if m is None else masked_mse(a, b_, m)

    def consecutive(m: torch.Tensor | None, n: int) -> torch.Tensor | None:  # frames t..t+n all inside
        return None if m is None else torch.stack([m[:, k:m.shape[1] - n + k] for k in range(n + 1)]).prod(0)

    terms = {"diffusion": mse(pred, target, mask)}
    if cfg.loss_x0:
        terms["x0"] = mse(x0_hat, x0, mask)
    if cfg.loss_velocity:
        terms["velocity"] = mse(x0_hat.diff(dim=1), x0.diff(dim=1), consecutive(mask, 1))
    if cfg.loss_acceleration:
        terms["acceleration"] = mse(x0_hat.diff(n=2, dim=1), x0.diff(n=2, dim=1), consecutive(mask, 2))
    if cfg.loss_pairwise:
        source = batch["source_raw"][:, None]  # [B, 1, N*2]

        def dist(x: torch.Tensor) -> torch.Tensor:
            kp = coding.decode(x, source).reshape(b * x.shape[1], -1, 2)
            return torch.cdist(kp, kp)
        point = None if mask is None else mask[..., ::2].reshape(-1, mask.shape[-1] // 2)  # [B*T, N]
        terms["pairwise"] = mse(dist(x0_hat), dist(x0), None if point is None else point[:, :, None] * point[:, None, :])
    weights = {"diffusion": cfg.loss_diffusion, "x0": cfg.loss_x0, "velocity": cfg.loss_velocity,
               "acceleration": cfg.loss_acceleration, "pairwise": cfg.loss_pairwise}
    out = {f"loss_{k}": v for k, v in terms.items()}
    out["loss"] = sum(weights[k] * v for k, v in terms.items())
    return out


class Validator:
    """Samples the validation clip with the current weights and measures the motion.

    The clip is the dataset's first ``test`` clip (else its first ``train`` clip), cut to
    ``validation_seconds``; the photo is its first frame. Metrics: Beat Consistency against the
    clip's audio, jitter, spread (`difftted.evaluation.metrics.motion_spread`) and L1 to the ground truth
    (keypoint units), next to the ground truth's own BC, jitter and spread.
    """

    def __init__(self, dataset_dir: Path, manifest: dict, coding: MotionCoding, cfg: MotionTrainConfig) -> None:
        from difftted.data.windows import load_clip

        entries = [e for e in manifest["clips"] if e["split"] == "test"] or manifest["clips"]
        clip = load_clip(dataset_dir, entries[0])
        self.fps = float(manifest["fps"])
        n = min(int(clip["keypoints"].shape[0]), max(2, int(round(cfg.validation_seconds * self.fps))))
        self.clip_id, self.cfg, self.coding, self.manifest = entries[0]["id"], cfg, coding, manifest
        self.truth = clip["keypoints"][:n]  # [n, N, 2]
        self.audio = torch.from_numpy(clip["audio_features"][:n]).float()  # [n, D]
        sr = int(clip["sample_rate"])
        self.waveform, self.sample_rate = clip["waveform"][: int(round(n / self.fps * sr))], sr
        self.reference = self._measure(self.truth)

    def _measure(self, keypoints) -> dict[str, float]:
        from difftted.evaluation import metrics

        return {"bc": metrics.beat_consistency(keypoints, self.waveform, self.sample_rate, self.fps),
                "jitter": metrics.jitter(keypoints, self.fps), "spread": metrics.motion_spread(keypoints)}

    @torch.no_grad()
    def __call__(self, model) -> dict[str, float]:
        from difftted.evaluation import metrics
        from difftted.motion.sampling import sample_motion

        was_training = model.training
        model.eval()
        scheduler = self.cfg.build_inference_scheduler(self.cfg.build_noise_scheduler(self.manifest))
        source = torch.from_numpy(self.coding.encode_source(self.truth[0]).reshape(-1)).float()
        generator = torch.Generator(device="cpu").manual_seed(self.cfg.seed)
        try:
            motion = sample_motion(model, scheduler, self.audio, source, window=self.cfg.window,
                                   num_inference_steps=self.cfg.num_inference_steps,
                                   guidance_scale=self.cfg.guidance_scale, generator=generator, progress=False)
        finally:
            model.train(was_training)
        generated = self.coding.decode(motion.reshape(self.truth.shape[0], -1, 2).float().cpu().numpy(),
                                       self.truth[0].astype(np.float32))
        out = self._measure(generated)
        out["l1"] = metrics.l1_distance(generated, self.truth)
        out.update({f"gt_{k}": v for k, v in self.reference.items()})
        # BC is NaN for a clip without motion or audio beats: null in the json log
        return {k: (float(v) if math.isfinite(v) else None) for k, v in out.items()}


def _infinite(loader):
    epoch = 0
    while True:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        yield from loader
        epoch += 1


@dataclass
class Run:
    """The components of a training run, prepared by accelerate."""

    accelerator: object
    cfg: MotionTrainConfig
    manifest: dict
    coding: MotionCoding
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    loader: object
    noise_scheduler: object
    ema: object
    step: int
    run_dir: Path
    validator: Validator | None


def setup(args: argparse.Namespace, accelerator) -> Run:
    """Config, data, model, optimiser and EMA; the latest checkpoint's state with ``--resume``."""
    from accelerate.utils import set_seed
    from diffusers.training_utils import EMAModel

    from difftted.data.dataset import load_manifest
    from difftted.data.windows import KeypointWindowDataset

    cfg = MotionTrainConfig.load(args.config)
    manifest = load_manifest(args.data)
    if args.max_steps is not None:
        cfg = cfg.replace(max_steps=args.max_steps)
    model, noise_scheduler = cfg.build_denoiser(manifest), cfg.build_noise_scheduler(manifest)
    dataset = KeypointWindowDataset(args.data, "train", window=cfg.window,
                                    context_frames=model.config.context_frames, stride=cfg.stride,
                                    motion_target=model.config.motion_target,
                                    offsets_inside_only=cfg.mask_out_of_frame)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, betas=tuple(cfg.adam_betas),
                                  weight_decay=cfg.weight_decay)
    resume_from = latest_checkpoint(args.out) if args.resume else None
    if args.resume and resume_from is None:
        logger.warning("--resume: no checkpoint in %s; starting from scratch", args.out)
    step, ema_state = 0, None
    if resume_from is not None:
        step, ema_state = load_training_state(resume_from, model, optimizer)
        logger.info("resumed from %s at step %d", resume_from, step)
    set_seed(cfg.seed + step, device_specific=True)  # a resumed run does not replay the same batches
    ema = EMAModel(model.parameters(), decay=cfg.ema_decay, use_ema_warmup=cfg.ema_warmup,
                   model_cls=type(model), model_config=model.config)
    if ema_state is not None:
        ema.load_state_dict(ema_state)
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
                                         num_workers=cfg.num_workers)
    if len(loader) == 0:
        raise ValueError(f"batch_size {cfg.batch_size} exceeds the {len(dataset)} training windows")
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    ema.to(accelerator.device)
    validator = None
    if accelerator.is_main_process:
        args.out.mkdir(parents=True, exist_ok=True)
        cfg.save(args.out / "train_config.json")
        validator = Validator(args.data, manifest, dataset.coding, cfg)
    return Run(accelerator, cfg, manifest, dataset.coding, model, optimizer, loader, noise_scheduler, ema,
               step, args.out, validator)


def train_step(run: Run, batch: dict[str, torch.Tensor]) -> dict:
    """One optimisation step (warm-up learning rate, loss, backward, clipping, update)."""
    acc, cfg = run.accelerator, run.cfg
    with acc.accumulate(run.model):
        run.model.train()
        for group in run.optimizer.param_groups:
            group["lr"] = cfg.learning_rate * min(1.0, (run.step + 1) / max(cfg.lr_warmup_steps, 1))
        losses = diffusion_losses(run.model, batch, run.noise_scheduler, cfg, run.coding)
        acc.backward(losses["loss"])
        if acc.sync_gradients and cfg.grad_clip:
            acc.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
        run.optimizer.step()
        run.optimizer.zero_grad(set_to_none=True)
    return losses


def validate_and_save(run: Run, validate: bool, checkpoint: bool) -> None:
    """On the main process, with the EMA weights: validation metrics and/or a checkpoint."""
    unwrapped = run.accelerator.unwrap_model(run.model)
    log_file = run.run_dir / LOSSES_FILE
    with ema_weights(unwrapped, run.ema) as raw_parameters:
        if validate:
            metrics = run.validator(unwrapped)
            logger.info("step %d validation: %s", run.step, ", ".join(f"{k} {v}" for k, v in metrics.items()))
            _append_jsonl(log_file, {"step": run.step, "validation": metrics})
        if checkpoint:
            save_checkpoint(run.run_dir / f"checkpoint-{run.step}", unwrapped, run.cfg, run.manifest, run.coding,
                            raw_parameters=raw_parameters, optimizer=run.optimizer, ema=run.ema, step=run.step)
            prune_checkpoints(run.run_dir, run.cfg.checkpoints_total_limit)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from accelerate import Accelerator

    acc = Accelerator(cpu=args.cpu)
    logging.basicConfig(level=logging.INFO if acc.is_main_process else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run = setup(args, acc)
    except ValueError as err:
        print_error(err)
        return 2
    cfg = run.cfg
    bar = tqdm(total=cfg.max_steps, initial=run.step, desc="train",
               disable=args.no_progress or not acc.is_local_main_process)
    batches, t_start = _infinite(run.loader), time.time()
    while run.step < cfg.max_steps:
        losses = train_step(run, next(batches))
        if not acc.sync_gradients:
            continue
        run.ema.step(acc.unwrap_model(run.model).parameters())
        run.step += 1
        bar.update(1)
        last = run.step == cfg.max_steps
        if run.step % cfg.log_every == 0 or last:
            logged = {k: acc.reduce(v.detach(), reduction="mean").item() for k, v in losses.items()}
            bar.set_postfix(loss=f"{logged['loss']:.4f}")
            if acc.is_main_process:
                _append_jsonl(run.run_dir / LOSSES_FILE, {
                    "step": run.step, **logged, "lr": run.optimizer.param_groups[0]["lr"],
                    "processes": acc.num_processes, "elapsed_s": round(time.time() - t_start, 2)})
        validate = bool(cfg.validate_every) and (run.step % cfg.validate_every == 0 or last)
        checkpoint = run.step % cfg.checkpoint_every == 0 or last
        if validate or checkpoint:
            if acc.is_main_process:
                validate_and_save(run, validate, checkpoint)
            acc.wait_for_everyone()
    bar.close()
    if acc.is_main_process:
        _export_final(run, args.renderer)
    acc.wait_for_everyone()
    acc.end_training()
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    return 0


@contextlib.contextmanager
def ema_weights(model, ema) -> Iterator[list[torch.Tensor]]:
    """Within the block ``model`` holds the EMA weights; yields copies of its own (raw) parameters,
    which are put back on exit."""
    raw = [p.detach().clone() for p in model.parameters()]
    ema.copy_to(model.parameters())
    try:
        yield raw
    finally:
        with torch.no_grad():
            for param, value in zip(model.parameters(), raw):
                param.copy_(value)


def _export_final(run: Run, renderer: Path | None) -> None:
    from difftted.training.train_state import save_pipeline_parts

    run_dir, model = run.run_dir, run.accelerator.unwrap_model(run.model)
    with ema_weights(model, run.ema):
        save_pipeline_parts(run_dir / "final", model, run.cfg, run.manifest, run.coding)
    if renderer is not None:
        from tps.model import TPSMotionModel

        TPSMotionModel.from_pretrained(renderer).save_pretrained(run_dir / "final" / "renderer")
    logger.info("final EMA weights in %s", run_dir / "final")


def _append_jsonl(path: Path, record: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    sys.exit(main())
