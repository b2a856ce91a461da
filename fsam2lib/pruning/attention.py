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
from functools import lru_cache
from typing import Protocol

import torch
from sam2.modeling.memory_attention import MemoryAttention, MemoryAttentionLayer
from sam2.modeling.sam.transformer import RoPEAttention
from torch import Tensor

from fsam2lib.pruning.hot_path import moved
from fsam2lib.pruning.rope import gather_freqs, grid_freqs, rope_attention


def token_index(idx: Tensor, channels: int, device: torch.device) -> Tensor:
    """Per-batch indices ``idx`` ``[B, K]`` as the ``[K, B, channels]`` index that
    :func:`gather_tokens` and :func:`scatter_tokens` take (build once, use for every tensor
    with that many channels)."""
    return moved(idx, device).t().unsqueeze(-1).expand(-1, -1, channels)


def gather_tokens(x: Tensor, idx: Tensor) -> Tensor:
    """Sequence-first ``x`` ``[N, B, C]`` at per-batch indices ``idx`` ``[B, K]`` -> ``[K, B, C]``
    (or at a prepared :func:`token_index` ``[K, B, C]``)."""
    index = idx if idx.dim() == 3 else token_index(idx, x.shape[-1], x.device)
    return x.gather(0, index)


def scatter_tokens(dense: Tensor, idx: Tensor, values: Tensor) -> Tensor:
    """Copy of ``dense`` ``[N, B, C]`` with rows ``idx`` ``[B, K]`` (or a prepared
    :func:`token_index`) replaced by ``values`` ``[K, B, C]`` (sequence-first)."""
    index = idx if idx.dim() == 3 else token_index(idx, dense.shape[-1], dense.device)
    return dense.scatter(0, index, moved(values, dtype=dense.dtype))


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
    attended: set by the forward: memory frame index -> grid indices attended ``[B, K]``
        (None: every token of that frame).
    """

    grid: tuple[int, int]
    query_idx: Tensor
    fill: Tensor
    memory_sources: list[MemorySource] = field(default_factory=list)
    attended: dict[int, Tensor | None] | None = None


@dataclass
class GatedPlan:
    """Training's counterpart of :class:`PruningPlan` (``fsam2lib.train.mask_objective``):
    every token stays in the sequences, and keep gates (0/1 in the forward pass, a
    straight-through gradient behind them) do what gathering does at inference.

    query_gate: ``[B, H*W]``: a kept query's output is memory-conditioned, a pruned one's
        is ``fill``; pruned queries are also hidden from the kept ones' self-attention.
    memory_sources: the stored frames read, in order (as for :class:`PruningPlan`); each
        one's ``gate`` ``[B, H*W]`` (None: all kept) hides its pruned memory tokens from
        cross-attention. Object pointers are always attended.
    """

    grid: tuple[int, int]
    query_gate: Tensor
    fill: Tensor
    memory_sources: list[MemorySource] = field(default_factory=list)


def _match_queries(memory: Tensor, curr: Tensor | list[Tensor]) -> Tensor:
    """``memory`` in the queries' dtype where nothing else would reconcile them.

    SAM2 stores memory features in bfloat16; its concatenation with the (float32) object
    pointers usually promotes the memory to float32, but a frame with no pointer to read (an
    object added mid-video, tracked on frames before its prompt) attends to bfloat16 memory
    alone, and float32 weights then fail ("mat1 and mat2 must have the same dtype") unless
    autocast is on. Stock sam2 fails there on CPU; this predictor casts instead."""
    queries = curr[0] if isinstance(curr, list) else curr
    if memory.dtype == queries.dtype or torch.is_autocast_enabled(queries.device.type):
        return memory
    return memory.to(queries.dtype)


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
    def planned(self, plan: PruningPlan | GatedPlan) -> Iterator[PruningPlan | GatedPlan]:
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
        memory = _match_queries(memory, curr)
        plan = self._plan
        if plan is None:
            stock = self.__dict__.get("_compiled_stock") or super().forward
            return stock(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens)
        curr = _single_level(curr, "curr")
        if isinstance(plan, GatedPlan):
            return self.forward_gated(
                curr,
                memory,
                _single_level(curr_pos, "curr_pos"),
                _single_level(memory_pos, "memory_pos"),
                num_obj_ptr_tokens,
                plan,
            )
        memory_idx = [src.memory_keep_idx for src in plan.memory_sources]
        index = token_index(plan.query_idx, curr.shape[-1], curr.device)
        kept = self.forward_pruned(
            curr,
            memory,
            _single_level(curr_pos, "curr_pos"),
            _single_level(memory_pos, "memory_pos"),
            num_obj_ptr_tokens,
            plan.grid,
            index,
            memory_idx,
            [src.is_compact for src in plan.memory_sources],
        )
        plan.attended = {
            src.frame_idx: idx for src, idx in zip(plan.memory_sources, memory_idx, strict=True)
        }
        return scatter_tokens(plan.fill, index, kept)

    def forward_gated(
        self,
        curr: Tensor,
        memory: Tensor,
        curr_pos: Tensor,
        memory_pos: Tensor,
        num_obj_ptr_tokens: int,
        plan: GatedPlan,
    ) -> Tensor:
        """Dense memory attention under keep gates -> ``[H*W, B, C]``: in the forward pass
        the same values as :meth:`forward_pruned` scattered onto ``plan.fill`` (gates of 0 or
        1), with gradients reaching the gates (training only; see :class:`GatedPlan`)."""
        hw, b = curr.shape[0], curr.shape[1]
        everything = torch.arange(hw, device=curr.device).expand(b, -1)
        sources = plan.memory_sources
        args = self.plan_kept(
            curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens, plan.grid, everything,
            [None] * len(sources),
        )  # fmt: skip
        ones = curr.new_ones(b, hw)
        memory_gate = torch.cat(
            [ones if src.gate is None else src.gate for src in sources]
            + [curr.new_ones(b, num_obj_ptr_tokens)],
            dim=1,
        )
        out = self.attend_kept(*args, query_gate=plan.query_gate, memory_gate=memory_gate)
        gate = plan.query_gate.t()[..., None]
        return gate * out + (1 - gate) * plan.fill

    def forward_pruned(self, *args, **kwargs) -> Tensor:
        """Memory attention over kept tokens; returns the kept queries' outputs ``[Kq, B, C]``:
        :meth:`attend_kept` (compiled by :meth:`compile_paths`) on the arguments
        :meth:`plan_kept` makes of this call's (same signature as :meth:`plan_kept`)."""
        attend = self.__dict__.get("_compiled_kept") or self.attend_kept
        return attend(*self.plan_kept(*args, **kwargs))

    def plan_kept(
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
    ) -> tuple:
        """The arguments of :meth:`attend_kept` for attending over kept tokens only.

        curr/curr_pos ``[H*W, B, C]``; query_idx ``[B, Kq]`` (or its :func:`token_index`);
        memory: one chunk per entry of ``memory_idx``, then P = ``num_obj_ptr_tokens``
        pointer tokens; ``memory_idx[f]`` ``[B, Kf]`` grid indices kept in chunk f (None =
        all). Chunk f of ``memory`` holds ``H*W`` tokens, or only its ``Kf`` kept ones (in
        ``memory_idx[f]`` order) where ``compact[f]`` (default: no chunk is compact).
        ``memory_pos`` holds ``H*W`` tokens per chunk whatever ``compact`` says (SAM2's one
        shared encoding plus each frame's temporal one: a compact frame stores no copy of
        its own), then the P pointer encodings.

        Per call this builds two index tensors (kept memory positions, kept key grid
        indices) from the chunks' own indices and cached layouts, and reads nothing back to
        the host; a memory made of compact chunks only is attended as SAM2 concatenated it.
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
        chunks = [hw if i is None else i.shape[1] for i in memory_idx]
        lengths = [n if c else hw for n, c in zip(chunks, compact, strict=True)]
        n_mem = sum(lengths)
        if memory.shape[0] != n_mem + num_obj_ptr_tokens:
            raise RuntimeError(
                f"memory has {memory.shape[0]} tokens, expected {n_mem} in "
                f"{len(memory_idx)} recorded memory frames + {num_obj_ptr_tokens} pointer tokens; "
                "the memory layout was not identified (were all stored outputs produced by "
                "PrunedSAM2VideoPredictor?)"
            )
        if memory_pos.shape[0] != len(memory_idx) * hw + num_obj_ptr_tokens:
            raise RuntimeError(
                f"memory_pos has {memory_pos.shape[0]} tokens, expected {hw} per memory frame "
                f"({len(memory_idx)}) + {num_obj_ptr_tokens} pointer tokens"
            )
        layout = _layout(hw, tuple(chunks), tuple(compact), str(device))
        key_grid_idx = (
            torch.cat(
                [
                    layout.all_tokens.expand(b, -1) if i is None else moved(i, device)
                    for i in memory_idx
                ],
                1,
            )
            if memory_idx
            else layout.all_tokens[:, :0].expand(b, -1)
        )
        pos_idx = key_grid_idx + layout.frame_starts
        mem_idx = (
            None
            if layout.identity
            else torch.where(layout.compact, layout.offsets, key_grid_idx + layout.offsets)
        )
        index = (
            query_idx if query_idx.dim() == 3 else token_index(query_idx, curr.shape[-1], device)
        )
        q_idx = query_idx if query_idx.dim() == 2 else index[:, :, 0].t()
        freqs = _FreqsCache(grid, q_idx, key_grid_idx, self._tables())
        layer_freqs = [
            (
                freqs.get(layer.self_attn, "query"),
                freqs.get(layer.cross_attn_image, "query"),
                freqs.get(layer.cross_attn_image, "key"),
            )
            for layer in self.layers
        ]
        return (
            curr,
            curr_pos,
            memory,
            memory_pos,
            index,
            mem_idx,
            pos_idx,
            layer_freqs,
            num_obj_ptr_tokens,
        )

    def attend_kept(
        self,
        curr: Tensor,
        curr_pos: Tensor,
        memory: Tensor,
        memory_pos: Tensor,
        query_index: Tensor,
        memory_index: Tensor | None,
        pos_index: Tensor,
        layer_freqs: list[tuple[Tensor | None, Tensor | None, Tensor | None]],
        num_obj_ptr_tokens: int,
        query_gate: Tensor | None = None,
        memory_gate: Tensor | None = None,
    ) -> Tensor:
        """The tensor work of :meth:`forward_pruned`, with every decision already made: one
        gather per side, the layers, the norm -> ``[Kq, B, C]``. What :meth:`compile_paths`
        compiles (no Python branch on tensor values, no host read).

        query_index: :func:`token_index` of the kept queries; memory_index ``[B, Km]``:
        positions of the kept memory tokens in ``memory`` less its pointer rows (None: the
        memory is already exactly the kept tokens); pos_index ``[B, Km]``: positions of their
        encodings in ``memory_pos`` less its pointer rows; layer_freqs: per layer, the rotary
        frequencies of its self-attention queries and its cross-attention queries and keys at
        the kept tokens (None for a non-rotary module); the last ``num_obj_ptr_tokens`` rows
        of ``memory`` and ``memory_pos`` are object pointers, kept and never rotated.
        query_gate ``[B, Kq]`` / memory_gate ``[B, Km + P]``: keep gates of the queries (in
        self-attention) and of the memory (in cross-attention), for :meth:`forward_gated`.
        """
        mem_end, pos_end = (
            memory.shape[0] - num_obj_ptr_tokens,
            memory_pos.shape[0] - num_obj_ptr_tokens,
        )
        mem = memory
        if memory_index is not None:
            mem = torch.cat([gather_tokens(memory[:mem_end], memory_index), memory[mem_end:]])
        mem_pos = torch.cat([gather_tokens(memory_pos[:pos_end], pos_index), memory_pos[pos_end:]])
        output = gather_tokens(curr, query_index)
        query_pos = gather_tokens(curr_pos, query_index)
        if self.pos_enc_at_input:
            output = output + 0.1 * query_pos
        output, query_pos = output.transpose(0, 1), query_pos.transpose(0, 1)
        mem, mem_pos = mem.transpose(0, 1), mem_pos.transpose(0, 1)
        for layer, freqs in zip(self.layers, layer_freqs, strict=True):
            output = _layer_forward(
                layer, output, mem, mem_pos, query_pos, freqs, num_obj_ptr_tokens,
                query_gate, memory_gate,
            )  # fmt: skip
        return self.norm(output).transpose(0, 1)

    def compile_paths(self, **compile_kwargs) -> PrunedMemoryAttention:
        """Compile the stock path (``MemoryAttention.forward``, when no plan is active) and
        the pruned path's tensor work (:meth:`attend_kept`) with ``torch.compile``; the
        planning around them stays eager (layouts are cached, so it is a few index ops).
        Both compile to full graphs. Default options: ``dynamic=True`` (the number of memory
        frames and pointers grows until the bank is full), as sam2's VOS predictor compiles
        memory attention; pass ``mode=...`` etc. to change them."""
        options = {"dynamic": True, "fullgraph": True, **compile_kwargs}
        self.__dict__["_compiled_stock"] = torch.compile(
            MemoryAttention.forward.__get__(self), **options
        )
        self.__dict__["_compiled_kept"] = torch.compile(self.attend_kept, **options)
        return self

    def _tables(self) -> dict:
        """Per-module cache of rotary tables for non-square grids (a square grid uses the
        RoPE modules' own table; see ``_FreqsCache``)."""
        return self.__dict__.setdefault("_rope_tables", {})


@dataclass(frozen=True)
class _Layout:
    """Index tensors of one memory layout (``[1, sum of kept]``, cached): ``frame_starts``:
    the first position of each token's frame in a dense concatenation (f * H*W);
    ``offsets``: a token's position in the concatenation SAM2 made, less its grid index for
    a dense chunk (its chunk's start) or in full for a compact one; ``compact``: the token
    lies in a compact chunk; ``identity``: every chunk is compact (nothing to gather)."""

    all_tokens: Tensor
    frame_starts: Tensor
    offsets: Tensor
    compact: Tensor
    identity: bool


@lru_cache(maxsize=32)
@torch.inference_mode(False)  # normal tensors, usable in training as well
def _layout(hw: int, chunks: tuple[int, ...], compact: tuple[bool, ...], device: str) -> _Layout:
    frame_starts, offsets, flags, at = [], [], [], 0
    for f, (n, c) in enumerate(zip(chunks, compact, strict=True)):
        frame_starts.append(torch.full((n,), f * hw, dtype=torch.long))
        offsets.append(torch.arange(at, at + n) if c else torch.full((n,), at, dtype=torch.long))
        flags.append(torch.full((n,), c, dtype=torch.bool))
        at += n if c else hw

    def row(parts: list[Tensor], dtype: torch.dtype) -> Tensor:
        return (torch.cat(parts) if parts else torch.zeros(0, dtype=dtype))[None].to(device)

    return _Layout(
        all_tokens=torch.arange(hw, device=device)[None],
        frame_starts=row(frame_starts, torch.long),
        offsets=row(offsets, torch.long),
        compact=row(flags, torch.bool),
        identity=all(compact),
    )


class _FreqsCache:
    """Gathered rotary frequencies for one forward, shared by every layer with the same table."""

    def __init__(
        self, grid: tuple[int, int], query_idx: Tensor, key_idx: Tensor, tables: dict
    ) -> None:
        self.grid, self.query_idx, self.key_idx, self.tables = grid, query_idx, key_idx, tables
        self.gathered: dict[tuple, Tensor] = {}

    def _table(self, attn: RoPEAttention) -> tuple[tuple, Tensor]:
        """The full-grid table of ``attn``. On a square grid it is the module's own
        ``freqs_cis``, brought to the grid exactly as ``RoPEAttention.forward`` does it
        (same ``compute_cis`` call, same device move): a table beside it would double the
        memory, and left untouched the module would keep its 64 x 64 default (4 MiB per
        module at 256 channels) where stock SAM2 swaps it for the smaller grid it meets.
        A non-square grid, which stock SAM2 cannot rotate, gets a table of its own."""
        params = getattr(attn.compute_cis, "keywords", None) or {"module": id(attn)}
        device = self.query_idx.device
        key = (tuple(sorted(params.items())), self.grid, str(device))
        h, w = self.grid
        if h == w:
            attn.freqs_cis = moved(attn.freqs_cis, device)  # no op dispatched once it is there
            if attn.freqs_cis.shape[0] != h * w:
                attn.freqs_cis = grid_freqs(attn, h, w).to(device)
            return key, attn.freqs_cis
        if key not in self.tables:
            self.tables[key] = grid_freqs(attn, h, w).to(device)
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
    freqs: tuple[Tensor | None, Tensor | None, Tensor | None],
    num_obj_ptr_tokens: int,
    query_gate: Tensor | None = None,
    memory_gate: Tensor | None = None,
) -> Tensor:
    """``MemoryAttentionLayer.forward`` (same submodules, same order of norms, dropouts and
    position additions) with rotary encodings at explicit positions; batch-first tensors;
    optional keep gates on the self-attention's and the cross-attention's keys."""
    if type(layer) is not MemoryAttentionLayer:
        raise TypeError(
            f"pruned memory attention reimplements MemoryAttentionLayer, got {type(layer).__name__}"
        )
    # self-attention over the kept queries
    tgt2 = layer.norm1(tgt)
    q = k = tgt2 + query_pos if layer.pos_enc_at_attn else tgt2
    self_q, cross_q, cross_k = freqs
    tgt2 = rope_attention(layer.self_attn, q, k, tgt2, self_q, self_q, key_gate=query_gate)
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
        cross_q,
        cross_k,
        num_obj_ptr_tokens if rotary else 0,
        key_gate=memory_gate,
    )
    tgt = tgt + layer.dropout2(tgt2)
    # MLP
    tgt2 = layer.norm3(tgt)
    tgt2 = layer.linear2(layer.dropout(layer.activation(layer.linear1(tgt2))))
    return tgt + layer.dropout3(tgt2)
