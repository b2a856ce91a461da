"""What the shipped micro SAM2 can and cannot do, shown at the top of the notebooks.

One text in one place: a retrained model changes it here (and in ``data/MODEL_CARD.md``, where
the figures come from), not in every notebook.
"""

from __future__ import annotations

MICRO_SAM2_STATUS = (
    "> **Status of the shipped micro SAM2 (read first).** Trained by this project (about "
    "ten hours on 2 CPU cores over three runs, synthetic train splits of the classic and "
    "broad worlds): prompted with the first frame's mask, the protocol these notebooks use,"
    " it scores J&F 88.1 on single-object and 84.8 on multi-object classic val videos, and "
    "72.8 / 68.5 on the held-out world, whose backgrounds, framing and speeds it never "
    "trained on (20 videos each; intervals in `data/MODEL_CARD.md`). A single click on "
    "frame 0 tracks one object at 63.3 and several poorly (13.7). Its memory matters: "
    "without memory attention its multi-object J&F falls to 12.4, and pruning memory tokens"
    " costs it accuracy (notebook 02). Its masks are real segmentation results of a "
    "2.3M-parameter SAM2 on the synthetic worlds; they say nothing about real SAM2.1 "
    "checkpoints on real video (notebook 06 runs those)."
)


def micro_status():
    """The status banner as an IPython ``Markdown`` object (a notebook cell displays it)."""
    from IPython.display import Markdown

    return Markdown(MICRO_SAM2_STATUS)
