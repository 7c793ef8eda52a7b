#!/usr/bin/env bash
# Train a speaker-embedding model on your own data: import it (a folder tree, a CSV
# or a JSON-lines manifest), hold some speakers out as a dev set, train, and measure
# the equal error rate on dev trials. --model_init fine-tunes a pretrained model.
#
# Usage: bash run.sh --source DIR_OR_MANIFEST [--layout folder|csv|jsonl] [--config conf/resnet34_small.yaml]
#        bash run.sh --source ... --config conf/resnet34_finetune.yaml --model_init pretrained/avg_model.pt
#
# Stages
#   1 prepare     data/all from --source (wespk.bin.prepare_data); a speaker-disjoint, seeded split
#                 into data/train and data/dev; data/dev/trials (wespk.bin.make_trials)
#   2 lists       data/train/raw.list (or shards); data/aug/{noise,rirs} simulated from the
#                 training speech (wespk.bin.make_noise_set) unless --noise_data/--reverb_data
#   3 train       exp/<name>/models/model_<epoch>.pt          (torchrun; resumes by itself)
#   4 average     exp/<name>/models/avg_model.pt
#   5 extract     exp/<name>/embeddings/{train,dev}/xvector.{ark,scp}; train_spk (speaker means)
#   6 score       exp/<name>/scores/dev.score                 (cosine, training mean subtracted)
#   7 score_norm  exp/<name>/scores/dev.asnorm<N>.score       (AS-norm, training speakers as cohort)
#   9 metrics     the validation EER / minDCF on dev, DET curve, exp/<name>/results.md
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
config=conf/resnet34_small.yaml
exp_dir=""                 # default: the config's exp_dir
data_type=raw              # raw or shard
noise_data=""              # data dirs of noise / RIRs (e.g. from local/prepare_musan.sh and
reverb_data=""             #   local/prepare_rirs_noises.sh); empty: simulated ones (stage 2)
simulate_aug=true          # false: no augmentation sets when none are given
model_init=""              # fine-tune: start from these model weights (a model file or checkpoint)
init_head=false            # true: also take the classification head from model_init (same speakers);
                           #   false: the encoder only, a new head for your speakers
