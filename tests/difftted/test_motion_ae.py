"""The motion autoencoder: shapes, errors, save/load with its statistics, training on real motion."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from difftted.motion.keypoints import KeypointStats
from difftted.training.motion_ae import MotionAutoencoder, main


def test_encode_shapes_and_errors():
    torch.manual_seed(0)
    model = MotionAutoencoder(num_keypoints=5, window=16, hidden_dim=16, feature_dim=4, num_down=2)
    windows = torch.rand(3, 16, 5, 2) * 2 - 1
    z = model.encode(windows)
    assert z.shape == (3, 4)
    torch.testing.assert_close(model.encode(windows.flatten(2)), z)
    assert model.clip_features(torch.rand(40, 5, 2)).shape == (2, 4)  # 2 whole windows of 16
    assert model.clip_features(torch.rand(10, 5, 2)).shape == (0, 4)
    with pytest.raises(ValueError, match="windows must have shape"):
        model.encode(torch.rand(3, 15, 10))
    with pytest.raises(ValueError, match="divisible"):
        MotionAutoencoder(window=20, num_down=3)


def test_stats_travel_with_the_weights(tmp_path):
    torch.manual_seed(0)
    model = MotionAutoencoder(num_keypoints=5, window=8, hidden_dim=8, feature_dim=4, num_down=1)
    stats = KeypointStats(mean=np.full((5, 2), 0.3), std=np.full((5, 2), 0.1))
    model.set_stats(stats)
    windows = torch.rand(2, 8, 5, 2)
    expected = model.encode_normalized(stats.normalize(windows).flatten(2))
    torch.testing.assert_close(model.encode(windows), expected)
    model.save_pretrained(tmp_path / "ae", safe_serialization=True)
    loaded = MotionAutoencoder.from_pretrained(tmp_path / "ae", use_safetensors=True)
    torch.testing.assert_close(loaded.encode(windows), expected)


def test_train_motion_ae_command(tmp_path, build_mocap_dataset):
    data = build_mocap_dataset(tmp_path / "data", [("a", "train", 0, 400), ("b", "test", 400, 500)])
    out = tmp_path / "ae"
    rc = main(["--data", str(data), "--out", str(out), "--window", "16", "--feature-dim", "8",
               "--hidden-dim", "32", "--steps", "150", "--batch-size", "16", "--lr", "3e-3", "--no-progress"])
    assert rc == 0
    log = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    train = [r["loss"] for r in log if "loss" in r]
    assert train[-1] < 0.7 * train[0], train
    assert np.isfinite([r["test_loss"] for r in log if "test_loss" in r]).all()
    model = MotionAutoencoder.from_pretrained(out, use_safetensors=True)
    kp = np.load(data / "clips" / "a.npz")["keypoints"]
    feats = model.clip_features(kp)
    assert feats.shape == (400 // 16, 8) and np.isfinite(feats).all()
    # different motion gives different features
    assert np.abs(feats[0] - feats[1]).sum() > 1e-3
    assert main(["--data", str(tmp_path / "none"), "--out", str(out), "--no-progress"]) == 2
