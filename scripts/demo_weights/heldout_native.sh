#!/usr/bin/env bash
# Renderer reconstruction of the four held-out clips at their own resolution (`tps evaluate
# --native`: the upscaled model output beside composition at the clip's size), one json per clip.
# None of the four trained the bundled renderer, the 128 renderer or the v2 renderer.
#
#   bash scripts/demo_weights/heldout_native.sh weights/renderer OUT_DIR [--max-frames 100]
#
#   Katie Hill  talking/ (512, head and shoulders)        couch  talking_more/upper_body/ub09 (649 crop, hands)
#   lia_ted     ted_silent/lia_ted_driving3 (256, stage)  ted_grid_4  ted_silent/ted_grid_4 (384 cell)
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 RENDERER_DIR OUT_DIR [tps evaluate options]" >&2; exit 2; }
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SHARED="${SHARED:-$REPO/../shared/data}"
WEIGHTS="$1"; OUT="$2"; shift 2
EXTRA=("$@"); [[ ${#EXTRA[@]} -gt 0 ]] || EXTRA=(--max-frames 100)
mkdir -p "$OUT"
run() {  # NAME CLIP [--crop BOX]
  local name="$1" clip="$2"; shift 2
  python -m tps evaluate --weights "$WEIGHTS" --data "$SHARED/$clip" "$@" --native --no-progress \
    --json "$OUT/$name.json" "${EXTRA[@]}" | tail -2 | sed "s/^mean */$name  /"
}
run katie talking/examples_ref_video_WDA_KatieHill_000.mp4
run couch talking_more/upper_body/ub09_skyreelsA1_drv5_couch_youtuber.mp4 --crop 4:653,304:953
run lia_ted ted_silent/lia_ted_driving3.mp4
run ted_grid_4 ted_silent/ted_grid_4.mp4 --crop 384:768,164:548
