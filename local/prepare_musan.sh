#!/usr/bin/env bash
# Download MUSAN (OpenSLR 17) and make a noise data dir for training augmentation.
#
# Usage: local/prepare_musan.sh [options] DOWNLOAD_DIR DATA_DIR
#   --url URL        where musan.tar.gz comes from
#                    (default: https://www.openslr.org/resources/17/musan.tar.gz)
#   --categories "noise music speech"   which MUSAN parts to list
#   --md5 SUM        expected md5 of the archive (default: the published one;
#                    "" skips the check, e.g. for a repacked archive)
#
# DOWNLOAD_DIR gets musan.tar.gz (about 11 GB) and musan/ unpacked from it.
# DATA_DIR gets wav.scp, utt2category (noise, music or speech; speech is mixed
# into babble of 3-7 speakers by the training pipeline) and utt2dur, sorted.
# Use it with dataset_args.noise_data: DATA_DIR. Each step is skipped when its
# output is already complete, so the script can be re-run after a failure: once
# DOWNLOAD_DIR/musan/.extracted exists the archive is no longer needed (it may
# be deleted); before unpacking, the archive's md5 is checked.
set -euo pipefail

# Configuration section.
url=https://www.openslr.org/resources/17/musan.tar.gz
categories="noise music speech"
md5=0c472d4fc0c5141eca47ad1ffeb2a7df

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$repo/tools/recipe.sh"
. "$repo/local/download.sh"
. "$repo/tools/parse_options.sh"
[ $# -eq 2 ] || usage_error
download_dir=$1
data_dir=$2
python=${PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || python=python3

mkdir -p "$download_dir" "$data_dir"
fetch_and_unpack "$url" "$download_dir/musan.tar.gz" "$md5" "$download_dir" musan || exit 1

log "listing MUSAN ($categories) into $data_dir"
tmp=$(mktemp -d "$data_dir/.prepare_musan.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
musan=$(cd "$download_dir/musan" && pwd)
for category in $categories; do
  if [ ! -d "$musan/$category" ]; then
    echo "$0: $musan/$category not found; is the archive complete?" >&2
    exit 1
  fi
  # MUSAN file names already start with the category (noise-free-sound-0000.wav).
  find "$musan/$category" -name '*.wav' | while read -r path; do
    key=$(basename "$path" .wav)
    echo "$key $path" >> "$tmp/wav.scp"
    echo "$key $category" >> "$tmp/utt2category"
  done
done
publish_listing "$tmp" "$data_dir"
log "$data_dir: $(wc -l < "$data_dir/wav.scp") files;" \
    "$(cut -d' ' -f2 "$data_dir/utt2category" | sort | uniq -c | tr '\n' ' ')"
