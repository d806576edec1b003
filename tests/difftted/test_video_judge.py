"""evaluate-video: the pixel judges on real footage, on a still video, and on bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from difftted.evaluation import judge_measures as jm
from difftted.evaluation.video_judge import VideoJudgement, format_judgements, judge_video, main

STILL_SECONDS, STILL_FPS = 2.0, 25


# ------------------------------------------------------------------------- pure measures
def test_best_lag_correlation_finds_a_known_lag():
    rng = np.random.default_rng(0)
    sound = rng.normal(size=200)
    mouth = np.roll(sound, 3) + 0.1 * rng.normal(size=200)  # the mouth follows by 3 frames
    r, lag = jm.best_lag_correlation(mouth, sound, max_lag=4)
    assert lag == 3 and r > 0.9
    r2, lag2 = jm.best_lag_correlation(mouth, sound, max_lag=2)  # out of reach
    assert r2 < 0.5 and abs(lag2) <= 2


def test_lip_sync_chance_is_low_and_deterministic():
    rng = np.random.default_rng(1)
    sound = np.abs(rng.normal(size=300))
    mouth = sound + 0.2 * rng.normal(size=300)
    first, second = jm.lip_sync(mouth, sound, fps=25.0), jm.lip_sync(mouth, sound, fps=25.0)
    assert first == second
    r, lag, chance = first
    assert lag == 0 and r > 0.9 and abs(chance) < 0.3


def test_shifted_times_wrap_around():
    np.testing.assert_allclose(jm.shifted_times(np.array([0.5, 4.5]), 5.0, 1.0), [0.5, 1.5])
    np.testing.assert_allclose(jm.shifted_times(np.array([0.5]), 5.0, -1.0), [4.5])


def test_group_speed_in_shoulder_widths_and_gaps():
    t = np.arange(50)
    points = np.zeros((50, 1, 2))
    points[:, 0, 0] = 4.0 * t  # 4 px per frame = 100 px/s at 25 fps
    valid = np.ones((50, 1), dtype=bool)
    speed, seen = jm.group_speed(points, valid, fps=25.0, scale=50.0)
    assert speed == pytest.approx(2.0) and seen == 1.0
    valid[:40] = False
    assert math.isnan(jm.group_speed(points, valid, 25.0, 50.0)[0])  # seen in 20% < 30%


def test_fill_and_smooth_fills_gaps_and_keeps_never_seen_nan():
    points = np.stack([np.linspace(0, 10, 11)] * 2, axis=1)[:, None, :].repeat(2, axis=1)
    valid = np.ones((11, 2), dtype=bool)
    valid[4:7, 0] = False
    points[4:7, 0] = 999.0  # garbage where invalid
    valid[:, 1] = False
    out = jm.fill_and_smooth(points, valid, fps=25.0, smooth_seconds=0.0)
    np.testing.assert_allclose(out[:, 0, 0], np.linspace(0, 10, 11))
    assert np.isnan(out[:, 1]).all()


def test_background_mask_keeps_its_distance():
    person = np.zeros((100, 200), dtype=bool)
    person[40:60, 90:110] = True
    mask = jm.background_mask(person, margin=0.15)  # 15 px
    assert not mask[50, 120] and not mask[50, 124] and mask[50, 126] and mask[0, 0]


def test_window_means_split_and_last_partial():
    values, times = np.arange(25, dtype=float), np.arange(25) / 1.0
    windows = jm.window_means(values, times, window=10.0, duration=25.0)
    assert [(a, b) for a, b, _ in windows] == [(0, 10), (10, 20), (20, 25)]
    assert windows[0][2] == pytest.approx(4.5) and windows[2][2] == pytest.approx(22.0)


# ---------------------------------------------------------------------------- the table
def _judgement(**values) -> VideoJudgement:
    return VideoJudgement(video="x.mp4", photo="first frame", audio=None, size=(8, 8), fps=25.0, stride=1,
                          frames=10, duration=0.4, **values)


def test_table_has_a_column_per_video_and_dashes_for_nan():
    table = format_judgements({"gen.mp4": _judgement(wrist_speed=0.0123, lip_corr=0.31, lip_corr_chance=0.05),
                               "real: clip.mp4": _judgement(head_speed=0.1)})
    lines = table.splitlines()
    assert "gen.mp4" in lines[0] and "real: clip.mp4" in lines[0]
    wrist = next(line for line in lines if line.startswith("wrist speed"))
    assert "0.012" in wrist and wrist.rstrip().endswith("-")
    assert "0.310 (0.050)" in next(line for line in lines if line.startswith("lip-loudness"))
    with pytest.raises(ValueError, match="empty"):
        format_judgements({})


def test_to_dict_is_json_ready():
    data = _judgement(face_ssim_windows=[(0.0, 10.0, float("nan"))]).to_dict()
    text = json.dumps(data, allow_nan=False)
    assert json.loads(text)["wrist_speed"] is None and json.loads(text)["face_ssim_windows"] == [[0.0, 10.0, None]]


# ------------------------------------------------------------------------- real footage
@pytest.fixture(scope="module")
def oliver(shared_data: Path) -> Path:
    return shared_data / "talking" / "oliver_halfbody.mp4"


def test_real_clip_lips_follow_its_own_speech(oliver):
    j = judge_video(oliver, max_seconds=4.0, progress=False)
    assert j.audio == "own track" and j.photo == "first frame" and j.frames == 120
    assert j.lip_corr > j.lip_corr_chance + 0.05, (j.lip_corr, j.lip_corr_chance)
    assert j.wrist_speed > 0.02 and j.head_speed > 0.02 and j.shoulder_width > 50
    assert 0.5 < j.head_speed_face / j.head_speed < 2.0  # the same head, read off the face mesh
    assert j.mouth_std > 0.005
    assert j.first_frame_ssim == pytest.approx(1.0) and j.sharpness_first == pytest.approx(1.0)
    assert 0.0 <= j.beat_consistency_chance <= 1.0 and 0.0 <= j.beat_consistency <= 1.0


@pytest.fixture(scope="module")
def still(oliver, tmp_path_factory) -> tuple[Path, Path]:
    """The clip's first frame (640x360) repeated for 2 s, with the clip's speech, written by the
    project's video writer; and that frame as the photo."""
    from PIL import Image

    from difftted.audio import load_audio
    from difftted.audio.speech import load_speech
    from difftted.pipeline.output import write_talking_video
    from tps.video import iter_frames

    folder = tmp_path_factory.mktemp("still")
    frame = np.asarray(Image.fromarray(next(iter_frames(oliver))).resize((640, 360), Image.Resampling.LANCZOS))
    photo = folder / "photo.png"
    Image.fromarray(frame).save(photo)
    waveform, sr = load_audio(oliver, sample_rate=16000)
    speech = load_speech((waveform[: int(STILL_SECONDS * sr)], sr))
    frames = (frame for _ in range(int(STILL_SECONDS * STILL_FPS)))
    return write_talking_video(folder / "still.mp4", frames, STILL_FPS, speech), photo


