"""Every file location the library knows, in one place.

The shipped weights live in the repository's ``data/`` folder (beside the package, not in it);
an installed wheel carries copies in ``fsam2lib/shipped/`` (see ``setup.py``), used when there
is no repository around the package. The hydra/open_clip configs are in ``fsam2lib/configs``,
the notebooks in ``notebooks/`` and everything a run writes in ``build/`` (``FSAM2_BUILD``
overrides it).
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
CONFIG_DIR = PACKAGE_DIR / "configs"
IN_REPOSITORY = (REPO_DIR / "pyproject.toml").is_file() and (REPO_DIR / "data").is_dir()
# installed from a wheel: no repository around the package, the copies packed beside the code
DATA_DIR = REPO_DIR / "data" if IN_REPOSITORY else PACKAGE_DIR / "shipped"
NOTEBOOKS_DIR = REPO_DIR / "notebooks"
BUILD_DIR = Path(os.environ.get("FSAM2_BUILD", REPO_DIR / "build"))

MICRO_SAM2_WEIGHTS = DATA_DIR / "sam2_micro.safetensors"
MICRO_CLIP_WEIGHTS = DATA_DIR / "clip_micro.safetensors"
MICRO_ROUTER_WEIGHTS = DATA_DIR / "router_micro.safetensors"
MICRO_CLIP_CONFIG = CONFIG_DIR / "clip_micro.json"
OBJECT_NOUNS_FILE = CONFIG_DIR / "object_nouns.txt"
