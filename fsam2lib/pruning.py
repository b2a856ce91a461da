"""Token pruning for SAM2's memory attention: configuration, scoring strategies, selection,
and the memory-attention subclass that attends over kept tokens only.

Conventions (SAM2's): inside memory attention tensors are sequence-first ``[H*W, B, C]``;
a token's grid index is row-major, ``index = y * W + x``; scores are ``[B, H*W]`` in that
order, higher = keep. Memory is the concatenation of ``H*W``-token chunks, one per stored
memory frame, followed by ``num_obj_ptr_tokens`` object-pointer tokens, which are never
pruned and never rotated.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import torch
import torch.nn.functional as F
from sam2.modeling.memory_attention import MemoryAttention, MemoryAttentionLayer
from sam2.modeling.sam.transformer import RoPEAttention
from torch import Tensor

from fsam2lib.rope import gather_freqs, grid_freqs, rope_attention

STRATEGIES = ("router", "random", "grid", "mask_prior", "text_only", "none")
CUES = ("visual", "text", "uncertainty")
FILLS = ("unconditioned", "previous", "zeros")
# Strategies that need the learned scorer attached as ``predictor.router``.
ROUTER_STRATEGIES = ("router", "text_only")


def _check_ratio(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"PruningConfig.{name} must be a number in (0, 1], got {value!r}")
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise ValueError(f"PruningConfig.{name} must be in (0, 1], got {value!r}")


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
    cues: router cues to combine, from ("visual", "text", "uncertainty").
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
        _check_ratio("keep_ratio", self.keep_ratio)
        if self.memory_keep_ratio is not None:
            _check_ratio("memory_keep_ratio", self.memory_keep_ratio)
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


@dataclass
class ScoringInputs:
    """What a token scorer sees for one frame and one object (SAM2 1.1.0 tracks each object
    with batch size 1).

    features: ``[B, C, H, W]`` stride-16 image-encoder tokens of the current frame (neck
        output, before memory attention).
    frame_idx: the frame's index in the video.
    prev_mask_logits: ``[B, 1, h, w]`` low-res mask logits of this object on the previously
        processed frame (None on an initial prompted frame or when there is none).
    text_embedding: ``[B, D]`` L2-normalised CLIP text embedding of the object's description
        (None when the object has no text: the text cue is then off).
    prompt_points: ``[B, N, 2]`` clicks / box corners in (x, y) token-grid coordinates on
        this frame (None if none).
    cues: the cues the scorer is asked to combine (a subset of ``CUES``).
    """

    features: Tensor
    frame_idx: int
    prev_mask_logits: Tensor | None = None
    text_embedding: Tensor | None = None
    prompt_points: Tensor | None = None
    cues: tuple[str, ...] = CUES

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.features.shape[-2]), int(self.features.shape[-1])


class TokenScorer(Protocol):
    """Scores the tokens of one frame: ``"combined"`` ``[B, H*W]`` (higher = keep) plus one
    ``[B, H*W]`` entry per cue, kept for inspection."""

    def __call__(self, inputs: ScoringInputs) -> dict[str, Tensor]: ...


# --------------------------------------------------------------------------- selection


def num_kept(hw: int, ratio: float, min_tokens: int) -> int:
    """Tokens kept out of ``hw`` at ``ratio``: ``ceil(ratio * hw)``, at least ``min_tokens``,
    at most ``hw``."""
    if hw < 1:
        raise ValueError(f"hw must be positive, got {hw}")
    _check_ratio("keep_ratio", ratio)
    if min_tokens < 1:
        raise ValueError(f"min_tokens must be >= 1, got {min_tokens}")
    return min(hw, max(min_tokens, math.ceil(ratio * hw - 1e-9)))


def select_tokens(scores: Tensor, keep: int, must_keep: Tensor | None = None) -> Tensor:
    """Indices ``[B, K]`` (ascending) of the ``keep`` highest-scoring tokens per row.

    ``must_keep`` ``[B, H*W]`` bool tokens are always selected, ahead of the ranking; K is
    ``max(keep, most must-keep tokens in a row)``, so K can exceed ``keep`` only when the
    forced tokens alone do. Ties are broken towards the lower index (deterministic).
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be [B, H*W], got shape {tuple(scores.shape)}")
    n = scores.shape[1]
    if not 1 <= keep <= n:
        raise ValueError(f"keep must be in [1, {n}], got {keep}")
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    if must_keep is not None:
        if must_keep.shape != scores.shape or must_keep.dtype != torch.bool:
            raise ValueError(
                f"must_keep must be a bool tensor of shape {tuple(scores.shape)}, got "
                f"{must_keep.dtype} {tuple(must_keep.shape)}"
            )
        forced = must_keep.gather(1, order).to(torch.uint8)
        order = order.gather(1, torch.sort(forced, dim=1, descending=True, stable=True).indices)
        keep = max(keep, int(must_keep.sum(dim=1).max()))
    return order[:, :keep].sort(dim=1).values


