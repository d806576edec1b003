#!/usr/bin/env bash
# The bundled demo weights, end to end: prepare clips, train the renderer (128 then 256),
# build the motion dataset with the trained detector, train the denoiser, assemble weights/.
# See scripts/demo_weights/README.md. Run from anywhere; needs ../shared/data beside the repo.
#
#   bash scripts/demo_weights/run.sh                      # the recipe of the bundled weights
#   RENDERER_MINUTES_128=600 RENDERER_MINUTES_256=240 bash scripts/demo_weights/run.sh   # better
#
# The renderer phases are bounded by wall-clock minutes (CPU speed varies by machine and load):
# each phase runs under `timeout` and the newest checkpoint (saved every 50 / 25 steps) is used.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SHARED="${SHARED:-$REPO/../shared/data}"
WORK="${WORK:-/tmp/difftted_demo}"            # outside the repository: footage never enters it
RENDERER_MINUTES_128="${RENDERER_MINUTES_128:-50}"
RENDERER_MINUTES_256="${RENDERER_MINUTES_256:-100}"
DENOISER_STEPS="${DENOISER_STEPS:-2000}"
THREADS="${THREADS:-1}"                        # torch threads per process (2 on an idle 2-core machine)
OUT_WEIGHTS="${OUT_WEIGHTS:-$REPO/weights}"
CPU_FLAG="${CPU_FLAG---cpu}"                  # empty: train on the GPU where there is one
export OMP_NUM_THREADS="$THREADS"

cd "$REPO"
# shellcheck source=scripts/demo_weights/train_steps.sh
source "$REPO/scripts/demo_weights/train_steps.sh"   # newest_model, train_for

python scripts/demo_weights/prepare_data.py --shared "$SHARED" --out "$WORK/data"

# 1. renderer at 128x128 (4x cheaper per pair), then at 256x256 from those weights
train_for "$RENDERER_MINUTES_128" configs/tps/lite-256-demo.json "$WORK/data/renderer" "$WORK/renderer_128"
python scripts/demo_weights/retarget_renderer.py --model "$(newest_model "$WORK/renderer_128")" \
  --out "$WORK/renderer_128_at_256" --image-size 256
train_for "$RENDERER_MINUTES_256" scripts/demo_weights/renderer-finetune-256.json "$WORK/data/renderer" \
  "$WORK/renderer_256" --init "$WORK/renderer_128_at_256"
python scripts/demo_weights/retarget_renderer.py --model "$(newest_model "$WORK/renderer_256")" \
  --out "$WORK/renderer" --image-size 256 --no-bg

# 2. motion dataset: keypoints of the trained detector + audio features of the talking clips
rm -rf "$WORK/motion"
python -m difftted build-dataset --videos "$WORK/data/talking" --layout ted384 --detector "$WORK/renderer" \
  --out "$WORK/motion" --no-progress

# 3. denoiser; its final/ folder is a complete pipeline folder (renderer copied in)
rm -rf "$WORK/denoiser"
python -m difftted train --config configs/difftted/demo.json --data "$WORK/motion" --out "$WORK/denoiser" \
  --renderer "$WORK/renderer" --max-steps "$DENOISER_STEPS" $CPU_FLAG --no-progress

# 4. weights/: the pipeline folder, next to weights/README.md
rm -rf "$OUT_WEIGHTS/denoiser" "$OUT_WEIGHTS/scheduler" "$OUT_WEIGHTS/renderer" "$OUT_WEIGHTS/pipeline.json"
mkdir -p "$OUT_WEIGHTS"
cp -r "$WORK/denoiser/final/." "$OUT_WEIGHTS/"
du -sh "$OUT_WEIGHTS"
echo "done: $OUT_WEIGHTS; measure with: bash scripts/demo_weights/evaluate.sh"
