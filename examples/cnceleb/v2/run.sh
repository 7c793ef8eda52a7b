#!/usr/bin/env bash
# CN-Celeb recipe: train on CN-Celeb1 dev + CN-Celeb2 (FLAC, with MUSAN / RIRS_NOISES
# augmentation), evaluate on CN-Celeb1's evaluation trials (CNC-Eval), enrolling each
# speaker as --enroll_mode says: concat (the released concatenated enrollment file)
# or average (the mean embedding of the enrollment utterances).
#
# Usage: bash run.sh [--stage N] [--stop_stage M] [--config conf/resnet34.yaml] [--gpus 0,1,2,3]
#        [--enroll_mode concat|average]
#
# Stages
#   1 prepare     [download,] unpack; data/{cnceleb_train,cnc_test,cnc_enroll_<mode>,musan,rirs};
#                 data/trials/CNC-Eval; data/cnceleb_train/cali_trials
#   2 lists       data/cnceleb_train/shard.list + shards/ (or raw.list)
#   3 train       exp/<name>/models/model_<epoch>.pt          (torchrun; resumes by itself)
#   4 average     exp/<name>/models/avg_model.pt
#   5 extract     exp/<name>/embeddings/{cnceleb_train,cnc_test,cnc_enroll_<mode>}; cnc_eval_<mode>
#                 (enrollment + test, the set scored); cnceleb_train_spk (speaker means)
#   6 score       exp/<name>/scores/CNC-Eval.<mode>.score      (cosine, cnceleb_train mean subtracted)
#   7 score_norm  exp/<name>/scores/CNC-Eval.<mode>.asnorm300.score (cohort: cnceleb_train speakers)
#   8 calibrate   exp/<name>/scores/CNC-Eval.<mode>.qmf.score  (QMF fitted on cnceleb_train trials)
#   9 metrics     exp/<name>/results.<mode>.md (the enrollment mode is in every file name and line)
#  10 export      exp/<name>/models/final.{onnx,pt}
#  11 lm          large-margin fine-tuning: stages 3-10 again with --lm_config into <exp_dir>-LM
set -euo pipefail

# ---- configuration section ----
stage=1
stop_stage=10
config=conf/resnet34.yaml
exp_dir=""                 # default: the config's exp_dir
enroll_mode=concat         # concat or average (see above); results are named after it
# stage 1: data
download=false             # true: run local/download_data.sh first
download_dir=data/download
rawdata_dir=data/raw
openslr_base_url=https://www.openslr.org/resources
checksums=""               # default: local/checksums.md5
cnceleb1_dir=""            # already unpacked CN-Celeb_flac / CN-Celeb2_flac (see local/prepare_data.sh)
cnceleb2_dir=""
aug_sets="musan rirs"
cali_rounds=5000           # calibration trials: 6 per round, from cnceleb_train
# stages 2-3: lists and training
data_type=shard            # shard or raw
num_utts_per_shard=1000
gpus=""                    # e.g. "0,1,2,3": one training process per GPU; "" trains on CPU
nproc=1                    # CPU training processes (when gpus is "")
nnodes=1                   # >1: torchrun multi-node, run on every node with the same options
rdzv_endpoint=""           # host:port of the first node (needed when nnodes > 1)
rdzv_id=wespk-cnceleb
model_init=""              # start from these model weights (stage 11 sets it)
num_avg=""                 # default: the config's num_avg
# stages 5-9
nj=4                       # extraction jobs (spread over the GPUs)
score_norm=asnorm          # asnorm or snorm
top_n=300                  # AS-norm cohort size
# stage 11
lm_config=conf/resnet34_lm.yaml
lm_exp_dir=""              # default: <exp_dir>-LM
help_message=$(sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//')
# ---- end of configuration section ----

. ./path.sh
. tools/parse_options.sh
. tools/recipe.sh

case $enroll_mode in concat|average) ;; *) log "ERROR: --enroll_mode must be concat or average"; exit 1 ;; esac
if [ -z "$exp_dir" ] && [ "$stop_stage" -ge 3 ] && [ -f "$config" ]; then
  exp_dir=$(config_value "$config" exp_dir)
