"""What the notebooks use: figures (``viz``), widgets (``widgets``), worked examples
(``showcase``) and the runner that executes the workbook (``runner``)."""

from fsam2lib.workbook.runner import record

__all__ = ["record"]
