"""The picture in ``docs/ARCHITECTURE.md``: one frame's path through the pruned predictor, and
which module owns each step.

    python -m fsam2lib.workbook.architecture [--out docs/figures/architecture.png]

The steps name real functions and classes (``owners``); ``missing_owners`` checks them, and a
test runs that check, so the picture cannot silently drift from the code.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

from fsam2lib.paths import REPO_DIR

DEFAULT_OUT = REPO_DIR / "docs" / "figures" / "architecture.png"
SAM2_COLOUR = "#d9d9d9"  # frozen SAM2 (the sam2 package, never edited)
OURS_COLOUR = "#cfe2f3"  # fsam2lib


@dataclass(frozen=True)
class Step:
    """One step of a frame's path: what happens, the tensor it leaves, who owns it."""

    what: str
    tensor: str
    owners: tuple[str, ...]  # "package.module:attribute" (or "package.module" alone)
    frozen_sam2: bool = False


FRAME_STEPS: tuple[Step, ...] = (
    Step(
        "frame t, decoded when needed, resized and normalised as sam2 does",
        "[3, S, S]",
        (
            "fsam2lib.videos.streaming:StreamedFrames",
            "sam2.utils.misc:_load_img_as_tensor",
            "fsam2lib.videos.frames:init_state_from_frames",
        ),
    ),
    Step(
        "image encoder (Hiera + FPN neck)",
        "stride-16 tokens [H·W, B, C]",
        ("sam2.modeling.sam2_base:SAM2Base.forward_image",),
        frozen_sam2=True,
    ),
    Step(
        "object text -> CLIP text embedding (once per object)",
        "[1, D]",
        ("fsam2lib.predictor.object_text:encode_text", "fsam2lib.models.clip:load_clip"),
    ),
    Step(
        "router: visual, text, mask and uncertainty cues -> one score per token",
        "scores [B, H·W]",
        (
            "fsam2lib.pruning.router:TokenRouter",
            "fsam2lib.pruning.scorers:make_scorer",
            "fsam2lib.predictor.predictor:PrunedSAM2VideoPredictor._score_frame",
        ),
    ),
    Step(
        "keep the top queries (prompt neighbourhoods always kept)",
        "kept query indices [B, Kq]",
        (
            "fsam2lib.pruning.selection:select_tokens",
            "fsam2lib.predictor.frame_pruning:score_frame",
        ),
    ),
    Step(
        "memory bank: which stored frames SAM2 reads, each with its kept tokens",
        "K_m tokens per memory frame + object pointers",
        (
            "fsam2lib.predictor.memory_reads:record_memory_reads",
            "fsam2lib.predictor.frame_pruning:select_memory",
        ),
    ),
    Step(
        "memory attention over kept tokens, RoPE at true grid positions",
        "[Kq, B, C]",
        ("fsam2lib.pruning.attention:PrunedMemoryAttention", "fsam2lib.pruning.rope:gather_freqs"),
    ),
    Step(
        "scatter back onto the fill (default: previous frame's features)",
        "dense [H·W, B, C]",
        (
            "fsam2lib.pruning.attention:scatter_tokens",
            "fsam2lib.predictor.predictor:PrunedSAM2VideoPredictor._fill",
        ),
    ),
    Step(
        "mask decoder, then memory encoder (this frame's memory)",
        "mask logits, maskmem features",
        (
            "sam2.modeling.sam2_base:SAM2Base._forward_sam_heads",
            "sam2.modeling.sam2_base:SAM2Base._encode_new_memory",
        ),
        frozen_sam2=True,
    ),
    Step(
        "store the frame's memory compact: its kept tokens + int32 indices",
        "maskmem [B, C, K]",
        (
            "fsam2lib.predictor.frame_pruning:select_memory",
            "fsam2lib.predictor.memory_reads:TrackedOutput.compact",
        ),
    ),
    Step(
        "record what was kept (token_scores) for notebooks and benches",
        "TokenScores",
        ("fsam2lib.predictor.records:TokenScores", "fsam2lib.workbook.viz:collect_scores"),
    ),
    Step(
        "release outputs SAM2 can no longer read (bounded state)",
        "StatePolicy",
        (
            "fsam2lib.predictor.bounded_state:release_behind",
            "fsam2lib.predictor.state_policy:StatePolicy",
        ),
    ),
)


def resolve(owner: str) -> object:
    """The object an owner string names (``module:attr.attr``); raises if it does not exist."""
    module_name, _, attr_path = owner.partition(":")
    obj = import_module(module_name)
    for part in filter(None, attr_path.split(".")):
        obj = getattr(obj, part)
    return obj


def missing_owners(steps: tuple[Step, ...] = FRAME_STEPS) -> list[str]:
    """Owner strings that do not resolve to a module attribute (empty when the picture is true)."""
    missing = []
    for step in steps:
        for owner in step.owners:
            try:
                resolve(owner)
            except (ImportError, AttributeError):
                missing.append(owner)
    return missing


def _module_label(owners: tuple[str, ...]) -> str:
    """Short owner list for the right-hand column: ``pruning/router.py: TokenRouter``."""
    lines = []
    for owner in owners:
        module_name, _, attr = owner.partition(":")
        if module_name.startswith("fsam2lib."):
            path = module_name.removeprefix("fsam2lib.").replace(".", "/") + ".py"
        else:
            path = module_name
        lines.append(f"{path}: {attr}" if attr else path)
    return "\n".join(lines)


def draw(steps: tuple[Step, ...] = FRAME_STEPS) -> Figure:
    """The flow chart: one box per step (grey: frozen SAM2; blue: fsam2lib), owners on the right."""
    row = 1.0
    fig = Figure(figsize=(13, 0.85 * len(steps) + 0.6))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, 13)
    ax.set_ylim(-(len(steps) - 1) * row - 0.5, 0.9)
    ax.axis("off")
    ax.text(
        0.3,
        0.55,
        "One frame through PrunedSAM2VideoPredictor (per object; sam2 calls in grey are unchanged)",
        fontsize=12,
        weight="bold",
    )
    for i, step in enumerate(steps):
        y = -i * row
        colour = SAM2_COLOUR if step.frozen_sam2 else OURS_COLOUR
        box = FancyBboxPatch(
            (0.3, y - 0.35), 5.6, 0.7, boxstyle="round,pad=0.02", fc=colour, ec="#555555"
        )
        ax.add_patch(box)
        ax.text(0.45, y + 0.08, step.what, fontsize=8.5, va="center", wrap=True)
        ax.text(0.45, y - 0.2, step.tensor, fontsize=7.5, va="center", color="#444444")
        ax.text(6.2, y, _module_label(step.owners), fontsize=7.5, va="center", family="monospace")
        if i + 1 < len(steps):
            arrow = FancyArrowPatch(
                (3.1, y - 0.37), (3.1, y - row + 0.37), arrowstyle="-|>", mutation_scale=10
            )
            ax.add_patch(arrow)
    return fig


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    missing = missing_owners()
    if missing:
        raise SystemExit(f"the picture names code that does not exist: {missing}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    draw().savefig(args.out, dpi=110)
    print(args.out)
    return args.out


if __name__ == "__main__":
    main()
