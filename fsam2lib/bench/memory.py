"""Memory against video length, as a user meets it: a JPEG folder opened with
``init_state(video_path=...)``, one object prompted with its first-frame mask, propagated.

Configurations (``MEMORY_CONFIGS``):

* ``stock``: stock SAM2 (strategy "none") with stock storage (``StatePolicy.stock()``);
* ``pruned``: the router at ``keep`` on queries and memory, stock storage;
* ``pruned+lean``: the same pruning with the lean state policy (compact memory bank, bounded
  state, streamed frames) -- what ``build_predictor`` gives by default;
* ``stock+lean``: stock SAM2 with the lean policy (what the policy alone saves).

Each (configuration, length) runs in a fresh process (``isolate``), so its peak is its own.
The working set is the run's peak RSS minus the RSS after the model was loaded (Linux resets
the peak first); CUDA runs report ``torch.cuda.max_memory_allocated`` the same way. Growth per
frame is the least-squares slope of the working set over video lengths.
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
    parse_ratios,
    parse_strategies,
    result_header,
)
from fsam2lib.pruning.config import PruningConfig

#: name -> (pruned?, state policy)
MEMORY_CONFIGS = {
    "stock": (False, "stock"),
    "pruned": (True, "stock"),
    "pruned+lean": (True, "lean"),
    "stock+lean": (False, "lean"),
}
# stock, what the lean policy alone saves, and pruning on top: pruning's own share is plain
DEFAULT_CONFIGS = ("stock", "stock+lean", "pruned+lean")
#: A 480p frame, DAVIS's size and the issue's: frames are resized to the model's input.
FRAME_SIZE = (480, 854)


def run_memory(
    spec: ModelSpec,
    *,
    keep: float = 0.3,
    memory_keep: float | None = None,
    strategy: str = "router",
    lengths: Sequence[int] | str = (16, 64, 256),
    configs: Sequence[str] | str = DEFAULT_CONFIGS,
    frame_size: tuple[int, int] = FRAME_SIZE,
    trace_every: int | None = None,
    bf16: bool = False,
    threads: int | None = None,
    isolate: bool = True,
    quick: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Working set, stored state and their growth with video length, per configuration.

    ``lengths``: video lengths in frames (each a separate video and run); ``quick``: at most
    two lengths of at most 12 frames. ``trace_every``: also sample RSS and state bytes every
    that many frames of the longest video. ``bf16``, ``threads``, ``isolate`` (in-memory
    predictor or router: ``isolate=False`` only, and peaks are then not measurable), ``seed``:
    as :func:`~fsam2lib.bench.run_efficiency`.
    """
    (keep,) = parse_ratios([keep])
    if memory_keep is not None:
        (memory_keep,) = parse_ratios([memory_keep])
    (strategy,) = parse_strategies([strategy], ACCURACY_STRATEGIES)
    lengths = _parse_lengths(lengths)
    configs = _parse_configs(configs)
    check_positive("trace_every", trace_every)
    if quick:
        lengths = sorted({min(n, 12) for n in lengths})[:2]
    pruning = PruningConfig(keep_ratio=keep, memory_keep_ratio=memory_keep, strategy=strategy)
    rows, info, videos = [], None, {}
    jobs = [(n, c) for n in lengths for c in configs]
    bar = tqdm(jobs, desc="memory", disable=not progress)
    for length in lengths:
        video = cost_video(spec.input_size(), length, seed, size=frame_size)
        videos[length] = prompt_note(video)
        with Runner(spec, (strategy,), video, isolate, seed, bf16, threads, jpeg=True) as runner:
            for name in configs:
                pruned, policy = MEMORY_CONFIGS[name]
                config = pruning if pruned else PruningConfig(strategy="none")
                trace = trace_every if length == max(lengths) else None
                result = runner.run(config, trace, policy)
                info = info or result["info"]
                rows.append(_row(name, policy, config, length, result["run"]))
                bar.update()
    bar.close()
    header = result_header(
        "memory",
        info,
        lengths=lengths,
        frame_size=list(frame_size),
        keep_ratio=keep,
        memory_keep_ratio=pruning.memory_ratio,
        strategy=strategy,
        isolated=isolate,
        quick=quick,
        seed=seed,
        video=videos[max(lengths)],
    )
    header["memory_note"] = (
        "working set = peak RSS of the run minus RSS after the model was loaded; stored state = "
        "tensor bytes the inference state holds at the end. Stock SAM2 keeps every frame as "
        "float32 and every frame's output; the lean policy stores pruned memory compactly, "
        "releases outputs SAM2 can no longer read and decodes frames as they are needed."
    )
    return {**header, "rows": rows, "summary": _summary(rows, configs)}


