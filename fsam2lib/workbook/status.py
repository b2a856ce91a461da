"""What the shipped micro SAM2 can and cannot do, shown at the top of the notebooks.

One text in one place: a retrained model changes it here (and in ``data/MODEL_CARD.md``, where
the figures come from), not in every notebook.
"""

from __future__ import annotations

MICRO_SAM2_STATUS = (
    "> **Status of the shipped micro SAM2 (read first).** Trained from scratch by this project "
    "(62 minutes on 2 CPU cores, synthetic train split): J&F 83.5 on single-object and 83.9 on "
    "multi-object synthetic val videos when prompted with the first frame's mask, the protocol "
    "these notebooks use (see `data/MODEL_CARD.md`). Prompted with a single click it tracks "
    "poorly (17.4 / 8.5). Its masks are real segmentation results of a 2.3M-parameter SAM2 on "
    "the synthetic world; they say nothing about real SAM2.1 checkpoints on real video "
    "(notebook 06 runs those). On the project's held-out world (backgrounds, framing and "
    "speeds it never trained on) it scores only 55 / 51 J&F (20 videos each; intervals in the "
    "model card): a model trained on a broader world is in progress."
)


def micro_status():
    """The status banner as an IPython ``Markdown`` object (a notebook cell displays it)."""
    from IPython.display import Markdown

    return Markdown(MICRO_SAM2_STATUS)
