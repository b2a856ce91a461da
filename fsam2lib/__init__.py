"""fsam2lib: text-driven token pruning for SAM2 video segmentation (library behind the workbook).

The public face is imported lazily, so that ``import fsam2lib`` stays cheap (torch, sam2 and
open_clip load only when a model is built).
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "build_predictor": "fsam2lib.predictor",
    "PrunedSAM2VideoPredictor": "fsam2lib.predictor",
    "PruningConfig": "fsam2lib.pruning",
    "StatePolicy": "fsam2lib.predictor",
    "load_sam2": "fsam2lib.models.sam2",
    "load_clip": "fsam2lib.models.clip",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'fsam2lib' has no attribute {name!r}")
