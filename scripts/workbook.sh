#!/usr/bin/env bash
# The main job: execute the whole workbook headless on the offline defaults.
# Executed notebooks and build/SUMMARY.md land in build/ (git-ignored).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
# No MPLBACKEND=Agg here: the kernels must use the inline backend so the executed notebooks
# in build/ keep their figures (headless is fine: inline renders to PNG).
export TQDM_DISABLE=1 PYTHONHASHSEED=0
unset MPLBACKEND
# Keep torch's libraries resident so every new kernel/process imports it quickly (see the script).
"$PY" scripts/pin_libs.py &
"$PY" -m fsam2lib.workbook "$@"
