#!/usr/bin/env bash
# Combine several Kaldi data directories into one.
#
# Usage: tools/combine_data.sh [options] DEST_DIR SRC_DIR1 [SRC_DIR2 ...]
#   --extra-files "F1 F2"  more utterance-keyed files to combine (default: none)
#   --skip-fix true|false  do not run tools/fix_data_dir.sh on DEST_DIR at the
#                          end (default: false, i.e. fix and validate it)
#
# Every source needs wav.scp and utt2spk. These are combined, and so are
# segments, utt2dur, feats.scp, utt2num_frames, vad.scp, text, spk2gender,
# reco2dur and the --extra-files when every source has them (a file that only
# some sources have is left out, with a warning). If some sources have
# segments and others do not, the others get whole-recording segments made
# from their utt2dur (an error if they have none: run tools/wav_to_duration.py
# first). A key found in two sources with different lines is an error naming
# both; identical lines are kept once. spk2utt is regenerated. trials are not
# combined (they belong to one evaluation set).
# Files are written to a temporary directory inside DEST_DIR and moved into
# place; data files of an earlier content of DEST_DIR that are not produced
# again are removed.
set -euo pipefail

# Configuration section.
extra_files=""
skip_fix=false

tools_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
help_message=$(awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0")
. "$tools_dir/parse_options.sh"

if [ $# -lt 2 ]; then
  echo "Usage: $0 [--extra-files \"F1 F2\"] [--skip-fix true|false] DEST_DIR SRC_DIR1 [SRC_DIR2 ...]" >&2
  exit 1
fi
program=$(basename "$0")
dest=${1%/}
shift
sources=("${@%/}")
export LC_ALL=C

utterance_files="utt2dur feats.scp utt2num_frames vad.scp text $extra_files"
other_files="spk2gender reco2dur"
# Everything this script may write, for removing stale files in DEST_DIR.
all_files="wav.scp utt2spk spk2utt segments $utterance_files $other_files"

mkdir -p "$dest"
dest_real=$(realpath "$dest")
any_segments=false
for src in "${sources[@]}"; do
  if [ "$(realpath "$src")" = "$dest_real" ]; then
    echo "$program: DEST_DIR $dest is also a source" >&2
    exit 1
  fi
  for required in wav.scp utt2spk; do
    if [ ! -f "$src/$required" ]; then
      echo "$program: $src/$required does not exist" >&2
      exit 1
    fi
  done
  [ -f "$src/segments" ] && any_segments=true
  if [ -f "$src/trials" ]; then
    echo "$program: warning: $src/trials is not combined" >&2
  fi
done

work_dir=$(mktemp -d "$dest/.combine_data.XXXXXX")
trap 'rm -rf "$work_dir"' EXIT

# Merge the given "name:source_label" files into one sorted file on stdout.
# Identical lines are kept once; one key with different lines is an error.
merge_keyed() {
  perl -e '
    my ($program, @inputs) = @ARGV;
    my (%line_of_key, %origin);
    for my $input (@inputs) {
      my ($path, $label) = split(/\t/, $input);
      open(my $in, "<", $path) or die "$program: cannot read $path: $!\n";
      while (my $text = <$in>) {
        chomp $text;
        my ($key) = split(" ", $text);
        next unless defined $key;
        if (exists $line_of_key{$key}) {
          next if $line_of_key{$key} eq $text;
          die "$program: key \x27$key\x27 differs between $origin{$key} and $label:$.\n";
        }
        $line_of_key{$key} = $text;
        $origin{$key} = "$label:$.";
      }
      close($in);
    }
    print "$line_of_key{$_}\n" for sort keys %line_of_key;
  ' "$program" "$@"
}

# utt2spk and wav.scp.
for file in utt2spk wav.scp; do
  inputs=()
  for src in "${sources[@]}"; do inputs+=("$src/$file"$'\t'"$src/$file"); done
  merge_keyed "${inputs[@]}" > "$work_dir/$file"
done

# segments, made up from utt2dur for sources without them.
if $any_segments; then
  inputs=()
  for src in "${sources[@]}"; do
    if [ -f "$src/segments" ]; then
      inputs+=("$src/segments"$'\t'"$src/segments")
    elif [ -f "$src/utt2dur" ]; then
      mkdir -p "$work_dir/made_segments"
      whole="$work_dir/made_segments/${#inputs[@]}"
      awk '{ print $1, $1, 0, $2 }' "$src/utt2dur" > "$whole"
      inputs+=("$whole"$'\t'"segments made from $src/utt2dur")
      echo "$program: $src has no segments; using whole recordings (from its utt2dur)"
    else
      echo "$program: $src has no segments (other sources have) and no utt2dur to make them;" \
           "run tools/wav_to_duration.py on it first" >&2
      exit 1
    fi
  done
  merge_keyed "${inputs[@]}" > "$work_dir/segments"
  rm -rf "$work_dir/made_segments"
fi

# Optional files, combined when every source has them.
for file in $utterance_files $other_files; do
  inputs=()
  missing=()
  for src in "${sources[@]}"; do
    if [ -f "$src/$file" ]; then
      inputs+=("$src/$file"$'\t'"$src/$file")
    else
      missing+=("$src")
    fi
  done
  if [ ${#inputs[@]} -eq 0 ]; then
    continue
  elif [ ${#missing[@]} -gt 0 ]; then
    echo "$program: warning: $file not combined: missing in ${missing[*]}" >&2
  else
    merge_keyed "${inputs[@]}" > "$work_dir/$file"
  fi
done

"$tools_dir/utt2spk_to_spk2utt.pl" "$work_dir/utt2spk" > "$work_dir/spk2utt"

for file in $all_files trials; do
  if [ ! -f "$work_dir/$file" ]; then
    rm -f "$dest/$file"
  fi
done
for file in "$work_dir"/*; do
  mv -f "$file" "$dest/$(basename "$file")"
done
echo "$program: combined ${#sources[@]} director(ies) into $dest:" \
     "$(wc -l < "$dest/utt2spk") utterances, $(wc -l < "$dest/spk2utt") speakers"

if ! $skip_fix; then
  "$tools_dir/fix_data_dir.sh" "$dest"
fi
