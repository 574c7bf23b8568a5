#!/usr/bin/env bash
# The main job: install alphaops (with training and report extras) into .venv, then run the
# quickstart on the bundled real sample data: data → dataset → train → gate → promote.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip_install() { # quiet on success, the whole log on failure
  local log; log=$(mktemp)
  .venv/bin/python -m pip install --disable-pip-version-check "$@" >"$log" 2>&1 || { cat "$log"; exit 1; }
  rm -f "$log"
}
# torch first and pinned: a CPU build from local disk; nothing may resolve another torch.
pip_install 'torch==2.13.0'
pip_install -e '.[torch,reports]'
.venv/bin/alphaops quickstart "$@"
