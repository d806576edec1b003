"""Cost of the composition step per frame: the model path's paste against native composition.

    python benchmarks/compose_cpu.py [--threads 2] [--size 512] [--chunk 8] [--interpolations spline bicubic]

`difftted.pipeline.composition.FrameComposer` alone on synthetic rendered chunks (a 256 model,
a 64x64 flow, a square crop of 0.91 of the photo, as for the astronaut), side by side in one
process: ``model`` (scale the render up and paste), ``native`` (warp the crop at its own size,
generated pixels where uncovered) with and without the still background, once per native
``interpolation`` (``spline``, the default, and ``bicubic``, the earlier one). Prints ms per
frame, and the one-time set-up of each composer (the spline's 2x upsampling of the crop).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=512, help="photo side in pixels (default 512)")
    parser.add_argument("--chunk", type=int, default=8, help="frames per chunk (default 8)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--interpolations", nargs="+", default=["spline", "bicubic"],
                        choices=("spline", "bicubic", "bilinear"), help="native warps to compare (default both)")
    args = parser.parse_args(argv)
    from difftted.pipeline.composition import FrameComposer
    from difftted.pipeline.person import CropBox
    from tps.render import RenderedChunk
    from tps.transform import make_coordinate_grid

    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    side = int(0.91 * args.size)
    box = CropBox(0, args.size - side, side)
    person = np.zeros((args.size, args.size), np.float32)
    person[args.size // 5 :, args.size // 5 : 4 * args.size // 5] = 1.0
    b = args.chunk
    flow = make_coordinate_grid(64, 64)[None].repeat(b, 1, 1, 1) + 0.01 * torch.randn(b, 64, 64, 2, generator=gen)
    chunk = RenderedChunk(torch.rand(b, 3, 256, 256, generator=gen), torch.rand(b, 3, 256, 256, generator=gen),
                          flow, torch.rand(b, 1, 256, 256, generator=gen))
    rest = RenderedChunk(chunk.frames[:1], chunk.generated[:1], make_coordinate_grid(64, 64)[None],
                         torch.ones(1, 1, 256, 256))
    setup, composers = {}, {}

    def add(name, *a, **kw):
        start = time.perf_counter()
        composers[name] = FrameComposer(*a, **kw)
        setup[name] = time.perf_counter() - start

    add("model (paste)", photo, box, "model")
    for how in args.interpolations:
        add(f"native, {how}", photo, box, "native", rest=rest, interpolation=how)
        add(f"native, {how} + still bg", photo, box, "native", rest=rest, person=person, interpolation=how)
    print(f"photo {args.size}x{args.size}, crop {side}, {args.threads} threads, chunks of {b}")
    times = {name: [] for name in composers}
    for _ in range(args.repeats):  # interleaved, so a burst of load hits all alike
        for name, composer in composers.items():
            start = time.perf_counter()
            composer(chunk)
            times[name].append((time.perf_counter() - start) / b * 1000)
    for name, values in times.items():
        print(f"{name:32s} {min(values):7.1f} ms/frame (min of {args.repeats}), median {np.median(values):5.1f}"
              f"; set-up {setup[name] * 1000:6.1f} ms once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
