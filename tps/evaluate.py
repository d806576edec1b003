"""Reconstruction metrics of a trained renderer on held-out clips.

    python -m tps evaluate --weights DIR --data DIR_OR_VIDEO [DIR_OR_VIDEO ...] [--max-frames N]
                           [--json out.json] [--csv out.csv]

The official ``reconstruction.py`` protocol: for each clip, the source is its first frame and
every frame drives the model through the keypoint detector in standard mode (driving keypoints
as they are), with the background predictor where the model has one. Per frame:

- L1: mean absolute error of RGB in [0, 1] (the official reconstruction figure);
- PSNR: ``10 log10(1 / MSE)`` in dB, capped at `PSNR_CAP_DB` for identical frames;
- SSIM: Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5), mean over channels,
  equal to ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=1, channel_axis=...)``;
- AKD: average keypoint distance in pixels between the keypoints of the reconstruction and of
  the driving frame. The papers' AKD uses an independent landmark detector (a face alignment
  network for faces, OpenPose for TED bodies); without one here, this AKD uses the model's own
  TPS keypoint detector, which makes it a consistency measure of the motion, not a comparable
  figure across models;
- with ``--pose-akd``, the honest variant: AKD over the 33 mediapipe Pose landmarks found in
  both the reconstruction and the driving frame, and MKR (missing keypoint rate: the share of
  landmarks visible in the driving frame but not in the reconstruction), as MRAA reports for
  TED. Mediapipe's landmarks are not OpenPose's, so the figures are close to, not equal to,
  the papers'.

Clip figures are means over its frames; the ``mean`` row averages over all frames of all
clips, as the official script does.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tps.commands import print_error
from tps.data import Clip, CropBox, FrameStore, find_clips, to_tensor
from tps.model import TPSMotionModel

__all__ = [
    "PSNR_CAP_DB",
    "l1_error",
    "psnr",
    "ssim",
    "keypoint_distance",
    "PoseLandmarks",
    "landmark_distance",
    "ClipMetrics",
    "evaluate_clip",
    "summarize",
    "format_table",
    "main",
]

logger = logging.getLogger(__name__)

PSNR_CAP_DB = 100.0  # 10 log10(1 / 1e-10): identical frames would otherwise be +inf


def _check_pair(prediction: torch.Tensor, target: torch.Tensor) -> None:
    for name, value in (("prediction", prediction), ("target", target)):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
        if value.dim() != 4:
            raise ValueError(f"{name} must be [B, C, H, W], got shape {tuple(value.shape)}")
    if prediction.shape != target.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ")


def l1_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image mean absolute error ``[B]`` of ``[B, C, H, W]`` images in [0, 1]."""
    _check_pair(prediction, target)
    return (prediction - target).abs().flatten(1).mean(1)


