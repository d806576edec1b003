# Shell functions shared by the demo weights recipes (scripts/demo_weights*/run.sh source this file;
# they set CPU_FLAG first).

newest_model() {  # RUN/model when the run finished, else the newest checkpoint's model
  if [[ -f "$1/model/model.safetensors" ]]; then echo "$1/model"; return; fi
  local done; done="$(ls -d "$1"/checkpoints/step-*/trainer_state.json | sort | tail -n 1)"
  echo "$(dirname "$done")/model"
}

train_for() {  # MINUTES CONFIG DATA OUT [--init DIR]; a timeout is the normal end
  local minutes="$1"; shift
  rm -rf "$3"
  timeout --signal=TERM --kill-after=60 "${minutes}m" python -m tps train $CPU_FLAG --no-progress --config "$1" --data "$2" \
    --out "$3" "${@:4}" || [[ $? == 124 ]]
}
