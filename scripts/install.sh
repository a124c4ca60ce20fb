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
# The browser tests (tests/ui/) drive Debian's Chromium through Playwright; Playwright's own
# browser download (`playwright install`) is never used.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install: installing chromium (browser tests)"
    apt-get install -y -q chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium >/dev/null; }
  else
    echo "install: no chromium; the browser tests need it: sudo apt-get install -y chromium" >&2
  fi
fi
