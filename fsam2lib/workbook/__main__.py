"""``python -m fsam2lib.workbook``: execute the workbook (see :mod:`fsam2lib.workbook.runner`)."""

from fsam2lib.workbook.runner import main

main()
