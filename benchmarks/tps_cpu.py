"""CPU benchmark of the renderer: official frame-by-frame path vs `tps.Renderer`.

Prints, per model and image size, the per-frame CPU time of
- the official path (demo.py: dense motion + inpainting per frame, `tps.render.official_render`),
- the prepared, batched path (`Renderer.prepare` once, `Renderer.render` in batches),
their ratio and the largest absolute output difference; then a separate table of the
output-changing options (bfloat16 autocast, channels-last) with their error.

Random seeded weights (timing does not depend on the values); the source is a real photo
(scikit-image's astronaut, public domain, shipped in the wheel) and the driving keypoints are the
source keypoints plus smooth seeded motion, so the warps look like animation.

    python benchmarks/tps_cpu.py            # the full table (several minutes on 2 threads)
    python benchmarks/tps_cpu.py --quick    # tiny smoke run (seconds)

Times are the minimum over ``--repeats`` interleaved runs (the machine is shared; the minimum is
the least disturbed run). "prepare" is the one-off per-source cost, excluded from per-frame times.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from tps.config import get_preset  # noqa: E402
from tps.model import TPSMotionModel  # noqa: E402
from tps.render import Renderer, official_render  # noqa: E402

# (preset, image size) pairs of the full run; the issue's reference figures are for ted-384.
FULL_CASES = (("ted-384", 256), ("ted-384", 384), ("lite-256", 256), ("lite-256", 384))
OPTIONS = {
    "bfloat16": {"bfloat16": True},
    "channels_last": {"channels_last": True},
    "bfloat16+channels_last": {"bfloat16": True, "channels_last": True},
}


@dataclass
class Case:
    preset: str
    size: int
    frames: int
    model: TPSMotionModel
    source: torch.Tensor
    kp_driving: torch.Tensor


def make_case(preset: str, size: int, frames: int, seed: int = 0) -> Case:
    torch.manual_seed(seed)
    config = get_preset(preset).replace(image_size=(size, size))
    model = TPSMotionModel(config).eval()
    from skimage import data

    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255
    source = F.interpolate(photo, size=(size, size), mode="area").clamp(0, 1)
    with torch.inference_mode():
        kp_source = model.detect(source)
    t = torch.linspace(0, 1, frames)[:, None, None]
    generator = torch.Generator().manual_seed(seed)
    phase = torch.rand(1, *kp_source.shape[1:], generator=generator) * 6.283
    motion = 0.05 * torch.sin(6.283 * t + phase)  # a smooth sway of every keypoint
    return Case(preset, size, frames, model, source, (kp_source + motion).clamp(-1, 1))


def time_official(case: Case) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    frames = official_render(case.model, case.source, case.kp_driving)
    return time.perf_counter() - start, frames


def time_prepared(case: Case, batch_size: int, **options) -> tuple[float, float, torch.Tensor]:
    renderer = Renderer(case.model, **options)
    start = time.perf_counter()
    prepared = renderer.prepare(case.source)
    middle = time.perf_counter()
    frames = renderer.render(prepared, case.kp_driving, batch_size=batch_size, progress=False)
    return middle - start, time.perf_counter() - middle, frames


def warm_up(case: Case, batch_size: int) -> None:
    """One short run of each path: oneDNN builds its kernels on first use of each shape."""
    official_render(case.model, case.source, case.kp_driving[:1])
    for compute_batch in (None, batch_size):
        renderer = Renderer(case.model, compute_batch=compute_batch)
        renderer.render(renderer.prepare(case.source), case.kp_driving[:batch_size], batch_size=batch_size, progress=False)


def bench_case(case: Case, batch_size: int, repeats: int, options: bool) -> tuple[dict, list[dict]]:
    warm_up(case, batch_size)
    official, prepared, batched, prepare = [], [], [], []
    reference = ours = ours_batched = None
    for _ in range(repeats):  # interleaved, so a burst of load hits every path alike
        seconds, reference = time_official(case)
        official.append(seconds)
        prep, seconds, ours = time_prepared(case, batch_size)
        prepared.append(seconds)
        prepare.append(prep)
        _, seconds, ours_batched = time_prepared(case, batch_size, compute_batch=batch_size)
        batched.append(seconds)
    per_frame = 1000 / case.frames
    row = {
        "model": case.preset,
        "size": case.size,
        "frames": case.frames,
        "official": min(official) * per_frame,
        "prepared": min(prepared) * per_frame,
        "batched": min(batched) * per_frame,
        "prepare": min(prepare) * 1000,
        "diff": float((ours - reference).abs().max()),
        "diff_batched": float((ours_batched - reference).abs().max()),
    }
    option_rows = []
    if options:
        for name, flags in OPTIONS.items():
            time_prepared(Case(case.preset, case.size, 1, case.model, case.source, case.kp_driving[:1]), batch_size, **flags)
            _, elapsed, frames = time_prepared(case, batch_size, **flags)  # one run: a side table
            ms = elapsed * per_frame
            option_rows.append(
                {
                    "model": case.preset,
                    "size": case.size,
                    "option": name,
                    "ms": ms,
                    "ratio": row["official"] / ms,
                    "diff": float((frames - reference).abs().max()),
                }
            )
    return row, option_rows


def print_tables(rows: list[dict], option_rows: list[dict], threads: int, batch_size: int) -> None:
    print(f"\nper-frame CPU time, {threads} threads (wall ms/frame; min over repeats)")
    print("prepared: Renderer defaults (on a CPU one frame per network call, chunks of %d);" % batch_size)
    print("batched: the same with compute_batch=%d (%d frames per network call)" % (batch_size, batch_size))
    print("| model | size | frames | official | prepared | speed-up | max abs diff | batched | speed-up | max abs diff | prepare (once) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['size']} | {r['frames']} | {r['official']:.0f} | {r['prepared']:.0f} "
            f"| {r['official'] / r['prepared']:.2f}x | {r['diff']:.1e} | {r['batched']:.0f} "
            f"| {r['official'] / r['batched']:.2f}x | {r['diff_batched']:.1e} | {r['prepare']:.0f} ms |"
        )
    if option_rows:
        print("\noutput-changing options (NOT the default), on top of the prepared path (one run each)")
        print("| model | size | option | ms/frame | vs official | max abs diff |")
        print("|---|---|---|---|---|---|")
        for r in option_rows:
            print(f"| {r['model']} | {r['size']} | {r['option']} | {r['ms']:.0f} | {r['ratio']:.2f}x | {r['diff']:.1e} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny-64 at 64x64, 3 frames, 1 repeat: a smoke run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--frames-256", type=int, default=8, help="frames per run at sizes <= 256")
    parser.add_argument("--frames-384", type=int, default=4, help="frames per run at 384 (ted: ~2.5 s/frame)")
    parser.add_argument("--no-options", action="store_true", help="skip the output-changing options table")
    parser.add_argument("--case", action="append", default=None, metavar="PRESET:SIZE", help="e.g. ted-384:384 (repeatable)")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.batch_size < 1 or args.repeats < 1:
        parser.error("--threads, --batch-size and --repeats must be >= 1")
    torch.set_num_threads(args.threads)
    if args.case:
        cases = []
        for spec in args.case:
            preset, _, size = spec.partition(":")
            if not size.isdigit():
                parser.error(f"--case must be PRESET:SIZE, got {spec!r}")
            cases.append((preset, int(size)))
    elif args.quick:
        cases = [("tiny-64", 64)]
    else:
        cases = list(FULL_CASES)
    repeats = 1 if args.quick else args.repeats
    print(f"load average before: {_load()}", flush=True)
    rows, option_rows = [], []
    for preset, size in cases:
        frames = 3 if args.quick else (args.frames_256 if size <= 256 else args.frames_384)
        print(f"{preset} at {size}x{size}: {frames} frames x {repeats} repeats ...", flush=True)
        row, options = bench_case(make_case(preset, size, frames), args.batch_size, repeats, not args.no_options)
        rows.append(row)
        option_rows += options
    print(f"load average after: {_load()}")
    print_tables(rows, option_rows, args.threads, args.batch_size)
    return 0


def _load() -> str:
    """1/5/15-minute load averages: timings are only comparable on a quiet machine."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unavailable"


if __name__ == "__main__":
    sys.exit(main())
