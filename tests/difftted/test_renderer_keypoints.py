"""Keypoint files for the renderer on given keypoints: `renderer-keypoints` writes one beside each
clip that `tps.train` reads, and the body table is left/right symmetric under the flip permutation
the renderer's flip augmentation uses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from difftted.motion import body_keypoints as bk

REPO = Path(__file__).resolve().parents[2]


def _mirror_name(name: str) -> str:
    for a, b in (("right_", "left_"), ("left_", "right_")):
        if name.startswith(a):
            return b + name[len(a):]
    for a, b in (("_right", "_left"), ("_left", "_right")):
        if name.endswith(a):
            return name[: -len(a)] + b
    return name


def test_mirrored_person_is_keyed_as_the_flip_permutation_says(shared_data) -> None:
    """Named points of real frames, mirrored (x -> W-1-x, right <-> left): their table keypoints
    are the original keypoints with x -> -x and keypoints permuted by `flip_permutation`."""
    from difftted.motion.body_landmarks import detect_named_points
    from tps.given_keypoints import check_permutation, flip_keypoints
    from tps.video import iter_frames

    frames = [f for _, f in zip(range(6), iter_frames(shared_data / "talking" / "oliver_halfbody.mp4"))]
    points, (h, w) = detect_named_points(frames)
    points["left_thumb_tip"][2] = np.nan  # a fallback in one frame too
    mirrored = {_mirror_name(k): np.stack([w - 1 - v[:, 0], v[:, 1]], -1) for k, v in points.items()}
    perm = bk.flip_permutation()
    check_permutation(perm, bk.NUM_KEYPOINTS)
    assert perm != tuple(range(bk.NUM_KEYPOINTS))
    original = bk.table_keypoints(points, (h, w), fps=25).keypoints
    expected = flip_keypoints(__import__("torch").from_numpy(original), perm).numpy()
    got = bk.table_keypoints(mirrored, (h, w), fps=25).keypoints
    np.testing.assert_allclose(got, expected, atol=1e-5)
    plain = original * np.array([-1.0, 1.0], np.float32)
    assert np.abs(got - plain).max() > 0.1  # without the permutation, arms would be swapped


def test_body_renderer_config_holds_the_table_permutation() -> None:
    data = json.loads((REPO / "configs" / "tps" / "lite-256-body.json").read_text())
    assert data["keypoint_source"] == "given"
    assert tuple(data["keypoint_flip"]) == bk.flip_permutation()
    from tps.train import TrainConfig

    TrainConfig.load(REPO / "configs" / "tps" / "lite-256-body.json")


def test_renderer_keypoints_writes_files_tps_reads(tmp_path, shared_data) -> None:
    from difftted.data.renderer_keypoints import main, write_keypoint_files
    from tps.data import FrameStore, find_clips
    from tps.given_keypoints import KeypointFiles, keypoint_file
    from tps.video import iter_frames, write_video

    folder = tmp_path / "clips"
    frames = [f for _, f in zip(range(12), iter_frames(shared_data / "talking" / "oliver_halfbody.mp4"))]
    video = write_video(folder / "oliver.mp4", frames, 25.0)
    write_video(folder / "empty_room.mp4", [np.full_like(frames[0], 90)] * 4, 25.0)
    report = write_keypoint_files(folder, progress=False)
    assert report["written"] == [str(keypoint_file(video))]
    assert list(report["skipped"]) == [str(folder / "empty_room.mp4")]
    kp = np.load(keypoint_file(video))
    assert kp.dtype == np.float32 and kp.shape == (12, bk.NUM_KEYPOINTS, 2) and np.isfinite(kp).all()
    # the nose wings sit between the eyes, the shoulders below the head: a person, not noise
    assert kp[:, 3:5, 1].mean() > kp[:, 1:3, 1].mean() and kp[:, 15:17, 1].mean() > kp[:, 0:10, 1].max()
    clip = [c for c in find_clips(folder) if c.path == video][0]
    store = FrameStore((64, 64))
    assert KeypointFiles(store, bk.NUM_KEYPOINTS).pair(clip, [0, 11]).shape == (2, bk.NUM_KEYPOINTS, 2)
    stamp = keypoint_file(video).stat().st_mtime_ns
    assert write_keypoint_files(folder, progress=False)["kept"] == [str(keypoint_file(video))]
    assert keypoint_file(video).stat().st_mtime_ns == stamp
    assert main([str(folder), "--no-progress"]) == 0


def test_renderer_keypoints_rejects_bad_arguments(tmp_path) -> None:
    from difftted.data.renderer_keypoints import write_keypoint_files

    with pytest.raises(ValueError, match="fps"):
        write_keypoint_files(tmp_path, fps=0)
    with pytest.raises(ValueError):
        write_keypoint_files(tmp_path / "absent")
