#!/usr/bin/env bash
# The back end of a recipe, stages 4-10: the averaged model, embeddings, cosine
# scores, score normalisation, QMF calibration, metrics and export, for any
# recipe whose sets are Kaldi data dirs under --data:
#
#   4 average     <exp_dir>/models/avg_model.pt: the last --num_avg epochs (default: the
#                 num_avg of <exp_dir>/config.yaml); when training recorded a dev EER per
#                 epoch (<exp_dir>/validation.jsonl), the --num_avg consecutive epochs with
#                 the lowest mean dev EER
#   5 extract     <exp_dir>/embeddings/<set>/xvector.{ark,scp,utt2dur} for each of --extract_sets
#                 (default: --train_set --eval_set --cali_set); <train_set>_spk (speaker means)
#   6 score       <exp_dir>/scores/<name>.score: cosine on --eval_set, the mean of --train_set
#                 subtracted (saved in embeddings/<train_set>/mean_vec.npy); cali_trials.score
#                 (with --plain_cosine true also <name>.nomean.score: no mean subtracted)
#   7 score_norm  <name>.asnorm<top_n>.score (or .snorm.score), <train_set> speakers as cohort
#   8 calibrate   qmf_model.pt fitted on cali_trials.<norm>.score; <name>.qmf.score
#                 (only with --cali_set)
#   9 metrics     EER, minDCF, actDCF and Cllr; <exp_dir>/{results,det,score_hist}<suffix>.{md,png}
#                 (with --compare_dir, that dir's score files of the same names first: e.g. a
#                 pretrained model's scores beside the fine-tuned ones)
#  10 export      <exp_dir>/models/final.{onnx,pt}, each checked against PyTorch on the first
#                 utterance of <data>/<eval_set> (or --check_data)
#
# One <name> per trial list of --trials (--names, default the files' names).
#
# Usage: tools/stages/backend.sh [--stage 4] [--stop_stage 10] --exp_dir DIR --trials 'FILE ...' [options]
#
# A stage whose inputs are missing stops with one line naming them.
set -euo pipefail

stage=4
stop_stage=10
exp_dir=""           # the model dir: config.yaml and models/avg_model.pt
data=data            # the dir holding the data dirs
train_set=train      # its mean is subtracted before the cosine; its speaker means are the cohort
eval_set=test        # the set the trial lists are scored on
trials=""            # trial lists (files) on eval_set, separated by spaces
names=""             # their score-file names (default: the trial lists' file names)
cali_set=""          # the set whose calibration trials train QMF ("": no calibration)
cali_trials=""       # default: <data>/<cali_set>/cali_trials
extract_sets=""      # sets extracted in stage 5 (default: train_set eval_set cali_set)
score_norm=asnorm    # asnorm or snorm
top_n=300            # AS-norm: highest cohort scores used per utterance
nj=2                 # extraction jobs
device=cpu           # extraction device: cpu or cuda
cllr_of=qmf          # stage 9: actDCF and Cllr for the qmf files only, or for all files
report_suffix=""     # stage 9: <exp_dir>/{results,det,score_hist}<suffix>.{md,png}
num_avg=""           # stage 4: epochs averaged (default: the config's num_avg)
plain_cosine=false   # stage 6: true also scores without the mean subtraction
qmf_duration=true    # stage 8: false leaves QMF's four duration features out (--drop_duration)
compare_dir=""       # stage 9: another exp dir whose score files are reported too
check_data=""        # stage 10: the data dir of the parity check (default: <data>/<eval_set>)

stages_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
help_message=$(awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; \
               sed -n '/^stage=4$/,/^$/p' "$0")
. "$stages_dir/../parse_options.sh"
. "$stages_dir/../recipe.sh"

[ -n "$exp_dir" ] || die "--exp_dir is required"
emb=$exp_dir/embeddings
scores=$exp_dir/scores
case $score_norm in
  asnorm) norm=asnorm$top_n ;;
  snorm) norm=snorm ;;
  *) die "--score_norm must be asnorm or snorm, got '$score_norm'" ;;
