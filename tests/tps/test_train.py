"""Training command: config handling, the dropout schedule, a real tiny run, resume, 2 processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tps.model import TPSMotionModel
from tps.train import TrainConfig, dropout_schedule, latest_checkpoint, main, resolve_model_config

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tps" / "tiny-64.json"


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """Each in-process run builds its own Accelerator; accelerate keeps a process-wide singleton."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def _clip(shared_data: Path) -> str:
    return str(shared_data / "ted_silent" / "ted_driving_384.mp4")


def _log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def _config(tmp_path: Path, **changes) -> Path:
    data = json.loads(TINY.read_text())
    data.update(changes)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return path


def test_dropout_schedule_follows_the_official_ramp() -> None:
    config = TrainConfig()  # ted: p 0 -> 0.5 over epochs 0-10, off from 35
    assert dropout_schedule(0, config) == (True, 0.0)
    assert dropout_schedule(5, config) == (True, 0.25)
    assert dropout_schedule(20, config) == (True, 0.5)
    assert dropout_schedule(34, config) == (True, 0.5)
    assert dropout_schedule(35, config) == (False, 0.0)
    vox = TrainConfig(dropout_maxp=0.3, dropout_startp=0.1)
    assert dropout_schedule(0, vox)[1] == pytest.approx(0.1) and dropout_schedule(9, vox)[1] == pytest.approx(0.3)


def test_configs_in_the_repository_load() -> None:
    paths = sorted((REPO / "configs" / "tps").glob("*.json"))
    assert {p.stem for p in paths} >= {"tiny-64", "lite-256", "ted-384"}
    for path in paths:
        config = TrainConfig.load(path)
        assert resolve_model_config(config.model).num_tps == 10
    assert resolve_model_config(TrainConfig.load(TINY).model).avd is None


