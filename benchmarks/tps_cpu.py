"""CPU benchmark of the renderer: official frame-by-frame path vs `tps.Renderer`.

Prints, per model and image size, the per-frame CPU time of
- the official path (demo.py: dense motion + inpainting per frame, `tps.render.official_render`),
- the prepared, batched path (`Renderer.prepare` once, `Renderer.render` in batches),
their ratio and the largest absolute output difference; then a separate table of the
output-changing options (bfloat16 autocast, channels-last) with their error; with
``--onnxruntime`` a table of the optional ONNX Runtime backend (`tps.onnx_backend`: the decoder
in onnxruntime, and the decoder and dense motion), timed interleaved with the torch paths.

Random seeded weights (timing does not depend on the values); the source is a real photo
(scikit-image's astronaut, public domain, shipped in the wheel) and the driving keypoints are the
source keypoints plus smooth seeded motion, so the warps look like animation.

    python benchmarks/tps_cpu.py            # the full table (several minutes on 2 threads)
    python benchmarks/tps_cpu.py --quick    # tiny smoke run (seconds)
    python benchmarks/tps_cpu.py --weights weights/renderer --onnxruntime --no-options
                                            # a saved model at its own size, torch vs onnxruntime

Times are the minimum over ``--repeats`` interleaved runs (the machine is shared; the minimum is
the least disturbed run). "prepare" is the one-off per-source cost, excluded from per-frame times.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
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
    # the occlusion heads as oneDNN convolutions: the default before Renderer.shift_add
    "no shift_add": {"shift_add": False},
}


@dataclass
class Case:
    preset: str  # the preset's name, or the weights folder's
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


def make_weights_case(directory: str, frames_256: int, frames_384: int, seed: int = 0) -> Case:
    """A saved model folder at its config's image size (real weights: real flows and occlusions)."""
    model = TPSMotionModel.from_pretrained(directory).eval()
    size = model.config.image_size
    if size[0] != size[1]:
        raise SystemExit(f"{directory}: a square image size is expected, got {size}")
    frames = frames_256 if size[0] <= 256 else frames_384
    from skimage import data

    photo = torch.from_numpy(data.astronaut()).permute(2, 0, 1)[None].float() / 255
    source = F.interpolate(photo, size=size, mode="area").clamp(0, 1)
    with torch.inference_mode():
        kp_source = model.detect(source)
    t = torch.linspace(0, 1, frames)[:, None, None]
    generator = torch.Generator().manual_seed(seed)
    phase = torch.rand(1, *kp_source.shape[1:], generator=generator) * 6.283
    kp_driving = (kp_source + 0.05 * torch.sin(6.283 * t + phase)).clamp(-1, 1)
    return Case(Path(directory).name, size[0], frames, model, source, kp_driving)


def time_official(case: Case) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    frames = official_render(case.model, case.source, case.kp_driving)
    return time.perf_counter() - start, frames


def time_prepared(
    case: Case, batch_size: int, renderer: Renderer | None = None, **options
) -> tuple[float, float, torch.Tensor]:
    renderer = renderer if renderer is not None else Renderer(case.model, **options)
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


def onnx_renderers(case: Case, batch_size: int, cache_dir: str) -> tuple[dict[str, Renderer], float]:
    """The onnxruntime variants, exported and warmed up (kept across repeats: a session is
    built once per renderer); the seconds the first renders took (export + session + warm-up)."""
    start = time.perf_counter()
    renderers = {
        "onnxruntime": Renderer(case.model, backend="onnxruntime", onnx_cache_dir=cache_dir),
        "onnxruntime+motion": Renderer(case.model, backend="onnxruntime", onnx_motion=True, onnx_cache_dir=cache_dir),
    }
    for renderer in renderers.values():
        for compute_batch in {renderer.default_compute_batch(case.source.device, batch_size), batch_size}:
            renderer.compute_batch = compute_batch  # both call shapes: the last chunk may be short
            renderer.render(renderer.prepare(case.source), case.kp_driving[:batch_size], batch_size=batch_size, progress=False)
        renderer.compute_batch = None
    return renderers, time.perf_counter() - start


