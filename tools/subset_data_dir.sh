#!/usr/bin/env bash
# Make a Kaldi data directory holding a subset of another one's utterances.
#
# Usage: tools/subset_data_dir.sh --utt-list FILE SRC_DIR DEST_DIR
#    or: tools/subset_data_dir.sh --spk-list FILE SRC_DIR DEST_DIR
#    or: tools/subset_data_dir.sh --per-spk N SRC_DIR DEST_DIR
#    or: tools/subset_data_dir.sh SRC_DIR N DEST_DIR
#
#   --utt-list FILE  the utterances whose id is the first field of a line of
#                    FILE (so an utt2spk or a scp can serve as the list)
#   --spk-list FILE  all utterances of the speakers listed (first field)
#   --per-spk N      the first N utterances (in sorted order) of each speaker
#   SRC_DIR N DEST_DIR   the first N utterances of utt2spk (sorted order)
#
# utt2spk, segments, utt2dur, feats.scp, utt2num_frames, vad.scp and text are
# filtered to the chosen utterances, wav.scp and reco2dur to their recordings,
# spk2gender to their speakers, trials to the trials whose two utterances are
# both kept; spk2utt is regenerated. Ids of a list that SRC_DIR lacks are
# reported. Files are written to a temporary directory inside DEST_DIR and
# moved into place; data files of an earlier content of DEST_DIR that are not
# produced again are removed.
set -euo pipefail

