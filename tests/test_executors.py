"""Sweeps on Ray: one task per (video, config), results equal to the serial run's."""

from __future__ import annotations

import pytest
import torch

from fsam2lib import bench
from fsam2lib.executors import Executor

pytest.importorskip("ray")


def _figures(result: dict) -> tuple[list, list]:
    """Everything but timings, which differ from run to run."""
    configs = [
        {k: v for k, v in c.items() if k not in ("seconds_per_frame", "speedup")}
        for c in result["configs"]
    ]
    videos = [{k: v for k, v in r.items() if k != "seconds_per_frame"} for r in result["videos"]]
    return configs, videos


def test_accuracy_on_local_ray_equals_the_serial_run():
    torch.set_num_threads(1)  # each Ray task runs one torch thread (cpus_per_task=1)
    spec = bench.ModelSpec("micro")
    source = bench.open_dataset("synthetic:val:3", frames=8, seed=0)
    kwargs = dict(keep="1.0,0.3", strategies="router,random", seed=0)
    serial = bench.run_accuracy(spec, source, **kwargs)
    on_ray = bench.run_accuracy(spec, source, executor="ray", **kwargs)
    assert serial["settings"]["executor"] == "serial" and on_ray["settings"]["executor"] == "ray"
    assert _figures(on_ray) == _figures(serial)
    assert len(on_ray["videos"]) == 3 * 3  # videos x (reference + two configs)


def test_executor_arguments():
    with pytest.raises(ValueError, match="one of"):
        Executor("dask")
    with pytest.raises(ValueError, match="only makes sense with the ray"):
        Executor("serial", address="auto")
    with pytest.raises(ValueError, match="at least some CPU"):
        Executor("ray", cpus_per_task=0)
    import fsam2lib

    built = bench.ModelSpec(predictor=fsam2lib.build_predictor(weights="random", router=None))
    with pytest.raises(ValueError, match="in-memory"):
        bench.run_accuracy(
            built,
            bench.open_dataset("synthetic:val:1", quick=True),
            strategies="random",
            executor="ray",
        )


def test_grid_points_from_lists_and_named_sets():
    from fsam2lib.workbook.grid import grid_points

    points = grid_points({"SEED": [0, 1], "KEEP_RATIO": [0.3]})
    assert points == [
        ("KEEP_RATIO=0.3_SEED=0", {"KEEP_RATIO": 0.3, "SEED": 0}),
        ("KEEP_RATIO=0.3_SEED=1", {"KEEP_RATIO": 0.3, "SEED": 1}),
    ]
    assert grid_points([{"name": "a", "parameters": {"X": 1}}]) == [("a", {"X": 1})]
    with pytest.raises(ValueError, match="distinct"):
        grid_points([{"name": "a", "parameters": {}}, {"name": "a", "parameters": {}}])
    with pytest.raises(ValueError, match="folder names"):
        grid_points([{"name": "../up", "parameters": {}}])
    with pytest.raises(ValueError, match="non-empty list"):
        grid_points({"SEED": []})


def test_workbook_grid_runs_each_set_as_a_ray_task(tmp_path):
    import nbformat

    from fsam2lib.workbook.grid import run_grid

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python", "display_name": "Py"}
    nb.metadata["language_info"] = {"name": "python"}
    params = nbformat.v4.new_code_cell("VALUE = 0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            "from fsam2lib.workbook import record\nrecord('99_tiny', 'value', VALUE * 10)"
        ),
    ]
    path = tmp_path / "99_tiny.ipynb"
    nbformat.write(nb, path)
    points = [("one", {"VALUE": 1}), ("two", {"VALUE": 2})]
    summaries = run_grid([path], points, tmp_path / "build", Executor("ray"), progress=False)
    assert [s.parent.name for s in summaries] == ["one", "two"]
    assert "- value: 10" in summaries[0].read_text()
    assert "- value: 20" in summaries[1].read_text()
    assert (tmp_path / "build" / "grid" / "two" / "notebooks" / "99_tiny.ipynb").is_file()
