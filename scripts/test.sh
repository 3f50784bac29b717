#!/usr/bin/env bash
# Usage: bash scripts/test.sh [pytest args]
# Sets up .venv (idempotent) and runs the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# One pytest-xdist worker a core, at most 4 (each builds the session's fixtures: generated
# speech, toy models); SPEECHRNN_TEST_WORKERS=0 runs the tests in this one process.
exec .venv/bin/python -m pytest -n "${SPEECHRNN_TEST_WORKERS:-auto}" --maxprocesses 4 --dist worksteal "$@"
