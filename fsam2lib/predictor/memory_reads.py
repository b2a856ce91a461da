"""How memory attention learns which stored frame each memory chunk came from: by observing
SAM2 read them (see :mod:`fsam2lib.predictor.predictor` for why this is exact).

Each frame's stored output is a :class:`TrackedOutput`; while :func:`record_memory_reads` is
active, every read of its ``"maskmem_features"`` is logged, in order.

A compacted output (:meth:`TrackedOutput.compact`) stores only its kept memory tokens:
``"maskmem_features"`` is ``[B, C, K]``, which SAM2 flattens and permutes exactly as it does
a dense ``[B, C, H, W]`` map, so the memory it concatenates holds ``K`` tokens for that frame
and no dense copy of the features is ever made. ``"maskmem_pos_enc"`` stays SAM2's one
encoding shared by every frame (dense): gathering it per frame on every read cost several
ops a memory frame, and pruned memory attention gathers all frames' positions in one go.
Only pruned memory attention can read such a chunk, so a compact output refuses to be read
outside :func:`record_memory_reads`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor

from fsam2lib.pruning.hot_path import moved

_ACTIVE_READS: ContextVar[list | None] = ContextVar("fsam2_memory_reads", default=None)


class TrackedOutput(dict):
    """A frame's stored SAM2 output that knows its frame and its kept memory tokens.

    Behaves as the plain dict SAM2 builds; in addition, reading ``"maskmem_features"``
    while :func:`record_memory_reads` is active appends this output to the active list.
    """

    def __init__(
        self, data: dict, frame_idx: int, is_init_cond_frame: bool, reverse: bool, prompted: bool
    ) -> None:
        super().__init__(data)
        self.frame_idx = frame_idx
        self.is_init_cond_frame = is_init_cond_frame
        self.reverse = reverse
        self.prompted = prompted
        self.memory_keep_idx: Tensor | None = None  # [B, K] grid indices; None = all tokens
        self.conditioned: Tensor | None = None  # [B, C, H, W] memory-conditioned features
        self.compact_grid: tuple[int, int] | None = None  # set once only kept tokens are stored
        # training only (fsam2lib.train.mask_objective): [B, H*W] keep gate of this frame's
        # memory tokens, 0/1 forward with a straight-through gradient; None = all kept
        self.gate: Tensor | None = None

    @property
    def is_compact(self) -> bool:
        return self.compact_grid is not None

    def compact(self) -> None:
        """Store only the ``memory_keep_idx`` tokens of the memory features (SAM2's storage
        dtype) and the indices as int32; a no-op when every token is kept."""
        features, idx = dict.get(self, "maskmem_features"), self.memory_keep_idx
        if self.is_compact or features is None or idx is None:
            return
        b, c, h, w = features.shape
        if idx.shape[1] == h * w:
            return
        self["maskmem_features"] = _gather_grid(features, idx)
        self.memory_keep_idx = moved(idx, features.device, torch.int32)
        self.compact_grid = (h, w)

    def __getitem__(self, key: str) -> object:
        if key in ("maskmem_features", "maskmem_pos_enc"):
            reads = _ACTIVE_READS.get()
            if self.is_compact and reads is None:
                raise RuntimeError(
                    f"the memory of frame {self.frame_idx} is stored compact (kept tokens only) "
                    "and only pruned memory attention can read it; with strategy 'none', "
                    "re-propagate from the prompted frame, or use StatePolicy(compact_memory=False)"
                )
            if key == "maskmem_features" and reads is not None:
                reads.append(self)
        return super().__getitem__(key)


def _gather_grid(x: Tensor, idx: Tensor) -> Tensor:
    """``x`` ``[B, C, H, W]`` at grid indices ``idx`` ``[B, K]`` -> ``[B, C, K]``."""
    index = moved(idx, x.device, torch.int64)[:, None, :].expand(-1, x.shape[1], -1)
    return x.flatten(2).expand(index.shape[0], -1, -1).gather(2, index)


@contextmanager
def record_memory_reads() -> Iterator[list[TrackedOutput]]:
    """Collect, in order, the ``TrackedOutput``s whose memory features are read in the block."""
    reads: list[TrackedOutput] = []
    token = _ACTIVE_READS.set(reads)
    try:
        yield reads
    finally:
        _ACTIVE_READS.reset(token)
