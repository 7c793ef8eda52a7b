#!/usr/bin/env bash
# Make the augmentation data dirs of a recipe from archives already downloaded
# (and md5-checked) by the recipe's local/download_data.sh.
#
# Usage: local/prepare_aug_sets.sh [--sets "musan rirs"] DOWNLOAD_DIR DATA_DIR
#   --sets "musan rirs"   which sets: musan -> DATA_DIR/musan (from musan.tar.gz),
#                         rirs -> DATA_DIR/rirs (from rirs_noises.zip); "" for none
#
# The work is done by local/prepare_musan.sh and local/prepare_rirs_noises.sh
# (they unpack into DOWNLOAD_DIR once and list the files); this script only
# insists that the archives are there first (or were unpacked before), so
# nothing is fetched unchecked, and skips their second md5 check.
# Training reads the sets with dataset_args.noise_data / reverb_data.
set -euo pipefail

# Configuration section.
sets="musan rirs"

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$repo/tools/recipe.sh"
. "$repo/tools/parse_options.sh"
[ $# -eq 2 ] || usage_error
download_dir=$1
data_dir=$2

for set in $sets; do
  case $set in
    musan) archive=musan.tar.gz script=prepare_musan.sh unpacked=musan ;;
    rirs) archive=rirs_noises.zip script=prepare_rirs_noises.sh unpacked=RIRS_NOISES ;;
    *) die "unknown augmentation set '$set' (known: musan rirs)" ;;
  esac
  if [ ! -f "$download_dir/$unpacked/.extracted" ] && [ ! -f "$download_dir/$archive" ]; then
    die "$download_dir/$archive not found: run the recipe's local/download_data.sh --parts $set" \
        "(it checks the md5), or put the archive there"
  fi
  log "$set: $download_dir/$archive -> $data_dir/$set"
  # the recipe's download step has checked the archive against its checksums file already
  bash "$repo/local/$script" --md5 "" "$download_dir" "$data_dir/$set"
done
