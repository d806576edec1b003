"""difftted.interfaces.ui: the app's logic without a server (input checks, seeds, keypoint views, beat plot)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from difftted.interfaces import plotting, ui
from difftted.pipeline.person import CropBox


# ------------------------------------------------------------------------------------- inputs
def test_check_photo_refuses_missing_and_unreadable(tmp_path):
    with pytest.raises(ValueError, match="No photo"):
        ui.check_photo(None)
    fake = tmp_path / "photo.png"
    fake.write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        ui.check_photo(str(fake))


def test_check_photo_reads_a_path(small_photo):
    photo = ui.check_photo(str(small_photo))
    assert photo.dtype == np.uint8 and photo.shape[2] == 3 and photo.shape[:2] == (192, 192)


def test_check_speech_keeps_the_file_for_the_video(short_speech):
    speech = ui.check_speech(str(short_speech))
    assert speech.path == short_speech
    assert speech.sample_rate == 16000
    assert speech.duration == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (None, "No speech"),
        ("text", "not readable audio"),
        ("silence", "silent"),
        ("long", r"lasts 4\.0 s; this demo takes at most 3 s"),
    ],
)
def test_check_speech_explains_bad_input(bad_inputs, max_audio_seconds, case, message):
    audio = None if case is None else str(bad_inputs[case])
    with pytest.raises(ValueError, match=message):
        ui.check_speech(audio, max_seconds=max_audio_seconds)


def test_check_speech_caps_files_libsndfile_cannot_size(tmp_path, bad_inputs, max_audio_seconds):
    """An mp4's sound has no libsndfile header: the cap applies after decoding."""
    from tps.video import write_video

    video = tmp_path / "long.mp4"
    frames = np.zeros((int(max_audio_seconds + 1) * 5, 16, 16, 3), dtype=np.uint8)
    write_video(video, frames, 5.0, audio=bad_inputs["long"])
    with pytest.raises(ValueError, match=f"this demo takes at most {max_audio_seconds:g} s"):
        ui.check_speech(str(video), max_seconds=max_audio_seconds)


def test_resolve_seed():
    assert ui.resolve_seed(42, False) == 42
    assert ui.resolve_seed(42.0, False) == 42  # gr.Number may send floats
    drawn = {ui.resolve_seed(42, True) for _ in range(4)}
    assert all(0 <= s <= ui.SEED_MAX for s in drawn) and len(drawn) > 1
    for bad in (None, -1, 1.5, ui.SEED_MAX + 1, float("nan"), "7", True):
        with pytest.raises(ValueError, match="Seed must be a whole number"):
            ui.resolve_seed(bad, False)


# ------------------------------------------------------------------------------ keypoint view
def test_keypoints_to_pixels_corners():
    kp = np.array([[[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]]])
    crop = ui.keypoints_to_pixels(kp, (65, 129))
    np.testing.assert_allclose(crop[0], [[0, 0], [128, 64], [64, 32]])
    full = ui.keypoints_to_pixels(kp, (480, 640), CropBox(x0=100, y0=20, size=201))
    np.testing.assert_allclose(full[0], [[100, 20], [300, 220], [200, 120]])


def test_draw_keypoints_colours_each_transform():
    frames = np.full((2, 64, 64, 3), 255, dtype=np.uint8)
    points = np.zeros((2, 10, 2), dtype=np.float32)
    points[:, :5] = [10.0, 10.0]  # transform 0
    points[:, 5:] = [50.0, 40.0]  # transform 1
    points[1] += 3.0  # the dots move with the keypoints
    out = ui.draw_keypoints(frames, points, radius=3)
    assert (frames == 255).all(), "the input frames must not be modified"
    colour0, colour1 = plotting._palette(2)
    np.testing.assert_array_equal(out[0, 10, 10], colour0)
    np.testing.assert_array_equal(out[0, 40, 50], colour1)
    np.testing.assert_array_equal(out[1, 13, 13], colour0)
    assert (out[1, 10, 8] == 255).all(), "frame 1's dot moved away from (10, 10)"
    assert (out[:, 25:30, 25:30] == 255).all(), "pixels away from the keypoints stay untouched"


def test_draw_keypoints_checks_shapes():
    with pytest.raises(ValueError, match="frames must be uint8"):
        ui.draw_keypoints(np.zeros((2, 8, 8, 3), np.float32), np.zeros((2, 5, 2)))
    with pytest.raises(ValueError, match="points must be"):
        ui.draw_keypoints(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((3, 5, 2)))


