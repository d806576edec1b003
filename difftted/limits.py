"""The product's input limits, in one place, and the cheap header probes that enforce them.

Every limit is checked from a file's header (or from a number) before the file is decoded, so a
bad or huge input is refused with one clear message before memory grows, the same message in the
command line (one ``error:`` line), the Python API (``ValueError`` naming the argument) and the app.

==========================  ==================  ==============================================
limit                       value               why
==========================  ==================  ==============================================
`MAX_IMAGE_PIXELS`          150 megapixels      above every common camera (108-MP phones,
                                                100-MP medium format); a photo is decoded
                                                reduced toward ``max_side``, but PNG and most
                                                other formats still hold the full frame once
                                                (up to 4 bytes a pixel) while it is reduced
`APP_MAX_AUDIO_SECONDS`     60 s (the app)      one request's time and memory on a shared
                                                server; read from the container's header
`FPS_RANGE`                 1 .. 60 fps         rendering cost grows with the frame rate; the
                                                motion is sampled at the model's 25 fps anyway
`SEED_MAX`                  2**31 - 1           what a torch generator takes and a JSON number
                                                carries exactly
==========================  ==================  ==============================================

``max_side`` (the longer side of a full-photo video) must be at least the renderer's own size:
below it the video would be smaller than the animated crop itself.
"""

from __future__ import annotations

import logging
import math
import re
import subprocess
import warnings
from pathlib import Path

logger = logging.getLogger(__name__)

#: Largest photo accepted, in pixels (width x height); under Pillow's own decompression-bomb
#: limit (2 x 89.5 MP), so whatever Pillow refuses is refused here first with this message.
MAX_IMAGE_PIXELS = 150_000_000
#: Longest speech (and driving video) the app takes, in seconds.
APP_MAX_AUDIO_SECONDS = 60.0
#: Output frame rates accepted, inclusive.
FPS_RANGE = (1.0, 60.0)
#: Seeds are whole numbers in ``[0, SEED_MAX]``.
SEED_MAX = 2**31 - 1
#: A decoded audio file this much shorter than its header says was cut short (seconds).
TRUNCATION_TOLERANCE_S = 0.25

_DURATION = re.compile(r"Duration:\s*(\d+):(\d\d):(\d\d(?:\.\d+)?)")
_BOMB_PIXELS = re.compile(r"\((\d+) pixels\)")


# ---------------------------------------------------------------------------------- photos
def check_image_pixels(width: int, height: int, what: str) -> None:
    """Refuse a photo of more than `MAX_IMAGE_PIXELS`; ``what`` names it (e.g. ``"image 'a.png'"``)."""
    if width * height > MAX_IMAGE_PIXELS:
        raise ValueError(_too_many_pixels(what, width * height, f"{width}x{height} pixels, "))


def _too_many_pixels(what: str, pixels: int, size: str = "") -> str:
    return (f"{what} is too large: {size}{pixels / 1e6:.0f} megapixels; photos are limited to "
            f"{MAX_IMAGE_PIXELS / 1e6:.0f} megapixels. Downscale it (the video is at most a few "
            "thousand pixels wide anyway) and try again.")


def open_image(path: Path, what: str):
    """``PIL.Image`` of ``path``, opened lazily (only the header is read), its size checked.

    Raises ValueError naming ``what`` for a file that is not an image Pillow reads, or one of
    more than `MAX_IMAGE_PIXELS` (Pillow's ``DecompressionBombError`` never escapes).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # between Pillow's warning limit and ours: fine
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError as err:
        found = _BOMB_PIXELS.search(str(err))
        raise ValueError(_too_many_pixels(what, int(found.group(1)) if found else MAX_IMAGE_PIXELS + 1)) from err
    except UnidentifiedImageError as err:
        raise ValueError(f"{what} is not a readable image (not a format Pillow reads: jpg, png, webp, "
                         "bmp, gif, tiff, ...)") from err
    except (OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"{what} is not a readable image ({without_path(err, path)})") from err
    try:
        check_image_pixels(*image.size, what)
    except ValueError:
        image.close()
        raise
    return image


def without_path(err: BaseException, path: Path) -> str:
    """A library's message without the file's path (the caller names the file its own way)."""
    text = str(err).replace(repr(str(path)), "the file").replace(str(path), "the file")
    return text or type(err).__name__


# ----------------------------------------------------------------------------------- audio
def audio_duration(path: str | Path) -> float | None:
    """Seconds of audio in ``path`` from its header, without decoding; None when unknown.

    libsndfile's header for the formats it reads (wav, flac, ogg, ...), else what ``ffmpeg -i``
    prints as the container's ``Duration`` (mp4 / m4a: the moov atom; mp3: the Xing header or
    the bitrate). Costs one short subprocess at most.
    """
    import soundfile

    path = Path(path)
    try:
        return float(soundfile.info(str(path)).duration)
    except (RuntimeError, OSError, ValueError):  # not a libsndfile format: ask ffmpeg
        pass
    return _ffmpeg_duration(path)


def _ffmpeg_duration(path: Path) -> float | None:
    import imageio_ffmpeg

    try:
        proc = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(path)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as err:
        logger.debug("ffmpeg could not probe %s: %s", path, err)
        return None
    found = _DURATION.search(proc.stderr.decode("utf-8", "replace"))
    if found is None:
        return None
    hours, minutes, seconds = found.groups()
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def check_audio_duration(seconds: float | None, max_seconds: float | None, what: str) -> None:
    """Refuse audio longer than ``max_seconds`` (None: no cap; an unknown length passes)."""
    if seconds is not None and max_seconds is not None and seconds > max_seconds:
        raise ValueError(f"{what} lasts {seconds:.1f} s; at most {max_seconds:g} s is accepted. "
                         "Trim it and try again.")


def warn_if_cut_short(header_seconds: float | None, decoded_seconds: float, what: str) -> bool:
    """Log a warning when a file decodes to less than its header promised; True when it did."""
    if header_seconds is None or decoded_seconds >= header_seconds - TRUNCATION_TOLERANCE_S:
        return False
    logger.warning("%s was cut short: its header says %.2f s, only %.2f s could be decoded; using those",
                   what, header_seconds, decoded_seconds)
    return True


# --------------------------------------------------------------------------------- numbers
def check_fps(fps: float, name: str = "fps") -> float:
    """``fps`` within `FPS_RANGE`, else ValueError naming ``name`` and the range."""
    low, high = FPS_RANGE
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps) \
            or not low <= fps <= high:
        raise ValueError(f"{name} must be between {low:g} and {high:g} frames per second, got {fps!r}")
    return float(fps)


def check_max_side(max_side: int | None, model_side: int, name: str = "max_side") -> int | None:
    """``max_side`` None or a whole number >= ``model_side`` (the renderer's resolution)."""
    if max_side is None:
        return None
    if isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < model_side:
        raise ValueError(f"{name} must be a whole number of at least {model_side} (the model's size), "
                         f"got {max_side!r}")
    return max_side


def check_seed(seed: int, name: str = "seed") -> int:
    """``seed`` a whole number in ``[0, SEED_MAX]``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= SEED_MAX:
        raise ValueError(f"{name} must be a whole number between 0 and {SEED_MAX}, got {seed!r}")
    return seed