def _parse_lengths(lengths: Sequence[int] | str) -> list[int]:
    if isinstance(lengths, str):
        try:
            lengths = [int(x) for x in lengths.split(",") if x.strip()]
        except ValueError as error:
            raise ValueError(f"lengths must be integers such as 16,64,256: {error}") from None
    lengths = sorted(set(lengths))
    if not lengths:
        raise ValueError("lengths must name at least one video length")
    for n in lengths:
        if isinstance(n, bool) or not isinstance(n, int) or n < 2:
            raise ValueError(f"every video length must be an integer >= 2, got {n!r}")
    return lengths


def _parse_configs(configs: Sequence[str] | str) -> list[str]:
    names = [c.strip() for c in configs.split(",")] if isinstance(configs, str) else list(configs)
    bad = [c for c in names if c not in MEMORY_CONFIGS]
    if bad or not names:
        raise ValueError(f"configs must be names from {list(MEMORY_CONFIGS)}, got {names!r}")
    return list(dict.fromkeys(names))


def _row(name: str, policy: str, config: PruningConfig, length: int, run: dict) -> dict:
    peak, base = run["peak_rss_bytes"], run["baseline_rss_bytes"]
    cuda_peak, cuda_base = run["peak_cuda_bytes"], run["baseline_cuda_bytes"]
    state = run["state_bytes_end"]
    return {
        "config": name,
        "policy": policy,
        "strategy": config.strategy,
        "keep_ratio": config.keep_ratio,
        "frames": length,
        "baseline_rss_bytes": base,
        "peak_rss_bytes": peak,
        "working_set_bytes": None if peak is None or base is None else peak - base,
        "peak_rss_is_run_only": run["peak_rss_is_run_only"],
        "cuda_working_set_bytes": None if cuda_peak is None else cuda_peak - cuda_base,
        "state_bytes": state,
        "stored_bank_bytes": run["stored_bank_bytes"],
        "fill_bytes": run["fill_bytes"],
        "stored_outputs": run["stored_outputs"],
        "seconds_per_frame": float(np.median([f["seconds"] for f in run["frames"]])),
        "trace": run["trace"],
    }


def _summary(rows: list[dict], configs: list[str]) -> dict:
    """Per configuration: growth per frame (slope over lengths) and ratios to stock."""
    out = {}
    for name in configs:
        mine = sorted((r for r in rows if r["config"] == name), key=lambda r: r["frames"])
        out[name] = {
            "working_set_growth_bytes_per_frame": _slope(mine, "working_set_bytes"),
            "cuda_growth_bytes_per_frame": _slope(mine, "cuda_working_set_bytes"),
            "state_growth_bytes_per_frame": _slope(mine, lambda r: r["state_bytes"]["total"]),
        }
    if "stock" not in configs:
        return out
    stock = {r["frames"]: r for r in rows if r["config"] == "stock"}
    for name in configs:
        mine = {r["frames"]: r for r in rows if r["config"] == name}
        out[name]["vs_stock"] = {
            n: {
                "working_set": _ratio(mine[n]["working_set_bytes"], stock[n]["working_set_bytes"]),
                "stored_bank": _ratio(mine[n]["stored_bank_bytes"], stock[n]["stored_bank_bytes"]),
                "stored_state": _ratio(
                    mine[n]["state_bytes"]["total"], stock[n]["state_bytes"]["total"]
                ),
            }
            for n in sorted(mine)
        }
        out[name]["growth_vs_stock"] = _ratio(
            out[name]["working_set_growth_bytes_per_frame"],
            out["stock"]["working_set_growth_bytes_per_frame"],
        )
    return out


def _slope(rows: list[dict], key) -> float | None:
    get = key if callable(key) else (lambda r: r[key])
    points = [(r["frames"], get(r)) for r in rows if get(r) is not None]
    if len(points) < 2:
        return None
    xs, ys = np.asarray(points, float).T
    return float(np.polyfit(xs, ys, 1)[0])


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b
