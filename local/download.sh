# Download helpers for the corpus scripts: resumable, md5-checked, and clear
# about credentials. Not executable: source it.
#
#   . "$repo_root/local/download.sh"
#   download_file URL DEST [MD5]      fetch URL into DEST (through DEST.part)
#   join_parts DEST MD5 PART...       cat the parts into DEST and check its md5
#   md5_matches FILE MD5              0 if FILE has that md5 (the answer is cached
#                                     in FILE.md5ok, so large files are hashed once)
#   checksum_of NAME FILE             the md5 listed for NAME in an md5sum-style
#                                     FILE ("md5  name" lines, '#' comments); '' if none
#   fetch_files DIR CHECKSUMS NJ NAME=URL ...
#                                     download_file each URL into DIR/NAME with the md5
#                                     CHECKSUMS lists for NAME, NJ at once; a NAME already
#                                     in DIR is only checked (its URL may be empty)
#   fetch_joined DIR CHECKSUMS NJ REMOVE_PARTS ARCHIVE PART=URL ...
#                                     DIR/ARCHIVE from its parts (fetched as above, joined,
#                                     checked; the parts deleted if REMOVE_PARTS is true);
#                                     nothing is fetched when DIR/ARCHIVE is already checked
#   fetch_and_unpack URL ARCHIVE MD5 DIR UNPACKED
#                                     DIR/UNPACKED from ARCHIVE (downloaded from URL when
#                                     absent; its MD5 checked unless MD5 is ''; unpacked
#                                     into DIR by wespk.bin.unpack, which refuses members
#                                     that would leave DIR); done once: the marker
#                                     DIR/UNPACKED/.extracted records it, after which
#                                     ARCHIVE may be deleted
#
# download_file resumes: an interrupted transfer leaves DEST.part, and the next
# attempt (or the next run) asks the server for the rest (curl -C - / wget -c,
# an HTTP "Range: bytes=N-" request). DEST appears only when the download is
# complete and, if MD5 is given, checked. A checksum mismatch is an error that
# names the file, both sums and what to do; the bad download is kept as
# DEST.bad. A server asking for credentials (HTTP 401/403) stops at once with
# a message that ends with $DOWNLOAD_AUTH_HINT.
#
# Settings (environment or shell variables):
#   DOWNLOAD_TOOL       auto (curl if installed, else wget) | curl | wget
#   DOWNLOAD_ATTEMPTS   tries per file, each resuming the last (default 3)
#   DOWNLOAD_RETRY_DELAY  seconds between tries (default 5)
#   DOWNLOAD_USER, DOWNLOAD_PASSWORD  HTTP basic-auth credentials, sent only when
#                       DOWNLOAD_USER is set (never on the command line: curl
#                       reads them from stdin, wget from a private temporary wgetrc)
#   DOWNLOAD_AUTH_HINT  what to tell the user when credentials are missing or wrong

download_log() {
  echo "$(date '+%F %T') [$(basename "${BASH_SOURCE[1]}"):${BASH_LINENO[0]}] $*" >&2
}

md5_matches() {
  local file=$1 want=$2 have
  [ -f "$file" ] || return 1
  if [ -f "$file.md5ok" ] && [ ! "$file" -nt "$file.md5ok" ] && [ "$(cat "$file.md5ok")" = "$want" ]; then
    return 0
  fi
  have=$(md5sum "$file" | cut -d' ' -f1)
  if [ "$have" = "$want" ]; then
    echo "$want" > "$file.md5ok"
    return 0
  fi
  return 1
}

checksum_of() {
  local name=$1 file=$2
  [ -f "$file" ] || { download_log "ERROR: checksum list $file not found"; return 1; }
  awk -v name="$name" '!/^[ \t]*#/ && NF >= 2 { f = $2; sub(/^\*/, "", f); if (f == name) { print $1; exit } }' "$file"
}

