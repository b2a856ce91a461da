"""The results page and the README's headline figures, generated from the results files.

Every figure the README and ``docs/RESULTS.md`` quote comes from a JSON file that a bench
command wrote (``--json``) into a dated folder under ``docs/results/``; the folder's
``README.md`` says which command wrote which file, when and on what machine.

    python -m fsam2lib.bench.results           # rewrite RESULTS.md and the generated blocks
    python -m fsam2lib.bench.results --check   # exit 1 if any is stale (the suite runs it)

Generated: ``docs/RESULTS.md`` whole, the README's headline table and the model card's
router table (blocks between ``<!-- generated: NAME ... -->`` markers).

So a figure cannot be typed, and cannot drift from its measurement: change a results file
and the page and the README change with it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fsam2lib.bench.report import format_result
from fsam2lib.paths import NOTEBOOKS_DIR, REPO_DIR

RESULTS_DIR = REPO_DIR / "docs" / "results"
RESULTS_PAGE = REPO_DIR / "docs" / "RESULTS.md"
README = REPO_DIR / "README.md"
MODEL_CARD = REPO_DIR / "data" / "MODEL_CARD.md"


def _start(block: str) -> str:
    return f"<!-- generated: {block} (python -m fsam2lib.bench.results); do not edit -->"


def _end(block: str) -> str:
    return f"<!-- end generated: {block} -->"


@dataclass(frozen=True)
class Figure:
    """One headline figure: what it claims, the results file it is read from (relative to
    ``docs/results``) and how it is read."""

    claim: str
    file: str
    read: Callable[[dict], str]


def _points(value: float, signed: bool = True) -> str:
    return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"


def _interval(bounds: list[float]) -> str:
    return f"[{_points(bounds[0])}, {_points(bounds[1])}]"


def contrast(name: str) -> Callable[[dict], str]:
    """A paired difference of a text-effect result, with its interval."""

    def read(result: dict) -> str:
        row = next(c for c in result["contrasts"] if c["name"] == name)
        return f"{_points(row['difference'])} {_interval(row['ci95'])}"

    return read


def oracle_contrast(name: str) -> Callable[[dict], str]:
    """A paired difference of ``text-ceiling/oracle.py``'s result (already in points)."""

    def read(result: dict) -> str:
        diff, lo, hi = result["contrasts"][name]
        return f"{diff:+.1f} [{lo:+.1f}, {hi:+.1f}]"

    return read


def drop(config: str) -> Callable[[dict], str]:
    """A configuration's J&F drop against unpruned SAM2, with its paired interval."""

    def read(result: dict) -> str:
        row = next(c for c in result["configs"] if c["name"] == config)
        return f"{_points(row['jf_drop'])} {_interval(row['jf_drop_ci95'])}"

    return read


def jf(config: str) -> Callable[[dict], str]:
    def read(result: dict) -> str:
        row = next(c for c in result["configs"] if c["name"] == config)
        return f"{_points(row['J&F'], signed=False)} {_interval(row['ci95'])}"

    return read


def speedup(config: str, objects: int = 1) -> Callable[[dict], str]:
    """Speedup against stock and the bound it is measured against (efficiency results)."""

    def read(result: dict) -> str:
        row = next(
            c
            for c in result["configs"]
            if c["name"].startswith(config) and c.get("objects", 1) == objects
        )
        return f"{row['speedup']:.2f}× (bound {row['amdahl']['ceiling']:.2f}×)"

    return read


def working_set(configs: tuple[str, ...], length: int) -> Callable[[dict], str]:
    """Peak working set (MiB) of each named configuration at one video length (memory results)."""

    def read(result: dict) -> str:
        cells = []
        for name in configs:
            row = next(r for r in result["rows"] if r["config"] == name and r["frames"] == length)
            cells.append(f"{name} {row['working_set_bytes'] / 2**20:.0f}")
        return " / ".join(cells) + " MiB"

    return read


def load(file: str, root: Path = RESULTS_DIR) -> dict:
    path = root / file
    if not path.is_file():
        raise FileNotFoundError(
            f"results file {path} is missing: rerun the command in its folder's README"
        )
    return json.loads(path.read_text())


def videos_of(result: dict) -> str:
    """How much the figure stands on: the dataset line of an accuracy-type result (or the
    dataset a script names)."""
    return result.get("settings", {}).get("dataset", result.get("dataset", ""))


