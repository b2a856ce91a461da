#!/usr/bin/env bash
# The workbook in a real browser: installs Debian's Chromium and Playwright if missing, then
# runs every notebook in JupyterLab with its widgets on (fsam2lib.workbook.browser).
# Screenshots and report.json go to build/browser/. Extra arguments go to the check
# (e.g. --only 02_pruning_effects).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
if ! command -v chromium >/dev/null 2>&1; then
  echo "[browser] installing Debian's chromium"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
"$PY" -c "import playwright" 2>/dev/null || "$PY" -m pip install -q "playwright>=1.40"
export TQDM_DISABLE=1 PYTHONHASHSEED=0
exec "$PY" -m fsam2lib.workbook.browser "$@"
