"""What the predictor keeps per object in the inference state, and what it shows of it.

``state["fsam2"]`` holds, keyed by client object id: ``"text"`` (an
:class:`~fsam2lib.predictor.object_text.ObjectText` per object) and ``"records"``
(``{obj_id: {frame_idx: FrameRecord}}``). ``token_scores`` shows a record as
:class:`TokenScores`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from fsam2lib.pruning.config import PruningConfig

SIDE_KEY = "fsam2"


def new_side_entry() -> dict:
    """An empty ``state["fsam2"]``."""
    return {"text": {}, "records": {}}


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
    memory_keep_idx: Tensor | None = None  # [B, Km] this frame's tokens kept as memory
    memory_attention_ran: bool = False
    attended_memory: dict[int, Tensor] = field(default_factory=dict)


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
            kept_memory_idx=dict(record.attended_memory),
            stored_memory_idx=record.memory_keep_idx,
            memory_attention_ran=record.memory_attention_ran,
            grid=record.grid,
            strategy=record.config.strategy,
            prompted=record.prompted,
            description=record.text,
        )
