#!/usr/bin/env bash
# VoxCeleb recipe: train on VoxCeleb2 dev (with MUSAN / RIRS_NOISES augmentation),
# evaluate on the cleaned VoxCeleb1 O, E and H trial lists.
#
# Usage: bash run.sh [--stage N] [--stop_stage M] [--config conf/resnet34.yaml] [--gpus 0,1,2,3]
#        bash run.sh --stage 1 --stop_stage 1 --download true --vox_base_url URL   (see README.md)
#
# Stages
#   1 prepare     [download,] unpack, convert m4a; data/{vox1,vox2_dev,musan,rirs};
#                 data/trials/vox1_{O,E,H}_cleaned; data/vox2_dev/cali_trials
#   2 lists       data/vox2_dev/shard.list + shards/ (or raw.list with --data_type raw)
#   3 train       exp/<name>/models/model_<epoch>.pt          (torchrun; resumes by itself)
#   4 average     exp/<name>/models/avg_model.pt              (the config's last num_avg epochs)
#   5 extract     exp/<name>/embeddings/{vox1,vox2_dev}/xvector.{ark,scp}; vox2_dev_spk (speaker means)
#   6 score       exp/<name>/scores/<trials>.score            (cosine, vox2_dev mean subtracted)
#   7 score_norm  exp/<name>/scores/<trials>.asnorm300.score  (AS-norm, vox2_dev speakers as cohort)
#   8 calibrate   exp/<name>/scores/<trials>.qmf.score        (QMF fitted on vox2_dev calibration trials)
#   9 metrics     EER, minDCF, actDCF/Cllr of the QMF scores, DET + histograms, exp/<name>/results.md
#  10 export      exp/<name>/models/final.{onnx,pt}            (each checked against PyTorch)
#  11 lm          large-margin fine-tuning: stages 3-10 again with --lm_config into <exp_dir>-LM,
#                 initialised from exp/<name>/models/avg_model.pt
set -euo pipefail

