"""The keypoint denoiser: a transformer encoder over frames, conditioned on speech and a photo.

Each frame ``t`` becomes one token, the sum of
- the noisy keypoints ``x_t`` (``[N*2]``, normalised, see :mod:`difftted.motion.keypoints`), projected,
- the frame's audio feature (``[D]``, :mod:`difftted.audio`) projected, or a learned null
  embedding where the audio is dropped (classifier-free guidance),
- the SOURCE photo's keypoints projected: the same for every frame. DiffTED conditions on ground
  truth "seed" frames instead, so it cannot start from a single photo; this model can,
- the diffusion timestep embedding and a learned positional embedding.

Up to ``context_frames`` keypoint frames from the end of the previous window are prepended as
extra tokens (their own projection and positions), so a window continues the one before it;
missing or dropped context slots hold a learned null token. The output at the frame tokens is the
prediction named by ``prediction_type`` (diffusers' names: ``"epsilon"``, ``"sample"`` = x0,
``"v_prediction"``); the model computes the same thing for each, the type tells the training loss
and the scheduler what the numbers mean. ``motion_target`` says what the samples are
(`difftted.motion.keypoints.MOTION_TARGETS`): absolute keypoints, or offsets from the source photo's;
`difftted.motion.keypoints.MotionCoding` converts.

Defaults follow DiffTED's denoiser (width 256, 8 blocks, 8 heads, MLP ratio 4, about 6.5M
parameters here too).
"""

from __future__ import annotations

import logging

import torch
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from diffusers.models.embeddings import TimestepEmbedding, Timesteps
from torch import nn

from difftted.motion.keypoints import MOTION_TARGETS

logger = logging.getLogger(__name__)

PREDICTION_TYPES = ("epsilon", "sample", "v_prediction")


