#!/usr/bin/env bash
# The mini recipe: a speaker-verification system trained and scored on the
# bundled corpus (corpus/mini: 89 training speakers, 20 test speakers), every
# stage a small program reading and writing Kaldi files.
#
# Usage: bash run.sh [--stage N] [--stop_stage M] [--config conf/resnet.yaml] [--exp_dir exp/resnet]
#                    [--nproc 2] [--nj 2] [--gpus 0,1] [--train_args "--num_epochs 10"]
#
# Stages
#   1 prepare     data/{train,test}: wav.scp utt2spk spk2utt utt2dur; data/test/trials
#   2 lists       data/train/raw.list (or shards), noise and RIR sets for augmentation
#   3 train       exp/<name>/models/model_<epoch>.pt            (torchrun, gloo on CPU)
#   4 average     exp/<name>/models/avg_model.pt
#   5 extract     exp/<name>/embeddings/{train,test}/xvector.{ark,scp}
#   6 score       exp/<name>/scores/trials.score                 (cosine, train-mean subtracted)
#   7 score_norm  exp/<name>/scores/trials.asnorm<N>.score       (AS-norm, train speakers as cohort)
#   8 calibrate   exp/<name>/scores/trials.qmf.score             (QMF fitted on training-speaker trials)
#   9 metrics     EER / minDCF, DET curve and score histogram PNGs, exp/<name>/results.md
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
corpus=""             # default: the bundled corpus/mini
top_n=100              # AS-norm cohort size
gpus=""                # e.g. "0,1": train on these GPUs (one process each)
train_args=""          # extra config overrides for training, e.g. "--dataset_args.aug_prob 0"
# ---- end of configuration section ----

. ./path.sh
. tools/parse_options.sh
[ -n "$corpus" ] || corpus=$repo_root/corpus/mini

. tools/recipe.sh

if run_stage 1; then
  log "stage 1: data dirs and trials from $corpus"
  require "$corpus/train" "$corpus/test"
  for set in train test; do
    python -m wespk.bin.prepare_data --layout folder "$corpus/$set" "data/$set"   # validates too
  done
  python -m wespk.bin.make_trials --seed 777 data/test/utt2spk data/test/trials
  # calibration trials come from the training speakers (never the test ones);
  # short/long at 4 s, since few utterances here are longer than 6 s
  python -m wespk.bin.make_calibration_trials --seed 777 --utt2spk data/train/utt2spk \
    --utt2dur data/train/utt2dur --short_max 4 --long_min 4 --rounds 500 \
    --output data/train/cali_trials
fi

if run_stage 2; then
  log "stage 2: training list and augmentation sets"
  require data/train/wav.scp data/train/utt2spk
  if [ "$data_type" = shard ]; then
    python tools/make_shard_list.py --num_utts_per_shard 100 --num_threads "$nj" \
      data/train data/train/shards data/train/shard.list
  else
    python tools/make_raw_list.py data/train data/train/raw.list
  fi
  python -m wespk.bin.make_noise_set --data data/train --out_dir data/aug --seed 777
fi

if run_stage 3; then
  log "stage 3: training ($config, $nproc process(es))"
  list=data/train/$data_type.list
  require "$config" "$list" data/train/utt2spk
  launcher=(torchrun --standalone --nnodes=1 --nproc_per_node="$nproc")
  device=cpu
  if [ -n "$gpus" ]; then
    export CUDA_VISIBLE_DEVICES=$gpus
    launcher=(torchrun --standalone --nnodes=1 --nproc_per_node="$(echo "$gpus" | tr ',' '\n' | wc -l)")
    device=cuda
  fi
  # each process gets an equal share of the CPU threads
  export OMP_NUM_THREADS=$(( $(nproc) / nproc > 0 ? $(nproc) / nproc : 1 ))
  "${launcher[@]}" -m wespk.bin.train --config "$config" --device "$device" \
    --exp_dir "$exp_dir" --data_type "$data_type" --train_data "$list" \
    --train_label data/train/utt2spk \
    --dataset_args.noise_data data/aug/noise --dataset_args.reverb_data data/aug/rirs $train_args
fi

if run_stage 4; then
  log "stage 4: averaging checkpoints"
  require "$exp_dir/models" "$exp_dir/config.yaml"
  num_avg=$(python -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1])).get('num_avg', 2))" "$exp_dir/config.yaml")
  python -m wespk.bin.average_model --src_path "$exp_dir/models" \
    --dst_model "$exp_dir/models/avg_model.pt" --num "$num_avg"