def headline_table(figures: tuple[Figure, ...], root: Path = RESULTS_DIR) -> str:
    rows = ["| claim | figure | measured on | results file |", "|---|---|---|---|"]
    for fig in figures:
        result = load(fig.file, root)
        where = (
            result["device_name"]
            if result.get("kind") in ("efficiency", "memory")
            else videos_of(result)
        )
        rows.append(f"| {fig.claim} | {fig.read(result)} | {where} | `{fig.file}` |")
    return "\n".join(rows)


def results_page(root: Path = RESULTS_DIR) -> str:
    """``docs/RESULTS.md``: per results folder (newest first), its README, then every
    results file's table as the bench prints it (for a file the bench does not know, the
    table its script printed beside it, ``<name>.txt``, if there is one)."""
    parts = [
        "# Results",
        "",
        "Generated by `python -m fsam2lib.bench.results` from the files under `docs/results/`;",
        "each folder's README names the commands, commits and machine. Do not edit by hand.",
    ]
    for folder in sorted((p for p in root.iterdir() if p.is_dir()), reverse=True):
        readme = folder / "README.md"
        text = readme.read_text().strip() if readme.is_file() else f"# {folder.name}"
        parts += ["", "#" + text if text.startswith("# ") else f"## {folder.name}\n\n{text}"]
        for path in sorted(folder.glob("*.json")):
            result = json.loads(path.read_text())
            printed = path.with_suffix(".txt")
            if "kind" in result:
                table = format_result(result)
            elif printed.is_file():
                table = printed.read_text().rstrip()
            else:
                continue
            parts += ["", f"### `{folder.name}/{path.name}`", "", "```", table, "```"]
    return "\n".join(parts) + "\n"


def with_block(text: str, block: str, content: str) -> str:
    """``text`` (a markdown file) with its generated block ``block`` replaced by ``content``."""
    start, end = _start(block), _end(block)
    if start not in text or end not in text:
        raise ValueError(f"no generated block {block!r} (its start and end markers) in the file")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{content}\n{end}{tail}"


def objectives_table(root: Path = RESULTS_DIR) -> str:
    """The model card's router table: each objective's router on each split, from the
    text-effect results (J&F drop against unpruned SAM2, text effect, router − mask prior)."""
    splits = (("classic", "classic val"), ("held_out", "held-out val"), ("hard", "hard val"),
              ("crossing", "crossing val"))  # fmt: skip
    rows = [
        "| split (videos) | objective | unpruned J&F | drop at 0.3 | drop at 0.1 | text effect at 0.3 "
        "| text effect at 0.1 | router − mask prior at 0.1 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, label in splits:
        for objective, file_of in OBJECTIVES:
            file = file_of(key)
            if not (root / file).is_file():
                rows.append(f"| {label} | {objective} | not measured ({file} absent) |||||||")
                continue
            result = load(file, root)
            ref = next(c for c in result["configs"] if c["name"] == "reference")
            n = len({r["video"] for r in result["videos"]})
            rows.append(
                f"| {label} ({n}) | {objective} | {_points(ref['J&F'], signed=False)} | "
                f"{drop('router@0.30')(result)} | {drop('router@0.10')(result)} | "
                f"{contrast('text effect@0.30')(result)} | {contrast('text effect@0.10')(result)} | "
                f"{contrast('router - mask_prior@0.10')(result)} |"
            )
    return "\n".join(rows)


MASK = "2026-12-07-mask-objective"
TEXT_WEIGHT = "2026-12-07-text-weight"  # the mask router with its text cue weighted outside the MLP
# The model card's router rows: (objective, split key -> its text-effect results file).
OBJECTIVES: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("recall", lambda key: f"{MASK}/recall_text_effect_{key}.json"),
    ("mask", lambda key: f"{MASK}/text_effect_{key}.json"),
    ("mask + text weight 1, not shipped", lambda key: f"{TEXT_WEIGHT}/text_effect_{key}.json"),
)
COST = "2026-12-06-per-frame-path"
COST_NOW = "2026-12-07-rope-tables"  # the per-frame path re-measured after the rotary fix
SPEED_NOW = "2026-12-07-speed-1024-repeats"  # the same speed command, four repeats instead of two
# What the README's headline table shows, read from the results files.
HEADLINE: tuple[Figure, ...] = (
    Figure(
        "text effect at keep 0.1 (router − router without text), look-alikes crossing",
        f"{MASK}/text_effect_crossing.json",
        contrast("text effect@0.10"),
    ),
    Figure(
        "text effect at keep 0.1, hard world",
        f"{MASK}/text_effect_hard.json",
        contrast("text effect@0.10"),
    ),
    Figure(
        "text effect at keep 0.1, classic world",
        f"{MASK}/text_effect_classic.json",
        contrast("text effect@0.10"),
    ),
    Figure(
        "text cue's ceiling at keep 0.1, crossing: the target's tokens first (ground truth)",
        "2026-12-07-text-ceiling/oracle_crossing.json",
        oracle_contrast("target first@0.1 - no text"),
    ),
    Figure(
        "J&F lost at keep 0.3, classic world",
        f"{MASK}/text_effect_classic.json",
        drop("router@0.30"),
    ),
    Figure(
        "J&F lost at keep 0.1, held-out world",
        f"{MASK}/text_effect_held_out.json",
        drop("router@0.10"),
    ),
    Figure(
        "router − mask prior at keep 0.1, classic world",
        f"{MASK}/text_effect_classic.json",
        contrast("router - mask_prior@0.10"),
    ),
    Figure(
        "router − mask prior at keep 0.1, held-out world",
        f"{MASK}/text_effect_held_out.json",
        contrast("router - mask_prior@0.10"),
    ),
    Figure(
        "speedup at keep 0.3, hiera_t 1024 px, 1 object",
        f"{SPEED_NOW}/eff1024.json",
        speedup("keep=0.30"),
    ),
    Figure(
        "speedup at keep 0.3, hiera_t 512 px, 8 objects",
        f"{COST}/eff512_obj.json",
        speedup("keep=0.30", objects=8),
    ),
    Figure(
        "working set, hiera_t 1024 px × 32 frames",
        f"{COST_NOW}/mem1024_32.json",
        working_set(("stock+lean", "pruned+lean"), 32),
    ),
)


