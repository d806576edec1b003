"""Training windows of a dataset built by ``python -m difftted build-dataset``.

`KeypointWindowDataset` cuts every clip of a split into windows of ``window`` frames and yields,
per window (all float32 tensors, keypoints normalised by the dataset's `KeypointStats`):

=====================  =============  ===============================================================
key                    shape          what
=====================  =============  ===============================================================
``keypoints``          ``[T, N*2]``   the window's motion, the diffusion target ``x0`` (see below)
``audio_features``     ``[T, D]``     the aligned audio features of the same frames
``source_keypoints``   ``[N*2]``      keypoints of another frame of the same clip: the "photo"
``source_raw``         ``[N*2]``      the same keypoints not normalised (to decode ``keypoints``)
``context``            ``[C, N*2]``   the ``C`` frames just before the window (zeros at clip start)
``has_context``        ``[]`` bool    False when the window starts fewer than ``C`` frames into the clip
=====================  =============  ===============================================================

The source frame is drawn at random (``source_frame="random"``) from the frames at or outside
the window start, which is closest to inference: the photo is one frame of the person, not the
first frame of the motion. ``source_frame="start"`` uses the window's first frame (deterministic,
for validation).

``motion_target`` (`difftted.motion.keypoints.MOTION_TARGETS`) says what ``keypoints`` and ``context``
hold: ``"absolute"`` keypoints normalised by the dataset's `KeypointStats`, or
``"source_offset"``: their offsets from the source frame, normalised by offset statistics
(`KeypointStats.offsets_from_sequences` over the split's clips unless given). ``self.coding``
(`MotionCoding`) converts either way.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from difftted.data.dataset import load_manifest
from difftted.motion.keypoints import MOTION_TARGETS, KeypointStats, MotionCoding

logger = logging.getLogger(__name__)

SOURCE_FRAME_MODES = ("random", "start")


def load_clip(dataset_dir: str | Path, entry: dict) -> dict[str, np.ndarray]:
    """The arrays of one manifest entry: ``keypoints [T, N, 2]``, ``audio_features [T, D]``,
    ``waveform [S]``, ``sample_rate``, ``fps``."""
    path = Path(dataset_dir) / entry["file"]
    if not path.is_file():
        raise ValueError(f"clip file {str(path)!r} listed in the manifest does not exist")
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def split_entries(manifest: dict, split: str) -> list[dict]:
    """Manifest entries of ``split``; ValueError naming the splits that exist when it is empty."""
    entries = [e for e in manifest["clips"] if e["split"] == split]
    if not entries:
        have = sorted({e["split"] for e in manifest["clips"]})
        raise ValueError(f"split {split!r} has no clips; the dataset has {have}")
    return entries


class KeypointWindowDataset(Dataset):
    """Windows of ``window`` frames of every clip of ``split`` (see the module docstring).

    Args:
        dataset_dir: a folder written by ``build-dataset``.
        split: ``"train"`` or ``"test"`` (any split named in the manifest).
        window: frames per window ``T``.
        context_frames: ``C``, frames before the window given as context (0 for none).
        stats: keypoint normalisation; None uses the dataset's own ``keypoint_stats.json``.
        stride: frames between consecutive window starts.
        source_frame: ``"random"`` or ``"start"``.
        motion_target: ``"absolute"`` or ``"source_offset"`` (see the module docstring).
        offset_stats: offset normalisation for ``"source_offset"``; None computes it from the
            split's clips (pass the training set's to a test set).
        offsets_inside_only: compute those offset statistics from in-frame keypoints only
            (`KeypointStats.offsets_from_sequences`), for training with ``mask_out_of_frame``.
    """

    def __init__(self, dataset_dir: str | Path, split: str = "train", window: int = 34,
                 context_frames: int = 4, stats: KeypointStats | None = None, stride: int = 1,
                 source_frame: str = "random", motion_target: str = "absolute",
                 offset_stats: KeypointStats | None = None, offsets_inside_only: bool = False) -> None:
        for name, value, low in (("window", window, 2), ("context_frames", context_frames, 0), ("stride", stride, 1)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if source_frame not in SOURCE_FRAME_MODES:
            raise ValueError(f"source_frame must be one of {SOURCE_FRAME_MODES}, got {source_frame!r}")
        if motion_target not in MOTION_TARGETS:
            raise ValueError(f"motion_target must be one of {MOTION_TARGETS}, got {motion_target!r}")
        self.dataset_dir = Path(dataset_dir)
        self.manifest = load_manifest(dataset_dir)
        self.stats = stats if stats is not None else KeypointStats.load(self.dataset_dir / self.manifest["keypoint_stats"])
        self.window, self.context_frames, self.source_frame = window, context_frames, source_frame
        self.entries = split_entries(self.manifest, split)
        self.keypoints: list[torch.Tensor] = []  # raw, [T_i, N*2]
        self.audio: list[torch.Tensor] = []  # [T_i, D]
        self.index: list[tuple[int, int]] = []  # (clip, window start)
        for entry in self.entries:
            clip = load_clip(dataset_dir, entry)
            kp = clip["keypoints"]
            if kp.shape[0] < window:
                logger.warning("clip %s has %d frames, fewer than one window (%d); left out",
                               entry["id"], kp.shape[0], window)
                continue
            i = len(self.keypoints)
            self.keypoints.append(torch.from_numpy(kp.reshape(kp.shape[0], -1).astype(np.float32)))
            self.audio.append(torch.from_numpy(clip["audio_features"].astype(np.float32)))
            self.index += [(i, s) for s in range(0, kp.shape[0] - window + 1, stride)]
        if not self.index:
            raise ValueError(f"no clip of split {split!r} in {str(dataset_dir)!r} holds a window of {window} frames")
        if motion_target == "source_offset" and offset_stats is None:
            offset_stats = KeypointStats.offsets_from_sequences(
                [kp.reshape(kp.shape[0], -1, 2).numpy() for kp in self.keypoints], inside_only=offsets_inside_only)
        self.coding = MotionCoding(self.stats, offset_stats if motion_target == "source_offset" else None)

    @property
    def feature_dim(self) -> int:
        return int(self.audio[0].shape[1])

    @property
    def keypoint_dim(self) -> int:
        """``N*2``."""
        return int(self.keypoints[0].shape[1])

    def __len__(self) -> int:
        return len(self.index)

    def _source_index(self, clip_len: int, start: int) -> int:
        if self.source_frame == "start":
            return start
        # frames strictly inside the window (after its first) would leak the target motion
        candidates = clip_len - (self.window - 1)
        j = int(torch.randint(candidates, ()).item())
        return j if j <= start else j + self.window - 1

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        clip, start = self.index[item]
        kp, audio = self.keypoints[clip], self.audio[clip]
        end = start + self.window
        c = self.context_frames
        has_context = start >= c and c > 0
        source = kp[self._source_index(kp.shape[0], start)]
        context = self.coding.encode(kp[start - c:start], source) if has_context else kp.new_zeros(c, kp.shape[1])
        return {
            "keypoints": self.coding.encode(kp[start:end], source),
            "audio_features": audio[start:end],
            "source_keypoints": self.coding.encode_source(source),
            "source_raw": source,
            "context": context,
            "has_context": torch.tensor(has_context),
        }
