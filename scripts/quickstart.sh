#!/usr/bin/env bash
# The main job: install alphaops (with training, report and monitoring extras) into .venv, then run the
# quickstart on the bundled real sample data: data → dataset → train → gate → promote.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
pip_install -e '.[torch,reports,monitor,autopilot]'
.venv/bin/alphaops quickstart "$@"
