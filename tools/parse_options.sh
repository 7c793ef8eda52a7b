# Kaldi-style command-line option parsing. Not executable: source it.
#
# A script declares its options as shell variables with default values (its
# "configuration section"), then sources this file:
#
#   stage=0
#   stop_stage=10
#   use_gpu=false
#   help_message="Usage: $0 [options] <data-dir>"
#   . tools/parse_options.sh
#   [ $# -eq 1 ] || { echo "$help_message" >&2; exit 1; }
#
# Options are read from the front of "$@" until the first argument that does
# not start with "--"; what remains is left in "$@" for the caller.
#
#   --name value  and  --name=value   set the variable "name"
#   --stop-stage 3, --stop_stage=3    dashes in a name are read as underscores
#   --config FILE                     source FILE (shell assignments) first,
#                                     if the caller has no "config" variable
#   --help, -h                        print the caller's usage and exit 0:
#                                     $help_message if set, else the comment
#                                     block at the top of the caller script
#   --                                end of options
#
# An option whose variable the caller has not defined is an error naming the
# option. A variable whose current value is true or false only accepts true or
# false. Works in callers that run with "set -euo pipefail".

# Print the usage of the script that sourced this file.
parse_options_print_usage() {
  if [ -n "${help_message:-}" ]; then
    printf '%s\n' "$help_message"
  else
    # The leading comment block of the caller, without the shebang.
    local caller_script=${BASH_SOURCE[2]:-$0}
    if [ -f "$caller_script" ]; then
      awk 'NR == 1 && /^#!/ { next }
           /^#/ { sub(/^# ?/, ""); print; found = 1; next }
           { exit }
           END { if (!found) print "No usage message found." }' "$caller_script"
    else
      echo "No usage message found."
    fi
  fi
}

# Set the caller's variable for option "--$1" to "$2", with the checks above.
parse_options_set() {
  local option=$1 value=$2
  local name=${option//-/_}
  if [[ ! "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]]; then
    echo "$0: invalid option '--$option'" >&2
    exit 1
  fi
  if [ -z "${!name+defined}" ]; then
    echo "$0: unknown option '--$option' (this script has no variable '$name')" >&2
    exit 1
  fi
  local old_value=${!name}
  if [ "$old_value" = true ] || [ "$old_value" = false ]; then
    if [ "$value" != true ] && [ "$value" != false ]; then
      echo "$0: option '--$option' takes true or false, got '$value'" >&2
      exit 1
    fi
  fi
  printf -v "$name" '%s' "$value"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      parse_options_print_usage
      exit 0
      ;;
    --)
      shift
      break
      ;;
    --*=*)
      parse_options_option=${1%%=*}
      parse_options_option=${parse_options_option#--}
      parse_options_value=${1#*=}
      shift
      ;;
    --?*)
      parse_options_option=${1#--}
      if [ $# -lt 2 ]; then
        echo "$0: option '--$parse_options_option' needs a value" >&2
        exit 1
      fi
      parse_options_value=$2
      shift 2
      ;;
    *)
      break
      ;;
  esac
  if [ "$parse_options_option" = config ] && [ -z "${config+defined}" ]; then
    if [ ! -r "$parse_options_value" ]; then
      echo "$0: cannot read config file '$parse_options_value'" >&2
      exit 1
    fi
    # shellcheck disable=SC1090
    . "$parse_options_value"
  else
    parse_options_set "$parse_options_option" "$parse_options_value"
  fi
done
unset parse_options_option parse_options_value
true
