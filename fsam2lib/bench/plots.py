"""Figures of benchmark results, built as ``matplotlib.figure.Figure`` objects.

No pyplot and no backend choice here: a figure touches no global state, so the caller's
backend decides how it is shown (``display(fig)`` inline in a notebook) or saved
(:func:`save_plots`, used by the CLI).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fsam2lib.bench.profiling import MIB, STAGES

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _figure(ncols: int = 1, width: float = 6.4) -> tuple[Figure, np.ndarray]:
    # imported here, not at the top: benchmark workers import this package, never plot, and
    # measure their own memory
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, 4.2), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, np.atleast_1d(axes)


def _subtitle(result: dict) -> str:
    return f"{result['weights_label']}, {result['device']}, {result['image_size']} px"


def plot_stage_times(result: dict) -> Figure:
    """Stacked bars: steady-state seconds per frame by stage, per keep ratio."""
    if result.get("kind") != "efficiency":
        raise ValueError("plot_stage_times needs an efficiency result")
    fig, (ax,) = _figure()
    configs = result["configs"]
    x = np.arange(len(configs))
    bottom = np.zeros(len(configs))
    for stage in STAGES:
        values = np.array([c["stage_seconds"][stage] for c in configs]) * 1000
        ax.bar(x, values, bottom=bottom, label=stage.replace("_", " "))
        bottom += values
    for xi, c, top in zip(x, configs, bottom, strict=True):
        ax.annotate(f"{c['speedup']:.2f}x", (xi, top), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [c["name"] for c in configs], rotation=15)
    ax.set_ylabel("ms per frame (steady state, median)")
    ax.set_title(f"Time per frame by stage\n{_subtitle(result)}", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def plot_speedup_vs_objects(result: dict) -> Figure:
    """Speedup against the number of tracked objects, one line per pruned configuration,
    each beside its bound (memory attention and router free; dashed)."""
    if result.get("kind") != "efficiency":
        raise ValueError("plot_speedup_vs_objects needs an efficiency result")
    fig, (ax,) = _figure()
    pruned = [c for c in result["configs"] if c["strategy"] != "none"]
    for i, keep in enumerate(
        dict.fromkeys((c["keep_ratio"], c["memory_keep_ratio"]) for c in pruned)
    ):
        rows = sorted(
            (c for c in pruned if (c["keep_ratio"], c["memory_keep_ratio"]) == keep),
            key=lambda c: c.get("objects", 1),
        )
        objects = [c.get("objects", 1) for c in rows]
        label = f"keep {keep[0]:g}" + ("" if keep[1] == keep[0] else f", memory {keep[1]:g}")
        ax.plot(objects, [c["speedup"] for c in rows], marker="o", color=f"C{i}", label=label)
        ax.plot(
            objects,
            [c["amdahl"]["ceiling"] for c in rows],
            ls="--",
            color=f"C{i}",
            label=f"bound: memory attention + router free ({label})",
        )
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xlabel("objects tracked at once")
    ax.set_ylabel("speedup vs stock SAM2 (same objects)")
    ax.set_title(f"Speedup vs objects\n{_subtitle(result)}", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def plot_jf_vs_keep(result: dict) -> Figure:
    """J&F against keep ratio, one line per strategy; the reference (stock SAM2) dashed."""
    if result.get("kind") not in ("accuracy", "ablation"):
        raise ValueError("plot_jf_vs_keep needs an accuracy result")
    fig, (ax,) = _figure()
    ref = next(c for c in result["configs"] if c["name"] == result["reference"])
    ax.axhline(100 * ref["J&F"], color="k", ls="--", lw=1, label="stock SAM2 (keep 1.0)")
    strategies = sorted({c["strategy"] for c in result["configs"]} - {"none"})
    for strategy in strategies:
        points = sorted(
            (c["keep_ratio"], 100 * c["J&F"])
            for c in result["configs"]
            if c["strategy"] == strategy and c["memory_keep_ratio"] == c["keep_ratio"]
        ) + [(1.0, 100 * ref["J&F"])]
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", label=strategy)
    ax.set_xlabel("keep ratio (query and memory tokens)")
    ax.set_ylabel("J&F")
    ax.set_title(f"J&F vs keep ratio\n{_subtitle(result)}", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def plot_memory_vs_length(result: dict) -> Figure:
    """Working set (peak RSS minus RSS after model load; CUDA where measured) and stored
    inference state against video length, one line per configuration."""
    if result.get("kind") != "memory":
        raise ValueError("plot_memory_vs_length needs a memory result")
    cuda = any(r["cuda_working_set_bytes"] is not None for r in result["rows"])
    fig, axes = _figure(3 if cuda else 2, width=4.6)
    panels = [("working_set_bytes", "working set: peak RSS − RSS after load (MiB)")]
    if cuda:
        panels.append(("cuda_working_set_bytes", "CUDA max allocated − after load (MiB)"))
    panels.append((None, "inference state at the end (MiB)"))
    configs = list(dict.fromkeys(r["config"] for r in result["rows"]))
    for ax, (key, label) in zip(axes, panels, strict=True):
        for i, name in enumerate(configs):
            rows = sorted(
                (r for r in result["rows"] if r["config"] == name), key=lambda r: r["frames"]
            )
            values = [r["state_bytes"]["total"] if key is None else r[key] for r in rows]
            points = [
                (r["frames"], v / MIB) for r, v in zip(rows, values, strict=True) if v is not None
            ]
            if points:
                ax.plot(*zip(*points, strict=True), marker="o", color=f"C{i}", label=name)
        ax.set_xlabel("video length (frames)")
        ax.set_ylabel(label)
    axes[-1].legend(fontsize=8)  # the state panel always has every configuration's line
    settings = result["settings"]
    fig.suptitle(
        f"Memory vs video length — {_subtitle(result)}; {settings['strategy']} at keep "
        f"{settings['keep_ratio']}",
        fontsize=10,
    )
    return fig


def save_plots(result: dict, json_path: str | Path) -> list[Path]:
    """Save the result's figures as PNG next to ``json_path`` (``<stem>_<plot>.png``)."""
    json_path = Path(json_path)
    plots = {
        "efficiency": {"stages": plot_stage_times}
        | (
            {"objects": plot_speedup_vs_objects}
            if len(result["settings"].get("objects", [1])) > 1
            else {}
        ),
        "accuracy": {"jf_vs_keep": plot_jf_vs_keep},
        "ablation": {},
        "text_effect": {},
        "memory": {"memory_vs_length": plot_memory_vs_length},
    }[result["kind"]]
    paths = []
    for suffix, plot in plots.items():
        path = json_path.with_name(f"{json_path.stem}_{suffix}.png")
        plot(result).savefig(path, dpi=120)
        paths.append(path)
    return paths
