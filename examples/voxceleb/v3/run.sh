#!/usr/bin/env bash
# VoxCeleb recipe with a self-supervised frontend (WavLM Base+ or Large through HuggingFace
# transformers) and layer aggregation (SUPERB weighted sum, LAP or MHFA), trained in three
# phases: frozen frontend, joint fine-tuning, large-margin fine-tuning. Data, scoring and export
# are the VoxCeleb v2 recipe's stages (../v2/run.sh), run from this directory.
#
# Usage: bash run.sh [--stage N] [--stop_stage M] [--setup mhfa_base] [--gpus 0,1,2,3]
#        bash run.sh --stage 2 --stop_stage 2 --wavlm_checkpoint /path/WavLM-Base+.pt
#
# Stages
#   1 data        [download,] VoxCeleb1, VoxCeleb2 dev, MUSAN, RIRS, trials, shards (../v2 stages 1-2)
#   2 pretrained  an official WavLM checkpoint -> HuggingFace dir $pretrained_dir (convert-ssl)
#   3 frozen      phase 1: frontend frozen; train and average        -> <exp>-frozen/models/avg_model.pt
#   4 joint       phase 2: joint fine-tuning from phase 1's average  -> <exp>-joint/models/avg_model.pt
#   5 lmft        phase 3: large-margin fine-tuning (longer crops, no speed perturbation) from
#                 phase 2's average                                  -> <exp>-lmft/models/avg_model.pt
#   6 evaluate    phase 3's model: extract, score, AS-norm, QMF, metrics, export (../v2 stages 5-10)
#
# --setup picks conf/<setup>_{frozen,joint_ft,joint_lmft}.yaml: ecapa_wavlm_large, mhfa_base,
# mhfa_large, lap_base (see README.md); --frozen_config/--joint_config/--lmft_config override one.
set -euo pipefail

# ---- configuration section ----
stage=1
stop_stage=6
setup=mhfa_base
frozen_config=""           # default: conf/<setup>_frozen.yaml
joint_config=""            # default: conf/<setup>_joint_ft.yaml
lmft_config=""             # default: conf/<setup>_joint_lmft.yaml
exp_dir=""                 # default: exp/<setup>; the phases train into <exp_dir>-{frozen,joint,lmft}
wavlm_checkpoint=""        # stage 2: the official WavLM-Base+.pt / WavLM-Large.pt
pretrained_dir=""          # default: the frontend_args.model_dir of the frozen config
download=false             # stage 1, as in ../v2 (see its README for the data options)
data_type=shard
aug_sets="musan rirs"
gpus=""
nproc=1
nj=4
trials="vox1_O_cleaned vox1_E_cleaned vox1_H_cleaned"
score_norm=asnorm
top_n=300
eval_stages="5 6 7 8 9 10" # ../v2/run.sh stages run by stage 6
# ---- end of configuration section ----

. ./path.sh
. tools/parse_options.sh
. tools/recipe.sh

[ -n "$frozen_config" ] || frozen_config=conf/${setup}_frozen.yaml
[ -n "$joint_config" ] || joint_config=conf/${setup}_joint_ft.yaml
[ -n "$lmft_config" ] || lmft_config=conf/${setup}_joint_lmft.yaml
[ -n "$exp_dir" ] || exp_dir=exp/$setup
v2=(bash ../v2/run.sh --data_type "$data_type" --aug_sets "$aug_sets" --gpus "$gpus" --nproc "$nproc"
    --nj "$nj" --trials "$trials" --score_norm "$score_norm" --top_n "$top_n")

# one training phase: ../v2 stages 3 (train) and 4 (average), from the previous phase's average
train_phase() {  # CONFIG EXP_DIR [MODEL_INIT]
  local config=$1 dir=$2 init=${3:-}
  require "$config"
  local init_args=()
  if [ -n "$init" ]; then
    require "$init"
    init_args=(--model_init "$init")
  fi
  "${v2[@]}" --stage 3 --stop_stage 4 --config "$config" --exp_dir "$dir" "${init_args[@]}"
}

if run_stage 1; then
  log "stage 1: data (../v2/run.sh stages 1-2)"
  "${v2[@]}" --stage 1 --stop_stage 2 --download "$download"
fi

if run_stage 2; then
  if [ -z "$pretrained_dir" ]; then
    pretrained_dir=$(python -c "import sys, yaml; c = yaml.safe_load(open(sys.argv[1])); print(c['model_args']['frontend_args'].get('model_dir') or '')" "$frozen_config")
  fi
  [ -n "$pretrained_dir" ] || die "$frozen_config has no frontend_args.model_dir; give --pretrained_dir"
  if [ -f "$pretrained_dir/config.json" ]; then
    log "stage 2: $pretrained_dir exists; nothing to convert"
  else
    [ -n "$wavlm_checkpoint" ] || die "stage 2 needs --wavlm_checkpoint (the official WavLM .pt)"
    require "$wavlm_checkpoint"
    log "stage 2: $wavlm_checkpoint -> $pretrained_dir"
    python -m wespk.bin.checkpoint_tool convert-ssl "$wavlm_checkpoint" "$pretrained_dir"
  fi
fi

if run_stage 3; then
  log "stage 3: phase 1, frozen frontend ($frozen_config) -> $exp_dir-frozen"
  train_phase "$frozen_config" "$exp_dir-frozen"
fi

if run_stage 4; then
  log "stage 4: phase 2, joint fine-tuning ($joint_config) from $exp_dir-frozen -> $exp_dir-joint"
  train_phase "$joint_config" "$exp_dir-joint" "$exp_dir-frozen/models/avg_model.pt"
fi

if run_stage 5; then
  log "stage 5: phase 3, large-margin fine-tuning ($lmft_config) from $exp_dir-joint -> $exp_dir-lmft"
  train_phase "$lmft_config" "$exp_dir-lmft" "$exp_dir-joint/models/avg_model.pt"
fi

if run_stage 6; then
  log "stage 6: evaluating $exp_dir-lmft (../v2/run.sh stages $eval_stages)"
  require "$exp_dir-lmft/models/avg_model.pt"
  for s in $eval_stages; do
    "${v2[@]}" --stage "$s" --stop_stage "$s" --exp_dir "$exp_dir-lmft"
  done
fi
log "done (stages $stage..$stop_stage)"
