"""``build-dataset --keypoints body``: body-anchored keypoint sequences from videos and mocap.

Videos: mediapipe landmarks on the whole frames (`difftted.motion.body_landmarks`), expressed in the
TED-style square crop that `difftted.pipeline.person.find_crop` places on the clip's first frame (the crop
the pipeline takes of a photo), or in ``--crop`` when given. Motion capture (``--mocap`` BEAT2
``.npz`` / BEAT ``.bvh``): `difftted.data.mocap_projection`, with the speech found beside it (same stem,
``.wav``) cut to the motion's duration. ``--cuts`` (json, `load_cuts`) splits videos at jump cuts
into separate clips and excludes clips by name with a reason (both listed in the manifest).
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from difftted.data.dataset_layouts import ClipSource, SkipClip, decoded_fps, frame_batches

logger = logging.getLogger(__name__)

#: Shortest segment kept when a clip is split at its cuts (seconds).
MIN_SEGMENT = 1.0


def load_cuts(path: str | Path | None) -> tuple[dict[str, list[float]], dict[str, str]]:
    """``{"cuts": {file name: [seconds, ...]}, "exclude": {file name: reason}}`` -> the two dicts
    (names are video file names, e.g. ``ub05_latentsync_demo2_man_standing.mp4``)."""
    if path is None:
        return {}, {}
    data = json.loads(Path(path).read_text())
    unknown = set(data) - {"cuts", "exclude", "note"}
    if unknown:
        raise ValueError(f"cuts file {str(path)!r} has unknown keys {sorted(unknown)}; expected cuts, exclude, note")
    cuts = {k: sorted(float(t) for t in v) for k, v in data.get("cuts", {}).items()}
    return cuts, {k: str(v) for k, v in data.get("exclude", {}).items()}


def split_at_cuts(clips: list[ClipSource], cuts: dict[str, list[float]],
                  exclude: dict[str, str]) -> tuple[list[ClipSource], list[dict]]:
    """Clips split at their cut times (each piece its own clip ``<id>__partK``, frames and audio
    cut alike) and the excluded ones as manifest ``skipped`` entries."""
    from tps.video import video_info

    out, skipped = [], []
    for clip in clips:
        name = clip.video.name
        if name in exclude:
            skipped.append({"id": clip.clip_id, "source": str(clip.video), "reason": f"excluded: {exclude[name]}"})
            continue
        if name not in cuts or clip.start is not None:
            out.append(clip)
            continue
        bounds = [0.0, *cuts[name], float(video_info(clip.video).duration)]
        for k, (t0, t1) in enumerate(zip(bounds[:-1], bounds[1:])):
            if t1 - t0 >= MIN_SEGMENT:
                out.append(replace(clip, clip_id=f"{clip.clip_id}__part{k}", start=t0, end=t1,
                                   audio_start=t0, audio_end=t1))
    return out, skipped


def detect_body_clip(clip: ClipSource, batch_size: int = 16) -> tuple[np.ndarray, float, dict]:
    """Body-anchored keypoints of every frame of ``clip``: ``([n, 50, 2] float32, source fps,
    info)`` in the clip's ``crop`` or the TED crop found on its first frame."""
    from difftted.motion.body_landmarks import extract_body_keypoints
    from difftted.pipeline.person import find_crop

    fps, batches = frame_batches(clip, batch_size)
    first = next(batches, None)
    if first is None:
        raise SkipClip("the video has no frames in the requested range")
    if clip.crop is not None:
        crop, method = clip.crop, "given"
    else:
        found = find_crop(first[0])
        box = found.box
        crop, method = (box.x0, box.y0, box.x0 + box.size, box.y0 + box.size), found.method
    frames = (f for batch in itertools.chain([first], batches) for f in batch)
    try:
        body = extract_body_keypoints(frames, fps=fps, crop=crop)
    except ValueError as err:
        raise SkipClip(f"body keypoints: {err}") from err
    n = body.keypoints.shape[0]
    measured = (body.source == 2).mean(axis=0)
    info = {"crop": list(map(int, crop)), "crop_method": method,
            "measured_fraction": {"face": float(measured[0]), "right_hand": float(measured[6]),
                                  "left_hand": float(measured[9])}}
    return body.keypoints, decoded_fps(clip, n, fps), info


def process_mocap(path: Path, extractor, opts, out_dir: Path, split: str = "train") -> dict:
    """One mocap file + its ``.wav`` -> ``clips/mocap__<stem>.npz``; returns the manifest entry."""
    from difftted.audio.features import load_audio
    from difftted.data.dataset import SILENCE_PEAK, resample_keypoints, save_clip
    from difftted.data.mocap_projection import mocap_keypoints

    path = Path(path)
    wav = path.with_suffix(".wav")
    if not path.is_file() or not wav.is_file():
        raise SkipClip(f"mocap {path} or its speech {wav.name} not found")
    body = mocap_keypoints(path)
    keypoints = resample_keypoints(body.keypoints, body.fps, opts.fps)
    frames = keypoints.shape[0]
    if frames < opts.window:
        raise SkipClip(f"too short: {frames} frames at {opts.fps:g} fps")
    waveform, sr = load_audio(wav, extractor.config.sample_rate)
    waveform = waveform[: int(round(frames / opts.fps * sr))]
    if waveform.size == 0 or float(np.max(np.abs(waveform))) < SILENCE_PEAK:
        raise SkipClip("no audio: the speech file is silent")
    features = extractor(waveform, sr, opts.fps, num_frames=frames)
    return save_clip(out_dir, f"mocap__{path.stem}", split, keypoints, features, waveform, sr, opts.fps,
                     kind="mocap", source=str(path), audio_source=str(wav), source_fps=body.fps,
                     source_frames=int(body.keypoints.shape[0]))


def build_body_dataset(clips: list[ClipSource], mocap: list[Path], extractor, out_dir: str | Path, opts,
                       extra_manifest: dict | None = None, skipped: list[dict] | None = None) -> dict:
    """Videos and mocap files -> a dataset of body-anchored keypoints (see `difftted.data.dataset`)."""
    from tqdm.auto import tqdm

    from difftted.data.dataset import finalize_dataset, process_clip

    out_dir = Path(out_dir)
    entries, skipped = [], list(skipped or [])
    for clip in tqdm(clips, desc="build-dataset (body)", unit="clip", disable=not opts.progress):
        try:
            entries.append({**process_clip(clip, None, extractor, opts, out_dir), "kind": "video"})
        except SkipClip as err:
            logger.warning("skipped clip %s (%s): %s", clip.clip_id, clip.video, err)
            skipped.append({"id": clip.clip_id, "source": str(clip.video), "reason": str(err)})
    for path in mocap:
        try:
            entries.append(process_mocap(Path(path), extractor, opts, out_dir))
        except SkipClip as err:
            logger.warning("skipped mocap %s: %s", path, err)
            skipped.append({"id": Path(path).stem, "source": str(path), "reason": str(err)})
    extra = {**(extra_manifest or {}), "keypoint_source": "body",
             "minutes": {kind: sum(e["duration"] for e in entries if e.get("kind") == kind) / 60
                         for kind in ("video", "mocap")}}
    return finalize_dataset(out_dir, entries, skipped, extractor.config, opts.fps, opts.window, extra)
