"""What pruning costs in segmentation quality: J, F and J&F (DAVIS protocol,
:mod:`fsam2lib.metrics`) per strategy and keep ratio, and ablations of the router's cues, the
fill of pruned positions and the lattice share, each against stock SAM2.

Every configuration runs on every video, configurations interleaved per video (so that all
of them see the same machine state), with one predictor in this process; the reference
(stock SAM2) runs once per video and every configuration reports its drop against it. Object
texts come from the dataset, or from the predictor's describer, and this is decided before
any video runs, so that a missing text fails at once rather than after an hour.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

from fsam2lib.bench.runner import quiet_sam2
from fsam2lib.bench.sources import VideoSource, open_dataset
from fsam2lib.bench.spec import (
    ACCURACY_STRATEGIES,
    ModelSpec,
    open_predictor,
    parse_memory_keep,
    parse_ratios,
    parse_strategies,
    predictor_info,
    result_header,
)
from fsam2lib.executors import Executor
from fsam2lib.pruning.config import CUES, FILLS, PruningConfig


def run_accuracy(
    spec: ModelSpec,
    dataset: str | VideoSource = "synthetic:val:20",
    *,
    keep: Sequence[float] | str = (1.0, 0.5, 0.3, 0.2, 0.1),
    strategies: Sequence[str] | str = ("router", "random", "grid", "mask_prior", "text_only"),
    memory_keep: Sequence[float] | str | None = None,
    protocol: str = "mask",
    context: float | None = None,
    fill: str | None = None,
    seed: int = 0,
    progress: bool = False,
    executor: Executor | str = "serial",
) -> dict:
    """J, F, J&F per video and mean for every strategy x keep ratio, and the drop of each
    against stock SAM2 (the reference, run once).

    dataset: a name for :func:`~fsam2lib.bench.open_dataset` (opened with its defaults), or a
    source it returned (split, resolution, number of videos and frames, ``quick``). Runs in
    this process, so ``spec`` may hold an in-memory predictor or router. ``context`` /
    ``fill``: :attr:`PruningConfig.context` / :attr:`PruningConfig.fill` of every pruned run
    (None: the config's default). ``seed``: synthetic videos, and an untrained router.
    ``executor``: "serial" (one predictor in this process), "ray" (one Ray task per video and
    config; a local Ray, or a cluster by ``Executor(address=...)`` / ``RAY_ADDRESS``) or an
    :class:`~fsam2lib.executors.Executor`; the figures are the same either way.
    """
    from fsam2lib.evaluate import PROTOCOLS

    executor = Executor.named(executor)
    keeps = parse_ratios(keep)
    mem_keeps = parse_memory_keep(memory_keep, keeps)
    strategies = parse_strategies(strategies, ACCURACY_STRATEGIES)
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    if fill is not None and fill not in FILLS:
        raise ValueError(f"unknown fill {fill!r}; choose from {', '.join(FILLS)}")
    extra = {} if context is None else {"context": context}
    if fill is not None:
        extra["fill"] = fill
    configs = [("reference", PruningConfig(strategy="none"))]
    for strategy in strategies:
        for k, m in zip(keeps, mem_keeps, strict=True):
            if k == 1.0 and m in (None, 1.0):
                continue  # keep 1.0 is the reference, run once
            name = f"{strategy}@{k:.2f}" + ("" if m is None else f"/mem{m:.2f}")
            config = PruningConfig(keep_ratio=k, memory_keep_ratio=m, strategy=strategy, **extra)
            configs.append((name, config))
    return _evaluate(
        "accuracy", spec, dataset, strategies, configs, protocol, seed, progress, executor
    )


def run_ablation(
    spec: ModelSpec,
    dataset: str | VideoSource = "synthetic:val:20",
    *,
    keep: float | str = 0.3,
    memory_keep: float | str | None = None,
    strategy: str = "router",
    fills: Sequence[str] = FILLS,
    contexts: Sequence[float] = (0.0, 0.5),
    protocol: str = "mask",
    seed: int = 0,
    progress: bool = False,
    executor: Executor | str = "serial",
) -> dict:
    """At one keep ratio: ``strategy`` as configured, (router only) with each cue off, with
    each other fill of pruned query positions and each other lattice share ``contexts``
    (:attr:`PruningConfig.context`); plus the reference. ``dataset``, ``spec``, ``seed``: as
    :func:`run_accuracy`, and so is ``executor``."""
    executor = Executor.named(executor)
    (keep,) = parse_ratios([keep])
    mem = None if memory_keep is None else parse_ratios([memory_keep], "memory keep ratio")[0]
    (strategy,) = parse_strategies([strategy], ACCURACY_STRATEGIES)
    bad = [f for f in fills if f not in FILLS]
    if bad:
        raise ValueError(f"unknown fill {bad}; choose from {', '.join(FILLS)}")
    base = PruningConfig(keep_ratio=keep, memory_keep_ratio=mem, strategy=strategy)
    configs = [("reference", PruningConfig(strategy="none")), (f"{strategy} all cues", base)]
    if strategy == "router":  # the only strategy that combines cues
        configs += [
            (
                f"router without {cue}",
                dataclasses.replace(base, cues=tuple(c for c in CUES if c != cue)),
            )
            for cue in CUES
        ]
    configs += [
        (f"{strategy} fill={fill}", dataclasses.replace(base, fill=fill))
        for fill in fills
        if fill != base.fill
    ]
    configs += [
        (f"{strategy} context={c:g}", dataclasses.replace(base, context=c))
        for c in contexts
        if c != base.context
    ]
    settings = dict(keep_ratio=keep, memory_keep_ratio=base.memory_ratio, default_fill=base.fill)
    return _evaluate(
        "ablation",
        spec,
        dataset,
        [strategy],
        configs,
        protocol,
        seed,
        progress,
        executor,
        **settings,
    )


def run_text_effect(
    spec: ModelSpec,
    dataset: str | VideoSource = "synthetic:val:20",
    *,
    keep: Sequence[float] | str = (0.3, 0.1),
    baseline: str = "mask_prior",
    protocol: str = "mask",
    seed: int = 0,
    progress: bool = False,
    executor: Executor | str = "serial",
) -> dict:
    """What the description is worth: at each keep ratio the router with all cues, the same
    router with its text cue removed, and ``baseline`` (the previous-mask prior: no router at
    all), beside unpruned SAM2. ``contrasts`` holds the paired differences over videos:
    the *text effect* (router - router without text, with the share of the no-text router's
    gap to unpruned SAM2 it recovers) and router - baseline. Other arguments: as
    :func:`run_accuracy`."""
    executor = Executor.named(executor)
    keeps = parse_ratios(keep)
    (baseline,) = parse_strategies([baseline], ACCURACY_STRATEGIES)
    no_text = tuple(c for c in CUES if c != "text")
    configs = [("reference", PruningConfig(strategy="none"))]
    contrasts = []
    for k in keeps:
        names = (f"router@{k:.2f}", f"router without text@{k:.2f}", f"{baseline}@{k:.2f}")
        configs += [
            (names[0], PruningConfig(keep_ratio=k)),
            (names[1], PruningConfig(keep_ratio=k, cues=no_text)),
            (names[2], PruningConfig(keep_ratio=k, strategy=baseline)),
        ]
        contrasts += [
            (f"text effect@{k:.2f}", names[0], names[1]),
            (f"router - {baseline}@{k:.2f}", names[0], names[2]),
        ]
    return _evaluate(
        "text_effect",
        spec,
        dataset,
        ["router", baseline],
        configs,
        protocol,
        seed,
        progress,
        executor,
        contrasts=contrasts,
    )


def text_setup(predictor, source: VideoSource, strategies: Sequence[str]) -> dict:
    """How objects get text, checked before any video runs: ``source`` (for the result) and
    ``use_dataset_texts``."""
    if source.has_texts:
        if predictor.text_encoder is None:
            raise ValueError(
                "the dataset has descriptions but the predictor has no text encoder; attach one "
                "(build_predictor does for the micro model) or remove descriptions.json"
            )
        return {"source": "dataset descriptions", "use_dataset_texts": True}
    if predictor.describe_object is not None:
        return {"source": "automatic (predictor.describe_object)", "use_dataset_texts": False}
    needs_text = [s for s in strategies if s == "text_only"]
    if needs_text:
        raise ValueError(
            "strategy 'text_only' needs object texts, but the dataset has no descriptions.json "
            "and the predictor no describe_object: drop text_only from --strategies"
        )
    return {
        "source": "none: no descriptions, the router's text cue is off",
        "use_dataset_texts": False,
    }


@dataclass(frozen=True)
class _Sweep:
    """What every run of a sweep shares (sent to each Ray task)."""

    spec: ModelSpec
    strategies: tuple[str, ...]
    protocol: str
    use_texts: bool
    seed: int


def _run_config(predictor, video, name: str, config: PruningConfig, job: _Sweep) -> dict:
    """One configuration on one video: its scores, its result row, its seconds."""
    from fsam2lib.evaluate import run_video, score_run

    predictor.pruning = config
    with quiet_sam2():
        run = run_video(
            predictor, video, job.protocol, texts=video.descriptions if job.use_texts else None
        )
    score = score_run(run, video)
    row = {
        "video": video.name,
        "config": name,
        "J": score.J_mean,
        "F": score.F_mean,
        "J&F": score.JF_mean,
        "seconds_per_frame": run.seconds / video.num_frames,
        "frames": video.num_frames,
        "objects": len(score.object_ids),
    }
    return {"score": score, "row": row, "seconds": run.seconds}


_WORKER_PREDICTORS: dict[str, tuple] = {}


def _accuracy_task(
    spec: dict,
    job: _Sweep,
    source: VideoSource,
    video_name: str,
    name: str,
    config: PruningConfig,
    threads: int | None = None,
) -> dict:
    """A Ray task: one (video, config). The predictor is built once per worker process."""
    import json

    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    key = json.dumps([spec, job.strategies, job.seed], sort_keys=True)
    if key not in _WORKER_PREDICTORS:
        opened = open_predictor(ModelSpec.from_json(spec), job.strategies, job.seed)
        _WORKER_PREDICTORS[key] = (opened, opened.__enter__())
    predictor, _ = _WORKER_PREDICTORS[key][1]
    return _run_config(predictor, source.load(video_name), name, config, job)


def _evaluate(
    kind: str,
    spec: ModelSpec,
    dataset: str | VideoSource,
    strategies: Sequence[str],
    configs: list[tuple[str, PruningConfig]],
    protocol: str,
    seed: int,
    progress: bool,
    executor: Executor,
    contrasts: Sequence[tuple[str, str, str]] = (),
    **settings,
) -> dict:
    """Open the dataset and the predictor, score every config, and make the result;
    ``contrasts``: (name, config a, config b) whose paired difference a - b to report."""
    source = open_dataset(dataset, seed=seed) if isinstance(dataset, str) else dataset
    with open_predictor(spec, strategies, seed) as (predictor, carried):
        text = text_setup(predictor, source, strategies)
        job = _Sweep(spec, tuple(strategies), protocol, text["use_dataset_texts"], seed)
        summaries, rows, differences = _score_configs(
            predictor, job, source, configs, executor, progress, contrasts
        )
        info = predictor_info(predictor, {**carried, "text": text["source"]})
    header = result_header(
        kind,
        info,
        dataset=source.description,
        protocol=protocol,
        seed=seed,
        executor=executor.kind,
        **settings,
    )
    result = {**header, "reference": "reference", "configs": summaries, "videos": rows}
    return {**result, "contrasts": differences} if contrasts else result


def _score_configs(
    predictor,
    job: _Sweep,
    source: VideoSource,
    configs: list[tuple[str, PruningConfig]],
    executor: Executor,
    progress: bool,
    contrasts: Sequence[tuple[str, str, str]] = (),
) -> tuple[list[dict], list[dict], list[dict]]:
    """Run every config on every video and score each run: serially with ``predictor``
    (configs interleaved per video), or one Ray task per (video, config); then the paired
    differences ``contrasts`` asks for."""
    from fsam2lib.metrics import bootstrap_interval, paired_bootstrap_interval, summarize

    items = [(v, name, config) for v in source.names for name, config in configs]
    if executor.kind == "serial":
        done = []
        bar = tqdm(total=len(items), desc="accuracy", disable=not progress)
        for video_name in source.names:
            video = source.load(video_name)
            for name, config in configs:
                done.append(_run_config(predictor, video, name, config, job))
                bar.update()
        bar.close()
    else:
        if job.spec.in_memory:
            raise ValueError(
                "the ray executor runs each task in another process, where an in-memory "
                "predictor or router cannot go: give the router as a file, or run serially"
            )
        spec = job.spec.to_json()
        done = executor.map(
            _accuracy_task,
            [(spec, job, source, v, name, config) for v, name, config in items],
            progress=progress,
            desc="accuracy",
        )
    scores: dict[str, list] = {name: [] for name, _ in configs}
    seconds = dict.fromkeys(scores, 0.0)
    rows = [d["row"] for d in done]
    for d in done:
        scores[d["row"]["config"]].append(d["score"])
        seconds[d["row"]["config"]] += d["seconds"]
    frames = sum(r["frames"] for r in rows if r["config"] == configs[0][0])
    summaries = []
    for name, config in configs:
        summary = summarize(scores[name])
        summaries.append(
            {
                "name": name,
                "strategy": config.strategy,
                "keep_ratio": config.keep_ratio,
                "memory_keep_ratio": config.memory_ratio,
                "cues": list(config.cues),
                "fill": config.fill,
                "context": config.context,
                "J&F": summary["J&F-Mean"],
                "J": summary["J-Mean"],
                "F": summary["F-Mean"],
                "seconds_per_frame": seconds[name] / frames,
                "summary": summary,
            }
        )
    ref = summaries[0]["J&F"]
    ref_seconds = summaries[0]["seconds_per_frame"]
    ref_scores = scores[configs[0][0]]
    for row in summaries:
        row["jf_drop"] = ref - row["J&F"]
        row["speedup"] = ref_seconds / row["seconds_per_frame"]
        # 95 % bootstrap intervals over videos; the drop's is paired (same videos resampled)
        row["ci95"] = list(bootstrap_interval(scores[row["name"]]))
        row["jf_drop_ci95"] = list(paired_bootstrap_interval(ref_scores, scores[row["name"]]))
    ref_by_video = {r["video"]: r["J&F"] for r in rows if r["config"] == configs[0][0]}
    for row in rows:
        row["jf_drop"] = ref_by_video[row["video"]] - row["J&F"]
    by_name = {row["name"]: row for row in summaries}
    differences = []
    for name, a, b in contrasts:
        difference = {
            "name": name,
            "a": a,
            "b": b,
            "difference": by_name[a]["J&F"] - by_name[b]["J&F"],
            "ci95": list(paired_bootstrap_interval(scores[a], scores[b])),
        }
        gap = ref - by_name[b]["J&F"]  # what b lost against unpruned SAM2
        difference["b_drop"] = gap
        difference["recovered"] = difference["difference"] / gap if gap > 0 else None
        differences.append(difference)
    return summaries, rows, differences