# One transfer attempt into PART; prints the HTTP status (000 if none) and
# returns the tool's exit status.
_download_curl() {
  local url=$1 part=$2 rc=0
  local args=(--location --fail --silent --show-error --connect-timeout 30
              --speed-limit 1024 --speed-time 300 -C - -o "$part" -w '%{http_code}')
  if [ -n "${DOWNLOAD_USER:-}" ]; then
    local user=${DOWNLOAD_USER//\\/\\\\} password=${DOWNLOAD_PASSWORD:-}
    user=${user//\"/\\\"}
    password=${password//\\/\\\\}
    password=${password//\"/\\\"}
    printf 'user = "%s:%s"\n' "$user" "$password" | curl --config - "${args[@]}" "$url" || rc=$?
  else
    curl "${args[@]}" "$url" < /dev/null || rc=$?
  fi
  return $rc
}

_download_wget() {
  local url=$1 part=$2 rc=0 log
  log=$(mktemp)
  local args=(--continue --tries=1 --timeout=60 --progress=dot:giga --server-response -O "$part")
  if [ -n "${DOWNLOAD_USER:-}" ]; then
    local rc_file
    rc_file=$(mktemp)
    chmod 600 "$rc_file"
    printf 'user = %s\npassword = %s\n' "$DOWNLOAD_USER" "${DOWNLOAD_PASSWORD:-}" > "$rc_file"
    WGETRC=$rc_file wget "${args[@]}" "$url" 2> "$log" || rc=$?
    rm -f "$rc_file"
  else
    wget "${args[@]}" "$url" 2> "$log" || rc=$?
  fi
  # the last status line wget saw, e.g. "  HTTP/1.1 206 Partial Content"
  local status
  status=$(awk '$1 ~ /^HTTP\// { s = $2 } END { print (s == "" ? "000" : s) }' "$log")
  grep -v '^  ' "$log" >&2 || true
  rm -f "$log"
  printf '%s' "$status"
  return $rc
}

download_file() {
  local url=$1 dest=$2 md5=${3:-}
  local part=$dest.part tool=${DOWNLOAD_TOOL:-auto} attempts=${DOWNLOAD_ATTEMPTS:-3}
  local delay=${DOWNLOAD_RETRY_DELAY:-5} attempt status rc complete=false
  if [ -f "$dest" ]; then
    if [ -z "$md5" ] || md5_matches "$dest" "$md5"; then
      download_log "$dest is already there${md5:+ (md5 checked)}; skipping"
      return 0
    fi
    download_log "ERROR: $dest exists but its md5 is $(md5sum "$dest" | cut -d' ' -f1), expected $md5;" \
                 "it is corrupt or a different file: delete it and run again"
    return 1
  fi
  if [ "$tool" = auto ]; then
    if command -v curl > /dev/null; then tool=curl
    elif command -v wget > /dev/null; then tool=wget
    else download_log "ERROR: neither curl nor wget is installed"; return 1
    fi
  fi
  mkdir -p "$(dirname "$dest")"
  for attempt in $(seq 1 "$attempts"); do
    if [ -s "$part" ]; then
      download_log "resuming $url at byte $(stat -c %s "$part") (attempt $attempt of $attempts)"
    else
      download_log "downloading $url (attempt $attempt of $attempts)"
    fi
    rc=0
    status=$("_download_$tool" "$url" "$part") || rc=$?
    if [ $rc -eq 0 ]; then
      complete=true
      break
    fi
    case $status in
      401|403)
        download_log "ERROR: $url needs credentials (HTTP $status)${DOWNLOAD_USER:+ and refused the ones given}." \
                     "${DOWNLOAD_AUTH_HINT:-}"
        return 1
        ;;
      404)
        download_log "ERROR: $url not found (HTTP 404); check the base URL"
        return 1
        ;;
      416)
        # the range asked for starts at or after the end: the part is complete
        download_log "the server has nothing after byte $(stat -c %s "$part"): $part is complete"
        complete=true
        break
        ;;
    esac
    if [ "$tool" = curl ] && [ $rc -eq 33 ]; then
      download_log "the server cannot resume; starting $url again"
      rm -f "$part"
    else
      download_log "attempt $attempt of $attempts for $url failed ($tool exit status $rc, HTTP $status)"
    fi
    [ "$attempt" -lt "$attempts" ] && sleep "$delay"
  done
  if [ "$complete" != true ]; then
    download_log "ERROR: could not download $url after $attempts attempt(s); $part keeps what arrived:" \
                 "run again to resume"
    return 1
  fi
  if [ -n "$md5" ]; then
    local have
    have=$(md5sum "$part" | cut -d' ' -f1)
    if [ "$have" != "$md5" ]; then
      mv -f "$part" "$dest.bad"
      download_log "ERROR: checksum mismatch for $url: md5 $have, expected $md5;" \
                   "the download is kept as $dest.bad (delete it; run again to download afresh)"
      return 1
    fi
    echo "$md5" > "$part.md5ok"
  fi
  mv -f "$part" "$dest"
  [ -f "$part.md5ok" ] && mv -f "$part.md5ok" "$dest.md5ok"
  download_log "$dest complete${md5:+ (md5 $md5 checked)}"
}

join_parts() {
  local dest=$1 md5=$2
  shift 2
  if [ -f "$dest" ] && { [ -z "$md5" ] || md5_matches "$dest" "$md5"; }; then
    download_log "$dest is already there${md5:+ (md5 checked)}; skipping"
    return 0
  fi
  local part
  for part in "$@"; do
    [ -f "$part" ] || { download_log "ERROR: cannot make $dest: $part is missing"; return 1; }
  done
  download_log "joining $# parts into $dest"
  cat "$@" > "$dest.part"
  if [ -n "$md5" ]; then
    local have
    have=$(md5sum "$dest.part" | cut -d' ' -f1)
    if [ "$have" != "$md5" ]; then
      mv -f "$dest.part" "$dest.bad"
      download_log "ERROR: checksum mismatch for $dest (joined from $*): md5 $have, expected $md5;" \
                   "kept as $dest.bad"
      return 1
    fi
    echo "$md5" > "$dest.part.md5ok"
  fi
  mv -f "$dest.part" "$dest"
  [ -f "$dest.part.md5ok" ] && mv -f "$dest.part.md5ok" "$dest.md5ok"
  download_log "$dest complete${md5:+ (md5 $md5 checked)}"
}

# fetch_files DIR CHECKSUMS NJ NAME=URL ...
fetch_files() {
  local dir=$1 checksums=$2 nj=$3 item name md5 failed=0 status_dir f
  shift 3
  status_dir=$(mktemp -d)
  for item in "$@"; do
    name=${item%%=*}
    md5=$(checksum_of "$name" "$checksums") || { rm -rf "$status_dir"; return 1; }
    [ -n "$md5" ] || download_log "no md5 listed for $name in $checksums: it is not checked"
    if [ "$nj" -le 1 ]; then
      download_file "${item#*=}" "$dir/$name" "$md5" || failed=1
    else
      ( rc=0; download_file "${item#*=}" "$dir/$name" "$md5" || rc=$?; echo $rc > "$status_dir/$name" ) &
      while [ "$(jobs -rp | wc -l)" -ge "$nj" ]; do wait -n || true; done
    fi
  done
  wait
  for f in "$status_dir"/*; do
    [ -e "$f" ] || continue
    [ "$(cat "$f")" = 0 ] || failed=1
  done
  rm -rf "$status_dir"
  return $failed
}

# fetch_joined DIR CHECKSUMS NJ REMOVE_PARTS ARCHIVE PART=URL ...
fetch_joined() {
  local dir=$1 checksums=$2 nj=$3 remove_parts=$4 archive=$5 md5 item paths=()
  shift 5
  md5=$(checksum_of "$archive" "$checksums") || return 1
  if [ -f "$dir/$archive" ] && { [ -z "$md5" ] || md5_matches "$dir/$archive" "$md5"; }; then
    download_log "$dir/$archive is already there${md5:+ (md5 checked)}; skipping"
    return 0
  fi
  fetch_files "$dir" "$checksums" "$nj" "$@" || return 1
  for item in "$@"; do paths+=("$dir/${item%%=*}"); done
  join_parts "$dir/$archive" "$md5" "${paths[@]}" || return 1
  if [ "$remove_parts" = true ]; then
    for item in "${paths[@]}"; do rm -f "$item" "$item.md5ok"; done
    download_log "removed the parts of $archive"
  fi
}

# fetch_and_unpack URL ARCHIVE MD5 DIR UNPACKED
fetch_and_unpack() {
  local url=$1 archive=$2 md5=$3 dir=$4 unpacked=$5 have
  if [ -f "$dir/$unpacked/.extracted" ]; then
    download_log "$dir/$unpacked is already unpacked"
    return 0
  fi
  if [ ! -f "$archive" ]; then
    download_file "$url" "$archive" "$md5" || return 1
  fi
  if [ -n "$md5" ] && ! md5_matches "$archive" "$md5"; then
    have=$(md5sum "$archive" | cut -d' ' -f1)
    download_log "ERROR: $archive: md5 $have, expected $md5; the file is incomplete or damaged:" \
                 "delete it and run again (or give --md5 for a different archive)"
    return 1
  fi
  download_log "unpacking $archive"
  "${python:-python}" -m wespk.bin.unpack "$archive" "$dir" || return 1
  if [ ! -d "$dir/$unpacked" ]; then
    download_log "ERROR: $archive did not unpack into $dir/$unpacked"
    return 1
  fi
  touch "$dir/$unpacked/.extracted"
}
