#!/usr/bin/env bash
# Create or update the project's virtual environment, idempotently.
# Sourced by scripts/workbook.sh and scripts/test.sh; sets $PY to the environment's python.
# FSAM2_VENV overrides the location (default: .venv in the repository root).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FSAM2_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"
STAMP="$VENV/.fsam2-stamp"
want="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/env.sh" | sha256sum | cut -d' ' -f1)"

if [ ! -x "$PY" ]; then
  echo "[env] creating virtual environment at $VENV"
  python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
fi
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ]; then
  echo "[env] installing dependencies (first run takes a few minutes)"
  "$PY" -m pip install -q --upgrade pip setuptools wheel
  # torch first: it installs from local files here; sam2 builds against it without isolation.
  "$PY" -m pip install -q torch==2.14.1 torchvision==0.29.1
  SAM2_BUILD_CUDA=0 "$PY" -m pip install -q --no-build-isolation sam2==1.1.0
  "$PY" -m pip install -q -e "$ROOT[dev]"
  "$PY" -m ipykernel install --sys-prefix --name python3 >/dev/null
  echo "$want" > "$STAMP"
fi
export PY ROOT
