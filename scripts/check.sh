#!/usr/bin/env bash
# The one check command: formatting, lint, tests.  CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
.venv/bin/ruff format --check sentinel tests scripts benchmarks
.venv/bin/ruff check sentinel tests scripts benchmarks
.venv/bin/python -m pytest "$@"
