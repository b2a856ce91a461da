"""What the CI rehearsal of the real-checkpoint path must have produced.

``scripts/rehearse_real_path.sh`` runs, on random weights saved in the official formats, what a
user with Meta's SAM2.1 checkpoint, a CLIP and a DAVIS folder types. Running is not enough: each
output must also say RANDOM, and notebook 06 must have run its working cells rather than
printing that it skipped them. ``python -m fsam2lib.workbook.rehearsal FOLDER`` checks that and
exits non-zero with the list of what is wrong.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SKIPPED = "skipped: files missing"


def problems(folder: str | Path) -> list[str]:
    """Everything the rehearsal in ``folder`` failed to show (empty: all shown)."""
    folder = Path(folder)
    found = []
    found += _router_problems(folder / "train_router.log")
    found += _router_problems(folder / "train_router_mask.log")
    found += _accuracy_problems(folder / "accuracy.json")
    found += _notebook_problems(folder / "06_real_checkpoints.ipynb")
    found += _summary_problems(folder / "notebook_summary.json")
    return found


def _router_problems(path: Path) -> list[str]:
    if not path.is_file():
        return [f"{path} missing: train_router ({path.stem}) did not report"]
    report = json.loads(path.read_text().strip().splitlines()[-1])  # its last line: JSON
    found = []
    for key in ("sam2_weights", "clip_weights"):
        if "RANDOM" not in str(report.get(key)):
            found.append(f"train_router: {key} is {report.get(key)!r}, not labelled RANDOM")
    if not report.get("steps"):
        found.append("train_router: no training step was taken")
    return found


def _accuracy_problems(path: Path) -> list[str]:
    if not path.is_file():
        return [f"{path} missing: the bench did not write its result"]
    result = json.loads(path.read_text())
    found = []
    if not result.get("random_weights") or "RANDOM" not in result.get("weights_label", ""):
        found.append(f"bench: SAM2 weights not labelled RANDOM ({result.get('weights_label')!r})")
    if not result.get("random_clip_weights"):
        found.append(f"bench: CLIP not labelled RANDOM ({result.get('text_encoder')!r})")
    names = [c["name"] for c in result.get("configs", [])]
    if not any(name.startswith("router") for name in names):
        found.append(f"bench: no router configuration was measured ({names})")
    return found


def _notebook_problems(path: Path) -> list[str]:
    if not path.is_file():
        return [f"{path} missing: notebook 06 was not executed"]
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    found = []
    for i, cell in enumerate(cells):
        text = _output_text(cell)
        if SKIPPED in text:
            found.append(f"notebook 06, code cell {i}: skipped its work ({SKIPPED!r})")
        if "Error" in text and "Traceback" in text:
            found.append(f"notebook 06, code cell {i}: raised")
    every = "\n".join(_output_text(c) for c in cells)
    for needed in ("ready.", "RANDOM weights", "J&F"):
        if needed not in every:
            found.append(f"notebook 06: no output says {needed!r}")
    return found


def _summary_problems(path: Path) -> list[str]:
    """The figures notebook 06 recorded (``build/summary``): ready, and a J&F table."""
    if not path.is_file():
        return [f"{path} missing: notebook 06 recorded nothing"]
    summary = json.loads(path.read_text())
    found = [] if summary.get("ready") is True else ["notebook 06 was not ready"]
    tables = [v for k, v in summary.items() if k.startswith("J&F")]
    if not tables or "RANDOM" not in tables[0]:
        found.append("notebook 06 recorded no J&F table labelled RANDOM")
    return found


def _output_text(cell: dict) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts += out.get("text", [])
        for kind in ("text/plain", "text/markdown"):
            parts += out.get("data", {}).get(kind, [])
    return "".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m fsam2lib.workbook.rehearsal FOLDER", file=sys.stderr)
        return 2
    found = problems(args[0])
    for problem in found:
        print(f"[rehearsal] FAILED: {problem}")
    if not found:
        print("[rehearsal] every output ran and says RANDOM")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
