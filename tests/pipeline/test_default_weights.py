"""The bundled demo weights (weights/): they load by default and animate the example photo.

Slow tier: the real weights, the real example photo and speech. Skips where weights/ holds no
pipeline (e.g. a checkout that removed them).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from difftted.pipeline import weights as weights_module

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def default_pipeline():
    folder = weights_module.DEFAULT_WEIGHTS_DIR
    if not (folder / "pipeline.json").is_file():
        pytest.skip(f"no bundled pipeline in {folder}")
    from difftted import DiffTEDPipeline

    pipe = DiffTEDPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_default_weights_animate_the_example_photo(default_pipeline, tmp_path: Path) -> None:
    import soundfile as sf

    from difftted.pipeline.keypoint_source import keypoint_limit
    from difftted.pipeline.person import load_image

    wave, sr = sf.read(REPO / "examples" / "speech.wav", dtype="float32")
    speech = (wave[: int(1.6 * sr)], sr)
    out = default_pipeline(REPO / "examples" / "astronaut.png", speech, num_inference_steps=10,
                           generator=torch.Generator().manual_seed(0), output="crop",
                           output_path=tmp_path / "talk.mp4", return_frames=True)
    frames, kp = out.frames, out.keypoints
    assert out.video_path is not None and out.video_path.stat().st_size > 0
    assert frames.shape[0] == kp.shape[0] == round(1.6 * out.fps)
    side = out.crop_box.size - out.crop_box.size % 2  # the crop at its own size (native composition)
    assert frames.shape[1:] == (side, side, 3) and side > default_pipeline.resolution[0]
    # the first frame is the photo's own pixels: the motion starts at the photo (relative motion)
    crop = np.asarray(load_image(REPO / "examples" / "astronaut.png"))[
        out.crop_box.y0 : out.crop_box.y0 + side, out.crop_box.x0 : out.crop_box.x0 + side]
    assert np.abs(frames[0].astype(int) - crop).max() <= 1
    # The photo moves: driving keypoints and frames change over time, but stay near the photo.
    assert np.abs(np.diff(kp, axis=0)).mean() > 1e-4
    assert np.abs(frames[-1].astype(float) - frames[0].astype(float)).mean() > 0.5
    limit = keypoint_limit(default_pipeline.keypoint_source)  # body keypoints may leave the crop (a hand below it)
    assert np.abs(kp).max() <= limit
    # The weights' defaults (pipeline.json): motion relative to its first frame, which is the
    # photo's own keypoints, and motion that stays near the photo (offsets, not a new layout).
    assert default_pipeline.relative_motion and default_pipeline.motion_coding.target == "source_offset"
    photo = load_image(REPO / "examples" / "astronaut.png")
    box, crop_tensor = default_pipeline.crop_person(photo)
    given = default_pipeline.source_keypoints(photo, box)
    source = default_pipeline.frame_renderer.prepare(crop_tensor, given).kp_source[0].numpy()
    np.testing.assert_allclose(kp[0], source, atol=1e-5)
    assert np.linalg.norm(kp - source, axis=-1).mean() < 0.03  # 0.011 measured; 0.041 without relative motion


def test_bundled_v2_weights_are_a_body_pipeline_that_moves_the_hands() -> None:
    """weights/v2 (float16 storage): loads as float32 modules on body keypoints with its sampling
    defaults, starts at the photo and moves the hand keypoints more than the torso's."""
    folder = REPO / "weights" / "v2"
    if not (folder / "pipeline.json").is_file():
        pytest.skip(f"no bundled v2 pipeline in {folder}")
    from difftted import DiffTEDPipeline
    from difftted.motion.body_keypoints import TRANSFORMS

    pipe = DiffTEDPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.keypoint_source == "body" and pipe.renderer.config.keypoint_source == "given"
    assert pipe.part_masks and set(pipe.part_scales) <= {"head", "mouth", "arms"}
    assert {p.dtype for m in (pipe.denoiser, pipe.renderer) for p in m.parameters()} == {torch.float32}
    out = pipe(REPO / "examples" / "astronaut.png", REPO / "examples" / "speech.wav", num_inference_steps=10,
               generator=torch.Generator().manual_seed(0), output="crop", return_frames=True)
    kp = out.keypoints
    assert np.isfinite(kp).all() and np.isfinite(out.frames).all()
    speed = np.linalg.norm(np.diff(kp, axis=0), axis=-1).reshape(len(kp) - 1, len(TRANSFORMS), 5).mean(axis=(0, 2))
    hands = speed[[TRANSFORMS.index("right_hand"), TRANSFORMS.index("left_hand")]].mean()
    assert hands > 2 * speed[TRANSFORMS.index("torso")]
    assert np.abs(out.frames[-1].astype(float) - out.frames[0].astype(float)).mean() > 0.5
