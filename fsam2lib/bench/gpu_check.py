"""The GPU check: exactness at keep 1.0, then speed and CUDA peak memory at 1024 px for
sam2.1 hiera t and b+, stock against the router at keep 0.3 (random weights: cost only).

    python -m fsam2lib.bench.gpu_check [--frames 16] [--repeats 1] [--out build/gpu_check]

Without a CUDA device it says so and exits 0, so CI and laptops can run it. On a GPU it runs
as SAM2's own notebooks do: bfloat16 autocast for the cost runs, fp32 for exactness.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from fsam2lib.paths import BUILD_DIR

MODELS = ("sam2.1_hiera_t", "sam2.1_hiera_b+")
STOCK_PREDICTOR = "sam2.sam2_video_predictor.SAM2VideoPredictor"
EXACT_TOLERANCE = 1e-4  # max |mask logit difference| at keep 1.0


def max_logit_difference(
    model: str, device: str, image_size: int, frames: int = 6, seed: int = 0
) -> float:
    """Track a synthetic video's first target with stock SAM2 and with the pruned predictor at
    keep 1.0 (same seeded random weights); the largest mask-logit difference over all frames."""
    from fsam2lib.bench.sources import cost_video
    from fsam2lib.evaluate import run_video
    from fsam2lib.models.sam2 import load_sam2
    from fsam2lib.predictor import PrunedSAM2VideoPredictor
    from fsam2lib.pruning.config import PruningConfig

    video = cost_video(image_size, frames, seed)
    objects = [min(video.descriptions)]
    logits = []
    for cls in (STOCK_PREDICTOR, PrunedSAM2VideoPredictor):
        predictor = load_sam2(
            model,
            weights="random",
            seed=seed,
            device=device,
            image_size=image_size,
            predictor_class=cls,
        )
        if isinstance(predictor, PrunedSAM2VideoPredictor):
            predictor.pruning = PruningConfig(
                strategy="mask_prior", keep_ratio=1.0, memory_keep_ratio=1.0
            )
        logits.append(run_video(predictor, video, object_ids=objects).logits)
        del predictor
    return float(np.abs(logits[0] - logits[1]).max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16, help="frames per cost run")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--out", type=Path, default=BUILD_DIR / "gpu_check")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device on this machine; nothing to check (exit 0)")
        return 0
    from fsam2lib import bench

    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"device": torch.cuda.get_device_name(0), "models": {}}
    failed = False
    for model in args.models.split(","):
        diff = max_logit_difference(model, "cuda", args.image_size)
        exact = diff <= EXACT_TOLERANCE
        failed |= not exact
        print(
            f"{model}: keep 1.0 vs stock, max |logit diff| {diff:.2e} ({'ok' if exact else 'FAIL'})"
        )
        result = bench.run_efficiency(
            bench.ModelSpec(model, weights="random", image_size=args.image_size, device="cuda"),
            keep=(1.0, 0.3),
            frames=args.frames,
            repeats=args.repeats,
            bf16=True,
            progress=True,
        )
        print(bench.format_efficiency_table(result))
        bench.write_result(result, args.out / f"efficiency_{model}.json")
        summary["models"][model] = {"max_logit_difference": diff, "exact": exact}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"results in {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
