"""Cost of pruning: steady-state time per frame and per stage, memory-attention tokens and
FLOPs, memory-bank bytes and peak memory, per keep ratio against stock SAM2.

How, and why so: one synthetic video (:func:`~fsam2lib.bench.cost_video` at the model's input
size, the first target prompted with its first-frame mask) runs under stock SAM2 (strategy
"none", keep 1.0: the reference) and each keep ratio. Configurations alternate within each
repeat (order rotated between repeats), so that a machine getting slower or faster during the
run does not favour one of them; each (repeat, configuration) runs in a fresh subprocess, so
that its peak RSS belongs to it alone. Times are steady-state: frames with a full memory bank
(index >= ``num_maskmem``), since memory attention grows until then; speedups are per-repeat
ratios against the reference of the same repeat, then the median. With random weights the
masks mean nothing; costs are still real, except that where tokens go (not how many) depends
on the masks.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from tqdm.auto import tqdm

from fsam2lib.bench.profiling import STAGES, MemoryAttentionDims, amdahl, memory_attention_flops
from fsam2lib.bench.runner import Runner, prompt_note
from fsam2lib.bench.sources import cost_video
from fsam2lib.bench.spec import (
    ACCURACY_STRATEGIES,
    ModelSpec,
    check_positive,
    config_name,
    parse_memory_keep,
    parse_ratios,
    parse_strategies,
    result_header,
)
from fsam2lib.pruning.config import PruningConfig
from fsam2lib.pruning.selection import num_kept


def run_efficiency(
    spec: ModelSpec,
    *,
    keep: Sequence[float] | str = (1.0, 0.5, 0.3, 0.2),
    memory_keep: Sequence[float] | str | None = None,
    strategy: str = "router",
    frames: int = 16,
    repeats: int = 3,
    bf16: bool = False,
    threads: int | None = None,
    isolate: bool = True,
    quick: bool = False,
    seed: int = 0,
    progress: bool = False,
    state_policy: str = "lean",
    objects: Sequence[int] | str = (1,),
    compile: bool = False,
) -> dict:
    """Steady-state cost per keep ratio against stock SAM2, measured interleaved.

    The reference (stock SAM2: strategy "none", keep 1.0) is always run; keep ratios below 1
    run with ``strategy``. ``memory_keep``: see :func:`~fsam2lib.bench.spec.parse_memory_keep`.
    ``frames``: video length (more than ``num_maskmem``). ``bf16``: torch.autocast bfloat16.
    ``threads``: torch threads per run. ``isolate``: each (repeat, config) in a fresh
    subprocess (peak RSS per config); otherwise one process with one predictor (peak RSS not
    reported) — the only choice for a spec with an in-memory predictor or router
    (``isolate=True`` raises ValueError for those). ``quick``: at most 9 frames, 1 repeat.
    ``seed``: the video, and an untrained router. ``state_policy``: what the pruned
    configurations' inference states keep ("lean", the predictor's default, or "stock"); the
    reference always runs with stock storage, as Meta's predictor does. ``objects``: numbers
    of objects tracked at once (e.g. "1,4,8,16"); every configuration runs at each count
    against the stock reference of the same count, and each row carries its ``bound``:
    the speedup if memory attention and the router cost nothing (the reference's frame less
    its memory-attention time: the Amdahl ceiling) and ``speedup_of_bound``. sam2 1.1.0 runs memory attention, the decoder and the memory
    encoder once per object and the encoder once per frame, so the bound grows with objects.
    ``compile``: every configuration, stock included, with memory attention (and the router)
    compiled by ``torch.compile`` in its default mode
    (:meth:`~fsam2lib.predictor.PrunedSAM2VideoPredictor.compile_pruning`), after an untimed
    warm-up run: compiled against compiled. Returns the result (schema: :mod:`fsam2lib.bench`).
    """
    if state_policy not in ("lean", "stock"):
        raise ValueError(f"state_policy must be 'lean' or 'stock', got {state_policy!r}")
    keeps = parse_ratios(keep)
    mem_keeps = parse_memory_keep(memory_keep, keeps)
    (strategy,) = parse_strategies([strategy], ACCURACY_STRATEGIES)
    check_positive("repeats", repeats)
    check_positive("frames", frames)
    check_positive("threads", threads)
    counts = parse_counts(objects)
    if quick:
        frames, repeats = min(frames, 9), 1
    configs = [PruningConfig(strategy="none")] + [
        PruningConfig(keep_ratio=k, memory_keep_ratio=m, strategy=strategy)
        for k, m in zip(keeps, mem_keeps, strict=True)
        if not (k == 1.0 and m in (None, 1.0))
    ]
    video = cost_video(spec.input_size(), frames, seed)
    runs: dict[int, dict[str, list[dict]]] = {
        n: {config_name(c): [] for c in configs} for n in counts
    }
    info = None
    jobs = [(n, i) for n in counts for i in range(len(configs))]
    with Runner(spec, (strategy,), video, isolate, seed, bf16, threads) as runner:
        bar = tqdm(total=repeats * len(jobs), desc="efficiency", disable=not progress)
        for r in range(repeats):
            for n, i in jobs[r % len(jobs) :] + jobs[: r % len(jobs)]:
                policy = "stock" if i == 0 else state_policy
                result = runner.run(configs[i], policy=policy, objects=n, compile=compile)
                info = info or _check_steady(result["info"], frames)
                runs[n][config_name(configs[i])].append(result["run"])
                bar.update()
        bar.close()
    steady_from = info["num_maskmem"]
    header = result_header(
        "efficiency",
        info,
        frames=frames,
        steady_frames=[steady_from, frames - 1],
        strategy=strategy,
        repeats=repeats,
        state_policy=state_policy,
        isolated=isolate,
        quick=quick,
        seed=seed,
        video=prompt_note(video),
        objects=list(counts),
        compiled=compile,
    )
    rows = []
    for n in counts:
        for row in _summarise(configs, runs[n], info):
            row["objects"] = n
            if counts != [1]:
                row["name"] = f"{row['name']} x{n} obj"
            rows.append(row)
    return {**header, "reference": rows[0]["name"], "configs": rows}


def parse_counts(objects: Sequence[int] | str) -> list[int]:
    """Object counts from "1,4,8" or a sequence: distinct integers >= 1, in the given order."""
    items = objects.split(",") if isinstance(objects, str) else list(objects)
    try:
        counts = [int(str(x).strip()) for x in items]
    except ValueError:
        raise ValueError(f"objects must be integers >= 1, e.g. '1,4,8', got {objects!r}") from None
    if not counts or min(counts) < 1 or len(set(counts)) != len(counts):
        raise ValueError(f"objects must be distinct integers >= 1, got {objects!r}")
    return counts


def _check_steady(info: dict, frames: int) -> dict:
    if frames <= info["num_maskmem"]:
        raise ValueError(
            f"frames={frames} leaves no frame with a full memory bank (num_maskmem="
            f"{info['num_maskmem']}); use at least {info['num_maskmem'] + 1} frames"
        )
    return info


def _steady(run: dict, steady_from: int) -> list[dict]:
    return [f for f in run["frames"] if f["frame"] >= steady_from]


def _median(values: Sequence[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return float(statistics.median(values)) if values else None


def _summarise(configs: list[PruningConfig], runs: dict[str, list[dict]], info: dict) -> list[dict]:
    dims = MemoryAttentionDims(**info["memory_attention"])
    steady_from, (h, w) = info["num_maskmem"], info["grid"]
    hw = h * w

    def per_run(name: str) -> list[dict]:
        out = []
        for run in runs[name]:
            steady = _steady(run, steady_from)
            if any(f["tokens"] is None for f in steady):
                raise RuntimeError(f"{name}: a steady-state frame ran no memory attention")
            seconds = statistics.fmean(f["seconds"] for f in steady)
            stages = {s: statistics.fmean(f["stages"][s] for f in steady) for s in STAGES}
            out.append({"seconds": seconds, "stages": stages})
        return out

    ref = per_run(config_name(configs[0]))
    share = _median([r["stages"]["memory_attention"] / r["seconds"] for r in ref])
    rows = []
    for config in configs:
        name = config_name(config)
        mine = per_run(name)
        speedups = [a["seconds"] / b["seconds"] for a, b in zip(ref, mine, strict=True)]
        ma_speedups = [
            a["stages"]["memory_attention"] / b["stages"]["memory_attention"]
            for a, b in zip(ref, mine, strict=True)
        ]
        seconds = _median([r["seconds"] for r in mine])
        stages = {s: _median([r["stages"][s] for r in mine]) for s in STAGES}
        tokens = [f["tokens"] for f in _steady(runs[name][0], steady_from)]
        ma_speedup = _median(ma_speedups)
        law = amdahl(share, ma_speedup)
        rows.append(
            {
                "name": name,
                "strategy": config.strategy,
                "keep_ratio": config.keep_ratio,
                "memory_keep_ratio": config.memory_ratio,
                "seconds_per_frame": seconds,
                "frames_per_second": 1.0 / seconds,
                "speedup": _median(speedups),
                "stage_seconds": stages,
                "stage_share": {s: v / seconds for s, v in stages.items()},
                "memory_attention_speedup": ma_speedup,
                "amdahl": law,
                # memory attention and router free: the stock frame less its memory attention
                "bound": law["ceiling"],
                "speedup_of_bound": _median(speedups) / law["ceiling"],
                "tokens": _token_summary(config, tokens, hw),
                **_flops_summary(dims, tokens, hw),
                "memory_bank_bytes": _bank_bytes(
                    tokens[-1], hw, info["mem_dim"], runs[name][0], config
                ),
                "baseline_rss_bytes": _median([r["baseline_rss_bytes"] for r in runs[name]]),
                "peak_rss_bytes": _median([r["peak_rss_bytes"] for r in runs[name]]),
                "peak_cuda_bytes": _median([r["peak_cuda_bytes"] for r in runs[name]]),
                "state_bytes_end": runs[name][0]["state_bytes_end"],
                "runs": {
                    "seconds_per_frame": [r["seconds"] for r in mine],
                    "speedup": speedups,
                    "memory_attention_speedup": ma_speedups,
                    "peak_rss_bytes": [r["peak_rss_bytes"] for r in runs[name]],
                    "frames": [
                        [
                            {"frame": f["frame"], "seconds": f["seconds"], **f["stages"]}
                            for f in r["frames"]
                        ]
                        for r in runs[name]
                    ],
                },
            }
        )
    return rows


def _token_summary(config: PruningConfig, tokens: list[dict], hw: int) -> dict:
    """Tokens memory attention read on the last steady frame (constant over steady frames but
    for the pointers, whose range is given), and what the config asks for."""
    last = tokens[-1]
    stock = config.strategy == "none"
    return {
        "query_kept": last["query"],
        "query_total": hw,
        "query_expected": hw if stock else num_kept(hw, config.keep_ratio, config.min_tokens),
        "memory_frames": len(last["memory_per_frame"]),
        "memory_kept_per_frame": last["memory_per_frame"],
        "memory_expected_per_frame": hw
        if stock
        else num_kept(hw, config.memory_ratio, config.min_tokens),
        "pointer_tokens": [min(t["pointers"] for t in tokens), last["pointers"]],
    }


def _flops_summary(dims: MemoryAttentionDims, tokens: list[dict], hw: int) -> dict:
    """Analytic memory-attention FLOPs per steady frame (mean), from the tokens really read,
    and their ratio to the dense call with the same memory frames and pointers."""
    flops = [
        memory_attention_flops(dims, t["query"], t["memory_per_frame"], t["pointers"])
        for t in tokens
    ]
    dense = [
        memory_attention_flops(dims, hw, [hw] * len(t["memory_per_frame"]), t["pointers"])
        for t in tokens
    ]
    return {
        "memory_attention_flops": {
            part: statistics.fmean(f[part] for f in flops) for part in flops[0]
        },
        "flops_vs_dense": statistics.fmean(
            f["total"] / d["total"] for f, d in zip(flops, dense, strict=True)
        ),
    }


def _bank_bytes(tokens: dict, hw: int, mem_dim: int, run: dict, config: PruningConfig) -> dict:
    """The memory bank one steady frame attends to: dense, kept, and what the inference state
    really stores for it (measured: compact under the lean state policy -- kept features
    plus int32 indices -- dense under stock storage -- with the conditioned features kept
    as the fill, also shown apart as ``fill``)."""
    elem = run["stored_memory_element_bytes"]
    frames = len(tokens["memory_per_frame"])
    kept = sum(tokens["memory_per_frame"])
    return {
        "frames": frames,
        "dense": frames * hw * mem_dim * elem,
        "kept": kept * mem_dim * elem,
        "stored": run["bank_bytes"],
        "fill": run["fill_bytes"],
        "element_bytes": elem,
    }
