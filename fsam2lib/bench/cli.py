"""The benchmark command line: one subcommand per result kind, and ``compare``.

    python -m fsam2lib.bench efficiency --model sam2.1_hiera_t --weights random \\
        --image-size 1024 --frames 16 --keep 1.0,0.5,0.3,0.2 [--strategy router] \\
        [--device cuda] [--bf16] [--repeats 3] [--quick] --json out.json
    python -m fsam2lib.bench accuracy --model micro --dataset synthetic:val:20 \\
        --keep 1.0,0.5,0.3,0.2,0.1 --strategies router,random,grid,mask_prior,text_only --json acc.json
    python -m fsam2lib.bench ablation --model micro --dataset DIR --keep 0.3 --json abl.json
    python -m fsam2lib.bench accuracy ... --executor ray [--address ray://HOST:10001]
    python -m fsam2lib.bench memory --model sam2.1_hiera_t --weights random --image-size 512 \
        --lengths 16,100,400 --keep 0.3 --json mem.json
    python -m fsam2lib.bench compare previous.json current.json

Every run prints a table and, with ``--json``, writes the result and its plots (PNG, next to
the JSON); ``--compare previous.json`` prints the change of every figure against an earlier run.
The hidden ``_worker`` subcommand is one isolated measurement (:mod:`fsam2lib.bench.runner`).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from fsam2lib.bench.accuracy import run_ablation, run_accuracy, run_text_effect
from fsam2lib.bench.efficiency import run_efficiency
from fsam2lib.bench.memory import DEFAULT_CONFIGS, MEMORY_CONFIGS, run_memory
from fsam2lib.bench.report import compare_results, format_comparison, format_result, write_result
from fsam2lib.bench.runner import worker_main
from fsam2lib.bench.sources import open_dataset
from fsam2lib.bench.spec import ModelSpec
from fsam2lib.executors import EXECUTORS, Executor
from fsam2lib.pruning.config import FILLS


def _add_common(p: argparse.ArgumentParser, model: str) -> None:
    p.add_argument(
        "--model", default=model, help="micro, sam2.1_hiera_t, ... (default %(default)s)"
    )
    p.add_argument("--checkpoint", default=None, help="SAM2 checkpoint file (trained weights)")
    p.add_argument(
        "--weights",
        default="trained",
        choices=("trained", "random"),
        help="random: seeded random weights, for cost only (default %(default)s)",
    )
    p.add_argument("--image-size", type=int, default=None, help="override the input size")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--clip", default="micro", help="CLIP for text (open_clip name, or 'none'; default micro)"
    )
    p.add_argument("--clip-pretrained", default=None, help="open_clip tag or checkpoint file")
    p.add_argument("--router", default=None, help="trained router weights file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny run for CI (seconds per config)")
    p.add_argument("--json", type=Path, default=None, help="write the result (and PNG plots)")
    p.add_argument("--compare", type=Path, default=None, help="earlier result JSON to compare with")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_keep(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--keep", default=default, help="comma-separated keep ratios in (0, 1]")
    p.add_argument("--memory-keep", default="same", help="'same', one ratio, or one per keep ratio")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fsam2lib.bench",
        description="Cost and accuracy benchmarks of token pruning for SAM2.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    eff = sub.add_parser("efficiency", help="time per stage, FLOPs, memory per keep ratio")
    _add_common(eff, "sam2.1_hiera_t")
    _add_keep(eff, "1.0,0.5,0.3,0.2")
    eff.add_argument("--frames", type=int, default=16)
    eff.add_argument(
        "--objects", default="1", help="objects tracked at once, e.g. 1,4,8,16 (one row set each)"
    )
    eff.add_argument(
        "--compile",
        action="store_true",
        help="torch.compile memory attention and the router in every configuration (stock too)",
    )
    eff.add_argument("--strategy", default="router")
    eff.add_argument("--bf16", action="store_true", help="torch.autocast bfloat16")
    eff.add_argument("--repeats", type=int, default=3)
    eff.add_argument(
        "--state-policy",
        default="lean",
        choices=("lean", "stock"),
        help="what the pruned configs' states keep (the reference: always stock)",
    )
    eff.add_argument("--threads", type=int, default=None, help="torch threads per run")
    eff.add_argument(
        "--in-process", action="store_true", help="no subprocess per run (no peak RSS)"
    )

    for name, helptext in (
        ("accuracy", "J&F per strategy x keep ratio"),
        ("ablation", "cues off, fills"),
        ("text-effect", "router with and without its text cue, and the mask prior"),
    ):
        acc = sub.add_parser(name, help=helptext)
        _add_common(acc, "micro")
        acc.add_argument(
            "--dataset",
            default="synthetic:val:20",
            help="DAVIS-layout folder, synthetic:SPLIT:N or synthetic-WORLD:SPLIT:N (broad, held_out, hard)",
        )
        acc.add_argument("--split", default="val", help="ImageSets split of a dataset folder")
        acc.add_argument("--resolution", default="480p")
        acc.add_argument("--protocol", default="mask", choices=("mask", "click"))
        acc.add_argument("--max-videos", type=int, default=None)
        acc.add_argument(
            "--executor",
            default="serial",
            choices=EXECUTORS,
            help="ray: one Ray task per (video, config), local or on --address",
        )
        acc.add_argument(
            "--address", default=None, help="Ray cluster address (default: RAY_ADDRESS or local)"
        )
        acc.add_argument("--cpus-per-task", type=float, default=1.0)
        acc.add_argument("--gpus-per-task", type=float, default=0.0)
        if name == "accuracy":
            _add_keep(acc, "1.0,0.5,0.3,0.2,0.1")
            acc.add_argument("--strategies", default="router,random,grid,mask_prior,text_only")
            acc.add_argument(
                "--context", type=float, default=None, help="lattice share of each budget"
            )
            acc.add_argument(
                "--fill", default=None, choices=FILLS, help="what pruned query positions get"
            )
        elif name == "text-effect":
            acc.add_argument("--keep", default="0.3,0.1", help="comma-separated keep ratios")
            acc.add_argument("--baseline", default="mask_prior", help="strategy to compare with")
        else:
            acc.add_argument("--keep", default="0.3", help="one keep ratio")
            acc.add_argument("--memory-keep", default="same")
            acc.add_argument("--strategy", default="router")
            acc.add_argument("--fills", default=",".join(FILLS))
            acc.add_argument(
                "--contexts", default="0,0.5", help="lattice shares to compare with the default"
            )

    mem = sub.add_parser(
        "memory", help="working set and stored state vs video length: stock, pruned, lean"
    )
    _add_common(mem, "micro")
    mem.add_argument("--keep", type=float, default=0.3, help="keep ratio of the pruned configs")
    mem.add_argument("--memory-keep", default="same")
    mem.add_argument("--lengths", default="16,64,256", help="video lengths in frames")
    mem.add_argument(
        "--configs",
        default=",".join(DEFAULT_CONFIGS),
        help=f"from {','.join(MEMORY_CONFIGS)}",
    )
    mem.set_defaults(image_size=256)
    mem.add_argument("--strategy", default="router")
    mem.add_argument(
        "--trace-every", type=int, default=None, help="sample the longest video every N frames"
    )
    mem.add_argument("--bf16", action="store_true")
    mem.add_argument("--threads", type=int, default=None)
    mem.add_argument("--in-process", action="store_true")

    cmp_ = sub.add_parser("compare", help="change of every figure between two result JSONs")
    cmp_.add_argument("previous", type=Path)
    cmp_.add_argument("current", type=Path)
    cmp_.add_argument("--videos", action="store_true", help="include per-video rows")

    worker = sub.add_parser("_worker", help="internal: one isolated measurement")
    worker.add_argument("spec")
    worker.add_argument("out")
    return parser


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"result file not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def _run_command(args: argparse.Namespace) -> dict:
    spec = ModelSpec(
        model=args.model,
        checkpoint=args.checkpoint,
        weights=None if args.weights == "trained" else "random",
        image_size=args.image_size,
        device=args.device,
        clip=None if args.clip == "none" else args.clip,
        clip_pretrained=args.clip_pretrained,
        router=args.router,
    )
    common = dict(seed=args.seed, progress=not args.no_progress)
    memory_keep = getattr(args, "memory_keep", "same")
    memory_keep = None if memory_keep == "same" else memory_keep
    if args.command == "efficiency":
        return run_efficiency(
            spec,
            keep=args.keep,
            memory_keep=memory_keep,
            strategy=args.strategy,
            frames=args.frames,
            repeats=args.repeats,
            state_policy=args.state_policy,
            objects=args.objects,
            compile=args.compile,
            bf16=args.bf16,
            threads=args.threads,
            isolate=not args.in_process,
            quick=args.quick,
            **common,
        )
    if args.command == "memory":
        return run_memory(
            spec,
            keep=args.keep,
            memory_keep=None if memory_keep is None else float(memory_keep),
            strategy=args.strategy,
            lengths=args.lengths,
            configs=args.configs,
            trace_every=args.trace_every,
            bf16=args.bf16,
            threads=args.threads,
            isolate=not args.in_process,
            quick=args.quick,
            **common,
        )
    source = open_dataset(
        args.dataset, args.split, args.resolution, args.max_videos, seed=args.seed, quick=args.quick
    )
    common["executor"] = Executor(
        args.executor,
        address=args.address,
        cpus_per_task=args.cpus_per_task,
        gpus_per_task=args.gpus_per_task,
    )
    if args.command == "accuracy":
        return run_accuracy(
            spec,
            source,
            keep=args.keep,
            strategies=args.strategies,
            memory_keep=memory_keep,
            protocol=args.protocol,
            context=args.context,
            fill=args.fill,
            **common,
        )
    if args.command == "text-effect":
        return run_text_effect(
            spec,
            source,
            keep=args.keep,
            baseline=args.baseline,
            protocol=args.protocol,
            **common,
        )
    return run_ablation(
        spec,
        source,
        keep=args.keep,
        memory_keep=memory_keep,
        strategy=args.strategy,
        fills=[f.strip() for f in args.fills.split(",")],
        contexts=_parse_contexts(args.contexts),
        protocol=args.protocol,
        **common,
    )


def _parse_contexts(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise ValueError(
            f"--contexts must be comma-separated numbers in [0, 1], got {text!r}"
        ) from err
    bad = [v for v in values if not 0.0 <= v <= 1.0]
    if bad:
        raise ValueError(f"--contexts must lie in [0, 1], got {bad}")
    return values


def main(argv: list[str] | None = None) -> int:
    """Run the command line (``argv``: default ``sys.argv[1:]``); returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "_worker":
        worker_main(args.spec, args.out)
        return 0
    try:
        if args.command == "compare":
            comparison = compare_results(
                _read_json(args.previous), _read_json(args.current), args.videos
            )
            print(format_comparison(comparison))
            return 0
        previous = _read_json(args.compare) if args.compare is not None else None
        result = _run_command(args)
        words = sys.argv[1:] if argv is None else argv
        result["command"] = "python -m fsam2lib.bench " + shlex.join(words)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    print(format_result(result))
    if args.json is not None:
        for path in write_result(result, args.json):
            print(f"wrote {path}")
    if previous is not None:
        print(format_comparison(compare_results(previous, result)))
    return 0
