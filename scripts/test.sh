#!/usr/bin/env bash
# The test command: install alphaops with its dev tools into .venv, start the throwaway
# services the tests use (PostgreSQL and an S3 protocol server, loopback only; see
# scripts/services.sh), then run every check. Works on a fresh machine with python3.11 and
# access to PyPI and Debian's packages. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh
pip_install -e '.[dev]'
echo "== ruff"; .venv/bin/ruff check src tests benchmarks
.venv/bin/ruff format --check src tests benchmarks
echo "== mypy --strict"; .venv/bin/mypy src
echo "== import-linter"; .venv/bin/lint-imports
echo "== services"; bash scripts/services.sh start
trap 'bash scripts/services.sh stop' EXIT
# Two workers by default (the machine's two cores); ALPHAOPS_TEST_WORKERS=0 runs in one process.
echo "== pytest"; .venv/bin/python -m pytest -n "${ALPHAOPS_TEST_WORKERS:-2}" "$@"
