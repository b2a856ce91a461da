"""``build_predictor``: a :class:`~fsam2lib.predictor.predictor.PrunedSAM2VideoPredictor`
loaded and ready, with its text encoder, describer and router attached."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from fsam2lib.predictor.object_text import clip_describer, clip_text_encoder
from fsam2lib.predictor.predictor import PrunedSAM2VideoPredictor
from fsam2lib.predictor.state_policy import StatePolicy
from fsam2lib.pruning.config import PruningConfig
from fsam2lib.pruning.scorers import TokenScorer


def build_predictor(
    model: str = "micro",
    checkpoint: str | None = None,
    device: str = "cpu",
    weights: str | None = None,
    pruning: PruningConfig | None = None,
    image_size: int | None = None,
    clip: str | None = "micro",
    clip_pretrained: str | None = None,
    router: str | TokenScorer | None = "shipped",
    describe: Sequence[str] | str | Path | Callable | None = None,
    state_policy: StatePolicy | str = "lean",
) -> PrunedSAM2VideoPredictor:
    """A :class:`PrunedSAM2VideoPredictor` with its text encoder, describer and router attached.

    model/checkpoint/weights/image_size: as :func:`fsam2lib.models.sam2.load_sam2`.
    clip: CLIP for the text cue and automatic descriptions (``None``: no text at all).
    router: "shipped" loads the router trained for the micro SAM2 + micro CLIP (only valid
        with those two); a path loads another trained router; a scorer object is used as is;
        ``None`` attaches none (strategies "router"/"text_only" then raise).
    describe: how objects prompted without text get one. ``None``: zero-shot ranking of this
        CLIP's default phrases; a list of phrases or a vocabulary file: ranking of those; a
        callable ``(rgb [3, S, S], mask [S, S]) -> str | None``: used as is (e.g. a captioning
        pipeline, the paper's approach).
    state_policy: what inference states keep: "lean" (compact memory, bounded state, lazy
        frames; :class:`~fsam2lib.predictor.state_policy.StatePolicy`), "stock" (stock SAM2's
        storage) or a ``StatePolicy``.
    """
    from fsam2lib.models.clip import load_clip
    from fsam2lib.models.sam2 import load_sam2
    from fsam2lib.pruning.router import load_router

    policy = StatePolicy.named(state_policy)  # fail before loading anything
    predictor = load_sam2(
        model,
        checkpoint=checkpoint,
        device=device,
        weights=weights,
        image_size=image_size,
        predictor_class=PrunedSAM2VideoPredictor,
    )
    if clip is not None:
        bundle = load_clip(clip, pretrained=clip_pretrained, device=device)
        predictor.text_encoder = clip_text_encoder(bundle)
        predictor.describe_object = (
            describe if callable(describe) else clip_describer(bundle, describe)
        )
    if router == "shipped":
        if (model, clip) != ("micro", "micro") or weights == "random":
            raise ValueError(
                "the shipped router was trained for the trained micro SAM2 with the micro CLIP; "
                f"for model={model!r}, clip={clip!r}, weights={weights!r} pass router=PATH to a "
                "router trained with `python -m fsam2lib.train.train_router`, or router=None"
            )
        predictor.router = load_router(device=device)
    elif isinstance(router, str):
        predictor.router = load_router(router, device=device)
    else:
        predictor.router = router
    if pruning is not None:
        predictor.pruning = pruning
    predictor.state_policy = policy
    return predictor