fi
device=cpu
if [ -n "$gpus" ]; then
  export CUDA_VISIBLE_DEVICES=$gpus
  device=cuda
fi
emb=$exp_dir/embeddings
scores=$exp_dir/scores
norm=$score_norm
[ "$score_norm" = asnorm ] && norm=asnorm$top_n
enroll=cnc_enroll_$enroll_mode
eval_set=cnc_eval_$enroll_mode
trials=CNC-Eval.$enroll_mode       # score files: $scores/$trials{,.$norm,.qmf}.score

if run_stage 1; then
  log "stage 1: data (CN-Celeb1/2, $aug_sets, trials; enrollment: $enroll_mode)"
  if [ "$download" = true ]; then
    parts="cnceleb1 $aug_sets"
    [ "$cnceleb2_dir" = none ] || parts="cnceleb1 cnceleb2 $aug_sets"
    local/download_data.sh --download_dir "$download_dir" --openslr_base_url "$openslr_base_url" \
      --parts "$parts" ${checksums:+--checksums "$checksums"}
  fi
  local/prepare_data.sh --download_dir "$download_dir" --rawdata_dir "$rawdata_dir" --data data \
    --cnceleb1_dir "$cnceleb1_dir" --cnceleb2_dir "$cnceleb2_dir" --enroll_mode "$enroll_mode" \
    --aug_sets "$aug_sets" --nj "$nj"
  # QMF calibration trials from the training speakers (short/long duration conditions)
  python -m wespk.bin.make_calibration_trials --data_dir data/cnceleb_train --rounds "$cali_rounds" \
    --seed 777 --output data/cnceleb_train/cali_trials
fi

if run_stage 2; then
  log "stage 2: $data_type list of data/cnceleb_train"
  require data/cnceleb_train/wav.scp data/cnceleb_train/utt2spk
  if [ "$data_type" = shard ]; then
    python tools/make_shard_list.py --num_utts_per_shard "$num_utts_per_shard" --num_threads "$nj" \
      --shuffle --seed 777 data/cnceleb_train data/cnceleb_train/shards data/cnceleb_train/shard.list
  else
    python tools/make_raw_list.py data/cnceleb_train data/cnceleb_train/raw.list
  fi
fi

if run_stage 3; then
  list=data/cnceleb_train/$data_type.list
  require "$config" "$list" data/cnceleb_train/utt2spk
  [ -n "$exp_dir" ] || { log "ERROR: no exp_dir: give --exp_dir or set exp_dir in $config"; exit 1; }
  aug_args=()
  for set in $aug_sets; do
    case $set in
      musan) require data/musan/wav.scp; aug_args+=(--dataset_args.noise_data data/musan) ;;
      rirs) require data/rirs/wav.scp; aug_args+=(--dataset_args.reverb_data data/rirs) ;;
    esac
  done
  init_args=()
  if [ -n "$model_init" ]; then
    require "$model_init"
    init_args=(--model_init "$model_init")
  fi
  if [ -n "$gpus" ]; then
    procs=$(echo "$gpus" | tr ',' '\n' | grep -c .)
  else
    procs=$nproc
    export OMP_NUM_THREADS=$(( $(nproc) / nproc > 0 ? $(nproc) / nproc : 1 ))
  fi
  if [ "$nnodes" -gt 1 ]; then
    [ -n "$rdzv_endpoint" ] || { log "ERROR: --nnodes $nnodes needs --rdzv_endpoint host:port"; exit 1; }
    launcher=(torchrun --nnodes="$nnodes" --nproc_per_node="$procs" --rdzv_backend=c10d
              --rdzv_endpoint="$rdzv_endpoint" --rdzv_id="$rdzv_id")
  else
    launcher=(torchrun --standalone --nnodes=1 --nproc_per_node="$procs")
  fi
  log "stage 3: training $config into $exp_dir ($nnodes node(s) x $procs process(es), $device)"
  "${launcher[@]}" -m wespk.bin.train --config "$config" --device "$device" \
    --exp_dir "$exp_dir" --data_type "$data_type" --train_data "$list" \
    --train_label data/cnceleb_train/utt2spk "${aug_args[@]}" "${init_args[@]}"
