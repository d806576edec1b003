"""The thin adapter between the Gradio app (``app.py``) and the pipeline: plain Python, no Gradio.

The app's handlers call these functions with what the page hands over (a photo as a numpy array,
speech and videos as file paths, slider values) and show what they return (mp4 paths, a
matplotlib figure, the seed used). Every check of a visitor's input lives here and raises
``ValueError`` with a message written for that visitor; ``app.py`` turns it into ``gr.Error``.
Nothing here imports Gradio, so the logic is tested without a server.

Views of one generation (`generate`):
- the talking video (H.264 + AAC mp4 with the original speech), from the pipeline;
- the same frames with the generated driving keypoints drawn over them, one colour per TPS
  transform (`difftted.interfaces.plotting.write_keypoint_video`);
- the audio onsets against the motion beats, with the Beat Consistency score
  (`difftted.interfaces.plotting.beat_figure`).
"""

from __future__ import annotations

import logging
import math
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from difftted import limits
from difftted.interfaces.plotting import beat_figure, draw_keypoints, keypoints_to_pixels, write_keypoint_video

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from difftted.audio.speech import Speech
    from difftted.pipeline import DiffTEDPipeline

#: the views' functions live in `difftted.interfaces.plotting`; re-exported for the app
__all__ = ["beat_figure", "draw_keypoints", "keypoints_to_pixels", "write_keypoint_video"]

logger = logging.getLogger(__name__)

#: Longest speech (and driving video) the demo takes, in seconds: keeps one request's time and
#: memory bounded on a shared machine (`difftted.limits` holds every cap).
MAX_AUDIO_SECONDS = limits.APP_MAX_AUDIO_SECONDS
#: Longer side of full-photo videos in the demo (the pipeline's own default is larger).
APP_MAX_SIDE = 1024
#: Seeds are drawn from and checked against ``[0, SEED_MAX]`` (what a torch generator takes and a
#: JSON number carries exactly).
SEED_MAX = limits.SEED_MAX
#: How the page names the per-part intensities (in messages to the visitor).
PART_LABELS = {"head": "Head intensity", "mouth": "Mouth intensity", "arms": "Arms intensity"}


@dataclass(frozen=True)
class GenerationSettings:
    """The knobs the page exposes. None means "the pipeline's default" (from its weights).

    num_inference_steps: diffusion steps, >= 1. guidance_scale: classifier-free guidance, >= 0.
    seed: in ``[0, SEED_MAX]``, ignored with ``randomize_seed``. motion_scale: 0 still .. 1 as
    sampled .. 2 exaggerated. output: ``"full"`` photo or the ``"crop"`` around the speaker.
    head_scale / mouth_scale / arms_scale: per-part intensity on top of motion_scale (the
    pipeline's ``part_scales``; None: the weights' default, `DiffTEDPipeline.part_scales`); other
    than 1 only for weights with body keypoints (``pipeline.keypoint_source == "body"``), else
    refused with a message.
    """

    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    seed: int = 0
    randomize_seed: bool = False
    motion_scale: float = 1.0
    output: Literal["full", "crop"] = "full"
    head_scale: float | None = None
    mouth_scale: float | None = None
    arms_scale: float | None = None

    def part_scales(self) -> dict[str, float]:
        """The pipeline's ``part_scales``: the parts that are set (the others keep the weights')."""
        scales = {"head": self.head_scale, "mouth": self.mouth_scale, "arms": self.arms_scale}
        return {part: value for part, value in scales.items() if value is not None}


@dataclass
class GenerationResult:
    """What one generation shows: two mp4 paths, a figure, the seed used and the BC score."""

    video: Path
    keypoint_video: Path
    figure: "Figure"
    seed: int
    beat_consistency: float | None


