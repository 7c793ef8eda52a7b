#!/usr/bin/env bash
# Diarization on VoxConverse dev and test (system VAD, spectral clustering), DER with a 0.25 s collar.
#
# Usage: bash run.sh --model_dir DIR [--stage N] [--stop_stage M] [--download true] [--sets "dev test"]
#                    [--download_dir data/download] [--checksums local/checksums.md5] [--diarize_args "..."]
#
# Stages
#   1 download   (with --download true) the audio archives and the annotations into data/download,
#                md5-checked when --checksums lists them (local/download_data.sh)
#   2 prepare    data/<set>/{wav.scp,rttm,reco2num_spk} from the unpacked audio and annotations
#   3 diarize    exp/<model>/<set>/{rttm,der.md,der.json}: VAD, 1.5 s / 0.75 s sub-segments,
#                embeddings of --model_dir, spectral clustering with the eigengap
# --model_dir is any wespk model dir, e.g. a WeSpeaker VoxCeleb ResNet34 converted with
# python -m wespk.bin.checkpoint_tool convert-wespeaker.
set -euo pipefail

stage=1
stop_stage=3
model_dir=""
download=false
download_dir=data/download
checksums=local/checksums.md5
sets="dev test"
diarize_args=""
help_message=$(sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//')

. ./path.sh
. tools/parse_options.sh
. tools/recipe.sh

if run_stage 1 && [ "$download" = true ]; then
  log "stage 1: downloading VoxConverse into $download_dir"
  local/download_data.sh --download_dir "$download_dir" --checksums "$checksums"
fi

if run_stage 2; then
  for set in $sets; do
    log "stage 2: data/$set"
    require "$download_dir/$set" "$download_dir/voxconverse-master/$set"
    python local/prepare_data.py --audio_dir "$download_dir/$set" \
      --rttm_dir "$download_dir/voxconverse-master/$set" --out_dir "data/$set"
  done
fi

if run_stage 3; then
  [ -n "$model_dir" ] || die "stage 3 needs --model_dir (a wespk model dir)"
  name=$(basename "$model_dir")
  for set in $sets; do
    require "data/$set/wav.scp" "data/$set/rttm" "$model_dir/config.yaml"
    log "stage 3: diarizing data/$set with $model_dir"
    # shellcheck disable=SC2086
    python -m wespk.bin.diarize --model_dir "$model_dir" --data "data/$set" --out_dir "exp/$name/$set" \
      --ref_rttm "data/$set/rttm" --plot $diarize_args
  done
fi
log "done (stages $stage..$stop_stage)"