fi

if run_stage 4; then
  log "stage 4: averaging checkpoints of $exp_dir"
  require "$exp_dir/models" "$exp_dir/config.yaml"
  [ -n "$num_avg" ] || num_avg=$(config_value "$exp_dir/config.yaml" num_avg)
  python -m wespk.bin.average_model --src_path "$exp_dir/models" \
    --dst_model "$exp_dir/models/avg_model.pt" --num "${num_avg:-10}"
fi

if run_stage 5; then
  log "stage 5: extracting embeddings ($nj jobs, $device; enrollment: $enroll_mode)"
  require "$exp_dir/models/avg_model.pt" data/cnceleb_train/wav.scp data/cnc_test/wav.scp "data/$enroll/wav.scp"
  for set in cnceleb_train cnc_test "$enroll"; do
    python -m wespk.bin.extract --model_dir "$exp_dir" --data "data/$set" \
      --out_dir "$emb/$set" --nj "$nj" --device "$device"
  done
  python -m wespk.bin.speaker_mean --embeddings "$emb/cnceleb_train/xvector.scp" \
    --utt2spk data/cnceleb_train/utt2spk --output_dir "$emb/cnceleb_train_spk"
  # the scored set: one embedding per enrollment id, plus the test utterances
  mkdir -p "$emb/$eval_set"
  if [ "$enroll_mode" = average ]; then
    # an enrollment id is the "speaker" of its utterances: its embedding is their mean,
    # its duration (for QMF) their total
    python -m wespk.bin.speaker_mean --embeddings "$emb/$enroll/xvector.scp" \
      --utt2spk "data/$enroll/utt2spk" --output_dir "$emb/${enroll}_mean"
    awk 'NR == FNR { dur[$1] = $2; next } { total[$2] += dur[$1] }
         END { for (e in total) printf "%s %.3f\n", e, total[e] }' \
      "$emb/$enroll/utt2dur" "data/$enroll/utt2spk" | LC_ALL=C sort > "$emb/${enroll}_mean/utt2dur"
    enroll_emb=$emb/${enroll}_mean
  else
    enroll_emb=$emb/$enroll
  fi
  cat "$enroll_emb/xvector.scp" "$emb/cnc_test/xvector.scp" > "$emb/$eval_set/xvector.scp"
  cat "$enroll_emb/utt2dur" "$emb/cnc_test/utt2dur" > "$emb/$eval_set/utt2dur"
fi

if run_stage 6; then
  log "stage 6: cosine scoring of CNC-Eval (enrollment: $enroll_mode; cnceleb_train mean subtracted)"
  require "$emb/$eval_set/xvector.scp" "$emb/cnceleb_train/xvector.scp" data/trials/CNC-Eval \
    data/cnceleb_train/cali_trials
  python -m wespk.bin.score --embeddings "$emb/$eval_set/xvector.scp" \
    --mean_from "$emb/cnceleb_train/xvector.scp" --save_mean "$emb/cnceleb_train/mean_vec.npy" \
    --trials data/trials/CNC-Eval --output "$scores/$trials.score"
  python -m wespk.bin.score --embeddings "$emb/cnceleb_train/xvector.scp" \
    --mean_vec "$emb/cnceleb_train/mean_vec.npy" \
    --trials data/cnceleb_train/cali_trials --output "$scores/cali_trials.score"
fi

