"""How tokens are scored: the inputs a scorer sees, the scorer protocol, the baseline
strategies (random, grid, mask prior) and the factory that picks one for a config."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from fsam2lib.pruning.config import CUES, PruningConfig
from fsam2lib.pruning.hot_path import moved
from fsam2lib.pruning.selection import grid_order


@dataclass
class ScoringInputs:
    """What a token scorer sees for one frame and one object (SAM2 1.1.0 tracks each object
    with batch size 1).

    features: ``[B, C, H, W]`` stride-16 image-encoder tokens of the current frame (neck
        output, before memory attention).
    frame_idx: the frame's index in the video.
    prev_mask_logits: ``[B, 1, h, w]`` low-res mask logits of this object on the previously
        processed frame (None on an initial prompted frame or when there is none).
    text_embedding: ``[B, D]`` L2-normalised CLIP text embedding of the object's description
        (None when the object has no text: the text cue is then off).
    prompt_points: ``[B, N, 2]`` clicks / box corners in (x, y) token-grid coordinates on
        this frame (None if none).
    cues: the cues the scorer is asked to combine (a subset of ``CUES``).
    detail: ``[B, C, 2H, 2W]`` SAM2's stride-8 feature map of the frame (the finer of the
        maps its mask decoder reads), for a router whose text cue reads it (None otherwise).
    frame_cache: a dict shared by every object scored on this frame, where a scorer may keep
        what depends on the frame alone (SAM2 scores each object separately: with N objects
        that work would otherwise be done N times); None: nothing is shared.
    keep_ratio: the fraction of the frame's query tokens that will be kept by these scores,
        for a router whose text weight depends on the budget
        (``RouterConfig.text_weight_fade``); None: not known.
    """

    features: Tensor
    frame_idx: int
    prev_mask_logits: Tensor | None = None
    text_embedding: Tensor | None = None
    prompt_points: Tensor | None = None
    cues: tuple[str, ...] = CUES
    detail: Tensor | None = None
    frame_cache: dict | None = None
    keep_ratio: float | None = None

    @property
    def grid(self) -> tuple[int, int]:
        return int(self.features.shape[-2]), int(self.features.shape[-1])


class TokenScorer(Protocol):
    """Scores the tokens of one frame: ``"combined"`` ``[B, H*W]`` (higher = keep) plus one
    ``[B, H*W]`` entry per cue, kept for inspection."""

    def __call__(self, inputs: ScoringInputs) -> dict[str, Tensor]: ...


class RandomScorer:
    """Uniform random scores, seeded by ``(seed, frame_idx)``: same frame, same tokens."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def __call__(self, inputs: ScoringInputs) -> dict[str, Tensor]:
        b = inputs.features.shape[0]
        h, w = inputs.grid
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + inputs.frame_idx)
        scores = torch.rand(b, h * w, generator=gen).to(inputs.features.device)
        return {"combined": scores}


class GridScorer:
    """Uniform coverage regardless of content (see :func:`grid_order`)."""

    def __call__(self, inputs: ScoringInputs) -> dict[str, Tensor]:
        order = grid_order(inputs.grid, inputs.features.device)
        return {"combined": order.expand(inputs.features.shape[0], -1).clone()}


