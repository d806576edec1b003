"""Assemble demo weights v2 as a pipeline folder for ``weights/``: a trained body-keypoint pipeline
(the denoiser run's ``final/``) with a fine-tuned renderer swapped in, the chosen sampling
defaults written into pipeline.json, and the networks stored as float16.

    python scripts/demo_weights_v2/bundle.py --pipeline WORK/denoiser_body/final \\
        --renderer WORK/renderer_v2 --out weights/v2 --guidance 3 --part-scales head=1.5,mouth=3

float16 is storage only: the loaders cast the tensors back to the modules' float32, so the
pipeline computes exactly as with the float32 files, on weights rounded to float16 (the largest
relative rounding of a weight is 2**-11; the script prints the largest absolute one). The outputs
must be measured again with the stored files (scripts/demo_weights_v2/evaluate.sh), not assumed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from difftted.pipeline.weights import SAFETENSORS_FILES  # noqa: E402


def parse_part_scales(text: str) -> dict[str, float]:
    """``"head=1.5,mouth=1.8"`` -> ``{"head": 1.5, "mouth": 1.8}`` (``""`` -> ``{}``)."""
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        part, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--part-scales: {item!r} is not PART=VALUE (e.g. head=1.5,mouth=1.8)")
        try:
            out[part.strip()] = float(value)
        except ValueError as err:
            raise ValueError(f"--part-scales: {value!r} of {part!r} is not a number") from err
    return out


def store_float16(folder: Path) -> float:
    """Rewrite the pipeline's safetensors files with float32 tensors as float16 (metadata kept);
    returns the largest absolute change of any weight."""
    from safetensors import safe_open
    from safetensors.torch import save_file
    import torch

    worst = 0.0
    for rel in SAFETENSORS_FILES:
        path = folder / rel
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata()
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        half = {k: (v.half() if v.dtype == torch.float32 else v) for k, v in tensors.items()}
        for k, v in tensors.items():
            if v.dtype == torch.float32:
                if not torch.isfinite(half[k]).all():
                    raise ValueError(f"{path}: {k} overflows float16 (largest |w| {v.abs().max():.3g})")
                worst = max(worst, (half[k].float() - v).abs().max().item())
        save_file(half, path, metadata=metadata)
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", required=True, help="trained pipeline folder (the denoiser run's final/)")
    parser.add_argument("--renderer", default=None, help="TPSMotionModel folder to use instead of the pipeline's")
    parser.add_argument("--out", required=True, help="folder to write (replaced)")
    parser.add_argument("--guidance", type=float, default=None, help="default guidance scale (pipeline.json)")
    parser.add_argument("--part-scales", default="", help="default per-part intensity, e.g. head=1.5,mouth=1.8")
    parser.add_argument("--float32", action="store_true", help="keep float32 storage (default: float16)")
    args = parser.parse_args(argv)

    from difftted.pipeline import DiffTEDPipeline

    source, out = Path(args.pipeline), Path(args.out)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "pipeline"
        shutil.copytree(source, staged)
        if args.renderer is not None:
            shutil.rmtree(staged / "renderer")
            shutil.copytree(args.renderer, staged / "renderer")
        pipe = DiffTEDPipeline.from_pretrained(staged)
        if args.guidance is not None:
            pipe.guidance_scale = float(args.guidance)
        pipe.part_scales = parse_part_scales(args.part_scales)
        if out.exists():
            shutil.rmtree(out)
        pipe.save_pretrained(out)
    worst = 0.0 if args.float32 else store_float16(out)
    again = DiffTEDPipeline.from_pretrained(out)  # loads, and computes in float32
    dtypes = {p.dtype for m in (again.denoiser, again.renderer) for p in m.parameters()}
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {out}: {size / 2**20:.1f} MiB, keypoints {again.keypoint_source!r}, guidance "
          f"{again.guidance_scale:g}, part scales {again.part_scales}, parameters {sorted(map(str, dtypes))}, "
          f"largest float16 rounding of a weight {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
