"""What pruning is asked to do: :class:`PruningConfig` and the names it accepts."""

from __future__ import annotations

import math
from dataclasses import dataclass

STRATEGIES = ("router", "random", "grid", "mask_prior", "text_only", "none")
CUES = ("visual", "text", "mask", "uncertainty")
FILLS = ("unconditioned", "previous", "zeros")
# Strategies that need the learned scorer attached as ``predictor.router``.
ROUTER_STRATEGIES = ("router", "text_only")


def check_ratio(name: str, value: object, owner: str = "PruningConfig") -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{owner}.{name} must be a number in (0, 1], got {value!r}")
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise ValueError(f"{owner}.{name} must be in (0, 1], got {value!r}")


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"PruningConfig.{name} must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class PruningConfig:
    """How many tokens memory attention keeps, chosen how, and what pruned positions get.

    keep_ratio: fraction of the current frame's query tokens kept (0 < r <= 1).
    memory_keep_ratio: fraction of each stored memory frame's tokens kept (None: keep_ratio).
    strategy: "router" (the learned scorer attached as ``predictor.router``), "text_only"
        (that scorer with the text cue only), "random" (seeded by ``(seed, frame)``),
        "grid" (nested uniform lattice), "mask_prior" (previous mask: dilated object band +
        decision boundary, no text), "none" (stock SAM2, nothing scored or recorded).
    cues: router cues to combine, from ("visual", "text", "mask", "uncertainty"): local visual
        context, relevance to the object's text, the previous frame's mask (dilated) and that
        mask's ambiguous boundary.
    fill: what pruned query positions receive after scatter-back: "previous" (the default:
        the previous frame's memory-conditioned features there; "unconditioned" when there is
        none), "unconditioned" (the frame's own features + SAM2's no-memory embedding, as SAM2
        does for a frame without memory), "zeros". On the micro SAM2 (20 synthetic val videos,
        router at keep 0.1) "previous" lost 2.3 J&F, "unconditioned" 3.6, "zeros" 26.1: a
        pruned background token changes little from one frame to the next.
    context: share of each kept budget (queries and each memory frame) spent on a uniform
        lattice of tokens whatever their score (0 <= c <= 1; 0: scores decide alone). A
        scorer that keeps only the object leaves memory attention without background to
        attend to, and a memory-using SAM2 then reads object memory everywhere; the lattice
        gives it background anchors.
    min_tokens: lower bound on kept tokens per frame (queries and each memory frame).
    prompt_radius: tokens (Chebyshev radius, token units) always kept around each click /
        box corner on prompted frames; also the dilation of the object on prompted frames'
        memory.
    seed: seed of the "random" strategy.

    Frozen, so a predictor can tell which config a stored selection was made under; swap
    configs by assigning a new one (``predictor.pruning = PruningConfig(...)``).
    """

    keep_ratio: float = 1.0
    memory_keep_ratio: float | None = None
    strategy: str = "router"
    cues: tuple[str, ...] = CUES
    fill: str = "previous"
    context: float = 0.0
    min_tokens: int = 16
    prompt_radius: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        check_ratio("keep_ratio", self.keep_ratio)
        if self.memory_keep_ratio is not None:
            check_ratio("memory_keep_ratio", self.memory_keep_ratio)
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"PruningConfig.strategy must be one of {STRATEGIES}, got {self.strategy!r}"
            )
        if isinstance(self.cues, str) or not isinstance(self.cues, (tuple, list)):
            raise ValueError(
                f"PruningConfig.cues must be a tuple of names from {CUES}, got {self.cues!r}"
            )
        cues = tuple(self.cues)
        bad = [c for c in cues if c not in CUES]
        if bad or not cues or len(set(cues)) != len(cues):
            raise ValueError(
                f"PruningConfig.cues must be distinct names from {CUES} (at least one), got {self.cues!r}"
            )
        object.__setattr__(self, "cues", cues)
        if self.fill not in FILLS:
            raise ValueError(f"PruningConfig.fill must be one of {FILLS}, got {self.fill!r}")
        if (
            isinstance(self.context, bool)
            or not isinstance(self.context, (int, float))
            or not 0.0 <= self.context <= 1.0
        ):
            raise ValueError(f"PruningConfig.context must be in [0, 1], got {self.context!r}")
        _check_int("min_tokens", self.min_tokens, 1)
        _check_int("prompt_radius", self.prompt_radius, 0)
        _check_int("seed", self.seed, 0)
        if self.strategy == "none" and (self.keep_ratio != 1.0 or self.memory_ratio != 1.0):
            raise ValueError(
                "PruningConfig.strategy='none' keeps every token; keep_ratio="
                f"{self.keep_ratio!r} / memory_keep_ratio={self.memory_keep_ratio!r} would be ignored"
            )

    @property
    def memory_ratio(self) -> float:
        """The effective memory keep ratio (``memory_keep_ratio``, else ``keep_ratio``)."""
        return self.keep_ratio if self.memory_keep_ratio is None else self.memory_keep_ratio
