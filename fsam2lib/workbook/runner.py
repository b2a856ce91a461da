"""Execute the workbook headless: every notebook in order through papermill, then a summary.

    python -m fsam2lib.workbook [--out build] [--only 01_token_scoring] [-p NAME VALUE ...]
    python -m fsam2lib.workbook --grid grid.json [--executor ray [--address ADDR]]

Executed copies go to ``build/notebooks/``; notebooks record their key figures with
``fsam2lib.workbook.record`` into ``build/summary/<notebook>.json``; this module gathers them
into ``build/SUMMARY.md``. With ``--grid``, every (parameter set, notebook) pair is a task
(:mod:`fsam2lib.workbook.grid`), serial or on Ray; ``-p`` values apply to every set.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from fsam2lib.executors import EXECUTORS, Executor
from fsam2lib.paths import BUILD_DIR, NOTEBOOKS_DIR
from fsam2lib.workbook.grid import read_grid, run_grid


def notebooks(only: list[str] | None = None) -> list[Path]:
    """The workbook's notebooks in order (01_, 02_, ...), optionally filtered by name."""
    found = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
    if only:
        unknown = set(only) - {p.stem for p in found}
        if unknown:
            raise ValueError(f"unknown notebooks {sorted(unknown)}; have {[p.stem for p in found]}")
        found = [p for p in found if p.stem in only]
    return found


def record(notebook: str, key: str, value, build: Path | None = None) -> None:
    """Store one key figure (JSON-serialisable) of a notebook for the workbook summary."""
    folder = (build or BUILD_DIR) / "summary"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{notebook}.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    data[key] = value
    path.write_text(json.dumps(data, indent=2, default=float))


def write_summary(build: Path, timings: dict[str, float]) -> Path:
    lines = ["# Workbook summary", ""]
    lines += ["| notebook | seconds |", "|---|---|"]
    lines += [f"| {name} | {sec:.0f} |" for name, sec in timings.items()]
    for path in sorted((build / "summary").glob("*.json")):
        lines += ["", f"## {path.stem}", ""]
        for key, value in json.loads(path.read_text()).items():
            if isinstance(value, str) and "\n" in value:  # a pre-formatted table
                lines += [f"**{key}**", "", value, ""]
            else:
                lines.append(f"- {key}: {value}")
    out = build / "SUMMARY.md"
    out.write_text("\n".join(lines) + "\n")
    return out


def write_times(out: Path, measured: Path, params: dict) -> None:
    """Copy this run's notebook times (``measured``, written by :func:`run`) to ``out`` with
    when, where and with which parameters they were measured."""
    import torch

    from fsam2lib.bench.spec import device_name

    record = {
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": device_name(torch.device("cpu")),
        "parameters": params,
        "seconds": json.loads(measured.read_text()),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")


def run(only: list[str] | None, params: dict[str, str], build: Path) -> Path:
    import papermill as pm

    (build / "notebooks").mkdir(parents=True, exist_ok=True)
    timings = {}
    for nb in notebooks(only):
        start = time.time()
        print(f"[workbook] executing {nb.name}", flush=True)
        pm.execute_notebook(
            str(nb),
            str(build / "notebooks" / nb.name),
            parameters=params,
            kernel_name="python3",
            cwd=str(NOTEBOOKS_DIR),
            progress_bar=False,
        )
        timings[nb.stem] = time.time() - start
    (build / "times.json").write_text(json.dumps({k: round(v, 1) for k, v in timings.items()}))
    return write_summary(build, timings)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=BUILD_DIR)
    parser.add_argument("--only", nargs="*", help="notebook names (without .ipynb)")
    parser.add_argument(
        "-p",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="papermill parameter for every notebook (value parsed as YAML)",
    )
    parser.add_argument(
        "--times",
        type=Path,
        default=None,
        help="also write each notebook's run time here (JSON; the README's notebook table "
        "reads docs/results/workbook/times.json)",
    )
    parser.add_argument("--grid", type=Path, help="JSON grid of parameter sets (see grid.py)")
    parser.add_argument("--executor", default="serial", choices=EXECUTORS)
    parser.add_argument("--address", default=None, help="Ray cluster address")
    parser.add_argument("--cpus-per-task", type=float, default=1.0)
    args = parser.parse_args(argv)
    import yaml

    params = {name: yaml.safe_load(value) for name, value in args.p}
    if args.grid is None:
        if args.executor != "serial":
            parser.error("--executor ray needs --grid (one workbook run is one sequence)")
        os.environ["FSAM2_BUILD"] = str(args.out.resolve())
        summary = run(args.only, params, args.out.resolve())
        print(f"[workbook] executed notebooks in {args.out / 'notebooks'}; summary: {summary}")
        if args.times is not None:
            write_times(args.times, args.out.resolve() / "times.json", params)
        return
    points = [(name, {**params, **point}) for name, point in read_grid(args.grid)]
    executor = Executor(args.executor, address=args.address, cpus_per_task=args.cpus_per_task)
    for summary in run_grid(notebooks(args.only), points, args.out.resolve(), executor):
        print(f"[workbook] {summary}")


if __name__ == "__main__":
    main()
