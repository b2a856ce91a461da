"""The text cue's own loss, shared by both router objectives.

Trained only through the combining MLP, the text cue carried whatever helped the MLP most —
with the mask prior dominant, often the object's appearance rather than the description, and
with either sign — so its heatmaps did not read as "where the text points". The same happened
under the mask objective: its text cue drifted and told the described object from the others
on fewer frames. This loss asks the raw cue (a cosine in [-1, 1], scaled to logits) to single
out the described object on its own.

Other objects' tokens are hard negatives: without extra weight they are a sliver of the
negatives, and a cue that lights up every object (or every red one) scores almost as well as
one that follows the description.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

TEXT_CUE_SCALE = 10.0
TEXT_CUE_WEIGHT = 0.5  # the recall objective's weight of this loss beside its own
HARD_NEGATIVE_WEIGHT = 3.0  # 0: plain negatives; 1: weighted like the positives


def text_cue_bce(
    text: Tensor,
    positive: Tensor,
    others: Tensor,
    hard_negative_weight: float = HARD_NEGATIVE_WEIGHT,
    pos_weight: Tensor | None = None,
) -> Tensor:
    """BCE of the raw text cue ``[B, H*W]`` against the described object's tokens
    (``positive``, 0/1) in which the other objects' tokens (``others``, 0/1) weigh
    ``hard_negative_weight`` times the positives' weight. ``pos_weight`` defaults to the
    batch's negatives per positive (at most 20)."""
    positive = positive.float()
    if pos_weight is None:
        pos_weight = ((1 - positive).sum() / positive.sum().clamp(min=1)).clamp(max=20)
    weight = 1 + hard_negative_weight * (pos_weight - 1) * others.float()
    return F.binary_cross_entropy_with_logits(
        TEXT_CUE_SCALE * text, positive, weight=weight, pos_weight=pos_weight
    )
