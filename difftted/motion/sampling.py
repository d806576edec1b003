"""Sampling keypoint motion from speech with any diffusers scheduler and classifier-free guidance.

``sample_motion`` denoises a clip up to the model's window in one pass. Longer audio is covered by
overlapping windows that continue each other: window ``k+1`` starts ``window - overlap`` frames
after window ``k`` and its first frames are the ones window ``k`` already produced. Those frames
are HELD during sampling (inpainting): before every denoising step they are replaced by the known
frames noised to the current timestep (``scheduler.add_noise``), and after the last step by the
known frames themselves, so the free frames are generated in agreement with them; the frames just
before the window go in as the denoiser's ``context``. Nothing is cross-faded afterwards.

Randomness comes only from the caller's ``generator`` (initial noise, the noise of held frames,
and stochastic schedulers' step noise), so one seed gives one motion.

Training must match: the denoiser sees as ``context`` the clean frames right before its window
(dropped to the null context with some probability, which the first window relies on).
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler
from diffusers.schedulers.scheduling_utils import SchedulerMixin
from diffusers.utils.torch_utils import randn_tensor
from tqdm.auto import tqdm

from difftted.defaults import DEFAULT_GUIDANCE_SCALE, DEFAULT_STEPS
from difftted.motion.denoiser import KeypointDenoiser

logger = logging.getLogger(__name__)

#: Short names of the usual schedulers (`scheduler_class` also takes any diffusers class name).
SCHEDULERS: dict[str, type[SchedulerMixin]] = {
    "ddpm": DDPMScheduler,
    "ddim": DDIMScheduler,
    "dpm++": DPMSolverMultistepScheduler,
}


def make_scheduler(prediction_type: str = "epsilon", num_train_timesteps: int = 500, *,
                   beta_start: float = 1e-4, beta_end: float = 0.02,
                   beta_schedule: str = "linear") -> DDPMScheduler:
    """The training noise schedule: DDPM without clipping (normalised keypoints are not bounded
    to [-1, 1]); the defaults are DiffTED's (500 steps, linear betas 1e-4..0.02). Swap it for
    sampling with :func:`swap_scheduler`.

    Sampling starts from pure noise, so the schedule must end near it: a schedule that leaves more
    than 5% of the signal's variance at its last step (with DiffTED's betas, fewer than about 300
    steps) is refused.
    """
    scheduler = DDPMScheduler(num_train_timesteps=num_train_timesteps, beta_start=beta_start,
                              beta_end=beta_end, beta_schedule=beta_schedule, clip_sample=False,
                              prediction_type=prediction_type)
    final = float(scheduler.alphas_cumprod[-1])
    if final > 0.05:
        raise ValueError(f"num_train_timesteps={num_train_timesteps} with {beta_schedule} betas "
                         f"{beta_start}..{beta_end} leaves {final:.0%} of the signal at the last step; "
                         "sampling from pure noise needs a schedule that ends near it (e.g. 500 steps)")
    return scheduler


def scheduler_class(name: str) -> type[SchedulerMixin]:
    """The one scheduler lookup: a short name of :data:`SCHEDULERS` (``"ddim"``) or a diffusers
    scheduler class name (``"DDIMScheduler"``, what a saved ``scheduler_config.json`` holds as
    ``_class_name``). ValueError for anything else."""
    if name in SCHEDULERS:
        return SCHEDULERS[name]
    import diffusers

    found = getattr(diffusers, str(name), None) if str(name).endswith("Scheduler") else None
    if isinstance(found, type) and issubclass(found, SchedulerMixin):
        return found
    raise ValueError(f"scheduler name must be one of {sorted(SCHEDULERS)} or a diffusers scheduler class "
                     f"name, got {name!r}")


def swap_scheduler(scheduler: SchedulerMixin, name: str) -> SchedulerMixin:
    """The scheduler ``name`` (see `scheduler_class`) on ``scheduler``'s noise schedule."""
    return scheduler_class(name).from_config(scheduler.config)


