"""One frame's pruning decisions, as plain functions of what SAM2 has for that frame: its
token scores and kept queries (a :class:`~fsam2lib.predictor.records.FrameRecord`), then,
once SAM2 has predicted its mask, its kept memory tokens."""

from __future__ import annotations

import torch
from torch import Tensor

from fsam2lib.predictor.records import FrameRecord
from fsam2lib.pruning.config import PruningConfig
from fsam2lib.pruning.scorers import (
    ScoringInputs,
    TokenScorer,
    check_scores,
    make_scorer,
    scores_finite,
)
from fsam2lib.pruning.selection import (
    forced_tokens,
    mask_tokens,
    num_kept,
    prioritise,
    prompt_neighbourhood,
    select_tokens,
)


def prompt_points(
    point_inputs: dict | None, grid: tuple[int, int], image_size: int
) -> Tensor | None:
    """Clicks / box corners of SAM2's ``point_inputs`` as ``[B, N, 2]`` (x, y) token-grid
    coordinates (None without points)."""
    if point_inputs is None:
        return None
    coords, labels = point_inputs["point_coords"].float(), point_inputs["point_labels"]
    valid = (labels != -1).any(dim=0)  # drop padding points
    if not bool(valid.any()):
        return None
    h, w = grid
    scale = torch.tensor([w / image_size, h / image_size], device=coords.device)
    return coords[:, valid] * scale


def score_frame(
    inputs: ScoringInputs,
    config: PruningConfig,
    router: TokenScorer | None,
    *,
    text: str | None,
    fingerprint: tuple,
    prompted: bool,
    correction: bool = False,
) -> FrameRecord:
    """Score the frame's tokens under ``config`` and select its query tokens (the prompts'
    neighbourhoods always among them).

    A ``correction`` (a prompt on a frame the object was tracked through) keeps every query
    token: pruned positions would otherwise be filled with the previous frame's conditioned
    features, which tracking no longer holds once it moved on (keeping them for every frame
    a user might click costs 4 MiB per frame and object at 1024 px). A click is rare; its
    frame then gets SAM2's own memory attention over every query, and nothing is filled.

    A prompted frame is scored at the API boundary (a prompt, or the start of a propagation):
    its scores are checked there and may keep more than the budget to hold every prompt's
    neighbourhood. A tracked frame reads nothing back to the host: its kept count is the
    budget, and whether its scores were finite is left in ``record.finite`` for the caller
    to check once per propagation."""
    b, _, h, w = inputs.features.shape
    scorer = make_scorer(config, router)
    scores = check_scores(
        scorer(inputs),
        b,
        h * w,
        f"token scorer of strategy {config.strategy!r}",
        check_finite=prompted,
    )
    points = inputs.prompt_points
    must_keep = (
        None if points is None else prompt_neighbourhood(points, (h, w), config.prompt_radius)
    )
    keep = num_kept(h * w, config.keep_ratio, config.min_tokens)
    device = inputs.features.device
    return FrameRecord(
        frame_idx=inputs.frame_idx,
        grid=(h, w),
        config=config,
        fingerprint=fingerprint,
        text=text,
        scores=scores,
        query_idx=torch.arange(h * w, device=device).expand(b, -1)
        if correction
        else select_tokens(
            scores["combined"],
            keep,
            forced_tokens(must_keep, (h, w), keep, config.context, b, device),
            grow=prompted,
        ),
        must_keep=must_keep,
        prompted=prompted,
        finite=None if prompted else scores_finite(scores["combined"]),
    )


def select_memory(record: FrameRecord, pred_masks: Tensor) -> Tensor:
    """The frame's memory tokens ``[B, Km]``: its own top scores; on prompted frames the
    object's tokens (its mask ``pred_masks`` dilated by ``prompt_radius``) rank first."""
    cfg = record.config
    h, w = record.grid
    scores = record.scores["combined"]
    if record.prompted:
        obj = mask_tokens(pred_masks.to(scores.device), record.grid, cfg.prompt_radius)
        scores = prioritise(scores, obj)
    keep = num_kept(h * w, cfg.memory_ratio, cfg.min_tokens)
    forced = forced_tokens(
        record.must_keep, record.grid, keep, cfg.context, scores.shape[0], scores.device
    )
    return select_tokens(scores, keep, forced, grow=record.prompted)
