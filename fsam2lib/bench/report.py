"""Results as a reader sees them: one table per result kind, the change of every figure
between two results, and the result files (JSON with its PNG plots).

Tables and comparisons are strings, returned and never printed, so that the CLI, notebooks
and tests show the same text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

from fsam2lib.bench.plots import save_plots
from fsam2lib.bench.profiling import MIB, STAGES


def _fmt(value: float | None, spec: str = ".3f", scale: float = 1.0, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value / scale:{spec}}{suffix}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _title(result: dict) -> str:
    prec = "bf16 autocast" if result.get("bf16") else "fp32"
    return (
        f"{result['kind']} — {result['weights_label']} — {result['device']} "
        f"({result['device_name']}), {prec}, {result['image_size']} px, threads {result['threads']}"
    )


def format_efficiency_table(result: dict) -> str:
    """Keep ratios side by side: time per frame and per stage, speedups, tokens, FLOPs, memory."""
    configs = result["configs"]
    s = result["settings"]
    rows: list[list[str]] = []

    def add(label: str, fn: Callable[[dict], str]) -> None:
        rows.append([label, *[fn(c) for c in configs]])

    add("objects tracked", lambda c: str(c.get("objects", 1)))
    add("s/frame (steady)", lambda c: _fmt(c["seconds_per_frame"], ".4f"))
    add("speedup vs stock", lambda c: _fmt(c["speedup"], ".2f", suffix="x"))
    add("bound (mem-attn + router free)", lambda c: _fmt(c["amdahl"]["ceiling"], ".2f", suffix="x"))
    add(
        "speedup / bound",
        lambda c: (
            "-" if c["strategy"] == "none" else _fmt(c["speedup"] / c["amdahl"]["ceiling"], ".0%")
        ),
    )
    for stage in STAGES:
        add(f"  {stage} s", lambda c, st=stage: _fmt(c["stage_seconds"][st], ".4f"))
    add("  memory_attention share", lambda c: _fmt(c["stage_share"]["memory_attention"], ".1%"))
    add("memory-attn speedup", lambda c: _fmt(c["memory_attention_speedup"], ".2f", suffix="x"))
    add("Amdahl bound", lambda c: _fmt(c["amdahl"]["bound"], ".2f", suffix="x"))
    add("query tokens kept", lambda c: f"{c['tokens']['query_kept']}/{c['tokens']['query_total']}")
    add("memory frames x kept", lambda c: f"{c['tokens']['memory_frames']}x{_kept(c)}")
    add("pointer tokens", lambda c: "{}-{}".format(*c["tokens"]["pointer_tokens"]))
    add("mem-attn GFLOP/frame", lambda c: _fmt(c["memory_attention_flops"]["total"], ".3f", 1e9))
    add("FLOPs vs dense", lambda c: _fmt(c["flops_vs_dense"], ".1%"))
    add("bank dense MiB", lambda c: _fmt(c["memory_bank_bytes"]["dense"], ".2f", MIB))
    add("bank kept MiB", lambda c: _fmt(c["memory_bank_bytes"]["kept"], ".2f", MIB))
    add("bank stored MiB", lambda c: _fmt(c["memory_bank_bytes"]["stored"], ".2f", MIB))
    add("  of it fill MiB", lambda c: _fmt(c["memory_bank_bytes"].get("fill"), ".2f", MIB))
    add("peak RSS MiB", lambda c: _fmt(c["peak_rss_bytes"], ".0f", MIB))
    add("peak CUDA MiB", lambda c: _fmt(c["peak_cuda_bytes"], ".0f", MIB))
    lines = [
        _title(result),
        f"{s['video']}; {s['frames']} frames, steady state = frames {s['steady_frames'][0]}-"
        f"{s['steady_frames'][1]}; strategy {s['strategy']}; medians of {s['repeats']} "
        f"interleaved repeat(s){'; each run in a fresh process' if s['isolated'] else ''}"
        f"{'; memory attention and router torch.compiled (default mode)' if s.get('compiled') else ''}"
        f"{'; each after an untimed warm-up run' if 'cuda' in result['device'] or s.get('compiled') else ''}",
        f"router: {result['router']}; object text: {result['text']!r} encoded by "
        f"{result['text_encoder']}",
        _table(["", *[c["name"] for c in configs]], rows),
        f"NOTE: {result['note']}",
        "bank stored = what the inference state holds for the bank read by one frame (lean "
        "state policy: kept features + int32 indices; stock storage: dense features).",
    ]
    return "\n".join(lines)


def _kept(config: dict) -> str:
    kept = set(config["tokens"]["memory_kept_per_frame"])
    return (
        str(kept.pop())
        if len(kept) == 1
        else "/".join(map(str, config["tokens"]["memory_kept_per_frame"]))
    )


def _interval(bounds: list[float] | None, spec: str = ".1f") -> str:
    """``[low, high]`` in points, or "-" for results saved before intervals were kept."""
    if bounds is None:
        return "-"
    return f"[{100 * bounds[0]:{spec}}, {100 * bounds[1]:{spec}}]"


def format_accuracy_table(result: dict) -> str:
    """One row per configuration: J&F, J, F, drop against the reference, s/frame."""
    rows = [
        [
            c["name"],
            f"{c['keep_ratio']:.2f}",
            f"{c['memory_keep_ratio']:.2f}",
            _fmt(100 * c["J&F"], ".1f"),
            _fmt(100 * c["J"], ".1f"),
            _fmt(100 * c["F"], ".1f"),
            _fmt(100 * c["jf_drop"], "+.1f"),
            _interval(c.get("ci95")),
            _interval(c.get("jf_drop_ci95"), "+.1f"),
            _fmt(c["seconds_per_frame"], ".4f"),
            _fmt(c["speedup"], ".2f", suffix="x"),
        ]
        for c in result["configs"]
    ]
    header = ["config", "keep", "mem", "J&F", "J", "F", "drop", "J&F 95% CI", "drop 95% CI"]
    header += ["s/frame", "speedup"]
    s = result["settings"]
    return "\n".join(
        [
            _title(result),
            f"dataset: {s['dataset']}; protocol {s['protocol']}; text: {result['text']} "
            f"(encoder: {result['text_encoder']}); router: {result['router']}",
            _table(header, rows),
            "J&F, J, F and drop in points (x100); drop = reference J&F - config J&F; 95 % "
            "bootstrap intervals over videos (the drop's paired: the same videos resampled).",
            f"NOTE: {result['note']}",
        ]
    )


def format_contrasts(result: dict) -> str:
    """The paired differences of a text-effect result: difference, its interval, what the
    second config lost against the reference and the share of it recovered."""
    rows = [
        [
            c["name"],
            _fmt(100 * c["difference"], "+.1f"),
            _interval(c["ci95"], "+.1f"),
            _fmt(100 * c["b_drop"], "+.1f"),
            "-" if c["recovered"] is None else f"{100 * c['recovered']:.0f} %",
        ]
        for c in result["contrasts"]
    ]
    return "\n".join(
        [
            _table(
                ["contrast (a - b)", "J&F", "paired 95% CI", "b's drop", "of it recovered"], rows
            ),
            "text effect = router - the same router with its text cue removed; b's drop = "
            "reference J&F - b's J&F; recovered = difference / b's drop.",
        ]
    )


def format_text_effect_table(result: dict) -> str:
    return format_accuracy_table(result) + "\n\n" + format_contrasts(result)


def format_memory_table(result: dict) -> str:
    """Per configuration and video length: working set, stored state and bank, against stock."""
    summary = result["summary"]
    rows = []
    for r in result["rows"]:
        vs = summary[r["config"]].get("vs_stock", {}).get(r["frames"]) or {}
        rows.append(
            [
                r["config"],
                str(r["frames"]),
                _fmt(r["working_set_bytes"], ".0f", MIB),
                _fmt(vs.get("working_set"), ".0%"),
                _fmt(r["cuda_working_set_bytes"], ".0f", MIB),
                _fmt(r["state_bytes"]["total"], ".1f", MIB),
                _fmt(r["stored_bank_bytes"], ".2f", MIB),
                _fmt(vs.get("stored_bank"), ".0%"),
                str(r["stored_outputs"]),
                _fmt(r["seconds_per_frame"], ".3f"),
            ]
        )
    header = [
        "config",
        "frames",
        "working set MiB",
        "vs stock",
        "CUDA MiB",
        "state MiB",
        "bank MiB",
        "bank vs stock",
        "outputs held",
        "s/frame",
    ]
    growth = [
        f"  {name}: working set {_fmt(s['working_set_growth_bytes_per_frame'], '.1f', 1024.0)} "
        f"KiB/frame ({_fmt(s.get('growth_vs_stock'), '.1%')} of stock's), stored state "
        f"{_fmt(s['state_growth_bytes_per_frame'], '.1f', 1024.0)} KiB/frame"
        for name, s in summary.items()
    ]
    settings = result["settings"]
    return "\n".join(
        [
            _title(result),
            f"{settings['video']}; JPEG frames {settings['frame_size'][0]}x"
            f"{settings['frame_size'][1]}; {settings['strategy']} at keep {settings['keep_ratio']}",
            _table(header, rows),
            "growth per frame (slope over video lengths):",
            *growth,
            result["memory_note"],
            f"NOTE: {result['note']}",
        ]
    )


def format_result(result: dict) -> str:
    """The table for any result kind."""
    kind = result.get("kind")
    formatters = {
        "efficiency": format_efficiency_table,
        "accuracy": format_accuracy_table,
        "ablation": format_accuracy_table,
        "text_effect": format_text_effect_table,
        "memory": format_memory_table,
    }
    if kind not in formatters:
        raise ValueError(f"not a benchmark result (kind={kind!r})")
    return formatters[kind](result)


# --------------------------------------------------------------------------- compare


# Result entries that describe the setup or hold raw per-run data, not figures to compare.
_NOT_FIGURES = frozenset({"runs", "settings", "versions", "memory_attention", "grid"})


def flatten_figures(result: dict, include_videos: bool = False) -> dict[str, float]:
    """Every scalar number of a result, keyed by a readable path (configs by name; raw
    per-run lists, traces and settings left out)."""
    out: dict[str, float] = {}

    def walk(obj: object, path: str) -> None:
        if isinstance(obj, bool) or obj is None:
            return
        if isinstance(obj, (int, float)):
            out[path] = float(obj)
        elif isinstance(obj, dict):
            for key, value in obj.items():
                if key not in _NOT_FIGURES:
                    walk(value, f"{path}.{key}")
        elif isinstance(obj, list) and obj and all(isinstance(o, dict) for o in obj):
            for o in obj:
                key = o.get("name") or f"{o.get('video')}/{o.get('config')}"
                walk(o, f"{path}[{key}]")

    for key, value in result.items():
        # top-level scalars are settings (image size, schema...), not figures
        if isinstance(value, (dict, list)) and key not in _NOT_FIGURES:
            if include_videos or key != "videos":
                walk(value, key)
    return out


def compare_results(previous: dict, current: dict, include_videos: bool = False) -> dict:
    """Figures of two results of the same kind side by side: rows (path, previous, current,
    change, relative change), and the paths only one of them has."""
    if previous.get("kind") != current.get("kind"):
        raise ValueError(
            f"cannot compare a {previous.get('kind')!r} result with a {current.get('kind')!r} one"
        )
    old, new = flatten_figures(previous, include_videos), flatten_figures(current, include_videos)
    rows = []
    for path in [p for p in new if p in old]:
        change = new[path] - old[path]
        rel = change / abs(old[path]) if old[path] else None
        rows.append(
            {
                "figure": path,
                "previous": old[path],
                "current": new[path],
                "change": change,
                "relative": rel,
            }
        )
    return {
        "rows": rows,
        "only_previous": sorted(set(old) - set(new)),
        "only_current": sorted(set(new) - set(old)),
        "previous_label": previous.get("weights_label"),
        "current_label": current.get("weights_label"),
    }


def format_comparison(comparison: dict) -> str:
    rows = [
        [
            r["figure"],
            f"{r['previous']:.6g}",
            f"{r['current']:.6g}",
            f"{r['change']:+.4g}",
            "n/a" if r["relative"] is None else f"{r['relative']:+.1%}",
        ]
        for r in comparison["rows"]
    ]
    lines = [
        f"compare: previous {comparison['previous_label']} -> current {comparison['current_label']}",
        _table(["figure", "previous", "current", "change", "relative"], rows),
    ]
    for key in ("only_previous", "only_current"):
        if comparison[key]:
            lines.append(f"{key.replace('_', ' ')}: {', '.join(comparison[key])}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- files


def write_result(result: dict, json_path: str | Path) -> list[Path]:
    """Write the JSON and its plots; returns every path written."""
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=1, allow_nan=True))
    return [json_path, *save_plots(result, json_path)]
