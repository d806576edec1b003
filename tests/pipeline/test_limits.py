"""difftted.limits and the loaders that use it, in-process: huge photos decoded reduced, bombs and
unreadable photos refused with one clear ValueError, audio sized from its header before decoding,
truncated audio warned about, broken weights folders named, the numeric bounds."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from difftted import limits
from difftted.pipeline.person import load_image


def _load_files():
    import importlib.util

    spec = importlib.util.spec_from_file_location("_bad_input_files", Path(__file__).with_name("bad_input_files.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


files = _load_files()  # the catalogue's file makers (tests run with --import-mode=importlib)


# ------------------------------------------------------------------------------------ photos
def test_a_bomb_is_refused_from_its_header_naming_the_argument(tmp_path):
    bomb = files.write_bomb_png(tmp_path / "bomb.png", 20000)
    with pytest.raises(ValueError) as info:
        load_image(bomb)
    message = str(info.value)
    assert message.startswith("image ") and "bomb.png" in message
    assert "400 megapixels" in message and f"{limits.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels" in message
    assert not isinstance(info.value, Image.DecompressionBombError)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_the_pixel_limit_applies_to_every_kind_of_input(tmp_path):
    side = int(limits.MAX_IMAGE_PIXELS**0.5) + 1
    header_only = files.write_bomb_png(tmp_path / "just_over.png", side)  # between Pillow's warning and error
    with pytest.raises(ValueError, match="megapixels; photos are limited"):
        load_image(header_only)
    lazy = Image.open(header_only)  # a PIL image: only its header was read
    with pytest.raises(ValueError, match="^image is too large"):
        load_image(lazy)
    view = np.broadcast_to(np.zeros(3, np.uint8), (side, side, 3))  # no memory behind it
    with pytest.raises(ValueError, match="^image is too large"):
        load_image(view)


def test_a_huge_png_is_reduced_toward_max_side(tmp_path, caplog):
    path = files.write_png(tmp_path / "wide.png", 6000, 3000)
    with caplog.at_level(logging.INFO, logger="difftted.pipeline.person"):
        photo = load_image(path, max_side=1000)
    assert photo.dtype == np.uint8 and photo.shape == (500, 1000, 3)  # factor 6: exactly max_side
    assert "decoded reduced" in caplog.text
    # the gradient survives the reduction: left dark, right bright in the red channel
    assert photo[:, :50, 0].mean() < 20 and photo[:, -50:, 0].mean() > 235
    np.testing.assert_array_equal(load_image(path, max_side=None)[::6, ::6].shape, photo.shape)


def test_a_huge_jpeg_is_decoded_at_a_reduced_scale_with_its_orientation(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (300, 200, 3), np.uint8).repeat(10, 0).repeat(10, 1)  # 2000x3000, portrait
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to show
    path = tmp_path / "rotated.jpg"
    image.save(path, quality=90, exif=exif)
    photo = load_image(path, max_side=700)
    full = load_image(path)
    assert full.shape == (2000, 3000, 3)  # the orientation turns the portrait file into landscape
    assert photo.shape[1] >= 700 and photo.shape[1] < 1400 and photo.shape[1] / photo.shape[0] == pytest.approx(1.5, rel=0.01)
    small = np.asarray(Image.fromarray(full).resize(photo.shape[1::-1], Image.Resampling.BOX), dtype=np.float32)
    assert np.abs(small - photo).mean() < 12  # the same picture, the same way up


def test_reduction_never_makes_a_valid_photo_too_small(tmp_path):
    path = files.write_png(tmp_path / "strip.png", 4000, 40)
    assert load_image(path, max_side=100).shape[0] >= 32


@pytest.mark.parametrize("case", ["empty", "text", "svg", "pdf", "truncated jpeg"])
def test_unreadable_photos_get_one_clear_message(tmp_path, astronaut_path, case):
    jpeg = tmp_path / "good.jpg"
    Image.open(astronaut_path).convert("RGB").save(jpeg, quality=90)
    path = files.unreadable_photos(tmp_path / "photos", jpeg)[case]
    with pytest.raises(ValueError, match="is not a readable image") as info:
        load_image(path, name="photo")
    assert str(info.value).startswith(f"photo {str(path)!r}")
    assert str(info.value).count(str(path)) == 1  # named once, by the caller, not again by Pillow


# ------------------------------------------------------------------------------------- audio
def test_audio_duration_from_headers(tmp_path, tone_path):
    assert limits.audio_duration(tone_path) == pytest.approx(1.0, abs=1e-3)  # libsndfile
    m4a = files.write_long_m4a(tmp_path / "two.m4a", minutes=2)
    assert limits.audio_duration(m4a) == pytest.approx(120.0, abs=1.0)  # ffmpeg's Duration
    text = tmp_path / "notes.m4a"
    text.write_text("not audio")
    assert limits.audio_duration(text) is None


def test_long_compressed_audio_is_refused_before_decoding(tmp_path, monkeypatch):
    from difftted import audio
    from difftted.audio.speech import load_speech

    m4a = files.write_long_m4a(tmp_path / "two.m4a", minutes=2)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded before the cap was checked")

    monkeypatch.setattr(audio, "load_audio", no_decoding)
    with pytest.raises(ValueError, match=r"^--audio '.*two\.m4a' lasts 120\.\d s; at most 60 s is accepted"):
        load_speech(m4a, name="--audio", max_seconds=60)


def test_a_truncated_file_is_used_with_a_warning(tmp_path, caplog):
    from difftted.audio.speech import load_speech

    mp3 = files.write_truncated_mp3(tmp_path / "cut.mp3", seconds=4.0, keep=0.5)
    with caplog.at_level(logging.WARNING, logger="difftted.limits"):
        speech = load_speech(mp3)
    assert 1.0 < speech.duration < 3.0
    warning = [r.getMessage() for r in caplog.records if "cut short" in r.getMessage()]
    assert len(warning) == 1 and "4.00 s" in warning[0] and f"{speech.duration:.2f} s" in warning[0]


def test_a_whole_file_gives_no_warning(tone_path, caplog):
    from difftted.audio.speech import load_speech

    with caplog.at_level(logging.WARNING):
        load_speech(tone_path)
    assert "cut short" not in caplog.text


# ------------------------------------------------------------------------------------ numbers
@pytest.mark.parametrize("value", [0, 0.5, 60.5, 1000, float("nan"), float("inf"), True])
def test_fps_range(value):
    with pytest.raises(ValueError, match=r"^--fps must be between 1 and 60 frames per second"):
        limits.check_fps(value, "--fps")


def test_bounds_accept_their_edges():
    assert limits.check_fps(1, "--fps") == 1.0 and limits.check_fps(60.0) == 60.0
    assert limits.check_seed(0) == 0 and limits.check_seed(limits.SEED_MAX) == limits.SEED_MAX
    assert limits.check_max_side(256, 256) == 256 and limits.check_max_side(None, 256) is None
    for bad in (-1, limits.SEED_MAX + 1, 1.0):
        with pytest.raises(ValueError, match=r"^--seed must be a whole number between 0 and 2147483647"):
            limits.check_seed(bad, "--seed")
    with pytest.raises(ValueError, match=r"^--max-side must be a whole number of at least 256"):
        limits.check_max_side(255, 256, "--max-side")


# ----------------------------------------------------------------------------------- weights
@pytest.fixture(scope="module")
def broken(tiny_pipeline_dir, tmp_path_factory):
    return files.broken_weights(tiny_pipeline_dir, tmp_path_factory.mktemp("broken_weights"))


@pytest.mark.parametrize("case", ["corrupt config", "truncated safetensors", "pickle beside a decoy",
                                  "pickle renamed", "missing file", "not an object"])
def test_every_broken_weights_folder_is_named_in_one_error(broken, case):
    from difftted import DiffTEDPipeline

    folder, file, what = broken[case]
    with pytest.raises((ValueError, FileNotFoundError)) as info:  # both are one `error:` line in the CLI
        DiffTEDPipeline.from_pretrained(folder)
    message = str(info.value)
    assert file in message and what in message, message


def test_the_pipelines_own_files_pass_the_checks(tiny_pipeline_dir):
    from difftted.pipeline.weights import check_weight_files, renderer_side

    check_weight_files(Path(tiny_pipeline_dir))
    assert renderer_side(tiny_pipeline_dir) == 64
