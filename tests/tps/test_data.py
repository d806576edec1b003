"""Clip discovery, frame reading, pair sampling and augmentation of tps.data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tps.data import (
    Clip,
    CropBox,
    FramePairDataset,
    FrameStore,
    _hsv_to_rgb,
    _resize_uint8,
    _rgb_to_hsv,
    augment_pair,
    color_jitter,
    find_clips,
)


def _frame_folder(path, num_frames: int, channel: int, size: int = 16) -> None:
    """Frames whose colour encodes (clip channel, frame index): value 10 * (index + 1)."""
    path.mkdir(parents=True)
    for i in range(num_frames):
        image = np.zeros((size, size, 3), np.uint8)
        image[..., channel] = 10 * (i + 1)
        Image.fromarray(image).save(path / f"{i:04d}.png")


def test_find_clips_ted_layout_with_splits(tmp_path, shared_data) -> None:
    video = shared_data / "ted_silent" / "ted_driving_384.mp4"
    for name in ("train/abc#10#90.mp4", "train/abc#100#200.mp4", "test/xyz#0#50.mp4"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).symlink_to(video)
    _frame_folder(tmp_path / "train" / "def#0#5", 3, 0)
    train = find_clips(tmp_path, "train")
    assert [c.name for c in train] == ["abc#10#90", "abc#100#200", "def#0#5"]
    assert [c.kind for c in train] == ["video", "video", "frames"]
    assert {c.video_id for c in train} == {"abc", "def"}
    assert [c.name for c in find_clips(tmp_path, "test")] == ["xyz#0#50"]
    assert len(find_clips(tmp_path)) == 4  # no split: everything below the root


def test_find_clips_errors(tmp_path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        find_clips(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no clips here")
    with pytest.raises(ValueError, match="no clips under"):
        find_clips(tmp_path / "empty")
    with pytest.raises(ValueError, match="not a video"):
        find_clips(tmp_path / "empty" / "notes.txt")


def test_unreadable_files_raise_value_error(tmp_path) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    store = FrameStore((16, 16))
    with pytest.raises(ValueError, match="broken.mp4"):
        store.num_frames(Clip(tmp_path / "broken.mp4", "video"))
    folder = tmp_path / "clip"
    folder.mkdir()
    (folder / "0000.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="0000.png"):
        store.frames(Clip(folder, "frames"), [0])


def test_pairs_come_from_one_clip_sorted_and_ids_repeat(tmp_path) -> None:
    _frame_folder(tmp_path / "a#0#1", 6, 0)
    _frame_folder(tmp_path / "a#5#9", 6, 0)
    _frame_folder(tmp_path / "b#0#1", 6, 1)
    clips = find_clips(tmp_path)
    dataset = FramePairDataset(clips, FrameStore((8, 8)), num_repeats=5, id_sampling=True, augment=False)
    assert len(dataset) == 2 * 5
    assert len(FramePairDataset(clips, FrameStore(), num_repeats=5, id_sampling=False, augment=False)) == 3 * 5
    torch.manual_seed(0)
    for index in range(len(dataset)):
        item = dataset[index]
        assert item["source"].shape == item["driving"].shape == (3, 8, 8)
        src, drv = item["source"].mean(dim=(1, 2)), item["driving"].mean(dim=(1, 2))
        channel = int(src.argmax())
        assert channel == int(drv.argmax()) == index % 2  # id a (red) then id b (green)
        assert src[channel] <= drv[channel] + 1e-6  # sorted by frame index
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_crop_box_parse_apply_and_errors() -> None:
    box = CropBox.parse("384:768,164:548")
    assert (box.top, box.bottom, box.left, box.right) == (384, 768, 164, 548)
    frames = np.arange(2 * 800 * 600 * 3, dtype=np.uint32).reshape(2, 800, 600, 3)
    assert np.array_equal(box.apply(frames, "x"), frames[:, 384:768, 164:548])
    with pytest.raises(ValueError, match="outside the 300x600 frames of clip.mp4"):
        box.apply(frames[:, :300], "clip.mp4")
    for text in ("384:768", "a:b,1:2", "10:5,0:4"):
        with pytest.raises(ValueError):
            CropBox.parse(text)


def test_crop_of_a_real_grid_video_then_resize(shared_data) -> None:
    from tps.video import iter_frames

    path = shared_data / "ted_silent" / "ted_grid_1.mp4"
    store = FrameStore((64, 64), CropBox.parse("384:768,164:548"))
    clip = find_clips(path)[0]
    frames = store.frames(clip, [0, 1])
    assert frames.shape == (2, 64, 64, 3) and frames.dtype == np.uint8
    assert store.num_frames(clip) > 100
    first = next(iter(iter_frames(path, max_frames=1)))
    cell = _resize_uint8(first[None, 384:768, 164:548], (64, 64))[0]
    whole = _resize_uint8(first[None], (64, 64))[0]
    assert np.abs(frames[0].astype(int) - cell.astype(int)).max() <= 1
    assert np.abs(frames[0].astype(int) - whole.astype(int)).mean() > 10


def test_hsv_round_trip_and_identity_jitter() -> None:
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(_hsv_to_rgb(_rgb_to_hsv(x)), x, atol=1e-5)
    assert torch.allclose(color_jitter(x, 1.0, 1.0, 1.0, 0.0, [3, 2, 1, 0]), x, atol=1e-5)
    shifted = color_jitter(x, 1.0, 1.0, 1.0, 1 / 3, [3])  # a third of a turn: R -> G -> B
    red = torch.zeros(1, 3, 1, 1)
    red[:, 0] = 1.0
    assert torch.allclose(color_jitter(red, 1.0, 1.0, 1.0, 1 / 3, [3]).flatten(), torch.tensor([0.0, 1.0, 0.0]), atol=1e-5)
    assert not torch.allclose(shifted, x)


def test_augmentation_shares_factors_and_flips_as_official() -> None:
    g = torch.Generator().manual_seed(0)
    frame = torch.rand(3, 8, 8, generator=g)
    changed = 0
    for _ in range(20):
        a, b = augment_pair(frame, frame.clone(), jitter=0.1, generator=g)
        assert torch.equal(a, b)  # identical frames stay identical: shared jitter and flips
        changed += not torch.allclose(a, frame)
    assert changed > 15
    source = torch.zeros(3, 4, 4)
    source[:, :, 0] = 1.0  # marks the left column
    driving = torch.full((3, 4, 4), 0.5)
    outcomes = {"swap": 0, "flip": 0, "none": 0}
    for _ in range(400):
        s, d = augment_pair(source, driving, jitter=0.0, generator=g)
        if torch.equal(s, driving):
            assert torch.equal(d, source)  # a time flip never comes with a horizontal flip
            outcomes["swap"] += 1
        elif torch.equal(s, source.flip(-1)):
            outcomes["flip"] += 1
        else:
            assert torch.equal(s, source) and torch.equal(d, driving)
            outcomes["none"] += 1
    assert 160 < outcomes["swap"] < 240 and 60 < outcomes["flip"] < 140 and 60 < outcomes["none"] < 140
