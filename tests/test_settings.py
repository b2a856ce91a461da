"""Notebook settings from the environment (FSAM2_<NAME>), as notebook 06 reads them."""

from __future__ import annotations

import pytest

from fsam2lib.workbook.settings import from_env


def test_unset_variable_gives_the_default(monkeypatch):
    monkeypatch.delenv("FSAM2_MAX_VIDEOS", raising=False)
    assert from_env("MAX_VIDEOS", 2) == 2


@pytest.mark.parametrize(
    ("raw", "default", "expected"),
    [
        ("5", 2, 5),
        ("0.25", 3.0, 0.25),
        ("/data/DAVIS", "", "/data/DAVIS"),
        ("yes", False, True),
        ("0", True, False),
        ("0.5, 0.25", [0.5], [0.5, 0.25]),
        ("router,random", ["router"], ["router", "random"]),
    ],
)
def test_values_take_the_default_type(monkeypatch, raw, default, expected):
    monkeypatch.setenv("FSAM2_X", raw)
    value = from_env("X", default)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(("raw", "default"), [("two", 2), ("0.5x", 1.0), ("maybe", True)])
def test_unparsable_value_names_the_variable(monkeypatch, raw, default):
    monkeypatch.setenv("FSAM2_X", raw)
    with pytest.raises(ValueError, match=r"\$FSAM2_X"):
        from_env("X", default)
