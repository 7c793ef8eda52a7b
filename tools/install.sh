#!/usr/bin/env bash
# Install wespk into a virtual environment and link it as .venv at the repo root.
#
# Usage: bash tools/install.sh [--dev] [--ssl] [--enhance] [--diar] [--scoring]
#   --dev      also install the test dependencies (requirements-dev.txt) and every extra below
#   --ssl      self-supervised frontends: transformers (requirements-ssl.txt)
#   --enhance  diffusion embedding enhancement (SEED): diffusers (requirements-enhance.txt)
#   --diar     diarization scoring and neural VAD: pyannote.metrics, silero-vad (requirements-diar.txt)
#   --scoring  the compiled AS-norm candidate kernel: numba (requirements-scoring.txt); without
#              it AS-norm gives the same scores from the full float64 product, more slowly
#
# The environment is cached outside the clone, in $WESPK_CACHE (default
# ~/.cache/wespk), under a name derived from requirements.txt and this
# script, so later runs and other clones reuse it; the test requirements and
# the extras are installed on top of it, again whenever their file changes.
# Running this script again is cheap: it only re-links .venv and re-installs
# wespk itself (editable).
#
# kaldifeat has no wheel on PyPI. Its build fetches pybind11 from the internet;
# here pybind11's sdist is taken from PyPI and handed to cmake instead, so the
# build works offline. If it still fails, wespk falls back to
# kaldi-native-fbank, which gives the same features.
set -euo pipefail

dev=false
extras=()
for arg in "$@"; do
  case "$arg" in
    --dev) dev=true; extras+=(ssl enhance diar scoring) ;;
    --ssl|--enhance|--diar|--scoring) extras+=("${arg#--}") ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "$0: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

log() { echo "$(date '+%F %T') [install.sh:${BASH_LINENO[0]}] $*"; }

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
python=${PYTHON:-python3}
cache=${WESPK_CACHE:-$HOME/.cache/wespk}
kaldifeat_version=1.24

# Bump env_version when the steps below change what gets installed.
env_version=1
key=$( (cat requirements.txt; echo "$env_version $kaldifeat_version") | sha256sum | cut -c1-16)
venv="$cache/venv-$key"
mkdir -p "$cache"

# One installer at a time per cache (CI and a developer may share it).
exec 9>"$cache/install.lock"
flock 9

if [ ! -x "$venv/bin/python" ] || [ ! -f "$venv/.base-complete" ]; then
  log "creating virtual environment $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip wheel "setuptools<81"
  # torch first and pinned, so nothing pulls a different (CUDA) build.
  log "installing torch and the runtime requirements"
  "$venv/bin/python" -m pip install -q torch==2.13.0
  "$venv/bin/python" -m pip install -q -r requirements.txt
  touch "$venv/.base-complete"
fi

if [ ! -f "$venv/.kaldifeat-done" ]; then
  if "$venv/bin/python" -c "import kaldifeat" 2>/dev/null; then
    touch "$venv/.kaldifeat-done"
  else
    log "building kaldifeat $kaldifeat_version (takes several minutes)"
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    "$venv/bin/python" -m pip install -q cmake >/dev/null 2>&1 || true
    if "$venv/bin/python" -m pip download -q --no-deps --no-binary :all: \
         -d "$work" pybind11 >/dev/null \
       && tar -xzf "$work"/pybind11-*.tar.gz -C "$work" \
       && pyb=$(ls -d "$work"/pybind11-*/ | head -n 1) \
       && PATH="$venv/bin:$PATH" \
          KALDIFEAT_CMAKE_ARGS="-DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_STANDARD=17 -DFETCHCONTENT_SOURCE_DIR_PYBIND11=${pyb%/} -DFETCHCONTENT_FULLY_DISCONNECTED=ON" \
          KALDIFEAT_MAKE_ARGS="-j$(nproc)" \
          "$venv/bin/python" -m pip install -q --no-build-isolation "kaldifeat==$kaldifeat_version" \
          >"$cache/kaldifeat-build.log" 2>&1; then
      log "kaldifeat built"
      touch "$venv/.kaldifeat-done"
    else
      log "WARNING: kaldifeat could not be built (see $cache/kaldifeat-build.log);" \
          "wespk will use kaldi-native-fbank"
      touch "$venv/.kaldifeat-done"
    fi
  fi
fi

# The test requirements and the optional extras, one requirement file each. They are not part
# of the environment's key: each is installed on top of it, again whenever its file changes.
extra_files=()
$dev && extra_files+=(requirements-dev.txt)
for extra in $(printf '%s\n' "${extras[@]+"${extras[@]}"}" | sort -u); do
  extra_files+=("requirements-$extra.txt")
done
for req in "${extra_files[@]+"${extra_files[@]}"}"; do
  mark="$venv/.extra-$(basename "$req" .txt)-$(sha256sum "$req" | cut -c1-16)"
  if [ ! -f "$mark" ]; then
    log "installing $req"
    "$venv/bin/python" -m pip install -q -c requirements.txt -r "$req"
    touch "$mark"
  fi
done

# wespk itself, editable, pointing at this clone.
"$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e . >"$cache/editable-install.log" 2>&1 \
  || { cat "$cache/editable-install.log" >&2; exit 1; }

if [ -L .venv ] || [ ! -e .venv ]; then
  ln -sfn "$venv" .venv
else
  log "WARNING: .venv exists and is not a link; leaving it alone"
fi
log "ready: $repo/.venv/bin/python ($("$venv/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
