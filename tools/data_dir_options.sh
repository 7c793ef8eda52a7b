# Kaldi-style flags of the data-dir tools that take [--no-wav-check] DATA_DIR
# (tools/validate_data_dir.sh, tools/fix_data_dir.sh). Not executable: source it
# after the script's header comment. Flags take no value (as in Kaldi), so they
# are read here rather than by tools/parse_options.sh. Sets check_wav (true, or
# false with --no-wav-check) and data_dir (the one argument, without a trailing
# /); --help prints the script's header comment; anything else prints the usage
# line and exits 1.
check_wav=true
data_dir_usage="Usage: $0 [--no-wav-check] DATA_DIR"
while [ $# -gt 0 ]; do
  case "$1" in
    --no-wav-check) check_wav=false; shift ;;
    --help|-h) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    --*) echo "$0: unknown option '$1'" >&2; echo "$data_dir_usage" >&2; exit 1 ;;
    *) break ;;
  esac
done
if [ $# -ne 1 ]; then
  echo "$data_dir_usage" >&2
  exit 1
fi
data_dir=${1%/}
