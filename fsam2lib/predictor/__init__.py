"""The pruned SAM2 video predictor and how to build one.

``predictor`` is the class: SAM2's ``SAM2VideoPredictor`` with its stock API and a few of
its internal steps overridden (its docstring explains how the plug-in works).
``frame_pruning`` makes one frame's pruning decisions, ``memory_reads`` observes which
stored frames SAM2 reads as memory (and stores a frame's memory compact), ``records`` is
what is kept per object in the inference state (and ``TokenScores``, what ``token_scores``
shows of it), ``state_policy`` says what a state keeps and ``bounded_state`` releases what
SAM2 can no longer read, ``object_text`` is the text per object, and ``build`` makes a
ready predictor.
"""

from fsam2lib.predictor.bounded_state import ReleasedFrameError
from fsam2lib.predictor.build import build_predictor
from fsam2lib.predictor.object_text import clip_describer, clip_text_encoder
from fsam2lib.predictor.predictor import PrunedSAM2VideoPredictor
from fsam2lib.predictor.records import TokenScores
from fsam2lib.predictor.state_policy import StatePolicy

__all__ = [
    "PrunedSAM2VideoPredictor",
    "ReleasedFrameError",
    "StatePolicy",
    "TokenScores",
    "build_predictor",
    "clip_describer",
    "clip_text_encoder",
]
