"""How far the sampled keypoints stray from the photo's, per window of a long speech.

    python scripts/fidelity/keypoint_drift.py --image examples/astronaut.png --audio SPEECH.wav \
        [--weights weights] [--seeds 0 1] [--drift-seconds 0 4] [--window 10]

For each seed and drift-removal setting (0 = off), the pipeline's own keypoint sampling step
(`DiffTEDPipeline.sample_keypoints`, relative motion as the weights say) on the whole speech, then
the mean distance of the keypoints from the photo's (in [-1, 1] units), per ``--window`` seconds.
A long speech without drift removal shows an upward trend; with it, none. No frames are rendered.

``--shift S ...`` repeats the run with the speech started S seconds later, wrapping around (the
same words in another order): if a window's distance follows what is said in it, it moves with
the words; if it followed the window's position (a start transient, a decay), it would stay.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--audio", type=Path, required=True)
    parser.add_argument("--weights", default=str(REPO / "weights"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--drift-seconds", type=float, nargs="+", default=[0.0, 4.0])
    parser.add_argument("--window", type=float, default=10.0, help="seconds per window (default 10)")
    parser.add_argument("--shift", type=float, nargs="+", default=[0.0],
                        help="seconds to start the speech later, wrapping around (default 0)")
    args = parser.parse_args(argv)
    from difftted import DiffTEDPipeline
    from difftted.audio.speech import load_speech
    from difftted.pipeline.person import fit_photo, load_image

    pipe = DiffTEDPipeline.from_pretrained(args.weights)
    pipe.set_progress_bar_config(disable=True)
    _, source = pipe.crop_person(fit_photo(load_image(args.image), 1920))
    kp_source = pipe.frame_renderer.prepare(source).kp_source[0]
    speech = load_speech(args.audio)
    frames = speech.num_frames(pipe.fps)
    size = int(round(args.window * pipe.fps))
    print(f"{frames / pipe.fps:.1f} s of speech; mean keypoint distance from the photo per {args.window:g} s window")
    for shift, drift, seed in itertools.product(args.shift, args.drift_seconds, args.seeds):
        if not 0 <= shift < speech.duration:
            raise ValueError(f"--shift must lie in [0, {speech.duration:.1f}) s, got {shift}")
        wave = np.roll(speech.waveform, -int(round(shift * speech.sample_rate)), axis=0)
        features = pipe.encode_audio(load_speech((wave, speech.sample_rate)))
        kp = pipe.sample_keypoints(features, kp_source, pipe.num_inference_steps, pipe.guidance_scale,
                                   torch.Generator().manual_seed(seed), 1.0, frames, False,
                                   pipe.relative_motion, drift)
        dist = (kp - kp_source).norm(dim=-1).mean(dim=-1).numpy()
        windows = [float(dist[i : i + size].mean()) for i in range(0, frames, size)]
        slope = np.polyfit(np.arange(len(windows)), windows, 1)[0] if len(windows) > 1 else 0.0
        print(f"shift {shift:g} s, drift_seconds {drift:g}, seed {seed}: " + " ".join(f"{w:.4f}" for w in windows)
              + f"   (slope per window {slope:+.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
