#!/usr/bin/env bash
# Measure the bundled demo weights: the figures of docs/demo_weights.md, and the contact sheets.
# Needs the prepared clips and motion dataset of run.sh (in $WORK) and ../shared/data.
#
#   bash scripts/demo_weights/evaluate.sh
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SHARED="${SHARED:-$REPO/../shared/data}"
WORK="${WORK:-/tmp/difftted_demo}"
WEIGHTS="${WEIGHTS:-$REPO/weights}"
EVAL="$WORK/eval"
cd "$REPO"
mkdir -p "$EVAL"
export OMP_NUM_THREADS="${THREADS:-2}"

# 1. renderer reconstruction on the held-out clips (first frame = source, every frame driven)
python -m tps evaluate --weights "$WEIGHTS/renderer" --data "$WORK/data/renderer" --split test --pose-akd \
  --json "$EVAL/renderer.json" --no-progress
python scripts/demo_weights/static_baseline.py --data "$WORK/data/renderer" --split test --pose-akd \
  --json "$EVAL/static.json"    # the do-nothing baseline: every frame predicted by the first

# 2. motion on held-out speech: motion autoencoder for Diversity (trained on the training split),
#    two samples per held-out clip, and the ground truth's own motion of the same clips
python -m difftted train-motion-ae --data "$WORK/motion" --out "$EVAL/motion_ae" --steps 1000 --no-progress
python scripts/demo_weights/motion_samples.py --weights "$WEIGHTS" --clips "$WORK/data/talking/test" \
  --out "$EVAL/samples" --seeds 0 1
python -m difftted evaluate --generated "$EVAL/samples" --ground-truth "$WORK/motion" --split test \
  --motion-ae "$EVAL/motion_ae" --json "$EVAL/motion.json" --no-progress

# the bundled guidance scale: the motion's spread against the real one's, at several scales
python scripts/demo_weights/guidance_sweep.py --checkpoint "$WORK/denoiser/final" --data "$WORK/motion" \
  --guidance 1.15 2 2.5 3 3.5 4 | tee "$EVAL/guidance.txt"

# 3. speed: CPU seconds per second of video, 2 threads, default settings (examples/speech.wav: 6.22 s)
/usr/bin/time -f "wall %e s, user %U s, sys %S s" -o "$EVAL/time.txt" \
  python -m difftted generate --weights "$WEIGHTS" --image examples/astronaut.png --audio examples/speech.wav \
  --out "$EVAL/astronaut.mp4" --seed 0 --quiet
cat "$EVAL/time.txt"

# 4. look at it: a frame every half second, for two photos not in training
python -m difftted generate --weights "$WEIGHTS" --image "$SHARED/talking/face_tpsmm_source.png" \
  --audio examples/speech.wav --out "$EVAL/face.mp4" --seed 0 --quiet
python scripts/demo_weights/contact_sheet.py --videos "$EVAL/astronaut.mp4" --out docs/images/demo_astronaut.png \
  --every 0.5 --thumb 200 --max-frames 13
python scripts/demo_weights/contact_sheet.py --videos "$EVAL/face.mp4" --out docs/images/demo_face.png \
  --every 0.5 --thumb 200 --max-frames 13
python - "$EVAL" <<'PY'  # how much of the frame change is frame-to-frame (jitter) rather than drift
import sys
import numpy as np
from tps.video import read_video
for name in ("astronaut", "face"):
    f = read_video(f"{sys.argv[1]}/{name}.mp4")[0].astype(np.float32)
    print(name, "mean |f_t - f_0|", round(float(np.abs(f - f[:1]).mean()), 2),
          "mean |f_t - f_t-1|", round(float(np.abs(f[1:] - f[:-1]).mean()), 2))
PY
echo "figures in $EVAL (renderer.json, motion.json, time.txt); sheets in docs/images/demo_*.png"
