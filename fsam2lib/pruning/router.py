"""The learned token router: the paper's three cues per visual token, combined by a small MLP.

Cues, each an ``[B, H*W]`` map over the stride-16 token grid (row-major):
- "visual": local visual context, a 3x3 conv + 1x1 conv over the image encoder's tokens;
- "text": cosine between each (normalised) token and the object's CLIP text embedding
  projected into the visual token space by a learned linear map, compared with the tokens
  after a learned projection (per token, or over a small neighbourhood: ``text_context``),
  optionally of the tokens together with SAM2's stride-8 map (``detail_dim``);
- "mask": where the previous frame's mask says the object is (a dilated prior);
- "uncertainty": where that mask is ambiguous (logits near the decision boundary).
The last two come from :class:`MaskPriorScorer`. They are the paper's uncertainty cue, kept
apart so that an ablation switches off what its name says: the first routers used one name
for both, and "without uncertainty" also removed the previous-mask prior.

A 2-layer MLP combines the cue values of each token (plus flags saying which cues are
available) into the "combined" keep score. A cue that is switched off (``inputs.cues``) or
unavailable (no text, no previous mask) enters as zeros with its flag off; the router is
trained with random cue dropout so that it knows what to do then.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fsam2lib.paths import MICRO_ROUTER_WEIGHTS
from fsam2lib.pruning.config import CUES, check_ratio
from fsam2lib.pruning.hot_path import moved
from fsam2lib.pruning.scorers import MaskPriorScorer, ScoringInputs

# The MLP reads one value per token from each cue map, in ``CUES`` order, then three flags:
# text, mask and uncertainty available.
NUM_INPUTS = len(CUES) + 3
TEXT_GATES = ("always", "lost")
# A previous mask whose most confident token is below this probability shows no object.
LOST_BELOW = 0.5


@dataclass(frozen=True)
class RouterConfig:
    feat_dim: int  # channels of the image encoder's stride-16 tokens (SAM2 hidden dim)
    text_dim: int  # CLIP text embedding size
    hidden: int = 32  # visual-context conv width
    mlp_hidden: int = 16
    dilation: int = 1  # tokens of dilation around the previous mask
    text_context: int = 1  # kernel of the token projection the text cue compares with the text
    # "always": the MLP reads the text cue on every frame; "lost": only on frames whose
    # previous mask shows no object (see ``TokenRouter.text_in_use``)
    text_gate: str = "always"
    # channels of SAM2's stride-8 map that the text cue reads beside the stride-16 tokens
    # (0: the tokens only); see ``TokenRouter._text_tokens``
    detail_dim: int = 0
    # weight of the text cue added outside the MLP (0: none); see ``TokenRouter.text_bias``
    text_weight: float = 0.0
    # (full, off): ``text_weight`` applies in full at keep ratios <= full and fades linearly
    # to none at keep ratios >= off (None: in full at every budget); see
    # ``TokenRouter.weight_at``
    text_weight_fade: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.text_gate not in TEXT_GATES:
            raise ValueError(f"text_gate must be one of {TEXT_GATES}, got {self.text_gate!r}")
        if self.detail_dim < 0:
            raise ValueError(f"detail_dim must be >= 0 channels, got {self.detail_dim}")
        weight = self.text_weight
        if isinstance(weight, bool) or not (
            isinstance(weight, int | float) and 0 <= weight < float("inf")
        ):
            raise ValueError(f"text_weight must be a finite number >= 0, got {self.text_weight!r}")
        fade = self.text_weight_fade
        if fade is not None:
            if not isinstance(fade, list | tuple) or len(fade) != 2:
                raise ValueError(
                    f"text_weight_fade must be two keep ratios (full, off) or None, got {fade!r}"
                )
            for end, value in zip(("full", "off"), fade, strict=True):
                check_ratio(f"text_weight_fade {end}", value, owner="RouterConfig")
            if not fade[0] < fade[1]:
                raise ValueError(f"text_weight_fade needs full < off, got {fade!r}")
            object.__setattr__(self, "text_weight_fade", (float(fade[0]), float(fade[1])))


class TokenRouter(nn.Module):
    """Scores every visual token of a frame for one object; implements ``TokenScorer``."""

    def __init__(self, config: RouterConfig) -> None:
        super().__init__()
        self.config = config
        c, h = config.feat_dim, config.hidden
        self.norm = nn.GroupNorm(1, c)
        self.visual = nn.Sequential(nn.Conv2d(c, h, 3, padding=1), nn.GELU(), nn.Conv2d(h, 1, 1))
        self.text_proj = nn.Linear(config.text_dim, c)
        detail = 4 * config.detail_dim  # a 2x2 block of stride-8 cells per token
        self.detail_norm = nn.GroupNorm(1, detail) if detail else None
        self.token_proj = _token_projection(c + detail, c, config.text_context)
        self.mlp = nn.Sequential(
            nn.Linear(NUM_INPUTS, config.mlp_hidden), nn.GELU(), nn.Linear(config.mlp_hidden, 1)
        )
        self.mask_prior = MaskPriorScorer(dilation=config.dilation)
        # every (text used, mask available, uncertainty available) as the MLP reads them;
        # not persistent: weight files stay as they were
        rows = [[float(t), float(m), float(u)] for t in (0, 1) for m in (0, 1) for u in (0, 1)]
        self.register_buffer("flag_rows", torch.tensor(rows), persistent=False)

    def cue_maps(self, inputs: ScoringInputs) -> dict[str, Tensor]:
        """Each cue as ``[B, H*W]`` (zeros where switched off or unavailable) and its flags."""
        feats = self._per_frame(
            inputs, "feats", lambda: self.norm(moved(inputs.features, dtype=torch.float32))
        )
        b = feats.shape[0]
        use = set(inputs.cues)
        has_text = "text" in use and inputs.text_embedding is not None
        wants_prior = "mask" in use or "uncertainty" in use
        prior = self.mask_prior.cues(inputs) if wants_prior else None
        has_mask = "mask" in use and prior is not None
        has_unc = "uncertainty" in use and prior is not None
        zeros = None
        if not ("visual" in use and has_text and has_mask and has_unc):
            zeros = feats.new_zeros(b, feats.shape[-2] * feats.shape[-1])
        visual = (
            self._per_frame(inputs, "visual", lambda: self.visual(feats).flatten(1))
            if "visual" in use
            else zeros
        )
        text = self._text_similarity(feats, inputs) if has_text else zeros
        mask = prior["mask"] if has_mask else zeros
        unc = prior["uncertainty"] if has_unc else zeros
        text_used = self.text_in_use(has_text, mask if has_mask else None, b, feats.device)
        return {
            "visual": visual,
            "text": text,
            "mask": mask,
            "uncertainty": unc,
            "flags": self._flags(text_used, has_mask, has_unc, b),
            "text_used": text_used,
        }

    def _flags(self, text_used: Tensor | bool, has_mask: bool, has_unc: bool, batch: int) -> Tensor:
        """``[B, 3]`` float flags the MLP reads: text used, mask and uncertainty available
        (rows of a precomputed table: nothing is built per frame)."""
        if isinstance(text_used, bool):
            row = 4 * text_used + 2 * has_mask + has_unc
            return self.flag_rows[row : row + 1].expand(batch, -1)
        available = self.flag_rows[2 * has_mask + has_unc, 1:].expand(batch, -1)
        return torch.cat([text_used.float()[:, None], available], dim=1)

    def text_in_use(
        self, has_text: bool, prev_object: Tensor | None, batch: int, device: torch.device
    ) -> Tensor | bool:
        """Whether the MLP reads the text cue: a bool for every sample of the frame, or a
        ``[B]`` bool tensor when it depends on each sample's previous mask.

        Under ``text_gate="lost"`` only where the mask cue shows no object (an object that
        left, was occluded or was lost by the tracker) or is off or unavailable. Why: where the
        previous mask is right, text evidence also lights up look-alikes and draws tokens from
        the object's surroundings (on run 6 the text cue cost 6-13 J&F at keep 0.1); where
        the mask shows nothing, the description is the only cue that knows what to look for."""
        if self.config.text_gate == "always" or prev_object is None or not has_text:
            return has_text
        return prev_object.amax(dim=1) < LOST_BELOW

    def _per_frame(self, inputs: ScoringInputs, name: str, compute) -> Tensor:
        """``compute()``, kept in ``inputs.frame_cache`` for the other objects of the frame:
        the token maps the cues read before the object's mask or text come in."""
        cache = inputs.frame_cache
        if cache is None:
            return compute()
        key = (id(self), name)
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def _text_similarity(self, feats: Tensor, inputs: ScoringInputs) -> Tensor:
        tokens = self._per_frame(
            inputs,
            "text_tokens",
            lambda: F.normalize(
                self.token_proj(self._text_tokens(feats, inputs)).flatten(2), dim=1
            ),
        )
        text = inputs.text_embedding.float().to(feats.device)
        query = F.normalize(self.text_proj(text), dim=-1)  # [B, C]
        return torch.einsum("bch,bc->bh", tokens, query)

    def _text_tokens(self, feats: Tensor, inputs: ScoringInputs) -> Tensor:
        """What the text cue projects: the normalised stride-16 tokens, and with ``detail_dim``
        each token's 2x2 block of stride-8 cells stacked onto its channels. Why: a stride-16
        token of the micro SAM2 says what colour is there but little of the outline, and the
        text cue failed most where two objects share a colour (model card, "Router")."""
        if self.detail_norm is None:
            return feats
        detail = inputs.detail
        if detail is None:
            raise ValueError(
                "this router's text cue reads SAM2's stride-8 feature map (detail_dim="
                f"{self.config.detail_dim}), but the scoring inputs carry none (inputs.detail)"
            )
        expected = (self.config.detail_dim, 2 * feats.shape[-2], 2 * feats.shape[-1])
        if tuple(detail.shape[1:]) != expected:
            raise ValueError(
                f"stride-8 map of shape {tuple(detail.shape[1:])} does not match the router "
                f"(expected [C, H, W] = {list(expected)} for tokens of {list(feats.shape[1:])})"
            )
        blocks = F.pixel_unshuffle(detail.float().to(feats.device), 2)
        return torch.cat([feats, self.detail_norm(blocks)], dim=1)

    def forward(self, inputs: ScoringInputs) -> dict[str, Tensor]:
        # float32 whatever the caller's autocast: a bf16 score holds a few dozen distinct
        # values, too few to rank thousands of tokens (ties would pick the kept set)
        with torch.autocast(inputs.features.device.type, enabled=False):
            cues = self.cue_maps(inputs)
            hw = cues["visual"].shape[1]
            text, text_used = cues["text"], cues["text_used"]
            if isinstance(text_used, Tensor):  # the "lost" gate, decided per sample
                text = text * text_used[:, None]
            used = {**cues, "text": text}
            per_token = torch.stack([used[name] for name in CUES], dim=-1)
            flags = cues["flags"][:, None, :].expand(-1, hw, -1)
            combined = self.mlp(torch.cat([per_token, flags], dim=-1)).squeeze(-1)
            weight = self.weight_at(inputs.keep_ratio)
            if weight and text_used is not False:
                combined = combined + self.text_bias(combined, text, weight)
        out = {name: cues[name] for name in CUES}
        out["combined"] = combined
        return out

    def weight_at(self, keep_ratio: float | None) -> float:
        """The text weight at a budget: ``text_weight``, faded by ``text_weight_fade`` when
        the keep ratio is known (None: in full).

        Why a fade: the weight pays where the budget is too small to hold both the target
        and a look-alike, so the description has to choose; at a looser budget both fit,
        and the weight only moves tokens from the target's boundary and context to whatever
        the text also lights up (at keep 0.3 it cost about a point on the hard and held-out
        worlds, ``docs/results/2026-12-07-text-weight``). A Python float: no host sync."""
        weight, fade = self.config.text_weight, self.config.text_weight_fade
        if not weight or fade is None or keep_ratio is None:
            return weight
        full, off = fade
        return weight * min(1.0, max(0.0, (off - keep_ratio) / (off - full)))

    def text_bias(self, combined: Tensor, text: Tensor, weight: float) -> Tensor:
        """``weight`` times the standardised text cue, in units of the MLP score's spread
        over the frame's tokens: ranking by ``combined + text_bias`` is ranking by
        ``z(combined) + weight * z(text)``, ``z`` standardising over the tokens.

        Why outside the MLP: trained for the output mask, the MLP learned to give the text
        cue next to no weight, so the description changed almost nothing (model card,
        "Router"); a weight the MLP cannot undo makes the router lean on its text cue. A
        sample whose text is off has a text map of zeros, so nothing is added to it."""
        spread = combined.std(dim=1, keepdim=True).clamp_min(1e-6)
        centred = text - text.mean(dim=1, keepdim=True)
        return weight * spread * centred / centred.std(dim=1, keepdim=True).clamp_min(1e-6)


