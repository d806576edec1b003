"""Animate a photo with a driving video (the official demo), as a function and a command.

    python -m tps animate --source photo.png --driving talk.mp4 --weights MODEL_DIR --out out.mp4

Steps, as demo.py: resize the photo and every driving frame to the model's resolution (scikit-
image's anti-aliased resize, squashing a non-square frame as the official demo does), detect the
driving keypoints (in batches), map them with the chosen mode (``relative`` by default: the
source keypoints plus the driving motion since the first frame), render with `tps.Renderer`
and write an H.264 mp4 that carries the driving video's audio. Frames are decoded, rendered and
encoded chunk by chunk, so memory stays bounded by a chunk however long the video is; only the
keypoints (``T x K*5 x 2`` floats) are held for the whole clip.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from tps.commands import print_error
from tps.model import TPSMotionModel
from tps.render import MODES, Renderer
from tps.video import iter_frames, video_info, write_video

__all__ = ["animate", "iter_animation", "load_model", "load_image", "main"]

logger = logging.getLogger(__name__)


def _resize(frame: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """``uint8 [H, W, 3]`` -> ``[1, 3, h, w]`` float in [0, 1], skimage's anti-aliased resize."""
    from skimage.transform import resize

    image = frame[..., :3].astype(np.float32) / 255.0
    if image.shape[:2] != tuple(size):
        image = resize(image, size, anti_aliasing=image.shape[0] > size[0] or image.shape[1] > size[1])
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None].clamp(0, 1)