# ---------------------------------------------------------------------------------- beat plot
def test_beat_figure_marks_onsets_and_motion_beats():
    from difftted.evaluation import metrics

    fps, sr = 25.0, 16000
    t = np.arange(2 * sr) / sr
    clicks = np.zeros_like(t)
    for onset in (0.4, 1.0, 1.6):  # three loud bursts
        start = int(onset * sr)
        clicks[start : start + 800] = 0.5 * np.sin(2 * np.pi * 440 * t[:800])
    frames = np.arange(int(2 * fps)) / fps
    # motion slows to a stop at 0.4, 1.0 and 1.6 s: three motion beats on the onsets
    position = np.cumsum(np.abs(np.sin(np.pi * (frames - 0.4) / 0.6))) / fps
    keypoints = np.repeat(position[:, None, None], 50, axis=1).repeat(2, axis=2) * 0.5
    figure, bc = ui.beat_figure(clicks.astype(np.float32), sr, keypoints, fps)
    expected = metrics.beat_consistency(keypoints, clicks.astype(np.float32), sr, fps)
    assert bc == pytest.approx(expected) and bc > 0.5
    top, bottom = figure.axes
    assert f"{bc:.3f}" in top.get_title()
    assert "audio onsets (3)" in [t.get_text() for t in top.get_legend().get_texts()]
    assert any(text.get_text().startswith("motion beats") for text in bottom.get_legend().get_texts())


def test_beat_figure_without_motion_beats_says_undefined():
    sr, fps = 16000, 25.0
    audio = (0.3 * np.sin(2 * np.pi * 200 * np.arange(sr) / sr)).astype(np.float32)
    still = np.zeros((25, 50, 2), dtype=np.float32)
    figure, bc = ui.beat_figure(audio, sr, still, fps)
    assert bc is None
    assert "undefined" in figure.axes[0].get_title()


# --------------------------------------------------------------------------------- generation
def test_generate_writes_both_videos_and_repeats_with_a_seed(app_pipeline, small_photo, short_speech, tmp_path):
    from tests.media import stream_codecs
    from tps.video import video_info

    settings = ui.GenerationSettings(seed=5, output="crop")
    first = ui.generate(app_pipeline, str(small_photo), str(short_speech), settings, tmp_path / "a", progress=False)
    again = ui.generate(app_pipeline, str(small_photo), str(short_speech), settings, tmp_path / "b", progress=False)
    assert first.seed == 5
    sizes = set()
    for path in (first.video, first.keypoint_video):
        assert path.parent == tmp_path / "a"
        assert stream_codecs(path) == {"video": "h264", "audio": "aac"}
        info = video_info(path)
        assert info.duration == pytest.approx(1.0, abs=0.1)
        sizes.add((info.height, info.width))
    # the crop at its own size (composition at the photo's resolution), larger than the model's
    (height, width), = sizes
    assert height == width > app_pipeline.resolution[0]
    np.testing.assert_array_equal(_read(first.video), _read(again.video))
    assert not np.array_equal(_read(first.video), _read(first.keypoint_video)), "keypoints were drawn"


def test_generate_full_photo_and_random_seed(app_pipeline, small_photo, short_speech, tmp_path):
    from tps.video import video_info

    settings = ui.GenerationSettings(seed=5, randomize_seed=True, output="full", motion_scale=0.5)
    result = ui.generate(app_pipeline, str(small_photo), str(short_speech), settings, tmp_path, progress=False)
    assert 0 <= result.seed <= ui.SEED_MAX
    info = video_info(result.keypoint_video)
    assert (info.height, info.width) == (192, 192)  # the whole photo, not the crop


def test_generate_checks_inputs_before_the_pipeline_runs(app_pipeline, small_photo, bad_inputs, tmp_path):
    calls = []

    class Spy:
        device = app_pipeline.device

        def __call__(self, *args, **kwargs):
            calls.append(args)
            raise AssertionError("the pipeline must not run on bad input")

    with pytest.raises(ValueError, match="silent"):
        ui.generate(Spy(), str(small_photo), str(bad_inputs["silence"]), ui.GenerationSettings(), tmp_path)
    with pytest.raises(ValueError, match="Seed must be"):  # before the speech is even decoded
        ui.generate(Spy(), str(small_photo), str(bad_inputs["text"]), ui.GenerationSettings(seed=-3), tmp_path)
    with pytest.raises(ValueError, match="takes at most 3 s"):
        ui.generate(Spy(), str(small_photo), str(bad_inputs["long"]), ui.GenerationSettings(), tmp_path,
                    max_audio_seconds=3.0)
    assert calls == []