def forced_tokens(
    must_keep: Tensor | None,
    grid: tuple[int, int],
    keep: int,
    context: float,
    batch: int,
    device: torch.device | str = "cpu",
) -> Tensor | None:
    """Tokens ``[B, H*W]`` selected ahead of the ranking: ``must_keep`` (prompt
    neighbourhoods) plus the first ``ceil(context * keep)`` tokens of the uniform lattice
    order (:func:`grid_order`); None when there are none."""
    count = math.ceil(context * keep - 1e-9)
    if count <= 0:
        return must_keep
    order = grid_order(grid, device)
    lattice = torch.zeros(grid[0] * grid[1], dtype=torch.bool, device=device)
    lattice[torch.topk(order, count).indices] = True
    lattice = lattice.expand(batch, -1)
    return lattice.clone() if must_keep is None else must_keep.to(device) | lattice


def prioritise(scores: Tensor, first: Tensor) -> Tensor:
    """Rank-based scores that put ``first`` (bool ``[B, H*W]``) tokens ahead of all others
    while keeping the order of ``scores`` within each group (and its tie-breaking)."""
    n = scores.shape[1]
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(n, device=scores.device).expand_as(order))
    return (first.long() * n + (n - 1 - rank)).float()


def token_coords(
    grid: tuple[int, int], device: torch.device | str = "cpu"
) -> tuple[Tensor, Tensor]:
    """(x, y) integer coordinates ``[H*W]`` of every token, row-major."""
    h, w = grid
    idx = torch.arange(h * w, device=device)
    return idx % w, idx // w


def prompt_neighbourhood(points: Tensor, grid: tuple[int, int], radius: int) -> Tensor:
    """Bool ``[B, H*W]``: tokens within Chebyshev ``radius`` of any prompt point.

    points: ``[B, N, 2]`` (x, y) in token-grid coordinates (continuous; token ``floor``).
    """
    if points.dim() != 3 or points.shape[-1] != 2:
        raise ValueError(f"prompt points must be [B, N, 2], got shape {tuple(points.shape)}")
    h, w = grid
    xs, ys = token_coords(grid, points.device)
    px = points[..., 0].floor().long().clamp(0, w - 1)
    py = points[..., 1].floor().long().clamp(0, h - 1)
    dist = torch.maximum((xs - px[..., None]).abs(), (ys - py[..., None]).abs())  # [B, N, HW]
    return (dist <= radius).any(dim=1)


def mask_tokens(mask_logits: Tensor, grid: tuple[int, int], radius: int = 0) -> Tensor:
    """Bool ``[B, H*W]``: tokens whose cell holds any positive logit of ``mask_logits``
    ``[B, 1, h, w]``, dilated by ``radius`` tokens."""
    obj = F.adaptive_max_pool2d((mask_logits > 0).float(), grid)
    if radius > 0:
        obj = F.max_pool2d(obj, 2 * radius + 1, stride=1, padding=radius)
    return obj.flatten(1) > 0


# --------------------------------------------------------------------------- strategies


