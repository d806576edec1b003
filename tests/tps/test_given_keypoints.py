"""Keypoints given per frame: they follow the store's crop, resize and the augmentation's flips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tps.data import CropBox, FramePairDataset, FrameStore, augment_pair, augment_pair_keypoints, find_clips
from tps.given_keypoints import KeypointFiles, check_permutation, flip_keypoints, keypoint_file, map_keypoints
from tps.video import write_video

COLOURS = ((255, 0, 0), (0, 255, 0))  # keypoint 0 on a red dot, keypoint 1 on a green one


def _dot_frames(num: int, h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Frames with a red and a green dot (radius 4) at random places, and the dots' keypoints
    ``[num, 2, 2]`` in [-1, 1] (align_corners=True) of these frames."""
    frames = np.zeros((num, h, w, 3), np.uint8)
    kp = np.zeros((num, 2, 2), np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    for t in range(num):
        for k, colour in enumerate(COLOURS):
            cx, cy = rng.uniform(0.3 * w, 0.7 * w), rng.uniform(0.3 * h, 0.7 * h)
            frames[t][(xx - cx) ** 2 + (yy - cy) ** 2 <= 16] = colour
            kp[t, k] = (2 * cx / (w - 1) - 1, 2 * cy / (h - 1) - 1)
    return frames, kp


def _centroid(image: torch.Tensor, channel: int) -> np.ndarray:
    """Intensity-weighted centroid (col, row) of one colour channel of ``[3, H, W]``."""
    weight = image[channel].clamp(min=0).numpy() - image[1 - channel].clamp(min=0).numpy()
    weight = np.clip(weight, 0, None)
    rows, cols = np.mgrid[0 : weight.shape[0], 0 : weight.shape[1]]
    return np.array([(cols * weight).sum(), (rows * weight).sum()]) / weight.sum()


def _to_pixels(kp: torch.Tensor, h: int, w: int) -> np.ndarray:
    return ((kp.numpy() + 1) / 2) * np.array([w - 1, h - 1])


def _frame_clip(tmp_path, frames: np.ndarray, kp: np.ndarray):
    folder = tmp_path / "clips" / "dots"
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:04d}.png")
    np.save(keypoint_file(folder), kp)
    return find_clips(tmp_path / "clips")


def test_keypoints_land_on_their_dots_after_crop_resize_and_flips(tmp_path) -> None:
    torch.manual_seed(0)
    frames, kp = _dot_frames(6, 120, 160, np.random.default_rng(0))
    clips = _frame_clip(tmp_path, frames, kp)
    store = FrameStore((64, 64), CropBox(10, 110, 20, 140))  # 100x120 crop -> 64x64, anisotropic
    files = KeypointFiles(store, num_kp=2, flip_permutation=None)
    # 40 items: time flips (p 0.5) and horizontal flips (p 0.25) both occur
    dataset = FramePairDataset(clips, store, num_repeats=40, augment=True, jitter=0.0, keypoints=files)
    for i in range(len(dataset)):
        item = dataset[i]
        for frame, points in ((item["source"], item["kp_source"]), (item["driving"], item["kp_driving"])):
            for k in range(2):
                error = np.abs(_centroid(frame, k) - _to_pixels(points[k], 64, 64)).max()
                assert error < 0.35, (i, k, error)  # pixels of the 64x64 training frame


def test_video_resized_by_ffmpeg_keeps_keypoints_on_the_dot(tmp_path) -> None:
    rng = np.random.default_rng(1)
    frames, kp = _dot_frames(5, 144, 176, rng)
    grey = frames.max(axis=-1, keepdims=True).repeat(3, -1)  # white dots: no chroma blur in yuv420
    video = write_video(tmp_path / "v" / "dots.mp4", grey, 10.0)
    np.save(keypoint_file(video), kp)
    clip = find_clips(video)[0]
    store = FrameStore((64, 64))
    files = KeypointFiles(store, num_kp=2)
    got = files.pair(clip, [0, 3])
    for j, t in enumerate((0, 3)):
        image = torch.from_numpy(store.frames(clip, [t])[0]).permute(2, 0, 1).float() / 255
        weight = image[0].numpy()
        # the two dots: split the image's bright pixels by the nearer mapped keypoint
        pix = _to_pixels(got[j], 64, 64)
        rows, cols = np.mgrid[0:64, 0:64]
        near0 = (cols - pix[0, 0]) ** 2 + (rows - pix[0, 1]) ** 2 < (cols - pix[1, 0]) ** 2 + (rows - pix[1, 1]) ** 2
        for k, mask in enumerate((near0, ~near0)):
            w = np.clip(weight - 0.1, 0, None) * mask
            centre = np.array([(cols * w).sum(), (rows * w).sum()]) / w.sum()
            assert np.abs(centre - pix[k]).max() < 0.5


