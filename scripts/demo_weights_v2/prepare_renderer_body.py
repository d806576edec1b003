"""Renderer clips with body-anchored keypoint files, from ``../shared/data`` (see
`difftted.renderer_body_data`): ``OUT/{train,test}/<name>.mp4`` + ``<name>.keypoints.npy`` and
``OUT/manifest.json``. OUT must lie outside the repository (the footage never enters it)::

    python scripts/demo_weights_v2/prepare_renderer_body.py --shared ../shared/data \\
        --cuts configs/talking_more_cuts.json --out /work/data/renderer_body
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from difftted.data.renderer_body_data import build_renderer_data, default_clips  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", default=str(REPO_ROOT.parent / "shared" / "data"))
    parser.add_argument("--cuts", default=str(REPO_ROOT / "configs" / "talking_more_cuts.json"),
                        help="jump cuts json (pieces become separate clips)")
    parser.add_argument("--out", required=True, help="output folder, outside the repository")
    parser.add_argument("--size", type=int, default=256, help="side of the square clips (default 256)")
    parser.add_argument("--only", nargs="*", default=None, help="build only these clip names (tests, debugging)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    out = Path(args.out).resolve()
    if out == REPO_ROOT or REPO_ROOT in out.parents:
        print(f"error: --out {out} lies inside the repository; the footage must not enter it", file=sys.stderr)
        return 2
    try:
        clips = default_clips(args.shared, args.cuts)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.only is not None:
        clips = [c for c in clips if c.name in args.only or c.name.split("__")[0] in args.only]
    manifest = build_renderer_data(clips, out, args.size, progress=not args.no_progress)
    print(f"wrote {out}: {len(manifest['clips'])} clips, {len(manifest['skipped'])} skipped, "
          f"minutes {manifest['minutes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
