"""Seeded random weights saved as official-format files: the real-checkpoint path, offline.

    python -m fsam2lib.models.random_checkpoints --sam2 sam2.1_hiera_t --clip ViT-B-32 \\
        --out build/rehearsal/checkpoints

Real SAM2.1 and CLIP weights cannot be downloaded here, yet the path a user takes with them
(a ``.pt`` in a checkpoint folder, an open_clip checkpoint file) must be exercised. This writes

- ``<out>/sam2.1_hiera_tiny.pt``: SAM2's official format (``{"model": state_dict}``) under the
  official file name, so ``FSAM2_CHECKPOINTS=<out>`` finds it exactly as it finds a download;
- ``<out>/ViT-B-32-RANDOM.pt``: open_clip's checkpoint format (``{"state_dict": ...}``).

Both carry the RANDOM marker (``fsam2lib.models.sam2.RANDOM_MARKER``), so every predictor,
router, table and notebook made from them says RANDOM: they measure nothing but cost and
whether the path runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import open_clip
import torch

from fsam2lib.models.clip import save_open_clip_checkpoint
from fsam2lib.models.sam2 import SAM2_MODELS, load_sam2, save_checkpoint


def write_random_sam2(name: str, folder: str | Path, seed: int = 0) -> Path:
    """``name``'s config with seeded random weights, saved under its official file name."""
    spec = SAM2_MODELS.get(name)
    if spec is None or spec.checkpoint is None:
        official = [k for k, v in SAM2_MODELS.items() if v.checkpoint]
        raise ValueError(f"{name!r} has no official checkpoint; choose one of {official}")
    model = load_sam2(name, weights="random", seed=seed)
    return save_checkpoint(model, Path(folder) / spec.checkpoint)


def write_random_clip(name: str, folder: str | Path, seed: int = 0) -> Path:
    """open_clip's ``name`` architecture with seeded random weights, as ``<name>-RANDOM.pt``."""
    if name not in open_clip.list_models():
        raise ValueError(f"unknown open_clip model {name!r}")
    torch.manual_seed(seed)
    model = open_clip.create_model(name)
    return save_open_clip_checkpoint(model, Path(folder) / f"{name}-RANDOM.pt", random=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m fsam2lib.models.random_checkpoints",
        description="Write seeded random SAM2 and CLIP weights in their official file formats "
        "(marked RANDOM), to rehearse the real-checkpoint path offline.",
    )
    parser.add_argument("--sam2", default="sam2.1_hiera_t", help="a SAM2 name with a checkpoint")
    parser.add_argument("--clip", default="ViT-B-32", help="an open_clip architecture")
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for path in (
        write_random_sam2(args.sam2, args.out, args.seed),
        write_random_clip(args.clip, args.out, args.seed),
    ):
        print(f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB, RANDOM weights: cost only)")


if __name__ == "__main__":
    main()