def load_image(source: str | Path | np.ndarray | torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A photo as ``[1, 3, H, W]`` in [0, 1] at ``size`` (height, width).

    ``source``: an image file (any format Pillow reads; alpha dropped), a ``uint8 [H, W, 3|4]``
    array, or a float tensor ``[3, H, W]`` / ``[1, 3, H, W]`` in [0, 1].
    """
    if isinstance(source, torch.Tensor):
        image = source[None] if source.dim() == 3 else source
        if image.dim() != 4 or image.shape[:2] != (1, 3) or not image.is_floating_point():
            raise ValueError(f"source_image tensor must be float [3, H, W] or [1, 3, H, W], got {source.dtype} {tuple(source.shape)}")
        array = (image[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().cpu().numpy()
        return _resize(array, size) if tuple(image.shape[-2:]) != tuple(size) else image.float().cpu()
    if isinstance(source, (str, Path)):
        from PIL import Image, UnidentifiedImageError

        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"source_image: no such file: {str(path)!r}")
        try:
            with Image.open(path) as img:
                source = np.asarray(img.convert("RGB"))
        except UnidentifiedImageError as err:
            raise ValueError(f"source_image: {str(path)!r} is not an image Pillow can read") from err
    if not isinstance(source, np.ndarray):
        raise TypeError(f"source_image must be a path, a uint8 array or a float tensor, got {type(source).__name__}")
    if source.dtype != np.uint8 or source.ndim != 3 or source.shape[2] not in (3, 4):
        raise ValueError(f"source_image array must be uint8 [H, W, 3 or 4], got {source.dtype} {source.shape}")
    return _resize(source, size)


def load_model(weights: str | Path, config: str | None = None) -> TPSMotionModel:
    """A model folder (`TPSMotionModel.save_pretrained`) or an official ``*.pth.tar``.

    ``config`` (a preset name or config file) is needed for an official checkpoint only
    (default ``ted-384``); a folder carries its own config.json.
    """
    path = Path(weights)
    if path.is_dir():
        if config is not None:
            raise ValueError(f"--config is only for official checkpoints; {str(path)!r} is a model folder with its own config.json")
        return TPSMotionModel.from_pretrained(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights: no such model folder or checkpoint: {str(path)!r}")
    from tps.checkpoint import load_official_checkpoint
    from tps.convert import resolve_config

    return load_official_checkpoint(path, resolve_config(config or "ted-384"))


def _driving_keypoints(
    model: TPSMotionModel, frames: Iterator[np.ndarray], size: tuple[int, int], total: int,
    batch_size: int, progress: bool,
) -> torch.Tensor:
    """``[T, K*5, 2]`` keypoints of every driving frame, detected in batches."""
    device = next(model.parameters()).device
    keypoints, batch = [], []

    def flush() -> None:
        with torch.inference_mode():
            keypoints.append(model.detect(torch.cat(batch).to(device)).float().cpu())
        batch.clear()

    with tqdm(total=total or None, desc="driving keypoints", unit="frame", disable=not progress) as bar:
        for frame in frames:
            batch.append(_resize(frame, size))
            if len(batch) == batch_size:
                flush()
            bar.update(1)
        if batch:
            flush()
    if not keypoints:
        raise ValueError("driving_video: no frame could be decoded")
    return torch.cat(keypoints)


def _given_keypoints(source, driving, num_kp: int, keypoint_source: str) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(source [1, K, 2], driving [T, K, 2])`` float tensors from the arguments of `animate`, or
    None when neither is given (the model's detector finds them). A model trained on given
    keypoints needs both: its detector was never trained."""
    if source is None and driving is None:
        if keypoint_source == "given":
            raise ValueError("source_keypoints and driving_keypoints are required: this renderer was trained on "
                             "keypoints given from outside (config.keypoint_source 'given'), its detector is unused")
        return None
    if source is None or driving is None:
        missing = "source_keypoints" if source is None else "driving_keypoints"
        raise ValueError(f"{missing} is missing: give both keypoint arguments or neither")
    src = torch.as_tensor(np.asarray(source, dtype=np.float32)).reshape(1, -1, 2)
    drv = torch.as_tensor(np.asarray(driving, dtype=np.float32))
    if src.shape[1] != num_kp:
        raise ValueError(f"source_keypoints must hold {num_kp} keypoints [{num_kp}, 2], got shape {tuple(np.shape(source))}")
    if drv.ndim != 3 or drv.shape[1:] != (num_kp, 2) or drv.shape[0] == 0:
        raise ValueError(f"driving_keypoints must be [T, {num_kp}, 2] with T >= 1, got shape {tuple(drv.shape)}")
    if not (torch.isfinite(src).all() and torch.isfinite(drv).all()):
        raise ValueError("source_keypoints and driving_keypoints must be finite")
    return src, drv


def iter_animation(
    source_image: str | Path | np.ndarray | torch.Tensor,
    driving_video: str | Path,
    model: TPSMotionModel,
    mode: str = "relative",
    batch_size: int = 8,
    max_frames: int | None = None,
    fast: bool = True,
    progress: bool = True,
    source_keypoints: np.ndarray | torch.Tensor | None = None,
    driving_keypoints: np.ndarray | torch.Tensor | None = None,
) -> Iterator[torch.Tensor]:
    """The animation's frames, chunk by chunk: ``[<=batch_size, 3, H, W]`` in [0, 1].

    Arguments as `animate`. The driving keypoints of the whole clip are detected before the
    first chunk is returned (relative mode needs the first frame's; they are small).
    """
    if not isinstance(model, TPSMotionModel):
        raise TypeError(f"model must be a tps.TPSMotionModel, got {type(model).__name__}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    info = video_info(driving_video, name="driving_video")
    size = model.config.image_size
    num_kp = model.config.num_tps * 5
    given = _given_keypoints(source_keypoints, driving_keypoints, num_kp, model.config.keypoint_source)
    renderer = Renderer(model, fast=fast)
    source = load_image(source_image, size).to(renderer.device)
    prepared = renderer.prepare(source, None if given is None else given[0].to(renderer.device))
    total = info.num_frames if max_frames is None else min(max_frames, info.num_frames)
    if given is None:
        frames = iter_frames(info.path, max_frames=max_frames)
        kp_driving = _driving_keypoints(model, frames, size, total, batch_size, progress)
    else:
        kp_driving = given[1][:total]
    logger.info("driving video %s: %d frames at %.3f fps", info.path, len(kp_driving), info.fps)
    return renderer.iter_render(prepared, kp_driving, mode=mode, batch_size=batch_size, progress=progress)


def animate(
    source_image: str | Path | np.ndarray | torch.Tensor,
    driving_video: str | Path,
    model: TPSMotionModel,
    out_path: str | Path,
    mode: str = "relative",
    batch_size: int = 8,
    max_frames: int | None = None,
    audio: bool = True,
    fast: bool = True,
    progress: bool = True,
    source_keypoints: np.ndarray | torch.Tensor | None = None,
    driving_keypoints: np.ndarray | torch.Tensor | None = None,
) -> Path:
    """Animate ``source_image`` with the motion of ``driving_video`` and write ``out_path`` (mp4).

    Args:
        source_image: a photo (see `load_image`); resized to ``model.config.image_size``.
        driving_video: a video file; its frame rate and (when ``audio``) its audio are kept.
        model: a `TPSMotionModel`.
        out_path: the mp4 to write (H.264 + AAC).
        mode: ``"relative"`` (default, as the official demo), ``"standard"`` or ``"avd"``.
        batch_size: frames per detector and renderer batch (memory grows with it).
        max_frames: only the first frames of the driving video (None: all).
        audio: carry the driving video's audio (skipped with a warning when it has none).
        fast: `Renderer`'s output-preserving fast path.
        progress: tqdm bars for detection and rendering.
        source_keypoints, driving_keypoints: ``[K, 2]`` and ``[T, K, 2]`` keypoints in [-1, 1] of
            the (resized) source and of each driving frame, instead of the model's detector;
            required for a model trained on given keypoints (``config.keypoint_source ==
            "given"``; `difftted.interfaces.ui.animate` finds body keypoints for it). ``T`` may
            exceed the frames rendered (``max_frames``).

    Returns:
        ``out_path`` as a Path.
    """
    chunks = iter_animation(source_image, driving_video, model, mode, batch_size, max_frames, fast, progress,
                            source_keypoints, driving_keypoints)
    info = video_info(driving_video, name="driving_video")
    if audio and not info.has_audio:
        logger.warning("driving video %s has no audio stream: writing a silent video", info.path)
    return write_video(out_path, chunks, info.fps, audio=info.path if audio and info.has_audio else None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tps animate", description="Animate a photo with a driving video (TPSMM demo)."
    )
    parser.add_argument("--source", required=True, help="the photo to animate")
    parser.add_argument("--driving", required=True, help="driving video (its fps and audio are kept)")
    parser.add_argument("--weights", required=True, help="model folder (config.json + model.safetensors) or official *.pth.tar")
    parser.add_argument("--config", default=None, help="preset or config file, for an official *.pth.tar only (default ted-384)")
    parser.add_argument("--out", required=True, help="output .mp4")
    parser.add_argument("--mode", choices=MODES, default="relative")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-frames", type=int, default=None, help="only the first N driving frames")
    parser.add_argument("--no-audio", action="store_true", help="do not copy the driving video's audio")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.threads is not None:
        torch.set_num_threads(max(1, args.threads))
    try:
        model = load_model(args.weights, args.config)
        out = animate(
            args.source, args.driving, model, args.out, mode=args.mode, batch_size=args.batch_size,
            max_frames=args.max_frames, audio=not args.no_audio, progress=not args.quiet,
        )
    except (FileNotFoundError, ValueError, TypeError) as err:
        print_error(err)
        return 1
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
