#!/usr/bin/env bash
# Usage: bash scripts/test.sh [pytest args]
# Sets up .venv (idempotent) and runs the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
