"""How memory attention learns which stored frame each memory chunk came from: by observing
SAM2 read them (see :mod:`fsam2lib.predictor.predictor` for why this is exact).

Each frame's stored output is a :class:`TrackedOutput`; while :func:`record_memory_reads` is
active, every read of its ``"maskmem_features"`` is logged, in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from torch import Tensor

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

    def __getitem__(self, key: str) -> object:
        if key == "maskmem_features":
            reads = _ACTIVE_READS.get()
            if reads is not None:
                reads.append(self)
        return super().__getitem__(key)


@contextmanager
def record_memory_reads() -> Iterator[list[TrackedOutput]]:
    """Collect, in order, the ``TrackedOutput``s whose memory features are read in the block."""
    reads: list[TrackedOutput] = []
    token = _ACTIVE_READS.set(reads)
    try:
        yield reads
    finally:
        _ACTIVE_READS.reset(token)