def _read(path: Path) -> np.ndarray:
    from tps.video import read_video

    return read_video(path)[0]


# ------------------------------------------------------------------------------ driving video
def test_animate_drives_the_photo_with_a_video(app_pipeline, small_photo, short_driving, tmp_path):
    from tps.video import video_info

    out = ui.animate(app_pipeline, str(small_photo), str(short_driving), tmp_path, mode="standard", progress=False)
    info, driving = video_info(out), video_info(short_driving)
    assert out.parent == tmp_path
    assert (info.height, info.width) == app_pipeline.resolution
    assert info.fps == pytest.approx(driving.fps)
    assert abs(info.duration - driving.duration) <= 1.0 / driving.fps + 1e-3
    frames = _read(out)
    assert frames.std(axis=0).mean() > 0.5, "the frames follow the driving motion, they are not all equal"


def test_animate_explains_bad_input(app_pipeline, small_photo, tmp_path, max_audio_seconds):
    fake = tmp_path / "talk.mp4"
    fake.write_text("not a video")
    with pytest.raises(ValueError, match="No driving video"):
        ui.animate(app_pipeline, str(small_photo), None, tmp_path)
    with pytest.raises(ValueError, match="'talk.mp4' is not a readable video"):
        ui.animate(app_pipeline, str(small_photo), str(fake), tmp_path)
    with pytest.raises(ValueError, match="No photo"):
        ui.animate(app_pipeline, None, str(fake), tmp_path)
    with pytest.raises(ValueError, match="Keypoint mode"):
        ui.animate(app_pipeline, str(small_photo), str(fake), tmp_path, mode="avd")
    sway = Path(__file__).resolve().parents[2] / "examples" / "sway.mp4"
    with pytest.raises(ValueError, match="The driving video lasts 2.0 s; this demo takes at most 1 s"):
        ui.animate(app_pipeline, str(small_photo), str(sway), tmp_path, max_seconds=1.0)


# ---------------------------------------------------------------------------- per-part intensity
def test_part_scales_are_refused_for_detector_weights_naming_the_slider(app_pipeline, small_photo, short_speech,
                                                                        tmp_path):
    assert ui.GenerationSettings().part_scales() == {}
    settings = ui.GenerationSettings(seed=1, output="crop", mouth_scale=0.0)
    assert settings.part_scales() == {"mouth": 0.0}
    with pytest.raises(ValueError, match="Mouth intensity"):
        ui.generate(app_pipeline, str(small_photo), str(short_speech), settings, tmp_path, progress=False)
    assert not any(tmp_path.iterdir()), "refused before anything was written"


def test_part_scales_change_the_motion_of_a_body_pipeline(body_app_pipeline, short_speech, tmp_path):
    from tps.video import iter_frames

    photo = str(Path(__file__).resolve().parents[2] / "examples" / "astronaut.png")
    videos = {}
    for name, arms in (("plain", 1.0), ("arms", 2.0)):
        settings = ui.GenerationSettings(seed=4, output="crop", arms_scale=arms)
        result = ui.generate(body_app_pipeline, photo, str(short_speech), settings, tmp_path / name, progress=False)
        videos[name] = np.stack(list(iter_frames(result.video))).astype(np.float32)
    assert videos["plain"].shape == videos["arms"].shape
    assert np.abs(videos["plain"] - videos["arms"]).mean() > 0.1  # the arms moved differently


def test_app_part_sliders_move_only_with_body_weights(app_pipeline, body_app_pipeline, tmp_path):
    import gradio as gr

    import app

    for pipeline, expected in ((app_pipeline, False), (body_app_pipeline, True)):
        demo = app.build_demo(pipeline, work_root=tmp_path)
        sliders = {b.elem_id: b for b in demo.blocks.values() if isinstance(b, gr.Slider)}
        for part in ("head", "mouth", "arms"):
            assert sliders[f"{part}-scale"].interactive is expected
            assert sliders[f"{part}-scale"].value == 1.0
    body_app_pipeline.part_scales = {"mouth": 3.0}  # the weights' defaults are where the sliders start
    try:
        demo = app.build_demo(body_app_pipeline, work_root=tmp_path)
    finally:
        body_app_pipeline.part_scales = {}
    sliders = {b.elem_id: b for b in demo.blocks.values() if isinstance(b, gr.Slider)}
    assert (sliders["mouth-scale"].value, sliders["head-scale"].value) == (3.0, 1.0)
    assert sliders["mouth-scale"].maximum == 6.0 and sliders["head-scale"].maximum == 2.0  # room above it