esac
read -r -a trial_files <<< "$trials"
read -r -a score_names <<< "$names"
if [ ${#score_names[@]} -eq 0 ]; then
  for t in "${trial_files[@]}"; do score_names+=("$(basename "$t")"); done
fi
[ ${#score_names[@]} -eq ${#trial_files[@]} ] \
  || die "--names gives ${#score_names[@]} names for ${#trial_files[@]} trial lists"
if [ -n "$cali_set" ] && [ -z "$cali_trials" ]; then
  cali_trials=$data/$cali_set/cali_trials
fi

if run_stage 4; then
  require "$exp_dir/models" "$exp_dir/config.yaml"
  [ -n "$num_avg" ] || num_avg=$(config_value "$exp_dir/config.yaml" num_avg)
  if [ -f "$exp_dir/validation.jsonl" ]; then
    read -r first last < <(python -c "import sys
from wespk.train.validation import best_epoch_window, read_validation_records
print(*best_epoch_window(read_validation_records(sys.argv[1]), int(sys.argv[2])))" \
      "$exp_dir/validation.jsonl" "${num_avg:-1}")
    epochs=(--min_epoch "$first" --max_epoch "$last")
    what="epochs $first-$last of $exp_dir (the lowest mean dev EER, validation.jsonl)"
  else
    epochs=(--num "${num_avg:-1}")
    what="the last ${num_avg:-1} checkpoint(s) of $exp_dir"
  fi
  log "stage 4: averaging $what"
  python -m wespk.bin.average_model --src_path "$exp_dir/models" --dst_model "$exp_dir/models/avg_model.pt" \
    "${epochs[@]}"
fi

if run_stage 5; then
  # each set once, in the order given (the calibration set is often the training set)
  read -r -a sets <<< "$(echo ${extract_sets:-$train_set $eval_set $cali_set} | tr ' ' '\n' | awk '!seen[$0]++' | tr '\n' ' ')"
  log "stage 5: embeddings of ${sets[*]} ($nj jobs, $device); $train_set speaker means"
  # the model: models/avg_model.pt, or avg_model.pt of a converted model dir
  model_file=$exp_dir/models/avg_model.pt
  [ -f "$model_file" ] || [ ! -f "$exp_dir/avg_model.pt" ] || model_file=$exp_dir/avg_model.pt
  needs=("$exp_dir/config.yaml" "$model_file" "$data/$train_set/utt2spk")
  for set in "${sets[@]}"; do needs+=("$data/$set/wav.scp"); done
  require "${needs[@]}"
  for set in "${sets[@]}"; do
    log "embeddings of $data/$set ($nj jobs, $device)"
    python -m wespk.bin.extract --model_dir "$exp_dir" --data "$data/$set" \
      --out_dir "$emb/$set" --nj "$nj" --device "$device"
  done
  require "$emb/$train_set/xvector.scp"
  python -m wespk.bin.speaker_mean --embeddings "$emb/$train_set/xvector.scp" \
    --utt2spk "$data/$train_set/utt2spk" --output_dir "$emb/${train_set}_spk"
fi

if run_stage 6; then
  log "stage 6: cosine scoring of ${score_names[*]}${cali_set:+ and cali_trials} ($train_set mean subtracted)"
  needs=("$emb/$eval_set/xvector.scp" "$emb/$train_set/xvector.scp" "${trial_files[@]}")
  [ -n "$cali_set" ] && needs+=("$emb/$cali_set/xvector.scp" "$cali_trials")
  require "${needs[@]}"
  [ ${#trial_files[@]} -gt 0 ] || die "no trial lists: give --trials"
  args=()
  for i in "${!trial_files[@]}"; do
    args+=(--trials "${trial_files[$i]}" --output "$scores/${score_names[$i]}.score")
  done
  python -m wespk.bin.score --embeddings "$emb/$eval_set/xvector.scp" --mean_from "$emb/$train_set/xvector.scp" \
    --save_mean "$emb/$train_set/mean_vec.npy" "${args[@]}"
  if [ "$plain_cosine" = true ]; then
    args=()
    for i in "${!trial_files[@]}"; do
      args+=(--trials "${trial_files[$i]}" --output "$scores/${score_names[$i]}.nomean.score")
    done
    python -m wespk.bin.score --embeddings "$emb/$eval_set/xvector.scp" "${args[@]}"
  fi
  if [ -n "$cali_set" ]; then
    python -m wespk.bin.score --embeddings "$emb/$cali_set/xvector.scp" --mean_vec "$emb/$train_set/mean_vec.npy" \
      --trials "$cali_trials" --output "$scores/cali_trials.score"
  fi
fi

if run_stage 7; then
  log "stage 7: $score_norm (top $top_n) with the $train_set speakers as cohort"
  needs=("$emb/${train_set}_spk/xvector.scp" "$emb/$train_set/mean_vec.npy")
  args=()
  for name in "${score_names[@]}"; do
    needs+=("$scores/$name.score")
    args+=(--input "$scores/$name.score" --output "$scores/$name.$norm.score")
  done
  [ -n "$cali_set" ] && needs+=("$scores/cali_trials.score")
  require "${needs[@]}"
  norm_args=(--method "$score_norm" --top_n "$top_n" --cohort "$emb/${train_set}_spk/xvector.scp"
             --mean_vec "$emb/$train_set/mean_vec.npy")
  python -m wespk.bin.score_norm "${norm_args[@]}" --embeddings "$emb/$eval_set/xvector.scp" "${args[@]}"
  if [ -n "$cali_set" ]; then
    python -m wespk.bin.score_norm "${norm_args[@]}" --embeddings "$emb/$cali_set/xvector.scp" \
      --input "$scores/cali_trials.score" --output "$scores/cali_trials.$norm.score"
  fi
fi

if run_stage 8 && [ -n "$cali_set" ]; then
  log "stage 8: QMF calibration fitted on $cali_trials"
  needs=("$scores/cali_trials.$norm.score" "$emb/$cali_set/utt2dur" "$emb/$eval_set/utt2dur")
  args=()
  for name in "${score_names[@]}"; do
    needs+=("$scores/$name.$norm.score")
    args+=(--scores "$scores/$name.$norm.score" --output "$scores/$name.qmf.score")
  done
  require "${needs[@]}"
  if [ "$qmf_duration" = true ]; then
    train_factors=(--utt2dur "$emb/$cali_set/utt2dur")
    apply_factors=(--utt2dur "$emb/$eval_set/utt2dur")
  else
    train_factors=(--drop_duration)
    apply_factors=(--drop_duration)
  fi
  python -m wespk.bin.calibrate train --scores "$scores/cali_trials.$norm.score" "${train_factors[@]}" \
    --model "$scores/qmf_model.pt"
  python -m wespk.bin.calibrate apply --model "$scores/qmf_model.pt" "${apply_factors[@]}" "${args[@]}"
fi

if run_stage 9; then
  log "stage 9: metrics of ${score_names[*]}"
  needs=()
  for name in "${score_names[@]}"; do needs+=("$scores/$name.score"); done
  require "${needs[@]}"
  files=()
  for name in "${score_names[@]}"; do
    for f in "$compare_dir/scores/$name.nomean.score" "$compare_dir/scores/$name.score" \
             "$compare_dir/scores/$name.$norm.score" "$compare_dir/scores/$name.qmf.score"; do
      [ -n "$compare_dir" ] && [ -f "$f" ] && files+=("$f")
    done
  done
  for name in "${score_names[@]}"; do
    for f in "$scores/$name.nomean.score" "$scores/$name.score" "$scores/$name.$norm.score" \
             "$scores/$name.qmf.score"; do
      [ -f "$f" ] && files+=("$f")
    done
  done
  case $cllr_of in
    qmf) calibrated=--auto_calibrated ;;
    all) calibrated=--calibrated ;;
    *) die "--cllr_of must be qmf or all, got '$cllr_of'" ;;
  esac
  python -m wespk.bin.compute_metrics --p_target 0.01 0.05 "$calibrated" \
    --det_png "$exp_dir/det$report_suffix.png" --hist_png "$exp_dir/score_hist$report_suffix.png" \
    --report_md "$exp_dir/results$report_suffix.md" "${files[@]}"
fi

if run_stage 10; then
  log "stage 10: export to ONNX and TorchScript"
  [ -n "$check_data" ] || check_data=$data/$eval_set
  require "$exp_dir/models/avg_model.pt" "$check_data/wav.scp"
  check_wav=$(awk 'NR==1{print $2}' "$check_data/wav.scp")
  python -m wespk.bin.export_onnx --model_dir "$exp_dir" --output "$exp_dir/models/final.onnx" \
    --check_wav "$check_wav"
  python -m wespk.bin.export_jit --model_dir "$exp_dir" --output "$exp_dir/models/final.pt" \
    --check_wav "$check_wav"
fi