def test_map_keypoints_identity_corners_and_flip() -> None:
    kp = np.array([[-1.0, -1.0], [1.0, 1.0], [0.2, -0.3]], np.float32)
    np.testing.assert_allclose(map_keypoints(kp, (64, 80), None, None), kp, atol=1e-6)
    # a crop of the right half of a 3-pixel-wide frame, no resize: column 1 -> column 0
    out = map_keypoints(np.array([[0.0, 0.0]]), (3, 3), CropBox(0, 3, 1, 3), None)
    np.testing.assert_allclose(out, [[-1.0, 0.0]], atol=1e-6)
    flipped = flip_keypoints(torch.tensor([[[0.5, 0.1], [-0.2, 0.3]]]), [1, 0])
    assert torch.equal(flipped, torch.tensor([[[0.2, 0.3], [-0.5, 0.1]]]))
    with pytest.raises(ValueError, match="own inverse"):
        check_permutation([1, 2, 0], 3)
    with pytest.raises(ValueError, match="permutation"):
        check_permutation([0, 0], 2)


def test_augmentation_with_keypoints_draws_like_augment_pair() -> None:
    a, b = torch.rand(3, 8, 8), torch.rand(3, 8, 8)
    for seed in range(6):
        plain = augment_pair(a, b, 0.1, torch.Generator().manual_seed(seed))
        with_kp = augment_pair_keypoints(a, b, torch.zeros(2, 4, 2), 0.1, torch.Generator().manual_seed(seed))
        assert torch.equal(plain[0], with_kp[0]) and torch.equal(plain[1], with_kp[1])


def test_missing_or_bad_keypoint_files_are_errors(tmp_path) -> None:
    frames, kp = _dot_frames(4, 32, 32, np.random.default_rng(2))
    clips = _frame_clip(tmp_path, frames, kp)
    store = FrameStore((32, 32))
    with pytest.raises(ValueError, match="frames"):
        np.save(keypoint_file(clips[0].path), kp[:3])
        KeypointFiles(store, 2).pair(clips[0], [0])
    np.save(keypoint_file(clips[0].path), np.full_like(kp, np.nan))
    with pytest.raises(ValueError, match="NaN"):
        KeypointFiles(store, 2).pair(clips[0], [0])
    keypoint_file(clips[0].path).unlink()
    with pytest.raises(ValueError, match="missing"):
        FramePairDataset(clips, store, keypoints=KeypointFiles(store, 2))


@pytest.mark.parametrize("permutation", [None, (1, 0)])
def test_horizontal_flip_mirrors_x_and_swaps_only_by_the_permutation(permutation) -> None:
    """Keypoint k on dot k; after a horizontal flip it sits on the mirrored dot ``permutation[k]``
    (k itself without a permutation), after a time flip on its dot of the other frame."""
    frames, kp = _dot_frames(2, 40, 48, np.random.default_rng(3))
    source, driving = (torch.from_numpy(f).permute(2, 0, 1).float() / 255 for f in frames)
    pair = torch.from_numpy(kp)
    seen = set()
    for seed in range(12):
        draws = torch.rand(6, generator=torch.Generator().manual_seed(seed))
        kind = "time" if draws[0] < 0.5 else "mirror" if draws[1] < 0.5 else "none"
        seen.add(kind)
        s, d, out = augment_pair_keypoints(source, driving, pair, 0.0, torch.Generator().manual_seed(seed),
                                           flip_permutation=permutation)
        for frame, points in ((s, out[0]), (d, out[1])):
            for k in range(2):
                dot = permutation[k] if (kind == "mirror" and permutation) else k
                error = np.abs(_centroid(frame, dot) - _to_pixels(points[k], 40, 48)).max()
                assert error < 0.35, (seed, kind, k, error)
    assert seen == {"time", "mirror", "none"}


def test_config_records_given_and_detector_files_are_unchanged(tmp_path) -> None:
    import json

    from tps.config import TPSConfig, get_preset
    from tps.model import TPSMotionModel
    from tps.render import Renderer

    tiny = get_preset("tiny-64")
    assert "keypoint_source" not in tiny.to_dict() and tiny.keypoint_source == "detector"
    given = tiny.replace(keypoint_source="given")
    assert TPSConfig.from_dict(json.loads(json.dumps(given.to_dict()))) == given
    with pytest.raises(ValueError, match="keypoint_source"):
        tiny.replace(keypoint_source="body")
    model = TPSMotionModel(given).eval()
    model.save_pretrained(tmp_path / "given")
    assert json.loads((tmp_path / "given" / "config.json").read_text())["keypoint_source"] == "given"
    source = torch.rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match="kp_source"):
        Renderer(TPSMotionModel.from_pretrained(tmp_path / "given")).prepare(source)
    kp = torch.rand(1, 50, 2) * 2 - 1
    assert torch.equal(Renderer(model).prepare(source, kp_source=kp).kp_source, kp)


def test_bundled_renderer_loads_as_a_detector_model_and_saves_the_same_config(tmp_path) -> None:
    import json
    from pathlib import Path

    from tps.model import TPSMotionModel

    folder = Path(__file__).resolve().parents[2] / "weights" / "renderer"
    if not (folder / "model.safetensors").is_file():
        pytest.skip("weights/renderer is not here")
    model = TPSMotionModel.from_pretrained(folder)
    assert model.config.keypoint_source == "detector"
    model.save_pretrained(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text()) == json.loads((folder / "config.json").read_text())
