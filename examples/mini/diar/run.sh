#!/usr/bin/env bash
# Diarization on synthetic conversations of the bundled test speakers.
#
# Usage: bash run.sh [--stage N] [--stop_stage M] [--num_conversations 20] [--seed 777]
#                    [--resnet_dir ../v1/exp/resnet] [--models "ge2e resnet"] [--vad auto]
#
# Stages
#   1 conversations  data/{clean,noisy}/{wav.scp,rttm,reco2num_spk,audio/*.wav}: 2-5 speakers,
#                    turns of 1-8 s, pauses of 0.2-1.2 s; noisy = clean + coloured noise at 5-15 dB SNR
#   2 models         exp/ge2e: resemblyzer's GE2E encoder converted (checkpoint_tool convert-resemblyzer);
#                    exp/resnet: the mini ResNet of ../v1 (trained there with run.sh --stop_stage 4)
#   3 diarize        exp/<model>/<condition>_{estimated,oracle}/{rttm,der.md,der.json,plots/*.png}
#   4 summary        exp/results.md: DER per model, condition and speaker-count mode
set -euo pipefail

stage=1
stop_stage=4
num_conversations=20
seed=777                 # the conversations (the defaults were chosen on seed 2027's)
resnet_dir=../v1/exp/resnet
models="ge2e resnet"
vad=auto                 # auto (silero-vad when installed), silero or energy
diarize_args=""          # more options for wespk.bin.diarize, e.g. "--cluster agglomerative --threshold 0.4"
help_message=$(sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//')

. ./path.sh
. tools/parse_options.sh
. tools/recipe.sh
corpus=$repo_root/corpus/mini/test

if run_stage 1; then
  log "stage 1: $num_conversations conversations (seed $seed) from $corpus"
  require "$corpus"
  python local/make_conversations.py --corpus "$corpus" --out_dir data \
    --num_conversations "$num_conversations" --seed "$seed"
fi

if run_stage 2; then
  log "stage 2: model dirs"
  python -m wespk.bin.checkpoint_tool convert-resemblyzer exp/ge2e
  if [[ " $models " == *" resnet "* ]]; then
    require "$resnet_dir/config.yaml"
    mkdir -p exp/resnet
    cp "$resnet_dir/config.yaml" exp/resnet/
    if [ -f "$resnet_dir/models/avg_model.pt" ]; then cp "$resnet_dir/models/avg_model.pt" exp/resnet/;
    else require "$resnet_dir/avg_model.pt"; cp "$resnet_dir/avg_model.pt" exp/resnet/; fi
  fi
fi

if run_stage 3; then
  for model in $models; do
    for condition in clean noisy; do
      require "exp/$model/config.yaml" "data/$condition/wav.scp"
      log "stage 3: $model on $condition conversations, number of speakers estimated"
      # shellcheck disable=SC2086
      python -m wespk.bin.diarize --model_dir "exp/$model" --data "data/$condition" \
        --out_dir "exp/$model/${condition}_estimated" --ref_rttm "data/$condition/rttm" --vad "$vad" --plot $diarize_args
      log "stage 3: $model on $condition conversations, number of speakers given"
      # shellcheck disable=SC2086
      python -m wespk.bin.diarize --model_dir "exp/$model" --data "data/$condition" \
        --out_dir "exp/$model/${condition}_oracle" --ref_rttm "data/$condition/rttm" --vad "$vad" \
        --reco2num_spk "data/$condition/reco2num_spk" $diarize_args
    done
  done
fi

if run_stage 4; then
  log "stage 4: summary"
  files=()
  for model in $models; do
    for run in clean_estimated clean_oracle noisy_estimated noisy_oracle; do
      require "exp/$model/$run/der.json"
      files+=("exp/$model/$run/der.json")
    done
  done
  python local/summarize.py --out exp/results.md "${files[@]}"
fi
log "done (stages $stage..$stop_stage)"
