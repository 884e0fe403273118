#!/usr/bin/env bash
# Prepares this checkout: redis-server (from the package manager when it is
# missing) and a .venv holding luminora-redis with its test tools and linters (the
# dev extra: the test extra, ruff and mypy). Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")"

have_redis() {
  command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || [ -x /usr/sbin/redis-server ]
}

if ! have_redis; then
  echo "setup: installing redis-server" >&2
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
  elif command -v brew >/dev/null 2>&1; then
    brew install redis
  else
    echo "setup: no apt-get or brew here; install redis-server yourself" >&2
    exit 1
  fi
fi

python="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
