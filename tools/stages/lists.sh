#!/usr/bin/env bash
# Recipe stage 2: the training list of a data dir, DATA_DIR/raw.list, or with
# --data_type shard DATA_DIR/shard.list and the tar shards in DATA_DIR/shards/.
#
# Usage: tools/stages/lists.sh [--data_type raw|shard] [--num_utts_per_shard 1000] [--nj 2]
#            [--shuffle true] [--seed 777] DATA_DIR
set -euo pipefail

data_type=raw
num_utts_per_shard=1000
nj=2                   # threads writing shards
shuffle=true           # shards: utterances shuffled (seeded) before they are cut into shards
seed=777

stages_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$stages_dir/../parse_options.sh"
. "$stages_dir/../recipe.sh"

[ $# -eq 1 ] || die "usage: $0 [options] DATA_DIR"
dir=$1
require "$dir/wav.scp" "$dir/utt2spk"
case $data_type in
  shard)
    shuffle_args=()
    [ "$shuffle" = true ] && shuffle_args=(--shuffle --seed "$seed")
    python "$stages_dir/../make_shard_list.py" --num_utts_per_shard "$num_utts_per_shard" \
      --num_threads "$nj" "${shuffle_args[@]}" "$dir" "$dir/shards" "$dir/shard.list"
    ;;
  raw) python "$stages_dir/../make_raw_list.py" "$dir" "$dir/raw.list" ;;
  *) die "--data_type must be raw or shard, got '$data_type'" ;;
esac
