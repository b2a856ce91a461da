"""docs/ARCHITECTURE.md's picture names real code: every owner it draws must resolve."""

import pytest

from fsam2lib.workbook import architecture


def test_every_step_owner_exists():
    assert architecture.missing_owners() == []


def test_a_renamed_owner_is_reported():
    moved = architecture.Step("x", "y", ("fsam2lib.pruning.selection:no_such_function",))
    assert architecture.missing_owners((moved,)) == ["fsam2lib.pruning.selection:no_such_function"]
    with pytest.raises(AttributeError):
        architecture.resolve("fsam2lib.pruning.selection:no_such_function")


def test_draw_writes_a_figure(tmp_path):
    out = architecture.main(["--out", str(tmp_path / "a.png")])
    assert out.stat().st_size > 10_000