def sample_condition_drop(batch_size: int, p: float, generator: torch.Generator | None = None,
                          device: torch.device | str = "cpu") -> torch.Tensor:
    """``[batch_size]`` bool, each True with probability ``p``: which items lose a condition.

    Training helper for classifier-free guidance, e.g.
    ``drop_audio = sample_condition_drop(B, 0.1, generator)``; pass it to the denoiser's
    ``drop_audio``. The draw happens on ``generator``'s device and is moved to ``device``.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p}")
    gen_device = generator.device if generator is not None else "cpu"
    return (torch.rand(batch_size, generator=generator, device=gen_device) < p).to(device)


class KeypointDenoiser(ModelMixin, ConfigMixin):
    """``(x_t [B,T,N*2], t, audio [B,T,D] | None, source [B,N*2], context [B,C,N*2] | None) -> [B,T,N*2]``."""

    @register_to_config
    def __init__(
        self,
        num_keypoints: int = 50,
        audio_dim: int = 66,
        hidden_dim: int = 256,
        num_layers: int = 8,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        dropout: float = 0.1,
        max_frames: int = 64,
        context_frames: int = 4,
        prediction_type: str = "epsilon",
        motion_target: str = "absolute",
    ) -> None:
        super().__init__()
        for name, value in (("num_keypoints", num_keypoints), ("audio_dim", audio_dim), ("hidden_dim", hidden_dim),
                            ("num_layers", num_layers), ("num_heads", num_heads), ("max_frames", max_frames)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not isinstance(context_frames, int) or context_frames < 0:
            raise ValueError(f"context_frames must be a non-negative int, got {context_frames!r}")
        if hidden_dim % num_heads:
            raise ValueError(f"hidden_dim ({hidden_dim}) must be divisible by num_heads ({num_heads})")
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {PREDICTION_TYPES}, got {prediction_type!r}")
        if motion_target not in MOTION_TARGETS:
            raise ValueError(f"motion_target must be one of {MOTION_TARGETS}, got {motion_target!r}")
        kp_dim = num_keypoints * 2
        self.kp_dim = kp_dim

        self.sample_proj = nn.Linear(kp_dim, hidden_dim)
        self.audio_proj = nn.Sequential(nn.Linear(audio_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim))
        self.source_proj = nn.Linear(kp_dim, hidden_dim)
        self.context_proj = nn.Linear(kp_dim, hidden_dim)
        self.time_proj = Timesteps(hidden_dim, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.time_embedding = TimestepEmbedding(hidden_dim, hidden_dim)
        self.null_audio = nn.Parameter(torch.zeros(hidden_dim))
        self.null_context = nn.Parameter(torch.zeros(max(context_frames, 1), hidden_dim))
        self.pos_embedding = nn.Parameter(torch.zeros(max_frames, hidden_dim))
        self.context_pos_embedding = nn.Parameter(torch.zeros(max(context_frames, 1), hidden_dim))
        for p in (self.null_audio, self.null_context, self.pos_embedding, self.context_pos_embedding):
            nn.init.normal_(p, std=0.02)

        layer = nn.TransformerEncoderLayer(
            d_model=hidden_dim, nhead=num_heads, dim_feedforward=int(hidden_dim * mlp_ratio),
            dropout=dropout, activation="gelu", batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, num_layers=num_layers, enable_nested_tensor=False)
        self.norm_out = nn.LayerNorm(hidden_dim)
        self.proj_out = nn.Linear(hidden_dim, kp_dim)

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor | float | int,
        audio_features: torch.Tensor | None,
        source_keypoints: torch.Tensor,
        context: torch.Tensor | None = None,
        drop_audio: torch.Tensor | None = None,
        drop_context: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict ``config.prediction_type`` for ``sample``.

        Args:
            sample: ``[B, T, N*2]`` noisy normalised keypoints, ``T <= max_frames``.
            timestep: scalar or ``[B]`` diffusion step (int or float).
            audio_features: ``[B, T, D]``, or None for the null condition on every item.
            source_keypoints: ``[B, N*2]`` normalised keypoints of the source photo.
            context: ``[B, C, N*2]`` (``1 <= C <= context_frames``) frames that come right before
                ``sample`` (clean, normalised), or None for the null context.
            drop_audio / drop_context: ``[B]`` bool, True where that item's audio / context is
                replaced by its null embedding (classifier-free guidance, condition dropout).
        Returns:
            ``[B, T, N*2]``.
        """
        batch, frames = self._check_inputs(sample, audio_features, source_keypoints, context)
        dtype, device = sample.dtype, sample.device

        t = torch.as_tensor(timestep, device=device)
        if t.ndim == 0:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise ValueError(f"timestep must be a scalar or have shape [{batch}], got {tuple(t.shape)}")
        t_emb = self.time_embedding(self.time_proj(t).to(dtype))  # [B, W]
        shared = t_emb + self.source_proj(source_keypoints)  # [B, W], the same for every token

        null_audio = self.null_audio.to(dtype).expand(batch, frames, -1)
        if audio_features is None:
            audio = null_audio
        else:
            audio = self.audio_proj(audio_features)
            if drop_audio is not None:
                audio = torch.where(self._mask(drop_audio, batch, "drop_audio"), null_audio, audio)
        tokens = self.sample_proj(sample) + audio + self.pos_embedding[:frames] + shared[:, None]

        ctx = self._context_tokens(context, drop_context, batch, dtype) + shared[:, None]
        hidden = self.transformer(torch.cat([ctx, tokens], dim=1))[:, ctx.shape[1]:]
        return self.proj_out(self.norm_out(hidden))

    def _context_tokens(self, context: torch.Tensor | None, drop_context: torch.Tensor | None,
                        batch: int, dtype: torch.dtype) -> torch.Tensor:
        """``[B, C_max, W]``: projected context right-aligned, null tokens in empty or dropped slots."""
        slots = max(self.config.context_frames, 1)
        null = self.null_context.to(dtype).expand(batch, -1, -1)
        if context is None or self.config.context_frames == 0:
            return null + self.context_pos_embedding
        given = context.shape[1]
        projected = torch.cat([null[:, : slots - given], self.context_proj(context)], dim=1)
        if drop_context is not None:
            projected = torch.where(self._mask(drop_context, batch, "drop_context"), null, projected)
        return projected + self.context_pos_embedding

    @staticmethod
    def _mask(mask: torch.Tensor, batch: int, name: str) -> torch.Tensor:
        mask = torch.as_tensor(mask)
        if mask.shape != (batch,) or mask.dtype != torch.bool:
            raise ValueError(f"{name} must be a bool tensor of shape [{batch}], got {mask.dtype} {tuple(mask.shape)}")
        return mask[:, None, None]

    def _check_inputs(self, sample, audio_features, source_keypoints, context) -> tuple[int, int]:
        cfg = self.config
        if not isinstance(sample, torch.Tensor) or sample.ndim != 3 or sample.shape[2] != self.kp_dim:
            raise ValueError(f"sample must be a tensor [B, T, {self.kp_dim}], got {_shape(sample)}")
        batch, frames = sample.shape[:2]
        if not 1 <= frames <= cfg.max_frames:
            raise ValueError(f"sample has {frames} frames; this model takes 1..{cfg.max_frames} (max_frames)")
        if audio_features is not None and (not isinstance(audio_features, torch.Tensor)
                                           or tuple(audio_features.shape) != (batch, frames, cfg.audio_dim)):
            raise ValueError(f"audio_features must be a tensor [{batch}, {frames}, {cfg.audio_dim}] or None, "
                             f"got {_shape(audio_features)}")
        if not isinstance(source_keypoints, torch.Tensor) or tuple(source_keypoints.shape) != (batch, self.kp_dim):
            raise ValueError(f"source_keypoints must be a tensor [{batch}, {self.kp_dim}], "
                             f"got {_shape(source_keypoints)}")
        if context is not None:
            if (not isinstance(context, torch.Tensor) or context.ndim != 3 or context.shape[0] != batch
                    or context.shape[2] != self.kp_dim or not 1 <= context.shape[1] <= cfg.context_frames):
                raise ValueError(f"context must be a tensor [{batch}, C, {self.kp_dim}] with "
                                 f"1 <= C <= {cfg.context_frames} (context_frames), or None, got {_shape(context)}")
        return batch, frames


def _shape(x: object) -> str:
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__
