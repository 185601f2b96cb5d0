#!/usr/bin/env bash
# Create .venv (if missing) and install a requirements set into it, pinned by constraints.txt:
#   scripts/bootstrap.sh runtime   requirements.txt only: what running needs (`make run`, production)
#   scripts/bootstrap.sh dev       requirements-dev.txt: the runtime set plus tests and tooling (`make test`)
# Each set is installed only when its files changed since its last successful install: the SHA-256
# of the set's files (requirements, constraints) is kept per set in .venv/.<file>.sha256.
#
# torch==2.13.0 is pinned in requirements.txt: plain pip takes the CPU build lying on this kind of
# machine's disk (pip's config points at it); uv/poetry would download a multi-GB CUDA build instead.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}

case "${1:-dev}" in
    runtime) files=(requirements.txt constraints.txt) ;;
    dev) files=(requirements-dev.txt requirements.txt constraints.txt) ;;
    *) echo "usage: $0 [runtime|dev]" >&2; exit 2 ;;
esac
STAMP="$VENV/.${files[0]}.sha256"

if [ ! -x "$VENV/bin/python" ]; then
    echo "== creating $VENV with $("$PYTHON" --version)"
    "$PYTHON" -m venv "$VENV"
fi

want=$(cat "${files[@]}" | sha256sum | cut -d' ' -f1)
have=$(cat "$STAMP" 2>/dev/null || true)
if [ "$want" = "$have" ]; then
    exit 0
fi

echo "== installing ${files[0]} (constraints.txt) into $VENV"
"$VENV/bin/python" -m pip install --progress-bar off --no-input -r "${files[0]}" -c constraints.txt
echo "$want" > "$STAMP"
"$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)' || true
