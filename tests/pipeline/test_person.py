"""Photos as people have them: loading, the TED-style crop around a real person, paste-back."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

from difftted.pipeline.person import CropBox, PasteBack, crop_to_tensor, feather_mask, find_crop, fit_photo, load_image

# The astronaut's face in skimage.data.astronaut() (512x512), measured by hand on the image:
# forehead to chin, ear to ear.
FACE = dict(x0=175, x1=275, y0=70, y1=175)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


def _contains_face(box: CropBox, face=FACE, scale: float = 1.0, dx: float = 0, dy: float = 0) -> bool:
    corners = [(face["x0"] * scale + dx, face["y0"] * scale + dy), (face["x1"] * scale + dx, face["y1"] * scale + dy)]
    return all(box.contains(x, y) for x, y in corners)


def test_crop_frames_the_astronaut_ted_style(astronaut):
    person = find_crop(astronaut)
    box = person.box
    assert person.method == "pose"
    assert _contains_face(box)
    # head in the upper part, torso below it: the face's centre lies in the top 40% of the crop
    face_cy = (FACE["y0"] + FACE["y1"]) / 2
    assert (face_cy - box.y0) / box.size < 0.4
    # head and torso, not a face close-up: the crop is several face heights tall
    assert box.size > 3.5 * (FACE["y1"] - FACE["y0"])
    assert 0 <= box.x0 and box.x0 + box.size <= 512 and 0 <= box.y0 and box.y0 + box.size <= 512


def test_crop_agrees_with_mediapipe_face_box(astronaut):
    from mediapipe.python.solutions import face_detection

    with face_detection.FaceDetection(model_selection=1) as detector:
        det = detector.process(astronaut).detections[0].location_data.relative_bounding_box
    face = dict(x0=det.xmin * 512, x1=(det.xmin + det.width) * 512, y0=det.ymin * 512, y1=(det.ymin + det.height) * 512)
    assert _contains_face(find_crop(astronaut).box, face)


def test_person_in_a_wide_photo_is_found_off_centre(astronaut):
    # the astronaut on the right of a 1200x600 canvas: the crop must follow her, not the centre
    canvas = np.full((600, 1200, 3), 235, np.uint8)
    canvas[44:556, 650:1162] = astronaut
    box = find_crop(canvas).box
    assert _contains_face(box, dx=650, dy=44)
    assert box.x0 > 1200 / 2 - box.size / 2 + 50  # right of a centred crop


def test_blank_image_gives_centred_crop_and_warning(caplog):
    blank = np.full((300, 500, 3), 128, np.uint8)
    with caplog.at_level(logging.WARNING, logger="difftted.pipeline.person"):
        person = find_crop(blank)
    assert person.method == "none"
    assert person.box == CropBox(100, 0, 300)
    assert any("no person" in r.message for r in caplog.records)


def test_rgba_is_composited_on_white(tmp_path, astronaut):
    rgba = np.dstack([astronaut, np.full(astronaut.shape[:2], 255, np.uint8)])
    rgba[:100, :, 3] = 0  # the top is transparent
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba).save(path)
    img = load_image(path)
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8
    assert (img[:100] == 255).all()
    np.testing.assert_array_equal(img[100:], astronaut[100:])
    assert _contains_face(find_crop(img).box)


def test_grayscale_photo(astronaut):
    gray = np.asarray(Image.fromarray(astronaut).convert("L"))
    img = load_image(Image.fromarray(gray))
    assert img.shape == (512, 512, 3)
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
    assert _contains_face(find_crop(img).box)


def test_exif_rotated_photo_is_turned_upright(tmp_path, astronaut):
    stored = Image.fromarray(astronaut).rotate(90, expand=True)  # as a phone stores a portrait
    exif = stored.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    stored.save(path, exif=exif, quality=95)
    img = load_image(path)
    assert img.shape == astronaut.shape
    assert np.abs(img.astype(int) - astronaut).mean() < 4  # upright again (JPEG loss only)
    assert _contains_face(find_crop(img).box)


@pytest.mark.parametrize("bad, error", [
    (np.zeros((10, 10, 3), np.uint8), "at least"),
    (np.zeros((64, 64, 5), np.uint8), "shape"),
    (np.full((64, 64, 3), 2.0, np.float32), r"\[0, 1\]"),
])
def test_bad_arrays_are_refused(bad, error):
    with pytest.raises(ValueError, match=error):
        load_image(bad)


def test_not_an_image_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not a picture")
    with pytest.raises(ValueError, match="not a readable image"):
        load_image(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_image(tmp_path / "missing.jpg")


def test_numpy_float_and_tensor_inputs_match(astronaut):
    as_float = load_image(astronaut.astype(np.float32) / 255.0)
    as_tensor = load_image(torch.from_numpy(astronaut).permute(2, 0, 1).float() / 255.0)
    np.testing.assert_array_equal(as_float, astronaut)
    np.testing.assert_array_equal(as_tensor, astronaut)


def test_fit_photo_bounds_size_and_makes_sides_even():
    photo = np.zeros((3001, 1999, 3), np.uint8)
    out = fit_photo(photo, 1000)
    assert max(out.shape[:2]) <= 1000 and out.shape[0] % 2 == 0 and out.shape[1] % 2 == 0
    assert fit_photo(np.zeros((101, 99, 3), np.uint8), None).shape == (100, 98, 3)


def test_feather_mask_ramps_only_inside_the_photo():
    box = CropBox(0, 50, 200)  # touches the left border, inside elsewhere
    mask = feather_mask(box, (400, 400), feather=0.05)
    assert mask.shape == (200, 200)
    assert mask[100, 0] == 1.0  # left edge is the photo's border: no seam
    assert mask[100, -1] < 0.05 and mask[0, 100] < 0.05  # right and top sides fade out
    assert mask[100, 100] == 1.0
    ramp = mask[100, -12:]
    assert (np.diff(ramp) <= 0).all()  # monotonic ramp


def test_paste_back_changes_only_the_crop_and_blends_the_seam(astronaut):
    box = CropBox(100, 60, 256)
    paste = PasteBack(astronaut, box, feather=0.05)
    white = torch.ones(2, 3, 64, 64)
    out = paste(white)
    assert out.shape == (2, 512, 512, 3) and out.dtype == np.uint8
    outside = np.ones((512, 512), bool)
    outside[60:316, 100:356] = False
    np.testing.assert_array_equal(out[0][outside], astronaut[outside])
    assert (out[0, 188, 228] == 255).all()  # the crop's centre is the rendered frame
    seam = out[0, 188, 101].astype(int)  # one pixel inside the left side: mostly the photo
    assert np.abs(seam - astronaut[188, 101]).max() < 30
    crop_only = PasteBack(astronaut, box, crop_only=True)(white)
    assert crop_only.shape == (2, 64, 64, 3) and (crop_only == 255).all()


def test_crop_to_tensor_range_and_shape(astronaut):
    t = crop_to_tensor(astronaut, CropBox(0, 0, 512), (64, 64))
    assert t.shape == (1, 3, 64, 64) and t.dtype == torch.float32
    assert 0.0 <= float(t.min()) and float(t.max()) <= 1.0
