#!/usr/bin/env bash
# Download VoxCeleb1 and VoxCeleb2 (dev), MUSAN, RIRS_NOISES and the cleaned
# VoxCeleb1 trial lists into DOWNLOAD_DIR: resumable (an interrupted run goes
# on where it stopped), with md5 sums checked (local/checksums.md5).
#
# Usage: local/download_data.sh [options]
#   --download_dir DIR     where the archives go (default data/download)
#   --parts "..."          what to fetch (default "vox1_dev vox1_test vox2_dev musan rirs vox1_trials"):
#                            vox1_dev    vox1_dev_wav_parta[a-d] -> vox1_dev_wav.zip
#                            vox1_test   vox1_test_wav.zip
#                            vox2_dev    vox2_dev_aac_parta[a-h] -> vox2_dev_aac.zip
#                            vox2_test   vox2_test_aac.zip (not used by the recipe)
#                            musan       musan.tar.gz (OpenSLR 17)
#                            rirs        rirs_noises.zip (OpenSLR 28)
#                            vox1_trials veri_test2.txt list_test_all2.txt list_test_hard2.txt
#   --vox_base_url URL     where the VoxCeleb archives are (or $VOXCELEB_BASE_URL). VoxCeleb is
#                          given to registered users only, so there is no default: use the address
#                          you were given. NAME is fetched from URL/NAME, or from URL with {file}
#                          replaced by NAME (for addresses like ...?key=K&file={file}).
#   --vox_user USER        login for that address, if it asks for one (or $VOXCELEB_USER;
#   --vox_password PASS    better: $VOXCELEB_PASSWORD, which stays off the command line)
#   --openslr_base_url URL MUSAN and RIRS_NOISES come from URL/17/ and URL/28/
#                          (default https://www.openslr.org/resources)
#   --meta_base_url URL    the cleaned trial lists (default: the VoxCeleb meta folder WeSpeaker's
#                          recipe uses, https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta)
#   --checksums FILE       md5 list (default local/checksums.md5 of this recipe)
#   --nj N                 files downloaded at once (default 1)
#   --attempts N           tries per file, each resuming the previous one (default 3)
#   --remove_parts true|false  delete the *_part* files once joined and checked (default true)
#   --downloader auto|curl|wget
#
# Files already in DOWNLOAD_DIR are checked, not downloaded again, so archives
# fetched by other means can be put there first. Joined archives whose md5
# has been checked are not re-hashed (the check is cached in NAME.md5ok).
# The trial lists have no published md5; local/prepare_data.sh checks them.
set -euo pipefail

# Configuration section.
download_dir=data/download
parts="vox1_dev vox1_test vox2_dev musan rirs vox1_trials"
vox_base_url=${VOXCELEB_BASE_URL:-}
vox_user=${VOXCELEB_USER:-}
vox_password=${VOXCELEB_PASSWORD:-}
openslr_base_url=https://www.openslr.org/resources
meta_base_url=https://www.robots.ox.ac.uk/~vgg/data/voxceleb/meta
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
vox_hint="VoxCeleb is given to registered users only: pass the login you were given with \
--vox_user/--vox_password (or VOXCELEB_USER/VOXCELEB_PASSWORD), or a --vox_base_url that \
carries your access key."

for part in $parts; do
  case $part in
    vox1_dev|vox1_test|vox2_dev|vox2_test|musan|rirs|vox1_trials) ;;
    *) log "ERROR: unknown part '$part' (see --help)"; exit 1 ;;
  esac
done
mkdir -p "$download_dir"

# vox_url NAME: where NAME is; an error naming what to give when no address is set.
vox_url() {
  local name=$1
  if [ -z "$vox_base_url" ]; then
    log "ERROR: $name is not in $download_dir and no --vox_base_url (VOXCELEB_BASE_URL) is set." \
        "$vox_hint Or put the archive (or its parts) into $download_dir yourself and run again." >&2
    return 1
  fi
  if [[ $vox_base_url == *'{file}'* ]]; then
    echo "${vox_base_url//'{file}'/$name}"
  else
    echo "${vox_base_url%/}/$name"
  fi
}

# vox_archive ARCHIVE [PART ...]: a VoxCeleb archive, whole or joined from its parts.
# Addresses are only needed for what is not in $download_dir yet.
vox_archive() {
  local archive=$1 md5 name url items=()
  shift
  md5=$(checksum_of "$archive" "$checksums")
  if [ -f "$download_dir/$archive" ] && { [ -z "$md5" ] || md5_matches "$download_dir/$archive" "$md5"; }; then
    log "$download_dir/$archive is already there${md5:+ (md5 checked)}; skipping"
    return 0
  fi
  for name in "${@:-$archive}"; do
    url=""
    if [ ! -f "$download_dir/$name" ]; then url=$(vox_url "$name") || return 1; fi
    items+=("$name=$url")
  done
  export DOWNLOAD_USER=$vox_user DOWNLOAD_PASSWORD=$vox_password DOWNLOAD_AUTH_HINT=$vox_hint
  if [ $# -eq 0 ]; then
    fetch_files "$download_dir" "$checksums" 1 "${items[@]}"
  else
    fetch_joined "$download_dir" "$checksums" "$nj" "$remove_parts" "$archive" "${items[@]}"
  fi
  local rc=$?
  export DOWNLOAD_USER="" DOWNLOAD_PASSWORD="" DOWNLOAD_AUTH_HINT=""
  return $rc
}

status=0
for part in $parts; do
  log "part $part"
  case $part in
    vox1_dev) vox_archive vox1_dev_wav.zip vox1_dev_wav_parta{a,b,c,d} || status=1 ;;
    vox1_test) vox_archive vox1_test_wav.zip || status=1 ;;
    vox2_dev) vox_archive vox2_dev_aac.zip vox2_dev_aac_parta{a,b,c,d,e,f,g,h} || status=1 ;;
    vox2_test) vox_archive vox2_test_aac.zip || status=1 ;;
    musan) fetch_files "$download_dir" "$checksums" 1 musan.tar.gz="${openslr_base_url%/}/17/musan.tar.gz" \
             || status=1 ;;
    rirs) fetch_files "$download_dir" "$checksums" 1 rirs_noises.zip="${openslr_base_url%/}/28/rirs_noises.zip" \
            || status=1 ;;
    vox1_trials)
      fetch_files "$download_dir" "$checksums" "$nj" veri_test2.txt="${meta_base_url%/}/veri_test2.txt" \
        list_test_all2.txt="${meta_base_url%/}/list_test_all2.txt" \
        list_test_hard2.txt="${meta_base_url%/}/list_test_hard2.txt" || status=1
      ;;
  esac
done
if [ $status -ne 0 ]; then
  log "ERROR: some downloads failed (see the messages above); once the cause is fixed, run again:" \
      "complete files are kept and partial ones resumed"
  exit 1
fi
log "done: $parts in $download_dir"
