#!/usr/bin/env bash
# Make the VoxCeleb recipe's data dirs from the downloaded (or already unpacked) corpora:
#   DATA/vox1          VoxCeleb1 dev + test, the evaluation set (vox1-E and -H use all of it)
#   DATA/trials/       vox1_O_cleaned, vox1_E_cleaned, vox1_H_cleaned: the cleaned official
#                      lists as Kaldi trials "enroll test target|nontarget"
#   DATA/vox2_dev      VoxCeleb2 dev, the training set
#   DATA/musan, DATA/rirs   noise and room impulse responses for augmentation
#
# Usage: local/prepare_data.sh [options]
#   --download_dir DIR   archives from local/download_data.sh (default data/download)
#   --rawdata_dir DIR    where archives are unpacked and m4a converted (default data/raw)
#   --data DIR           where the data dirs go (default data)
#   --vox1_dirs "D ..."  VoxCeleb1 already unpacked: folders of <spk>/<video>/<utt>.wav
#                        (default RAW/voxceleb1/dev/wav and RAW/voxceleb1/test/wav, unpacked
#                        from vox1_dev_wav.zip and vox1_test_wav.zip when not there yet)
#   --vox2_dev_dir DIR   VoxCeleb2 dev already unpacked: <spk>/<video>/<utt>.m4a (converted to
#                        --vox2_format in RAW/vox2_dev_<format>), or .wav/.flac (used as they are)
#                        (default RAW/voxceleb2/dev/aac, unpacked from vox2_dev_aac.zip)
#   --vox2_format wav|flac   what the m4a files become (default wav; flac is ~half the size)
#   --trials_dir DIR     holds veri_test2.txt, list_test_all2.txt, list_test_hard2.txt
#                        (default DOWNLOAD_DIR)
#   --aug_sets "musan rirs"  augmentation sets to make, from DOWNLOAD_DIR/musan.tar.gz and
#                        rirs_noises.zip (the shared local/prepare_aug_sets.sh); "" for none
#   --nj N               parallel m4a conversions and audio-header threads (default 8)
#
# Unpacking and conversion are done once (marker files); the data dirs are
# made again on every run, each checked by tools/validate_data_dir.sh, and
# every trial must name utterances of DATA/vox1.
set -euo pipefail

# Configuration section.
download_dir=data/download
rawdata_dir=data/raw
data=data
vox1_dirs=""
vox2_dev_dir=""
vox2_format=wav
trials_dir=""
aug_sets="musan rirs"
nj=8

recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$recipe_dir/tools/parse_options.sh"
. "$recipe_dir/tools/recipe.sh"
[ $# -eq 0 ] || usage_error
. "$recipe_dir/path.sh"

[ -n "$trials_dir" ] || trials_dir=$download_dir

# import_folder SRC DATA_DIR: <spk>/.../<utt>.wav|flac -> a validated data dir.
import_folder() {
  python -m wespk.bin.prepare_data --layout folder --extensions wav,flac --num_threads "$nj" "$1" "$2"
}

# --- VoxCeleb1 ---
if [ -z "$vox1_dirs" ]; then
  unpack_once "$download_dir/vox1_dev_wav.zip" "$rawdata_dir/voxceleb1/dev"
  unpack_once "$download_dir/vox1_test_wav.zip" "$rawdata_dir/voxceleb1/test"
  vox1_dirs="$rawdata_dir/voxceleb1/dev/wav $rawdata_dir/voxceleb1/test/wav"
fi
read -r -a vox1_list <<< "$vox1_dirs"
for dir in "${vox1_list[@]}"; do
  [ -d "$dir" ] || die "VoxCeleb1 folder $dir not found (expected <spk>/<video>/<utt>.wav in it)"
done
log "VoxCeleb1 from ${vox1_list[*]} -> $data/vox1"
if [ ${#vox1_list[@]} -eq 1 ]; then
  import_folder "${vox1_list[0]}" "$data/vox1"
else
  rm -rf "$data/.vox1_parts"
  parts=()
  for i in "${!vox1_list[@]}"; do
    import_folder "${vox1_list[$i]}" "$data/.vox1_parts/$i"
    parts+=("$data/.vox1_parts/$i")
  done
  "$recipe_dir/tools/combine_data.sh" "$data/vox1" "${parts[@]}"
  rm -rf "$data/.vox1_parts"
fi

# --- VoxCeleb2 dev ---
if [ -z "$vox2_dev_dir" ]; then
  unpack_once "$download_dir/vox2_dev_aac.zip" "$rawdata_dir/voxceleb2"
  vox2_dev_dir=$rawdata_dir/voxceleb2/dev/aac
fi
[ -d "$vox2_dev_dir" ] || die "VoxCeleb2 dev folder $vox2_dev_dir not found"
vox2_audio=$vox2_dev_dir
if [ -n "$(find "$vox2_dev_dir" -name '*.m4a' -print -quit)" ]; then
  vox2_audio=$rawdata_dir/vox2_dev_$vox2_format
  if [ -f "$vox2_audio/.converted" ]; then
    log "$vox2_audio: already converted"
  else
    "$recipe_dir/local/convert_m4a.sh" --nj "$nj" --format "$vox2_format" "$vox2_dev_dir" "$vox2_audio"
    touch "$vox2_audio/.converted"
  fi
fi
log "VoxCeleb2 dev from $vox2_audio -> $data/vox2_dev"
import_folder "$vox2_audio" "$data/vox2_dev"

# --- the cleaned VoxCeleb1 trial lists ---
mkdir -p "$data/trials"
# the lists have no published md5: their length is checked (37611, 579818 and 550894 trials)
for item in O:veri_test2.txt:37611 E:list_test_all2.txt:579818 H:list_test_hard2.txt:550894; do
  IFS=: read -r condition file official_count <<< "$item"
  name=vox1_${condition}_cleaned
  official=$trials_dir/$file
  [ -f "$official" ] || die "$official not found: run local/download_data.sh --parts vox1_trials," \
                            "or give --trials_dir"
  python "$repo_root/local/convert_trials.py" --format voxceleb --known "$data/vox1/utt2spk" \
    "$official" "$data/trials/$name"
  count=$(wc -l < "$data/trials/$name")
  if [ "$count" -ne "$official_count" ]; then
    log "WARNING: $official has $count trials, the published cleaned list $official_count:" \
        "incomplete download, or another list?"
  fi
done

# --- augmentation sets ---
bash "$repo_root/local/prepare_aug_sets.sh" --sets "$aug_sets" "$download_dir" "$data"
log "done: $data/vox1 ($(wc -l < "$data/vox1/utt2spk") utterances)," \
    "$data/vox2_dev ($(wc -l < "$data/vox2_dev/utt2spk") utterances), trials in $data/trials"
