#!/usr/bin/env bash
# Download VoxConverse (audio of dev and test, annotations) into DIR and unpack it
# (with wespk.bin.unpack: no archive member may land outside DIR).
#
# Usage: local/download_data.sh [--download_dir data/download] [--checksums local/checksums.md5]
#
# Every file is fetched with the shared helpers of local/download.sh (resumable,
# md5-checked when CHECKSUMS lists the file). After a download the md5 of each
# archive is written to DIR/downloaded.md5, so that a later run checks the
# files it finds against what was fetched the first time.
set -euo pipefail

download_dir=data/download
checksums=local/checksums.md5
audio_base_url=https://www.robots.ox.ac.uk/~vgg/data/voxconverse/data
annotations_url=https://github.com/joonson/voxconverse/archive/refs/heads/master.zip

. ./path.sh
. tools/parse_options.sh
. tools/recipe.sh
. "$repo_root/local/download.sh"

mkdir -p "$download_dir"
fetch_files "$download_dir" "$checksums" 2 \
  voxconverse_dev_wav.zip="$audio_base_url/voxconverse_dev_wav.zip" \
  voxconverse_test_wav.zip="$audio_base_url/voxconverse_test_wav.zip" \
  voxconverse_master.zip="$annotations_url"
( cd "$download_dir" && md5sum voxconverse_dev_wav.zip voxconverse_test_wav.zip voxconverse_master.zip ) \
  > "$download_dir/downloaded.md5"
# unpacked once each (a marker records it); no member may leave its folder
for split in dev test; do
  unpack_once "$download_dir/voxconverse_${split}_wav.zip" "$download_dir/$split"
done
unpack_once "$download_dir/voxconverse_master.zip" "$download_dir"
