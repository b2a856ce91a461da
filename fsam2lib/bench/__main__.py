"""``python -m fsam2lib.bench``: the benchmark CLI (see :mod:`fsam2lib.bench.cli`)."""

import sys

from fsam2lib.bench.cli import main

sys.exit(main())
