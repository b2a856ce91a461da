"""Packaging hook: wheels carry the shipped micro weights.

The repository keeps them in ``data/`` (beside the package, with their model card). A wheel
installed elsewhere has no repository, so ``build_py`` copies them into the package as
``fsam2lib/shipped/``; ``fsam2lib.paths`` looks in ``data/`` first, then there.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = (
    "sam2_micro.safetensors",
    "clip_micro.safetensors",
    "router_micro.safetensors",
    "MODEL_CARD.md",
)


class BuildWithWeights(build_py):
    def run(self) -> None:
        super().run()
        target = Path(self.build_lib) / "fsam2lib" / "shipped"
        target.mkdir(parents=True, exist_ok=True)
        for name in SHIPPED:
            shutil.copy2(Path(__file__).parent / "data" / name, target / name)


setup(cmdclass={"build_py": BuildWithWeights})
