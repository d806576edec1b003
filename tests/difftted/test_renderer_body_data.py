"""Renderer clips with body keypoints: the keypoints sit on the body in the written frames, and
tps.train trains dense motion + inpainting on them with the detector untouched."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from difftted.motion.body_keypoints import TABLE, flip_permutation
from difftted.data.renderer_body_data import RendererClip, build_renderer_clip, default_clips
from tps.given_keypoints import check_permutation, keypoint_file
from tps.model import TPSMotionModel
from tps.train import TrainConfig, main, resolve_model_config

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built_clip(shared_data, tmp_path_factory) -> Path:
    """talking/vexpress_AOC_gt.mp4 (4.6 s, 512x512) built at 128x128."""
    out = tmp_path_factory.mktemp("renderer_body")
    clip = RendererClip("aoc", shared_data / "talking" / "vexpress_AOC_gt.mp4")
    entry = build_renderer_clip(clip, out, size=128)
    assert entry["frames"] == 137
    return out / "train" / "aoc.mp4"


def test_keypoints_land_on_the_body_parts_of_the_written_frames(built_clip) -> None:
    from difftted.motion.body_landmarks import image_body_keypoints
    from tps.video import iter_frames

    kp = np.load(keypoint_file(built_clip))
    frames = list(iter_frames(built_clip))
    assert kp.shape == (len(frames), 50, 2) and kp.dtype == np.float32 and np.isfinite(kp).all()
    for t in (0, 100):
        # mediapipe again, on the 128x128 frame the renderer trains on: the face points agree
        again = image_body_keypoints(frames[t], shifts=((0, 0),)).keypoints[0]
        face = slice(0, 10)  # head and mouth transforms
        error_px = np.abs(again[face] - kp[t, face]).mean() * 127 / 2
        assert error_px < 2.0, (t, error_px)


def test_flip_permutation_swaps_sides_and_is_valid() -> None:
    perm = flip_permutation()
    check_permutation(perm, 50)
    for i, j in enumerate(perm):
        a, b = TABLE[i], TABLE[j]
        if "right" in a.transform:
            assert b.transform == a.transform.replace("right", "left")
        assert (a.label == b.label) or ("right" in a.label and b.label == a.label.replace("right", "left")) \
            or ("left" in a.label and b.label == a.label.replace("left", "right"))


def test_default_clips_cover_the_shared_data(shared_data) -> None:
    clips = default_clips(shared_data, REPO / "configs" / "talking_more_cuts.json")
    names = {c.name for c in clips}
    assert {"oliver_halfbody", "ted_grid_1", "lia_ted_driving1", "ted_driving_384"} <= names
    assert {"ub06_latentsync_demo3_man_gesturing__part0", "ub06_latentsync_demo3_man_gesturing__part1"} <= names
    assert {c.split for c in clips} == {"train", "test"}
    assert all(c.cell is not None for c in clips if c.name.startswith("ted_grid"))


def test_renderer_trains_on_given_keypoints_with_the_detector_frozen(built_clip, tmp_path) -> None:
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    data = json.loads((REPO / "configs" / "tps" / "tiny-64.json").read_text())
    data.update(keypoint_source="given", keypoint_flip=list(flip_permutation()), checkpoint_every=100)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(data))
    torch.manual_seed(0)
    start = TPSMotionModel(resolve_model_config(TrainConfig.load(config).model)).save_pretrained(tmp_path / "start")
    run = tmp_path / "run"
    args = ["--config", str(config), "--data", str(built_clip.parent), "--out", str(run), "--max-steps", "30",
            "--init", str(start), "--no-progress"]
    assert main(args) == 0
    AcceleratorState._reset_state(reset_partial_state=True)
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert "equivariance" not in log[0] and "warp" in log[0]
    first = np.mean([r["perceptual"] for r in log[:5]])
    last = np.mean([r["perceptual"] for r in log[-10:]])
    assert last < 0.9 * first, (first, last)
    before, after = TPSMotionModel.from_pretrained(start), TPSMotionModel.from_pretrained(run / "model")
    assert after.config.keypoint_source == "given" and before.config.keypoint_source == "detector"
    b, a = before.state_dict(), after.state_dict()
    assert all(torch.equal(b[k], a[k]) for k in b if k.startswith("kp_detector."))
    assert not all(torch.equal(b[k], a[k]) for k in b if k.startswith("dense_motion_network."))
    # a renderer on given keypoints refuses to detect its own
    from tps.render import Renderer

    with pytest.raises(ValueError, match="kp_source"):
        Renderer(after).prepare(torch.rand(1, 3, 64, 64))
