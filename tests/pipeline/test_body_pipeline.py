"""A pipeline on body-anchored keypoints (pipeline.json ``"keypoints": "body"``): the photo's
keypoints are its body landmarks in the crop, per-part intensity scales each part's motion, and
detector pipelines (the bundled weights) refuse part scales and keep their files as they were."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from difftted.motion.body_keypoints import PART_GROUPS

HEAD = [i for k in PART_GROUPS["head"] for i in range(5 * k, 5 * k + 5)]
MOUTH = [i for k in PART_GROUPS["mouth"] for i in range(5 * k, 5 * k + 5)]
ARMS = [i for k in PART_GROUPS["arms"] for i in range(5 * k, 5 * k + 5)]


@pytest.fixture(scope="module")
def body_pipeline(body_pipeline_dir):
    from difftted.pipeline import DiffTEDPipeline

    pipe = DiffTEDPipeline.from_pretrained(body_pipeline_dir)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_body_pipeline_loads_and_saves_its_keypoint_source(body_pipeline, tiny_pipeline_dir, tmp_path) -> None:
    assert body_pipeline.keypoint_source == "body"
    assert "keypoints" not in json.loads(tiny_pipeline_dir.joinpath("pipeline.json").read_text())
    assert body_pipeline.renderer.config.keypoint_source == "given"
    again = body_pipeline.save_pretrained(tmp_path / "again")
    assert json.loads((again / "pipeline.json").read_text())["keypoints"] == "body"
    assert json.loads((again / "renderer" / "config.json").read_text())["keypoint_source"] == "given"


def test_photo_keypoints_are_its_body_landmarks_in_the_crop(body_pipeline, astronaut_path, speech_path) -> None:
    """motion_scale 0: every frame's keypoints are the photo's, which are mediapipe's landmarks of
    the photo carried into the crop the renderer sees."""
    from difftted.motion.body_landmarks import image_body_keypoints
    from difftted.pipeline.person import load_image

    out = body_pipeline(astronaut_path, speech_path, motion_scale=0.0, output="crop",
                        generator=torch.Generator().manual_seed(0))
    kp = out.keypoints
    assert np.abs(kp - kp[:1]).max() == 0.0
    photo = load_image(astronaut_path)
    box = out.crop_box
    direct = image_body_keypoints(photo).keypoints[0]  # in [-1, 1] of the whole photo
    h, w = photo.shape[:2]
    pixels = (direct + 1) / 2 * np.array([w - 1, h - 1])  # -> photo pixels -> crop pixels -> 64x64
    in_crop = ((pixels - [box.x0, box.y0]) + 0.5) * (64 / box.size) - 0.5
    expected = 2 * in_crop / 63 - 1
    # the spread guard works in [-1, 1] units, so a transform it touches differs between the two
    # frames of reference; compare the healthy ones (most of them)
    from difftted.motion.body_keypoints import GUARD_MIN_CONDITION, tps_condition

    healthy = np.flatnonzero(tps_condition(direct) > 2 * GUARD_MIN_CONDITION)
    assert len(healthy) >= 6, tps_condition(direct)
    rows = [i for k in healthy for i in range(5 * k, 5 * k + 5)]
    np.testing.assert_allclose(kp[0, rows], expected[rows], atol=2e-3)
    head_y, shoulders_y = kp[0, 0:5, 1].mean(), kp[0, 15:17, 1].mean()
    assert -1 < head_y < shoulders_y  # the head in the crop, above the shoulders


def _sample(pipe, part_scales, seed=0, source=False):
    features = torch.from_numpy(np.random.default_rng(0).normal(size=(20, pipe.audio_config.feature_dim))
                                .astype(np.float32))
    kp_source = torch.from_numpy(np.random.default_rng(1).uniform(-0.3, 0.3, (50, 2)).astype(np.float32))
    kp = pipe.sample_keypoints(features, kp_source, 2, 1.5, torch.Generator().manual_seed(seed), 1.0, 20,
                               progress=False, part_scales=part_scales)
    return ((kp - kp_source).numpy(), kp_source.numpy()) if source else (kp - kp_source).numpy()


def _similarity_lstsq(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """[a, -b, tx; b, a, ty] of the least-squares similarity src [P, 2] -> dst [P, 2] (numpy lstsq)."""
    rows = [[x, -y, 1, 0] for x, y in src] + [[y, x, 0, 1] for x, y in src]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), np.concatenate([dst[:, 0], dst[:, 1]]), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def _carried(src_head, dst_head, src_mouth):
    m = _similarity_lstsq(src_head, dst_head)
    return src_mouth @ m[:, :2].T + m[:, 2]


def _lips(articulation: np.ndarray, carried: np.ndarray, scale: float) -> np.ndarray:
    """The lips' own motion [5, 2] scaled point by point: everything by ``scale`` except a lip
    point's closing along the face's down axis (upper lip -> chin of the carried photo mouth)."""
    from difftted.pipeline.keypoint_source import MOUTH_CLOSING_SCALE

    down = (carried[4] - carried[2]) / np.linalg.norm(carried[4] - carried[2])
    out = scale * articulation
    for k in (2, 3, 4):  # upper lip, lower lip, chin
        along = float(articulation[k] @ down)
        if (k == 2 and along > 0) or (k > 2 and along < 0):
            out[k] = out[k] - (scale - MOUTH_CLOSING_SCALE) * along * down
    return out


def test_part_scales_scale_each_parts_motion_alone(body_pipeline) -> None:
    """Head and arms: their offsets times their scale, nothing else moves. The mouth rides on the
    (scaled) head: the head's least-squares similarity carries the photo's mouth keypoints, and
    the mouth's scale multiplies only the lips' own motion on top (so a mouth scaled apart from
    the head never drifts off the face), all of it but the lips' closing."""
    base, src = _sample(body_pipeline, None, source=True)
    assert 0.3 + 1.7 * np.abs(base).max() < 3.0  # nothing clamped (body limit 3): offsets compare exactly
    np.testing.assert_allclose(_sample(body_pipeline, {"head": 1, "mouth": 1, "arms": 1}), base, atol=1e-6)
    for value in (0.0, 1.7):
        for part, group in (("head", HEAD), ("arms", ARMS)):
            got = _sample(body_pipeline, {part: value})
            rest = [i for i in range(50) if i not in group + (MOUTH if part == "head" else [])]
            np.testing.assert_allclose(got[:, group], value * base[:, group], atol=1e-5)
            np.testing.assert_allclose(got[:, rest], base[:, rest], atol=1e-6)
        head5, mouth5 = HEAD[:5], MOUTH
        for scales in ({"mouth": value}, {"head": value}, {"head": value, "mouth": 2.5}):
            got = _sample(body_pipeline, scales)
            h, m = scales.get("head", 1.0), scales.get("mouth", 1.0)
            for t in range(len(base)):
                raw = _carried(src[head5], src[head5] + base[t, head5], src[mouth5])
                scaled = _carried(src[head5], src[head5] + h * base[t, head5], src[mouth5])
                articulation = src[mouth5] + base[t, mouth5] - raw
                np.testing.assert_allclose(src[mouth5] + got[t, mouth5], scaled + _lips(articulation, raw, m),
                                           atol=1e-5)
    head_only = _sample(body_pipeline, {"head": 0.0})
    assert np.abs(head_only[:, MOUTH] - base[:, MOUTH]).max() > 1e-3  # a still head takes the mouth with it
    assert np.abs(base[:, ARMS]).max() > 1e-3  # the test is not vacuous


