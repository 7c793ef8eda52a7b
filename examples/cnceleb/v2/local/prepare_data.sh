#!/usr/bin/env bash
# Make the CN-Celeb recipe's data dirs from the downloaded (or already unpacked) corpora:
#   DATA/cnceleb_train          CN-Celeb1 dev speakers (dev/dev.lst) + CN-Celeb2 (spk.lst), FLAC
#   DATA/cnc_test               CN-Celeb1 eval/test
#   DATA/cnc_enroll_<mode>      the enrollment audio for --enroll_mode:
#                                 concat   eval/enroll/<spk>-enroll.flac (the released concatenations)
#                                 average  the data/ utterances eval/lists/enroll.map names, with the
#                                          enrollment id as speaker (their embeddings are averaged)
#   DATA/trials/CNC-Eval        eval/lists/trials.lst as "<spk>-enroll <test_utt> target|nontarget"
#   DATA/musan, DATA/rirs       augmentation sets
#
# Usage: local/prepare_data.sh [options]
#   --download_dir DIR    archives from local/download_data.sh (default data/download)
#   --rawdata_dir DIR     where the archives are unpacked (default data/raw)
#   --data DIR            where the data dirs go (default data)
#   --cnceleb1_dir DIR    CN-Celeb1 already unpacked (CN-Celeb_flac: data/<spk>/<genre>-<session>-<utt>.flac,
#                         dev/dev.lst, eval/) (default RAW/CN-Celeb_flac, from cn-celeb_v2.tar.gz)
#   --cnceleb2_dir DIR    CN-Celeb2 already unpacked (CN-Celeb2_flac: data/, spk.lst); "none" to train
#                         on CN-Celeb1 alone (default RAW/CN-Celeb2_flac, from cn-celeb2_v2.tar.gz)
#   --enroll_mode concat|average   (default concat)
#   --aug_sets "musan rirs"   augmentation sets (the shared local/prepare_aug_sets.sh); "" for none
#   --nj N                threads reading audio headers (default 8)
#
# Unpacking is done once (a marker file); the data dirs are made again on every
# run, each checked by tools/validate_data_dir.sh, and every trial must name
# an enrollment and a test utterance that exist.
set -euo pipefail

# Configuration section.
download_dir=data/download
rawdata_dir=data/raw
data=data
cnceleb1_dir=""
cnceleb2_dir=""
enroll_mode=concat
aug_sets="musan rirs"
nj=8

recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$recipe_dir/tools/parse_options.sh"
. "$recipe_dir/tools/recipe.sh"
[ $# -eq 0 ] || usage_error
. "$recipe_dir/path.sh"

case $enroll_mode in concat|average) ;; *) die "--enroll_mode must be concat or average" ;; esac

# import_speakers SRC_DATA_FOLDER SPK_LIST DATA_DIR: the listed speakers' utterances
# (all of them when SPK_LIST does not exist) as a validated data dir.
import_speakers() {
  local src=$1 spk_list=$2 dest=$3
  if [ -f "$spk_list" ]; then
    python -m wespk.bin.prepare_data --layout folder --extensions flac,wav --num_threads "$nj" \
      "$src" "$dest.all"
    "$recipe_dir/tools/subset_data_dir.sh" --spk-list "$spk_list" "$dest.all" "$dest"
    rm -rf "$dest.all"
  else
    log "$spk_list not found: taking every speaker of $src"
    python -m wespk.bin.prepare_data --layout folder --extensions flac,wav --num_threads "$nj" "$src" "$dest"
  fi
}

if [ -z "$cnceleb1_dir" ]; then
  unpack_once "$download_dir/cn-celeb_v2.tar.gz" "$rawdata_dir"
  cnceleb1_dir=$rawdata_dir/CN-Celeb_flac
fi
[ -d "$cnceleb1_dir/data" ] && [ -d "$cnceleb1_dir/eval" ] \
  || die "$cnceleb1_dir does not look like CN-Celeb1 (no data/ and eval/ in it)"
[ -f "$cnceleb1_dir/dev/dev.lst" ] || die "$cnceleb1_dir/dev/dev.lst (the training speakers) not found"
if [ -z "$cnceleb2_dir" ]; then
  unpack_once "$download_dir/cn-celeb2_v2.tar.gz" "$rawdata_dir"
  cnceleb2_dir=$rawdata_dir/CN-Celeb2_flac
fi

log "training set: CN-Celeb1 dev speakers$([ "$cnceleb2_dir" = none ] || echo " + CN-Celeb2") -> $data/cnceleb_train"
rm -rf "$data/.cnceleb_parts"
import_speakers "$cnceleb1_dir/data" "$cnceleb1_dir/dev/dev.lst" "$data/.cnceleb_parts/cnceleb1_dev"
if [ "$cnceleb2_dir" = none ]; then
  "$recipe_dir/tools/combine_data.sh" "$data/cnceleb_train" "$data/.cnceleb_parts/cnceleb1_dev"
else
  [ -d "$cnceleb2_dir/data" ] || die "$cnceleb2_dir does not look like CN-Celeb2 (no data/ in it)"
  import_speakers "$cnceleb2_dir/data" "$cnceleb2_dir/spk.lst" "$data/.cnceleb_parts/cnceleb2"
  "$recipe_dir/tools/combine_data.sh" "$data/cnceleb_train" \
    "$data/.cnceleb_parts/cnceleb1_dev" "$data/.cnceleb_parts/cnceleb2"
fi
rm -rf "$data/.cnceleb_parts"

log "evaluation set (enrollment: $enroll_mode) -> $data/cnc_test, $data/cnc_enroll_$enroll_mode, $data/trials/CNC-Eval"
python "$repo_root/local/prepare_cnceleb_eval.py" --enroll_mode "$enroll_mode" --num_threads "$nj" \
  "$cnceleb1_dir" "$data/cnc_test" "$data/cnc_enroll_$enroll_mode" "$data/trials/CNC-Eval"

bash "$repo_root/local/prepare_aug_sets.sh" --sets "$aug_sets" "$download_dir" "$data"
log "done: $data/cnceleb_train ($(wc -l < "$data/cnceleb_train/utt2spk") utterances," \
    "$(wc -l < "$data/cnceleb_train/spk2utt") speakers)"
