#!/usr/bin/env bash
# Recipe stage 3: train with torchrun (gloo on CPU, nccl on GPU); resumes by itself
# from the newest checkpoint in <exp_dir>/models.
#
# Usage: tools/stages/train.sh --config CONF --exp_dir DIR --train_data LIST --train_label UTT2SPK
#            [--data_type raw|shard] [--gpus 0,1 | --nproc N] [--nnodes N --rdzv_endpoint HOST:PORT]
#            [--noise_data DIR] [--reverb_data DIR] [--aug_sets "musan rirs"] [--model_init MODEL] [-- CONFIG OVERRIDES...]
#
# Anything after the options (or after --) goes to wespk.bin.train as it is,
# e.g. "--num_epochs 5 --dataset_args.aug_prob 0".
set -euo pipefail

config=""
exp_dir=""
train_data=""          # raw.list or shard.list
train_label=""         # utt2spk of the training data
data_type=raw
gpus=""                # one process per GPU; "" trains on CPU with --nproc processes
nproc=1
nnodes=1               # >1: torchrun multi-node, run on every node with the same options
rdzv_endpoint=""       # host:port of the first node (needed when nnodes > 1)
rdzv_id=wespk
noise_data=""          # data dirs of noise and RIRs for augmentation
reverb_data=""
aug_sets=""            # or the sets of local/prepare_aug_sets.sh: "musan" (noise: data/musan),
                       #   "rirs" (reverberation: data/rirs)
model_init=""          # start from these model weights

stages_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$stages_dir/../parse_options.sh"
. "$stages_dir/../recipe.sh"

[ -n "$exp_dir" ] || die "no exp_dir: give --exp_dir or set exp_dir in $config"
require "$config" "$train_data" "$train_label"
args=(--config "$config" --exp_dir "$exp_dir" --data_type "$data_type" --train_data "$train_data"
      --train_label "$train_label")
[[ " $aug_sets " == *" musan "* ]] && noise_data=${noise_data:-data/musan}
[[ " $aug_sets " == *" rirs "* ]] && reverb_data=${reverb_data:-data/rirs}
[ -n "$noise_data" ] && { require "$noise_data/wav.scp"; args+=(--dataset_args.noise_data "$noise_data"); }
[ -n "$reverb_data" ] && { require "$reverb_data/wav.scp"; args+=(--dataset_args.reverb_data "$reverb_data"); }
[ -n "$model_init" ] && { require "$model_init"; args+=(--model_init "$model_init"); }
set_device "$gpus"
set_training_processes "$gpus" "$nproc"
if [ "$nnodes" -gt 1 ]; then
  [ -n "$rdzv_endpoint" ] || die "--nnodes $nnodes needs --rdzv_endpoint host:port"
  launcher=(torchrun --nnodes="$nnodes" --nproc_per_node="$procs" --rdzv_backend=c10d
            --rdzv_endpoint="$rdzv_endpoint" --rdzv_id="$rdzv_id")
else
  launcher=(torchrun --standalone --nnodes=1 --nproc_per_node="$procs")
fi
log "training $config into $exp_dir ($nnodes node(s) x $procs process(es), $device${model_init:+, from $model_init})"
"${launcher[@]}" -m wespk.bin.train "${args[@]}" --device "$device" "$@"
