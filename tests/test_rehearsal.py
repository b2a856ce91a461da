"""The rehearsal check must fail on what a broken rehearsal leaves behind, and pass a good one."""

from __future__ import annotations

import json
from pathlib import Path

from fsam2lib.workbook import rehearsal


def _code_cell(*texts: str) -> dict:
    return {
        "cell_type": "code",
        "outputs": [{"output_type": "stream", "name": "stdout", "text": [t]} for t in texts],
    }


def _write_good_rehearsal(folder: Path) -> None:
    router_report = {
        "steps": 40,
        "sam2_weights": "SAM2 sam2.1_hiera_t (RANDOM weights)",
        "clip_weights": "CLIP ViT-B-32 (RANDOM weights)",
    }
    (folder / "train_router.log").write_text("step 1\n" + json.dumps(router_report) + "\n")
    mask_report = {**router_report, "objective": "mask", "steps": 2}
    (folder / "train_router_mask.log").write_text(json.dumps(mask_report) + "\n")
    accuracy = {
        "random_weights": True,
        "weights_label": "RANDOM weights",
        "random_clip_weights": True,
        "configs": [{"name": "stock"}, {"name": "router@0.5"}],
    }
    (folder / "accuracy.json").write_text(json.dumps(accuracy))
    cells = [
        _code_cell("ready."),
        _code_cell("RANDOM weights: not a segmentation result"),
        _code_cell("RANDOM weights | J&F 12.0"),
    ]
    (folder / "06_real_checkpoints.ipynb").write_text(json.dumps({"cells": cells}))
    summary = {"ready": True, "J&F (keep 0.5)": "RANDOM weights | stock 12.0"}
    (folder / "notebook_summary.json").write_text(json.dumps(summary))


def test_a_complete_rehearsal_has_no_problems(tmp_path):
    _write_good_rehearsal(tmp_path)
    assert rehearsal.problems(tmp_path) == []
    assert rehearsal.main([str(tmp_path)]) == 0


def test_an_empty_folder_names_every_missing_output(tmp_path):
    found = rehearsal.problems(tmp_path)
    assert len(found) == 5
    names = ("train_router.log", "train_router_mask.log", "accuracy.json", "06_real_checkpoints")
    for name in (*names, "notebook_summary"):
        assert any(name in problem for problem in found), name
    assert rehearsal.main([str(tmp_path)]) == 1


def test_a_notebook_that_skipped_its_work_fails(tmp_path):
    _write_good_rehearsal(tmp_path)
    path = tmp_path / "06_real_checkpoints.ipynb"
    notebook = json.loads(path.read_text())
    notebook["cells"].append(_code_cell(f"{rehearsal.SKIPPED}: sam2.1_hiera_tiny.pt"))
    path.write_text(json.dumps(notebook))
    found = rehearsal.problems(tmp_path)
    assert len(found) == 1 and "code cell 3" in found[0] and "skipped" in found[0]


def test_unlabelled_weights_fail(tmp_path):
    _write_good_rehearsal(tmp_path)
    report = {"steps": 40, "sam2_weights": "SAM2 sam2.1_hiera_t", "clip_weights": "CLIP (RANDOM)"}
    (tmp_path / "train_router.log").write_text(json.dumps(report) + "\n")
    accuracy = json.loads((tmp_path / "accuracy.json").read_text())
    accuracy["random_clip_weights"] = False
    (tmp_path / "accuracy.json").write_text(json.dumps(accuracy))
    found = rehearsal.problems(tmp_path)
    assert any("sam2_weights" in problem for problem in found)
    assert any("CLIP not labelled RANDOM" in problem for problem in found)
    assert len(found) == 2
