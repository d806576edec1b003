#!/usr/bin/env bash
# Demo weights v2 on body-anchored keypoints (issue 10), end to end: build the data (skipped when
# it is there), fine-tune the renderer on given keypoints from v1's renderer, train the denoiser
# on the body keypoint dataset, assemble the pipeline folder. Run from anywhere; needs
# ../shared/data beside the repository. See docs/body_keypoints.md.
#
#   bash scripts/demo_weights_v2/run.sh                                  # CPU, 240 min renderer
#   CPU_FLAG= RENDERER_MINUTES=120 DENOISER_STEPS=6000 bash scripts/demo_weights_v2/run.sh   # GPU
#
# The renderer phase is bounded by wall-clock minutes (it runs under `timeout`; the newest
# checkpoint is used). Nothing is written into weights/: measure the result first
# (scripts/demo_weights_v2/evaluate.sh), then bundle it by hand (float16, sampling defaults):
#
#   python scripts/demo_weights_v2/bundle.py --pipeline $WORK/weights_v2 --out weights/v2 \
#       --part-scales head=1.5,mouth=3                       # what weights/v2 holds
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SHARED="${SHARED:-$REPO/../shared/data}"
WORK="${WORK:-/work/data}"                     # outside the repository: footage never enters it
INIT_RENDERER="${INIT_RENDERER:-$REPO/weights/renderer}"   # v1: lite-256 on the learned detector
RENDERER_MINUTES="${RENDERER_MINUTES:-240}"
DENOISER_STEPS="${DENOISER_STEPS:-6000}"
THREADS="${THREADS:-1}"
OUT_WEIGHTS="${OUT_WEIGHTS:-$WORK/weights_v2}"
CPU_FLAG="${CPU_FLAG---cpu}"                  # empty: train on the GPU where there is one
export OMP_NUM_THREADS="$THREADS"

cd "$REPO"
# shellcheck source=scripts/demo_weights/train_steps.sh
source "$REPO/scripts/demo_weights/train_steps.sh"   # newest_model, train_for

# 0. data (each step keeps what is built: an interrupted build resumes / is reused)
python scripts/demo_weights_v2/prepare_renderer_body.py --shared "$SHARED" \
  --cuts configs/talking_more_cuts.json --out "$WORK/renderer_body" --no-progress
if [[ ! -f "$WORK/motion_body/manifest.json" ]]; then
  # links to the video files of talking/ and talking_more/ (the folder layout does not follow
  # linked folders); clip ids talking__NAME, talking_more__head__NAME, ...
  for d in talking talking_more/head talking_more/upper_body; do
    mkdir -p "$WORK/motion_body_src/$d"
    for f in "$(cd "$SHARED" && pwd)/$d"/*; do
      case "$f" in *.mp4|*.mpg|*.mpeg|*.mov|*.mkv|*.webm|*.avi) ln -sfn "$f" "$WORK/motion_body_src/$d/";; esac
    done
  done
  python -m difftted build-dataset --keypoints body --videos "$WORK/motion_body_src" --layout folder \
    --cuts configs/body_denoiser_cuts.json --mocap "$SHARED/mocap/BEAT2_2_scott_0_1_1.npz" \
    --out "$WORK/motion_body" --device cpu --no-progress
fi

# 1. renderer: dense motion + inpainting on the body keypoints, from v1's weights (detector frozen)
train_for "$RENDERER_MINUTES" scripts/demo_weights_v2/renderer-body-finetune.json "$WORK/renderer_body" \
  "$WORK/renderer_body_run" --init "$INIT_RENDERER"
python scripts/demo_weights/retarget_renderer.py --model "$(newest_model "$WORK/renderer_body_run")" \
  --out "$WORK/renderer_v2" --image-size 256 --no-bg

# 2. denoiser on the body keypoint dataset; final/ is a complete pipeline folder ("keypoints": "body")
rm -rf "$WORK/denoiser_body"
python -m difftted train --config configs/difftted/demo-body.json --data "$WORK/motion_body" \
  --out "$WORK/denoiser_body" --renderer "$WORK/renderer_v2" --max-steps "$DENOISER_STEPS" $CPU_FLAG --no-progress

# 3. the pipeline folder
rm -rf "$OUT_WEIGHTS/denoiser" "$OUT_WEIGHTS/scheduler" "$OUT_WEIGHTS/renderer" "$OUT_WEIGHTS/pipeline.json"
mkdir -p "$OUT_WEIGHTS"
cp -r "$WORK/denoiser_body/final/." "$OUT_WEIGHTS/"
du -sh "$OUT_WEIGHTS"
# 4. (by hand, after judging) the bundled copy: float16 storage and the sampling defaults
#    python scripts/demo_weights_v2/bundle.py --pipeline "$OUT_WEIGHTS" --out weights/v2 --part-scales head=1.5,mouth=3
echo "done: $OUT_WEIGHTS (keypoints: $(python -c "import json,sys; print(json.load(open(sys.argv[1])).get('keypoints'))" "$OUT_WEIGHTS/pipeline.json"))"
