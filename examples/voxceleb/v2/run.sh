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

exp_dir=$(exp_dir_of "$config")
set_device "$gpus"
trial_files=()
for t in $trials; do trial_files+=("data/trials/$t"); done
backend=(--exp_dir "$exp_dir" --train_set vox2_dev --eval_set vox1 --trials "${trial_files[*]}"
         --cali_set vox2_dev --score_norm "$score_norm" --top_n "$top_n" --nj "$nj" --device "$device"
         --num_avg "$num_avg" --check_data data/vox1)

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

corpus_train_stages data/vox2_dev

if stages_overlap 4 10; then
  tools/stages/backend.sh --stage "$stage" --stop_stage "$stop_stage" "${backend[@]}"
fi

if run_stage 11; then
  large_margin_stage --trials "$trials"
fi
log "done (stages $stage..$stop_stage)"
