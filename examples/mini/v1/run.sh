#!/usr/bin/env bash
# The mini recipe: a speaker-verification system trained and scored on the
# bundled corpus (corpus/mini: 89 training speakers, 20 test speakers), every
# stage a small program reading and writing Kaldi files. A few of the training
# speakers (--cali_speakers, drawn with --seed) are held out of training: QMF
# is calibrated on their trials, never on speakers the model has learnt.
#
# Usage: bash run.sh [--stage N] [--stop_stage M] [--config conf/resnet.yaml] [--exp_dir exp/resnet]
#                    [--nproc 2] [--nj 2] [--gpus 0,1] [--train_args "--num_epochs 10"]
#                    [--cali_speakers 16] [--seed 777]
#
# Stages
#   1 prepare     data/{train,cali,test}: wav.scp utt2spk spk2utt utt2dur (train and cali: a
#                 speaker-disjoint split of corpus/train); data/test/trials, data/cali/cali_trials
#   2 lists       data/train/raw.list (or shards), noise and RIR sets for augmentation
#   3 train       exp/<name>/models/model_<epoch>.pt            (torchrun, gloo on CPU)
#   4 average     exp/<name>/models/avg_model.pt
#   5 extract     exp/<name>/embeddings/{train,test,cali}/xvector.{ark,scp}; train_spk
#   6 score       exp/<name>/scores/{trials,cali_trials}.score   (cosine, train-mean subtracted)
#   7 score_norm  exp/<name>/scores/*.asnorm<N>.score            (AS-norm, train speakers as cohort)
#   8 calibrate   exp/<name>/scores/trials.qmf.score             (QMF fitted on the held-out speakers)
#   9 metrics     EER / minDCF / actDCF / Cllr, DET curve and score histogram PNGs, exp/<name>/results.md
#  10 export      exp/<name>/models/final.{onnx,pt}
set -euo pipefail

# ---- configuration section ----
stage=1
stop_stage=10
config=conf/resnet.yaml
exp_dir=exp/resnet
nproc=2                # training processes (torchrun --nproc_per_node)
nj=2                   # extraction jobs
data_type=raw          # raw or shard
corpus=""              # default: the bundled corpus/mini
seed=777               # of the calibration split and of the trial lists
cali_speakers=16       # training speakers held out of training for QMF calibration
top_n=20               # AS-norm: highest cohort scores per utterance (of the 73 training speakers)
gpus=""                # e.g. "0,1": train on these GPUs (one process each)
train_args=""          # extra config overrides for training, e.g. "--dataset_args.aug_prob 0"
help_message=$(sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//')
# ---- end of configuration section ----

. ./path.sh
. tools/parse_options.sh
. tools/recipe.sh
[ -n "$corpus" ] || corpus=$repo_root/corpus/mini
set_device "$gpus"
backend=(--exp_dir "$exp_dir" --train_set train --eval_set test --trials data/test/trials
         --cali_set cali --qmf_duration false --top_n "$top_n" --nj "$nj" --device "$device" --cllr_of all)

if run_stage 1; then
  log "stage 1: data dirs and trials from $corpus ($cali_speakers training speakers held out for calibration)"
  require "$corpus/train" "$corpus/test"
  python -m wespk.bin.prepare_data --layout folder "$corpus/train" data/train_all   # validates too
  python -m wespk.bin.prepare_data --layout folder "$corpus/test" data/test
  python "$repo_root/local/split_speakers.py" --dev_speakers "$cali_speakers" --seed "$seed" \
    data/train_all/spk2utt data/train_all/train_speakers data/train_all/cali_speakers
  tools/subset_data_dir.sh --spk-list data/train_all/train_speakers data/train_all data/train
  tools/subset_data_dir.sh --spk-list data/train_all/cali_speakers data/train_all data/cali
  python -m wespk.bin.make_trials --seed "$seed" data/test/utt2spk data/test/trials
  # calibration trials of the held-out speakers (never the training or test ones): every
  # same-speaker pair and 10 times as many others (too few of their utterances are long
  # for short/long duration conditions)
  python -m wespk.bin.make_trials --seed "$seed" data/cali/utt2spk data/cali/cali_trials
fi

if run_stage 2; then
  log "stage 2: training list and augmentation sets"
  tools/stages/lists.sh --data_type "$data_type" --num_utts_per_shard 100 --nj "$nj" data/train
  python -m wespk.bin.make_noise_set --data data/train --out_dir data/aug --seed "$seed"
fi

if run_stage 3; then
  log "stage 3: training ($config)"
  read -r -a extra_args <<< "$train_args"
  tools/stages/train.sh --config "$config" --exp_dir "$exp_dir" --data_type "$data_type" \
    --train_data "data/train/$data_type.list" --train_label data/train/utt2spk \
    --gpus "$gpus" --nproc "$nproc" --noise_data data/aug/noise --reverb_data data/aug/rirs \
    -- "${extra_args[@]}"
fi

if stages_overlap 4 10; then
  tools/stages/backend.sh --stage "$stage" --stop_stage "$stop_stage" "${backend[@]}"
fi
if [ -f "$exp_dir/results.md" ]; then
  log "results ($exp_dir/results.md):"
  grep '^| ' "$exp_dir/results.md" | cut -d'|' -f2,5,7,9,11   # scores, EER (%), minDCF(0.01), actDCF(0.01), Cllr
fi
log "done (stages $stage..$stop_stage)"
