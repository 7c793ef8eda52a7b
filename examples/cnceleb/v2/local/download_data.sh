#!/usr/bin/env bash
# Download CN-Celeb1 and CN-Celeb2 (OpenSLR 82, FLAC), MUSAN and RIRS_NOISES into
# DOWNLOAD_DIR: resumable (an interrupted run goes on where it stopped), with md5
# sums checked (local/checksums.md5).
#
# Usage: local/download_data.sh [options]
#   --download_dir DIR     where the archives go (default data/download)
#   --parts "..."          what to fetch (default "cnceleb1 cnceleb2 musan rirs"):
#                            cnceleb1  cn-celeb_v2.tar.gz (CN-Celeb1: training speakers and the evaluation set)
#                            cnceleb2  cn-celeb2_v2.tar.gza[a-c] -> cn-celeb2_v2.tar.gz
#                            musan     musan.tar.gz (OpenSLR 17)
#                            rirs      rirs_noises.zip (OpenSLR 28)
#   --openslr_base_url URL CN-Celeb, MUSAN and RIRS_NOISES come from URL/82/, URL/17/, URL/28/
#                          (default https://www.openslr.org/resources)
#   --checksums FILE       md5 list (default local/checksums.md5 of this recipe)
#   --nj N                 files downloaded at once (default 1)
#   --attempts N           tries per file, each resuming the previous one (default 3)
#   --remove_parts true|false  delete the cn-celeb2 parts once joined and checked (default true)
#   --downloader auto|curl|wget
#
# Files already in DOWNLOAD_DIR are checked, not downloaded again.
set -euo pipefail

# Configuration section.
download_dir=data/download
parts="cnceleb1 cnceleb2 musan rirs"
openslr_base_url=https://www.openslr.org/resources
checksums=""
nj=1
attempts=3
remove_parts=true
downloader=auto

recipe_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$recipe_dir/tools/parse_options.sh"
. "$recipe_dir/tools/recipe.sh"
[ $# -eq 0 ] || usage_error
. "$recipe_dir/path.sh"
. "$repo_root/local/download.sh"
[ -n "$checksums" ] || checksums=$recipe_dir/local/checksums.md5
[ -f "$checksums" ] || { echo "$0: checksum list $checksums not found" >&2; exit 1; }

export DOWNLOAD_TOOL=$downloader DOWNLOAD_ATTEMPTS=$attempts
base=${openslr_base_url%/}
mkdir -p "$download_dir"
status=0
for part in $parts; do
  log "part $part"
  case $part in
    cnceleb1) fetch_files "$download_dir" "$checksums" 1 cn-celeb_v2.tar.gz="$base/82/cn-celeb_v2.tar.gz" \
                || status=1 ;;
    cnceleb2)
      items=()
      for suffix in aa ab ac; do items+=("cn-celeb2_v2.tar.gz$suffix=$base/82/cn-celeb2_v2.tar.gz$suffix"); done
      fetch_joined "$download_dir" "$checksums" "$nj" "$remove_parts" cn-celeb2_v2.tar.gz "${items[@]}" \
        || status=1
      ;;
    musan) fetch_files "$download_dir" "$checksums" 1 musan.tar.gz="$base/17/musan.tar.gz" || status=1 ;;
    rirs) fetch_files "$download_dir" "$checksums" 1 rirs_noises.zip="$base/28/rirs_noises.zip" || status=1 ;;
    *) log "ERROR: unknown part '$part' (see --help)"; exit 1 ;;
  esac
done
if [ $status -ne 0 ]; then
  log "ERROR: some downloads failed (see the messages above); once the cause is fixed, run again:" \
      "complete files are kept and partial ones resumed"
  exit 1
fi
log "done: $parts in $download_dir"