# Configuration section.
utt_list=""
spk_list=""
per_spk=""

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
help_message=$(awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0")
. "$tools_dir/parse_options.sh"

program=$(basename "$0")
usage="Usage: $0 {--utt-list FILE | --spk-list FILE | --per-spk N} SRC_DIR DEST_DIR
   or: $0 SRC_DIR N DEST_DIR"
num_modes=0
for value in "$utt_list" "$spk_list" "$per_spk"; do
  [ -n "$value" ] && num_modes=$((num_modes + 1))
done
if [ $num_modes -gt 1 ]; then
  echo "$program: give only one of --utt-list, --spk-list, --per-spk" >&2
  exit 1
fi
num_utts=""
if [ $num_modes -eq 1 ] && [ $# -eq 2 ]; then
  src=${1%/}
  dest=${2%/}
elif [ $num_modes -eq 0 ] && [ $# -eq 3 ]; then
  src=${1%/}
  num_utts=$2
  dest=${3%/}
else
  echo "$usage" >&2
  exit 1
fi
for count in "$num_utts" "$per_spk"; do
  if [ -n "$count" ] && [[ ! "$count" =~ ^[1-9][0-9]*$ ]]; then
    echo "$program: the number of utterances must be a positive integer, got '$count'" >&2
    exit 1
  fi
done
for required in wav.scp utt2spk; do
  if [ ! -f "$src/$required" ]; then
    echo "$program: $src/$required does not exist" >&2
    exit 1
  fi
done
mkdir -p "$dest"
if [ "$(realpath "$src")" = "$(realpath "$dest")" ]; then
  echo "$program: SRC_DIR and DEST_DIR are the same directory" >&2
  exit 1
fi
export LC_ALL=C

work_dir=$(mktemp -d "$dest/.subset_data_dir.XXXXXX")
trap 'rm -rf "$work_dir"' EXIT
chosen="$work_dir/.chosen_utts"

# Report how many ids of list $1 (first field) are not keys of file $2.
report_missing_ids() {
  local list=$1 keys=$2 what=$3
  local missing
  missing=$("$tools_dir/filter_scp.pl" --exclude "$keys" "$list" | awk '{ print $1 }')
  if [ -n "$missing" ]; then
    echo "$program: warning: $(echo "$missing" | wc -l) $what of $list not in $src:" \
         "$(echo "$missing" | head -n 5 | tr '\n' ' ')" >&2
  fi
}

if [ -n "$utt_list" ]; then
  [ -f "$utt_list" ] || { echo "$program: no such file: $utt_list" >&2; exit 1; }
  report_missing_ids "$utt_list" "$src/utt2spk" "utterance(s)"
  "$tools_dir/filter_scp.pl" "$utt_list" "$src/utt2spk" | awk '{ print $1 }' > "$chosen"
elif [ -n "$spk_list" ]; then
  [ -f "$spk_list" ] || { echo "$program: no such file: $spk_list" >&2; exit 1; }
  awk '{ print $2 }' "$src/utt2spk" | sort -u > "$work_dir/.speakers"
  report_missing_ids "$spk_list" "$work_dir/.speakers" "speaker(s)"
  "$tools_dir/filter_scp.pl" -f 2 "$spk_list" "$src/utt2spk" | awk '{ print $1 }' > "$chosen"
elif [ -n "$per_spk" ]; then
  sort "$src/utt2spk" | "$tools_dir/utt2spk_to_spk2utt.pl" \
    | awk -v n="$per_spk" '{ for (i = 2; i <= NF && i <= n + 1; i++) print $i }' > "$chosen"
else
  total=$(wc -l < "$src/utt2spk")
  if [ "$num_utts" -gt "$total" ]; then
    echo "$program: cannot take $num_utts utterances: $src has only $total" >&2
    exit 1
  fi
  sort "$src/utt2spk" | head -n "$num_utts" | awk '{ print $1 }' > "$chosen"
fi
if [ ! -s "$chosen" ]; then
  echo "$program: no utterance of $src was selected" >&2
  exit 1
fi

"$tools_dir/filter_scp.pl" "$chosen" "$src/utt2spk" > "$work_dir/utt2spk"
for file in segments utt2dur feats.scp utt2num_frames vad.scp text; do
  if [ -f "$src/$file" ]; then
    "$tools_dir/filter_scp.pl" "$chosen" "$src/$file" > "$work_dir/$file"
  fi
done
if [ -f "$src/segments" ]; then
  awk '{ print $2 }' "$work_dir/segments" | sort -u > "$work_dir/.recordings"
else
  cp "$chosen" "$work_dir/.recordings"
fi
"$tools_dir/filter_scp.pl" "$work_dir/.recordings" "$src/wav.scp" > "$work_dir/wav.scp"
if [ -f "$src/reco2dur" ]; then
  "$tools_dir/filter_scp.pl" "$work_dir/.recordings" "$src/reco2dur" > "$work_dir/reco2dur"
fi
"$tools_dir/utt2spk_to_spk2utt.pl" "$work_dir/utt2spk" > "$work_dir/spk2utt"
if [ -f "$src/spk2gender" ]; then
  "$tools_dir/filter_scp.pl" "$work_dir/spk2utt" "$src/spk2gender" > "$work_dir/spk2gender"
fi
if [ -f "$src/trials" ]; then
  "$tools_dir/filter_scp.pl" "$chosen" "$src/trials" \
    | "$tools_dir/filter_scp.pl" -f 2 "$chosen" > "$work_dir/trials"
  [ -s "$work_dir/trials" ] || rm "$work_dir/trials"
fi
rm -f "$chosen" "$work_dir/.recordings" "$work_dir/.speakers"

for file in wav.scp utt2spk spk2utt segments utt2dur feats.scp utt2num_frames vad.scp text \
            reco2dur spk2gender trials; do
  if [ ! -f "$work_dir/$file" ]; then
    rm -f "$dest/$file"
  fi
done
for file in "$work_dir"/*; do
  mv -f "$file" "$dest/$(basename "$file")"
done
summary="$(wc -l < "$dest/utt2spk") of $(wc -l < "$src/utt2spk") utterances,"
summary+=" $(wc -l < "$dest/spk2utt") speakers"
[ -f "$dest/trials" ] && summary+=", $(wc -l < "$dest/trials") trials"
echo "$program: wrote $dest: $summary"
