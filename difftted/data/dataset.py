"""Command: talking videos -> a keypoint + audio-feature training set for the denoiser.

Usage::

    python -m difftted build-dataset --videos DIR --detector TPS_DIR --out DATASET_DIR \\
        [--fps 25] [--layout auto|folder|ted384|mraa-csv] [--csv ted-metadata.csv] \\
        [--crop x0,y0,x1,y1] [--window 34] [--test-fraction 0.0] [--batch-size 16] \\
        [--audio-config audio.json]

Body-anchored keypoints instead of the learned detector (``difftted.data.body_dataset``)::

    python -m difftted build-dataset --keypoints body [--videos DIR] [--mocap NPZ_OR_BVH ...] \\
        [--cuts cuts.json] --out DATASET_DIR

Input layouts (``--layout auto`` picks ``mraa-csv`` when ``--csv`` is given, ``ted384`` when DIR
has ``train/`` or ``test/`` folders, else ``folder``):

* ``folder``: every ``*.mp4`` under DIR (recursively), each with its own sound track.
* ``ted384``: ``DIR/{train,test}/<youtube id>#<start>#<end>.mp4`` or a folder of PNG frames of
  that name (MRAA's TED384-v2). The published clips are silent, so the audio is looked up beside
  each clip: a file with the same stem and an audio suffix (``.wav .m4a .mp3 .flac .ogg .aac``),
  else the clip's own track, else the whole talk's audio ``<youtube id>.<ext>`` in the split
  folder or DIR, cut to the clip's frame range.
* ``mraa-csv``: MRAA's ``ted-metadata.csv`` (``video_id,start,end,bbox,fps,width,height,
  partition``) with the clips (as in ``ted384``) or the whole talks ``<youtube id>.mp4`` in DIR;
  a whole talk is cut to the frame range and cropped to ``bbox``. The csv as shipped is
  defective (every row has ``start=end=0`` and ``partition=train``): the frame range is taken
  from ``video_id`` (``<youtube id>#<start>#<end>``, frames at the row's ``fps``) whenever the
  columns do not hold one, and a partition column with a single value is treated as absent;
  then a clip found in ``DIR/train`` or ``DIR/test`` takes that split, and ``--test-fraction``
  holds out whole talks otherwise. (Decoding a whole talk runs from its start: no seeking.)

Output, in DATASET_DIR::

    clips/<clip id>.npz     keypoints [T, N, 2] float32 in [-1, 1] (x, y) at --fps,
                            audio_features [T, D] float32, waveform [S] float32 mono,
                            sample_rate, fps
    keypoint_stats.json     KeypointStats over every training frame
    manifest.json           fps, window, feature_dim, audio_config, detector, clips, skipped

Clips without sound, with silent sound, shorter than one window, or whose files are missing are
skipped and listed under ``skipped`` in the manifest and in the log; they never stop the build.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from difftted.data.dataset_layouts import ClipSource, SkipClip, decoded_fps, discover, frame_batches, parse_crop
from tps.commands import print_error

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
STATS_NAME = "keypoint_stats.json"
CLIPS_DIR = "clips"
#: Audio whose peak is below this (full scale 1.0) is digital silence, i.e. a clip "without sound".
SILENCE_PEAK = 1e-4


def resample_keypoints(keypoints: np.ndarray, src_fps: float, dst_fps: float) -> np.ndarray:
    """Linear interpolation in time of ``keypoints [n, ...]`` sampled at ``src_fps`` to ``dst_fps``.

    Frame ``j`` of the output is the sequence at time ``j / dst_fps``; the output covers the same
    duration ``n / src_fps`` (``round(n * dst_fps / src_fps)`` frames, at least 1) and times past
    the last input frame hold its value.
    """
    keypoints = np.asarray(keypoints, dtype=np.float32)
    if keypoints.ndim < 1 or keypoints.shape[0] == 0:
        raise ValueError(f"keypoints must have shape [n>0, ...], got {keypoints.shape}")
    for name, value in (("src_fps", src_fps), ("dst_fps", dst_fps)):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    n = keypoints.shape[0]
    if abs(src_fps - dst_fps) < 1e-9:
        return keypoints.copy()
    m = max(1, int(round(n * dst_fps / src_fps)))
    pos = np.minimum(np.arange(m) * (src_fps / dst_fps), n - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, n - 1)
    w = (pos - lo).astype(np.float32).reshape((m,) + (1,) * (keypoints.ndim - 1))
    return (1.0 - w) * keypoints[lo] + w * keypoints[hi]


# ------------------------------------------------------------------------------- detection
def _prepare_batch(frames: np.ndarray, crop: tuple[int, int, int, int] | None,
                   size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """uint8 frames ``[b, H, W, 3]`` -> detector input ``[b, 3, h, w]`` in ``[0, 1]``."""
    if crop is not None:
        x0, y0, x1, y1 = crop
        frames = frames[:, max(y0, 0):y1, max(x0, 0):x1]
        if frames.shape[1] == 0 or frames.shape[2] == 0:
            raise SkipClip(f"crop {crop} lies outside the frame")
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float() / 255.0
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
    return x.clamp_(0.0, 1.0)


def detect_clip(detector, clip: ClipSource, batch_size: int = 16,
                progress: bool = False) -> tuple[np.ndarray, float]:
    """TPS keypoints of every frame of ``clip``: ``([n, N, 2] float32 in [-1, 1], source fps)``.

    Frames are resized to the detector's ``config.image_size`` and detected ``batch_size`` at a
    time under ``torch.inference_mode``.
    """
    device = next(detector.parameters()).device
    size = tuple(detector.config.image_size)
    out: list[np.ndarray] = []
    fps, batches = frame_batches(clip, batch_size, size)
    with torch.inference_mode():
        for frames in tqdm(batches, desc=f"detect {clip.clip_id}", unit="batch",
                           disable=not progress, leave=False):
            x = _prepare_batch(frames, clip.crop, size, device)
            out.append(detector.detect(x).float().cpu().numpy())
    if not out:
        raise SkipClip("the video has no frames in the requested range")
    keypoints = np.concatenate(out, axis=0)
    return keypoints, decoded_fps(clip, keypoints.shape[0], fps)


# ----------------------------------------------------------------------------------- audio
def clip_audio(clip: ClipSource, sample_rate: int) -> tuple[np.ndarray, int]:
    """The clip's speech ``([S] float32 mono, sr)``, cut to the clip's time range if it has one."""
    from difftted.audio.features import load_audio

    path = clip.audio if clip.audio is not None else clip.video
    if path.is_dir():
        raise SkipClip("no audio: a folder of frames without an audio file beside it")
    try:
        waveform, sr = load_audio(path, sample_rate)
    except ValueError as err:
        raise SkipClip(f"no audio: {err}") from err
    if clip.audio_start is not None:
        begin = int(round(clip.audio_start * sr))
        end = int(round(clip.audio_end * sr)) if clip.audio_end is not None else len(waveform)
        waveform = waveform[begin:end]
    if waveform.size == 0 or float(np.max(np.abs(waveform))) < SILENCE_PEAK:
        raise SkipClip("no audio: the sound track is silent")
    return np.ascontiguousarray(waveform, dtype=np.float32), int(sr)


# ------------------------------------------------------------------------------- building
@dataclass
class BuildOptions:
    fps: float = 25.0
    window: int = 34
    batch_size: int = 16
    progress: bool = True
    keypoints: str = "detector"  # or "body": mediapipe body-anchored keypoints (difftted.data.body_dataset)


def save_clip(out_dir: str | Path, clip_id: str, split: str, keypoints: np.ndarray,
              audio_features: np.ndarray, waveform: np.ndarray, sample_rate: int, fps: float,
              **info) -> dict:
    """Write one clip (``keypoints [T, N, 2]``, ``audio_features [T, D]``, ``waveform [S]``) as
    ``clips/<clip_id>.npz`` in ``out_dir``; returns its manifest entry (``info`` added to it)."""
    keypoints = np.asarray(keypoints, dtype=np.float32)
    audio_features = np.asarray(audio_features, dtype=np.float32)
    if keypoints.ndim != 3 or keypoints.shape[2] != 2:
        raise ValueError(f"keypoints must have shape [T, N, 2], got {keypoints.shape}")
    if audio_features.ndim != 2 or audio_features.shape[0] != keypoints.shape[0]:
        raise ValueError(f"audio_features must have shape [T={keypoints.shape[0]}, D], got {audio_features.shape}")
    if "/" in clip_id or clip_id in {"", ".", ".."}:
        raise ValueError(f"clip_id must be a plain file name, got {clip_id!r}")
    rel = Path(CLIPS_DIR) / f"{clip_id}.npz"
    (Path(out_dir) / CLIPS_DIR).mkdir(parents=True, exist_ok=True)
    np.savez(Path(out_dir) / rel, keypoints=keypoints, audio_features=audio_features,
             waveform=np.asarray(waveform, dtype=np.float32), sample_rate=np.int64(sample_rate),
             fps=np.float64(fps))
    frames = int(keypoints.shape[0])
    return {"id": clip_id, "file": rel.as_posix(), "split": split, "frames": frames, "fps": float(fps),
            "duration": frames / fps, "feature_dim": int(audio_features.shape[1]), **info}


def process_clip(clip: ClipSource, detector, extractor, opts: BuildOptions, out_dir: Path) -> dict:
    """Detect, resample and featurise one clip; write ``clips/<id>.npz``; return its manifest entry.

    Raises `SkipClip` for a clip that cannot enter the dataset.
    """
    if not clip.video.exists():
        raise SkipClip(f"video not found: {clip.video}")
    waveform, sr = clip_audio(clip, extractor.config.sample_rate)
    info: dict = {}
    if opts.keypoints == "body":
        from difftted.data.body_dataset import detect_body_clip

        kp_src, src_fps, info = detect_body_clip(clip, opts.batch_size)
    else:
        kp_src, src_fps = detect_clip(detector, clip, opts.batch_size, progress=opts.progress)
    keypoints = resample_keypoints(kp_src, src_fps, opts.fps)
    frames = keypoints.shape[0]
    if frames < opts.window:
        raise SkipClip(f"too short: {frames} frames at {opts.fps:g} fps, one window is {opts.window}")
    features = extractor(waveform, sr, opts.fps, num_frames=frames)
    return save_clip(out_dir, clip.clip_id, clip.split, keypoints, features, waveform, sr, opts.fps,
                     source=str(clip.video), audio_source=str(clip.audio or clip.video),
                     source_fps=src_fps, source_frames=int(kp_src.shape[0]), **info)


def build_dataset(clips: list[ClipSource], detector, extractor, out_dir: str | Path,
                  opts: BuildOptions, extra_manifest: dict | None = None) -> dict:
    """Turn ``clips`` into a dataset in ``out_dir`` (see the module docstring); returns the manifest."""
    out_dir = Path(out_dir)
    entries, skipped = [], []
    for clip in tqdm(clips, desc="build-dataset", unit="clip", disable=not opts.progress):
        try:
            entries.append(process_clip(clip, detector, extractor, opts, out_dir))
        except SkipClip as err:
            logger.warning("skipped clip %s (%s): %s", clip.clip_id, clip.video, err)
            skipped.append({"id": clip.clip_id, "source": str(clip.video), "reason": str(err)})
    return finalize_dataset(out_dir, entries, skipped, extractor.config, opts.fps, opts.window, extra_manifest)


def finalize_dataset(out_dir: str | Path, entries: list[dict], skipped: list[dict], audio_config,
                     fps: float, window: int, extra_manifest: dict | None = None) -> dict:
    """Write ``keypoint_stats.json`` (over the training clips) and ``manifest.json``; return the manifest.

    ``entries`` are what `save_clip` returned; ``audio_config`` the `AudioFeatureConfig` of the
    features. Raises ValueError when no training clip is usable, listing the skipped ones.
    """
    from difftted.motion.keypoints import KeypointStats

    out_dir = Path(out_dir)
    train = [e for e in entries if e["split"] == "train"]
    if not train:
        raise ValueError(f"no usable training clip among {len(entries) + len(skipped)} clips; skipped: "
                         + "; ".join(f"{s['id']}: {s['reason']}" for s in skipped))
    stats = KeypointStats.from_sequences([np.load(out_dir / e["file"])["keypoints"] for e in train])
    stats.save(out_dir / STATS_NAME)
    manifest = {
        "format": "difftted.dataset.v1", "fps": float(fps), "window": int(window),
        "num_keypoints": stats.num_keypoints, "feature_dim": int(audio_config.feature_dim),
        "audio_config": audio_config.to_dict(), "keypoint_stats": STATS_NAME,
        **(extra_manifest or {}), "clips": entries, "skipped": skipped,
    }
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1))
    logger.info("dataset %s: %d clips (%d train), %d skipped", out_dir, len(entries), len(train), len(skipped))
    return manifest


def load_manifest(dataset_dir: str | Path) -> dict:
    """The manifest of a dataset built by this module (ValueError naming the folder otherwise)."""
    path = Path(dataset_dir) / MANIFEST_NAME
    if not path.is_file():
        raise ValueError(f"dataset_dir {str(dataset_dir)!r} has no {MANIFEST_NAME}; build it with "
                         "`python -m difftted build-dataset`")
    return json.loads(path.read_text())


# -------------------------------------------------------------------------------- command
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m difftted build-dataset", description=__doc__.split("\n")[0])
    p.add_argument("--videos", type=Path, help="folder of videos (see --layout)")
    p.add_argument("--detector", type=Path, help="tps model folder (save_pretrained); --keypoints detector")
    p.add_argument("--keypoints", choices=["detector", "body"], default="detector",
                   help="keypoint source: the learned TPS detector, or body-anchored keypoints from "
                        "mediapipe (docs/body_keypoints.md)")
    p.add_argument("--mocap", type=Path, nargs="*", default=[],
                   help="with --keypoints body: BEAT2 .npz / BEAT .bvh files, each with its .wav beside")
    p.add_argument("--cuts", type=Path, help="with --keypoints body: json of jump cuts and excluded clips")
    p.add_argument("--out", required=True, type=Path, help="dataset folder to write")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate of the dataset (default 25)")
    p.add_argument("--layout", choices=["auto", "folder", "ted384", "mraa-csv"], default="auto")
    p.add_argument("--csv", type=Path, help="MRAA ted-metadata.csv (implies --layout mraa-csv)")
    p.add_argument("--crop", type=parse_crop, help="x0,y0,x1,y1 pixel box cut from every frame")
    p.add_argument("--window", type=int, default=34, help="shortest usable clip, in frames at --fps")
    p.add_argument("--frames-fps", type=float, default=10.0,
                   help="frame rate of PNG-frame folders when no csv gives one (TED384: 10)")
    p.add_argument("--test-fraction", type=float, default=0.0,
                   help="hold out this fraction of talks as 'test' where the layout gives no split")
    p.add_argument("--batch-size", type=int, default=16, help="frames per detector batch")
    p.add_argument("--audio-config", type=Path, help="json of AudioFeatureConfig fields (default: its defaults)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-progress", action="store_true")
    return p


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    if args.fps <= 0 or args.window <= 0 or args.batch_size <= 0:
        p.error(f"--fps, --window and --batch-size must be positive, got {args.fps}, {args.window}, {args.batch_size}")
    if args.keypoints == "detector" and (args.detector is None or args.videos is None):
        p.error("--keypoints detector needs --videos and --detector")
    if args.keypoints == "body" and args.videos is None and not args.mocap:
        p.error("--keypoints body needs --videos and/or --mocap")
    if not 0.0 <= args.test_fraction < 1.0:
        p.error(f"--test-fraction must be in [0, 1), got {args.test_fraction}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from difftted.audio.features import AudioFeatureConfig, AudioFeatureExtractor
    from tps.model import TPSMotionModel

    opts = BuildOptions(fps=args.fps, window=args.window, batch_size=args.batch_size,
                        progress=not args.no_progress, keypoints=args.keypoints)
    extra = {"detector": None if args.detector is None else str(args.detector), "layout": args.layout,
             "crop": args.crop}
    try:
        audio_config = (AudioFeatureConfig.from_dict(json.loads(args.audio_config.read_text()))
                        if args.audio_config else AudioFeatureConfig())
        clips = [] if args.videos is None else discover(
            args.videos, layout=args.layout, csv_path=args.csv, crop=args.crop,
            frames_fps=args.frames_fps, test_fraction=args.test_fraction)
        if args.keypoints == "body":
            from difftted.data.body_dataset import build_body_dataset, load_cuts, split_at_cuts

            clips, skipped = split_at_cuts(clips, *load_cuts(args.cuts))
            manifest = build_body_dataset(clips, args.mocap, AudioFeatureExtractor(audio_config), args.out,
                                          opts, extra, skipped)
        else:
            detector = TPSMotionModel.from_pretrained(args.detector).to(args.device).eval()
            manifest = build_dataset(clips, detector, AudioFeatureExtractor(audio_config), args.out, opts, extra)
    except (ValueError, FileNotFoundError, json.JSONDecodeError) as err:
        print_error(err)
        return 2
    print(f"{len(manifest['clips'])} clips written to {args.out}, {len(manifest['skipped'])} skipped")
    for s in manifest["skipped"]:
        print(f"  skipped {s['id']}: {s['reason']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