TIMES = "workbook/times.json"


def notebooks_table(root: Path = RESULTS_DIR) -> str:
    """What each notebook shows (its title) and how long the main job took on it, from the
    times the main job wrote (``bash scripts/workbook.sh --times docs/results/workbook/times.json``)."""
    times = load(TIMES, root) if (root / TIMES).is_file() else None
    seconds_of = {} if times is None else times["seconds"]
    rows = ["| notebook | what it shows | seconds |", "|---|---|---|"]
    for path in sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")):
        title = json.loads(path.read_text())["cells"][0]["source"][0].strip("# \n")
        shows = title.split("·", 1)[-1].strip()
        seconds = seconds_of.get(path.stem)
        rows.append(f"| `{path.stem}` | {shows} | {'-' if seconds is None else round(seconds)} |")
    rows.append("")
    if times is None:
        rows.append(
            f"Seconds: not measured since the notebooks last changed; `bash scripts/workbook.sh "
            f"--times docs/results/{TIMES}` measures them."
        )
    else:
        rows.append(f"Seconds: the main job on {times['machine']}, {times['created'][:10]}.")
    return "\n".join(rows)


def generated(root: Path = RESULTS_DIR) -> dict[Path, str]:
    """Every generated file's text as the results files make it."""
    readme = with_block(README.read_text(), "headline", headline_table(HEADLINE, root))
    readme = with_block(readme, "notebooks", notebooks_table(root))
    card = with_block(MODEL_CARD.read_text(), "objectives", objectives_table(root))
    return {RESULTS_PAGE: results_page(root), README: readme, MODEL_CARD: card}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if a generated file is stale")
    args = parser.parse_args(argv)
    texts = generated()
    stale = [p for p, text in texts.items() if not p.is_file() or p.read_text() != text]
    names = ", ".join(str(p.relative_to(REPO_DIR)) for p in stale)
    if args.check:
        if stale:
            print(f"stale: {names}; run `python -m fsam2lib.bench.results`", file=sys.stderr)
            return 1
        print("README, model card and docs/RESULTS.md match the results files")
        return 0
    for path in stale:
        path.write_text(texts[path])
    print(f"rewrote {names}" if stale else "nothing to rewrite")
    return 0


if __name__ == "__main__":
    sys.exit(main())
