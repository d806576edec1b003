"""End to end with tiny seeded components: a real photo and real speech -> mp4 with both streams."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import torch
from skimage import data

from difftted import DiffTEDPipeline, DiffTEDPipelineOutput
from tests.media import stream_codecs
from tps.video import read_video, video_info

TINY_FPS = 25.0  # the tiny pipeline's model rate (tests/pipeline/conftest.py)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def e2e(tiny_pipeline, astronaut_path, speech_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "talk.mp4"
    result = tiny_pipeline(astronaut_path, speech_path, generator=_gen(0), output_path=out, return_frames=True)
    return result, out


def test_mp4_has_both_streams_frame_count_and_duration(e2e, speech_path, tiny_pipeline):
    assert tiny_pipeline.fps == TINY_FPS
    result, out = e2e
    assert isinstance(result, DiffTEDPipelineOutput) and result.video_path == out
    assert stream_codecs(out) == {"video": "h264", "audio": "aac"}
    info = video_info(out)
    audio_seconds = soundfile.info(str(speech_path)).duration
    expected = round(audio_seconds * TINY_FPS)
    frames, fps = read_video(out)
    assert len(frames) == expected == len(result.frames) == len(result.keypoints)
    assert fps == pytest.approx(TINY_FPS)
    assert abs(info.duration - audio_seconds) <= 1.0 / TINY_FPS


def test_output_is_the_full_photo_with_the_speaker_animated(e2e):
    result, _ = e2e
    photo = data.astronaut()
    frames, box = result.frames, result.crop_box
    assert frames.shape == (len(result.keypoints), 512, 512, 3) and frames.dtype == np.uint8
    below = box.y0 + box.size
    assert below < 512  # the astronaut's crop ends above the photo's bottom
    np.testing.assert_array_equal(frames[:, below:], np.broadcast_to(photo[below:], frames[:, below:].shape))
    inside = frames[:, box.y0 + 10 : below - 10, box.x0 + 10 : box.x0 + box.size - 10]
    assert np.abs(np.diff(inside.astype(np.int16), axis=0)).max() > 0  # the crop moves over time
    assert result.keypoints.shape[1:] == (50, 2) and np.abs(result.keypoints).max() <= 1.0
    assert result.audio[1] == 44100 and result.audio[0].ndim == 1


def test_same_seed_same_frames(e2e, tiny_pipeline, astronaut_path, speech_path):
    again = tiny_pipeline(astronaut_path, speech_path, generator=_gen(0))
    np.testing.assert_array_equal(again.frames, e2e[0].frames)
    np.testing.assert_array_equal(again.keypoints, e2e[0].keypoints)


def test_save_load_round_trip_gives_the_same_video(e2e, tiny_pipeline_dir, astronaut_path, speech_path):
    loaded = DiffTEDPipeline.from_pretrained(tiny_pipeline_dir)
    assert type(loaded.scheduler).__name__ == "DDIMScheduler"
    loaded.set_progress_bar_config(disable=True)
    result = loaded(astronaut_path, speech_path, generator=_gen(0))
    np.testing.assert_array_equal(result.keypoints, e2e[0].keypoints)
    np.testing.assert_array_equal(result.frames, e2e[0].frames)


def test_seed_changes_motion_and_tuple_output(tiny_pipeline, speech_path):
    wave, sr = soundfile.read(str(speech_path), dtype="float32")
    short = (wave[: int(0.4 * sr)], sr)
    photo = data.astronaut()
    a = tiny_pipeline(photo, short, generator=_gen(1), output="crop", composition="model", return_dict=False)
    b = tiny_pipeline(photo, short, generator=_gen(2), output="crop", composition="model", return_dict=False)
    frames, keypoints, fps, audio, path, box = a
    assert frames.shape == (10, 64, 64, 3) and keypoints.shape == (10, 50, 2)  # crop alone, model size
    assert fps == TINY_FPS and path is None and audio[1] == sr
    assert not np.allclose(keypoints, b[1])


def test_motion_scale_zero_is_a_still_photo_and_fps_resamples(tiny_pipeline, tone_path):
    photo = data.astronaut()
    still = tiny_pipeline(photo, tone_path, generator=_gen(0), motion_scale=0.0, fps=10, output="crop")
    assert len(still.frames) == 10 and still.fps == 10  # 1 s of audio at 10 fps
    assert np.allclose(still.keypoints, still.keypoints[:1], atol=1e-6)
    assert np.abs(np.diff(still.frames.astype(np.int16), axis=0)).max() <= 1


def test_progress_bars_can_be_switched_off(tiny_pipeline, tone_path, capsys):
    photo = data.astronaut()
    tiny_pipeline.set_progress_bar_config()
    try:
        tiny_pipeline(photo, tone_path, generator=_gen(0), output="crop", fps=5)
        assert "rendering" in capsys.readouterr().err
        tiny_pipeline(photo, tone_path, generator=_gen(0), output="crop", fps=5, progress=False)
        assert "rendering" not in capsys.readouterr().err
    finally:
        tiny_pipeline.set_progress_bar_config(disable=True)
    tiny_pipeline(photo, tone_path, generator=_gen(0), output="crop", fps=5)
    assert "rendering" not in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, message", [
    ({"num_inference_steps": 0}, "num_inference_steps"),
    ({"guidance_scale": float("nan")}, "guidance_scale"),
    ({"motion_scale": -1.0}, "motion_scale"),
    ({"fps": 0}, "fps"),
    ({"output": "square"}, "output"),
    ({"output_path": "video.avi"}, r"\.mp4"),
    ({"return_frames": False}, "output_path"),
])
def test_bad_arguments_fail_before_any_work(tiny_pipeline, tone_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_pipeline(data.astronaut(), tone_path, **kwargs)


@pytest.mark.parametrize("wave, message", [
    (np.zeros(16000, np.float32), "silent"),
    (np.zeros(100, np.float32) + 0.1, "empty"),
])
def test_silent_or_empty_audio_is_refused(tiny_pipeline, wave, message):
    with pytest.raises(ValueError, match=message):
        tiny_pipeline(data.astronaut(), (wave, 16000))


def test_mismatched_components_are_refused(tiny_pipeline):
    from difftted.motion.keypoints import KeypointStats

    with pytest.raises(ValueError, match="keypoints"):
        DiffTEDPipeline(tiny_pipeline.denoiser, tiny_pipeline.scheduler, tiny_pipeline.renderer,
                        KeypointStats.identity(20), tiny_pipeline.audio_config)


def test_source_offset_motion_is_anchored_at_the_photo(tmp_path, tone_path, make_tiny_pipeline):
    """With ``motion_target="source_offset"`` a zero sample is the photo's own keypoints (an
    untrained or cautious model animates nothing rather than reshaping the person), the offset
    statistics travel through save/load, and a pipeline without them is refused."""
    pipe = make_tiny_pipeline(motion_target="source_offset", prediction_type="sample")
    pipe.set_progress_bar_config(disable=True)
    torch.nn.init.zeros_(pipe.denoiser.proj_out.weight)
    torch.nn.init.zeros_(pipe.denoiser.proj_out.bias)  # predicts x0 = 0 at every step
    out = pipe(data.astronaut(), tone_path, generator=_gen(0), output="crop", fps=10)
    prepared = pipe.frame_renderer.prepare(pipe.crop_person(np.asarray(data.astronaut()))[1])
    np.testing.assert_allclose(out.keypoints, np.broadcast_to(prepared.kp_source[0].numpy(), out.keypoints.shape),
                               atol=1e-6)
    loaded = DiffTEDPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "offsets"))
    np.testing.assert_array_equal(loaded.offset_stats.std, pipe.offset_stats.std)
    assert loaded.motion_coding.target == "source_offset"
    with pytest.raises(ValueError, match="offset_stats"):
        DiffTEDPipeline(pipe.denoiser, pipe.scheduler, pipe.renderer, pipe.keypoint_stats, pipe.audio_config)


def test_relative_motion_starts_at_the_photo_and_is_a_saved_default(tmp_path, tone_path, make_tiny_pipeline):
    """``relative_motion`` shifts the whole sampled motion so its first frame is the photo's
    keypoints, without changing the motion itself; the default travels in pipeline.json."""
    pipe = make_tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    photo = data.astronaut()
    kwargs = dict(output="crop", fps=25, drift_seconds=0.0)  # the motion exactly as sampled
    plain = pipe(photo, tone_path, relative_motion=False, generator=_gen(3), **kwargs)
    rel = pipe(photo, tone_path, relative_motion=True, generator=_gen(3), **kwargs)
    kp_source = pipe.frame_renderer.prepare(pipe.crop_person(np.asarray(photo))[1]).kp_source[0].numpy()
    np.testing.assert_allclose(rel.keypoints[0], kp_source, atol=1e-6)
    assert np.abs(plain.keypoints[0] - kp_source).max() > 1e-3  # an untrained model starts elsewhere
    inside = ((np.abs(plain.keypoints) < 0.99) & (np.abs(rel.keypoints) < 0.99)).all(axis=(0, 2))
    assert inside.sum() >= 5  # keypoints the clamp to [-1, 1] left alone in both
    shift = rel.keypoints[:, inside] - plain.keypoints[:, inside]
    np.testing.assert_allclose(shift, np.broadcast_to(shift[:1], shift.shape), atol=1e-5)
    assert pipe.relative_motion is False
    pipe.relative_motion = True
    try:
        loaded = DiffTEDPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "relative"))
    finally:
        pipe.relative_motion = False
    assert loaded.relative_motion is True
    loaded.set_progress_bar_config(disable=True)
    np.testing.assert_allclose(loaded(photo, tone_path, generator=_gen(3), **kwargs).keypoints, rel.keypoints,
                               atol=1e-6)


def test_render_precision_selects_the_renderers_arithmetic(make_tiny_pipeline, tone_path, monkeypatch):
    """"auto" (the default) is bfloat16 on a CPU with bfloat16 units and float32 without; forcing
    either gives that path's frames whatever the CPU; a bad value is named."""
    pipe = make_tiny_pipeline()
    assert pipe.render_precision == "auto"
    photo = data.astronaut()

    def frames(precision: str | None = None) -> np.ndarray:
        if precision is not None:
            pipe.render_precision = precision
        return pipe(photo, tone_path, generator=_gen(0), output="crop", composition="model").frames

    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": False, "amx_bf16": False})
    auto_plain = frames()
    float32, bfloat16 = frames("float32"), frames("bfloat16")
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"avx512_bf16": True, "amx_bf16": False})
    assert frames("float32").tobytes() == float32.tobytes()  # forced: the CPU does not matter
    auto_units = frames("auto")
    assert auto_plain.tobytes() == float32.tobytes() and auto_units.tobytes() == bfloat16.tobytes()
    assert float32.tobytes() != bfloat16.tobytes()
    # float rounding of the generated pixels only: no uint8 value moves by more than a few steps
    assert np.abs(float32.astype(np.int16) - bfloat16.astype(np.int16)).max() <= 8
    with pytest.raises(ValueError, match=r"render_precision must be one of .*'float16'"):
        pipe.render_precision = "float16"
