#!/usr/bin/env bash
# A separate virtual environment with the official nuScenes devkit (it pins numpy<2; ours needs
# numpy>=2), used only by the tests that check our nuScenes reader, projection and lidarseg export
# against the devkit. Never a dependency of the project. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
VENV=${DEVKIT_VENV:-.venv-devkit}
probe='import nuscenes, numpy; from nuscenes.nuscenes import NuScenes; from nuscenes.eval.lidarseg.validate_submission import validate_submission'
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "$probe" >/dev/null 2>&1; then
  echo "install_devkit: $VENV already has nuscenes-devkit"
  exit 0
fi
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --upgrade pip >/dev/null
# the devkit's own pins (numpy<2 among them) decide the rest; torch is not needed by what we use
"$VENV/bin/python" -m pip install "nuscenes-devkit==1.2.0"
"$VENV/bin/python" -c "$probe; print('install_devkit: nuscenes-devkit imports, numpy', numpy.__version__)"
