#!/usr/bin/env bash
# Usage: bash scripts/demo.sh [FILE...]
# Sets up .venv (idempotent), then transcribes FILEs with the bundled offline model, or, with
# no FILE, a sample that espeak-ng speaks now (an AN4-style phrase; nothing is downloaded).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ $# -gt 0 ]; then
  exec .venv/bin/speechrnn transcribe "$@"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
phrase="enter six two four"
.venv/bin/python -c "from speechrnn.synth import speak; import sys; speak(sys.argv[1], sys.argv[2])" "$phrase" "$tmp/sample.wav"
echo "espeak-ng said:  $phrase"
printf 'speechrnn heard: '
.venv/bin/speechrnn transcribe "$tmp/sample.wav"
