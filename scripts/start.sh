#!/usr/bin/env bash
# Installs the gateway in .venv and runs it on its embedded defaults:
# an SQLite file and blobs under ./var, the offline `local` engine, port 8000.
# Extra arguments go to `stt-gateway serve` (e.g. --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q .
exec .venv/bin/stt-gateway serve "$@"
