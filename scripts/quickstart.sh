#!/usr/bin/env bash
# The main job: install alphaops into .venv and run the quickstart on the bundled sample data.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
.venv/bin/alphaops quickstart "$@"
