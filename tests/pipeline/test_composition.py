"""Composition at the photo's resolution, the still background, and no drift over long speech."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from difftted.pipeline.composition import FrameComposer
from difftted.motion.keypoints import remove_drift
from difftted.pipeline.person import CropBox
from tps.render import RenderedChunk
from tps.transform import make_coordinate_grid


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def chunk_with_flow(flow: torch.Tensor, model_size: int = 64, generated: float = 0.5) -> RenderedChunk:
    """A rendered chunk whose maps are given: flow ``[b, h, w, 2]``, visible everywhere but the
    generated pixels set to a flat grey (so any place that shows them is easy to find)."""
    b = flow.shape[0]
    grey = torch.full((b, 3, model_size, model_size), generated)
    return RenderedChunk(frames=grey, generated=grey, deformation=flow, occlusion=torch.ones(b, 1, model_size, model_size))


def test_zero_motion_gives_the_photo_back_exactly(tiny_pipeline, tone_path):
    photo = data.astronaut()
    for output in ("full", "crop"):
        still = tiny_pipeline(photo, tone_path, generator=_gen(0), motion_scale=0.0, fps=5, output=output)
        if output == "full":
            np.testing.assert_array_equal(still.frames, np.broadcast_to(photo, still.frames.shape))
        else:  # the crop at its own size, not the model's 64x64
            box = still.crop_box
            side = box.size - box.size % 2
            expected = photo[box.y0 : box.y0 + side, box.x0 : box.x0 + side]
            assert still.frames.shape[1:3] == (side, side) and side > 64
            np.testing.assert_array_equal(still.frames, np.broadcast_to(expected, still.frames.shape))


def test_native_composition_keeps_the_photo_detail_that_the_model_path_loses(tiny_pipeline, tone_path):
    photo = data.astronaut()
    kwargs = dict(generator=_gen(0), fps=5, relative_motion=True)
    native = tiny_pipeline(photo, tone_path, **kwargs)
    model = tiny_pipeline(photo, tone_path, composition="model", **kwargs).frames
    box = native.crop_box
    native = native.frames

    def detail(frame: np.ndarray) -> float:  # variance of a Laplacian inside the crop: sharpness
        g = frame[box.y0 : box.y0 + box.size, box.x0 : box.x0 + box.size].astype(np.float32).mean(-1)
        return float((4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]).var())

    # The first frame is the photo's pose: native gives the photo's own detail, the model path a
    # 64-pixel render scaled up.
    assert detail(native[0]) == pytest.approx(detail(photo), rel=1e-6)
    assert detail(native[0]) > 3 * detail(model[0])
    assert np.abs(np.diff(native.astype(np.int16), axis=0)).max() > 0  # it still moves


def test_background_far_from_the_person_keeps_its_own_pixels():
    photo = np.zeros((120, 160, 3), dtype=np.uint8)
    photo[..., 0] = np.arange(160, dtype=np.uint8)[None, :]  # a painted background ramp
    photo[100, 10] = (7, 200, 9)  # one painted background pixel, far from the person
    box = CropBox(0, 0, 120)
    person = np.zeros((120, 160), dtype=np.float32)
    person[40:80, 50:70] = 1.0  # the person, in the middle of the crop
    flow = make_coordinate_grid(16, 16)[None].repeat(2, 1, 1, 1)
    flow[..., 0] += 0.2  # the whole crop's flow moves: without the mask everything would shift
    composer = FrameComposer(photo, box, "native", person=person)
    frames = composer(chunk_with_flow(flow))
    assert (frames[:, 100, 10] == (7, 200, 9)).all()
    np.testing.assert_array_equal(frames[:, :, 130:], np.broadcast_to(photo[:, 130:], frames[:, :, 130:].shape))
    assert np.abs(frames[:, 60, 60].astype(int) - photo[60, 60]).max() > 0  # the person moved
    unmasked = FrameComposer(photo, box, "native")(chunk_with_flow(flow))
    assert (unmasked[:, 100, 10] != (7, 200, 9)).any()  # the mask is what kept it


@pytest.mark.parametrize("interpolation", ["spline", "bicubic"])
def test_both_interpolations_give_the_rest_pose_back_and_differ_once_moved(interpolation):
    photo = data.astronaut()[::4, ::4].copy()  # 128 x 128
    box = CropBox(0, 0, 128)
    rest = make_coordinate_grid(16, 16)[None]
    composer = FrameComposer(photo, box, "native", rest=chunk_with_flow(rest), interpolation=interpolation)
    assert (composer.upsampled is not None) == (interpolation == "spline")
    moved = rest.repeat(2, 1, 1, 1)
    moved[1, ..., 0] += 0.5 * 2 / 127  # frame 1: half a pixel to the side
    frames = composer(chunk_with_flow(moved))
    np.testing.assert_array_equal(frames[0], photo)
    assert not np.array_equal(frames[1], photo)
    other = "bicubic" if interpolation == "spline" else "spline"
    elsewhere = FrameComposer(photo, box, "native", rest=chunk_with_flow(rest), interpolation=other)(chunk_with_flow(moved))
    assert not np.array_equal(frames[1], elsewhere[1])  # the argument reaches the warp


def test_composer_checks_its_arguments():
    photo = np.zeros((64, 64, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="composition"):
        FrameComposer(photo, CropBox(0, 0, 64), "bicubic")
    with pytest.raises(ValueError, match="interpolation"):
        FrameComposer(photo, CropBox(0, 0, 64), interpolation="lanczos")
    with pytest.raises(ValueError, match="person mask"):
        FrameComposer(photo, CropBox(0, 0, 64), person=np.zeros((10, 10), dtype=np.float32))


def test_remove_drift_flattens_a_random_walk_and_keeps_fast_motion():
    gen = torch.Generator().manual_seed(0)
    fps, frames = 25.0, 25 * 300  # five minutes
    walk = torch.randn(frames, 6, 2, generator=gen).cumsum(0) * 0.002  # drifts without bound
    t = torch.arange(frames) / fps
    gesture = 0.02 * torch.sin(2 * np.pi * 1.5 * t)[:, None, None].expand(frames, 6, 2)
    offsets = walk - walk[:1] + gesture
    clean = remove_drift(offsets, fps, 4.0)
    per_window = clean.norm(dim=-1).mean(-1).reshape(-1, 250).mean(-1)  # per 10 s
    raw = offsets.norm(dim=-1).mean(-1).reshape(-1, 250).mean(-1)
    assert raw[-1] > 5 * raw[0]  # the input does drift
    assert per_window.max() < 0.05 and per_window[-5:].mean() < 2 * per_window[:5].mean()
    assert torch.equal(clean[0], torch.zeros(6, 2))  # still starts at the photo
    fast_in = torch.diff(offsets, dim=0).abs().mean()
    fast_out = torch.diff(clean, dim=0).abs().mean()
    assert abs(float(fast_out / fast_in) - 1) < 0.1  # frame-to-frame motion is kept
    with pytest.raises(ValueError, match="seconds"):
        remove_drift(offsets, fps, 0.0)


def test_long_sampled_motion_stays_within_bounds(make_tiny_pipeline):
    """Several hundred windows of a tiny seeded denoiser: the motion, after the pipeline's drift
    removal, stays as far from the photo at the end as at the start."""
    pipe = make_tiny_pipeline(seed=1)
    pipe.set_progress_bar_config(disable=True)
    num_frames = 16 * 320  # max_frames 16: some 400 overlapping windows
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(num_frames, pipe.audio_config.feature_dim, generator=gen)
    kp_source = torch.rand(pipe.keypoint_stats.num_keypoints, 2, generator=gen) * 1.2 - 0.6
    kp = pipe.sample_keypoints(features, kp_source, 1, 1.5, _gen(0), 1.0, num_frames, False, True,
                               drift_seconds=pipe.drift_seconds)
    assert torch.isfinite(kp).all() and torch.equal(kp[0], kp_source)
    per_window = (kp - kp_source).norm(dim=-1).mean(-1).reshape(-1, 256).mean(-1)  # per 10.24 s
    assert per_window[-3:].mean() < 1.5 * per_window[1:4].mean()
    assert per_window.max() < 0.5


def test_auto_interpolation_is_the_spline_for_small_crops_and_bicubic_for_large_ones():
    """"auto" (the default) keeps the spline's cost to crops up to SPLINE_MAX_SIDE pixels."""
    from difftted.pipeline.composition import SPLINE_MAX_SIDE, resolve_interpolation

    assert resolve_interpolation("auto", SPLINE_MAX_SIDE) == "spline"
    assert resolve_interpolation("auto", SPLINE_MAX_SIDE + 1) == "bicubic"
    assert resolve_interpolation("bicubic", 64) == "bicubic" and resolve_interpolation("spline", 4000) == "spline"
    small = FrameComposer(np.zeros((64, 64, 3), dtype=np.uint8), CropBox(0, 0, 64))
    assert small.interpolation == "spline" and small.upsampled is not None
    side = SPLINE_MAX_SIDE + 16
    large = FrameComposer(np.zeros((side, side, 3), dtype=np.uint8), CropBox(0, 0, side))
    assert large.interpolation == "bicubic" and large.upsampled is None
    with pytest.raises(ValueError, match="interpolation"):
        resolve_interpolation("lanczos", 64)