def grid_order(grid: tuple[int, int], device: torch.device | str = "cpu") -> Tensor:
    """Scores ``[H*W]`` whose top-K is a uniform lattice for any K (a nested ordering).

    Tokens on the coarsest dyadic lattice (stride 2^L) come first, then each finer level
    adds the lattice's cell centres (quincunx) before the remaining mid-points; within one
    group tokens are ordered by bit-reversed Morton code so a partial group is spread out.
    At K = H*W/4 the selection is exactly the stride-2 lattice, at H*W/16 stride 4, etc.
    """
    h, w = grid
    xs, ys = token_coords(grid, device)
    levels = max(1, math.ceil(math.log2(max(h, w))))
    either = ys | xs
    level = torch.zeros_like(xs)
    for k in range(1, levels + 1):
        level += (either % (1 << k) == 0).long()
    oy, ox = (ys >> level) & 1, (xs >> level) & 1
    coset = torch.where((oy & ox) == 1, 0, torch.where(oy == 1, 1, 2))
    coset = torch.where(either == 0, 0, coset)
    cy, cx = ys >> (level + 1), xs >> (level + 1)
    morton = torch.zeros_like(xs)
    for bit in range(levels):
        morton |= ((cy >> bit) & 1) << (2 * bit + 1) | ((cx >> bit) & 1) << (2 * bit)
    reversed_morton = torch.zeros_like(xs)
    for bit in range(2 * levels):
        reversed_morton |= ((morton >> bit) & 1) << (2 * levels - 1 - bit)
    key = ((levels - level) * 3 + coset) * (1 << (2 * levels)) + reversed_morton
    rank = torch.empty_like(key)
    rank[torch.argsort(key, stable=True)] = torch.arange(h * w, device=device)
    return (h * w - rank).float() / (h * w)


class RandomScorer:
    """Uniform random scores, seeded by ``(seed, frame_idx)``: same frame, same tokens."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def __call__(self, inputs: ScoringInputs) -> dict[str, Tensor]:
        b = inputs.features.shape[0]
        h, w = inputs.grid
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + inputs.frame_idx)
        scores = torch.rand(b, h * w, generator=gen).to(inputs.features.device)
        return {"combined": scores}


class GridScorer:
    """Uniform coverage regardless of content (see :func:`grid_order`)."""

    def __call__(self, inputs: ScoringInputs) -> dict[str, Tensor]:
        order = grid_order(inputs.grid, inputs.features.device)
        return {"combined": order.expand(inputs.features.shape[0], -1).clone()}


class MaskPriorScorer:
    """The previous frame's mask as a prior, no text: keep a dilated band around the object
    and tokens near the decision boundary (|logit| small).

    Cues: "object" (object probability max-pooled per token cell, dilated by ``dilation``
    tokens) and "uncertainty" (``1 - |2 sigmoid(logit) - 1|`` max-pooled per cell). The
    combined score adds a small proximity term (wide average of the object map) so the
    remaining budget goes to tokens near the object, and a tiny grid term to break ties
    uniformly. Without a previous mask (first frame) or with an empty one (the object
    left), the grid order decides.
    """

    def __init__(self, dilation: int = 2) -> None:
        if dilation < 0:
            raise ValueError(f"dilation must be >= 0, got {dilation}")
        self.dilation = dilation

    def __call__(self, inputs: ScoringInputs) -> dict[str, Tensor]:
        feats = inputs.features
        b = feats.shape[0]
        h, w = inputs.grid
        tie = grid_order((h, w), feats.device).expand(b, -1)
        logits = inputs.prev_mask_logits
        if logits is None:
            zeros = torch.zeros(b, h * w, device=feats.device)
            return {"combined": tie.clone(), "object": zeros, "uncertainty": zeros.clone()}
        prob = torch.sigmoid(logits.float().to(feats.device))
        obj = F.adaptive_max_pool2d(prob, (h, w))
        if self.dilation > 0:
            obj = F.max_pool2d(obj, 2 * self.dilation + 1, stride=1, padding=self.dilation)
        unc = F.adaptive_max_pool2d(1.0 - (2.0 * prob - 1.0).abs(), (h, w))
        k = 2 * max(1, max(h, w) // 4) + 1
        near = F.avg_pool2d(obj, k, stride=1, padding=k // 2, count_include_pad=False)
        obj, unc, near = obj.flatten(1), unc.flatten(1), near.flatten(1)
        combined = obj + unc + 0.1 * near + 1e-3 * tie
        return {"combined": combined, "object": obj, "uncertainty": unc}


class CueRestrictedScorer:
    """Calls a scorer with ``inputs.cues`` replaced (e.g. the router with the text cue only)."""

    def __init__(self, scorer: TokenScorer, cues: tuple[str, ...]) -> None:
        self.scorer, self.cues = scorer, cues

    def __call__(self, inputs: ScoringInputs) -> dict[str, Tensor]:
        return self.scorer(dataclasses.replace(inputs, cues=self.cues))


def make_scorer(config: PruningConfig, router: TokenScorer | None) -> TokenScorer | None:
    """The scorer for ``config.strategy`` (None for "none"); router strategies need ``router``."""
    if config.strategy == "none":
        return None
    if config.strategy == "random":
        return RandomScorer(config.seed)
    if config.strategy == "grid":
        return GridScorer()
    if config.strategy == "mask_prior":
        return MaskPriorScorer()
    if router is None:
        raise RuntimeError(
            f"pruning strategy {config.strategy!r} needs a learned token scorer, but none is "
            "attached: set `predictor.router = <TokenScorer>` (e.g. the router from "
            "fsam2lib.router), or use strategy 'random', 'grid', 'mask_prior' or 'none'"
        )
    cues = ("text",) if config.strategy == "text_only" else config.cues
    return CueRestrictedScorer(router, cues)


def check_scores(scores: object, batch: int, hw: int, source: str) -> dict[str, Tensor]:
    """Validate a scorer's output: a dict with a finite ``"combined"`` ``[B, H*W]`` tensor."""
    if not isinstance(scores, dict) or "combined" not in scores:
        raise TypeError(
            f"{source} must return a dict with a 'combined' entry, got {type(scores).__name__}"
        )
    combined = scores["combined"]
    if not isinstance(combined, Tensor) or tuple(combined.shape) != (batch, hw):
        shape = tuple(combined.shape) if isinstance(combined, Tensor) else type(combined).__name__
        raise ValueError(f"{source}: 'combined' must be [B, H*W] = {(batch, hw)}, got {shape}")
    if not torch.isfinite(combined).all():
        raise ValueError(f"{source}: 'combined' scores must be finite")
    for name, value in scores.items():
        if not isinstance(value, Tensor):
            raise TypeError(
                f"{source}: entry {name!r} must be a tensor, got {type(value).__name__}"
            )
    return {name: value.detach() for name, value in scores.items()}


