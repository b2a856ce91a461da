"""What the shipped micro SAM2 can and cannot do, shown at the top of the notebooks.

One banner in one place, its figures read from the results file that measured them
(``python -m fsam2lib.evaluate ... --json``, kept in ``docs/results/``), so a retrained model
changes the file, not the text. Outside the repository (an installed wheel) there is no
results file and the banner points to the model card instead.
"""

from __future__ import annotations

import json

from fsam2lib.paths import REPO_DIR

EVALUATION = (
    REPO_DIR / "docs" / "results" / "2026-12-07-mask-objective" / "micro_sam2_evaluate.json"
)


def _row(rows: list[dict], world: str, videos: str, protocol: str = "mask") -> dict:
    return next(
        r
        for r in rows
        if r["world"] == world and r["videos"] == videos and r["protocol"] == protocol
    )


def status_text(evaluation: dict | None) -> str:
    """The banner's markdown, from a ``python -m fsam2lib.evaluate --json`` result (None: no
    figures, a pointer to the model card)."""
    head = (
        "> **Status of the shipped micro SAM2 (read first).** A 2.3M-parameter SAM2 trained by "
        "this project on 2 CPU cores, on the synthetic train splits. Its masks are real "
        "segmentation results on the synthetic worlds; they say nothing about SAM2.1 "
        "checkpoints on real video (notebook 06 runs those)."
    )
    if evaluation is None:
        return head + " Its scores: `data/MODEL_CARD.md`."
    rows = evaluation["rows"]

    def jf(world: str, videos: str, protocol: str = "mask") -> str:
        r = _row(rows, world, videos, protocol)
        return f"{r['J&F']:.1f} [{r['ci95'][0]:.1f}, {r['ci95'][1]:.1f}]"

    n = _row(rows, "classic", "single-object")["num_videos"]
    return head + (
        f" Prompted with the first frame's mask (the protocol these notebooks use), J&F "
        f"{jf('classic', 'single-object')} on single-object and "
        f"{jf('classic', 'multi-object')} on multi-object classic val videos, "
        f"{jf('held_out', 'single-object')} / {jf('held_out', 'multi-object')} on the held-out "
        f"world it never trained on ({n} videos a row, 95 % intervals over videos). One click "
        f"on frame 0: {jf('classic', 'single-object', 'click')} for one object, "
        f"{jf('classic', 'multi-object', 'click')} for several. Its memory matters: without "
        f"memory attention multi-object J&F falls to "
        f"{jf('classic', 'multi-object, memory bypassed')} (`{evaluation['command']}`)."
    )


def micro_status():
    """The status banner as an IPython ``Markdown`` object (a notebook cell displays it)."""
    from IPython.display import Markdown

    evaluation = json.loads(EVALUATION.read_text()) if EVALUATION.is_file() else None
    return Markdown(status_text(evaluation))
