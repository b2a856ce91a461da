#!/usr/bin/env bash
# The full test suite: library tests (pytest) and every notebook (nbval), on the offline defaults.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
export TQDM_DISABLE=1 MPLBACKEND=Agg PYTHONHASHSEED=0
# Keep torch's libraries resident so every new kernel/process imports it quickly (see the script).
"$PY" scripts/pin_libs.py &
nb_args=()
if compgen -G "notebooks/*.ipynb" >/dev/null; then
  nb_args=(--nbval-lax --nbval-current-env notebooks)
fi
# Two pytest workers with one thread each (a test file, or a notebook's cells, stay in one
# worker): the suite's many small models use two cores better side by side than one process
# with two threads does. FSAM2_TEST_WORKERS=0 runs one process with torch's default threads.
workers="${FSAM2_TEST_WORKERS:-2}"
if [ "$workers" = "0" ]; then
  "$PY" -m pytest tests "${nb_args[@]}" "$@"
else
  OMP_NUM_THREADS=1 "$PY" -m pytest -n "$workers" --dist loadfile tests "${nb_args[@]}" "$@"
fi
# The real-checkpoint path (SAM2.1 .pt, open_clip file, DAVIS folder, notebook 06 in full),
# rehearsed on RANDOM stand-ins (FSAM2_SKIP_REHEARSAL=1 skips it).
if [ "${FSAM2_SKIP_REHEARSAL:-0}" != "1" ]; then
  bash "$ROOT/scripts/rehearse_real_path.sh"
fi
# The notebooks in a real browser (JupyterLab + headless Chromium), widgets moved
# (FSAM2_SKIP_BROWSER=1 skips it, e.g. while iterating on one test).
if [ "${FSAM2_SKIP_BROWSER:-0}" != "1" ]; then
  bash "$ROOT/scripts/browser_check.sh"
fi
