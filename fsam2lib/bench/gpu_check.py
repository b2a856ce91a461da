"""The GPU check, one script for the few minutes a GPU is lent (about 5 on one H100):

1. exactness: the pruned predictor at keep 1.0 against stock SAM2, fp32 and bf16 autocast;
2. speed: s/frame at 1, 4 and 16 objects, keep 0.3 against stock, eager and then with memory
   attention and the router compiled (``torch.compile``, default mode), each speedup with
   its bound (memory attention and router free);
3. memory: peak CUDA memory at 16 and 400 frames for stock, stock + lean state policy
   (unpruned) and pruned + lean, so pruning's own share is plain.

    python -m fsam2lib.bench.gpu_check [--model sam2.1_hiera_t] [--out build/gpu_check]

RANDOM weights throughout: it measures cost, never accuracy. bf16 autocast for the cost runs,
as SAM2's own notebooks run. The JSON (``gpu_check.json``) and the markdown tables
(``gpu_check.md``, for docs/) are rewritten after each section, so a run cut short keeps what
it measured. Without a CUDA device it says so and exits 0 (``--device cpu`` rehearses it).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from fsam2lib.paths import BUILD_DIR

STOCK_PREDICTOR = "sam2.sam2_video_predictor.SAM2VideoPredictor"
EXACT_TOLERANCE = 1e-4  # max |mask logit difference| at keep 1.0 (fp32)


def max_logit_difference(
    model: str, device: str, image_size: int, frames: int = 6, seed: int = 0, bf16: bool = False
) -> float:
    """Track a synthetic video's first target with stock SAM2 and with the pruned predictor at
    keep 1.0 (same seeded random weights, ``bf16``: both under bfloat16 autocast); the
    largest mask-logit difference over all frames."""
    from contextlib import nullcontext

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
        autocast = torch.autocast(device, dtype=torch.bfloat16) if bf16 else nullcontext()
        with autocast:
            logits.append(run_video(predictor, video, object_ids=objects).logits)
        del predictor
    return float(np.abs(logits[0] - logits[1]).max())


class Report:
    """The check's results so far, written to JSON and markdown after every section."""

    def __init__(self, out: Path, header: dict) -> None:
        self.out, self.data, self.tables = out, {**header, "sections": {}}, []
        out.mkdir(parents=True, exist_ok=True)

    def add(self, name: str, data: object, table: str) -> None:
        self.data["sections"][name] = data
        self.tables.append(table)
        (self.out / "gpu_check.json").write_text(json.dumps(self.data, indent=2, default=str))
        h = self.data
        lines = [
            f"# GPU check, {h['date']}",
            "",
            f"{h['device_name']}; torch {h['torch']}, sam2 {h['sam2']}, Python {h['python']}; "
            f"{h['model']} at {h['image_size']} px, RANDOM weights (cost only), bf16 autocast "
            "for the cost runs.",
            f"Command: `{h['command']}`",
            "",
            *self.tables,
        ]
        (self.out / "gpu_check.md").write_text("\n".join(lines) + "\n")
        print(table, flush=True)


def _speed_table(result: dict, title: str) -> tuple[list[dict], str]:
    rows = [
        {
            "objects": c["objects"],
            "config": c["name"],
            "seconds_per_frame": c["seconds_per_frame"],
            "speedup": c["speedup"],
            "bound": c["bound"],
            "speedup_of_bound": c["speedup_of_bound"],
            "memory_attention_s": c["stage_seconds"]["memory_attention"],
            "router_s": c["stage_seconds"]["router"],
        }
        for c in result["configs"]
    ]
    lines = [
        f"## {title}",
        "",
        "| objects | configuration | s/frame | speedup | bound | speedup / bound | memory attention s | router s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['objects']} | {r['config']} | {r['seconds_per_frame']:.4f} | {r['speedup']:.2f}x "
            f"| {r['bound']:.2f}x | {r['speedup_of_bound']:.0%} | {r['memory_attention_s']:.4f} "
            f"| {r['router_s']:.4f} |"
        )
    return rows, "\n".join(lines) + "\n"


def _memory_table(result: dict) -> tuple[list[dict], str]:
    key = "cuda_working_set_bytes" if "cuda" in result["device"] else "working_set_bytes"
    rows = [
        {"config": r["config"], "frames": r["frames"], "peak_bytes": r[key]} for r in result["rows"]
    ]
    stock = {r["frames"]: r["peak_bytes"] for r in rows if r["config"] == "stock"}
    lines = [
        "## Peak memory (working set above the loaded model)",
        "",
        "| configuration | frames | peak MiB | vs stock |",
        "|---|---|---|---|",
    ]
    for r in rows:
        base = stock.get(r["frames"])
        ratio = f"{r['peak_bytes'] / base - 1:+.0%}" if base else "-"
        lines.append(f"| {r['config']} | {r['frames']} | {r['peak_bytes'] / 2**20:.0f} | {ratio} |")
    return rows, "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sam2.1_hiera_t")
    parser.add_argument("--image-size", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=12, help="frames per speed run")
    parser.add_argument("--objects", default="1,4,16")
    parser.add_argument("--lengths", default="16,400", help="video lengths of the memory runs")
    parser.add_argument("--keep", type=float, default=0.3)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled speed runs")
    parser.add_argument("--out", type=Path, default=BUILD_DIR / "gpu_check")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device on this machine; nothing to check (exit 0)")
        return 0
    import sam2

    from fsam2lib import bench

    cuda = args.device.startswith("cuda")
    report = Report(
        args.out,
        {
            "date": date.today().isoformat(),
            "device_name": torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu",
            "torch": torch.__version__,
            "sam2": getattr(sam2, "__version__", "1.1.0"),
            "python": platform.python_version(),
            "model": args.model,
            "image_size": args.image_size,
            "command": "python -m fsam2lib.bench.gpu_check "
            + " ".join(argv if argv is not None else sys.argv[1:]),
        },
    )
    started = time.perf_counter()
    exact = {
        prec: max_logit_difference(args.model, args.device, args.image_size, bf16=prec == "bf16")
        for prec in ("fp32", "bf16")
    }
    ok = exact["fp32"] <= EXACT_TOLERANCE
    report.add(
        "exactness",
        {"max_logit_difference": exact, "fp32_exact": ok},
        "## Exactness (keep 1.0 against stock)\n\n| precision | max abs logit difference |\n"
        "|---|---|\n"
        + "".join(f"| {p} | {d:.2e} |\n" for p, d in exact.items())
        + f"\nfp32 within {EXACT_TOLERANCE:g}: {'yes' if ok else 'NO'}\n",
    )
    spec = bench.ModelSpec(
        args.model, weights="random", image_size=args.image_size, device=args.device
    )
    for compiled in (False,) if args.no_compile else (False, True):
        result = bench.run_efficiency(
            spec,
            keep=(1.0, args.keep),
            frames=args.frames,
            repeats=1,
            bf16=True,
            objects=args.objects,
            compile=compiled,
            isolate=False,  # one process: compiled graphs and CUDA plans are built once
        )
        name = "compiled" if compiled else "eager"
        rows, table = _speed_table(
            result,
            f"Speed, {name} (memory attention and router {'compiled' if compiled else 'eager'})",
        )
        report.add(f"speed_{name}", rows, table)
    memory = bench.run_memory(
        spec,
        keep=args.keep,
        lengths=args.lengths,
        configs=("stock", "stock+lean", "pruned+lean"),
        bf16=True,
    )
    rows, table = _memory_table(memory)
    report.add("memory", rows, table)
    print(f"gpu_check: {time.perf_counter() - started:.0f} s; results in {args.out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
