"""Notebook settings that the environment may override: ``FSAM2_<NAME>``.

Papermill sets parameters one run at a time; a user pointing notebook 06 at their files, and
CI rehearsing that path under nbval (which cannot pass parameters), set them once in the
environment instead. The value's type follows the default's, and a value that does not parse
is an error naming the variable: a typo must not silently fall back to the default.
"""

from __future__ import annotations

import os

PREFIX = "FSAM2_"


def from_env(name: str, default):
    """``$FSAM2_<name>`` parsed as ``default``'s type (str, int, float, bool, or a list as
    comma-separated values typed like the default's first item), else ``default``."""
    var = PREFIX + name
    raw = os.environ.get(var)
    if raw is None:
        return default
    try:
        return _parse(raw, default)
    except ValueError as err:
        raise ValueError(f"${var}={raw!r}: {err}") from None


def _parse(raw: str, default):
    if isinstance(default, bool):
        lowered = raw.strip().lower()
        if lowered not in ("1", "0", "true", "false", "yes", "no"):
            raise ValueError("expected a boolean (1/0, true/false, yes/no)")
        return lowered in ("1", "true", "yes")
    if isinstance(default, list):
        item = default[0] if default else ""
        return [_parse(part.strip(), item) for part in raw.split(",") if part.strip()]
    if isinstance(default, (int, float)):
        try:
            return type(default)(raw)
        except ValueError:
            raise ValueError(f"expected {type(default).__name__}") from None
    return raw