@pytest.mark.parametrize("turn", [0.0, 90.0])
def test_mouth_scale_amplifies_opening_and_not_closing(turn) -> None:
    """Known lip motions, face upright and turned 90 degrees: a lower lip or chin moving down
    (opening) and an upper lip moving up take the mouth scale, the same motions reversed
    (closing, which at scale 3 pushed the chin into the face) and the corners' sideways motion
    take the closing scale and the mouth scale."""
    from difftted.pipeline.keypoint_source import MOUTH_CLOSING_SCALE, mouth_articulation

    c, s = np.cos(np.radians(turn)), np.sin(np.radians(turn))
    rot = np.array([[c, -s], [s, c]])
    mouth = np.array([[-0.07, 0.12], [0.07, 0.12], [0.0, 0.08], [0.0, 0.16], [0.0, 0.27]]) @ rot.T
    down, side = rot @ [0.0, 1.0], rot @ [1.0, 0.0]
    cases = {  # point -> (motion, the scale it must take)
        "lower lip opens": (3, 0.01 * down, 3.0), "lower lip closes": (3, -0.01 * down, MOUTH_CLOSING_SCALE),
        "chin closes": (4, -0.02 * down, MOUTH_CLOSING_SCALE), "upper lip opens": (2, -0.01 * down, 3.0),
        "upper lip closes": (2, 0.01 * down, MOUTH_CLOSING_SCALE), "corner narrows": (0, 0.01 * side, 3.0),
        "lower lip slides": (3, 0.01 * side, 3.0),
    }
    for name, (point, motion, expected) in cases.items():
        art = np.zeros((1, 5, 2))
        art[0, point] = motion
        got = mouth_articulation(torch.from_numpy(art), torch.from_numpy(mouth[None]), 3.0).numpy()
        want = np.zeros_like(art)
        want[0, point] = expected * motion
        np.testing.assert_allclose(got, want, atol=1e-12, err_msg=name)
    assert MOUTH_CLOSING_SCALE != 3.0  # the cases tell the two scales apart
    art = torch.randn(4, 5, 2, dtype=torch.float64)
    torch.testing.assert_close(mouth_articulation(art, torch.from_numpy(mouth[None]).expand(4, 5, 2),
                                                  MOUTH_CLOSING_SCALE), MOUTH_CLOSING_SCALE * art)


