#!/usr/bin/env bash
# Train a speaker-embedding model on your own data: import it (a folder tree, a CSV
# or a JSON-lines manifest), hold some speakers out as a dev set, train, and measure
# the equal error rate on dev trials. --model_init fine-tunes a pretrained model;
# --pretrained ge2e starts from the GE2E encoder of the resemblyzer package, measured on
# your dev trials before and after fine-tuning.
#
# Usage: bash run.sh --source DIR_OR_MANIFEST [--layout folder|csv|jsonl] [--config conf/resnet34_small.yaml]
#        bash run.sh --source ... --config conf/resnet34_finetune.yaml --model_init pretrained/avg_model.pt
#        bash run.sh --source ... --config conf/resnet34_finetune.yaml --model_init MODEL_DIR
#        bash run.sh --source ... --pretrained ge2e        # the GE2E encoder with your back end
#        bash run.sh --source ... --pretrained ge2e --finetune true [--config conf/ge2e_finetune_aam.yaml]
#
# Stages
#   1 prepare     data/all from --source (wespk.bin.prepare_data); a speaker-disjoint, seeded split
#                 into data/train and data/dev; data/dev/trials (wespk.bin.make_trials)
#   2 lists       data/train/raw.list (or shards); data/aug/{noise,rirs} simulated from the
#                 training speech (wespk.bin.make_noise_set) unless --noise_data/--reverb_data
#   3 train       with a pretrained model (--pretrained ge2e, or --model_init MODEL_DIR): first its
#                 dev scores, once (stages 5-9 into exp/pretrained_<name>, the back end fitted on
#                 data/train); then exp/<name>/models/model_<epoch>.pt (torchrun; resumes by
#                 itself), the dev EER after every epoch in exp/<name>/validation.jsonl
#   4 average     exp/<name>/models/avg_model.pt (the epochs with the lowest dev EER)
#   5 extract     exp/<name>/embeddings/{train,dev}/xvector.{ark,scp}; train_spk (speaker means)
#   6 score       exp/<name>/scores/dev.score                 (cosine, training mean subtracted)
#   7 score_norm  exp/<name>/scores/dev.asnorm<N>.score       (AS-norm, training speakers as cohort)
#   9 metrics     the validation EER / minDCF on dev, DET curve, exp/<name>/results.md (the
#                 pretrained model's rows first when there is one)
#  10 export      exp/<name>/models/final.{onnx,pt}
# (There is no stage 8: QMF calibration needs a calibration list with short and long
# utterances of many speakers; see examples/voxceleb/v2.)
set -euo pipefail

# ---- configuration section ----
stage=1
stop_stage=10
# stage 1: your data
source=""                  # a folder <root>/<speaker>/.../<utt>.wav|flac, a CSV or a JSON-lines manifest
layout=folder              # folder, csv (ID,duration,wav,spk_id) or jsonl (audio_filepath,duration,label)
prefix=""                  # corpus name put before speaker and utterance ids
data_root=""               # replaces $data_root in CSV paths
segment_unit=samples       # unit of a CSV's start/stop columns: samples or seconds
dev_speakers=""            # speakers held out for validation (default: --dev_ratio of them)
dev_ratio=0.1
seed=777                   # of the split and of the trials
nontarget_ratio=10         # dev trials: non-target trials per target trial
# stages 2-3: lists and training
config=""                  # default: conf/resnet34_small.yaml; with --pretrained ge2e conf/ge2e_finetune_ge2e.yaml
exp_dir=""                 # default: the config's exp_dir
data_type=raw              # raw or shard
noise_data=""              # data dirs of noise / RIRs (e.g. from local/prepare_musan.sh and
reverb_data=""             #   local/prepare_rirs_noises.sh); empty: simulated ones (stage 2)
simulate_aug=true          # false: no augmentation sets when none are given
model_init=""              # fine-tune: start from these model weights (a model file or checkpoint,
                           #   or a model dir: then it is scored on the dev trials first)
pretrained=""              # ge2e: the resemblyzer package's GE2E encoder, converted into
                           #   exp/pretrained_ge2e (python -m wespk.bin.checkpoint_tool convert-resemblyzer)
finetune=""                # false: no training, the pretrained model with this data's back end; default
                           #   true, but false with --pretrained ge2e (on the bundled corpus no fine-tuning
                           #   config lowered its dev EER: see README.md)