# --------------------------------------------------------------------------- gather / scatter


def gather_tokens(x: Tensor, idx: Tensor) -> Tensor:
    """Sequence-first ``x`` ``[N, B, C]`` at per-batch indices ``idx`` ``[B, K]`` -> ``[K, B, C]``."""
    index = idx.to(x.device).t().unsqueeze(-1).expand(-1, -1, x.shape[-1])
    return x.gather(0, index)


def scatter_tokens(dense: Tensor, idx: Tensor, values: Tensor) -> Tensor:
    """Copy of ``dense`` ``[N, B, C]`` with rows ``idx`` ``[B, K]`` replaced by ``values``
    ``[K, B, C]`` (sequence-first)."""
    index = idx.to(dense.device).t().unsqueeze(-1).expand(-1, -1, dense.shape[-1])
    return dense.scatter(0, index, values.to(dense.dtype))


# --------------------------------------------------------------------------- memory attention


class MemorySource(Protocol):
    """A stored memory frame as seen by memory attention."""

    frame_idx: int
    memory_keep_idx: Tensor | None  # [B, K] kept grid indices of this frame; None = all


@dataclass
class PruningPlan:
    """Everything :class:`PrunedMemoryAttention` needs for one call.

    grid: ``(H, W)`` of the stride-16 token grid.
    query_idx: ``[B, Kq]`` kept query grid indices (ascending).
    fill: ``[H*W, B, C]`` sequence-first values for pruned query positions.
    memory_sources: the stored frames whose memory chunks SAM2 concatenated, in order
        (filled while SAM2 assembles the memory, before memory attention runs).
    attended: set by the forward: memory frame index -> grid indices attended ``[B, K]``.
    """

    grid: tuple[int, int]
    query_idx: Tensor
    fill: Tensor
    memory_sources: list[MemorySource] = field(default_factory=list)
    attended: dict[int, Tensor] | None = None


def _single_level(x: Tensor | list[Tensor] | None, name: str) -> Tensor:
    if isinstance(x, list):
        if len(x) != 1:
            raise ValueError(f"{name}: expected one feature level, got {len(x)}")
        x = x[0]
    if x is None:
        raise ValueError(f"{name} is required on the pruned path")
    return x


