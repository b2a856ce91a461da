"""SAM2's memory attention over kept tokens only: gather, attend with RoPE at true grid
positions, scatter back onto a fill.

Conventions (SAM2's): inside memory attention tensors are sequence-first ``[H*W, B, C]``;
memory is the concatenation of one chunk per stored memory frame -- ``H*W`` tokens for a
dense frame, its ``K`` kept tokens for a compact one -- followed by ``num_obj_ptr_tokens``
object-pointer tokens, which are never pruned and never rotated."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import torch
from sam2.modeling.memory_attention import MemoryAttention, MemoryAttentionLayer
from sam2.modeling.sam.transformer import RoPEAttention
from torch import Tensor

from fsam2lib.pruning.rope import gather_freqs, grid_freqs, rope_attention


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
    is_compact: bool  # only the kept tokens are stored (the chunk holds K tokens, not H*W)


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
            [src.is_compact for src in plan.memory_sources],
        )
        plan.attended = {
            src.frame_idx: _all_tokens(plan.grid, curr.shape[1], curr.device)
            if idx is None
            else idx.long()
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
        compact: Sequence[bool] | None = None,
    ) -> Tensor:
        """Memory attention over kept tokens; returns the kept queries' outputs ``[Kq, B, C]``.

        curr/curr_pos ``[H*W, B, C]``; memory/memory_pos: one chunk per entry of
        ``memory_idx``, then P = ``num_obj_ptr_tokens`` pointer tokens; query_idx ``[B, Kq]``;
        ``memory_idx[f]`` ``[B, Kf]`` grid indices kept in chunk f (None = all). Chunk f holds
        ``H*W`` tokens, or only its ``Kf`` kept ones (in ``memory_idx[f]`` order) where
        ``compact[f]`` (default: no chunk is compact).
        """
        if not self.batch_first:
            raise NotImplementedError(
                "PrunedMemoryAttention supports batch_first=True (all SAM2 configs)"
            )
        h, w = grid
        hw = h * w
        if curr.shape[0] != hw:
            raise ValueError(f"curr has {curr.shape[0]} tokens but the grid {grid} has {hw}")
        compact = [False] * len(memory_idx) if compact is None else list(compact)
        if len(compact) != len(memory_idx) or any(
            c and i is None for c, i in zip(compact, memory_idx, strict=True)
        ):
            raise ValueError("compact must flag one chunk per memory_idx entry, each with indices")
        b, device = curr.shape[1], curr.device
        query_idx = query_idx.to(device)
        frame_idx = [
            _all_tokens(grid, b, device) if i is None else i.to(device, torch.int64)
            for i in memory_idx
        ]
        lengths = [i.shape[1] if c else hw for i, c in zip(frame_idx, compact, strict=True)]
        if memory.shape[0] != sum(lengths) + num_obj_ptr_tokens:
            raise RuntimeError(
                f"memory has {memory.shape[0]} tokens, expected {sum(lengths)} in "
                f"{len(memory_idx)} recorded memory frames + {num_obj_ptr_tokens} pointer tokens; "
                "the memory layout was not identified (were all stored outputs produced by "
                "PrunedSAM2VideoPredictor?)"
            )
        starts = [sum(lengths[:f]) for f in range(len(lengths))]
        local = [
            torch.arange(n, device=device).expand(b, -1) if c else idx
            for idx, n, c in zip(frame_idx, lengths, compact, strict=True)
        ]
        ptr = sum(lengths) + torch.arange(num_obj_ptr_tokens, device=device).expand(b, -1)
        mem_index = torch.cat([s + idx for s, idx in zip(starts, local, strict=True)] + [ptr], 1)
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
