"""Train the Thin-Plate-Spline Motion Model on a folder of videos, under accelerate.

    accelerate launch -m tps.train --config configs/tps/lite-256.json --data DIR --out RUN_DIR
    python -m tps train --config ... --data ... --out ... [--resume] [--max-steps N] [--cpu]

The official recipe (train.py / GeneratorFullModel of the TPSMM code, see `tps.losses`): Adam
(lr 2e-4, betas (0.5, 0.999), weight decay 1e-4) on detector + dense motion + inpainting and a
second Adam for the background predictor; MultiStepLR at epoch milestones; inf-norm gradient
clipping (10) of detector, dense motion and background predictor; TPS dropout with p rising
from ``dropout_startp`` to ``dropout_maxp`` over ``dropout_inc_epoch`` epochs and off from
``dropout_epoch``. An epoch is ``num_repeats`` passes over the video ids, as the official
``DatasetRepeater``. The same code runs on one CPU, several CPU processes (gloo) or GPUs.

Run folder: ``config.json`` (the training config), ``log.jsonl`` (losses every ``log_every``
steps), ``checkpoints/step-NNNNNNNN/`` (``model/`` in the project format via
`TPSMotionModel.save_pretrained`, the accelerate state with optimisers, schedulers and RNGs,
and ``trainer_state.json``; only the newest ``checkpoint_total_limit`` are kept) and, at the
end, ``model/``: the trained model, loadable with `TPSMotionModel.from_pretrained`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch.utils.data import DataLoader

from tps.commands import print_error
from tps.config import KEYPOINT_SOURCES, TPSConfig, check_keys, get_preset
from tps.data import CropBox, FramePairDataset, FrameStore, find_clips
from tps.given_keypoints import KeypointFiles
from tps.losses import LossConfig, TPSTrainingModel, build_perceptual_loss, compute_losses
from tps.model import TPSMotionModel

__all__ = ["TrainConfig", "Trainer", "dropout_schedule", "resolve_model_config", "latest_checkpoint", "main"]

logger = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "step-"
STATE_NAME = "trainer_state.json"


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run needs besides the data path; defaults are the official TED values.

    ``model``: a preset name, a full `TPSConfig` dict, or ``{"preset": NAME, ...overrides}``.
    ``crop``: ``"TOP:BOTTOM,LEFT:RIGHT"`` cut from every frame before resizing, or None.
    ``keypoint_source``: ``"detector"`` (the official training: the detector learns the
    keypoints) or ``"given"``: every clip has a keypoint file beside it
    (`tps.given_keypoints`), the dense motion and inpainting networks train on those keypoints,
    the detector is frozen and unused (no equivariance loss), and the saved model's config says
    ``keypoint_source: "given"``. ``keypoint_flip``: with given keypoints, the permutation that
    swaps left and right keypoints under the horizontal-flip augmentation (None: only x -> -x).
    ``freeze_detector``: with ``"detector"`` keypoints, keep the (``--init``) detector's weights
    and batch-norm statistics and train only the dense motion and inpainting networks, so the
    keypoints keep their meaning (e.g. a denoiser trained on them stays valid while the renderer
    is retrained at another image size). Needs ``loss.equivariance`` 0 (it trains only the
    detector).
    """

    model: Any = "lite-256"
    num_epochs: int = 100
    num_repeats: int = 150
    batch_size: int = 12
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 1e-4
    milestones: tuple[int, ...] = (70, 90)
    gamma: float = 0.1
    clip_grad_norm: float = 10.0
    bg_start: int = 0
    dropout_epoch: int = 35
    dropout_maxp: float = 0.5
    dropout_startp: float = 0.0
    dropout_inc_epoch: int = 10
    split: str | None = "train"
    crop: str | None = None
    id_sampling: bool = True
    augment: bool = True
    jitter: float = 0.1
    num_workers: int = 2
    cache_mb: int = 2048
    checkpoint_every: int = 1000
    checkpoint_total_limit: int = 3
    log_every: int = 10
    seed: int = 0
    keypoint_source: str = "detector"
    keypoint_flip: tuple[int, ...] | None = None
    freeze_detector: bool = False
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        object.__setattr__(self, "milestones", tuple(self.milestones))
        if self.keypoint_flip is not None:
            object.__setattr__(self, "keypoint_flip", tuple(int(i) for i in self.keypoint_flip))
        if self.keypoint_source not in KEYPOINT_SOURCES:
            raise ValueError(f"train config keypoint_source must be one of {KEYPOINT_SOURCES}, "
                             f"got {self.keypoint_source!r}")
        if self.keypoint_flip is not None and self.keypoint_source != "given":
            raise ValueError("train config keypoint_flip is only used with keypoint_source 'given'")
        if not isinstance(self.freeze_detector, bool):
            raise ValueError(f"train config freeze_detector must be true or false, got {self.freeze_detector!r}")
        if self.freeze_detector and self.loss.equivariance:
            raise ValueError("train config freeze_detector needs loss.equivariance 0 (it trains only the detector), "
                             f"got {self.loss.equivariance!r}")
        for name in ("num_epochs", "num_repeats", "batch_size", "dropout_inc_epoch", "checkpoint_every",
                     "checkpoint_total_limit", "log_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"train config {name} must be a positive int, got {value!r}")
        if not self.lr > 0 or not self.clip_grad_norm > 0:
            raise ValueError(
                f"train config lr and clip_grad_norm must be > 0, got {self.lr!r}, {self.clip_grad_norm!r}"
            )
        if not 0 <= self.dropout_startp <= self.dropout_maxp < 1:
            raise ValueError(
                "train config needs 0 <= dropout_startp <= dropout_maxp < 1, "
                f"got {self.dropout_startp}, {self.dropout_maxp}"
            )
        if self.crop is not None:
            CropBox.parse(self.crop)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        check_keys(cls, data, "train config")
        data = dict(data)
        if "loss" in data:
            data["loss"] = LossConfig.from_dict(data["loss"])
        return cls(**data)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"train config {str(path)!r} does not exist")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as exc:
            raise ValueError(f"train config {str(path)!r} is not valid JSON: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["loss"] = self.loss.to_dict()
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}


