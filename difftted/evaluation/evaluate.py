"""Command: motion metrics of generated clips next to the ground truth's own, as one table.

Usage::

    python -m difftted evaluate --generated RUN_A/ --generated RUN_B/ \\
        --ground-truth DATASET_DIR [--split test] [--motion-ae AE_DIR] [--detector TPS_DIR] \\
        [--fps 25] [--json metrics.json]

Each ``--generated`` gives one row: a folder, or files, of generated clips, each
* ``.npz`` with ``keypoints`` ``[T, N, 2]`` (or ``[T, N*2]``) and optionally ``fps``,
  ``waveform`` + ``sample_rate`` (the speech it was generated from),
* ``.npy`` keypoints alone (at ``--fps``),
* a video (``.mp4`` ...): keypoints through the ``--detector`` tps model, audio from its track.
A clip without its own audio takes an audio file with the same stem beside it, else the audio of
its ground-truth clip. Generated clips are matched to ground-truth clips by name: the clip id
itself, or the id followed by ``_`` or ``-`` and anything (``<id>_sample1.npz``).

``--ground-truth`` is a dataset folder (its ``--split`` clips, all splits when omitted) or
files in the formats above. The ground-truth row measures the same clips that some row matched.

Columns (difftted.evaluation.metrics): BC (higher is better), Diversity (of motion-autoencoder features of
non-overlapping windows), FGD (Frechet distance of those features to the ground truth's), L1 to
the ground truth (keypoint units, generated resampled to the ground truth's fps), jitter (mean
acceleration, keypoint units / s^2), spread (mean distance of a keypoint from its mean position:
how far the motion ranges; jitter is only good beside a spread near the ground truth's, since
a still clip has none). Without ``--motion-ae`` Diversity and FGD are left out.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from difftted.data.dataset import resample_keypoints
from difftted.data.dataset_layouts import AUDIO_SUFFIXES, VIDEO_SUFFIXES
from difftted.evaluation import metrics
from tps.commands import print_error

logger = logging.getLogger(__name__)

KEYPOINT_SUFFIXES = (".npz", ".npy")
#: Rate speech is decoded at for Beat Consistency (librosa onsets); any rate would do.
AUDIO_RATE = 16000
COLUMNS = (("bc", "BC ↑"), ("diversity", "Diversity"), ("fgd", "FGD ↓"), ("l1", "L1 ↓"), ("jitter", "Jitter ↓"),
           ("spread", "Spread"))


@dataclass
class Clip:
    """One motion clip: keypoints ``[T, N, 2]`` at ``fps`` and, where known, its speech."""

    name: str
    keypoints: np.ndarray
    fps: float
    waveform: np.ndarray | None = None
    sample_rate: int | None = None


# ---------------------------------------------------------------------------------- loading
def _as_keypoints(array: np.ndarray, where: str) -> np.ndarray:
    kp = np.asarray(array, dtype=np.float32)
    if kp.ndim == 2 and kp.shape[1] % 2 == 0:
        kp = kp.reshape(kp.shape[0], -1, 2)
    if kp.ndim != 3 or kp.shape[2] != 2 or kp.shape[0] < 3:
        raise ValueError(f"{where}: keypoints must have shape [T>=3, N, 2] or [T, N*2], got {kp.shape}")
    return kp


def load_clip_file(path: Path, fps: float, detector=None) -> Clip:
    """A `Clip` from a ``.npz`` / ``.npy`` keypoint file or a video (through ``detector``)."""
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            if "keypoints" not in data.files:
                raise ValueError(f"{path} has no 'keypoints' array (has {data.files})")
            clip = Clip(path.stem, _as_keypoints(data["keypoints"], str(path)),
                        float(data["fps"]) if "fps" in data.files else fps)
            if "waveform" in data.files and "sample_rate" in data.files:
                clip.waveform, clip.sample_rate = data["waveform"].astype(np.float32), int(data["sample_rate"])
    elif suffix == ".npy":
        clip = Clip(path.stem, _as_keypoints(np.load(path, allow_pickle=False), str(path)), fps)
    elif suffix in VIDEO_SUFFIXES:
        clip = _video_clip(path, detector)
    else:
        raise ValueError(f"{path}: unsupported file type {suffix!r}; expected .npz, .npy or a video")
    if clip.waveform is None:
        audio = next((path.with_suffix(s) for s in AUDIO_SUFFIXES if path.with_suffix(s).is_file()), None)
        if audio is not None:
            from difftted.audio.features import load_audio

            clip.waveform, clip.sample_rate = load_audio(audio, AUDIO_RATE)
    return clip


def _video_clip(path: Path, detector) -> Clip:
    from difftted.audio.features import load_audio
    from difftted.data.dataset import detect_clip
    from difftted.data.dataset_layouts import ClipSource

    if detector is None:
        raise ValueError(f"{path} is a video: pass --detector TPS_DIR to detect its keypoints")
    kp, fps = detect_clip(detector, ClipSource(clip_id=path.stem, video=path))
    clip = Clip(path.stem, kp, fps)
    try:
        clip.waveform, clip.sample_rate = load_audio(path, AUDIO_RATE)
    except ValueError as err:
        logger.warning("%s: no audio (%s)", path, err)
    return clip


def expand_paths(items: list[str], suffixes: tuple[str, ...]) -> list[Path]:
    """Files of ``items`` (files, or folders whose files with ``suffixes`` are taken), sorted."""
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            paths += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in suffixes)
        elif p.is_file():
            paths.append(p)
        else:
            raise ValueError(f"{item!r} is neither a file nor a folder")
    if not paths:
        raise ValueError(f"no clip files in {items}")
    return paths


def load_ground_truth(items: list[str], split: str | None, fps: float, detector) -> dict[str, Clip]:
    """Ground-truth clips by name, from a dataset folder (one item) or clip files."""
    root = Path(items[0])
    if len(items) == 1 and (root / "manifest.json").is_file():
        from difftted.data.dataset import load_manifest
        from difftted.data.windows import load_clip

        clips = {}
        for entry in load_manifest(root)["clips"]:
            if split is None or entry["split"] == split:
                data = load_clip(root, entry)
                clips[entry["id"]] = Clip(entry["id"], data["keypoints"], float(data["fps"]),
                                          data["waveform"], int(data["sample_rate"]))
        if not clips:
            raise ValueError(f"dataset {str(root)!r} has no clip in split {split!r}")
        return clips
    suffixes = KEYPOINT_SUFFIXES + VIDEO_SUFFIXES
    return {c.name: c for c in (load_clip_file(p, fps, detector) for p in expand_paths(items, suffixes))}


def match(name: str, truth: dict[str, Clip]) -> Clip | None:
    """The ground-truth clip of a generated clip called ``name`` (see the module docstring)."""
    if name in truth:
        return truth[name]
    hits = [k for k in truth if name.startswith(k) and name[len(k)] in "_-"]
    return truth[max(hits, key=len)] if hits else None


# ---------------------------------------------------------------------------------- metrics
def _bc(clip: Clip) -> float:
    if clip.waveform is None:
        return float("nan")
    return metrics.beat_consistency(clip.keypoints, clip.waveform, clip.sample_rate, clip.fps)


def _features(clips: list[Clip], motion_ae) -> np.ndarray:
    feats = [motion_ae.clip_features(c.keypoints, c.fps) for c in clips]
    return np.concatenate(feats) if feats else np.zeros((0, motion_ae.config.feature_dim))


def evaluate_row(clips: list[Clip], truth: list[Clip | None], motion_ae=None,
                 truth_features: np.ndarray | None = None, seed: int = 0) -> dict[str, float]:
    """The metrics of ``clips``; ``truth[i]`` is the ground truth of ``clips[i]`` (or None)."""
    row: dict[str, float] = {"clips": len(clips), **{key: math.nan for key, _ in COLUMNS}}
    row["bc"] = float(np.nanmean([_bc(c) for c in clips])) if any(c.waveform is not None for c in clips) else math.nan
    row["jitter"] = float(np.mean([metrics.jitter(c.keypoints, c.fps) for c in clips]))
    row["spread"] = float(np.mean([metrics.motion_spread(c.keypoints) for c in clips]))
    pairs = [(c, t) for c, t in zip(clips, truth) if t is not None and t is not c]
    if pairs:
        l1 = []
        for c, t in pairs:
            kp = resample_keypoints(c.keypoints, c.fps, t.fps)
            n = min(kp.shape[0], t.keypoints.shape[0])
            l1.append(metrics.l1_distance(kp[:n], t.keypoints[:n]))
        row["l1"] = float(np.mean(l1))
    if motion_ae is not None:
        feats = _features(clips, motion_ae)
        row["diversity"] = metrics.diversity(feats, rng=seed) if len(feats) >= 2 else math.nan
        if truth_features is not None and len(feats) >= 2 and len(truth_features) >= 2:
            row["fgd"] = metrics.frechet_distance(truth_features, feats)
    return row


def format_table(rows: dict[str, dict[str, float]]) -> str:
    """Rows as a fixed-width text table; a missing or NaN value prints as ``-``."""
    header = ["", "clips"] + [title for key, title in COLUMNS]
    lines = [header]
    for name, row in rows.items():
        cells = [name, str(int(row["clips"]))]
        for key, _ in COLUMNS:
            value = row.get(key)
            cells.append("-" if value is None or not math.isfinite(value) else f"{value:.4f}")
        lines.append(cells)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths)))
           for line in lines]
    out.insert(1, "-" * len(out[0]))
    return "\n".join(out)


# ---------------------------------------------------------------------------------- command
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m difftted evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--generated", action="append", nargs="+", required=True, metavar="DIR_OR_FILE",
                   help="generated clips; repeat the option for more rows")
    p.add_argument("--ground-truth", nargs="+", required=True, metavar="DATASET_DIR_OR_FILE")
    p.add_argument("--split", help="dataset split of the ground truth (default: all)")
    p.add_argument("--motion-ae", type=Path, help="motion autoencoder folder (train-motion-ae) for Diversity/FGD")
    p.add_argument("--detector", type=Path, help="tps model folder, for videos")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate of .npy clips and of .npz without one")
    p.add_argument("--seed", type=int, default=0, help="seed of Diversity's random pairing")
    p.add_argument("--json", type=Path, help="also write the table as json here")
    p.add_argument("--no-progress", action="store_true")
    return p


def _row_name(items: list[str], index: int) -> str:
    return Path(items[0]).name if len(items) == 1 and Path(items[0]).is_dir() else f"generated-{index + 1}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.fps <= 0:
        print_error(f"--fps must be positive, got {args.fps}")
        return 2
    try:
        detector = None
        if args.detector is not None:
            from tps.model import TPSMotionModel

            detector = TPSMotionModel.from_pretrained(args.detector).eval()
        motion_ae = None
        if args.motion_ae is not None:
            from difftted.training.motion_ae import MotionAutoencoder

            motion_ae = MotionAutoencoder.from_pretrained(args.motion_ae, use_safetensors=True).eval()
        truth = load_ground_truth(args.ground_truth, args.split, args.fps, detector)
        rows, used = {}, {}
        for i, items in enumerate(tqdm(args.generated, desc="evaluate", disable=args.no_progress)):
            clips = [load_clip_file(p, args.fps, detector)
                     for p in expand_paths(items, KEYPOINT_SUFFIXES + VIDEO_SUFFIXES)]
            matched = [match(c.name, truth) for c in clips]
            for c, t in zip(clips, matched):
                if t is None:
                    logger.warning("%s matches no ground-truth clip: no L1 for it", c.name)
                else:
                    used[t.name] = t
                    if c.waveform is None:
                        c.waveform, c.sample_rate = t.waveform, t.sample_rate
            rows[i] = (_row_name(items, i), clips, matched)
        reference = list(used.values()) or list(truth.values())
        truth_features = _features(reference, motion_ae) if motion_ae is not None else None
        table = {name: evaluate_row(clips, matched, motion_ae, truth_features, args.seed)
                 for name, clips, matched in rows.values()}
        gt = evaluate_row(reference, [None] * len(reference), motion_ae, None, args.seed)
        table["ground truth"] = gt
    except (ValueError, FileNotFoundError) as err:
        print_error(err)
        return 2
    print(format_table(table))
    if motion_ae is None:
        print("(Diversity and FGD need --motion-ae; see `python -m difftted train-motion-ae`)")
    if args.json is not None:
        clean = {name: {k: (v if math.isfinite(v) else None) for k, v in row.items()} for name, row in table.items()}
        args.json.write_text(json.dumps({"rows": clean, "motion_ae": str(args.motion_ae) if args.motion_ae else None,
                                         "ground_truth": args.ground_truth, "split": args.split}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
