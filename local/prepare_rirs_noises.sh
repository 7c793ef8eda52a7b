#!/usr/bin/env bash
# Download RIRS_NOISES (OpenSLR 28) and make an RIR data dir for reverberation.
#
# Usage: local/prepare_rirs_noises.sh [options] DOWNLOAD_DIR DATA_DIR
#   --url URL            where rirs_noises.zip comes from
#                        (default: https://www.openslr.org/resources/28/rirs_noises.zip)
#   --rooms "smallroom mediumroom largeroom"   simulated room sizes to list
#   --real true|false    also list the real RIRs of real_rirs_isotropic_noises
#                        (multi-channel; the pipeline uses their first channel)
#   --md5 SUM            expected md5 of the archive (default: the published one;
#                        "" skips the check)
#
# DOWNLOAD_DIR gets rirs_noises.zip (about 1.2 GB) and RIRS_NOISES/ unpacked.
# DATA_DIR gets wav.scp, utt2category (the room size, or "real") and utt2dur,
# sorted. Use it with dataset_args.reverb_data: DATA_DIR. Each step is skipped
# when its output is already complete, so the script can be re-run: once
# DOWNLOAD_DIR/RIRS_NOISES/.extracted exists the archive is no longer needed;
# before unpacking, the archive's md5 is checked.
set -euo pipefail

# Configuration section.
url=https://www.openslr.org/resources/28/rirs_noises.zip
rooms="smallroom mediumroom largeroom"
real=false
md5=e6f48e257286e05de56413b4779d8ffb

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
fetch_and_unpack "$url" "$download_dir/rirs_noises.zip" "$md5" "$download_dir" RIRS_NOISES || exit 1

log "listing RIRs ($rooms; real: $real) into $data_dir"
tmp=$(mktemp -d "$data_dir/.prepare_rirs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
top=$(cd "$download_dir/RIRS_NOISES" && pwd)
: > "$tmp/wav.scp"
: > "$tmp/utt2category"
for room in $rooms; do
  if [ ! -d "$top/simulated_rirs/$room" ]; then
    echo "$0: $top/simulated_rirs/$room not found; is the archive complete?" >&2
    exit 1
  fi
  # simulated_rirs/smallroom/Room001/Room001-00001.wav -> smallroom-Room001-00001
  find "$top/simulated_rirs/$room" -name '*.wav' | while read -r path; do
    key=$room-$(basename "$path" .wav)
    echo "$key $path" >> "$tmp/wav.scp"
    echo "$key $room" >> "$tmp/utt2category"
  done
done
if [ "$real" = true ]; then
  # rir_list lines name each real RIR file (the other files there are noises).
  grep -o 'real_rirs_isotropic_noises/[^ ]*\.wav' "$top/real_rirs_isotropic_noises/rir_list" \
    | LC_ALL=C sort -u | while read -r rel; do
    key=real-$(basename "$rel" .wav)
    echo "$key $top/$rel" >> "$tmp/wav.scp"
    echo "$key real" >> "$tmp/utt2category"
  done
fi
publish_listing "$tmp" "$data_dir"
log "$data_dir: $(wc -l < "$data_dir/wav.scp") RIRs"