def test_config_errors_name_the_key(tmp_path) -> None:
    with pytest.raises(ValueError, match="batchsize"):
        TrainConfig.from_dict({"batchsize": 4})
    with pytest.raises(ValueError, match="warpp"):
        TrainConfig.from_dict({"loss": {"warpp": 1}})
    with pytest.raises(ValueError, match="crop"):
        TrainConfig(crop="1:2")
    assert main(["--config", str(tmp_path / "absent.json"), "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2


def test_tiny_model_trains_and_its_reconstruction_loss_falls(tmp_path, shared_data) -> None:
    run = tmp_path / "run"
    args = ["--config", str(TINY), "--data", _clip(shared_data), "--out", str(run), "--max-steps", "40",
            "--no-progress"]
    assert main(args) == 0
    log = _log(run)
    assert [r["step"] for r in log] == list(range(1, 41))
    first = sum(r["perceptual"] for r in log[:5]) / 5
    last = sum(r["perceptual"] for r in log[-10:]) / 10
    first_l1 = sum(r["l1"] for r in log[:5]) / 5
    last_l1 = sum(r["l1"] for r in log[-10:]) / 10
    print(f"perceptual {first:.3f} -> {last:.3f}; l1 {first_l1:.4f} -> {last_l1:.4f}")
    assert last < 0.8 * first and last_l1 < 0.8 * first_l1
    assert {"equivariance", "warp", "bg"} <= set(log[0])
    model = TPSMotionModel.from_pretrained(run / "model")
    assert model.config.image_size == (64, 64)
    kept = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert kept == ["step-00000030", "step-00000040"]  # checkpoint_total_limit 2


def test_resume_restores_weights_scheduler_and_step(tmp_path, shared_data) -> None:
    # 8 pairs per epoch / batch 4 = 2 steps per epoch; the lr drops 10x at epoch 2 = step 4
    config = _config(tmp_path, num_repeats=8, milestones=[2], checkpoint_every=3)
    run = tmp_path / "run"
    base = ["--config", str(config), "--data", _clip(shared_data), "--out", str(run), "--no-progress"]
    assert main(base + ["--max-steps", "6"]) == 0
    assert main(base + ["--max-steps", "8"]) == 2  # checkpoints exist: refuses to overwrite without --resume
    # resuming at the step already reached trains nothing and writes the restored weights
    assert main(base + ["--resume", "--max-steps", "6"]) == 0
    saved = TPSMotionModel.from_pretrained(run / "checkpoints" / "step-00000006" / "model").state_dict()
    restored = TPSMotionModel.from_pretrained(run / "model").state_dict()
    assert all(torch.equal(saved[k], restored[k]) for k in saved)
    assert main(base + ["--resume", "--max-steps", "10"]) == 0
    log = _log(run)
    assert [r["step"] for r in log] == list(range(1, 11))
    assert log[6]["lr"] == pytest.approx(1e-4)  # step 7: the restored scheduler is past its milestone
    assert latest_checkpoint(run).name == "step-00000010"


@pytest.mark.slow
def test_two_cpu_processes_train_with_gloo(tmp_path, shared_data) -> None:
    run = tmp_path / "run"
    env = dict(os.environ, ACCELERATE_USE_CPU="1", OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "tps.train",
           "--config", str(TINY), "--data", _clip(shared_data), "--out", str(run), "--max-steps", "4",
           "--no-progress", "--cpu"]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    log = _log(run)
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert (run / "checkpoints" / "step-00000004" / "random_states_1.pkl").is_file()  # both ranks saved
    TPSMotionModel.from_pretrained(run / "model")


def test_init_from_a_model_folder_fine_tunes_it(tmp_path, shared_data) -> None:
    torch.manual_seed(1)
    start = TPSMotionModel(resolve_model_config(TrainConfig.load(TINY).model)).save_pretrained(tmp_path / "start")
    run = tmp_path / "run"
    args = ["--config", str(TINY), "--data", _clip(shared_data), "--out", str(run), "--max-steps", "2",
            "--init", str(start), "--no-progress"]
    assert main(args) == 0
    before = TPSMotionModel.from_pretrained(start).state_dict()
    after = TPSMotionModel.from_pretrained(run / "model").state_dict()
    key = "kp_detector.fg_encoder.conv1.weight"
    assert not torch.equal(before[key], after[key])  # trained from the given weights ...
    # ... by two Adam steps of lr 1e-3 (each moves a weight by about lr), not re-initialised
    assert (before[key] - after[key]).abs().max() < 5e-3 < before[key].abs().max()


def test_given_keypoints_train_with_the_detector_frozen(tmp_path, shared_data) -> None:
    """keypoint_source "given": the frames' keypoint files drive the dense motion, the loss falls,
    the detector (and its batch-norm statistics) stays exactly as it was, no equivariance term,
    and the saved model says keypoint_source "given"."""
    import shutil

    import numpy as np

    from tps.config import get_preset
    from tps.given_keypoints import keypoint_file

    clip = tmp_path / "clips" / "ted.mp4"
    clip.parent.mkdir()
    shutil.copy(_clip(shared_data), clip)
    t = np.arange(133, dtype=np.float32)[:, None]
    grid = np.stack(np.meshgrid(np.linspace(-0.6, 0.6, 10), np.linspace(-0.5, 0.5, 5)), -1).reshape(50, 2)
    kp = grid[None] + 0.05 * np.stack([np.sin(t / 7), np.cos(t / 11)], -1)  # [133, 50, 2], smooth in time
    np.save(keypoint_file(clip), kp.astype(np.float32))
    init = TPSMotionModel(resolve_model_config(TrainConfig.load(TINY).model))
    init.save_pretrained(tmp_path / "init")
    config = _config(tmp_path, keypoint_source="given", keypoint_flip=[1, 0] + list(range(2, 50)))
    run = tmp_path / "run"
    assert main(["--config", str(config), "--data", str(clip.parent), "--out", str(run), "--max-steps", "30",
                 "--init", str(tmp_path / "init"), "--no-progress"]) == 0
    log = _log(run)
    assert "equivariance" not in log[0] and {"perceptual", "warp"} <= set(log[0])
    first, last = (sum(r["perceptual"] for r in rows) / len(rows) for rows in (log[:5], log[-8:]))
    assert last < 0.85 * first, (first, last)
    model = TPSMotionModel.from_pretrained(run / "model")
    assert model.config.keypoint_source == "given"
    assert model.config == get_preset("tiny-64").replace(avd=None, keypoint_source="given")
    before, after = init.kp_detector.state_dict(), model.kp_detector.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    moved = [k for k, v in init.dense_motion_network.state_dict().items()
             if not torch.equal(v, model.dense_motion_network.state_dict()[k])]
    assert moved  # the rest did train
    (keypoint_file(clip)).unlink()
    assert main(["--config", str(config), "--data", str(clip.parent), "--out", str(tmp_path / "r2"),
                 "--max-steps", "1", "--no-progress"]) == 2  # a clip without its keypoint file


def test_freeze_detector_keeps_the_keypoints_and_trains_the_rest(tmp_path, shared_data) -> None:
    """freeze_detector: the detector runs but its weights and batch-norm statistics (which a
    train-mode forward would update) stay exactly the --init ones; dense motion and inpainting
    train; it refuses an equivariance weight (a term that only trains the detector)."""
    torch.manual_seed(2)
    init = TPSMotionModel(resolve_model_config(TrainConfig.load(TINY).model))
    init.save_pretrained(tmp_path / "init")
    loss = {**json.loads(TINY.read_text()).get("loss", {}), "equivariance": 0.0}
    config = _config(tmp_path, freeze_detector=True, loss=loss)
    run = tmp_path / "run"
    assert main(["--config", str(config), "--data", _clip(shared_data), "--out", str(run), "--max-steps", "3",
                 "--init", str(tmp_path / "init"), "--no-progress"]) == 0
    assert "equivariance" not in _log(run)[0]
    model = TPSMotionModel.from_pretrained(run / "model")
    before, after = init.kp_detector.state_dict(), model.kp_detector.state_dict()
    assert any("running_mean" in k for k in before)  # the statistics a train-mode forward would move
    assert all(torch.equal(before[k], after[k]) for k in before)
    for name in ("dense_motion_network", "inpainting_network"):
        old, new = getattr(init, name).state_dict(), getattr(model, name).state_dict()
        assert any(not torch.equal(old[k], new[k]) for k in old), name
    with pytest.raises(ValueError, match="freeze_detector"):
        TrainConfig.from_dict({"freeze_detector": True})  # equivariance defaults to 10
    with pytest.raises(ValueError, match="freeze_detector"):
        TrainConfig.from_dict({"freeze_detector": "yes", "loss": {"equivariance": 0}})


def test_demo_recipe_configs_load() -> None:
    """The renderer configs of the demo-weight recipes (scripts/demo_weights*/) are valid."""
    paths = sorted(REPO.glob("scripts/demo_weights*/renderer-*.json"))
    assert len(paths) >= 3
    for path in paths:
        assert resolve_model_config(TrainConfig.load(path).model).num_tps == 10
    assert TrainConfig.load(REPO / "scripts/demo_weights/renderer-finetune-128.json").freeze_detector
