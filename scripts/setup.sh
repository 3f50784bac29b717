#!/usr/bin/env bash
# Usage: bash scripts/setup.sh
# Makes .venv with the pinned dependencies and installs speechrnn into it (editable).
# As root it also installs the Debian packages speechrnn needs (espeak-ng, flite and sox for
# generated speech, libportaudio2 for the microphone, pulseaudio for the virtual-mic test).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  pkgs="espeak-ng flite sox libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins"
  missing=""
  for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q $missing >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q $missing >/dev/null; } ||
      echo "setup.sh: could not install$missing with apt-get; what needs them (generated speech, the microphone tests) will say so" >&2
  fi
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -r requirements.txt
.venv/bin/python -m pip install -q --no-deps -e .
echo "speechrnn is set up in .venv" >&2
