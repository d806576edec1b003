"""Reconstruction at a clip's native resolution: the upscaled model output against composition.

The renderer's networks run at the model's size (e.g. 256x256). A clip recorded at 512x512 can be
reconstructed at 512 in two ways, and `evaluate_clip_native` measures both on the same frames:

- ``upscaled``: the model's prediction, resized to the native size (earlier releases);
- ``native``: the native source frame warped by the model's flow, generated pixels only where
  the occlusion map says the source is not visible (`tps.compose`), with the flow and occlusion
  taken relative to the source's own pose (so the source reconstructs itself exactly) and the
  source resampled by ``interpolation`` (`tps.compose.compose`: ``"spline"`` by default,
  ``"bicubic"`` as earlier releases).

Per frame: L1, PSNR, SSIM (as `tps.evaluate`) and sharpness, the variance of the Laplacian of
the grey image over that of the real frame (1 = as sharp as the footage).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from tps.compose import compose, relative_flow
from tps.interpolation import check_interpolation, spline_upsample
from tps.evaluate import l1_error, psnr, ssim
from tps.model import TPSMotionModel

__all__ = ["NativeMetrics", "laplacian_variance", "evaluate_clip_native", "format_native_table", "summarize_native"]

PATHS = ("upscaled", "native")
_LAPLACE = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)


@dataclass(frozen=True)
class NativeMetrics:
    """Means over a clip's frames for one path (``"upscaled"`` or ``"native"``)."""

    clip: str
    path: str
    frames: int
    size: int
    psnr: float
    ssim: float
    l1: float
    sharpness: float


def laplacian_variance(images: torch.Tensor) -> torch.Tensor:
    """``images [B, 3, H, W]`` in [0, 1] -> ``[B]``: variance of the 4-neighbour Laplacian of the
    grey image (a standard sharpness measure; larger is sharper)."""
    grey = images.mean(dim=1, keepdim=True)
    return F.conv2d(grey, _LAPLACE.to(grey), padding=0).flatten(1).var(dim=1)


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    down = x.shape[-1] > size[1]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=down)


@torch.no_grad()
def evaluate_clip_native(model: TPSMotionModel, frames: torch.Tensor, name: str = "clip",
                         batch_size: int = 8, interpolation: str = "spline",
                         bfloat16: bool = False) -> list[NativeMetrics]:
    """Reconstruct ``frames [T, 3, H, W]`` (native size, in [0, 1]) from the first frame, driven
    by each frame's detected keypoints (standard mode, no background transform); one
    `NativeMetrics` row per path in `PATHS`. ``bfloat16``: the inpainting network under bfloat16
    autocast, the keypoints and dense motion in float32, as `tps.Renderer(bfloat16=True)` renders."""
    if frames.dim() != 4 or frames.shape[0] < 1 or frames.shape[1] != 3:
        raise ValueError(f"frames must be [T, 3, H, W] with T >= 1, got {tuple(frames.shape)}")
    check_interpolation(interpolation)
    device = next(model.parameters()).device
    model_size = tuple(model.config.image_size)
    native_size = tuple(frames.shape[-2:])
    source_native = frames[:1].to(device)
    source = _resize(source_native, model_size)
    kp_source = model.detect(source)
    rest = model(source, kp_source, kp_source)
    upsampled = spline_upsample(source_native) if interpolation == "spline" else None  # once for all batches
    values: dict[str, dict[str, list[float]]] = {p: {"psnr": [], "ssim": [], "l1": [], "sharpness": []} for p in PATHS}
    for start in range(0, frames.shape[0], batch_size):
        target = frames[start : start + batch_size].to(device)
        n = target.shape[0]
        kp_driving = model.detect(_resize(target, model_size))
        out = _reconstruct(model, source.expand(n, -1, -1, -1), kp_driving, kp_source.expand(n, -1, -1), bfloat16)
        flow = relative_flow(out["deformation"], rest["deformation"])
        predictions = {
            "upscaled": _resize(out["prediction"], native_size),
            "native": compose(source_native, out["generated"], flow, out["occlusion_map"][-1],
                              rest["occlusion_map"][-1], interpolation=interpolation, upsampled=upsampled),
        }
        reference = laplacian_variance(target).clamp(min=1e-12)
        for path, prediction in predictions.items():
            prediction = prediction.clamp(0, 1)
            values[path]["psnr"] += psnr(prediction, target).tolist()
            values[path]["ssim"] += ssim(prediction, target).tolist()
            values[path]["l1"] += l1_error(prediction, target).tolist()
            values[path]["sharpness"] += (laplacian_variance(prediction) / reference).tolist()
    return [NativeMetrics(name, path, frames.shape[0], int(native_size[0]),
                          **{k: float(np.mean(v)) for k, v in values[path].items()}) for path in PATHS]


def _reconstruct(model: TPSMotionModel, source: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor,
                 bfloat16: bool) -> dict:
    """``model(source, kp_driving, kp_source)``, with the inpainting network autocast to bfloat16
    when asked (its outputs back in float32)."""
    if not bfloat16:
        return model(source, kp_driving, kp_source)
    motion = model.dense_motion_network(source, kp_driving, kp_source)
    with torch.autocast(source.device.type, dtype=torch.bfloat16):
        out = model.inpainting_network(source, motion)
    return {k: ([x.float() for x in v] if isinstance(v, list) else v.float()) for k, v in out.items()}


def format_native_table(rows: list[NativeMetrics]) -> str:
    """A fixed-width table: clip, path, frames, size, PSNR, SSIM, L1, sharpness (x real)."""
    width = max(8, *(len(r.clip) for r in rows))
    lines = [f"{'clip':<{width}}  {'path':<8}  {'frames':>6}  {'size':>5}  {'PSNR':>7}  {'SSIM':>6}  {'L1':>8}  "
             f"{'sharp':>6}"]
    for r in rows:
        lines.append(f"{r.clip:<{width}}  {r.path:<8}  {r.frames:>6d}  {r.size:>5d}  {r.psnr:>7.2f}  {r.ssim:>6.4f}  "
                     f"{r.l1:>8.5f}  {r.sharpness:>6.3f}")
    return "\n".join(lines)


def summarize_native(rows: list[NativeMetrics]) -> list[NativeMetrics]:
    """Frame-weighted means over clips, one row per path (clip name ``"mean"``)."""
    out = []
    for path in PATHS:
        mine = [r for r in rows if r.path == path]
        total = sum(r.frames for r in mine)
        mean = {k: sum(getattr(r, k) * r.frames for r in mine) / total for k in ("psnr", "ssim", "l1", "sharpness")}
        out.append(NativeMetrics("mean", path, total, mine[0].size if len({r.size for r in mine}) == 1 else 0, **mean))
    return out