def psnr(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR ``[B]`` in dB of ``[B, C, H, W]`` images, capped at `PSNR_CAP_DB`."""
    _check_pair(prediction, target)
    mse = (prediction.double() - target.double()).pow(2).flatten(1).mean(1)
    floor = data_range**2 * 10 ** (-PSNR_CAP_DB / 10)
    return (10 * torch.log10(data_range**2 / mse.clamp_min(floor))).float()


def _gaussian_window(sigma: float, radius: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM ``[B]`` of ``[B, C, H, W]`` images (mean over channels and valid pixels).

    Gaussian window of radius ``int(3.5 sigma + 0.5)`` (11 taps for sigma 1.5); only pixels whose
    window lies inside the image count, as skimage does, so no padding enters the figure.
    """
    _check_pair(prediction, target)
    radius = int(3.5 * sigma + 0.5)
    if min(prediction.shape[-2:]) < 2 * radius + 1:
        raise ValueError(
            f"images must be at least {2 * radius + 1} px per side for SSIM, got {tuple(prediction.shape)}"
        )
    x, y = prediction.double(), target.double()
    b, c, h, w = x.shape
    g = _gaussian_window(sigma, radius, x.dtype, x.device)
    kernel_h, kernel_w = g.view(1, 1, -1, 1).repeat(c, 1, 1, 1), g.view(1, 1, 1, -1).repeat(c, 1, 1, 1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, kernel_h, groups=c), kernel_w, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return s.flatten(1).mean(1).float()


def keypoint_distance(kp_a: torch.Tensor, kp_b: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Per-frame mean Euclidean distance ``[B]`` in pixels between ``[B, N, 2]`` keypoints
    given as (x, y) in [-1, 1] on a ``height x width`` frame (align_corners=True scale)."""
    if kp_a.shape != kp_b.shape or kp_a.dim() != 3 or kp_a.shape[-1] != 2:
        raise ValueError(
            f"keypoints must be two [B, N, 2] tensors of one shape, got {tuple(kp_a.shape)}, {tuple(kp_b.shape)}"
        )
    scale = kp_a.new_tensor([(width - 1) / 2, (height - 1) / 2])
    return ((kp_a - kp_b) * scale).norm(dim=-1).mean(-1)


class PoseLandmarks:
    """mediapipe Pose (static image mode) body landmarks, an AKD detector independent of the model.

    ``__call__(images [B, 3, H, W] in [0, 1])`` -> ``(points [B, 33, 2]`` in pixels (x, y),
    ``visible [B, 33]`` bool with visibility >= ``min_visibility``); a frame without a person
    has no visible landmark. Use as a context manager or call `close`.
    """

    NUM_LANDMARKS = 33

    def __init__(self, min_visibility: float = 0.5) -> None:
        import mediapipe as mp

        self.min_visibility = float(min_visibility)
        self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1)

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, h, w = images.shape
        points = torch.zeros(b, self.NUM_LANDMARKS, 2)
        visible = torch.zeros(b, self.NUM_LANDMARKS, dtype=torch.bool)
        arrays = (images.detach().clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).cpu().numpy())
        for i, array in enumerate(arrays):
            result = self._pose.process(np.ascontiguousarray(array))
            if result.pose_landmarks is None:
                continue
            for j, lm in enumerate(result.pose_landmarks.landmark):
                points[i, j] = torch.tensor([lm.x * w, lm.y * h])
                visible[i, j] = lm.visibility >= self.min_visibility
        return points, visible

    def close(self) -> None:
        self._pose.close()

    def __enter__(self) -> PoseLandmarks:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def landmark_distance(points_pred: torch.Tensor, visible_pred: torch.Tensor, points_real: torch.Tensor,
                      visible_real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame ``(akd, mkr)`` ``[B]``: mean pixel distance over landmarks visible in both
    (NaN where none is), and the share of the real frame's visible landmarks missing in the
    prediction (NaN where the real frame has none)."""
    both = visible_pred & visible_real
    dist = (points_pred - points_real).norm(dim=-1)
    akd = (dist * both).sum(-1) / both.sum(-1)
    mkr = (visible_real & ~visible_pred).sum(-1) / visible_real.sum(-1)
    return akd.float(), mkr.float()


@dataclass
class ClipMetrics:
    """Means over the frames of one clip (or of all clips for the summary row).

    ``pose_akd``/``pose_mkr`` are None unless pose landmarks were asked for, NaN where no
    frame had a usable landmark."""

    clip: str
    frames: int
    l1: float
    psnr: float
    ssim: float
    akd: float
    pose_akd: float | None = None
    pose_mkr: float | None = None


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


@torch.no_grad()
def evaluate_clip(model: TPSMotionModel, frames: torch.Tensor, name: str = "clip", batch_size: int = 8,
                  progress: bool = False, pose: PoseLandmarks | None = None) -> ClipMetrics:
    """Reconstruct ``frames [T, 3, H, W]`` in [0, 1] from its first frame (standard mode).

    ``model`` must be in eval mode on the device of its choosing; frames move there in batches.
    ``pose``: also measure the mediapipe-landmark AKD and MKR.
    """
    from tqdm.auto import tqdm

    if frames.dim() != 4 or frames.shape[0] < 1:
        raise ValueError(f"frames must be [T, 3, H, W] with T >= 1, got {tuple(frames.shape)}")
    device = next(model.parameters()).device
    model.check_image("frames", frames[:1])
    source = frames[:1].to(device)
    kp_source = model.detect(source)
    values: dict[str, list[float]] = {"l1": [], "psnr": [], "ssim": [], "akd": [], "pose_akd": [], "pose_mkr": []}
    height, width = frames.shape[-2:]
    for start in tqdm(range(0, frames.shape[0], batch_size), desc=name, disable=not progress, leave=False):
        driving = frames[start : start + batch_size].to(device)
        n = driving.shape[0]
        src = source.expand(n, -1, -1, -1)
        kp_driving = model.detect(driving)
        bg_param = model.bg_predictor(src, driving) if model.bg_predictor is not None else None
        prediction = model(src, kp_driving, kp_source.expand(n, -1, -1), bg_param=bg_param)["prediction"]
        prediction = prediction.clamp(0, 1)
        values["l1"] += l1_error(prediction, driving).tolist()
        values["psnr"] += psnr(prediction, driving).tolist()
        values["ssim"] += ssim(prediction, driving).tolist()
        values["akd"] += keypoint_distance(model.detect(prediction), kp_driving, height, width).tolist()
        if pose is not None:
            akd, mkr = landmark_distance(*pose(prediction), *pose(driving))
            values["pose_akd"] += akd.tolist()
            values["pose_mkr"] += mkr.tolist()
    means = {k: (_nanmean(v) if v else None) for k, v in values.items()}
    return ClipMetrics(name, frames.shape[0], **means)


def summarize(rows: list[ClipMetrics]) -> ClipMetrics:
    """Frame-weighted means over clips (the official script averages over all frames); clips
    whose value is NaN or None are left out of that metric's mean."""
    if not rows:
        raise ValueError("rows is empty")
    means: dict[str, float | None] = {}
    for key in ("l1", "psnr", "ssim", "akd", "pose_akd", "pose_mkr"):
        usable = [r for r in rows if getattr(r, key) is not None and not np.isnan(getattr(r, key))]
        if any(getattr(r, key) is not None for r in rows):
            weight = sum(r.frames for r in usable)
            means[key] = sum(getattr(r, key) * r.frames for r in usable) / weight if weight else float("nan")
        else:
            means[key] = None
    return ClipMetrics("mean", sum(r.frames for r in rows), **means)


def format_table(rows: list[ClipMetrics]) -> str:
    """A fixed-width text table of clip rows (the caller appends the summary row if wanted)."""
    width = max(8, *(len(r.clip) for r in rows))
    with_pose = any(r.pose_akd is not None for r in rows)
    header = f"{'clip':<{width}}  {'frames':>6}  {'L1':>8}  {'PSNR':>7}  {'SSIM':>6}  {'AKD(px)':>8}"
    lines = [header + (f"  {'poseAKD':>8}  {'poseMKR':>7}" if with_pose else "")]
    for r in rows:
        line = f"{r.clip:<{width}}  {r.frames:>6d}  {r.l1:>8.5f}  {r.psnr:>7.2f}  {r.ssim:>6.4f}  {r.akd:>8.3f}"
        if with_pose:
            line += f"  {_fmt(r.pose_akd, 8, 3)}  {_fmt(r.pose_mkr, 7, 4)}"
        lines.append(line)
    return "\n".join(lines)


def _fmt(value: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None or np.isnan(value) else f"{value:>{width}.{digits}f}"


def _collect_clips(paths: list[str], split: str | None) -> list[Clip]:
    clips: list[Clip] = []
    for path in paths:
        clips += find_clips(path, split)
    return clips


def _clip_frames(store: FrameStore, clip: Clip, max_frames: int | None) -> np.ndarray:
    """The first ``max_frames`` frames (all when None); frame folders read only those files."""
    if clip.kind == "frames":
        count = store.num_frames(clip)
        return store.frames(clip, list(range(min(count, max_frames or count))))
    return store.frames(clip)[:max_frames]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tps evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True, help="a TPSMotionModel folder (config.json + model.safetensors)")
    parser.add_argument("--data", required=True, nargs="+", help="TED384 root (its test split), folders or videos")
    parser.add_argument("--split", default="test", help="split folder used where the data has one (default test)")
    parser.add_argument("--max-frames", type=int, default=None, help="evaluate at most the first N frames per clip")
    parser.add_argument("--crop", default=None, help="TOP:BOTTOM,LEFT:RIGHT box cut from every frame before resizing")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", default=None, help="write per-clip and mean metrics to this json file")
    parser.add_argument("--csv", default=None, help="write per-clip and mean metrics to this csv file")
    parser.add_argument("--pose-akd", action="store_true",
                        help="also AKD and MKR over mediapipe Pose landmarks (independent of the model)")
    parser.add_argument("--native", action="store_true",
                        help="reconstruct at each clip's own resolution instead: the upscaled model output beside "
                             "composition at that size (tps.compose), with PSNR, SSIM, L1 and sharpness")
    parser.add_argument("--interpolation", choices=("spline", "bicubic"), default="spline",
                        help="--native: the composition's resampling of the source frame (default spline; bicubic "
                             "as earlier releases)")
    parser.add_argument("--bfloat16", action="store_true",
                        help="--native: the inpainting network under bfloat16 autocast (Renderer(bfloat16=True))")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def _write_outputs(rows: list[ClipMetrics], mean: ClipMetrics, json_path: str | None, csv_path: str | None) -> None:
    records = [asdict(r) for r in rows + [mean]]
    keys = [k for k in records[0] if any(r[k] is not None for r in records)]  # no all-empty pose columns
    records = [{k: (None if isinstance(r[k], float) and np.isnan(r[k]) else r[k]) for k in keys} for r in records]
    if json_path:
        Path(json_path).write_text(json.dumps({"clips": records[:-1], "mean": records[-1]}, indent=2) + "\n")
    if csv_path:
        with open(csv_path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.max_frames is not None and args.max_frames < 1:
            raise ValueError(f"--max-frames must be >= 1, got {args.max_frames}")
        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
        if args.bfloat16 and not args.native:
            raise ValueError("--bfloat16 is measured by the native evaluation: add --native")
        model = TPSMotionModel.from_pretrained(args.weights).to(args.device).eval()
        if args.native:
            return _main_native(model, args)
        store = FrameStore(model.config.image_size, CropBox.parse(args.crop) if args.crop else None, cache_bytes=0)
        pose = PoseLandmarks() if args.pose_akd else None
        rows = []
        try:
            for clip in _collect_clips(args.data, args.split):
                frames = to_tensor(_clip_frames(store, clip, args.max_frames))
                rows.append(evaluate_clip(model, frames, clip.name, args.batch_size, not args.no_progress, pose))
        finally:
            if pose is not None:
                pose.close()
        mean = summarize(rows)
        print(format_table(rows + [mean]))
        _write_outputs(rows, mean, args.json, args.csv)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print_error(exc)
        return 2
    return 0


def _main_native(model: TPSMotionModel, args: argparse.Namespace) -> int:
    """``--native``: `tps.evaluate_native` on every clip at its own (cropped) size."""
    from tps.evaluate_native import evaluate_clip_native, format_native_table, summarize_native

    store = FrameStore(None, CropBox.parse(args.crop) if args.crop else None, cache_bytes=0)
    rows = []
    for clip in _collect_clips(args.data, args.split):
        rows += evaluate_clip_native(model, to_tensor(_clip_frames(store, clip, args.max_frames)), clip.name,
                                     args.batch_size, interpolation=args.interpolation, bfloat16=args.bfloat16)
    rows += summarize_native(rows)
    print(format_native_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
