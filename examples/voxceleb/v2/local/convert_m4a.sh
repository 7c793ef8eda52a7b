#!/usr/bin/env bash
# Convert VoxCeleb2's m4a (AAC) files to wav or flac with ffmpeg, N files at once.
#
# Usage: local/convert_m4a.sh [--nj 8] [--format wav|flac] SRC_DIR DST_DIR
#
# SRC_DIR/<spk>/<video>/<utt>.m4a becomes DST_DIR/<spk>/<video>/<utt>.wav (or
# .flac): 16 kHz, mono, 16-bit. Each file is written under a temporary name
# and renamed when complete, and files already converted are skipped, so an
# interrupted run is finished by running it again. If some files fail, they
# are listed in DST_DIR/convert_failed.txt and the exit status is 1.
set -euo pipefail

# Configuration section.
nj=8
format=wav

recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$recipe_dir/tools/parse_options.sh"
. "$recipe_dir/tools/recipe.sh"
[ $# -eq 2 ] || usage_error

case $format in
  wav) codec="-c:a pcm_s16le" ;;
  flac) codec="-c:a flac -sample_fmt s16" ;;
  *) log "ERROR: --format must be wav or flac, got '$format'"; exit 1 ;;
esac
if ! command -v ffmpeg > /dev/null; then
  log "ERROR: ffmpeg is not installed; it is needed to decode VoxCeleb2's m4a files" \
      "(e.g. apt-get install ffmpeg, or conda install -c conda-forge ffmpeg)"
  exit 1
fi
[ -d "$1" ] || { log "ERROR: $1 is not a directory"; exit 1; }
src=$(cd "$1" && pwd)
mkdir -p "$2"
dst=$(cd "$2" && pwd)

list=$(mktemp)
failed=$dst/convert_failed.txt
trap 'rm -f "$list"' EXIT
find "$src" -name '*.m4a' | LC_ALL=C sort > "$list"
total=$(wc -l < "$list")
if [ "$total" -eq 0 ]; then
  log "ERROR: no .m4a files under $src"
  exit 1
fi
rm -f "$failed"
log "converting $total m4a files under $src to $format in $dst ($nj jobs)"

convert_one() {
  local in=$1 rel out
  rel=${in#"$src"/}
  out=$dst/${rel%.m4a}.$format
  [ -f "$out" ] && return 0
  mkdir -p "$(dirname "$out")"
  # shellcheck disable=SC2086
  if ffmpeg -nostdin -loglevel error -y -i "$in" -ac 1 -ar 16000 $codec -f "$format" "$out.part"; then
    mv -f "$out.part" "$out"
  else
    rm -f "$out.part"
    echo "$in" >> "$failed"
  fi
  return 0
}
export -f convert_one
export src dst format codec failed
xargs -d '\n' -P "$nj" -n 1 bash -c 'convert_one "$1"' _ < "$list"

if [ -s "$failed" ]; then
  log "ERROR: $(wc -l < "$failed") of $total files could not be converted; they are listed in $failed"
  exit 1
fi
done_count=$(find "$dst" -name "*.$format" | wc -l)
log "done: $done_count $format files in $dst"
