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
help_message=$(awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0")
. "$repo/tools/parse_options.sh"
if [ $# -ne 2 ]; then
  echo "$help_message" >&2
  exit 1
fi
download_dir=$1
data_dir=$2

log() { echo "$(date '+%F %T') [$(basename "$0"):${BASH_LINENO[0]}] $*"; }
python=${PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || python=python3

mkdir -p "$download_dir" "$data_dir"
archive=$download_dir/rirs_noises.zip

marker=$download_dir/RIRS_NOISES/.extracted
if [ -f "$marker" ]; then
  log "$download_dir/RIRS_NOISES is already unpacked"
else
  if [ ! -f "$archive" ]; then
    log "downloading $url"
    # Into a .part file (resumable with -c), renamed when complete.
    wget -c -O "$archive.part" "$url"
    mv "$archive.part" "$archive"
  fi
  # A passed check is cached in $archive.md5ok (with the file's size and time), so a re-run after a
  # failed unpack does not hash the archive again.
  stamp="$md5 $(stat -c '%s %Y' "$archive" 2>/dev/null || stat -f '%z %m' "$archive")"
  if [ -n "$md5" ] && [ "$(cat "$archive.md5ok" 2>/dev/null)" != "$stamp" ]; then
    log "checking the md5 of $archive"
    actual=$(md5sum "$archive" | cut -d' ' -f1)
    if [ "$actual" != "$md5" ]; then
      echo "$0: $archive: md5 $actual, expected $md5; the file is incomplete or damaged:" \
           "delete it and run again (or give --md5 for a different archive)" >&2
      exit 1
    fi
    echo "$stamp" > "$archive.md5ok"
  fi
  log "unpacking $archive"
  unzip -q -o "$archive" -d "$download_dir"
  if [ ! -d "$download_dir/RIRS_NOISES" ]; then
    echo "$0: $archive did not unpack into $download_dir/RIRS_NOISES" >&2
    exit 1
  fi
  touch "$marker"
fi

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
for f in wav.scp utt2category; do
  LC_ALL=C sort -u "$tmp/$f" > "$tmp/$f.sorted"
done
if [ "$(cut -d' ' -f1 "$tmp/wav.scp.sorted" | uniq -d | head -n 1)" != "" ]; then
  echo "$0: duplicate keys in the RIR listing" >&2
  exit 1
fi
"$python" "$repo/tools/wav_to_duration.py" --nj 4 "$tmp/wav.scp.sorted" "$tmp/utt2dur"
mv "$tmp/wav.scp.sorted" "$data_dir/wav.scp"
mv "$tmp/utt2category.sorted" "$data_dir/utt2category"
mv "$tmp/utt2dur" "$data_dir/utt2dur"
log "$data_dir: $(wc -l < "$data_dir/wav.scp") RIRs"
