"""`MotionTrainConfig`: every setting of a denoiser training run, read from a json file.

The json holds `MotionTrainConfig` fields; unknown keys are errors naming them, so a misspelt setting
never falls back silently to its default. ``denoiser`` holds `KeypointDenoiser` arguments
(``num_keypoints`` and ``audio_dim`` default to the dataset's); the DDPM noise schedule is
``num_train_timesteps`` / ``beta_schedule`` / ``beta_start`` / ``beta_end`` (DiffTED: 500 steps,
linear 1e-4..0.02) and its prediction type is the denoiser's ``prediction_type``. The examples are
in ``configs/difftted/`` (``tiny.json`` for tests, ``small.json`` for the demo weights).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from difftted.defaults import DEFAULT_GUIDANCE_SCALE, DEFAULT_STEPS
from tps.config import check_keys


@dataclass(frozen=True)
class MotionTrainConfig:
    denoiser: dict[str, Any] = field(default_factory=dict)
    # noise schedule (the denoiser's prediction_type is the scheduler's)
    num_train_timesteps: int = 500
    beta_schedule: str = "linear"
    beta_start: float = 1e-4
    beta_end: float = 0.02
    # data
    window: int = 34
    stride: int = 1
    batch_size: int = 64
    num_workers: int = 0
    # loss weights (DiffTED: noise 1.0, x0 0.5, pairwise 0.07)
    loss_diffusion: float = 1.0
    loss_x0: float = 0.5
    loss_velocity: float = 0.5
    loss_acceleration: float = 0.0  # MSE of second frame differences: against jitter
    loss_pairwise: float = 0.07
    # loss terms skip keypoints outside the frame (|x| or |y| > 1 in the target): body keypoints of
    # a hand below a head-and-shoulders crop are mediapipe's guesses, not motion to learn
    mask_out_of_frame: bool = False
    # classifier-free guidance: probability that an item's audio / context is replaced by null
    drop_audio: float = 0.1
    drop_context: float = 0.1
    # optimisation (DiffTED: Adam lr 5e-4, betas (0.5, 0.999), clip 10)
    learning_rate: float = 5e-4
    adam_betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    grad_clip: float = 10.0
    lr_warmup_steps: int = 0
    ema_decay: float = 0.999
    ema_warmup: bool = True
    # schedule of the run
    max_steps: int = 10000
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 1000
    checkpoints_total_limit: int = 3
    validate_every: int = 1000
    # validation sampling (also written to pipeline.json as the pipeline's defaults)
    validation_seconds: float = 4.0
    inference_scheduler: str = "DDIMScheduler"
    num_inference_steps: int = DEFAULT_STEPS
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE
    relative_motion: bool = False  # pipeline default (pipeline.json): see DiffTEDPipeline.__call__

    def __post_init__(self) -> None:
        object.__setattr__(self, "adam_betas", tuple(self.adam_betas))
        for name in ("num_train_timesteps", "window", "stride", "batch_size", "max_steps", "log_every",
                     "checkpoint_every", "checkpoints_total_limit", "num_inference_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"MotionTrainConfig.{name} must be a positive int, got {value!r}")
        for name in ("num_workers", "lr_warmup_steps", "validate_every", "seed"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"MotionTrainConfig.{name} must be a non-negative int, got {value!r}")
        for name in ("drop_audio", "drop_context", "ema_decay"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"MotionTrainConfig.{name} must lie in [0, 1], got {getattr(self, name)!r}")
        for name in ("loss_diffusion", "loss_x0", "loss_velocity", "loss_acceleration", "loss_pairwise",
                     "weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise ValueError(f"MotionTrainConfig.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.learning_rate <= 0 or len(self.adam_betas) != 2:
            raise ValueError(f"MotionTrainConfig needs learning_rate > 0 and two adam_betas, got "
                             f"{self.learning_rate!r}, {self.adam_betas!r}")
        if not isinstance(self.denoiser, dict):
            raise TypeError(f"MotionTrainConfig.denoiser must be a dict of KeypointDenoiser arguments, got {self.denoiser!r}")

    # ------------------------------------------------------------------------------------ io
    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MotionTrainConfig":
        check_keys(cls, data, "MotionTrainConfig", ignore=frozenset({"_comment"}))
        return cls(**{k: v for k, v in data.items() if k != "_comment"})

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["adam_betas"] = list(self.adam_betas)
        return data

    @classmethod
    def load(cls, path: str | Path) -> "MotionTrainConfig":
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config {str(path)!r} does not exist")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except json.JSONDecodeError as err:
            raise ValueError(f"config {str(path)!r} is not valid json: {err}") from err

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    def replace(self, **changes: Any) -> "MotionTrainConfig":
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------------------ builders
    def denoiser_kwargs(self, manifest: dict) -> dict[str, Any]:
        """`KeypointDenoiser` arguments: ``denoiser`` with the dataset's sizes filled in."""
        kwargs = {"num_keypoints": manifest["num_keypoints"], "audio_dim": manifest["feature_dim"],
                  **self.denoiser}
        if (kwargs["num_keypoints"], kwargs["audio_dim"]) != (manifest["num_keypoints"], manifest["feature_dim"]):
            raise ValueError(f"config denoiser takes {kwargs['num_keypoints']} keypoints and {kwargs['audio_dim']} "
                             f"audio features, the dataset has {manifest['num_keypoints']} and {manifest['feature_dim']}")
        kwargs.setdefault("max_frames", self.window)
        if kwargs["max_frames"] != self.window:
            # sampling runs windows of max_frames frames: positions past the training window
            # would hold untrained embeddings
            raise ValueError(f"window {self.window} must equal the denoiser's max_frames {kwargs['max_frames']}")
        return kwargs

    def build_denoiser(self, manifest: dict):
        from difftted.motion.denoiser import KeypointDenoiser

        return KeypointDenoiser(**self.denoiser_kwargs(manifest))

    def build_noise_scheduler(self, manifest: dict):
        """The DDPM training schedule (:func:`difftted.motion.sampling.make_scheduler`), predicting what
        the denoiser predicts."""
        from difftted.motion.sampling import make_scheduler

        prediction = self.denoiser_kwargs(manifest).get("prediction_type", "epsilon")
        return make_scheduler(prediction, self.num_train_timesteps, beta_start=self.beta_start,
                              beta_end=self.beta_end, beta_schedule=self.beta_schedule)

    def build_inference_scheduler(self, noise_scheduler):
        """``inference_scheduler`` (a diffusers class name) on the training schedule."""
        import diffusers

        cls = getattr(diffusers, self.inference_scheduler, None)
        if not (isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin)):
            raise ValueError(f"inference_scheduler {self.inference_scheduler!r} is not a diffusers scheduler")
        return cls.from_config(noise_scheduler.config)


def __getattr__(name: str) -> Any:
    """``TrainConfig``: the old name of `MotionTrainConfig` (deprecated; it collided with
    `tps.train.TrainConfig`, the renderer's)."""
    if name == "TrainConfig":
        import warnings

        warnings.warn("difftted's TrainConfig is renamed MotionTrainConfig; the old name goes away next release",
                      DeprecationWarning, stacklevel=2)
        return MotionTrainConfig
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