@pytest.mark.parametrize("crop_only", [False, True], ids=["full-photo", "crop"])
def test_a_large_crop_is_composed_a_few_frames_at_a_time_with_the_same_frames(monkeypatch, crop_only):
    """Above `COMPOSE_PIXELS_PER_CALL` crop pixels a chunk is composed in slices (bounded memory
    for large photos); every step is per frame, so the frames are those of one call."""
    import difftted.pipeline.composition as composition

    photo = data.astronaut()[::4, ::4].copy()  # 128 x 128
    box = CropBox(0, 0, 128)
    person = np.zeros((128, 128), dtype=np.float32)
    person[30:100, 40:90] = 1.0
    flow = make_coordinate_grid(16, 16)[None].repeat(5, 1, 1, 1)
    flow += 0.03 * torch.randn(flow.shape, generator=_gen(0))  # every frame its own motion
    chunk = chunk_with_flow(flow)
    chunk.occlusion[1:3, :, :20] = 0.3  # some frames show generated pixels, others none
    whole = FrameComposer(photo, box, "native", person=person, crop_only=crop_only)(chunk)
    calls = []
    original = composition.compose
    monkeypatch.setattr(composition, "compose", lambda *a, **k: calls.append(len(a[1])) or original(*a, **k))
    monkeypatch.setattr(composition, "COMPOSE_PIXELS_PER_CALL", 2 * 128 * 128)
    sliced = FrameComposer(photo, box, "native", person=person, crop_only=crop_only)(chunk)
    assert calls == [2, 2, 1]
    assert sliced.shape == whole.shape and sliced.shape[0] == 5
    np.testing.assert_array_equal(sliced, whole)