def resolve_model_config(model: Any) -> TPSConfig:
    """`TrainConfig.model` (preset name, full dict, or ``{"preset": ..., overrides}``) -> TPSConfig."""
    if isinstance(model, str):
        return get_preset(model)
    if not isinstance(model, Mapping):
        raise TypeError(f"train config model must be a preset name or a dict, got {type(model).__name__}")
    if "preset" in model:
        data = get_preset(model["preset"]).to_dict()
        data.update({k: v for k, v in model.items() if k != "preset"})
        return TPSConfig.from_dict(data)
    return TPSConfig.from_dict(model)


def dropout_schedule(epoch: int, config: TrainConfig) -> tuple[bool, float]:
    """``(dropout_flag, p)`` of the official schedule: p = min(epoch/inc * maxp + startp, maxp)
    while ``epoch < dropout_epoch``, then no dropout."""
    if epoch >= config.dropout_epoch:
        return False, 0.0
    p = min(epoch / config.dropout_inc_epoch * config.dropout_maxp + config.dropout_startp, config.dropout_maxp)
    return True, float(p)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete ``checkpoints/step-N`` folder (one with ``trainer_state.json``)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return None
    done = [p for p in root.glob(f"{CHECKPOINT_PREFIX}*") if (p / STATE_NAME).is_file()]
    return max(done, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]), default=None)


