# Sourced by quickstart.sh and test.sh: make .venv and give a pip_install that is quiet on
# success and prints the whole log on failure. torch goes in first and pinned (a CPU build from
# local disk), so that no later install can resolve another (CUDA) torch.
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip_install() {
  local log; log=$(mktemp)
  .venv/bin/python -m pip install --disable-pip-version-check "$@" >"$log" 2>&1 || { cat "$log"; exit 1; }
  rm -f "$log"
}
pip_install 'torch==2.13.0'