train_args=""              # more config overrides for wespk.bin.train, e.g. "--num_epochs 5"
gpus=""                    # e.g. "0,1": one training process per GPU; "" trains on CPU
nproc=1                    # CPU training processes (when gpus is "")
num_avg=""                 # default: the config's num_avg
# stages 5-9
nj=2                       # extraction jobs
top_n=100                  # AS-norm cohort size (the training speakers)
help_message=$(sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//')
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
  require data/train/wav.scp data/train/utt2spk
  if [ "$data_type" = shard ]; then
    python tools/make_shard_list.py --num_utts_per_shard 1000 --num_threads "$nj" --shuffle \
      data/train data/train/shards data/train/shard.list
  else
    python tools/make_raw_list.py data/train data/train/raw.list
  fi
  if [ -z "$noise_data$reverb_data" ] && [ "$simulate_aug" = true ]; then
    # coloured noise, babble of the training speakers, simulated rooms (no download)
    python -m wespk.bin.make_noise_set --data data/train --out_dir data/aug --seed "$seed"
  fi
fi

if run_stage 3; then
  list=data/train/$data_type.list
  require "$config" "$list" data/train/utt2spk
  [ -n "$exp_dir" ] || { log "ERROR: no exp_dir: give --exp_dir or set exp_dir in $config"; exit 1; }
  aug_args=()
  if [ -n "$noise_data$reverb_data" ]; then
    [ -n "$noise_data" ] && { require "$noise_data"; aug_args+=(--dataset_args.noise_data "$noise_data"); }
    [ -n "$reverb_data" ] && { require "$reverb_data"; aug_args+=(--dataset_args.reverb_data "$reverb_data"); }
  elif [ "$simulate_aug" = true ]; then
    require data/aug/noise/wav.scp data/aug/rirs/wav.scp
    aug_args=(--dataset_args.noise_data data/aug/noise --dataset_args.reverb_data data/aug/rirs)
  fi
  init_args=()
  if [ -n "$model_init" ]; then
    require "$model_init"
    init=$model_init
    if [ "$init_head" = false ]; then
      # the pretrained speakers are not yours: keep the encoder, let the trainer make a new head
      init=$exp_dir/init_encoder.pt
      mkdir -p "$exp_dir"
      python -c "import sys, torch
from wespk.io.checkpoint import load_state_dict
state = load_state_dict(sys.argv[1])
torch.save({k: v for k, v in state.items() if not k.startswith('projection.')}, sys.argv[2])" "$model_init" "$init"
    fi
    init_args=(--model_init "$init")
  fi
  read -r -a extra_args <<< "$train_args"
  if [ -n "$gpus" ]; then
    procs=$(echo "$gpus" | tr ',' '\n' | grep -c .)
  else
    procs=$nproc
    export OMP_NUM_THREADS=$(( $(nproc) / nproc > 0 ? $(nproc) / nproc : 1 ))
  fi
  log "stage 3: training $config into $exp_dir ($procs process(es), $device${model_init:+, from $model_init})"
  torchrun --standalone --nnodes=1 --nproc_per_node="$procs" -m wespk.bin.train --config "$config" \
    --device "$device" --exp_dir "$exp_dir" --data_type "$data_type" --train_data "$list" \
    --train_label data/train/utt2spk "${aug_args[@]}" "${init_args[@]}" "${extra_args[@]}"
fi

if run_stage 4; then
  log "stage 4: averaging checkpoints of $exp_dir"
  require "$exp_dir/models" "$exp_dir/config.yaml"
  [ -n "$num_avg" ] || num_avg=$(config_value "$exp_dir/config.yaml" num_avg)
  python -m wespk.bin.average_model --src_path "$exp_dir/models" \
    --dst_model "$exp_dir/models/avg_model.pt" --num "${num_avg:-1}"
fi

if run_stage 5; then
  log "stage 5: extracting embeddings of train and dev"
  require "$exp_dir/models/avg_model.pt" data/train/wav.scp data/dev/wav.scp
  for set in train dev; do
    python -m wespk.bin.extract --model_dir "$exp_dir" --data "data/$set" \
      --out_dir "$emb/$set" --nj "$nj" --device "$device"
  done
  python -m wespk.bin.speaker_mean --embeddings "$emb/train/xvector.scp" \
    --utt2spk data/train/utt2spk --output_dir "$emb/train_spk"
fi

if run_stage 6; then
  log "stage 6: cosine scoring of the dev trials (training mean subtracted)"
  require "$emb/dev/xvector.scp" "$emb/train/xvector.scp" data/dev/trials
  python -m wespk.bin.score --embeddings "$emb/dev/xvector.scp" --mean_from "$emb/train/xvector.scp" \
    --save_mean "$emb/train/mean_vec.npy" --trials data/dev/trials --output "$scores/dev.score"
fi

if run_stage 7; then
  log "stage 7: AS-norm (top $top_n) with the training speakers as cohort"
  require "$scores/dev.score" "$emb/train_spk/xvector.scp" "$emb/train/mean_vec.npy"
  python -m wespk.bin.score_norm --method asnorm --top_n "$top_n" --cohort "$emb/train_spk/xvector.scp" \
    --embeddings "$emb/dev/xvector.scp" --mean_vec "$emb/train/mean_vec.npy" \
    --input "$scores/dev.score" --output "$scores/dev.asnorm$top_n.score"
fi

if run_stage 9; then
  log "stage 9: validation metrics on dev"
  require "$scores/dev.score"
  files=("$scores/dev.score")
  [ -f "$scores/dev.asnorm$top_n.score" ] && files+=("$scores/dev.asnorm$top_n.score")
  python -m wespk.bin.compute_metrics --p_target 0.01 0.05 --det_png "$exp_dir/det.png" \
    --hist_png "$exp_dir/score_hist.png" --report_md "$exp_dir/results.md" "${files[@]}"
fi

if run_stage 10; then
  log "stage 10: export to ONNX and TorchScript"
  require "$exp_dir/models/avg_model.pt" data/dev/wav.scp
  check_wav=$(awk 'NR==1{print $2}' data/dev/wav.scp)
  python -m wespk.bin.export_onnx --model_dir "$exp_dir" --output "$exp_dir/models/final.onnx" \
    --check_wav "$check_wav"
  python -m wespk.bin.export_jit --model_dir "$exp_dir" --output "$exp_dir/models/final.pt" \
    --check_wav "$check_wav"
fi
log "done (stages $stage..$stop_stage)"