# ------------------------------------------------------------------------------------- inputs
def check_photo(image: Any, max_side: int | None = APP_MAX_SIDE) -> np.ndarray:
    """The visitor's photo as ``uint8 [H, W, 3]``, decoded reduced toward ``max_side``; ValueError
    when there is none, it is unreadable or it has too many pixels (the message names the file,
    never the server's folder)."""
    from difftted.pipeline.person import load_image

    if image is None or str(image) == "":
        raise ValueError("No photo: upload a photo of the speaker (upper body, facing the camera).")
    if not isinstance(image, (str, Path)):
        return load_image(image, name="the photo", max_side=max_side)
    path = Path(image)
    try:
        return load_image(path, name="the photo", max_side=max_side)
    except (ValueError, FileNotFoundError) as err:
        logger.info("refused photo %s: %s", path, err)
        message = str(err).replace(repr(str(path)), repr(path.name)).replace(str(path), path.name)
        raise ValueError(message[0].upper() + message[1:]) from err


def check_speech(audio: str | Path | None, max_seconds: float = MAX_AUDIO_SECONDS) -> "Speech":
    """Load the visitor's speech file: mono float32 at its own rate, the file kept for the mp4.

    Raises ValueError (a message for the visitor) when there is no file, it is not audio, it is
    longer than ``max_seconds``, or it is empty or silent.
    """
    from difftted.audio.features import load_audio
    from difftted.audio.speech import Speech, load_speech

    if audio is None or str(audio) == "":
        raise ValueError("No speech: upload a recording or record one with the microphone.")
    path = Path(audio)
    if not path.is_file():
        raise ValueError(f"The speech file {path.name!r} was not received; upload it again.")
    header_seconds = limits.audio_duration(path)  # from the header: hour-long files go before decoding
    _check_duration(header_seconds, max_seconds, "speech")
    try:
        waveform, sample_rate = load_audio(path, sample_rate=None)
    except ValueError as err:
        logger.info("unreadable speech %s: %s", path, err)
        raise ValueError(f"The speech file {path.name!r} is not readable audio. "
                         "Upload a wav, mp3, flac, ogg or m4a recording.") from err
    limits.warn_if_cut_short(header_seconds, waveform.shape[0] / sample_rate, f"speech {path.name!r}")
    _check_duration(waveform.shape[0] / sample_rate, max_seconds, "speech")
    checked = load_speech((waveform, sample_rate), name="the speech")  # empty / silent -> ValueError
    return Speech(checked.waveform, checked.sample_rate, path)


def _check_duration(seconds: float | None, max_seconds: float, what: str) -> None:
    if seconds is not None and seconds > max_seconds:
        raise ValueError(f"The {what} lasts {seconds:.1f} s; this demo takes at most {max_seconds:g} s. "
                         f"Trim it and try again.")


def resolve_seed(seed: float | int | None, randomize: bool) -> int:
    """The seed to use: a fresh one from ``secrets`` when ``randomize``, else ``seed`` checked."""
    if randomize:
        return secrets.randbelow(SEED_MAX + 1)
    if seed is None or isinstance(seed, bool) or not isinstance(seed, (int, float)):
        raise ValueError(f"Seed must be a whole number in [0, {SEED_MAX}], got {seed!r}.")
    if not math.isfinite(seed) or seed != int(seed) or not 0 <= seed <= SEED_MAX:
        raise ValueError(f"Seed must be a whole number in [0, {SEED_MAX}], got {seed!r}.")
    return int(seed)


def _optional_steps(steps: float | int | None) -> int | None:
    """Slider values arrive as floats; the pipeline checks the range."""
    if steps is None:
        return None
    if isinstance(steps, float) and steps.is_integer():
        return int(steps)
    return steps  # type: ignore[return-value] - a non-integer is reported by the pipeline


