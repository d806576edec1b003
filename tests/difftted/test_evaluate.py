"""The evaluate command: one table with the generated rows and the ground truth's own values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from difftted.evaluation import evaluate
from difftted.evaluation import metrics


@pytest.fixture(scope="module")
def setup(tmp_path_factory, build_mocap_dataset):
    from difftted.training.motion_ae import train_motion_ae

    root = tmp_path_factory.mktemp("evaluate")
    data = build_mocap_dataset(root / "data", [("a", "test", 0, 150), ("b", "test", 150, 300), ("c", "train", 300, 700)])
    train_motion_ae(data, root / "ae", window=16, feature_dim=8, hidden_dim=16, steps=20, batch_size=16,
                    progress=False)
    rng = np.random.default_rng(0)
    (root / "copy").mkdir()
    (root / "noisy").mkdir()
    for name in ("a", "b"):
        kp = np.load(data / "clips" / f"{name}.npz")["keypoints"]
        np.save(root / "copy" / f"{name}.npy", kp)
        # a sample named after its clip, at another frame rate, with noise of known size
        noisy = kp + rng.normal(0.0, 0.01, kp.shape).astype(np.float32)
        np.savez(root / "noisy" / f"{name}_sample0.npz", keypoints=noisy.reshape(kp.shape[0], -1), fps=25.0)
    return root, data


def test_evaluate_table_and_json(setup, capsys):
    root, data = setup
    out_json = root / "metrics.json"
    rc = evaluate.main(["--generated", str(root / "copy"), "--generated", str(root / "noisy"),
                        "--ground-truth", str(data), "--split", "test", "--motion-ae", str(root / "ae"),
                        "--json", str(out_json), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert "BC" in lines[0] and "FGD" in lines[0] and "Jitter" in lines[0]
    assert [line.split()[0] for line in lines[2:5]] == ["copy", "noisy", "ground"]
    rows = json.loads(out_json.read_text())["rows"]
    copy, noisy, gt = rows["copy"], rows["noisy"], rows["ground truth"]
    assert copy["clips"] == noisy["clips"] == gt["clips"] == 2

    # the ground truth row: the same two clips measured directly
    clips = [np.load(data / "clips" / f"{n}.npz") for n in ("a", "b")]
    expected_bc = np.nanmean([metrics.beat_consistency(c["keypoints"], c["waveform"], 16000, 25.0) for c in clips])
    assert gt["bc"] == pytest.approx(expected_bc)
    assert gt["jitter"] == pytest.approx(np.mean([metrics.jitter(c["keypoints"], 25.0) for c in clips]))
    assert gt["spread"] == pytest.approx(np.mean([metrics.motion_spread(c["keypoints"]) for c in clips]))
    assert "Spread" in lines[0]
    assert gt["l1"] is None and gt["fgd"] is None
    # an exact copy: L1 0, the ground truth's BC, jitter and diversity, FGD ~0
    assert copy["l1"] == 0.0 and copy["bc"] == pytest.approx(gt["bc"])
    assert copy["spread"] == pytest.approx(gt["spread"])
    assert copy["diversity"] == pytest.approx(gt["diversity"]) and copy["fgd"] < 1e-3
    # noise of std 0.01: mean |noise| = 0.01 * sqrt(2 / pi); jittery, and farther in feature space
    assert noisy["l1"] == pytest.approx(0.01 * np.sqrt(2 / np.pi), rel=0.05)
    assert noisy["jitter"] > gt["jitter"] and noisy["fgd"] > copy["fgd"]


def test_evaluate_videos_and_errors(setup, shared_data, tmp_path, capsys):
    from tps.model import TPSMotionModel

    root, data = setup
    detector = TPSMotionModel.from_config("tiny-64").save_pretrained(tmp_path / "det")
    video = tmp_path / "vid" / "katie.mp4"
    video.parent.mkdir()
    video.symlink_to(shared_data / "talking" / "examples_ref_video_WDA_KatieHill_000.mp4")
    rc = evaluate.main(["--generated", str(video), "--ground-truth", str(data), "--detector", str(detector),
                        "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "generated-1" in out and "ground truth" in out and "need --motion-ae" in out
    row = out.splitlines()[2].split()
    assert row[1] == "1" and row[2] != "-"  # BC from the video's own sound track
    assert evaluate.main(["--generated", str(video), "--ground-truth", str(data), "--no-progress"]) == 2
    assert evaluate.main(["--generated", str(tmp_path / "none"), "--ground-truth", str(data)]) == 2
