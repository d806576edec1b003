"""Fewer sampling steps with other diffusers schedulers vs 50 DDIM steps: time and motion error.

    python benchmarks/sampling_steps.py                     # 10 s of two real speeches, 3 seeds
    python benchmarks/sampling_steps.py --seconds 4 --seeds 1 --configs ddim:50 dpm++:10

The bundled pipeline (weights/) samples keypoints for the photo examples/astronaut.png with each
scheduler (on the same noise schedule, `SchedulerMixin.from_config`) and step count, from the
same seed, and reports per configuration (mean over speeches and seeds):

- ms per video second of the sampling step alone;
- L1 to the 50-step DDIM sample of the same seed (keypoint units, [-1, 1] is the crop), beside
  the 50-step DDIM distance between two seeds (how far apart two equally good samples are);
- the motion metrics of difftted.evaluation.metrics: beat consistency (BC), jitter (mean
  acceleration) and spread (how far keypoints range), beside the 50-step DDIM row's; the spread
  also as a ratio to the DDIM-50 sample of the same seed and speech (mean, min-max), beside the
  ratio between two DDIM-50 seeds (how much the spread of two equally good samples differs).

A configuration samples "the same motion" when its L1 to DDIM-50 is well below the seed-to-seed
L1 and its BC / jitter / spread match the DDIM-50 row. Prints only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
DEFAULT_SPEECH = [SHARED / "mocap" / "2_scott_0_1_1.wav", SHARED / "talking" / "speech_radio31.wav"]
DEFAULT_CONFIGS = ["ddim:50", "ddim:20", "dpm++:10", "dpm++:20", "unipc:10", "unipc:20"]


def make_scheduler(name: str, config):
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler

    classes = {"ddim": DDIMScheduler, "dpm++": DPMSolverMultistepScheduler, "unipc": UniPCMultistepScheduler}
    if name not in classes:
        raise ValueError(f"scheduler must be one of {sorted(classes)}, got {name!r}")
    return classes[name].from_config(config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--speech", type=Path, nargs="+", default=DEFAULT_SPEECH)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, metavar="NAME:STEPS")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from difftted.evaluation import metrics
    from difftted.audio.speech import load_speech
    from difftted.pipeline import DiffTEDPipeline
    from difftted.pipeline.person import fit_photo, load_image

    configs = [(c.split(":")[0], int(c.split(":")[1])) for c in args.configs]
    if ("ddim", 50) not in configs:
        configs.insert(0, ("ddim", 50))
    pipe = DiffTEDPipeline.from_pretrained(REPO / "weights")
    base_config = pipe.scheduler.config
    _, source = pipe.crop_person(fit_photo(load_image(REPO / "examples" / "astronaut.png"), 1920))
    kp_source = pipe.frame_renderer.prepare(source).kp_source[0]
    results: dict[tuple[str, int], dict[str, list[float]]] = {c: {} for c in configs}
    warm = load_speech((np.sin(np.arange(16000) / 5.0).astype(np.float32), 16000))  # 1 s: first-call costs
    pipe.sample_keypoints(pipe.encode_audio(warm), kp_source, 2, pipe.guidance_scale, torch.Generator().manual_seed(0),
                          1.0, warm.num_frames(pipe.fps), False, pipe.relative_motion)
    seed_gap, seed_spread = [], []
    for path in args.speech:
        speech = load_speech(path)
        cut = int(args.seconds * speech.sample_rate)
        speech = load_speech((speech.waveform[:cut], speech.sample_rate))
        features = pipe.encode_audio(speech)
        frames = speech.num_frames(pipe.fps)
        reference, reference_spread = {}, {}
        for seed in range(args.seeds):
            for name, steps in configs:
                pipe.scheduler = make_scheduler(name, base_config)
                start = time.perf_counter()
                kp = pipe.sample_keypoints(features, kp_source, steps, pipe.guidance_scale,
                                           torch.Generator().manual_seed(seed), 1.0, frames, False,
                                           pipe.relative_motion).numpy()
                row = results[(name, steps)]
                row.setdefault("ms per video s", []).append(1000 * (time.perf_counter() - start) / speech.duration)
                if (name, steps) == ("ddim", 50):
                    reference[seed] = kp
                    reference_spread[seed] = metrics.motion_spread(kp)
                row.setdefault("L1 to DDIM-50", []).append(metrics.l1_distance(kp, reference[seed]))
                row.setdefault("BC", []).append(metrics.beat_consistency(kp, speech.waveform, speech.sample_rate, pipe.fps))
                row.setdefault("jitter", []).append(metrics.jitter(kp, pipe.fps))
                row.setdefault("spread", []).append(metrics.motion_spread(kp))
                row.setdefault("spread / DDIM-50", []).append(row["spread"][-1] / reference_spread[seed])
            if seed:
                seed_gap.append(metrics.l1_distance(reference[seed], reference[seed - 1]))
                seed_spread.append(reference_spread[seed] / reference_spread[seed - 1])
        print(f"{path.name}: done", flush=True)
    print(f"\n{args.seconds:g} s of {len(args.speech)} speeches x {args.seeds} seeds, {torch.get_num_threads()} threads; "
          f"DDIM-50 seed-to-seed L1: {np.mean(seed_gap) if seed_gap else float('nan'):.4f}; "
          f"spread ratio of two seeds: {_spread_noise(seed_spread)}")
    columns = ["ms per video s", "L1 to DDIM-50", "BC", "jitter", "spread", "spread / DDIM-50"]
    print("| scheduler | steps | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for (name, steps), row in results.items():
        cells = [f"{np.mean(row[c]):.0f}" if c == "ms per video s" else f"{np.mean(row[c]):.4f}" for c in columns[:-1]]
        ratio = np.asarray(row["spread / DDIM-50"])  # same seed, same speech: paired
        cells.append(f"{ratio.mean():.3f} ({ratio.min():.3f}-{ratio.max():.3f})")
        print(f"| {name} | {steps} | " + " | ".join(cells) + " |")
    return 0


def _spread_noise(ratios: list[float]) -> str:
    """How much the spread differs between two equally good samples (DDIM-50, consecutive seeds)."""
    if not ratios:
        return "n/a (one seed)"
    r = np.asarray(ratios)
    return f"{r.mean():.3f} ({r.min():.3f}-{r.max():.3f})"


if __name__ == "__main__":
    sys.exit(main())
