"""Memory against video length: process RSS, the bytes the inference state holds (by part),
and the memory tokens memory attention reads, frame by frame along a long video.

Why a separate run: SAM2 reads a bounded memory (``num_maskmem`` frames and up to
``max_obj_ptrs_in_encoder`` pointers), but keeps every frame's output in its inference state
for the caller, so what it stores grows with the video while what it reads does not. The run
therefore follows each configuration twice, with SAM2's default (every output kept) and with
frames outside the memory window released, as a streaming application would.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm.auto import tqdm

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


def run_memory(
    spec: ModelSpec,
    *,
    keep: Sequence[float] | str = (1.0, 0.3),
    memory_keep: Sequence[float] | str | None = None,
    strategy: str = "router",
    release: Sequence[bool] = (False, True),
    frames: int = 200,
    trace_every: int | None = None,
    bf16: bool = False,
    threads: int | None = None,
    isolate: bool = True,
    quick: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Memory as a long video advances, per keep ratio, with SAM2's default (every output
    kept: ``release=False``) and with old frames released (``release=True``).

    Each series records, every ``trace_every`` frames (default: 50 samples): RSS, the
    inference state's tensor bytes by part, and the memory tokens memory attention read.
    ``quick``: at most 30 frames. ``bf16``, ``threads``, ``isolate`` (in-memory predictor or
    router: ``isolate=False`` only), ``seed``: as :func:`~fsam2lib.bench.run_efficiency`.
    """
    keeps = parse_ratios(keep)
    mem_keeps = parse_memory_keep(memory_keep, keeps)
    (strategy,) = parse_strategies([strategy], ACCURACY_STRATEGIES)
    check_positive("frames", frames)
    check_positive("trace_every", trace_every)
    if not release or any(not isinstance(r, bool) for r in release):
        raise ValueError(f"release must be a non-empty list of booleans, got {release!r}")
    if quick:
        frames = min(frames, 30)
    trace_every = trace_every or max(1, frames // 50)
    configs = [
        PruningConfig(strategy="none")
        if k == 1.0 and m in (None, 1.0)
        else PruningConfig(keep_ratio=k, memory_keep_ratio=m, strategy=strategy)
        for k, m in zip(keeps, mem_keeps, strict=True)
    ]
    video = cost_video(spec.input_size(), frames, seed)
    series, info = [], None
    with Runner(spec, (strategy,), video, isolate, seed, bf16, threads) as runner:
        jobs = [(c, r) for r in release for c in configs]
        for config, rel in tqdm(jobs, desc="memory", disable=not progress):
            result = runner.run(config, trace_every, rel)
            info = info or result["info"]
            series.append(_series(config, rel, result["run"]))
    header = result_header(
        "memory",
        info,
        frames=frames,
        trace_every=trace_every,
        strategy=strategy,
        isolated=isolate,
        quick=quick,
        seed=seed,
        video=prompt_note(video),
    )
    header["memory_note"] = (
        "SAM2 reads at most num_maskmem memory frames and max_obj_ptrs_in_encoder pointers, so "
        "the tokens memory attention reads stay bounded; but SAM2 keeps every frame's output "
        "(dense memory features, low-res masks, object pointer) in the inference state, which "
        "grows linearly unless old frames are released (release=True). Pruning does not shrink "
        "what is stored: dense features are kept, plus kept-token indices and per-frame scores."
    )
    return {**header, "series": series}


def _series(config: PruningConfig, release: bool, run: dict) -> dict:
    trace = run["trace"]
    frames = [s["frame"] for s in trace]
    totals = [s["state_bytes"]["total"] for s in trace]
    rss = [s["rss_bytes"] for s in trace]
    return {
        "name": config_name(config) + (" release" if release else " keep-all"),
        "strategy": config.strategy,
        "keep_ratio": config.keep_ratio,
        "memory_keep_ratio": config.memory_ratio,
        "release": release,
        "frames": frames,
        "rss_bytes": rss,
        "state_bytes": totals,
        "maskmem_bytes": [s["state_bytes"]["maskmem_features"] for s in trace],
        "cuda_allocated_bytes": [s["cuda_allocated_bytes"] for s in trace],
        "attended_memory_tokens": [s["attended_memory_tokens"] for s in trace],
        "state_growth_bytes_per_frame": _slope(frames, totals),
        "rss_growth_bytes_per_frame": None if None in rss else _slope(frames, rss),
        "state_bytes_end": run["state_bytes_end"],
        "peak_rss_bytes": run["peak_rss_bytes"],
        "peak_cuda_bytes": run["peak_cuda_bytes"],
        "released_frames": run["released_frames"],
    }


def _slope(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Least-squares slope over the second half of the samples (after the bank fills)."""
    half = len(x) // 2
    xs, ys = np.asarray(x[half:], float), np.asarray(y[half:], float)
    if len(xs) < 2 or np.ptp(xs) == 0:
        return None
    return float(np.polyfit(xs, ys, 1)[0])
