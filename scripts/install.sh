#!/usr/bin/env bash
# Creates .venv and installs the project with its training and development extras.
# torch goes first, pinned to the CPU build this machine has on disk; the project's
# torch range accepts it, so pip pulls no CUDA build afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# TORCH overrides the requirement, e.g. TORCH="torch --index-url https://download.pytorch.org/whl/cpu".
.venv/bin/python -m pip install -q ${TORCH:-"torch==2.13.0"}
.venv/bin/python -m pip install -q -e ".[train,dev]"
