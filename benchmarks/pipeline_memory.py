"""Peak memory and time of photo + speech -> mp4 for 10 s, 60 s and 300 s of audio.

    python benchmarks/pipeline_memory.py                       # tiny components, CPU
    python benchmarks/pipeline_memory.py --components lite --durations 10 60 --device cuda

Every duration runs in a fresh process, so ``ru_maxrss`` (the peak resident memory of that
process) belongs to that run alone. Rendering, pasting and encoding go chunk by chunk, so the
peak should stay flat as the audio grows: what grows with T is only the keypoints ([T, 50, 2]),
the audio features ([T, D]) and the waveform itself.

Components have random weights (no trained weights exist yet): memory and time depend on the
architecture, not on the values. ``tiny``: the tests' tiny-64 renderer and a 1-layer denoiser;
``lite``: the ``lite-256`` renderer and the default 6.5M-parameter denoiser. The audio is
synthetic speech-like noise (amplitude-modulated bands), so no data set is needed. The photo is
scikit-image's astronaut (512x512) on a ``--photo-size`` canvas.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def build_pipeline(components: str, seed: int = 0):
    import torch
    from diffusers import DDIMScheduler

    from difftted.audio.features import AudioFeatureConfig
    from difftted.motion.denoiser import KeypointDenoiser
    from difftted.motion.keypoints import KeypointStats
    from difftted.pipeline import DiffTEDPipeline
    from tps import TPSMotionModel, get_preset

    torch.manual_seed(seed)
    if components == "tiny":
        audio = AudioFeatureConfig(n_mels=16)
        renderer = TPSMotionModel.from_config(get_preset("tiny-64"))
        denoiser = KeypointDenoiser(num_keypoints=50, audio_dim=audio.feature_dim, hidden_dim=32, num_layers=1,
                                    num_heads=2, max_frames=16, context_frames=2)
    else:
        audio = AudioFeatureConfig()
        renderer = TPSMotionModel.from_config(get_preset("lite-256"))
        denoiser = KeypointDenoiser(num_keypoints=50, audio_dim=audio.feature_dim)
    stats = KeypointStats(mean=np.zeros((50, 2)), std=np.full((50, 2), 0.2))
    scheduler = DDIMScheduler(num_train_timesteps=500, beta_schedule="linear", clip_sample=False)
    return DiffTEDPipeline(denoiser, scheduler, renderer, stats, audio)


def speech_like(seconds: float, sr: int = 16000, seed: int = 0) -> np.ndarray:
    """Noise shaped by a syllable-rate (4 Hz) envelope with pauses: loud, never silent."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    envelope = 0.05 + np.clip(np.sin(2 * np.pi * 4 * t) * np.sin(2 * np.pi * 0.3 * t), 0, None)
    return (0.3 * envelope * rng.standard_normal(t.shape)).astype(np.float32)


def child(args: argparse.Namespace) -> None:
    """One run, in its own process; prints one json line."""
    import soundfile
    import torch
    from skimage import data

    torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix="difftted_bench_"))
    audio_path = tmp / "speech.wav"
    soundfile.write(str(audio_path), speech_like(args.child), 16000)
    h, w = args.photo_size
    photo = np.full((h, w, 3), 200, np.uint8)
    y0, x0 = (h - 512) // 2, (w - 512) // 2
    photo[y0:y0 + 512, x0:x0 + 512] = data.astronaut()
    pipe = build_pipeline(args.components).to(args.device)
    pipe.set_progress_bar_config(disable=True)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    result = pipe(photo, audio_path, num_inference_steps=args.steps, generator=torch.Generator(args.device).manual_seed(0),
                  output_path=tmp / "out.mp4", return_frames=False)
    seconds = time.perf_counter() - start
    from tps.video import video_info

    info = video_info(result.video_path)
    print(json.dumps({
        "audio_s": args.child, "frames": len(result.keypoints), "video_s": info.duration,
        "seconds": round(seconds, 1), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "rss_after_load_mb": round(rss_before),
        "cuda_peak_mb": round(torch.cuda.max_memory_allocated() / 2**20) if args.device.startswith("cuda") else None,
    }))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--durations", type=float, nargs="+", default=[10, 60, 300])
    parser.add_argument("--components", choices=["tiny", "lite"], default="tiny")
    parser.add_argument("--steps", type=int, default=2, help="denoising steps (default 2: memory is the point)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--photo-size", type=int, nargs=2, default=[720, 1280], metavar=("H", "W"))
    parser.add_argument("--child", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        child(args)
        return 0
    print(f"components={args.components} (random weights) device={args.device} steps={args.steps} "
          f"photo={args.photo_size[1]}x{args.photo_size[0]} threads={args.threads}")
    print(f"{'audio s':>8} {'frames':>7} {'video s':>8} {'time s':>8} {'peak RSS MB':>12} {'RSS after load MB':>18} {'CUDA peak MB':>13}")
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS=str(args.threads))
    for duration in args.durations:
        cmd = [sys.executable, __file__, "--child", str(duration), "--components", args.components,
               "--steps", str(args.steps), "--device", args.device, "--threads", str(args.threads),
               "--photo-size", *map(str, args.photo_size)]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(proc.stderr[-2000:], file=sys.stderr)
            return proc.returncode
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{r['audio_s']:>8g} {r['frames']:>7} {r['video_s']:>8.2f} {r['seconds']:>8.1f} {r['peak_rss_mb']:>12} "
              f"{r['rss_after_load_mb']:>18} {str(r['cuda_peak_mb']):>13}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
