# The shell library of the recipes. Not executable: source it. Every
# examples/<corpus>/<version>/run.sh, and every script in tools/stages/,
# sources it right after path.sh and tools/parse_options.sh:
#
#   . ./path.sh
#   . tools/parse_options.sh
#   . tools/recipe.sh
#
# It defines
#   log MESSAGE...           print MESSAGE after the time and the caller's file:line
#   die MESSAGE...           log "ERROR: MESSAGE" and exit 1
#   require PATH...          exit 1 with one line naming every PATH that does not
#                            exist, and the stage that needs them
#   run_stage N              true when stage N lies in [$stage, $stop_stage]; records
#                            N as the current stage (for require, also in the
#                            scripts a stage calls)
#   config_value FILE KEY    a top-level value of a YAML config ('' when absent)
#   set_device GPUS          device=cuda and CUDA_VISIBLE_DEVICES=GPUS, or device=cpu
#                            when GPUS is empty
#   set_training_processes GPUS NPROC
#                            procs=one training process per GPU, else NPROC CPU
#                            processes, each with an equal share of the cores
#                            (OMP_NUM_THREADS)
# and needs nothing of its caller but $stage and $stop_stage for run_stage.

# MESSAGE after the time and the file:line DEPTH calls above this function's caller.
recipe_log_from() {  # DEPTH MESSAGE...
  local depth=$1
  shift
  echo "$(date '+%F %T') [$(basename "${BASH_SOURCE[depth + 1]}"):${BASH_LINENO[depth]}] $*"
}

log() { recipe_log_from 1 "$*"; }

die() {
  recipe_log_from 1 "ERROR: $*"
  exit 1
}

require() {
  local missing=() f
  for f in "$@"; do [ -e "$f" ] || missing+=("$f"); done
  if [ ${#missing[@]} -gt 0 ]; then
    recipe_log_from 1 "ERROR: stage ${current_stage:-?} needs ${missing[*]}; run the earlier stages first"
    exit 1
  fi
}

run_stage() {
  export current_stage=$1
  [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]
}

config_value() {
  python -c "import sys, yaml; v = (yaml.safe_load(open(sys.argv[1])) or {}).get(sys.argv[2]); print('' if v is None else v)" "$1" "$2"
}

set_device() {
  if [ -n "$1" ]; then
    export CUDA_VISIBLE_DEVICES=$1
    device=cuda
  else
    device=cpu
  fi
}

set_training_processes() {
  if [ -n "$1" ]; then
    procs=$(echo "$1" | tr ',' '\n' | grep -c .)
  else
    procs=$2
    export OMP_NUM_THREADS=$(( $(nproc) / procs > 0 ? $(nproc) / procs : 1 ))
  fi
}
