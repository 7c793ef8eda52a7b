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
archive=$download_dir/musan.tar.gz

marker=$download_dir/musan/.extracted
if [ -f "$marker" ]; then
  log "$download_dir/musan is already unpacked"
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
  tar -xzf "$archive" -C "$download_dir"
  if [ ! -d "$download_dir/musan" ]; then
    echo "$0: $archive did not unpack into $download_dir/musan" >&2
    exit 1
  fi
  touch "$marker"
fi

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
for f in wav.scp utt2category; do
  LC_ALL=C sort -u "$tmp/$f" > "$tmp/$f.sorted"
done
if [ "$(cut -d' ' -f1 "$tmp/wav.scp.sorted" | uniq -d | head -n 1)" != "" ]; then
  echo "$0: duplicate keys in the MUSAN listing" >&2
  exit 1
fi
"$python" "$repo/tools/wav_to_duration.py" --nj 4 "$tmp/wav.scp.sorted" "$tmp/utt2dur"
mv "$tmp/wav.scp.sorted" "$data_dir/wav.scp"
mv "$tmp/utt2category.sorted" "$data_dir/utt2category"
mv "$tmp/utt2dur" "$data_dir/utt2dur"
log "$data_dir: $(wc -l < "$data_dir/wav.scp") files;" \
    "$(cut -d' ' -f2 "$data_dir/utt2category" | sort | uniq -c | tr '\n' ' ')"