def apply_guidance(uncond: torch.Tensor, cond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: ``uncond + scale * (cond - uncond)``.

    ``scale = 1`` gives the conditional prediction, ``0`` the unconditional one, ``> 1`` pushes
    beyond the condition. Valid for epsilon, x0 and v predictions alike (all linear in the score).
    """
    return uncond + scale * (cond - uncond)


@dataclass(frozen=True)
class Window:
    """Frames ``[start, stop)`` of the clip; the first ``held`` are known from earlier windows."""

    start: int
    stop: int
    held: int


def plan_windows(num_frames: int, window: int, overlap: int) -> list[Window]:
    """Windows of ``window`` frames stepping ``window - overlap``; the last one is moved back to
    end at ``num_frames`` (holding more frames) so every window has the length the model knows."""
    if num_frames <= window:
        return [Window(0, num_frames, 0)]
    step = window - overlap
    windows = [Window(0, window, 0)]
    while windows[-1].stop < num_frames:
        start = min(windows[-1].start + step, num_frames - window)
        windows.append(Window(start, start + window, windows[-1].stop - start))
    return windows


def sample_motion(
    denoiser: KeypointDenoiser,
    scheduler: SchedulerMixin,
    audio_features: np.ndarray | torch.Tensor,
    source_keypoints: np.ndarray | torch.Tensor,
    *,
    num_inference_steps: int = DEFAULT_STEPS,
    guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
    generator: torch.Generator | None = None,
    window: int | None = None,
    overlap: int | None = None,
    context_frames: int | None = None,
    progress: bool = True,
) -> torch.Tensor:
    """Normalised keypoints ``[T, N*2]`` for ``audio_features`` ``[T, D]`` and one source photo.

    Args:
        denoiser: the trained model; its ``config.prediction_type`` must match the scheduler's.
        scheduler: any diffusers scheduler; it is reset (``set_timesteps``) for every window.
        audio_features: ``[T, D]`` from :class:`difftted.audio.AudioFeatureExtractor`.
        source_keypoints: ``[N*2]`` (or ``[N, 2]``) normalised keypoints of the source photo.
        num_inference_steps: denoising steps per window.
        guidance_scale: CFG scale on the audio condition (1 = no guidance, one forward per step).
        generator: the only source of randomness.
        window: frames per window, default and maximum ``denoiser.config.max_frames``.
        overlap: frames held from the previous window, ``0 <= overlap < window``;
            default ``window // 8`` (at least 1).
        context_frames: frames before a window given as ``context``, default and maximum
            ``denoiser.config.context_frames``; 0 gives none.
        progress: show a tqdm bar over all denoising steps.
    Returns:
        ``[T, N*2]`` float32 on the denoiser's device, normalised like the training data.
    """
    cfg = denoiser.config
    device, dtype = denoiser.device, denoiser.dtype
    audio, source = _check_conditions(cfg, audio_features, source_keypoints, device, dtype)
    window, overlap, context_frames = _check_windowing(cfg, window, overlap, context_frames)
    _check_scheduler(cfg, scheduler, num_inference_steps)

    num_frames = audio.shape[0]
    plan = plan_windows(num_frames, window, overlap)
    motion = torch.zeros(num_frames, denoiser.kp_dim, device=device, dtype=dtype)
    was_training = denoiser.training
    denoiser.eval()
    try:
        with torch.no_grad(), tqdm(total=len(plan) * num_inference_steps, disable=not progress,
                                   desc="sampling motion", unit="step") as bar:
            for win in plan:
                # the first window has nothing before it: the learned null context stands in
                context = motion[max(0, win.start - context_frames):win.start] if context_frames else None
                motion[win.start:win.stop] = _denoise_window(
                    denoiser, scheduler, audio[win.start:win.stop], source,
                    held=motion[win.start:win.start + win.held],
                    context=context if context is not None and len(context) else None,
                    num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
                    generator=generator, bar=bar)
    finally:
        denoiser.train(was_training)
    return motion.float()


def _denoise_window(denoiser, scheduler, audio, source, *, held, context, num_inference_steps,
                    guidance_scale, generator, bar) -> torch.Tensor:
    """One window ``[W, N*2]``; ``held`` ``[H, N*2]`` frames are inpainted at its start."""
    device, dtype = audio.device, audio.dtype
    frames, num_held = audio.shape[0], held.shape[0]
    scheduler.set_timesteps(num_inference_steps, device=device)
    shape = (1, frames, denoiser.kp_dim)
    sample = randn_tensor(shape, generator=generator, device=device, dtype=dtype) * scheduler.init_noise_sigma
    held_noise = randn_tensor((1, num_held, denoiser.kp_dim), generator=generator, device=device, dtype=dtype)
    step_kwargs = {"generator": generator} if "generator" in inspect.signature(scheduler.step).parameters else {}

    guided = guidance_scale != 1.0
    copies = 2 if guided else 1
    audio_in = audio[None].expand(copies, -1, -1)
    source_in = source[None].expand(copies, -1)
    context_in = context[None].expand(copies, -1, -1) if context is not None else None
    drop_audio = torch.tensor([False, True][:copies], device=device)
    for t in scheduler.timesteps:
        if num_held:
            noised = scheduler.add_noise(held[None], held_noise, t.reshape(1))
            sample = torch.cat([noised, sample[:, num_held:]], dim=1)
        model_input = scheduler.scale_model_input(sample, t).expand(copies, -1, -1)
        prediction = denoiser(model_input, t, audio_in, source_in, context_in, drop_audio=drop_audio)
        if guided:
            cond, uncond = prediction.chunk(2)
            prediction = apply_guidance(uncond, cond, guidance_scale)
        sample = scheduler.step(prediction, t, sample, **step_kwargs).prev_sample
        bar.update(1)
    result = sample[0]
    if num_held:
        result = torch.cat([held, result[num_held:]], dim=0)
    return result


def _as_tensor(x, name: str, device, dtype) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a numpy array or a torch tensor, got {type(x).__name__}")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or inf")
    return x.to(device=device, dtype=dtype)


def _check_conditions(cfg, audio_features, source_keypoints, device, dtype) -> tuple[torch.Tensor, torch.Tensor]:
    audio = _as_tensor(audio_features, "audio_features", device, dtype)
    if audio.ndim != 2 or audio.shape[1] != cfg.audio_dim or audio.shape[0] == 0:
        raise ValueError(f"audio_features must have shape [T>0, {cfg.audio_dim}], got {tuple(audio.shape)}")
    source = _as_tensor(source_keypoints, "source_keypoints", device, dtype).reshape(-1)
    if source.shape[0] != cfg.num_keypoints * 2:
        raise ValueError(f"source_keypoints must have shape [{cfg.num_keypoints * 2}] or "
                         f"[{cfg.num_keypoints}, 2], got {tuple(source_keypoints.shape)}")
    return audio, source


def _check_scheduler(cfg, scheduler, num_inference_steps) -> None:
    if not isinstance(num_inference_steps, int) or num_inference_steps < 1:
        raise ValueError(f"num_inference_steps must be a positive int, got {num_inference_steps!r}")
    if not hasattr(scheduler, "set_timesteps") or not hasattr(scheduler, "step"):
        raise TypeError(f"scheduler must be a diffusers scheduler, got {type(scheduler).__name__}")
    if getattr(scheduler.config, "prediction_type", cfg.prediction_type) != cfg.prediction_type:
        raise ValueError(f"scheduler predicts {scheduler.config.prediction_type!r} but the denoiser was "
                         f"trained for {cfg.prediction_type!r}: build the scheduler with "
                         f"prediction_type={cfg.prediction_type!r}")


def _check_windowing(cfg, window, overlap, context_frames) -> tuple[int, int, int]:
    window = cfg.max_frames if window is None else window
    if not isinstance(window, int) or not 2 <= window <= cfg.max_frames:
        raise ValueError(f"window must be an int in 2..{cfg.max_frames} (the model's max_frames), got {window!r}")
    overlap = max(1, window // 8) if overlap is None else overlap
    if not isinstance(overlap, int) or not 0 <= overlap < window:
        raise ValueError(f"overlap must be an int in 0..{window - 1}, got {overlap!r}")
    context_frames = cfg.context_frames if context_frames is None else context_frames
    if not isinstance(context_frames, int) or not 0 <= context_frames <= cfg.context_frames:
        raise ValueError(f"context_frames must be an int in 0..{cfg.context_frames}, got {context_frames!r}")
    return window, overlap, context_frames
