#!/usr/bin/env bash
# Set up .venv and run every check: ruff (lint + format), mypy --strict, import-linter,
# sizes --check, pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[dev]'
# The console's browser test drives Debian's Chromium through Playwright (no browser download).
if ! command -v chromium >/dev/null 2>&1; then
    echo "== installing Debian's chromium for the console's browser test"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium >/dev/null
fi
# The alert rules are checked and unit-tested with Debian's promtool (package prometheus).
if ! command -v promtool >/dev/null 2>&1; then
    echo "== installing Debian's prometheus (promtool) for the alert-rule tests"
    if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi
    $SUDO apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends prometheus >/dev/null
fi
echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy --strict"
.venv/bin/mypy
echo "== import contracts (layers, pure domain)"
.venv/bin/lint-imports
echo "== sizes (functions <= 80 lines, modules <= 400 lines; migrations exempt)"
.venv/bin/python scripts/sizes.py --check --top 5
echo "== pytest"
.venv/bin/pytest "$@"