init_head=false            # true: also take the classification head from model_init (same speakers);
                           #   false: the encoder only, a new head for your speakers
train_args=""              # more config overrides for wespk.bin.train, e.g. "--num_epochs 5"
gpus=""                    # e.g. "0,1": one training process per GPU; "" trains on CPU
nproc=1                    # CPU training processes (when gpus is "")
num_avg=""                 # default: the config's num_avg
# stages 5-9
nj=2                       # extraction jobs
top_n=100                  # AS-norm cohort size (the training speakers)
help_message=$(sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//')
# ---- end of configuration section ----

. ./path.sh
. tools/parse_options.sh
. tools/recipe.sh

if [ -z "$config" ]; then
  config=conf/resnet34_small.yaml
  [ "$pretrained" != ge2e ] || config=conf/ge2e_finetune_ge2e.yaml
fi
if [ -z "$finetune" ]; then
  finetune=true
  [ "$pretrained" != ge2e ] || finetune=false
fi
case $finetune in true|false) ;; *) die "--finetune must be true or false, got '$finetune'" ;; esac
exp_dir=$(exp_dir_of "$config")
set_device "$gpus"
pretrained_dir=""          # the pretrained model dir scored before fine-tuning
case $pretrained in
  "") [ -d "$model_init" ] && pretrained_dir=exp/pretrained_$(basename "$model_init") ;;
  ge2e) pretrained_dir=exp/pretrained_ge2e ;;
  *) die "--pretrained must be ge2e (or give --model_init MODEL_DIR), got '$pretrained'" ;;
esac
[ "$finetune" = true ] || [ -n "$pretrained_dir" ] || die "--finetune false needs --pretrained or --model_init DIR"
[ "$finetune" = true ] || exp_dir=$pretrained_dir
if [ "$pretrained" = ge2e ] && [ "$finetune" = true ] && [ -f "$config" ]; then
  # the converted weights fit the GE2E LSTM only; its configs compute its features (resemblyzer_mel)
  model=$(config_value "$config" model)
  [ "$model" = GE2E_LSTM ] || die "--pretrained ge2e fine-tunes the GE2E encoder, but $config trains $model;" \
    "use conf/ge2e_finetune_ge2e.yaml or conf/ge2e_finetune_aam.yaml (or --finetune false)"
fi
backend=(--exp_dir "$exp_dir" --train_set train --eval_set dev --trials data/dev/trials --names dev
         --top_n "$top_n" --nj "$nj" --device "$device" --num_avg "$num_avg" --compare_dir "$pretrained_dir"
         --plain_cosine true)

if run_stage 1; then
  log "stage 1: data/all from $layout $source; train/dev split by speaker; dev trials"
  [ -n "$source" ] || { log "ERROR: stage 1 needs --source (a folder, CSV or JSON-lines manifest)"; exit 1; }
  require "$source"
  import_args=(--layout "$layout")
  [ -n "$prefix" ] && import_args+=(--prefix "$prefix")
  [ -n "$data_root" ] && import_args+=(--data_root "$data_root")
  [ "$layout" = csv ] && import_args+=(--segment_unit "$segment_unit")
  python -m wespk.bin.prepare_data "${import_args[@]}" "$source" data/all    # validates too
  if [ -n "$dev_speakers" ]; then
    split_args=(--dev_speakers "$dev_speakers")
  else
    split_args=(--dev_ratio "$dev_ratio")
  fi
  python "$repo_root/local/split_speakers.py" "${split_args[@]}" --seed "$seed" \
    data/all/spk2utt data/all/train_speakers data/all/dev_speakers
  tools/subset_data_dir.sh --spk-list data/all/train_speakers data/all data/train
  tools/subset_data_dir.sh --spk-list data/all/dev_speakers data/all data/dev
  python -m wespk.bin.make_trials --seed "$seed" --nontarget_ratio "$nontarget_ratio" \
    data/dev/utt2spk data/dev/trials
  tools/validate_data_dir.sh data/dev
fi

