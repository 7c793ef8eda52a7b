#!/usr/bin/env bash
# The mini recipe: a speaker-verification system trained and scored on the
# bundled corpus (corpus/mini: 89 training speakers, 20 test speakers), every
# stage a small program reading and writing Kaldi files. All 89 training
# speakers train; QMF is calibrated by speaker-disjoint cross-fitting on the
# test trials (--cross_fit folds of test speakers, drawn with --seed): each
# trial is calibrated by a model fitted only on trials of the other folds.
#
# Usage: bash run.sh [--stage N] [--stop_stage M] [--config conf/resnet.yaml] [--exp_dir exp/resnet]
#                    [--nproc 2] [--nj 2] [--gpus 0,1] [--train_args "--num_epochs 10"]
#                    [--top_n 100] [--cross_fit 10] [--qmf_features "--features lap"] [--seed 777]
#
# Stages
#   1 prepare     data/{train,test}: wav.scp utt2spk spk2utt utt2dur; data/test/trials
#   2 lists       data/train/raw.list (or shards), noise and RIR sets for augmentation
#   3 train       exp/<name>/models/model_<epoch>.pt            (torchrun, gloo on CPU)
#   4 average     exp/<name>/models/avg_model.pt
#   5 extract     exp/<name>/embeddings/{train,test}/xvector.{ark,scp}; train_spk
#   6 score       exp/<name>/scores/trials.score                 (cosine, train-mean subtracted)
#   7 score_norm  exp/<name>/scores/trials.asnorm<N>.score       (AS-norm, train speakers as cohort)
#   8 calibrate   exp/<name>/scores/trials.qmf.score             (QMF cross-fitted on test-speaker folds)
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
seed=777               # of the trial list and of the calibration folds
top_n=100              # AS-norm: highest cohort scores per utterance (100: all 89 training speakers)
cross_fit=10           # QMF: folds of test speakers (a trial is calibrated without its speakers' folds)
qmf_features="--features lap"   # QMF quality measures (options of wespk.bin.calibrate)
gpus=""                # e.g. "0,1": train on these GPUs (one process each)
train_args=""          # extra config overrides for training, e.g. "--dataset_args.aug_prob 0"
help_message=$(sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//')
# ---- end of configuration section ----

. ./path.sh
. tools/parse_options.sh
. tools/recipe.sh
[ -n "$corpus" ] || corpus=$repo_root/corpus/mini
set_device "$gpus"
backend=(--exp_dir "$exp_dir" --train_set train --eval_set test --trials data/test/trials
         --top_n "$top_n" --nj "$nj" --device "$device" --cllr_of all)
scores=$exp_dir/scores

if run_stage 1; then
  log "stage 1: data dirs and trials from $corpus"
  require "$corpus/train" "$corpus/test"
  for set in train test; do
    python -m wespk.bin.prepare_data --layout folder "$corpus/$set" "data/$set"   # validates too
  done
  python -m wespk.bin.make_trials --seed "$seed" data/test/utt2spk data/test/trials
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

if stages_overlap 4 7; then
  tools/stages/backend.sh --stage "$(( stage > 4 ? stage : 4 ))" --stop_stage "$(( stop_stage < 7 ? stop_stage : 7 ))" \
    "${backend[@]}"
fi

if run_stage 8; then
  # no speaker is held out of training and no test speaker calibrates its own trials:
  # the 20 test speakers are split into --cross_fit folds; a trial whose speakers lie in
  # folds i and j is calibrated by a QMF model fitted on the trials of the other folds
  log "stage 8: QMF calibration cross-fitted on $cross_fit folds of the test speakers"
  require "$scores/trials.asnorm$top_n.score" data/test/utt2spk "$exp_dir/embeddings/test/utt2dur"
  read -r -a feature_args <<< "$qmf_features"
  python -m wespk.bin.calibrate cross_fit --scores "$scores/trials.asnorm$top_n.score" \
    --utt2spk data/test/utt2spk --folds "$cross_fit" --seed "$seed" \
    --utt2dur "$exp_dir/embeddings/test/utt2dur" --embeddings "$exp_dir/embeddings/test/xvector.scp" \
    "${feature_args[@]}" --output "$scores/trials.qmf.score"
fi

if stages_overlap 9 10; then
  tools/stages/backend.sh --stage "$(( stage > 9 ? stage : 9 ))" --stop_stage "$stop_stage" "${backend[@]}"
fi
if [ -f "$exp_dir/results.md" ]; then
  log "results ($exp_dir/results.md):"
  grep '^| ' "$exp_dir/results.md" | cut -d'|' -f2,5,7,9,11   # scores, EER (%), minDCF(0.01), actDCF(0.01), Cllr
fi
log "done (stages $stage..$stop_stage)"
