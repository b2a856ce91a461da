"""What the README shows works as written: its library example runs, its example of a
notebook parameter override executes the notebook, and every ``python -m`` command it shows
runs here up to the error it documents for what this machine lacks (a checkpoint, a DAVIS
folder, a grid file, a GPU), never to a usage error. (The real-checkpoint commands run in full
in ``scripts/rehearse_real_path.sh`` on labelled stand-ins; the GPU script's CPU rehearsal is
in ``test_bench.py``.)"""

import importlib
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from fsam2lib.paths import REPO_DIR

README = (REPO_DIR / "README.md").read_text()


@pytest.mark.parametrize(
    ("path", "limit"),
    [("README.md", 8 * 1024), ("data/MODEL_CARD.md", 15 * 1024)],
)
def test_the_pages_a_newcomer_reads_stay_short(path, limit):
    """Run histories and measurement diaries belong in docs/; these two pages stay short."""
    size = len((REPO_DIR / path).read_bytes())
    assert size <= limit, f"{path} is {size} bytes, over its {limit}: move detail to docs/"


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


# each module the README runs with ``python -m``, and where its ``main(argv)`` lives
MAINS = {
    "fsam2lib.train.train_router": "fsam2lib.train.train_router",
    "fsam2lib.bench": "fsam2lib.bench.cli",
    "fsam2lib.bench.gpu_check": "fsam2lib.bench.gpu_check",
    "fsam2lib.bench.results": "fsam2lib.bench.results",
    "fsam2lib.workbook": "fsam2lib.workbook.runner",
}


def readme_commands() -> list[list[str]]:
    """Every ``python -m`` command of the README: in its bash blocks (continuation lines
    joined, comments dropped) and in its inline code."""
    blocks = "\n".join(re.findall(r"```bash\n(.*?)```", README, flags=re.S))
    lines = [line.split("#")[0].strip() for line in blocks.replace("\\\n", " ").splitlines()]
    inline = re.findall(r"`(python -m [^`]+)`", README.replace("\n", " "))
    commands = [shlex.split(c) for c in lines + inline if c.startswith("python -m ")]
    return [[part for part in c if not part.startswith("[")] for c in commands]


COMMANDS = readme_commands()
# what argparse says when a command's arguments themselves are wrong
ARGPARSE_ERRORS = (
    "unrecognized arguments",
    "the following arguments are required",
    "invalid choice",
    "expected one argument",
    "invalid float value",
    "invalid int value",
)


def test_the_readme_shows_commands_this_test_knows():
    assert len(COMMANDS) >= 5, COMMANDS
    assert {c[2] for c in COMMANDS} <= set(MAINS), "a README command without a runner here"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c[2:4]))
def test_a_readme_command_runs_up_to_its_documented_error(command, tmp_path, monkeypatch, capsys):
    """Run in-process from an empty folder: what is missing here must be named (the file,
    folder or device), and the arguments must parse."""
    monkeypatch.chdir(tmp_path)
    main = importlib.import_module(MAINS[command[2]]).main
    missing = [
        a for a in command[3:] if a.endswith((".pt", ".json", ".safetensors")) or a.startswith("/")
    ]
    missing = [a for a in missing if not Path(a).exists()]
    try:
        main(command[3:])
    except SystemExit as stop:
        message = capsys.readouterr().err + str(stop.code)
        assert not any(p in message for p in ARGPARSE_ERRORS), message[-2000:]
    except (FileNotFoundError, ValueError, RuntimeError) as err:
        message = str(err)
    else:
        message = capsys.readouterr().out
        assert not missing, f"ran although {missing} do not exist here"
        assert "no CUDA device" in message, message[-2000:]
        return
    assert any(m in message for m in missing), f"{missing} not named in: {message[-2000:]}"
