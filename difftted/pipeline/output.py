"""The product's video output: an mp4 that carries the speech as it came in.

Encoding the frames and muxing the audio is `tps.video.write_video` (H.264 + AAC through
imageio-ffmpeg, chunk by chunk). This module adds what a talking video needs around it: checking
the output path before rendering and a check that the result lasts as long as the speech within
one frame. The speech itself (loading, empty/silent checks) is `difftted.audio.speech`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from difftted.audio.speech import Speech

logger = logging.getLogger(__name__)


def check_output_path(path: str | Path, name: str = "output_path") -> Path:
    """Refuse, before any rendering, an output path that cannot receive an mp4."""
    if not isinstance(path, (str, Path)):
        raise TypeError(f"{name} must be a str or Path, got {type(path).__name__}")
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise ValueError(f"{name} must end in .mp4, got {str(path)!r}")
    if path.is_dir():
        raise ValueError(f"{name} {str(path)!r} is a folder, expected a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"{name} {str(path)!r} exists and is not writable")
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"{name} {str(path)!r} cannot be created: {str(ancestor)!r} is a file, not a folder")
    try:  # os.access says yes to root on a read-only file system; a real file says the truth
        with tempfile.NamedTemporaryFile(dir=ancestor, prefix=".difftted_write_test_"):
            pass
    except OSError as err:
        raise PermissionError(f"{name} {str(path)!r} is not writable: cannot create files in "
                              f"{str(ancestor)!r} ({err.strerror})") from err
    return path


def write_talking_video(path: str | Path, frames: Iterable[np.ndarray | torch.Tensor], fps: float,
                        speech: Speech, background: bool = True) -> Path:
    """Encode ``frames`` (chunks of ``uint8 [b, H, W, 3]``) to an H.264 + AAC mp4 carrying the speech,
    and check it lasts as long as the speech within one frame.

    The frames stream through `tps.video.write_video`, which muxes the original audio onto them,
    cut (or padded with silence) to exactly the video's length (the one mux of the project). With
    ``background`` (default) the encoder runs in a worker thread fed through a queue of two chunks
    (`difftted.pipeline.writer_thread`), so producing the next chunk (rendering, composing)
    overlaps with encoding this one; the file is the same as with ``background=False``.
    """
    from tps.video import video_info, write_video

    def encode(chunks: Iterable[np.ndarray | torch.Tensor]) -> Path:
        return write_video(path, chunks, fps, audio=speech.source)

    if background:
        from difftted.pipeline.writer_thread import run_in_background

        path = run_in_background(encode, frames)
    else:
        path = encode(frames)
    info = video_info(path)
    if not info.has_audio:
        raise RuntimeError(f"the video {str(path)!r} was written without its audio stream")
    if abs(info.duration - speech.duration) > 1.0 / fps + 1e-3:
        raise RuntimeError(f"the video {str(path)!r} lasts {info.duration:.3f} s, the speech "
                           f"{speech.duration:.3f} s: more than one frame (1/{fps:g} s) apart")
    return path