def reads_detail(scorer: object) -> bool:
    """Whether ``scorer`` is a router whose text cue reads SAM2's stride-8 map
    (``RouterConfig.detail_dim``): only then do its inputs need to carry the map."""
    return getattr(getattr(scorer, "config", None), "detail_dim", 0) > 0


def _token_projection(in_channels: int, channels: int, kernel: int) -> nn.Module:
    """Map tokens into the space the projected text is compared in.

    ``kernel=1`` is a per-token linear map (the first routers). A wider kernel adds a
    ``kernel``x``kernel`` conv and a GELU before it, so a token can also be matched by its
    neighbours: a micro SAM2 token's colour and shape evidence is spread over the object and
    its outline, and a per-token map confused one object's description with another's.
    """
    if kernel == 1:
        return nn.Conv2d(in_channels, channels, 1)
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"text_context must be a positive odd kernel size, got {kernel}")
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, kernel, padding=kernel // 2),
        nn.GELU(),
        nn.Conv2d(channels, channels, 1),
    )


def save_router(router: TokenRouter, path: str | Path, metadata: dict | None = None) -> Path:
    """Save weights and config (safetensors metadata) so ``load_router`` can rebuild it."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"config": json.dumps(asdict(router.config)), **(metadata or {})}
    save_file({k: v.contiguous() for k, v in router.state_dict().items()}, str(path), meta)
    return path


def shipped_router_config(path: str | Path | None = None) -> RouterConfig:
    """The config of a saved router (default: the shipped one), read without its weights."""
    return RouterConfig(**json.loads(_router_metadata(path)[1]["config"]))


def _router_metadata(path: str | Path | None) -> tuple[Path, dict]:
    """A router file's path (default: the shipped one) and its safetensors metadata."""
    from safetensors import safe_open

    path = Path(path) if path is not None else MICRO_ROUTER_WEIGHTS
    if not path.is_file():
        raise FileNotFoundError(
            f"router weights not found: {path}. Train them with "
            "`python -m fsam2lib.train.train_router` (the micro router ships in data/)."
        )
    with safe_open(str(path), "pt") as handle:
        meta = handle.metadata() or {}
    if "config" not in meta:
        raise RuntimeError(f"{path} has no router config in its metadata; not a router file?")
    return path, meta


def load_router(path: str | Path | None = None, device: str = "cpu") -> TokenRouter:
    """Load a trained router (default: the shipped one for the micro SAM2 + micro CLIP)."""
    from safetensors.torch import load_file

    path, meta = _router_metadata(path)
    router = TokenRouter(RouterConfig(**json.loads(meta["config"])))
    state = load_file(str(path))
    inputs = state["mlp.0.weight"].shape[1]
    if inputs != NUM_INPUTS:
        raise RuntimeError(
            f"{path} is a router with {inputs} inputs per token, from before the previous-mask "
            f"prior and the uncertainty became separate cues (this version has {NUM_INPUTS}); "
            "retrain it with `python -m fsam2lib.train.train_router`."
        )
    router.load_state_dict(state)
    router.metadata = meta
    return router.to(device).eval()
