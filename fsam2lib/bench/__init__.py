# Transitional: the benchmark code is being split out of core.py into modules.
from fsam2lib.bench import core


def __getattr__(name: str):
    return getattr(core, name)