if run_stage 2; then
  log "stage 2: $data_type list of data/train; augmentation sets"
  tools/stages/lists.sh --data_type "$data_type" --nj "$nj" --seed "$seed" data/train
  if [ -z "$noise_data$reverb_data" ] && [ "$simulate_aug" = true ]; then
    # coloured noise, babble of the training speakers, simulated rooms (no download)
    python -m wespk.bin.make_noise_set --data data/train --out_dir data/aug --seed "$seed"
  fi
fi

if run_stage 3 && [ -n "$pretrained_dir" ]; then
  if [ "$pretrained" = ge2e ]; then
    if [ ! -f "$pretrained_dir/avg_model.pt" ]; then
      log "stage 3: converting the resemblyzer GE2E encoder into $pretrained_dir"
      python -m wespk.bin.checkpoint_tool convert-resemblyzer "$pretrained_dir"
    fi
  elif [ ! -f "$pretrained_dir/config.yaml" ]; then
    # a copy of the model dir's config and a link to its weights: the scores go here, not there
    require "$model_init/config.yaml"
    mkdir -p "$pretrained_dir"
    cp "$model_init/config.yaml" "$pretrained_dir/config.yaml"
    model_file=$model_init/models/avg_model.pt
    [ -f "$model_file" ] || model_file=$model_init/avg_model.pt
    require "$model_file"
    ln -sf "$(cd "$(dirname "$model_file")" && pwd)/avg_model.pt" "$pretrained_dir/avg_model.pt"
  fi
  scored=true   # its scores are there, newer than the weights, trials and training list
  for f in "$pretrained_dir/avg_model.pt" data/dev/trials data/train/wav.scp; do
    [ "$pretrained_dir/results.md" -nt "$f" ] || scored=false
  done
  [ -f "$pretrained_dir/scores/dev.asnorm$top_n.score" ] || scored=false
  if [ "$scored" = true ]; then
    log "stage 3: the pretrained model $pretrained_dir is scored already (remove its results.md to score it again)"
  else
    log "stage 3: the pretrained model $pretrained_dir on the dev trials (back end from data/train)"
    tools/stages/backend.sh --stage 5 --stop_stage 9 "${backend[@]}" --exp_dir "$pretrained_dir" --compare_dir ""
  fi
  [ -n "$model_init" ] || model_init=$pretrained_dir/avg_model.pt
  [ -f "$model_init" ] || model_init=$pretrained_dir/avg_model.pt
fi

if [ "$finetune" = false ]; then
  log "no fine-tuning (--finetune false): the results of $pretrained_dir are in $pretrained_dir/results.md"
  stop_stage=3
elif run_stage 3; then
  log "stage 3: training $config${model_init:+ from $model_init}"
  [ -n "$exp_dir" ] || die "no exp_dir: give --exp_dir or set exp_dir in $config"
  aug_args=()
  if [ -n "$noise_data$reverb_data" ]; then
    aug_args=(--noise_data "$noise_data" --reverb_data "$reverb_data")
  elif [ "$simulate_aug" = true ]; then
    aug_args=(--noise_data data/aug/noise --reverb_data data/aug/rirs)
  fi
  init=$model_init
  if [ -n "$model_init" ] && [ "$init_head" = false ]; then
    require "$model_init"
    # the pretrained speakers are not yours: keep the encoder, let the trainer make a new head
    init=$exp_dir/init_encoder.pt
    mkdir -p "$exp_dir"
    python -c "import sys, torch
from wespk.io.checkpoint import load_state_dict
state = load_state_dict(sys.argv[1])
torch.save({k: v for k, v in state.items() if not k.startswith('projection.')}, sys.argv[2])" "$model_init" "$init"
  fi
  read -r -a extra_args <<< "$train_args"
  # the dev EER after every epoch (validation.jsonl, train_curves.png); stage 4 averages the best
  tools/stages/train.sh --config "$config" --exp_dir "$exp_dir" --data_type "$data_type" \
    --train_data "data/train/$data_type.list" --train_label data/train/utt2spk "${aug_args[@]}" \
    --model_init "$init" --gpus "$gpus" --nproc "$nproc" -- --dev_data data/dev --dev_trials data/dev/trials \
    "${extra_args[@]}"
fi

if stages_overlap 4 10; then
  tools/stages/backend.sh --stage "$stage" --stop_stage "$stop_stage" "${backend[@]}"
fi
log "done (stages $stage..$stop_stage)"
