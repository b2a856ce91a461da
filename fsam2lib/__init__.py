"""fsam2lib: text-driven token pruning for SAM2 video segmentation (library behind the workbook)."""

__version__ = "0.1.0"
