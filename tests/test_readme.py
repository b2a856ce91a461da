"""What the README shows works as written: its library example runs, and its example of a
notebook parameter override executes the notebook. (The real-checkpoint commands run in
``scripts/rehearse_real_path.sh`` on labelled stand-ins; the GPU script's CPU rehearsal is in
``test_bench.py``.)"""

import re
import shlex
import subprocess
import sys

from fsam2lib.paths import REPO_DIR

README = (REPO_DIR / "README.md").read_text()


def test_the_library_example_runs():
    (block,) = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    code = block.replace("    ...\n", "    last = (frame_idx, obj_ids, mask_logits)\n")
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["last"][0] == scope["video"].num_frames - 1
    assert scope["scores"].maps["text"].shape[-1] == 16 * 16


def test_the_notebook_override_example_runs(tmp_path):
    """``bash scripts/workbook.sh --only 02_pruning_effects -p KEEP_RATIOS "[0.5, 0.2]"``, as
    the README writes it (the script's last line is this module call)."""
    match = re.search(r"`bash scripts/workbook.sh (--only [^`]*?)`", README.replace("\n", " "))
    assert match, "the README no longer shows a notebook override"
    args = shlex.split(match.group(1))
    done = subprocess.run(
        [sys.executable, "-m", "fsam2lib.workbook", *args, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=1800,  # about two minutes alone; far more on a shared machine
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "notebooks" / "02_pruning_effects.ipynb").is_file()
