#!/usr/bin/env bash
# Judge demo weights v1 and v2 from the pixels of their output (issue 10), beside real footage:
# the table of docs/demo_weights.md's "v2" section, and the contact sheets.
#
#   bash scripts/demo_weights_v2/evaluate.sh                      # v2 = weights/v2 (else $WORK/weights_v2)
#   V2=$WORK/weights_v2 bash scripts/demo_weights_v2/evaluate.sh   # a freshly trained one
#   V2_ARGS="--guidance 4" TAG=g4 bash scripts/demo_weights_v2/evaluate.sh   # another v2 setting
#   SEED=1 TAG=v2_s1 bash scripts/demo_weights_v2/evaluate.sh     # another seed (v1 too: NAME_v1_s1.mp4)
#   NAMES=couch TAG=try bash scripts/demo_weights_v2/evaluate.sh  # one input, for a quick sweep
#
# Inputs, none of them in either version's training:
#   couch:  the first frame of talking_more/upper_body/ub09 (half body, hands in view; held out of
#           the v2 renderer and denoiser) with its own 4.8 s of speech; real reference: ub09 itself
#   ted:    the first frame of ted_silent/lia_ted_driving3 (TED stage, hands in view; held out of the
#           v2 renderer, silent clips never train the denoiser) with talking/speech_radio31.wav (8 s);
#           real reference: talking/oliver_halfbody (a half-body speaker with his own sound)
#   astro:  examples/astronaut.png with examples/speech.wav (6.2 s)
# Every video is measured at every frame (stride 1), chance levels from 20 seeded shifts.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SHARED="${SHARED:-$REPO/../shared/data}"
WORK="${WORK:-/work/data}"
V1="${V1:-$REPO/weights_v1}"
[[ -d "$V1" ]] || V1="$REPO/weights"          # before v2 is bundled, weights/ is v1
V2="${V2:-$REPO/weights/v2}"
[[ -d "$V2" ]] || V2="$WORK/weights_v2"
EVAL="${EVAL:-$WORK/eval_v2}"
SEED="${SEED:-0}"
V2_ARGS="${V2_ARGS:-}"                          # extra `generate` options for v2 (a guidance sweep)
TAG="${TAG:-v2}"                                # v2's file names: NAME_$TAG.mp4
NAMES="${NAMES:-couch ted astro}"               # which inputs (a quick sweep: NAMES=couch)
V1TAG="v1$([[ "$SEED" == 0 ]] || echo "_s$SEED")"  # v1's file names: NAME_$V1TAG.mp4
export OMP_NUM_THREADS="${THREADS:-2}"
cd "$REPO"
mkdir -p "$EVAL"

python - "$SHARED" "$EVAL" <<'PY'   # the photos: first frames of the held-out clips
import sys
from pathlib import Path
from PIL import Image
from tps.video import iter_frames
shared, out = Path(sys.argv[1]), Path(sys.argv[2])
for name, clip in (("couch", "talking_more/upper_body/ub09_skyreelsA1_drv5_couch_youtuber.mp4"),
                   ("ted", "ted_silent/lia_ted_driving3.mp4")):
    Image.fromarray(next(iter(iter_frames(shared / clip)))).save(out / f"{name}.png")
PY

declare -A AUDIO=([couch]="$SHARED/talking_more/upper_body/ub09_skyreelsA1_drv5_couch_youtuber.mp4"
                  [ted]="$SHARED/talking/speech_radio31.wav" [astro]="examples/speech.wav")
declare -A PHOTO=([couch]="$EVAL/couch.png" [ted]="$EVAL/ted.png" [astro]="examples/astronaut.png")
declare -A REAL=([couch]="$SHARED/talking_more/upper_body/ub09_skyreelsA1_drv5_couch_youtuber.mp4"
                 [ted]="$SHARED/talking/oliver_halfbody.mp4" [astro]="$SHARED/talking/oliver_halfbody.mp4")

for name in $NAMES; do
  [[ -f "$EVAL/${name}_${V1TAG}.mp4" ]] || python -m difftted generate --weights "$V1" --image "${PHOTO[$name]}" \
    --audio "${AUDIO[$name]}" --out "$EVAL/${name}_${V1TAG}.mp4" --seed "$SEED" --quiet
  # shellcheck disable=SC2086
  python -m difftted generate --weights "$V2" --image "${PHOTO[$name]}" --audio "${AUDIO[$name]}" \
    --out "$EVAL/${name}_${TAG}.mp4" --seed "$SEED" --quiet $V2_ARGS
  python -m difftted evaluate-video "$EVAL/${name}_${V1TAG}.mp4" "$EVAL/${name}_${TAG}.mp4" --audio "${AUDIO[$name]}" \
    --photo "${PHOTO[$name]}" --reference "${REAL[$name]}" --json "$EVAL/${name}_${TAG}.json" --no-progress \
    | tee "$EVAL/${name}_${TAG}.txt"
done

# look at it: a frame every 0.5 s, and the face at full resolution
for name in $NAMES; do
  [[ $name == astro ]] && continue
  python scripts/demo_weights/contact_sheet.py --videos "$EVAL/${name}_${V1TAG}.mp4" "$EVAL/${name}_${TAG}.mp4" \
    --out "$EVAL/sheet_${name}_${TAG}.png" --every 0.5 --thumb 200 --max-frames 10
done
echo "tables in $EVAL/{couch,ted,astro}_${TAG}.txt (json beside them); sheets in $EVAL/sheet_*_${TAG}.png"