def test_still_video_has_no_motion_and_matches_its_photo(still):
    video, photo = still
    j = judge_video(video, photo=photo, progress=False)
    assert j.frames == STILL_FPS * STILL_SECONDS and not j.photo_resized and j.audio == "own track"
    for speed in (j.wrist_speed, j.elbow_speed, j.head_speed, j.head_speed_face):
        assert 0.0 <= speed < 0.01  # real speakers: 0.1-0.16; only encoding noise moves here
    assert j.first_frame_ssim > 0.95 and j.face_ssim > 0.95 and j.face_ssim_aligned > 0.9
    assert j.background_change < 2.0
    assert 0.8 < j.sharpness_first < 1.25 and 0.8 < j.sharpness_median < 1.25
    assert j.mouth_std < 2e-3


def test_photo_without_person_gives_nan_with_reasons(still, tmp_path):
    from PIL import Image

    video, _ = still
    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((100, 150, 3), 128, dtype=np.uint8)).save(flat)
    j = judge_video(video, photo=flat, max_seconds=0.5, progress=False)
    assert j.photo_resized and math.isnan(j.face_ssim) and math.isnan(j.sharpness_first)
    assert any("face" in note for note in j.notes) and any("pose" in note for note in j.notes)
    assert j.head_speed < 0.005  # the video itself still has its person


def test_command_writes_json(still, tmp_path):
    video, photo = still
    out = tmp_path / "judge.json"
    assert main([str(video), "--photo", str(photo), "--max-seconds", "0.6", "--window", "0.2",
                 "--json", str(out), "--no-progress"]) == 0
    data = json.loads(out.read_text())
    assert list(data) == ["still.mp4"] and len(data["still.mp4"]["face_ssim_windows"]) == 3
    assert len(data["still.mp4"]["face_ssim_aligned_windows"]) == 3