if run_stage 7; then
  log "stage 7: $score_norm (top $top_n) with the cnceleb_train speakers as cohort"
  require "$scores/$trials.score" "$scores/cali_trials.score" "$emb/cnceleb_train_spk/xvector.scp" \
    "$emb/cnceleb_train/mean_vec.npy"
  norm_args=(--method "$score_norm" --top_n "$top_n" --cohort "$emb/cnceleb_train_spk/xvector.scp"
             --mean_vec "$emb/cnceleb_train/mean_vec.npy")
  python -m wespk.bin.score_norm "${norm_args[@]}" --embeddings "$emb/$eval_set/xvector.scp" \
    --input "$scores/$trials.score" --output "$scores/$trials.$norm.score"
  python -m wespk.bin.score_norm "${norm_args[@]}" --embeddings "$emb/cnceleb_train/xvector.scp" \
    --input "$scores/cali_trials.score" --output "$scores/cali_trials.$norm.score"
fi

if run_stage 8; then
  log "stage 8: QMF calibration (trained on data/cnceleb_train/cali_trials)"
  require "$scores/$trials.$norm.score" "$scores/cali_trials.$norm.score" \
    "$emb/cnceleb_train/utt2dur" "$emb/$eval_set/utt2dur"
  python -m wespk.bin.calibrate train --scores "$scores/cali_trials.$norm.score" \
    --utt2dur "$emb/cnceleb_train/utt2dur" --model "$scores/qmf_model.pt"
  python -m wespk.bin.calibrate apply --model "$scores/qmf_model.pt" --utt2dur "$emb/$eval_set/utt2dur" \
    --scores "$scores/$trials.$norm.score" --output "$scores/$trials.qmf.score"
fi

if run_stage 9; then
  log "stage 9: metrics (enrollment: $enroll_mode)"
  require "$scores/$trials.score"
  files=("$scores/$trials.score")
  for f in "$scores/$trials.$norm.score" "$scores/$trials.qmf.score"; do
    [ -f "$f" ] && files+=("$f")
  done
  python -m wespk.bin.compute_metrics --p_target 0.01 0.05 --auto_calibrated \
    --det_png "$exp_dir/det.$enroll_mode.png" --hist_png "$exp_dir/score_hist.$enroll_mode.png" \
    --report_md "$exp_dir/results.$enroll_mode.md" "${files[@]}"
fi

if run_stage 10; then
  log "stage 10: export to ONNX and TorchScript"
  require "$exp_dir/models/avg_model.pt" data/cnc_test/wav.scp
  check_wav=$(awk 'NR==1{print $2}' data/cnc_test/wav.scp)
  python -m wespk.bin.export_onnx --model_dir "$exp_dir" --output "$exp_dir/models/final.onnx" \
    --check_wav "$check_wav"
  python -m wespk.bin.export_jit --model_dir "$exp_dir" --output "$exp_dir/models/final.pt" \
    --check_wav "$check_wav"
fi

if run_stage 11; then
  [ -n "$lm_exp_dir" ] || lm_exp_dir=${exp_dir}-LM
  log "stage 11: large-margin fine-tuning ($lm_config) from $exp_dir/models/avg_model.pt into $lm_exp_dir"
  require "$exp_dir/models/avg_model.pt" "$lm_config"
  bash "$0" --stage 3 --stop_stage 10 --config "$lm_config" --exp_dir "$lm_exp_dir" \
    --model_init "$exp_dir/models/avg_model.pt" --enroll_mode "$enroll_mode" --data_type "$data_type" \
    --aug_sets "$aug_sets" --gpus "$gpus" --nproc "$nproc" --nnodes "$nnodes" \
    --rdzv_endpoint "$rdzv_endpoint" --rdzv_id "$rdzv_id-lm" --nj "$nj" --score_norm "$score_norm" \
    --top_n "$top_n"
fi
log "done (stages $stage..$stop_stage)"