fi

if run_stage 5; then
  log "stage 5: extracting embeddings"
  require "$exp_dir/models/avg_model.pt" data/train/wav.scp data/test/wav.scp
  for set in train test; do
    python -m wespk.bin.extract --model_dir "$exp_dir" --data "data/$set" \
      --out_dir "$exp_dir/embeddings/$set" --nj "$nj"
  done
  # speaker means of the training set: the cohort for score normalisation
  python -m wespk.bin.speaker_mean --embeddings "$exp_dir/embeddings/train/xvector.scp" \
    --utt2spk data/train/utt2spk --output_dir "$exp_dir/embeddings/train_spk"
fi

emb=$exp_dir/embeddings
scores=$exp_dir/scores

if run_stage 6; then
  log "stage 6: cosine scoring (training-set mean subtracted)"
  require "$emb/test/xvector.scp" "$emb/train/xvector.scp" data/test/trials data/train/cali_trials
  python -m wespk.bin.score --embeddings "$emb/test/xvector.scp" --mean_from "$emb/train/xvector.scp" \
    --trials data/test/trials --output "$scores/trials.score"
  python -m wespk.bin.score --embeddings "$emb/train/xvector.scp" --mean_from "$emb/train/xvector.scp" \
    --trials data/train/cali_trials --output "$scores/cali_trials.score"
fi

if run_stage 7; then
  log "stage 7: AS-norm (top $top_n) with the training speakers as cohort"
  require "$scores/trials.score" "$scores/cali_trials.score" "$emb/train_spk/xvector.scp"
  python -m wespk.bin.score_norm --method asnorm --top_n "$top_n" --cohort "$emb/train_spk/xvector.scp" \
    --embeddings "$emb/test/xvector.scp" --mean_from "$emb/train/xvector.scp" \
    --input "$scores/trials.score" --output "$scores/trials.asnorm$top_n.score"
  python -m wespk.bin.score_norm --method asnorm --top_n "$top_n" --cohort "$emb/train_spk/xvector.scp" \
    --embeddings "$emb/train/xvector.scp" --mean_from "$emb/train/xvector.scp" \
    --input "$scores/cali_trials.score" --output "$scores/cali_trials.asnorm$top_n.score"
fi

if run_stage 8; then
  log "stage 8: QMF calibration"
  require "$scores/trials.asnorm$top_n.score" "$scores/cali_trials.asnorm$top_n.score" \
    "$emb/test/utt2dur" "$emb/train/utt2dur"
  python -m wespk.bin.calibrate train --scores "$scores/cali_trials.asnorm$top_n.score" \
    --utt2dur "$emb/train/utt2dur" --model "$scores/qmf_model.pt"
  python -m wespk.bin.calibrate apply --scores "$scores/trials.asnorm$top_n.score" \
    --utt2dur "$emb/test/utt2dur" --model "$scores/qmf_model.pt" --output "$scores/trials.qmf.score"
fi

if run_stage 9; then
  log "stage 9: metrics"
  require "$scores/trials.score"
  files=("$scores/trials.score")
  for f in "$scores/trials.asnorm$top_n.score" "$scores/trials.qmf.score"; do
    [ -f "$f" ] && files+=("$f")
  done
  python -m wespk.bin.compute_metrics --p_target 0.01 0.05 --det_png "$exp_dir/det.png" \
    --hist_png "$exp_dir/score_hist.png" --report_md "$exp_dir/results.md" "${files[@]}"
fi

if run_stage 10; then
  log "stage 10: export to ONNX and TorchScript"
  require "$exp_dir/models/avg_model.pt"
  python -m wespk.bin.export_onnx --model_dir "$exp_dir" --output "$exp_dir/models/final.onnx" \
    --check_wav "$(awk 'NR==1{print $2}' data/test/wav.scp)"
  python -m wespk.bin.export_jit --model_dir "$exp_dir" --output "$exp_dir/models/final.pt" \
    --check_wav "$(awk 'NR==1{print $2}' data/test/wav.scp)"
fi
if [ -f "$exp_dir/results.md" ]; then
  log "results ($exp_dir/results.md):"
  grep '^| ' "$exp_dir/results.md" | cut -d'|' -f2,5,7   # scores, EER (%), minDCF(0.01)
fi
log "done (stages $stage..$stop_stage)"