# ---- configuration section ----
stage=1
stop_stage=10
config=conf/resnet34.yaml
exp_dir=""                 # default: the config's exp_dir
# stage 1: data
download=false             # true: run local/download_data.sh first
download_dir=data/download
rawdata_dir=data/raw
vox_base_url=${VOXCELEB_BASE_URL:-}   # VoxCeleb needs a registration; login in VOXCELEB_USER/_PASSWORD
openslr_base_url=https://www.openslr.org/resources
meta_base_url=https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta
checksums=""               # default: local/checksums.md5
vox1_dirs=""               # already unpacked VoxCeleb1 / VoxCeleb2 dev (see local/prepare_data.sh)
vox2_dev_dir=""
vox2_format=wav
trials_dir=""
aug_sets="musan rirs"
cali_rounds=5000           # calibration trials: 6 per round, from vox2_dev
# stages 2-3: lists and training
data_type=shard            # shard or raw
num_utts_per_shard=1000
gpus=""                    # e.g. "0,1,2,3": one training process per GPU; "" trains on CPU
nproc=1                    # CPU training processes (when gpus is "")
nnodes=1                   # >1: torchrun multi-node, run on every node with the same options
rdzv_endpoint=""           # host:port of the first node (needed when nnodes > 1)
rdzv_id=wespk-voxceleb
model_init=""              # start from these model weights (stage 11 sets it)
num_avg=""                 # default: the config's num_avg
# stages 5-9
nj=4                       # extraction jobs (spread over the GPUs)
trials="vox1_O_cleaned vox1_E_cleaned vox1_H_cleaned"
score_norm=asnorm          # asnorm or snorm
top_n=300                  # AS-norm cohort size
# stage 11
lm_config=conf/resnet34_lm.yaml
lm_exp_dir=""              # default: <exp_dir>-LM
help_message=$(sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//')
# ---- end of configuration section ----

. ./path.sh
. tools/parse_options.sh
. tools/recipe.sh

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

if run_stage 1; then
  log "stage 1: data (VoxCeleb1, VoxCeleb2 dev, $aug_sets, trial lists)"
  if [ "$download" = true ]; then
    download_args=(--download_dir "$download_dir" --openslr_base_url "$openslr_base_url"
                   --meta_base_url "$meta_base_url" --parts "vox1_dev vox1_test vox2_dev $aug_sets vox1_trials")
    [ -n "$vox_base_url" ] && download_args+=(--vox_base_url "$vox_base_url")
    [ -n "$checksums" ] && download_args+=(--checksums "$checksums")
    local/download_data.sh "${download_args[@]}"
  fi
  local/prepare_data.sh --download_dir "$download_dir" --rawdata_dir "$rawdata_dir" --data data \
    --vox1_dirs "$vox1_dirs" --vox2_dev_dir "$vox2_dev_dir" --vox2_format "$vox2_format" \
    --trials_dir "$trials_dir" --aug_sets "$aug_sets" --nj "$nj"
  # QMF calibration trials from the training speakers (short/long duration conditions)
  python -m wespk.bin.make_calibration_trials --data_dir data/vox2_dev --rounds "$cali_rounds" \
    --seed 777 --output data/vox2_dev/cali_trials
fi

if run_stage 2; then
  log "stage 2: $data_type list of data/vox2_dev"
  require data/vox2_dev/wav.scp data/vox2_dev/utt2spk
  if [ "$data_type" = shard ]; then
    python tools/make_shard_list.py --num_utts_per_shard "$num_utts_per_shard" --num_threads "$nj" \
      --shuffle --seed 777 data/vox2_dev data/vox2_dev/shards data/vox2_dev/shard.list
  else
    python tools/make_raw_list.py data/vox2_dev data/vox2_dev/raw.list
  fi
fi

if run_stage 3; then
  list=data/vox2_dev/$data_type.list
  require "$config" "$list" data/vox2_dev/utt2spk
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
    --train_label data/vox2_dev/utt2spk "${aug_args[@]}" "${init_args[@]}"
fi

if run_stage 4; then
  log "stage 4: averaging checkpoints of $exp_dir"
  require "$exp_dir/models" "$exp_dir/config.yaml"
  [ -n "$num_avg" ] || num_avg=$(config_value "$exp_dir/config.yaml" num_avg)
  python -m wespk.bin.average_model --src_path "$exp_dir/models" \
    --dst_model "$exp_dir/models/avg_model.pt" --num "${num_avg:-10}"
fi

if run_stage 5; then
  log "stage 5: extracting embeddings of vox1 and vox2_dev ($nj jobs, $device)"
  require "$exp_dir/models/avg_model.pt" data/vox1/wav.scp data/vox2_dev/wav.scp data/vox2_dev/utt2spk
  for set in vox1 vox2_dev; do
    python -m wespk.bin.extract --model_dir "$exp_dir" --data "data/$set" \
      --out_dir "$emb/$set" --nj "$nj" --device "$device"
  done
  # per-speaker means of vox2_dev: the cohort for score normalisation
  python -m wespk.bin.speaker_mean --embeddings "$emb/vox2_dev/xvector.scp" \
    --utt2spk data/vox2_dev/utt2spk --output_dir "$emb/vox2_dev_spk"
fi

if run_stage 6; then
  log "stage 6: cosine scoring of $trials (vox2_dev mean subtracted)"
  args=()
  needs=("$emb/vox1/xvector.scp" "$emb/vox2_dev/xvector.scp" data/vox2_dev/cali_trials)
  for t in $trials; do
    needs+=("data/trials/$t")
    args+=(--trials "data/trials/$t" --output "$scores/$t.score")
  done
  require "${needs[@]}"
  python -m wespk.bin.score --embeddings "$emb/vox1/xvector.scp" --mean_from "$emb/vox2_dev/xvector.scp" \
    --save_mean "$emb/vox2_dev/mean_vec.npy" "${args[@]}"
  python -m wespk.bin.score --embeddings "$emb/vox2_dev/xvector.scp" --mean_vec "$emb/vox2_dev/mean_vec.npy" \
    --trials data/vox2_dev/cali_trials --output "$scores/cali_trials.score"
fi

if run_stage 7; then
  log "stage 7: $score_norm (top $top_n) with the vox2_dev speakers as cohort"
  args=()
  needs=("$emb/vox2_dev_spk/xvector.scp" "$emb/vox2_dev/mean_vec.npy" "$scores/cali_trials.score")
  for t in $trials; do
    needs+=("$scores/$t.score")
    args+=(--input "$scores/$t.score" --output "$scores/$t.$norm.score")
  done
  require "${needs[@]}"
  norm_args=(--method "$score_norm" --top_n "$top_n" --cohort "$emb/vox2_dev_spk/xvector.scp"
             --mean_vec "$emb/vox2_dev/mean_vec.npy")
  python -m wespk.bin.score_norm "${norm_args[@]}" --embeddings "$emb/vox1/xvector.scp" "${args[@]}"
  python -m wespk.bin.score_norm "${norm_args[@]}" --embeddings "$emb/vox2_dev/xvector.scp" \
    --input "$scores/cali_trials.score" --output "$scores/cali_trials.$norm.score"
fi

if run_stage 8; then
  log "stage 8: QMF calibration (trained on data/vox2_dev/cali_trials)"
  args=()
  needs=("$scores/cali_trials.$norm.score" "$emb/vox2_dev/utt2dur" "$emb/vox1/utt2dur")
  for t in $trials; do
    needs+=("$scores/$t.$norm.score")
    args+=(--scores "$scores/$t.$norm.score" --output "$scores/$t.qmf.score")
  done
  require "${needs[@]}"
  python -m wespk.bin.calibrate train --scores "$scores/cali_trials.$norm.score" \
    --utt2dur "$emb/vox2_dev/utt2dur" --model "$scores/qmf_model.pt"
  python -m wespk.bin.calibrate apply --model "$scores/qmf_model.pt" --utt2dur "$emb/vox1/utt2dur" "${args[@]}"
fi

if run_stage 9; then
  log "stage 9: metrics"
  needs=()
  for t in $trials; do needs+=("$scores/$t.score"); done
  require "${needs[@]}"
  files=()
  for t in $trials; do
    for f in "$scores/$t.score" "$scores/$t.$norm.score" "$scores/$t.qmf.score"; do
      [ -f "$f" ] && files+=("$f")
    done
  done
  python -m wespk.bin.compute_metrics --p_target 0.01 0.05 --auto_calibrated \
    --det_png "$exp_dir/det.png" --hist_png "$exp_dir/score_hist.png" \
    --report_md "$exp_dir/results.md" "${files[@]}"
fi

if run_stage 10; then
  log "stage 10: export to ONNX and TorchScript"
  require "$exp_dir/models/avg_model.pt" data/vox1/wav.scp
  check_wav=$(awk 'NR==1{print $2}' data/vox1/wav.scp)
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
    --model_init "$exp_dir/models/avg_model.pt" --data_type "$data_type" --aug_sets "$aug_sets" \
    --gpus "$gpus" --nproc "$nproc" --nnodes "$nnodes" --rdzv_endpoint "$rdzv_endpoint" \
    --rdzv_id "$rdzv_id-lm" --nj "$nj" --trials "$trials" --score_norm "$score_norm" --top_n "$top_n"
fi
log "done (stages $stage..$stop_stage)"
