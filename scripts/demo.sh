#!/usr/bin/env bash
# Set up .venv and run the demo on the embedded default (SQLite + in-memory broker).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e .
.venv/bin/billing demo "$@"
