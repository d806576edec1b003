"""`DiffTEDPipeline`: one photo + one speech recording -> a TED-style talking video.

The flow::

    image + audio
      -> (audio features [T, D], source keypoints [N, 2])      difftted.audio, the renderer's detector
      -> keypoint diffusion with classifier-free guidance       difftted.motion.denoiser, difftted.motion.sampling
      -> driving keypoints [T, N, 2] in [-1, 1], (x, y)
      -> TPS dense motion + inpainting, frame batches           tps.render
      -> frames composed at the photo's resolution, background  difftted.pipeline.composition,
         kept still, pasted back into the full photo            tps.compose
      -> mp4 (H.264 + AAC) carrying the original audio          difftted.pipeline.output

In the style of a diffusers pipeline: components are attributes, ``__call__`` runs numbered steps
(one small method each), all randomness comes from the caller's ``generator``, and the result is
a `DiffTEDPipelineOutput`. Rendering, pasting and encoding run chunk by chunk, so a five-minute
speech needs no more memory than a five-second one when ``output_path`` is given.
The folder layout of `from_pretrained` / `save_pretrained` is in weights/README.md; finding,
fetching and reading that folder is `difftted.pipeline.weights`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal

import numpy as np
import torch
from PIL import Image

from difftted.audio.features import AudioFeatureConfig, AudioFeatureExtractor
from difftted.audio.speech import AudioInput, Speech, load_speech
from difftted.defaults import (DEFAULT_DRIFT_SECONDS, DEFAULT_GUIDANCE_SCALE, DEFAULT_MAX_SIDE, DEFAULT_RENDER_BATCH,
                               DEFAULT_RENDER_PRECISION, DEFAULT_STEPS, RENDER_PRECISIONS)
from difftted.motion.keypoints import KeypointStats, MotionCoding, remove_drift
from difftted.motion.sampling import sample_motion
from difftted.pipeline.composition import COMPOSITIONS, Composition, FrameComposer, resolve_interpolation
from difftted.pipeline.keypoint_source import (KEYPOINT_SOURCES, PART_SCALES, body_source_keypoints,  # noqa: F401
                                               check_keypoint_source, check_part_scales, keypoint_limit,
                                               scale_offsets)
from difftted.pipeline.output import check_output_path, write_talking_video
from difftted.pipeline.person import CropBox, ImageInput, crop_to_tensor, find_crop, fit_photo, load_image, person_mask
from tps.render import PreparedSource, RenderedChunk, Renderer

logger = logging.getLogger(__name__)

#: What each of `RENDER_PRECISIONS` sets `tps.Renderer`'s ``bfloat16`` to.
_RENDER_BFLOAT16: dict[str, bool | str] = {"auto": "auto", "float32": False, "bfloat16": True}
#: ``person`` of `DiffTEDPipeline.prepare_source` / ``prepare_composition`` when the caller has not
#: segmented the photo yet (None there means "segmented, nobody found": not segmented again).
FIND_PERSON: Any = object()


@dataclass
class DiffTEDPipelineOutput:
    """What a pipeline call returns.

    frames: ``uint8 [T, H, W, 3]`` (or a list of PIL images with ``output_type="pil"``), None when
        frames were only written to ``output_path`` (``return_frames=False``).
    keypoints: ``float32 [T, N, 2]`` driving keypoints in ``[-1, 1]`` (x, y) of the crop.
    fps: frames per second of ``frames`` and of the video.
    audio: the original speech, ``(waveform float32 [S] mono, sample_rate)``.
    video_path: the mp4 written, or None.
    crop_box: where the animated square sits in the (possibly downscaled) photo.
    """

    frames: np.ndarray | list[Image.Image] | None
    keypoints: np.ndarray
    fps: float
    audio: tuple[np.ndarray, int]
    video_path: Path | None
    crop_box: CropBox

    def to_tuple(self) -> tuple:
        """``(frames, keypoints, fps, audio, video_path, crop_box)``: what ``return_dict=False`` gives."""
        return (self.frames, self.keypoints, self.fps, self.audio, self.video_path, self.crop_box)


class DiffTEDPipeline:
    """Photo + speech -> talking video. See the module docstring for the flow.

    Components: ``denoiser`` (`KeypointDenoiser`), ``scheduler`` (a diffusers scheduler),
    ``renderer`` (`tps.TPSMotionModel`), ``audio_config`` (`AudioFeatureConfig`),
    ``keypoint_stats`` (`KeypointStats`), ``fps`` (the rate the denoiser was trained at), and
    ``offset_stats`` (`KeypointStats`) for a denoiser that samples offsets from the photo's
    keypoints (``motion_target="source_offset"``, see `difftted.motion.keypoints.MotionCoding`).
    Sampling defaults (pipeline.json's ``sampling``): ``num_inference_steps``,
    ``guidance_scale``, ``relative_motion``, ``drift_seconds`` (`remove_drift`'s time
    constant; 0 keeps the motion as sampled) and ``part_scales``. ``keypoint_source``
    (pipeline.json's ``keypoints``): `KEYPOINT_SOURCES`; with ``"body"`` the photo's keypoints are
    its body landmarks (`source_keypoints`) and ``part_scales`` can scale head, mouth and arms
    apart (the weights' own ``part_scales`` are the defaults a call's override part by part).
    """

    def __init__(self, denoiser: torch.nn.Module, scheduler: Any, renderer: torch.nn.Module,
                 keypoint_stats: KeypointStats, audio_config: AudioFeatureConfig | None = None,
                 fps: float = 25.0, num_inference_steps: int = DEFAULT_STEPS,
                 guidance_scale: float = DEFAULT_GUIDANCE_SCALE, offset_stats: KeypointStats | None = None,
                 relative_motion: bool = False, drift_seconds: float = DEFAULT_DRIFT_SECONDS,
                 keypoint_source: str = "detector", part_scales: Mapping[str, float] | None = None) -> None:
        if not isinstance(keypoint_stats, KeypointStats):
            raise TypeError(f"keypoint_stats must be a KeypointStats, got {type(keypoint_stats).__name__}")
        if keypoint_stats.num_keypoints != renderer.config.num_kp:
            raise ValueError(f"keypoint_stats has {keypoint_stats.num_keypoints} keypoints, the renderer "
                             f"detects {renderer.config.num_kp}")
        _check_positive("fps", fps)
        _check_drift(drift_seconds)
        check_keypoint_source(keypoint_source, renderer.config)
        audio_config = audio_config if audio_config is not None else AudioFeatureConfig()
        den = getattr(denoiser, "config", None)
        if den is not None and (den.num_keypoints, den.audio_dim) != (keypoint_stats.num_keypoints,
                                                                       audio_config.feature_dim):
            raise ValueError(f"the denoiser takes {den.num_keypoints} keypoints and {den.audio_dim} audio features, "
                             f"the pipeline gives {keypoint_stats.num_keypoints} and {audio_config.feature_dim}")
        self.denoiser = denoiser.eval()
        self.scheduler = scheduler
        self.renderer = renderer.eval()
        target = getattr(den, "motion_target", "absolute")
        if target == "source_offset" and offset_stats is None:
            raise ValueError("the denoiser samples offsets from the source keypoints (motion_target "
                             "'source_offset'); pass their offset_stats (pipeline.json 'offset_stats')")
        self.keypoint_stats = keypoint_stats
        self.motion_coding = MotionCoding(keypoint_stats, offset_stats if target == "source_offset" else None)
        self.audio_config = audio_config
        self.fps = float(fps)
        self.num_inference_steps = int(num_inference_steps)
        self.guidance_scale = float(guidance_scale)
        self.relative_motion = bool(relative_motion)
        self.drift_seconds = float(drift_seconds)
        self.keypoint_source = keypoint_source
        self.part_scales = part_scales
        self.audio_features = AudioFeatureExtractor(self.audio_config)
        self._part_masks = keypoint_source == "body"
        #: tps.Renderer over the TPS model `renderer` (set `render_precision` or `part_masks` to rebuild it)
        self.frame_renderer = self._build_renderer(_RENDER_BFLOAT16[DEFAULT_RENDER_PRECISION])
        #: encode in a worker thread while the next chunk renders (the same file either way)
        self.background_encoding = True
        self._progress_bar_config: dict[str, Any] = {}

    @property
    def offset_stats(self) -> KeypointStats | None:
        """The offset statistics of a ``"source_offset"`` denoiser, else None (`motion_coding`'s)."""
        return self.motion_coding.offset_stats

    @property
    def render_precision(self) -> str:
        """The inpainting network's arithmetic, one of `RENDER_PRECISIONS`: ``"auto"`` (default:
        bfloat16 autocast where the device computes bfloat16 natively, `tps.render.native_bfloat16`,
        else float32), ``"float32"`` or ``"bfloat16"``. The keypoints and the flow are float32
        always; bfloat16 moves only the generated pixels, by float rounding (at most 1.8e-3 with the
        bundled weights, under half a uint8 step). Setting it rebuilds `frame_renderer` with the
        default options."""
        value = self.frame_renderer.bfloat16
        return "auto" if value == "auto" else ("bfloat16" if value else "float32")

    @render_precision.setter
    def render_precision(self, value: str) -> None:
        if value not in RENDER_PRECISIONS:
            raise ValueError(f"render_precision must be one of {RENDER_PRECISIONS}, got {value!r}")
        self.frame_renderer = self._build_renderer(_RENDER_BFLOAT16[value])

    @property
    def part_scales(self) -> dict[str, float]:
        """Default per-part intensity, pipeline.json's ``sampling.part_scales`` (``{}``: all 1):
        what a call's ``part_scales`` leaves out. Set it to a dict (`check_part_scales`)."""
        return dict(self._part_scales)

    @part_scales.setter
    def part_scales(self, value: Mapping[str, float] | None) -> None:
        self._part_scales = check_part_scales(value, self.keypoint_source)

    @property
    def part_masks(self) -> bool:
        """Whether the renderer draws the body parts' capsules into its contribution maps and
        occludes what a moved arm uncovers (`tps.parts`, the capsules in
        `difftted.motion.body_keypoints.PART_CAPSULES`). On by default for body keypoints (their
        renderer's own maps give hands and mouth almost no pixels: `part_response`); a detector
        pipeline has no parts, so setting it True there is a ValueError."""
        return self._part_masks

    @part_masks.setter
    def part_masks(self, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"part_masks must be a bool, got {type(value).__name__}")
        if value and self.keypoint_source != "body":
            raise ValueError(f"part_masks needs body keypoints (pipeline.json 'keypoints': 'body'); this "
                             f"pipeline's keypoints come from {self.keypoint_source!r}")
        self._part_masks = value
        self.frame_renderer = self._build_renderer(self.frame_renderer.bfloat16)

    def _build_renderer(self, bfloat16: bool | str) -> Renderer:
        parts = None
        if self._part_masks:
            from difftted.motion.body_keypoints import part_layout

            parts = part_layout()
        return Renderer(self.renderer, bfloat16=bfloat16, parts=parts)

    # ------------------------------------------------------------------------------ plumbing
    @classmethod
    def from_pretrained(cls, location: str | Path | None = None, *, revision: str | None = None,
                        device: str | torch.device | None = None) -> "DiffTEDPipeline":
        """Load from a pipeline folder or a Hub repo id (None: ``$DIFFTTED_WEIGHTS``, then
        ``weights/``). Only json and safetensors are read."""
        from difftted.pipeline.weights import load_components, resolve_weights

        pipe = cls(**load_components(resolve_weights(location, revision=revision)))
        return pipe.to(device) if device is not None else pipe

    def save_pretrained(self, save_directory: str | Path) -> Path:
        """Write the folder `from_pretrained` reads (layout: weights/README.md)."""
        from difftted.pipeline.weights import save_components

        return save_components(self, Path(save_directory))

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    @property
    def resolution(self) -> tuple[int, int]:
        """(height, width) the renderer works at."""
        return tuple(self.renderer.config.image_size)

    def to(self, device: str | torch.device) -> "DiffTEDPipeline":
        self.denoiser.to(device)
        self.renderer.to(device)
        return self

    def set_progress_bar_config(self, **kwargs: Any) -> None:
        """As in diffusers: ``set_progress_bar_config(disable=True)`` silences every bar."""
        self._progress_bar_config = dict(kwargs)

    def _progress(self, progress: bool) -> bool:
        return bool(progress) and not self._progress_bar_config.get("disable", False)

    # --------------------------------------------------------------------------------- call
    @torch.no_grad()
    def __call__(self, image: ImageInput, audio: AudioInput | Speech, *, num_inference_steps: int | None = None,
                 guidance_scale: float | None = None, generator: torch.Generator | None = None,
                 fps: float | None = None, motion_scale: float = 1.0,
                 part_scales: Mapping[str, float] | None = None, relative_motion: bool | None = None,
                 drift_seconds: float | None = None, output: Literal["full", "crop"] = "full",
                 composition: Composition = "native", still_background: bool = True, interpolation: str = "auto",
                 mouth_interior: bool | None = None, output_path: str | Path | None = None, return_frames: bool | None = None,
                 output_type: Literal["np", "pil"] = "np", max_side: int | None = DEFAULT_MAX_SIDE,
                 render_mode: str = "standard", render_batch_size: int = DEFAULT_RENDER_BATCH, progress: bool = True,
                 return_dict: bool = True) -> DiffTEDPipelineOutput | tuple:
        """Animate ``image`` with ``audio``.

        Args:
            image: path, PIL image, numpy array or tensor (see `difftted.pipeline.person.load_image`).
            audio: a path to speech (any format ffmpeg reads) or ``(waveform [S], sample_rate)``.
            num_inference_steps / guidance_scale: diffusion steps and CFG scale (default: the
                pipeline's, from pipeline.json).
            generator: the only source of randomness; the same seed gives the same video.
            fps: output frame rate (default: the model's). Motion is sampled at the model's rate
                and resampled in time, so the gestures' timing does not depend on it.
            motion_scale: 0 = still photo, 1 = the sampled motion, >1 exaggerated; scales the
                motion around the photo's own keypoints.
            part_scales: per-part intensity on top of ``motion_scale``, ``{"head": h, "mouth": m,
                "arms": a}`` (any subset; a missing part takes the pipeline's `part_scales`, else 1;
                each a finite number >= 0): multiplies
                the motion offsets of that part's keypoints (`PART_SCALES`), e.g. ``{"arms": 1.5,
                "head": 0.5}`` for livelier gestures and a calmer head. Only for pipelines with
                body keypoints (pipeline.json ``"keypoints": "body"``); a detector pipeline's
                keypoints have no parts, and any scale other than 1 is a ValueError.
            relative_motion: drive the photo by the sampled motion RELATIVE to its first frame
                (``kp_t - kp_0 + kp_photo``; TPSMM's relative mode without its hull-area scale): the
                video starts exactly at the photo, and a constant offset the denoiser puts on a
                photo unlike its training speakers is dropped. Default: the pipeline's (pipeline.json).
            drift_seconds: posture held longer than about this is pulled back to the photo's, so a
                long speech does not wander off (`difftted.motion.keypoints.remove_drift`); 0 turns it
                off. Default: the pipeline's (pipeline.json, else 4 s).
            output: ``"full"`` pastes the animated crop back into the photo; ``"crop"`` gives the
                square crop alone (at its own size with ``composition="native"``, at the
                renderer's with ``"model"``).
            composition: ``"native"`` warps the photo's own pixels at their resolution by the
                model's flow and fills only what the motion uncovers with generated pixels;
                ``"model"`` scales the model's frames up (see `difftted.pipeline.composition`).
            still_background: with ``"native"``, keep the photo's pixels wherever the person is
                not (mediapipe selfie segmentation, warped by the motion).
            interpolation: with ``"native"``, how the photo's pixels are resampled by the flow:
                ``"auto"`` (default: ``"spline"`` for crops up to 1024 pixels, ``"bicubic"``
                above, `difftted.pipeline.composition.resolve_interpolation`), ``"spline"`` (the
                crop upsampled 2x by its quintic spline once, then bicubic: keeps more fine
                detail), ``"bicubic"`` (earlier releases) or ``"bilinear"`` (see
                `tps.compose.compose`).
            mouth_interior: paint the inside of the mouth where the sampled lips open past the
                photo's (`difftted.pipeline.mouth.MouthInterior`; a photo's closed lips only
                stretch). None (default): on for body keypoints with ``"native"`` composition;
                True elsewhere is a ValueError.
            output_path: write an mp4 (H.264 + AAC with the original audio) there.
            return_frames: keep the frames in memory (default: only when no ``output_path``).
            max_side: the full photo is downscaled to this longer side for the video (None: never).
            render_mode: the renderer's keypoint mode (``"standard"``, ``"relative"``, ``"avd"``).
            render_batch_size: frames rendered (and encoded) per chunk.
            progress: show progress bars (also see `set_progress_bar_config`).
            return_dict: False gives ``(frames, keypoints, fps, audio, video_path, crop_box)``
                (`DiffTEDPipelineOutput.to_tuple`).

        Returns:
            `DiffTEDPipelineOutput`; the first frame is the photo (up to encoding) whenever the
            motion starts at the photo's keypoints (``relative_motion``) and ``composition`` is
            ``"native"``.
        """
        steps = self.num_inference_steps if num_inference_steps is None else num_inference_steps
        guidance = self.guidance_scale if guidance_scale is None else guidance_scale
        fps = self.fps if fps is None else fps
        keep = output_path is None if return_frames is None else return_frames
        relative = self.relative_motion if relative_motion is None else bool(relative_motion)
        drift = self.drift_seconds if drift_seconds is None else drift_seconds
        progress = self._progress(progress)
        # 1. check inputs (cheap checks first, so a bad argument fails before any heavy work)
        self.check_inputs(image, audio, steps, guidance, fps, motion_scale, output, output_path, keep,
                          output_type, render_batch_size)
        scales = check_part_scales(part_scales, self.keypoint_source)
        _check_drift(drift)
        if composition not in COMPOSITIONS:
            raise ValueError(f"composition must be one of {COMPOSITIONS}, got {composition!r}")
        resolve_interpolation(interpolation, 0)  # a bad value fails before any work
        mouth = self._check_mouth_interior(mouth_interior, composition)
        # 2. load and encode the speech
        speech = load_speech(audio)
        features = self.encode_audio(speech)
        # 3. find the speaker and crop
        photo = fit_photo(load_image(image, max_side=max_side), max_side)
        box, source = self.crop_person(photo)
        # 4. source keypoints (the renderer's detector, or the body landmarks; encoded once for every
        # frame) and the person's mask (the still background; the body parts own only the person)
        person = person_mask(photo) if (still_background and composition == "native") or self._part_masks else None
        prepared = self.prepare_source(photo, box, source, person)
        # 5. sample the motion
        keypoints = self.sample_keypoints(features, prepared.kp_source[0], steps, guidance, generator,
                                          motion_scale, speech.num_frames(fps), progress, relative, drift, scales)
        # 6. render, 7. compose (at the photo's resolution) and paste back, 8. write: chunk by
        # chunk, so memory stays bounded
        composer = self.prepare_composition(photo, box, prepared, composition, output == "crop", still_background,
                                            interpolation, person=person, mouth_interior=mouth)
        if composer.mouth is None:
            chunks = (composer(c) for c in self.render_frames(prepared, keypoints, render_mode,
                                                              render_batch_size, progress))
        else:  # the painter reads the keypoints each frame was driven with: resolve the mode once
            driving = self.frame_renderer.driving_keypoints(prepared, keypoints.to(self.device), render_mode)
            rendered = self.render_frames(prepared, driving, "standard", render_batch_size, progress)
            chunks = (composer(c, kp) for c, kp in _with_keypoints(rendered, driving.cpu()))
        frames, video_path = self.write(chunks, speech, fps, output_path, keep)
        if frames is not None and output_type == "pil":
            frames = [Image.fromarray(f) for f in frames]
        kp = keypoints.cpu().numpy()
        result = DiffTEDPipelineOutput(frames, kp, fps, (speech.waveform, speech.sample_rate), video_path, box)
        return result if return_dict else result.to_tuple()

    # ------------------------------------------------------------------------------- steps
    def check_inputs(self, image: Any, audio: Any, steps: int, guidance: float, fps: float, motion_scale: float,
                     output: str, output_path: str | Path | None, keep: bool, output_type: str,
                     batch_size: int) -> None:
        """Step 1: cheap argument checks (files exist, numbers in range, the output is writable);
        raises ValueError / FileNotFoundError naming the argument and its value."""
        for name, value in (("image", image), ("audio", audio)):
            if isinstance(value, (str, Path)) and not Path(value).exists():
                raise FileNotFoundError(f"{name} file {str(value)!r} does not exist")
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"num_inference_steps must be a positive int, got {steps!r}")
        if not isinstance(guidance, (int, float)) or not math.isfinite(guidance) or guidance < 0:
            raise ValueError(f"guidance_scale must be a finite number >= 0, got {guidance!r}")
        _check_positive("fps", fps)
        if not isinstance(motion_scale, (int, float)) or not math.isfinite(motion_scale) or motion_scale < 0:
            raise ValueError(f"motion_scale must be a finite number >= 0, got {motion_scale!r}")
        if output not in ("full", "crop"):
            raise ValueError(f"output must be 'full' or 'crop', got {output!r}")
        if output_type not in ("np", "pil"):
            raise ValueError(f"output_type must be 'np' or 'pil', got {output_type!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"render_batch_size must be a positive int, got {batch_size!r}")
        if output_path is not None:
            check_output_path(output_path)
        elif not keep:
            raise ValueError("return_frames=False needs an output_path, otherwise the frames are lost")

    def encode_audio(self, speech: Speech) -> torch.Tensor:
        """Step 2: audio features at the model's frame rate, ``float32 [T_model, D]``."""
        features = self.audio_features(speech.waveform, speech.sample_rate, self.fps,
                                       num_frames=speech.num_frames(self.fps))
        return torch.from_numpy(features).to(self.device)

    def crop_person(self, photo: np.ndarray) -> tuple[CropBox, torch.Tensor]:
        """Step 3: the TED-style square around the speaker, ``[1, 3, h, w]`` in ``[0, 1]``."""
        person = find_crop(photo)
        logger.info("speaker found by %s: crop %s", person.method, person.box)
        return person.box, crop_to_tensor(photo, person.box, self.resolution)

    def source_keypoints(self, photo: np.ndarray, box: CropBox) -> torch.Tensor | None:
        """Step 4's keypoints of the photo: None for ``"detector"`` (the renderer detects them);
        for ``"body"``, ``[1, N, 2]`` in [-1, 1] of the crop as the renderer sees it (mediapipe on
        the whole photo, `difftted.pipeline.keypoint_source.body_source_keypoints`)."""
        if self.keypoint_source == "detector":
            return None
        return torch.from_numpy(body_source_keypoints(photo, box, self.resolution)).to(self.device)

    def sample_keypoints(self, features: torch.Tensor, kp_source: torch.Tensor, steps: int, guidance: float,
                         generator: torch.Generator | None, motion_scale: float, num_frames: int,
                         progress: bool = True, relative_motion: bool = False,
                         drift_seconds: float = 0.0, part_scales: Mapping[str, float] | None = None) -> torch.Tensor:
        """Step 5: driving keypoints ``[num_frames, N, 2]`` in ``[-1, 1]`` at the output rate.

        Sampled in normalised units at the model's rate, denormalised, taken relative to the
        source keypoints ``kp_source [N, 2]`` (with ``relative_motion``, to the first sampled
        frame, so the clip starts at ``kp_source``), freed of drift slower than
        ``drift_seconds`` (`remove_drift`; 0: off), scaled by ``motion_scale`` and, per body part,
        by ``part_scales`` (`check_part_scales`; parts it leaves out take `part_scales`, the
        pipeline's defaults), then resampled to ``num_frames`` and clamped
        to ``keypoint_limit`` (body keypoints may lie outside the crop, a hand below it).
        """
        scales = {**self._part_scales, **check_part_scales(part_scales, self.keypoint_source)}
        source_norm = self.motion_coding.encode_source(kp_source.float()).reshape(-1)
        motion = sample_motion(self.denoiser, self.scheduler, features, source_norm,
                               num_inference_steps=steps, guidance_scale=guidance, generator=generator,
                               progress=self._progress(progress))
        kp = self.motion_coding.decode(motion.reshape(len(motion), -1, 2), kp_source)  # [T_model, N, 2]
        offsets = kp - (kp[:1] if relative_motion else kp_source)
        if drift_seconds > 0:
            offsets = remove_drift(offsets, self.fps, drift_seconds, keep_start=relative_motion)
        kp = scale_offsets(kp_source, motion_scale * offsets, scales, self.keypoint_source)
        limit = keypoint_limit(self.keypoint_source)
        return resample_frames(kp, num_frames).clamp(-limit, limit)

    def prepare_source(self, photo: np.ndarray, box: CropBox, source: torch.Tensor,
                       person: np.ndarray | None = FIND_PERSON) -> PreparedSource:
        """Step 4: the crop ``source [1, 3, h, w]`` (`crop_person`) encoded once for every frame,
        with its keypoints (`source_keypoints`) and, with `part_masks`, the person's mask in the
        crop (``person``: the photo's `person_mask` ``float32 [H, W]`` or None, computed when
        `FIND_PERSON`), so that a body part owns only the person's pixels inside its capsule
        (`tps.parts`)."""
        foreground = extent = None
        kp_source = self.source_keypoints(photo, box)
        if self._part_masks:
            person = person_mask(photo) if person is FIND_PERSON else person
            if person is not None:
                foreground, extent = self._part_masks_of(source, person[box.y0:box.y0 + box.size,
                                                                        box.x0:box.x0 + box.size], kp_source)
        return self.frame_renderer.prepare(source.to(self.device), kp_source=kp_source, foreground=foreground,
                                           extent=extent)

    def _part_masks_of(self, source: torch.Tensor, person: np.ndarray,
                       kp_source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(foreground, extent)``, each ``[1, P, h, w]``: each part's own mask of the crop
        ``source [1, 3, h, w]``, the person mask of the crop ``person [H', W']`` for every part but
        the hands, which own only their own colours, and what the hands hold past their capsules
        (`difftted.pipeline.hand_masks.part_masks`)."""
        from difftted.motion.body_keypoints import PART_CAPSULES
        from difftted.pipeline.hand_masks import part_masks

        person = torch.nn.functional.interpolate(torch.from_numpy(np.ascontiguousarray(person, dtype=np.float32))[None, None],
                                                 size=tuple(source.shape[-2:]), mode="bilinear", align_corners=False)
        rgb = source[0].detach().float().cpu().permute(1, 2, 0).numpy()
        hands = [i for i, capsule in enumerate(PART_CAPSULES) if capsule[0].endswith("_hand")]
        foreground, extent = part_masks(rgb, person[0, 0].clamp(0.0, 1.0).numpy(),
                                        kp_source[0].detach().double().cpu().numpy(), self.frame_renderer.parts, hands)
        return torch.from_numpy(foreground)[None], torch.from_numpy(extent)[None]

    def prepare_composition(self, photo: np.ndarray, box: CropBox, prepared: PreparedSource,
                            composition: Composition, crop_only: bool, still_background: bool,
                            interpolation: str = "auto", person: np.ndarray | None = FIND_PERSON,
                            mouth_interior: bool = False) -> FrameComposer:
        """Step 7's set-up: the photo's person mask (``person``: float32 [H, W] or None when
        already computed, `FIND_PERSON` to compute it with `person_mask`), the maps of its own
        pose (one render of the source keypoints) and, with ``mouth_interior`` (native
        composition, body keypoints), the mouth painter, for
        `difftted.pipeline.composition.FrameComposer`."""
        if composition == "model":
            return FrameComposer(photo, box, "model", crop_only=crop_only)
        rest = next(self.frame_renderer.iter_render_maps(prepared, prepared.kp_source, batch_size=1, progress=False))
        person = (person_mask(photo) if person is FIND_PERSON else person) if still_background else None
        composer = FrameComposer(photo, box, "native", crop_only=crop_only, rest=rest, person=person,
                                 interpolation=interpolation)
        if mouth_interior:
            try:
                composer.add_mouth_interior(prepared.kp_source)
            except ValueError as err:  # no usable face on the photo: the mouth only stretches
                logger.warning("no mouth interior: %s", err)
        return composer

    def _check_mouth_interior(self, value: bool | None, composition: str) -> bool:
        """``mouth_interior`` -> whether to paint it (see `__call__`)."""
        usable = self.keypoint_source == "body" and composition == "native"
        if value is None:
            return usable
        if not isinstance(value, bool):
            raise ValueError(f"mouth_interior must be True, False or None, got {value!r}")
        if value and not usable:
            raise ValueError(f"mouth_interior=True needs body keypoints and composition='native', got "
                             f"keypoints {self.keypoint_source!r} and composition {composition!r}")
        return value

    def render_frames(self, prepared: PreparedSource, keypoints: torch.Tensor, mode: str, batch_size: int,
                      progress: bool) -> Iterator[RenderedChunk]:
        """Step 6: chunk by chunk, the model's frames ``[b, 3, h, w]`` in ``[0, 1]`` with their
        flow, occlusion and generated pixels (`tps.render.RenderedChunk`)."""
        yield from self.frame_renderer.iter_render_maps(prepared, keypoints.to(self.device), mode=mode,
                                                        batch_size=batch_size, progress=progress)

    def write(self, chunks: Iterator[np.ndarray], speech: Speech, fps: float,
              output_path: str | Path | None, keep: bool) -> tuple[np.ndarray | None, Path | None]:
        """Step 8: encode the chunks (``uint8 [b, H, W, 3]``) to ``output_path`` and/or keep them."""
        kept: list[np.ndarray] = []
        if keep:
            chunks = _tee(chunks, kept)
        path = None
        if output_path is not None:
            path = write_talking_video(output_path, chunks, fps, speech, background=self.background_encoding)
        else:
            for _ in chunks:
                pass
        return (np.concatenate(kept) if keep else None), path


def resample_frames(kp: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Linear resampling in time of ``kp [T, N, 2]`` to ``[num_frames, N, 2]`` (same span)."""
    if kp.shape[0] == num_frames:
        return kp
    if kp.shape[0] == 1:
        return kp.expand(num_frames, *kp.shape[1:]).clone()
    pos = torch.linspace(0, kp.shape[0] - 1, num_frames, device=kp.device, dtype=kp.dtype)
    lo = pos.floor().long().clamp(max=kp.shape[0] - 2)
    w = (pos - lo)[:, None, None]
    return kp[lo] * (1 - w) + kp[lo + 1] * w


def _with_keypoints(chunks: Iterator[RenderedChunk], keypoints: torch.Tensor) -> Iterator[tuple[RenderedChunk, torch.Tensor]]:
    """Each chunk with the rows of ``keypoints [T, K, 2]`` that drove it."""
    start = 0
    for chunk in chunks:
        end = start + len(chunk.deformation)
        yield chunk, keypoints[start:end]
        start = end


def _tee(chunks: Iterator[np.ndarray], kept: list[np.ndarray]) -> Iterator[np.ndarray]:
    for chunk in chunks:
        kept.append(chunk)
        yield chunk


def _check_drift(value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise ValueError(f"drift_seconds must be a finite number >= 0 (0: off), got {value!r}")


def _check_positive(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