class Trainer:
    """One training run: the accelerator, networks, optimisers, data and the step loop."""

    def __init__(self, config: TrainConfig, args: argparse.Namespace) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs, set_seed

        self.config, self.args = config, args
        self.run_dir = Path(args.out)
        resume_from = latest_checkpoint(self.run_dir) if args.resume else None
        if not args.resume and latest_checkpoint(self.run_dir) is not None:
            raise ValueError(f"--out {str(self.run_dir)!r} already holds checkpoints: pass --resume or a new folder")
        # the training config's keypoint_source decides (the model dict need not repeat it)
        model_config = resolve_model_config(config.model).replace(keypoint_source=config.keypoint_source)
        # The background predictor sits idle before bg_start: DDP must then tolerate unused parameters.
        ddp = DistributedDataParallelKwargs(find_unused_parameters=config.bg_start > 0)
        self.accelerator = Accelerator(cpu=args.cpu, log_with=args.report_to, project_dir=str(self.run_dir),
                                       kwargs_handlers=[ddp])
        # seed + process index: distinct augmentations per process; DDP copies rank 0's initial weights
        set_seed(config.seed, device_specific=True)
        self.model = TPSMotionModel.from_pretrained(args.init) if args.init else TPSMotionModel(model_config)
        if args.init and self.model.config.replace(keypoint_source=config.keypoint_source) != model_config:
            logger.warning("--init model config differs from the training config; training the --init architecture")
        self.given = config.keypoint_source == "given"
        if self.model.config.keypoint_source != config.keypoint_source:
            self.model.config = self.model.config.replace(keypoint_source=config.keypoint_source)
        if self.given:  # frozen and unused: the keypoints come with the data
            self.model.kp_detector.requires_grad_(False)
        if self.model.avd_network is not None:
            logger.warning("the model has an AVD network; this script does not train it (it keeps its weights)")
        self.model.train()
        self.frozen_detector = self.given or config.freeze_detector
        if config.freeze_detector:  # run, but as it is: no gradients, batch-norm statistics kept
            self.model.kp_detector.requires_grad_(False).eval()
        training = TPSTrainingModel(self.model, config.loss)
        self.perceptual = build_perceptual_loss(config.loss).to(self.accelerator.device)
        loader = self._dataloader()
        steps_per_epoch = len(loader)  # single-process steps; the prepared schedulers count in these
        optimizers, schedulers = self._optimizers(training, steps_per_epoch)
        prepared = self.accelerator.prepare(training, loader, *optimizers, *schedulers)
        self.training, self.loader = prepared[0], prepared[1]
        self.optimizers = list(prepared[2 : 2 + len(optimizers)])
        self.schedulers = list(prepared[2 + len(optimizers) :])
        self.step = 0
        if resume_from is not None:
            self.accelerator.load_state(str(resume_from))
            self.step = int(json.loads((resume_from / STATE_NAME).read_text())["step"])
            logger.info("resumed from %s at step %d", resume_from, self.step)
        elif args.resume:
            logger.warning("--resume: no checkpoint in %s, starting from scratch", self.run_dir)

    def _dataloader(self) -> DataLoader:
        c = self.config
        clips = find_clips(self.args.data, c.split)
        store = FrameStore(self.model.config.image_size, CropBox.parse(c.crop) if c.crop else None,
                           cache_bytes=c.cache_mb << 20)
        keypoints = KeypointFiles(store, self.model.config.num_kp, c.keypoint_flip) if self.given else None
        dataset = FramePairDataset(clips, store, c.num_repeats, c.id_sampling, c.augment, c.jitter, keypoints)
        if len(dataset) < c.batch_size:
            raise ValueError(
                f"{len(dataset)} pairs per epoch ({len(dataset.groups)} ids x num_repeats {c.num_repeats}) "
                f"is fewer than batch_size {c.batch_size}: raise num_repeats"
            )
        logger.info("%d clips, %d ids, %d pairs per epoch", len(clips), len(dataset.groups), len(dataset))
        return DataLoader(dataset, batch_size=c.batch_size, shuffle=True, drop_last=True,
                          num_workers=c.num_workers, persistent_workers=c.num_workers > 0)

    def _optimizers(self, training: TPSTrainingModel, steps_per_epoch: int) -> tuple[list, list]:
        c = self.config
        detector = [] if self.frozen_detector else list(training.kp_detector.parameters())
        groups = [detector + list(training.dense_motion_network.parameters())
                  + list(training.inpainting_network.parameters())]
        if training.bg_predictor is not None:
            groups.append(list(training.bg_predictor.parameters()))
        optimizers = [torch.optim.Adam(p, lr=c.lr, betas=c.betas, weight_decay=c.weight_decay) for p in groups]
        milestones = [m * steps_per_epoch for m in c.milestones]
        schedulers = [torch.optim.lr_scheduler.MultiStepLR(o, milestones, gamma=c.gamma) for o in optimizers]
        return optimizers, schedulers

    def _clip_gradients(self) -> None:
        net = self.accelerator.unwrap_model(self.training)
        for module in (None if self.frozen_detector else net.kp_detector, net.dense_motion_network, net.bg_predictor):
            if module is not None:
                self.accelerator.clip_grad_norm_(module.parameters(), self.config.clip_grad_norm, norm_type=math.inf)

    def _train_step(self, batch: dict[str, torch.Tensor], epoch: int) -> dict[str, torch.Tensor]:
        dropout_flag, dropout_p = dropout_schedule(epoch, self.config)
        outputs = self.training(batch["source"], batch["driving"], dropout_flag=dropout_flag, dropout_p=dropout_p,
                                use_bg=epoch >= self.config.bg_start, kp_source=batch.get("kp_source"),
                                kp_driving=batch.get("kp_driving"))
        losses = compute_losses(outputs, batch["driving"], self.perceptual, self.config.loss)
        total = sum(losses.values())
        self.accelerator.backward(total)
        if self.accelerator.sync_gradients:
            self._clip_gradients()
        for optimizer, scheduler in zip(self.optimizers, self.schedulers):
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        with torch.no_grad():
            losses["l1"] = (outputs["prediction"] - batch["driving"]).abs().mean()
        losses["loss"] = total.detach()
        return {k: v.detach() for k, v in losses.items()}

    def run(self) -> None:
        from tqdm.auto import tqdm

        acc, c = self.accelerator, self.config
        if acc.is_main_process:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.json").write_text(json.dumps(c.to_dict(), indent=2) + "\n")
        if self.args.report_to:
            acc.init_trackers("tps", config={k: str(v) for k, v in c.to_dict().items()})
        steps_per_epoch = len(self.loader)
        if steps_per_epoch < 1:
            raise ValueError(f"no full batch of {c.batch_size} per process and epoch: raise num_repeats")
        total = c.num_epochs * steps_per_epoch
        if self.args.max_steps is not None:
            total = min(total, self.args.max_steps)
        bar = tqdm(total=total, initial=self.step, desc="train", dynamic_ncols=True,
                   disable=self.args.no_progress or not acc.is_local_main_process)
        while self.step < total:
            epoch, skip = divmod(self.step, steps_per_epoch)
            if hasattr(self.loader, "set_epoch"):
                self.loader.set_epoch(epoch)
            batches = acc.skip_first_batches(self.loader, skip) if skip else self.loader
            for batch in batches:
                losses = self._train_step(batch, epoch)
                self.step += 1
                bar.update(1)
                if self.step % c.log_every == 0 or self.step == total:
                    self._log(losses, epoch, bar)
                if self.step % c.checkpoint_every == 0 and self.step < total:
                    self.save_checkpoint(epoch)
                if self.step >= total:
                    break
        bar.close()
        self.save_checkpoint(self.step // steps_per_epoch)
        if acc.is_main_process:
            self.model.save_pretrained(self.run_dir / "model")
        acc.wait_for_everyone()
        acc.end_training()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    def _log(self, losses: dict[str, torch.Tensor], epoch: int, bar: Any) -> None:
        acc = self.accelerator
        names = sorted(losses)
        values = acc.reduce(torch.stack([losses[k].float() for k in names]).to(acc.device), reduction="mean")
        record = {"step": self.step, "epoch": epoch, "lr": self.optimizers[0].param_groups[0]["lr"],
                  "dropout_p": dropout_schedule(epoch, self.config)[1]}
        record.update({k: float(v) for k, v in zip(names, values.tolist())})
        if acc.is_main_process:
            with open(self.run_dir / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
            bar.set_postfix(loss=f"{record['loss']:.4f}", l1=f"{record['l1']:.4f}")
        if self.args.report_to:
            acc.log({k: v for k, v in record.items() if k != "step"}, step=self.step)

    def save_checkpoint(self, epoch: int) -> Path:
        """Accelerate state + project-format model + trainer_state.json; prunes old checkpoints."""
        acc = self.accelerator
        folder = self.run_dir / "checkpoints" / f"{CHECKPOINT_PREFIX}{self.step:08d}"
        if (folder / STATE_NAME).is_file():
            return folder  # this step is saved already (a resumed run that stopped at once)
        acc.save_state(str(folder))
        if acc.is_main_process:
            self.model.save_pretrained(folder / "model")
            (folder / STATE_NAME).write_text(json.dumps({"step": self.step, "epoch": epoch}) + "\n")
            done = sorted((p for p in folder.parent.glob(f"{CHECKPOINT_PREFIX}*") if (p / STATE_NAME).is_file()),
                          key=lambda p: int(p.name[len(CHECKPOINT_PREFIX):]))
            for old in done[: -self.config.checkpoint_total_limit]:
                shutil.rmtree(old)
        acc.wait_for_everyone()
        return folder

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tps train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, help="training config json (configs/tps/*.json)")
    parser.add_argument("--data", required=True, help="TED384 root, a folder of videos/frame folders, or one video")
    parser.add_argument("--out", required=True, help="run folder (checkpoints, log.jsonl, model/)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many optimiser steps in all")
    parser.add_argument("--init", default=None, help="start from a TPSMotionModel folder instead of random weights")
    parser.add_argument("--cpu", action="store_true", help="run on CPU even where a GPU exists")
    parser.add_argument("--report-to", default=None, help="accelerate tracker (tensorboard, wandb, ...), optional")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = TrainConfig.load(args.config)
        if args.max_steps is not None and args.max_steps < 1:
            raise ValueError(f"--max-steps must be >= 1, got {args.max_steps}")
        Trainer(config, args).run()
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print_error(exc)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