# ---------------------------------------------------------------------------- bad input
def test_bad_inputs_raise_clear_errors(still, tmp_path):
    video, photo = still
    with pytest.raises(FileNotFoundError, match="nothere.mp4"):
        judge_video(tmp_path / "nothere.mp4")
    with pytest.raises(FileNotFoundError, match="audio"):
        judge_video(video, audio=tmp_path / "nothere.wav")
    with pytest.raises(FileNotFoundError, match="photo"):
        judge_video(video, photo=tmp_path / "nothere.png")
    with pytest.raises(ValueError, match="window"):
        judge_video(video, window=0)
    with pytest.raises(ValueError, match="stride"):
        judge_video(video, stride=0)
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    with pytest.raises(ValueError, match="junk.mp4"):
        judge_video(junk)


def test_command_reports_a_missing_file_in_one_line(tmp_path, capsys):
    from difftted.__main__ import main as cli

    assert cli(["evaluate-video", str(tmp_path / "nothere.mp4")]) == 1
    assert "nothere.mp4" in capsys.readouterr().err


# ------------------------------------------------------------------ aligned face SSIM
@pytest.fixture(scope="module")
def moved_and_blurred(astronaut_path: Path, tmp_path_factory) -> tuple[Path, Path]:
    """The astronaut (512x512) moved as a head would (shifts up to 6 px, rotations up to 3
    degrees, zoom within 3%, about the face) and, separately, held still but blurred (Gaussian,
    sigma 2 px): 1 s each, with near-silent sound."""
    import cv2
    from PIL import Image

    from difftted.audio.speech import load_speech
    from difftted.pipeline.output import write_talking_video

    photo = np.asarray(Image.open(astronaut_path).convert("RGB"))
    h, w = photo.shape[:2]

    def moved(t: int) -> np.ndarray:
        angle, scale = np.deg2rad(3 * np.sin(t / 7)), 1 + 0.03 * np.sin(t / 5)
        matrix = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        shift = np.array([6 * np.sin(t / 4) + 0.37, 4 * np.cos(t / 6)])
        shift += (np.eye(2) - matrix) @ np.array([w / 2, h / 3])
        return cv2.warpAffine(photo, np.hstack([matrix, shift[:, None]]), (w, h), flags=cv2.INTER_CUBIC,
                              borderMode=cv2.BORDER_REPLICATE)

    folder = tmp_path_factory.mktemp("aligned")
    sr = 16000
    speech = load_speech((1e-3 * np.random.default_rng(0).normal(size=sr).astype(np.float32), sr))
    blurred = cv2.GaussianBlur(photo, (0, 0), 2.0)
    return (write_talking_video(folder / "moved.mp4", (moved(t) for t in range(25)), 25, speech),
            write_talking_video(folder / "blurred.mp4", (blurred for _ in range(25)), 25, speech))


def test_aligned_face_ssim_forgives_motion_and_not_blur(moved_and_blurred, astronaut_path):
    """A sharp face that only moves loses most of the fixed box's SSIM but keeps the aligned one;
    a still face blurred by 2 px keeps the fixed box's better than the moved face and scores
    lower than it once aligned: the aligned measure ranks smear below motion."""
    moved, blurred = (judge_video(v, photo=astronaut_path, progress=False) for v in moved_and_blurred)
    assert moved.face_ssim < 0.6 and moved.face_ssim_aligned > 0.8, (moved.face_ssim, moved.face_ssim_aligned)
    assert blurred.face_ssim > moved.face_ssim + 0.2
    assert moved.head_speed_face > 5 * blurred.head_speed_face  # the face mesh sees the head move
    assert blurred.face_ssim_aligned < moved.face_ssim_aligned - 0.05, (blurred.face_ssim_aligned,
                                                                       moved.face_ssim_aligned)


def test_aligned_face_of_the_photo_itself_is_its_box():
    """Identical landmarks give the identity: the box comes back unchanged."""
    rng = np.random.default_rng(3)
    image = rng.uniform(0, 255, (60, 80))
    face = np.column_stack([rng.uniform(10, 70, 468), rng.uniform(10, 50, 468)])
    box = (12, 9, 50, 41)
    np.testing.assert_allclose(jm.aligned_face(image, face, face, box), image[9:41, 12:50], atol=1e-6)
    shifted = face + np.array([3.0, -2.0])  # the frame's face 3 px right, 2 px up: read from there
    np.testing.assert_allclose(jm.aligned_face(image, shifted, face, box), image[7:39, 15:53], atol=1e-6)
    assert jm.aligned_face(image, np.full_like(face, np.nan), face, box) is None
