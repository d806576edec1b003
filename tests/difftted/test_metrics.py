"""difftted.evaluation.metrics on hand-made signals with known answers, and on real motion."""

from __future__ import annotations

import numpy as np
import pytest

from difftted.evaluation import metrics

SR = 16000
FPS = 25.0
PERIOD = 0.8  # s between beats


def _clicks(times: np.ndarray, seconds: float) -> np.ndarray:
    audio = 1e-4 * np.random.default_rng(0).standard_normal(int(seconds * SR)).astype(np.float32)
    for t in times:
        i = int(round(t * SR))
        audio[i:i + 400] += (np.hanning(400) * np.sin(np.arange(400) * 0.9)).astype(np.float32)
    return audio


def _strokes(seconds: float, pause_times_offset: float) -> np.ndarray:
    """Two keypoints swinging back and forth: speed is 0 at ``offset + k * PERIOD``."""
    t = np.arange(int(seconds * FPS)) / FPS
    x = 0.3 * np.cos(np.pi * (t - pause_times_offset) / PERIOD)
    kp = np.stack([np.stack([x, 0.5 * x], 1), np.stack([-x, 0.1 + 0 * x], 1)], axis=1)
    return kp  # [T, 2, 2]


def test_bc_from_times_known_values():
    beats = np.array([0.4, 1.2, 2.0])
    assert metrics.beat_consistency_from_times(beats, beats) == pytest.approx(1.0)
    assert metrics.beat_consistency_from_times(beats, beats + 0.1) == pytest.approx(np.exp(-0.5))
    assert metrics.beat_consistency_from_times(beats, beats + 0.4) < 1e-3
    # each audio beat counts its NEAREST motion beat: extra motion beats do not lower the score
    assert metrics.beat_consistency_from_times(beats, np.r_[beats, beats + 0.3]) == pytest.approx(1.0)
    assert np.isnan(metrics.beat_consistency_from_times(beats, []))


def test_motion_beats_are_the_pauses():
    offset = 0.4
    beats = metrics.motion_beats(_strokes(4.0, offset), FPS)
    expected = offset + PERIOD * np.arange(5)
    expected = expected[(expected > 0) & (expected < 4.0 - 1 / FPS)]
    np.testing.assert_allclose(beats, expected, atol=0.5 / FPS)
    still = np.zeros((100, 50, 2)) + 1e-6 * np.random.default_rng(0).standard_normal((100, 50, 2))
    assert metrics.motion_beats(still, FPS).size == 0  # sensor noise on a still pose is no beat


@pytest.mark.parametrize("motion_offset,expect_high", [(0.4, True), (0.8, False)])
def test_bc_on_audio_and_motion(motion_offset, expect_high):
    onset_times = 0.4 + PERIOD * np.arange(4)  # 0.4, 1.2, 2.0, 2.8 s
    audio = _clicks(onset_times, 3.6)
    np.testing.assert_allclose(metrics.audio_beats(audio, SR), onset_times, atol=0.03)
    bc = metrics.beat_consistency(_strokes(3.6, motion_offset), audio, SR, FPS)
    if expect_high:  # motion pauses exactly at the onsets; librosa's peak may lag by one hop
        assert bc > 0.95
    else:  # pauses half a period (0.4 s) from every onset
        assert bc < 1e-3


def test_frechet_distance_known_values():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((500, 6)) @ rng.standard_normal((6, 6))
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    shift = np.array([1.0, -2.0, 0.5, 0.0, 3.0, 0.0])
    assert metrics.frechet_distance(a, a + shift) == pytest.approx(np.sum(shift ** 2), rel=1e-6)
    # scaled spread: 1-D Gaussians N(0, 1) and N(0, 4) are (2 - 1)^2 = 1 apart
    x = rng.standard_normal((20000, 1))
    assert metrics.frechet_distance(x, 2 * x) == pytest.approx(1.0, rel=0.05)
    # rank-deficient features (fewer samples than dimensions) stay finite
    assert np.isfinite(metrics.frechet_distance(rng.standard_normal((5, 10)), rng.standard_normal((6, 10))))


def test_diversity_never_pairs_an_item_with_itself():
    features = np.arange(5)[:, None] * np.ones((5, 3))
    d = metrics.diversity(features, rng=1)
    assert d >= 3.0  # every pair differs by at least 1 in each of 3 columns
    assert metrics.diversity(np.ones((7, 4)), rng=0) == 0.0
    assert metrics.diversity(features, rng=1) == d
    with pytest.raises(ValueError, match="features"):
        metrics.diversity(np.ones((1, 4)))


def test_l1_and_jitter_known_values():
    t = np.arange(30)[:, None, None] / FPS
    constant_velocity = np.concatenate([0.2 * t, -0.1 * t + 0.3], axis=-1) * np.ones((1, 50, 1))
    assert metrics.jitter(constant_velocity, FPS) == pytest.approx(0.0, abs=1e-9)
    parabola = 0.5 * 0.7 * t ** 2 * np.ones((1, 50, 2))  # acceleration 0.7 in x and y
    assert metrics.jitter(parabola, FPS) == pytest.approx(0.7 * np.sqrt(2), rel=1e-6)
    assert metrics.l1_distance(constant_velocity, constant_velocity + 0.05) == pytest.approx(0.05)
    assert metrics.l1_distance(constant_velocity.reshape(30, 100), constant_velocity) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        metrics.l1_distance(constant_velocity, constant_velocity[:10])
    with pytest.raises(ValueError, match="keypoints"):
        metrics.jitter(np.zeros((2, 50, 2)), FPS)


def test_motion_spread_known_values():
    still = np.full((20, 50, 2), 0.4)
    assert metrics.motion_spread(still) == pytest.approx(0.0, abs=1e-12)
    # every keypoint alternates between +-(0.03, 0.04) around its mean: distance 0.05 in every frame
    swing = still + np.where(np.arange(20) % 2 == 0, 1.0, -1.0)[:, None, None] * np.array([0.03, 0.04])
    assert metrics.motion_spread(swing) == pytest.approx(0.05)
    assert metrics.motion_spread(swing.reshape(20, 100)) == pytest.approx(0.05)
    assert metrics.motion_spread(still + 0.5 * (swing - still)) == pytest.approx(0.025)


@pytest.mark.shared_data
def test_metrics_on_real_motion_and_speech(mocap_keypoints, mocap_audio):
    """Real data: BC lies in (0, 1], and shuffling the frames in time multiplies the jitter."""
    audio, sr = mocap_audio
    kp = mocap_keypoints[:500]  # 20 s
    bc = metrics.beat_consistency(kp, audio[: 20 * sr], sr, FPS)
    assert 0.0 < bc <= 1.0
    shuffled = kp[np.random.default_rng(0).permutation(len(kp))]
    assert metrics.jitter(shuffled, FPS) > 3 * metrics.jitter(kp, FPS)