class PrunedMemoryAttention(MemoryAttention):
    """SAM2's ``MemoryAttention`` that can attend over kept tokens only.

    A subclass, so state-dict keys stay SAM2's: install it with hydra
    (``++model.memory_attention._target_=fsam2lib.pruning.PrunedMemoryAttention``) or convert
    a loaded module in place with :meth:`convert`. Without an active plan (see
    :meth:`planned`) ``forward`` is exactly ``MemoryAttention.forward``. With a plan it
    gathers the kept query tokens and each memory frame's kept tokens (by that frame's own
    indices; pointer tokens always kept), runs every layer's own submodules with rotary
    encodings at the tokens' true grid positions, and scatters the result back onto
    ``plan.fill`` -> dense ``[H*W, B, C]``.
    """

    _plan: PruningPlan | None = None

    @classmethod
    def convert(cls, module: MemoryAttention) -> PrunedMemoryAttention:
        """Turn a (loaded) ``MemoryAttention`` into this class in place; weights untouched."""
        if isinstance(module, cls):
            return module
        if type(module) is not MemoryAttention:
            raise TypeError(f"can only convert sam2's MemoryAttention, got {type(module).__name__}")
        module.__class__ = cls
        return module

    @contextmanager
    def planned(self, plan: PruningPlan) -> Iterator[PruningPlan]:
        """Use ``plan`` for the forward calls made inside the block."""
        if self._plan is not None:
            raise RuntimeError("a pruning plan is already active on this memory attention")
        self._plan = plan
        try:
            yield plan
        finally:
            self._plan = None

    def forward(
        self,
        curr: Tensor | list[Tensor],
        memory: Tensor,
        curr_pos: Tensor | list[Tensor] | None = None,
        memory_pos: Tensor | None = None,
        num_obj_ptr_tokens: int = 0,
    ) -> Tensor:
        plan = self._plan
        if plan is None:
            return super().forward(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens)
        curr = _single_level(curr, "curr")
        memory_idx = [src.memory_keep_idx for src in plan.memory_sources]
        kept = self.forward_pruned(
            curr,
            memory,
            _single_level(curr_pos, "curr_pos"),
            _single_level(memory_pos, "memory_pos"),
            num_obj_ptr_tokens,
            plan.grid,
            plan.query_idx,
            memory_idx,
        )
        plan.attended = {
            src.frame_idx: _all_tokens(plan.grid, curr.shape[1], curr.device)
            if idx is None
            else idx
            for src, idx in zip(plan.memory_sources, memory_idx, strict=True)
        }
        return scatter_tokens(plan.fill, plan.query_idx, kept)

    def forward_pruned(
        self,
        curr: Tensor,
        memory: Tensor,
        curr_pos: Tensor,
        memory_pos: Tensor,
        num_obj_ptr_tokens: int,
        grid: tuple[int, int],
        query_idx: Tensor,
        memory_idx: Sequence[Tensor | None],
    ) -> Tensor:
        """Memory attention over kept tokens; returns the kept queries' outputs ``[Kq, B, C]``.

        curr/curr_pos ``[H*W, B, C]``; memory/memory_pos ``[F*H*W + P, B, Cm]`` with F =
        ``len(memory_idx)`` frame chunks then P = ``num_obj_ptr_tokens`` pointer tokens;
        query_idx ``[B, Kq]``; ``memory_idx[f]`` ``[B, Kf]`` grid indices kept in chunk f
        (None = all).
        """
        if not self.batch_first:
            raise NotImplementedError(
                "PrunedMemoryAttention supports batch_first=True (all SAM2 configs)"
            )
        h, w = grid
        hw = h * w
        if curr.shape[0] != hw:
            raise ValueError(f"curr has {curr.shape[0]} tokens but the grid {grid} has {hw}")
        n_frames = len(memory_idx)
        if memory.shape[0] != n_frames * hw + num_obj_ptr_tokens:
            raise RuntimeError(
                f"memory has {memory.shape[0]} tokens, expected {n_frames} recorded memory "
                f"frames x {hw} + {num_obj_ptr_tokens} pointer tokens; the memory layout was "
                "not identified (were all stored outputs produced by PrunedSAM2VideoPredictor?)"
            )
        b, device = curr.shape[1], curr.device
        query_idx = query_idx.to(device)
        frame_idx = [
            _all_tokens(grid, b, device) if i is None else i.to(device) for i in memory_idx
        ]
        ptr = n_frames * hw + torch.arange(num_obj_ptr_tokens, device=device).expand(b, -1)
        mem_index = torch.cat([f * hw + idx for f, idx in enumerate(frame_idx)] + [ptr], dim=1)
        key_grid_idx = torch.cat(frame_idx, dim=1) if frame_idx else query_idx[:, :0]

        output = gather_tokens(curr, query_idx)
        query_pos = gather_tokens(curr_pos, query_idx)
        if self.pos_enc_at_input:
            output = output + 0.1 * query_pos
        output, query_pos = output.transpose(0, 1), query_pos.transpose(0, 1)
        mem = gather_tokens(memory, mem_index).transpose(0, 1)
        mem_pos = gather_tokens(memory_pos, mem_index).transpose(0, 1)

        freqs = _FreqsCache(grid, query_idx, key_grid_idx, self._tables())
        for layer in self.layers:
            output = _layer_forward(
                layer, output, mem, mem_pos, query_pos, freqs, num_obj_ptr_tokens
            )
        return self.norm(output).transpose(0, 1)

    def _tables(self) -> dict:
        """Per-module cache of full-grid rotary tables (not the RoPE modules' own cache)."""
        return self.__dict__.setdefault("_rope_tables", {})