def test_detector_pipeline_refuses_part_scales_naming_them(tiny_pipeline, astronaut_path, speech_path) -> None:
    assert tiny_pipeline.keypoint_source == "detector"
    with pytest.raises(ValueError, match=r"part_scales\['arms'\]"):
        tiny_pipeline(astronaut_path, speech_path, part_scales={"arms": 1.5})
    with pytest.raises(ValueError, match="unknown parts"):
        tiny_pipeline(astronaut_path, speech_path, part_scales={"legs": 1.0})
    np.testing.assert_array_equal(_sample(tiny_pipeline, {"head": 1.0, "arms": 1}), _sample(tiny_pipeline, None))


@pytest.mark.parametrize("scales", [{"head": -0.5}, {"mouth": float("nan")}, {"arms": True}])
def test_bad_part_scales_are_named(body_pipeline, astronaut_path, speech_path, scales) -> None:
    part = next(iter(scales))
    with pytest.raises(ValueError, match=rf"part_scales\['{part}'\]"):
        body_pipeline(astronaut_path, speech_path, part_scales=scales)


def test_weights_part_scales_are_defaults_a_call_overrides_part_by_part(body_pipeline_dir, tmp_path) -> None:
    """pipeline.json's ``sampling.part_scales``: loaded and saved; a call without ``part_scales``
    uses them, a call naming a part overrides that part only."""
    from difftted.pipeline import DiffTEDPipeline

    folder = tmp_path / "scaled"
    plain = DiffTEDPipeline.from_pretrained(body_pipeline_dir)
    assert plain.part_scales == {}
    plain.part_scales = {"mouth": 1.8, "head": 0.5}
    plain.save_pretrained(folder)
    assert json.loads((folder / "pipeline.json").read_text())["sampling"]["part_scales"] == {"mouth": 1.8, "head": 0.5}
    scaled = DiffTEDPipeline.from_pretrained(folder)
    assert scaled.part_scales == {"mouth": 1.8, "head": 0.5}
    reference = DiffTEDPipeline.from_pretrained(body_pipeline_dir)
    np.testing.assert_allclose(_sample(scaled, None), _sample(reference, {"mouth": 1.8, "head": 0.5}), atol=1e-6)
    np.testing.assert_allclose(_sample(scaled, {"mouth": 1.0}), _sample(reference, {"head": 0.5}), atol=1e-6)
    assert np.abs(_sample(scaled, None)[:, MOUTH] - _sample(reference, None)[:, MOUTH]).max() > 1e-4


def test_detector_weights_refuse_default_part_scales(make_tiny_pipeline) -> None:
    from difftted.pipeline import DiffTEDPipeline

    pipe = make_tiny_pipeline()
    parts = dict(denoiser=pipe.denoiser, scheduler=pipe.scheduler, renderer=pipe.renderer,
                 keypoint_stats=pipe.keypoint_stats, audio_config=pipe.audio_config)
    with pytest.raises(ValueError, match=r"part_scales\['arms'\]"):
        DiffTEDPipeline(**parts, part_scales={"arms": 1.5})
    assert DiffTEDPipeline(**parts, part_scales={"arms": 1}).part_scales == {"arms": 1.0}


