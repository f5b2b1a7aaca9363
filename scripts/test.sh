#!/usr/bin/env bash
# Installs what the test suite needs and runs all of it:
#   - PostgreSQL's server binaries (apt), when missing; the tests start their own server
#   - a virtualenv in .venv with the package and its test extras
#   - pytest (the suite includes ruff and mypy), one worker per core; extra arguments go to pytest
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  echo "installing PostgreSQL (apt)..."
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
# One worker per core (pytest-xdist; each starts its own PostgreSQL): most tests
# wait on real servers, so two workers on two cores take about half the time.
# TEST_WORKERS=0 runs everything in one process.
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-auto}" "$@"
