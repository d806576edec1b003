"""``python -m difftted generate``: one photo + one speech file -> a talking video (mp4).

    python -m difftted generate --image me.jpg --audio talk.wav --out talk.mp4 --seed 0

Every input is checked before the weights are loaded or anything is rendered: a missing or
unreadable file, audio that is empty or silent, an output path that cannot be written and missing
weights each end the command with one ``error: ...`` line and a non-zero status.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import time
from pathlib import Path

from difftted.defaults import DEFAULT_MAX_SIDE, DEFAULT_RENDER_BATCH, DEFAULT_RENDER_PRECISION, RENDER_PRECISIONS

logger = logging.getLogger(__name__)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from err
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m difftted generate",
        description="Animate a photo with a speech recording: a TED-style talking video (H.264 + AAC mp4).",
    )
    parser.add_argument("--image", required=True, type=Path, help="photo of the speaker (any size; jpg, png, ...)")
    parser.add_argument("--audio", required=True, type=Path, help="speech (wav, flac, mp3, or a video's sound)")
    parser.add_argument("--out", required=True, type=Path, help="output video, .mp4")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed, 0 to 2**31-1 (default: a fresh one, printed)")
    parser.add_argument("--steps", type=_positive_int, default=None, help="diffusion steps (default: the weights')")
    parser.add_argument("--guidance", type=_non_negative_float, default=None,
                        help="classifier-free guidance scale (default: the weights')")
    parser.add_argument("--fps", type=_non_negative_float, default=None, help="output frame rate, 1 to 60 (default: the model's)")
    parser.add_argument("--motion-scale", type=_non_negative_float, default=1.0,
                        help="0 = still, 1 = as sampled, >1 = livelier (default 1)")
    for part, what in (("head", "head and neck"), ("mouth", "mouth and jaw"), ("arms", "arms and hands")):
        parser.add_argument(f"--{part}-scale", type=_non_negative_float, default=None,
                            help=f"intensity of the {what} on top of --motion-scale (default 1); only for "
                                 "weights with body keypoints (pipeline.json \"keypoints\": \"body\")")
    parser.add_argument("--relative-motion", action=argparse.BooleanOptionalAction, default=None,
                        help="drive the photo by the motion relative to its first frame, so the video starts "
                             "at the photo (default: the weights')")
    parser.add_argument("--drift-seconds", type=_non_negative_float, default=None,
                        help="pull posture held longer than about this back to the photo's, so long speech does "
                             "not wander off; 0 = off (default: the weights', else 4)")
    parser.add_argument("--composition", choices=("native", "model"), default="native",
                        help="native: warp the photo's own pixels at their resolution and generate only what the "
                             "motion uncovers (default); model: scale the renderer's frames up (earlier releases)")
    parser.add_argument("--interpolation", choices=("auto", "spline", "bicubic"), default="auto",
                        help="native composition's resampling of the photo: auto (default: spline for crops up to "
                             "1024 px, bicubic above), spline (the photo upsampled 2x by its quintic spline once, "
                             "then bicubic: sharper, costlier on large photos) or bicubic (earlier releases)")
    parser.add_argument("--render-precision", choices=RENDER_PRECISIONS, default=DEFAULT_RENDER_PRECISION,
                        help="arithmetic of the renderer's inpainting network: auto (default: bfloat16 where the "
                             "CPU or GPU has bfloat16 units, else float32), float32, or bfloat16 (changes the "
                             "generated pixels by float rounding only; slower on CPUs without bfloat16 units)")
    parser.add_argument("--part-masks", action=argparse.BooleanOptionalAction, default=None,
                        help="draw the body parts (head, mouth, arms, hands) into the renderer's motion so hands and "
                             "lips move with their keypoints (default: on for weights with body keypoints; those "
                             "alone have parts)")
    parser.add_argument("--mouth-interior", action=argparse.BooleanOptionalAction, default=None,
                        help="paint the inside of the mouth where the sampled lips open past the photo's closed "
                             "ones (default: on for weights with body keypoints and native composition)")
    parser.add_argument("--still-background", action=argparse.BooleanOptionalAction, default=True,
                        help="keep the photo's pixels wherever the person is not (native composition; default on)")
    parser.add_argument("--weights", default=None,
                        help="pipeline folder or Hugging Face Hub repo id (default: $DIFFTTED_WEIGHTS, then weights/)")
    parser.add_argument("--crop", action="store_true", help="write the animated square crop alone, not the full photo")
    parser.add_argument("--max-side", type=_positive_int, default=DEFAULT_MAX_SIDE,
                        help="longer side of the full-photo video, at least the model's size; larger photos are "
                             f"downscaled (default {DEFAULT_MAX_SIDE})")
    parser.add_argument("--batch-size", type=_positive_int, default=DEFAULT_RENDER_BATCH,
                        help=f"frames rendered per chunk (default {DEFAULT_RENDER_BATCH})")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status. Bad input raises (see `difftted.__main__`)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(message)s")
    # Cheap checks first: nothing heavy is loaded until every input is known to be usable.
    from difftted import limits
    from difftted.audio.speech import load_speech
    from difftted.pipeline.output import check_output_path
    from difftted.pipeline.person import load_image
    from difftted.pipeline.keypoint_source import check_part_scales
    from difftted.pipeline.weights import pipeline_keypoints, renderer_side, resolve_weights

    if args.fps is not None:
        limits.check_fps(args.fps, "--fps")
    if args.seed is not None:
        limits.check_seed(args.seed, "--seed")
    out = check_output_path(args.out, name="--out")
    photo = load_image(args.image, name="--image", max_side=args.max_side)
    speech = load_speech(args.audio, name="--audio")
    weights = resolve_weights(args.weights)
    limits.check_max_side(args.max_side, renderer_side(weights), "--max-side")
    part_scales = {p: getattr(args, f"{p}_scale") for p in ("head", "mouth", "arms")
                   if getattr(args, f"{p}_scale") is not None}
    part_scales = check_part_scales(part_scales, pipeline_keypoints(weights), {p: f"--{p}-scale" for p in part_scales})
    if args.part_masks and pipeline_keypoints(weights) != "body":
        raise ValueError(f"--part-masks needs weights with body keypoints (pipeline.json \"keypoints\": \"body\"); "
                         f"{weights} has {pipeline_keypoints(weights)!r} keypoints")

    import torch

    from difftted.pipeline import DiffTEDPipeline

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device!r}: this torch build or machine has no CUDA device; use --device cpu")
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    start = time.perf_counter()
    pipe = DiffTEDPipeline.from_pretrained(weights, device=device)
    pipe.set_progress_bar_config(disable=args.quiet)
    pipe.render_precision = args.render_precision
    if args.part_masks is not None:
        pipe.part_masks = args.part_masks
    generator = torch.Generator(device=device).manual_seed(seed)
    result = pipe(photo, speech, num_inference_steps=args.steps, guidance_scale=args.guidance,
                  generator=generator, fps=args.fps, motion_scale=args.motion_scale, part_scales=part_scales,
                  relative_motion=args.relative_motion, drift_seconds=args.drift_seconds,
                  composition=args.composition, still_background=args.still_background,
                  interpolation=args.interpolation, mouth_interior=args.mouth_interior,
                  output="crop" if args.crop else "full", output_path=out, return_frames=False,
                  max_side=args.max_side, render_batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    print(f"wrote {result.video_path} ({len(result.keypoints)} frames at {result.fps:g} fps, "
          f"{speech.duration:.2f} s of speech, seed {seed}, {seconds:.1f} s)")
    return 0


if __name__ == "__main__":
    import sys

    from difftted.__main__ import run_command

    sys.exit(run_command(main))