def bench_case(
    case: Case, batch_size: int, repeats: int, options: bool, onnx_cache: str | None = None
) -> tuple[dict, list[dict]]:
    warm_up(case, batch_size)
    official, prepared, batched, prepare = [], [], [], []
    reference = ours = ours_batched = None
    onnx, onnx_seconds, onnx_frames = {}, 0.0, {}
    if onnx_cache is not None:
        onnx, onnx_seconds = onnx_renderers(case, batch_size, onnx_cache)
    onnx_times: dict[str, list[float]] = {name: [] for name in onnx}
    for _ in range(repeats):  # interleaved, so a burst of load hits every path alike
        seconds, reference = time_official(case)
        official.append(seconds)
        prep, seconds, ours = time_prepared(case, batch_size)
        prepared.append(seconds)
        prepare.append(prep)
        _, seconds, ours_batched = time_prepared(case, batch_size, compute_batch=batch_size)
        batched.append(seconds)
        for name, renderer in onnx.items():
            _, seconds, onnx_frames[name] = time_prepared(case, batch_size, renderer)
            onnx_times[name].append(seconds)
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
    if onnx:
        row["onnx_setup"] = onnx_seconds
        for name, frames in onnx_frames.items():
            row[name] = min(onnx_times[name]) * per_frame
            row[name + "_diff"] = float((frames - ours).abs().max())
            row[name + "_diff_official"] = float((frames - reference).abs().max())
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
    onnx_rows = [r for r in rows if "onnx_setup" in r]
    if onnx_rows:
        print("\nonnxruntime backend (tps.onnx_backend), timed interleaved with the table above (min over repeats)")
        print("decoder: Renderer(backend='onnxruntime'); +motion: onnx_motion=True as well. diff: max abs against")
        print("the torch prepared path's frames / the official path's; setup: export + sessions + warm-up, once")
        print("| model | size | prepared (torch) | decoder | speed-up | diff | diff official "
              "| +motion | speed-up | diff | diff official | setup |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in onnx_rows:
            cells = [f"{r['model']}", f"{r['size']}", f"{r['prepared']:.0f}"]
            for name in ("onnxruntime", "onnxruntime+motion"):
                cells += [f"{r[name]:.0f}", f"{r['prepared'] / r[name]:.2f}x", f"{r[name + '_diff']:.1e}",
                          f"{r[name + '_diff_official']:.1e}"]
            cells.append(f"{r['onnx_setup']:.1f} s")
            print("| " + " | ".join(cells) + " |")


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
    parser.add_argument("--weights", action="append", default=None, metavar="DIR",
                        help="a saved model folder (model.safetensors + config.json) at its own image size, "
                        "instead of random weights (repeatable; replaces the preset cases unless --case is given)")
    parser.add_argument("--onnxruntime", action="store_true",
                        help="also time the optional onnxruntime backend (needs onnxruntime and onnx installed)")
    args = parser.parse_args(argv)
    if args.threads < 1 or args.batch_size < 1 or args.repeats < 1:
        parser.error("--threads, --batch-size and --repeats must be >= 1")
    torch.set_num_threads(args.threads)
    if args.onnxruntime:
        try:
            from tps.onnx_backend import require_onnxruntime

            require_onnxruntime()
        except ImportError as err:
            parser.error(str(err))
    if args.case or args.weights:
        cases = []
        for spec in args.case or []:
            preset, _, size = spec.partition(":")
            if not size.isdigit():
                parser.error(f"--case must be PRESET:SIZE, got {spec!r}")
            cases.append((preset, int(size)))
        cases += [(directory, None) for directory in args.weights or []]
    elif args.quick:
        cases = [("tiny-64", 64)]
    else:
        cases = list(FULL_CASES)
    repeats = 1 if args.quick else args.repeats
    print(f"load average before: {_load()}", flush=True)
    rows, option_rows = [], []
    with tempfile.TemporaryDirectory(prefix="tps-onnx-bench-") as onnx_cache:
        for preset, size in cases:
            if size is None:  # a weights folder: its config's size
                case = make_weights_case(preset, args.frames_256, args.frames_384)
            else:
                case = make_case(preset, size, 3 if args.quick else (args.frames_256 if size <= 256 else args.frames_384))
            print(f"{case.preset} at {case.size}x{case.size}: {case.frames} frames x {repeats} repeats ...", flush=True)
            cache = onnx_cache if args.onnxruntime else None
            row, options = bench_case(case, args.batch_size, repeats, not args.no_options, cache)
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
