"""Reconstruction metrics (hand-made images with known answers) and the evaluate command."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tps.config import get_preset
from tps.evaluate import (
    PSNR_CAP_DB,
    ClipMetrics,
    PoseLandmarks,
    evaluate_clip,
    keypoint_distance,
    l1_error,
    landmark_distance,
    main,
    psnr,
    ssim,
    summarize,
)
from tps.model import TPSMotionModel


def _smooth(seed: int, b: int = 2, c: int = 3, size: int = 40) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.avg_pool2d(torch.rand(b, c, size + 4, size + 4, generator=g), 5, stride=1)


def test_identical_images_give_perfect_scores() -> None:
    x = _smooth(0)
    assert torch.equal(l1_error(x, x), torch.zeros(2))
    assert torch.allclose(psnr(x, x), torch.full((2,), PSNR_CAP_DB))
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-6)


def test_known_noise_gives_the_known_psnr_and_l1() -> None:
    target = torch.full((1, 3, 32, 32), 0.5)
    signs = (torch.arange(32).view(1, -1) + torch.arange(32).view(-1, 1)) % 2 * 2 - 1  # checkerboard of +-1
    prediction = target + 0.1 * signs  # |error| = 0.1 everywhere: MSE 0.01 -> 20 dB
    assert psnr(prediction, target).item() == pytest.approx(20.0, abs=1e-4)
    assert l1_error(prediction, target).item() == pytest.approx(0.1, abs=1e-6)
    assert psnr(target + 0.01 * signs, target).item() == pytest.approx(40.0, abs=1e-3)


def test_ssim_equals_skimage_and_falls_with_noise() -> None:
    from skimage.metrics import structural_similarity

    x, y = _smooth(1), _smooth(2)
    noisy = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)
    ours = ssim(torch.cat([x, x]), torch.cat([y, noisy]))
    for i, (a, b) in enumerate([(x[0], y[0]), (x[1], y[1]), (x[0], noisy[0]), (x[1], noisy[1])]):
        ref = structural_similarity(a.permute(1, 2, 0).numpy().astype(np.float64), b.permute(1, 2, 0).numpy().astype(np.float64),
                                    gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0,
                                    channel_axis=2)
        assert ours[i].item() == pytest.approx(ref, abs=1e-5)
    assert 0 < ours[2] < 1 and torch.allclose(ssim(x, noisy), ssim(noisy, x))


def test_metric_input_errors() -> None:
    with pytest.raises(ValueError, match="differ"):
        psnr(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 8))
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        l1_error(torch.zeros(3, 16, 16), torch.zeros(3, 16, 16))
    with pytest.raises(ValueError, match="at least 11"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_keypoint_distance_is_in_pixels() -> None:
    kp = torch.zeros(1, 50, 2)
    moved = kp.clone()
    moved[..., 0] += 2 / (65 - 1) * 3  # 3 px right on a 65-px-wide frame
    moved[..., 1] += 2 / (33 - 1) * 4  # 4 px down on a 33-px-high frame
    assert keypoint_distance(kp, moved, height=33, width=65).item() == pytest.approx(5.0, abs=1e-5)


def test_summary_weights_clips_by_frames() -> None:
    rows = [ClipMetrics("a", 1, 0.1, 20.0, 0.5, 1.0), ClipMetrics("b", 3, 0.2, 30.0, 0.9, 3.0)]
    mean = summarize(rows)
    assert (mean.frames, mean.l1, mean.psnr) == (4, pytest.approx(0.175), pytest.approx(27.5))


def _tiny_model() -> TPSMotionModel:
    torch.manual_seed(0)
    return TPSMotionModel(get_preset("tiny-64")).eval()


@torch.no_grad()
def test_evaluate_clip_equals_the_frame_by_frame_official_loop() -> None:
    model = _tiny_model()
    frames = torch.cat([_smooth(4, b=1, size=64), _smooth(5, b=3, size=64)])
    rows = [evaluate_clip(model, frames, "clip", batch_size=b) for b in (1, 3)]
    source = frames[:1]
    kp_source = model.detect(source)
    l1s, akds = [], []
    for frame in frames:  # reconstruction.py: source = first frame, bg predictor, standard mode
        driving = frame[None]
        kp_driving = model.detect(driving)
        bg = model.bg_predictor(source, driving)
        pred = model(source, kp_driving, kp_source, bg_param=bg)["prediction"]
        l1s.append((pred - driving).abs().mean().item())
        akds.append(keypoint_distance(model.detect(pred), kp_driving, 64, 64).item())
    for row in rows:
        assert row.frames == 4
        assert row.l1 == pytest.approx(np.mean(l1s), abs=1e-5)
        assert row.akd == pytest.approx(np.mean(akds), abs=1e-3)
    assert rows[0].ssim == pytest.approx(rows[1].ssim, abs=1e-5)
    with pytest.raises(ValueError, match="multiples of"):
        evaluate_clip(model, torch.rand(2, 3, 48, 48))


def test_evaluate_command_prints_a_table(tmp_path, shared_data, capsys) -> None:
    weights = _tiny_model().save_pretrained(tmp_path / "tiny")
    clip = shared_data / "ted_silent" / "ted_driving_384.mp4"
    args = ["--weights", str(weights), "--data", str(clip), "--max-frames", "5", "--no-progress",
            "--json", str(tmp_path / "m.json"), "--csv", str(tmp_path / "m.csv")]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["clip", "frames", "L1", "PSNR", "SSIM", "AKD(px)"]
    assert out[1].split()[:2] == ["ted_driving_384", "5"] and out[2].split()[:2] == ["mean", "5"]
    saved = json.loads((tmp_path / "m.json").read_text())
    assert saved["mean"]["frames"] == 5 and 0 < saved["mean"]["ssim"] <= 1
    assert (tmp_path / "m.csv").read_text().splitlines()[0] == "clip,frames,l1,psnr,ssim,akd"
    assert main(["--weights", str(tmp_path / "absent"), "--data", str(clip)]) == 2
    assert "error:" in capsys.readouterr().err


def test_landmark_distance_and_missing_rate() -> None:
    real = torch.zeros(2, 4, 2)
    pred = real.clone()
    pred[0, :, 0] += 3.0
    visible_real = torch.tensor([[True, True, True, False], [False] * 4])
    visible_pred = torch.tensor([[True, True, False, True], [True] * 4])
    akd, mkr = landmark_distance(pred, visible_pred, real, visible_real)
    assert akd[0].item() == pytest.approx(3.0) and mkr[0].item() == pytest.approx(1 / 3)
    assert torch.isnan(akd[1]) and torch.isnan(mkr[1])  # nothing visible in the real frame


def test_pose_landmarks_on_a_real_ted_frame(shared_data) -> None:
    pytest.importorskip("mediapipe")
    from tps.video import iter_frames

    frame = next(iter(iter_frames(shared_data / "ted_silent" / "ted_driving_384.mp4", max_frames=1)))
    image = torch.from_numpy(frame.copy()).permute(2, 0, 1)[None].float() / 255
    with PoseLandmarks() as pose:
        points, visible = pose(image)
        akd, mkr = landmark_distance(points, visible, *pose(image))
        blank_points, blank_visible = pose(torch.zeros_like(image))
    assert visible[0, 0] and visible.sum() >= 8  # the speaker's nose and upper body are found
    assert 0 < points[0, 0, 0] < 384 and 0 < points[0, 0, 1] < 192  # the nose is in the upper half
    assert akd.item() == 0.0 and mkr.item() == 0.0
    assert not blank_visible.any()
    small = torch.nn.functional.interpolate(image, size=(64, 64)).repeat(2, 1, 1, 1)
    with PoseLandmarks() as pose:
        row = evaluate_clip(_tiny_model(), small, pose=pose)
    assert row.pose_akd is not None and row.pose_mkr is not None