# --------------------------------------------------------------------------------- generation
def generate(pipeline: "DiffTEDPipeline", image: Any, audio: str | Path | None, settings: GenerationSettings,
             workdir: str | Path, *, max_audio_seconds: float = MAX_AUDIO_SECONDS,
             progress: bool = True) -> GenerationResult:
    """Photo + speech -> the three views of one generation, written under ``workdir``.

    Inputs are checked (cheap checks first) before the pipeline runs; the pipeline's own
    progress bars (tqdm) run when ``progress``.
    """
    import torch

    from difftted.pipeline.keypoint_source import check_part_scales

    part_scales = settings.part_scales()
    if part_scales:
        part_scales = check_part_scales(part_scales, pipeline.keypoint_source, PART_LABELS)
    photo = check_photo(image)
    seed = resolve_seed(settings.seed, settings.randomize_seed)
    speech = check_speech(audio, max_audio_seconds)
    workdir = Path(workdir)
    device = pipeline.device
    generator = torch.Generator(device=device).manual_seed(seed)
    result = pipeline(photo, speech, num_inference_steps=_optional_steps(settings.num_inference_steps),
                      guidance_scale=settings.guidance_scale, generator=generator,
                      motion_scale=settings.motion_scale, part_scales=part_scales, output=settings.output,
                      output_path=workdir / "difftted.mp4", return_frames=False, max_side=APP_MAX_SIDE,
                      progress=progress)
    box = result.crop_box if settings.output == "full" else None
    keypoint_video = write_keypoint_video(result.video_path, result.keypoints, workdir / "keypoints.mp4",
                                          result.fps, box=box, audio=speech.source)
    figure, score = beat_figure(speech.waveform, speech.sample_rate, result.keypoints, result.fps)
    logger.info("generated %d frames, seed %d, beat consistency %s", len(result.keypoints), seed, score)
    return GenerationResult(Path(result.video_path), keypoint_video, figure, seed, score)


# ------------------------------------------------------------------------------ driving video
def check_driving_video(video: str | Path | None, max_seconds: float = MAX_AUDIO_SECONDS) -> Path:
    """The visitor's driving video, checked readable (with frames) and at most ``max_seconds`` long."""
    from tps.video import video_info

    if video is None or str(video) == "":
        raise ValueError("No driving video: upload a video of a person talking or moving.")
    path = Path(video)
    try:
        info = video_info(path)
    except (ValueError, FileNotFoundError, OSError) as err:
        logger.info("unreadable driving video %s: %s", path, err)
        raise ValueError(f"The driving video {path.name!r} is not a readable video. "
                         "Upload an mp4, webm or mov file.") from err
    _check_duration(info.duration, max_seconds, "driving video")
    return path


def animate(pipeline: "DiffTEDPipeline", image: Any, video: str | Path | None, workdir: str | Path, *,
            mode: str = "relative", max_seconds: float = MAX_AUDIO_SECONDS, progress: bool = True) -> Path:
    """Photo + driving video -> mp4 of the photo moving as the video does (the renderer alone).

    The photo is cropped around the speaker as for speech (`DiffTEDPipeline.crop_person`), then
    `tps.animate.animate` drives the pipeline's renderer with the keypoints of every driving
    frame (``mode``: ``"relative"`` or ``"standard"``). The video keeps the driving audio.
    Keypoints come from the renderer's detector, or, for body-keypoint weights (pipeline.json
    ``"keypoints": "body"``), from mediapipe on the photo and on every driving frame
    (`difftted.pipeline.keypoint_source.body_video_keypoints`), as the renderer was trained.
    """
    from tps.animate import animate as animate_photo

    if mode not in ("relative", "standard"):
        raise ValueError(f"Keypoint mode must be 'relative' or 'standard', got {mode!r}.")
    photo = check_photo(image)
    path = check_driving_video(video, max_seconds)
    box, source = pipeline.crop_person(photo)
    given = {}
    if pipeline.keypoint_source == "body":
        from difftted.pipeline.keypoint_source import body_video_keypoints

        given = {"source_keypoints": pipeline.source_keypoints(photo, box).cpu(),
                 "driving_keypoints": body_video_keypoints(path, pipeline.resolution)}
    return animate_photo(source, path, pipeline.renderer, Path(workdir) / "animated.mp4", mode=mode,
                         progress=progress, **given)