def test_keypoint_source_must_fit_the_renderer(make_tiny_pipeline) -> None:
    from difftted.pipeline import DiffTEDPipeline

    pipe = make_tiny_pipeline()
    parts = dict(denoiser=pipe.denoiser, scheduler=pipe.scheduler, keypoint_stats=pipe.keypoint_stats,
                 audio_config=pipe.audio_config)
    with pytest.raises(ValueError, match="keypoint_source"):
        DiffTEDPipeline(renderer=pipe.renderer, keypoint_source="mediapipe", **parts)
    given = pipe.renderer
    given.config = given.config.replace(keypoint_source="given")
    with pytest.raises(ValueError, match="given keypoints"):
        DiffTEDPipeline(renderer=given, **parts)
    assert DiffTEDPipeline(renderer=given, keypoint_source="body", **parts).keypoint_source == "body"


def test_app_animate_drives_a_body_renderer_with_body_keypoints(body_pipeline, astronaut_path, shared_data,
                                                                 tmp_path, monkeypatch) -> None:
    """The app's animate tab with body-keypoint weights: the renderer gets mediapipe body keypoints
    of the photo and of every driving frame (its detector was never trained and must not run)."""
    from PIL import Image

    from difftted.interfaces import ui
    from difftted.pipeline.keypoint_source import body_video_keypoints
    from tps.video import read_video, video_info, write_video

    source = shared_data / "talking" / "oliver_halfbody.mp4"
    frames, fps = read_video(source, max_frames=15)
    driving = write_video(tmp_path / "driving.mp4", [frames], fps)
    kp = body_video_keypoints(driving, body_pipeline.resolution)
    assert kp.shape == (15, 50, 2) and np.isfinite(kp).all()
    assert np.abs(kp[:, :5]).max() < 1.0  # the head sits inside the TED square the first frame places

    def no_detector(*args, **kwargs):
        raise AssertionError("the untrained detector ran")
    monkeypatch.setattr(body_pipeline.renderer, "detect", no_detector)
    out = ui.animate(body_pipeline, np.asarray(Image.open(astronaut_path).convert("RGB")), driving, tmp_path,
                     progress=False)
    assert video_info(out).num_frames == 15


def test_body_pipeline_renders_with_part_masks_and_can_turn_them_off(body_pipeline) -> None:
    """Body keypoints draw their parts' capsules by default; the switch rebuilds the renderer and
    survives a change of render precision; a bad value is named."""
    from difftted.motion.body_keypoints import PART_CAPSULES

    assert body_pipeline.part_masks is True
    layout = body_pipeline.frame_renderer.parts
    assert layout is not None and len(layout.parts) == len(PART_CAPSULES)
    try:
        body_pipeline.part_masks = False
        assert body_pipeline.frame_renderer.parts is None
        body_pipeline.part_masks = True
        body_pipeline.render_precision = "float32"
        assert body_pipeline.frame_renderer.parts is not None
        with pytest.raises(TypeError, match="part_masks must be a bool"):
            body_pipeline.part_masks = 1
    finally:
        body_pipeline.part_masks = True


