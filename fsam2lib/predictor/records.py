"""What the predictor keeps per object in the inference state, and what it shows of it.

``state["fsam2"]`` holds, keyed by client object id: ``"text"`` (an
:class:`~fsam2lib.predictor.object_text.ObjectText` per object) and ``"records"``
(``{obj_id: {frame_idx: FrameRecord}}``); and ``"score_check"``, the
:class:`ScoreCheck` of the propagation under way. ``token_scores`` shows a record as
:class:`TokenScores`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from fsam2lib.pruning.config import PruningConfig

SIDE_KEY = "fsam2"


def new_side_entry() -> dict:
    """An empty ``state["fsam2"]``."""
    return {"text": {}, "records": {}, "score_check": ScoreCheck()}


def side_entry(state: dict) -> dict:
    """``state["fsam2"]``, created if the state lacks it."""
    if SIDE_KEY not in state:
        state[SIDE_KEY] = new_side_entry()
    return state[SIDE_KEY]


@dataclass
class FrameRecord:
    """What pruning decided on one frame for one object (shown by ``token_scores``)."""

    frame_idx: int
    grid: tuple[int, int]
    config: PruningConfig
    fingerprint: tuple
    text: str | None
    scores: dict[str, Tensor]
    query_idx: Tensor  # [B, Kq] selected query tokens
    must_keep: Tensor | None  # [B, H*W] prompt neighbourhoods
    prompted: bool
    # 0-d bool on the scores' device, for a tracked frame: its scores were finite (read once
    # per propagation, not per frame); None where they were checked when scored
    finite: Tensor | None = None
    memory_keep_idx: Tensor | None = None  # [B, Km] this frame's tokens kept as memory
    memory_attention_ran: bool = False
    # memory frame -> its tokens attended here (as stored: int32 for a compact frame; None:
    # every token); TokenScores shows them as int64 [B, K]
    attended_memory: dict[int, Tensor | None] = field(default_factory=dict)


@dataclass(frozen=True)
class TokenScores:
    """Scores and selections of one processed frame for one object.

    maps: ``"combined"`` and one map per cue, each ``[B, H*W]`` (row-major ``y*W + x``).
    kept_query_idx: ``[B, Kq]`` query tokens selected (used iff ``memory_attention_ran``).
    kept_memory_idx: memory frame index -> ``[B, K]`` tokens of that frame attended here.
    stored_memory_idx: ``[B, Km]`` this frame's tokens kept as memory for later frames.
    memory_attention_ran: False where SAM2 skips memory attention (a first prompted frame).
    grid: ``(H, W)``. strategy: the pruning strategy used. prompted: the frame has a prompt.
    description: the object text used, or None.
    """

    maps: dict[str, Tensor]
    kept_query_idx: Tensor
    kept_memory_idx: dict[int, Tensor]
    stored_memory_idx: Tensor
    memory_attention_ran: bool
    grid: tuple[int, int]
    strategy: str
    prompted: bool
    description: str | None

    @classmethod
    def of(cls, record: FrameRecord) -> TokenScores:
        """The public view of a stored record (its dicts copied)."""
        return cls(
            maps=dict(record.scores),
            kept_query_idx=record.query_idx,
            kept_memory_idx={
                t: _grid_indices(idx, record.grid, record.query_idx)
                for t, idx in record.attended_memory.items()
            },
            stored_memory_idx=record.memory_keep_idx,
            memory_attention_ran=record.memory_attention_ran,
            grid=record.grid,
            strategy=record.config.strategy,
            prompted=record.prompted,
            description=record.text,
        )


def _grid_indices(idx: Tensor | None, grid: tuple[int, int], like: Tensor) -> Tensor:
    """Stored kept indices as int64 ``[B, K]``; None (every token) as the full grid, on the
    device and with the batch of ``like``."""
    if idx is None:
        return torch.arange(grid[0] * grid[1], device=like.device).expand(like.shape[0], -1)
    return idx.long()


PER_OBJECT_KEYS = ("text", "records")  # the parts of ``state["fsam2"]`` keyed by object id


@dataclass
class ScoreCheck:
    """Whether the tracked frames of one propagation had finite token scores.

    Checking each frame would read a value back to the host on every frame (a stall on a
    GPU); instead each frame's flag is folded into one device tensor, read once when the
    propagation ends (:meth:`raise_if_not_finite`)."""

    finite: Tensor | None = None
    frames: tuple[int, int] | None = None  # (lowest, highest) frame index folded in
    objects: list = field(default_factory=list)

    def add(self, finite: Tensor, frame_idx: int, obj_id: object) -> None:
        self.finite = finite if self.finite is None else self.finite & finite
        lo, hi = self.frames or (frame_idx, frame_idx)
        self.frames = (min(lo, frame_idx), max(hi, frame_idx))
        if obj_id not in self.objects:
            self.objects.append(obj_id)

    def raise_if_not_finite(self) -> None:
        """Raise ValueError, naming the frames and objects, if any folded score was not finite."""
        if self.finite is None or bool(self.finite):
            return
        lo, hi = self.frames
        raise ValueError(
            f"the token scorer returned non-finite scores on at least one tracked frame in "
            f"frames {lo}..{hi} (objects {self.objects}); the masks of those frames were "
            "computed from an arbitrary token selection and must not be used. Check the "
            "router's weights and inputs (token_scores(state, frame, obj_id) shows each "
            "frame's scores)"
        )