def _all_tokens(grid: tuple[int, int], batch: int, device: torch.device) -> Tensor:
    return torch.arange(grid[0] * grid[1], device=device).expand(batch, -1)


class _FreqsCache:
    """Gathered rotary frequencies for one forward, shared by every layer with the same table."""

    def __init__(
        self, grid: tuple[int, int], query_idx: Tensor, key_idx: Tensor, tables: dict
    ) -> None:
        self.grid, self.query_idx, self.key_idx, self.tables = grid, query_idx, key_idx, tables
        self.gathered: dict[tuple, Tensor] = {}

    def _table(self, attn: RoPEAttention) -> tuple[tuple, Tensor]:
        params = getattr(attn.compute_cis, "keywords", None) or {"module": id(attn)}
        key = (tuple(sorted(params.items())), self.grid, str(self.query_idx.device))
        if key not in self.tables:
            self.tables[key] = grid_freqs(attn, *self.grid).to(self.query_idx.device)
        return key, self.tables[key]

    def get(self, attn: object, which: str) -> Tensor | None:
        """Frequencies for ``which`` in ("query", "key"); None for a non-rotary module."""
        if not isinstance(attn, RoPEAttention):
            return None
        key, table = self._table(attn)
        if (key, which) not in self.gathered:
            idx = self.query_idx if which == "query" else self.key_idx
            self.gathered[(key, which)] = gather_freqs(table, idx)
        return self.gathered[(key, which)]


def _layer_forward(
    layer: MemoryAttentionLayer,
    tgt: Tensor,
    memory: Tensor,
    pos: Tensor,
    query_pos: Tensor,
    freqs: _FreqsCache,
    num_obj_ptr_tokens: int,
) -> Tensor:
    """``MemoryAttentionLayer.forward`` (same submodules, same order of norms, dropouts and
    position additions) with rotary encodings at explicit positions; batch-first tensors."""
    if type(layer) is not MemoryAttentionLayer:
        raise TypeError(
            f"pruned memory attention reimplements MemoryAttentionLayer, got {type(layer).__name__}"
        )
    # self-attention over the kept queries
    tgt2 = layer.norm1(tgt)
    q = k = tgt2 + query_pos if layer.pos_enc_at_attn else tgt2
    q_f = freqs.get(layer.self_attn, "query")
    tgt2 = rope_attention(layer.self_attn, q, k, tgt2, q_f, q_f)
    tgt = tgt + layer.dropout1(tgt2)
    # cross-attention to the kept memory (+ unrotated pointer tokens)
    tgt2 = layer.norm2(tgt)
    attn = layer.cross_attn_image
    rotary = isinstance(attn, RoPEAttention)
    tgt2 = rope_attention(
        attn,
        tgt2 + query_pos if layer.pos_enc_at_cross_attn_queries else tgt2,
        memory + pos if layer.pos_enc_at_cross_attn_keys else memory,
        memory,
        freqs.get(attn, "query"),
        freqs.get(attn, "key"),
        num_obj_ptr_tokens if rotary else 0,
    )
    tgt = tgt + layer.dropout2(tgt2)
    # MLP
    tgt2 = layer.norm3(tgt)
    tgt2 = layer.linear2(layer.dropout(layer.activation(layer.linear1(tgt2))))
    return tgt + layer.dropout3(tgt2)