def test_part_masks_get_the_person_mask_of_the_crop(body_pipeline, astronaut_path) -> None:
    """With part masks the prepared source carries the photo's person mask cut to the crop, one
    channel per part (a part owns only the person's pixels; a hand only those of its own colours
    and what it holds, its extent; the other parts none of the hands' pixels,
    `difftted.pipeline.hand_masks`); without, none is computed."""
    from difftted.pipeline.person import load_image, person_mask

    photo = load_image(astronaut_path)
    box, crop = body_pipeline.crop_person(photo)
    prepared = body_pipeline.prepare_source(photo, box, crop)
    expected = torch.from_numpy(person_mask(photo)[box.y0:box.y0 + box.size, box.x0:box.x0 + box.size])
    resized = torch.nn.functional.interpolate(expected[None, None], size=crop.shape[-2:], mode="bilinear")
    from difftted.motion.body_keypoints import PART_CAPSULES

    hands = [i for i, capsule in enumerate(PART_CAPSULES) if capsule[0].endswith("_hand")]
    assert prepared.foreground.shape == (1, len(PART_CAPSULES), *crop.shape[-2:]) and len(hands) == 2
    assert prepared.extent.shape == prepared.foreground.shape
    hand_pixels = (prepared.foreground[0, hands].sum(0) + prepared.extent[0, hands].sum(0)) > 0
    for p in range(len(PART_CAPSULES)):
        if p in hands:
            assert bool((prepared.foreground[0, p] <= torch.maximum(resized[0, 0], prepared.extent[0, p]) + 1e-6).all())
        else:
            assert bool((prepared.foreground[0, p] <= resized[0, 0] + 1e-6).all())
            torch.testing.assert_close(prepared.foreground[0, p][~hand_pixels], resized[0, 0][~hand_pixels])
    assert 0.2 < float(resized.mean()) < 0.9  # a person, and some background
    try:
        body_pipeline.part_masks = False
        plain = body_pipeline.prepare_source(photo, box, crop)
        assert plain.foreground is None and plain.extent is None
    finally:
        body_pipeline.part_masks = True


def test_detector_pipeline_has_no_part_masks(tiny_pipeline) -> None:
    assert tiny_pipeline.part_masks is False and tiny_pipeline.frame_renderer.parts is None
    with pytest.raises(ValueError, match="part_masks needs body keypoints"):
        tiny_pipeline.part_masks = True
    assert tiny_pipeline.frame_renderer.parts is None


def test_mouth_interior_is_on_for_body_keypoints_and_touches_only_the_mouth(body_pipeline, tiny_pipeline,
                                                                            astronaut_path, speech_path) -> None:
    """Default (None) paints the mouth's interior for body keypoints: the same seed with and
    without it gives frames that differ only around the mouth, and only in frames whose sampled
    lips open past the photo's. Detector pipelines refuse ``mouth_interior=True``, naming it."""
    from PIL import Image

    from difftted.pipeline.mouth import MouthInterior

    run = lambda **kw: body_pipeline(astronaut_path, speech_path, generator=torch.Generator().manual_seed(0),  # noqa: E731
                                     output="crop", progress=False, **kw)
    with_mouth, without = run(), run(mouth_interior=False)
    box = with_mouth.crop_box
    kp = torch.from_numpy(with_mouth.keypoints)
    np.testing.assert_array_equal(kp.numpy(), without.keypoints)
    photo = np.asarray(Image.open(astronaut_path).convert("RGB"))
    crop = torch.from_numpy(photo[box.y0:box.y0 + box.size, box.x0:box.x0 + box.size].copy()).permute(2, 0, 1)[None] / 255.0
    kp_source = body_pipeline.source_keypoints(photo, box).float().reshape(50, 2)
    opening = MouthInterior(crop, kp_source).opening(kp)
    diff = np.abs(with_mouth.frames.astype(int) - without.frames.astype(int)).max(axis=(1, 2, 3))
    assert (opening > 1).any() and (diff[(opening > 1).numpy()] > 10).all()
    assert (diff[(opening < 0).numpy()] == 0).all()
    # nothing outside the lens's reach: half the corners' distance and the seam's depth across
    # plus half the opening, around the corners' midpoint
    painter = MouthInterior(crop, kp_source)
    px = (kp[:, MOUTH].numpy() + 1) / 2 * (box.size - 1)  # corners, upper lip, lower lip, chin
    changed = np.abs(with_mouth.frames.astype(int) - without.frames.astype(int)).max(axis=-1) > 0
    for t in np.nonzero(diff)[0]:
        ys, xs = np.nonzero(changed[t])
        centre = (px[t, 0] + px[t, 1]) / 2
        seam = px[t, 2] + painter.seam * (px[t, 3] - px[t, 2])
        reach = np.linalg.norm(px[t, 1] - px[t, 0]) / 2 + np.linalg.norm(seam - centre) + float(opening[t]) / 2 + 2
        assert np.hypot(xs - centre[0], ys - centre[1]).max() <= reach, t
    with pytest.raises(ValueError, match="mouth_interior"):
        tiny_pipeline(astronaut_path, speech_path, mouth_interior=True)
    with pytest.raises(ValueError, match="mouth_interior"):
        body_pipeline(astronaut_path, speech_path, mouth_interior="yes")
