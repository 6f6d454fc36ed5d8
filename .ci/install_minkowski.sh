#!/usr/bin/env bash
# Build and install MinkowskiEngine 0.5.4 (CPU-only) into the active Python environment.
#
# Idempotent: does nothing when MinkowskiEngine already imports. The built wheel is cached in
# $MINKOWSKI_WHEEL_DIR (default ~/.cache/cns-labelfree/wheels) keyed by the Python and torch
# versions, so a second machine state with the same torch skips the ~4 minute compile.
#
# Needs: Debian/Ubuntu with apt (run as root, or libopenblas-dev already installed), a C++
# compiler, and torch already installed in the active environment (the build compiles against it).
set -euo pipefail

PY="${PYTHON:-python}"
ME_VERSION="0.5.4"

probe='import collections, collections.abc
collections.Sequence = collections.abc.Sequence
import MinkowskiEngine'
if "$PY" -c "$probe" >/dev/null 2>&1; then
  echo "install_minkowski: MinkowskiEngine already importable, nothing to do"
  exit 0
fi

if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "install_minkowski: torch is not importable with $PY; install the project (torch) first" >&2
  exit 1
fi

missing=()
dpkg -s libopenblas-dev >/dev/null 2>&1 || missing+=(libopenblas-dev)
command -v c++ >/dev/null 2>&1 || missing+=(g++)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "install_minkowski: missing system packages: ${missing[*]} (apt-get install ${missing[*]}), then rerun" >&2
    exit 1
  fi
fi

key="$("$PY" -c 'import sys, torch; print(f"py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__}")')"
cache="${MINKOWSKI_WHEEL_DIR:-$HOME/.cache/cns-labelfree/wheels}/$key"
mkdir -p "$cache"

if ! ls "$cache"/[Mm]inkowski[Ee]ngine-"$ME_VERSION"-*.whl >/dev/null 2>&1; then
  echo "install_minkowski: building MinkowskiEngine $ME_VERSION (CPU only, ~4 min) into $cache"
  # setuptools' build needs the compiler to see torch's headers; --no-build-isolation makes it
  # build against the torch that is installed here (an isolated build would fetch another torch).
  "$PY" -m pip wheel "MinkowskiEngine==$ME_VERSION" \
    --no-deps --no-build-isolation --use-pep517 --no-cache-dir \
    --config-settings="--global-option=--blas=openblas" \
    --config-settings="--global-option=--cpu_only" \
    -w "$cache"
fi

"$PY" -m pip install --no-deps --force-reinstall "$cache"/[Mm]inkowski[Ee]ngine-"$ME_VERSION"-*.whl
"$PY" -c "$probe; print('install_minkowski: MinkowskiEngine', MinkowskiEngine.__version__, 'imports')"
