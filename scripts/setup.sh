#!/usr/bin/env bash
# Create .venv/ in the repository root and install fastadapt with everything the tests need.
# torch==2.13.0 is installed FIRST so that pip takes the CPU wheel instead of pulling a multi-GB CUDA build.
# Extras: FASTADAPT_EXTRAS (default "dev,mujoco,metaworld"); mujoco and metaworld are installed in one
# resolver run (installing metaworld after gymnasium[mujoco] leaves a broken mujoco).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
EXTRAS=${FASTADAPT_EXTRAS:-dev,mujoco,metaworld}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet "torch==2.13.0"
.venv/bin/python -m pip install --quiet -e ".[${EXTRAS}]"
.venv/bin/fastadapt version >/dev/null
echo "fastadapt is installed in .venv/ (extras: ${EXTRAS}); try: .venv/bin/fastadapt quickstart"
