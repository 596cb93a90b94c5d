#!/usr/bin/env bash
# Mutation run of one core module against its own tests (see scripts/mutation.py).
#   scripts/mutation.sh sentinel/policy.py [--list] [--json out.json]
#   scripts/mutation.sh all
# Run it in a scratch clone or worktree: each mutant is written over the module in place
# (and restored). Not part of CI; scores per module are in docs/testing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || scripts/setup.sh --test
exec nice -n 10 .venv/bin/python scripts/mutation.py "$@"
