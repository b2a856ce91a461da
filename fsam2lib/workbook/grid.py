"""The workbook over a grid of parameter sets: every (parameter set, notebook) pair is one
task, run serially or as Ray tasks (:class:`~fsam2lib.executors.Executor`).

A grid file is JSON, either a list of named sets::

    [{"name": "keep03", "parameters": {"KEEP_RATIO": 0.3}}, {"name": "keep01", ...}]

or one list of values per parameter, expanded to every combination (named after them)::

    {"KEEP_RATIO": [0.3, 0.1], "SEED": [0, 1]}

Each set writes to ``<out>/grid/<name>/``: executed notebooks in ``notebooks/``, their
recorded figures in ``summary/`` and ``SUMMARY.md``, exactly as a plain workbook run does.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from pathlib import Path

from fsam2lib.executors import Executor
from fsam2lib.paths import NOTEBOOKS_DIR


def grid_points(grid: list | dict) -> list[tuple[str, dict]]:
    """``(name, parameters)`` of every set a grid describes (see the module docstring)."""
    if isinstance(grid, dict):
        if not grid or not all(isinstance(v, list) and v for v in grid.values()):
            raise ValueError("a grid dict maps each parameter name to a non-empty list of values")
        names = sorted(grid)
        points = []
        for values in itertools.product(*(grid[n] for n in names)):
            label = "_".join(f"{n}={v}" for n, v in zip(names, values, strict=True))
            points.append(
                (re.sub(r"[^A-Za-z0-9_.=-]", "-", label), dict(zip(names, values, strict=True)))
            )
        return points
    if not isinstance(grid, list) or not grid:
        raise ValueError("a grid is a non-empty list of {name, parameters} or a dict of lists")
    points = []
    for entry in grid:
        if not isinstance(entry, dict) or set(entry) != {"name", "parameters"}:
            raise ValueError(
                f"each grid entry needs exactly 'name' and 'parameters', got {entry!r}"
            )
        name = entry["name"]
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.=-]+", name):
            raise ValueError(f"grid entry names are folder names ([A-Za-z0-9_.=-]), got {name!r}")
        points.append((name, dict(entry["parameters"])))
    if len({n for n, _ in points}) != len(points):
        raise ValueError("grid entry names must be distinct")
    return points


def read_grid(path: str | Path) -> list[tuple[str, dict]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"grid file not found: {path}")
    try:
        return grid_points(json.loads(path.read_text()))
    except json.JSONDecodeError as error:
        raise ValueError(f"grid file {path} is not valid JSON: {error}") from None


def execute_notebook(
    notebook: str, out_dir: str, parameters: dict, threads: int | None = None
) -> tuple[str, float]:
    """One task: execute ``notebook`` with ``parameters`` into ``out_dir/notebooks``; its
    recorded figures go to ``out_dir/summary``. Returns (notebook stem, seconds)."""
    import papermill as pm

    os.environ["FSAM2_BUILD"] = out_dir  # read by the kernel's fsam2lib.paths
    if threads is not None:  # the kernel's torch sizes its pool from these
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    target = Path(out_dir) / "notebooks" / Path(notebook).name
    target.parent.mkdir(parents=True, exist_ok=True)
    start = time.time()
    pm.execute_notebook(
        notebook,
        str(target),
        parameters=parameters,
        kernel_name="python3",
        cwd=str(NOTEBOOKS_DIR),
        progress_bar=False,
    )
    return Path(notebook).stem, time.time() - start


def run_grid(
    notebook_paths: list[Path],
    points: list[tuple[str, dict]],
    build: Path,
    executor: Executor,
    progress: bool = True,
) -> list[Path]:
    """Every (set, notebook) as one task; one ``SUMMARY.md`` per set, paths returned."""
    from fsam2lib.workbook.runner import write_summary

    items = [
        (str(nb), str(build / "grid" / name), params)
        for name, params in points
        for nb in notebook_paths
    ]
    done = executor.map(execute_notebook, items, progress=progress, desc="workbook grid")
    summaries = []
    for index, (name, _) in enumerate(points):
        timings = dict(done[index * len(notebook_paths) : (index + 1) * len(notebook_paths)])
        summaries.append(write_summary(build / "grid" / name, timings))
    return summaries