class MaskPriorScorer:
    """The previous frame's mask as a prior, no text: keep a dilated band around the object
    and tokens near the decision boundary (|logit| small).

    Cues: "mask" (object probability max-pooled per token cell, dilated by ``dilation``
    tokens) and "uncertainty" (``1 - |2 sigmoid(logit) - 1|`` max-pooled per cell). The
    combined score adds a small proximity term (wide average of the object map) so the
    remaining budget goes to tokens near the object, and a tiny grid term to break ties
    uniformly. Without a previous mask (first frame) or with an empty one (the object
    left), the grid order decides.
    """

    def __init__(self, dilation: int = 2) -> None:
        if dilation < 0:
            raise ValueError(f"dilation must be >= 0, got {dilation}")
        self.dilation = dilation

    def cues(self, inputs: ScoringInputs) -> dict[str, Tensor] | None:
        """The "mask" and "uncertainty" maps ``[B, H*W]`` (None without a previous mask)."""
        logits = inputs.prev_mask_logits
        if logits is None:
            return None
        feats = inputs.features
        h, w = inputs.grid
        prob = torch.sigmoid(moved(logits, feats.device, torch.float32))
        obj = F.adaptive_max_pool2d(prob, (h, w))
        if self.dilation > 0:
            obj = F.max_pool2d(obj, 2 * self.dilation + 1, stride=1, padding=self.dilation)
        unc = F.adaptive_max_pool2d(1.0 - (2.0 * prob - 1.0).abs(), (h, w))
        return {"mask": obj.flatten(1), "uncertainty": unc.flatten(1)}

    def __call__(self, inputs: ScoringInputs) -> dict[str, Tensor]:
        feats = inputs.features
        b = feats.shape[0]
        h, w = inputs.grid
        tie = grid_order((h, w), feats.device).expand(b, -1)
        cues = self.cues(inputs)
        if cues is None:
            zeros = torch.zeros(b, h * w, device=feats.device)
            return {"combined": tie.clone(), "mask": zeros, "uncertainty": zeros.clone()}
        obj = cues["mask"].view(b, 1, h, w)
        k = 2 * max(1, max(h, w) // 4) + 1
        near = F.avg_pool2d(obj, k, stride=1, padding=k // 2, count_include_pad=False)
        combined = cues["mask"] + cues["uncertainty"] + 0.1 * near.flatten(1) + 1e-3 * tie
        return {"combined": combined, **cues}


class CueRestrictedScorer:
    """Calls a scorer with ``inputs.cues`` replaced (e.g. the router with the text cue only)."""

    def __init__(self, scorer: TokenScorer, cues: tuple[str, ...]) -> None:
        self.scorer, self.cues = scorer, cues

    def __call__(self, inputs: ScoringInputs) -> dict[str, Tensor]:
        return self.scorer(dataclasses.replace(inputs, cues=self.cues))


def make_scorer(config: PruningConfig, router: TokenScorer | None) -> TokenScorer | None:
    """The scorer for ``config.strategy`` (None for "none"); router strategies need ``router``."""
    if config.strategy == "none":
        return None
    if config.strategy == "random":
        return RandomScorer(config.seed)
    if config.strategy == "grid":
        return GridScorer()
    if config.strategy == "mask_prior":
        return MaskPriorScorer()
    if router is None:
        raise RuntimeError(
            f"pruning strategy {config.strategy!r} needs a learned token scorer, but none is "
            "attached: set `predictor.router = <TokenScorer>` (e.g. the router from "
            "fsam2lib.pruning.router), or use strategy 'random', 'grid', 'mask_prior' or 'none'"
        )
    cues = ("text",) if config.strategy == "text_only" else config.cues
    return CueRestrictedScorer(router, cues)


def check_scores(
    scores: object, batch: int, hw: int, source: str, *, check_finite: bool = True
) -> dict[str, Tensor]:
    """Validate a scorer's output: a dict of tensors with a ``"combined"`` ``[B, H*W]`` one;
    "combined" comes back as float32 (a bf16 score under autocast holds too few distinct
    values to rank 4096 tokens: ties then decide), entries without gradients.

    ``check_finite`` reads the scores back to check they are finite (at the API boundary);
    the per-frame path passes False and checks :func:`scores_finite` once per propagation.
    """
    if not isinstance(scores, dict) or "combined" not in scores:
        raise TypeError(
            f"{source} must return a dict with a 'combined' entry, got {type(scores).__name__}"
        )
    combined = scores["combined"]
    if not isinstance(combined, Tensor) or tuple(combined.shape) != (batch, hw):
        shape = tuple(combined.shape) if isinstance(combined, Tensor) else type(combined).__name__
        raise ValueError(f"{source}: 'combined' must be [B, H*W] = {(batch, hw)}, got {shape}")
    for name, value in scores.items():
        if not isinstance(value, Tensor):
            raise TypeError(
                f"{source}: entry {name!r} must be a tensor, got {type(value).__name__}"
            )
    checked = {
        name: value.detach() if value.requires_grad else value for name, value in scores.items()
    }
    checked["combined"] = moved(checked["combined"], dtype=torch.float32)
    if check_finite and not bool(scores_finite(checked["combined"])):
        raise ValueError(f"{source}: 'combined' scores must be finite")
    return checked


def scores_finite(combined: Tensor) -> Tensor:
    """0-d bool tensor: every score is finite (stays on the device: no host read)."""
    return torch.isfinite(combined).all()
