"""Which tokens are kept: top-K selection with forced tokens, prompt neighbourhoods, mask
tokens and the nested uniform lattice.

Conventions (SAM2's): a token's grid index is row-major, ``index = y * W + x``; scores are
``[B, H*W]`` in that order, higher = keep."""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from fsam2lib.pruning.config import check_ratio


def num_kept(hw: int, ratio: float, min_tokens: int) -> int:
    """Tokens kept out of ``hw`` at ``ratio``: ``ceil(ratio * hw)``, at least ``min_tokens``,
    at most ``hw``."""
    if hw < 1:
        raise ValueError(f"hw must be positive, got {hw}")
    check_ratio("keep_ratio", ratio)
    if min_tokens < 1:
        raise ValueError(f"min_tokens must be >= 1, got {min_tokens}")
    return min(hw, max(min_tokens, math.ceil(ratio * hw - 1e-9)))


def select_tokens(
    scores: Tensor, keep: int, must_keep: Tensor | None = None, *, grow: bool = True
) -> Tensor:
    """Indices ``[B, K]`` (ascending) of the ``keep`` highest-scoring tokens per row.

    ``must_keep`` ``[B, H*W]`` bool tokens are always selected, ahead of the ranking. With
    ``grow`` (a call at the API boundary), K is ``max(keep, most must-keep tokens in a row)``,
    so K can exceed ``keep`` only when the forced tokens alone do, and NaN scores raise; both
    read values back to the host. ``grow=False`` is the per-frame form: K is ``keep`` (the
    caller knows the forced tokens fit: a lattice share never exceeds the budget) and
    nothing is read back, so the caller checks scores once, elsewhere. Ties are broken
    towards the lower index (deterministic).
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be [B, H*W], got shape {tuple(scores.shape)}")
    n = scores.shape[1]
    if not 1 <= keep <= n:
        raise ValueError(f"keep must be in [1, {n}], got {keep}")
    if grow and torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    if must_keep is not None:
        if must_keep.shape != scores.shape or must_keep.dtype != torch.bool:
            raise ValueError(
                f"must_keep must be a bool tensor of shape {tuple(scores.shape)}, got "
                f"{must_keep.dtype} {tuple(must_keep.shape)}"
            )
        if grow:
            keep = max(keep, int(must_keep.sum(dim=1).max()))
        # forced tokens outrank every score; the stable sort keeps ties at the lower index
        scores = torch.where(must_keep, torch.inf, scores)
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
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
    lattice = _lattice(grid, count, str(device)).expand(batch, -1)
    return lattice.clone() if must_keep is None else must_keep.to(device) | lattice


@lru_cache(maxsize=64)
@torch.inference_mode(False)  # a normal tensor, usable in training as well
def _lattice(grid: tuple[int, int], count: int, device: str) -> Tensor:
    """Bool ``[1, H*W]``: the first ``count`` tokens of :func:`grid_order` (cached, read-only)."""
    lattice = torch.zeros(1, grid[0] * grid[1], dtype=torch.bool, device=device)
    lattice[0, torch.topk(grid_order(grid, device), count).indices] = True
    return lattice


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


def grid_order(grid: tuple[int, int], device: torch.device | str = "cpu") -> Tensor:
    """Scores ``[H*W]`` whose top-K is a uniform lattice for any K (a nested ordering).

    Computed once per grid and device and shared (treat it as read-only): it depends on the
    grid alone, and the scorers that read it run on every frame.

    Tokens on the coarsest dyadic lattice (stride 2^L) come first, then each finer level
    adds the lattice's cell centres (quincunx) before the remaining mid-points; within one
    group tokens are ordered by bit-reversed Morton code so a partial group is spread out.
    At K = H*W/4 the selection is exactly the stride-2 lattice, at H*W/16 stride 4, etc.
    """
    return _grid_order(tuple(int(n) for n in grid), str(device))


@lru_cache(maxsize=64)
@torch.inference_mode(False)  # a normal tensor, usable in training as well
def _grid_order(grid: tuple[int, int], device: str) -> Tensor:
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
