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
#   stages_overlap A B       true when stages A..B and [$stage, $stop_stage] overlap
#                            (a recipe runs a stage script such as
#                            tools/stages/backend.sh, stages 5-9, with its own
#                            --stage/--stop_stage)
#   config_value FILE KEY    a top-level value of a YAML config ('' when absent)
#   exp_dir_of CONFIG        $exp_dir, or when that is empty the exp_dir of CONFIG (if the
#                            file exists and a stage from 3 on is to run)
#   set_device GPUS          device=cuda and CUDA_VISIBLE_DEVICES=GPUS, or device=cpu
#                            when GPUS is empty
#   set_training_processes GPUS NPROC
#                            procs=one training process per GPU, else NPROC CPU
#                            processes, each with an equal share of the cores
#                            (OMP_NUM_THREADS)
#   script_help FILE         the comment block at the top of FILE (after the #! line)
#   usage_error              print the calling script's comment block to stderr, exit 1
#   unpack_once ARCHIVE DIR  unpack a downloaded archive into DIR with
#                            wespk.bin.unpack (no member may leave DIR; done once,
#                            a marker records it)
#   corpus_train_stages TRAIN_DIR
#                            stages 2 (the data_type list of TRAIN_DIR) and 3 (torchrun
#                            training) of a corpus recipe, each when it is in range, with
#                            the recipe's variables data_type, num_utts_per_shard, nj,
#                            config, exp_dir, aug_sets, model_init, gpus, nproc, nnodes,
#                            rdzv_endpoint and rdzv_id
#   large_margin_stage ARG...
#                            stage 11 of a corpus recipe: stages 3-10 again with
#                            $lm_config into $lm_exp_dir (default <exp_dir>-LM), from
#                            $exp_dir/models/avg_model.pt, with the recipe's training and
#                            scoring options plus ARG... (what only this recipe has)
#   publish_listing TMP DATA_DIR
#                            TMP/wav.scp and TMP/utt2category (unsorted lines of a
#                            listing) sorted, checked for duplicate keys, given an
#                            utt2dur and moved into DATA_DIR
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

stages_overlap() {
  [ "$stage" -le "$2" ] && [ "$stop_stage" -ge "$1" ]
}

config_value() {
  python -c "import sys, yaml; v = (yaml.safe_load(open(sys.argv[1])) or {}).get(sys.argv[2]); print('' if v is None else v)" "$1" "$2"
}

exp_dir_of() {
  if [ -z "$exp_dir" ] && [ "$stop_stage" -ge 3 ] && [ -f "$1" ]; then
    config_value "$1" exp_dir
  else
    echo "$exp_dir"
  fi
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

script_help() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$1"
}

usage_error() {
  script_help "$0" >&2
  exit 1
}

unpack_once() {
  [ -f "$2/.unpacked-$(basename "$1")" ] && return 0
  [ -f "$1" ] || die "$1 not found: download it first (local/download_data.sh), or give the unpacked folders (see --help)"
  recipe_log_from 1 "unpacking $1 into $2"
  "${python:-python}" -m wespk.bin.unpack "$1" "$2"
}

publish_listing() {
  local tmp=$1 data_dir=$2 f
  for f in wav.scp utt2category; do
    LC_ALL=C sort -u "$tmp/$f" > "$tmp/$f.sorted"
  done
  if [ -n "$(cut -d' ' -f1 "$tmp/wav.scp.sorted" | uniq -d | head -n 1)" ]; then
    die "duplicate keys in the listing for $data_dir: $(cut -d' ' -f1 "$tmp/wav.scp.sorted" | uniq -d | head -n 3 | tr '\n' ' ')"
  fi
  "${python:-python}" "$(dirname "${BASH_SOURCE[0]}")/wav_to_duration.py" --nj 4 "$tmp/wav.scp.sorted" "$tmp/utt2dur"
  mv "$tmp/wav.scp.sorted" "$data_dir/wav.scp"
  mv "$tmp/utt2category.sorted" "$data_dir/utt2category"
  mv "$tmp/utt2dur" "$data_dir/utt2dur"
}

corpus_train_stages() {
  local train_dir=$1
  if run_stage 2; then
    recipe_log_from 1 "stage 2: $data_type list of $train_dir"
    tools/stages/lists.sh --data_type "$data_type" --num_utts_per_shard "$num_utts_per_shard" --nj "$nj" \
      "$train_dir"
  fi
  if run_stage 3; then
    recipe_log_from 1 "stage 3: training $config"
    tools/stages/train.sh --config "$config" --exp_dir "$exp_dir" --data_type "$data_type" \
      --train_data "$train_dir/$data_type.list" --train_label "$train_dir/utt2spk" \
      --aug_sets "$aug_sets" --model_init "$model_init" --gpus "$gpus" --nproc "$nproc" --nnodes "$nnodes" \
      --rdzv_endpoint "$rdzv_endpoint" --rdzv_id "$rdzv_id"
  fi
}

large_margin_stage() {
  [ -n "$lm_exp_dir" ] || lm_exp_dir=${exp_dir}-LM
  recipe_log_from 1 "stage 11: large-margin fine-tuning ($lm_config) from $exp_dir/models/avg_model.pt into $lm_exp_dir"
  require "$exp_dir/models/avg_model.pt" "$lm_config"
  bash "$0" --stage 3 --stop_stage 10 --config "$lm_config" --exp_dir "$lm_exp_dir" \
    --model_init "$exp_dir/models/avg_model.pt" --data_type "$data_type" --aug_sets "$aug_sets" \
    --gpus "$gpus" --nproc "$nproc" --nnodes "$nnodes" --rdzv_endpoint "$rdzv_endpoint" \
    --rdzv_id "$rdzv_id-lm" --nj "$nj" --score_norm "$score_norm" --top_n "$top_n" "$@"
}
