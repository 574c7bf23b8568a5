#!/usr/bin/env bash
# Start (or stop) the throwaway services the registry tests need, on loopback only:
#   - PostgreSQL: a fresh cluster in a temp folder, run as a non-root user, trust auth on 127.0.0.1
#   - an S3 protocol server: moto_server from the moto[server] package (in .venv, extra "dev")
# Usage: bash scripts/services.sh start   # idempotent; prints and writes .services/services.env
#        bash scripts/services.sh stop
# The tests read .services/services.env (ALPHAOPS_TEST_PG_URL, ALPHAOPS_TEST_S3_ENDPOINT); the
# same names in the environment take precedence. Installs Debian's postgresql if initdb is missing,
# and Debian's strace (for the durability tests) if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE="$PWD/.services"
ENV_FILE="$STATE/services.env"
PY=.venv/bin/python

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_for() { # wait_for SECONDS COMMAND... : retry until the command succeeds or the deadline passes
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then echo "services.sh: timed out waiting for: $*" >&2; return 1; fi
    sleep 0.2
  done
}

pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/initdb" ] && { echo "$dir"; return; }; done
  command -v initdb >/dev/null 2>&1 && { dirname "$(readlink -f "$(command -v initdb)")"; return; }
  return 1
}

start_pg() {
  local bin
  if ! bin=$(pg_bin); then
    echo "services.sh: installing PostgreSQL from Debian packages" >&2
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; fi
    bin=$(pg_bin)
  fi
  local run_as=() user
  user=$(id -un)
  if [ "$(id -u)" = 0 ]; then # initdb refuses root: run the cluster as an unprivileged user
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    run_as=(runuser -u postgres --); user=postgres
  fi
  local data port
  data=$(mktemp -d "${TMPDIR:-/tmp}/alphaops-pg.XXXXXX")
  chown "$user" "$data"; chmod 700 "$data"
  port=$(free_port)
  "${run_as[@]}" "$bin/initdb" -D "$data/db" -U postgres -A trust --no-sync -E UTF8 >/dev/null
  "${run_as[@]}" "$bin/pg_ctl" -D "$data/db" -l "$data/log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $data -c fsync=off -c max_connections=200" start >/dev/null
  "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -qc "CREATE DATABASE alphaops_test" >/dev/null
  echo "$data" >"$STATE/pg.dir"; echo "$bin" >"$STATE/pg.bin"; echo "${run_as[*]}" >"$STATE/pg.runas"
  echo "ALPHAOPS_TEST_PG_URL=postgresql://postgres@127.0.0.1:$port/alphaops_test" >>"$ENV_FILE.new"
}

need_strace() { # the durability tests trace a publish's fsyncs and renames with strace
  command -v strace >/dev/null 2>&1 && return
  echo "services.sh: installing strace from Debian packages" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null
  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq strace >/dev/null; fi
}

ensure_test_tools() { # promtool (Debian's prometheus) and headless Chromium for tests/serve
  local missing=()
  command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  [ ${#missing[@]} -eq 0 ] && return
  echo "services.sh: installing ${missing[*]} from Debian packages" >&2
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; fi
}

start_s3() {
  local port
  port=$(free_port)
  [ -x .venv/bin/moto_server ] || .venv/bin/python -m pip install -q 'moto[server]'
  nohup .venv/bin/moto_server -H 127.0.0.1 -p "$port" >"$STATE/moto.log" 2>&1 &
  echo $! >"$STATE/moto.pid"
  wait_for 60 "$PY" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/')"
  echo "ALPHAOPS_TEST_S3_ENDPOINT=http://127.0.0.1:$port" >>"$ENV_FILE.new"
}

stop() {
  if [ -f "$STATE/moto.pid" ]; then kill "$(cat "$STATE/moto.pid")" 2>/dev/null || true; rm -f "$STATE/moto.pid"; fi
  if [ -f "$STATE/pg.dir" ]; then
    local data bin run_as
    data=$(cat "$STATE/pg.dir"); bin=$(cat "$STATE/pg.bin"); read -ra run_as <"$STATE/pg.runas" || true
    "${run_as[@]}" "$bin/pg_ctl" -D "$data/db" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$data" "$STATE/pg.dir" "$STATE/pg.bin" "$STATE/pg.runas"
  fi
  rm -f "$ENV_FILE"
}

case "${1:-start}" in
  start)
    mkdir -p "$STATE"
    stop
    : >"$ENV_FILE.new"
    need_strace
    start_pg
    start_s3
    ensure_test_tools
    mv "$ENV_FILE.new" "$ENV_FILE"
    cat "$ENV_FILE"
    ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 1 ;;
esac
