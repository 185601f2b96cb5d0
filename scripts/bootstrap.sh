#!/usr/bin/env bash
# Create .venv (if missing) and install the pinned requirements (only when requirements.txt
# changed since the last successful install: its SHA-256 is kept in .venv/.requirements.sha256).
#
# torch==2.13.0 is pinned in requirements.txt: plain pip takes the CPU build lying on this kind of
# machine's disk (pip's config points at it); uv/poetry would download a multi-GB CUDA build instead.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
STAMP="$VENV/.requirements.sha256"

if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV with $("$PYTHON" --version)"
    "$PYTHON" -m venv "$VENV"
fi

want=$(sha256sum requirements.txt | cut -d' ' -f1)
have=$(cat "$STAMP" 2>/dev/null || true)
if [ "$want" = "$have" ]; then
    exit 0
fi

echo "== installing requirements.txt into $VENV"
"$VENV/bin/python" -m pip install --progress-bar off --no-input -r requirements.txt
echo "$want" > "$STAMP"
"$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)' || true
