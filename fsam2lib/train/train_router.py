"""Train the token router with SAM2 and CLIP frozen, on the synthetic world or on any
DAVIS-layout dataset, for any SAM2 (micro, hiera t/s/b+/l) and CLIP.

Labels come from ground-truth masks: a token is relevant to an object on a frame when its
cell overlaps the object's mask dilated by one token. The router sees what it sees at
inference: the frozen image encoder's stride-16 tokens, the object's CLIP text embedding, and
the previous frame's mask logits — here simulated from the previous ground-truth mask with
random shifts, dilation/erosion and noise, so that the router learns to use the mask cue
without trusting it blindly. Random cue dropout teaches it to cope when a cue is missing.
A second loss on the raw text cue, with the frame's other objects as hard negatives, makes
that cue follow the description rather than whatever object is most salient
(``text_discrimination`` measures it).

    python -m fsam2lib.train.train_router --minutes 10 --out data/router_micro.safetensors
    python -m fsam2lib.train.train_router --sam2 sam2.1_hiera_t --sam2-checkpoint sam2.1_hiera_tiny.pt \
        --clip ViT-B-32 --clip-pretrained openai --dataset /data/DAVIS --frames 20 \
        --cache build/router_cache --out build/router_hiera_t.safetensors

With ``--cache DIR`` the frozen encoder's tokens are stored per video (float16) on the first
run and read back afterwards, so retraining (other steps, losses, seeds) skips the encoder.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from fsam2lib.models.clip import load_clip
from fsam2lib.models.sam2 import load_sam2, weights_label
from fsam2lib.pruning.config import CUES
from fsam2lib.pruning.router import (
    TEXT_GATES,
    RouterConfig,
    TokenRouter,
    load_router,
    save_router,
)
from fsam2lib.pruning.scorers import GridScorer, MaskPriorScorer, RandomScorer, ScoringInputs
from fsam2lib.pruning.selection import mask_tokens
from fsam2lib.train.mask_objective import (
    MASK_WORLDS,
    MaskObjectiveConfig,
    folder_source,
    train_mask_objective,
)
from fsam2lib.train.text_cue_loss import HARD_NEGATIVE_WEIGHT, TEXT_CUE_WEIGHT, text_cue_bce
from fsam2lib.videos.frames import to_model_input
from fsam2lib.videos.video import Video
from fsam2lib.videos.world import WorldConfig, make_split
from fsam2lib.videos.worlds import family_split

SAM2_BASE = "sam2.modeling.sam2_base.SAM2Base"
TEXT_CONTEXT = 3  # token-projection kernel for the text cue (RouterConfig.text_context)
TRAINING_WORLDS = ("classic", "broad")  # held_out and hard stay unseen
MISLEADING = 0.0  # share of training samples whose simulated previous mask points elsewhere
MASK_SHIFT = 3  # largest simulated tracker error of the previous mask, in tokens per axis


@dataclass
class RouterSamples:
    """One row per (video, object, frame >= 1)."""

    features: torch.Tensor  # [N, C, H, W] frozen encoder tokens
    prev_masks: torch.Tensor  # [N, 1, h, w] bool, previous frame's ground truth (low-res)
    text: torch.Tensor  # [N, D] CLIP text embeddings
    labels: torch.Tensor  # [N, H*W] bool relevant tokens
    others: torch.Tensor  # [N, H*W] bool tokens of the frame's other objects (not relevant)
    # [N, C8, 2H, 2W] the frozen stride-8 maps, for a router whose text cue reads them
    detail: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.features)

    def inputs(self, **kwargs) -> ScoringInputs:
        """What a router sees of these rows (the rest, e.g. ``cues``, from ``kwargs``)."""
        return ScoringInputs(
            features=self.features,
            frame_idx=1,
            text_embedding=self.text,
            detail=self.detail,
            **kwargs,
        )


@torch.no_grad()
def encoder_maps(sam2_model, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen stride-16 tokens ``[T, C, H, W]`` (the features memory attention would see) and
    the stride-8 map ``[T, C8, 2H, 2W]`` (the finer map the mask decoder reads; a router's
    text cue may read it too, ``RouterConfig.detail_dim``)."""
    images = to_model_input(frames, sam2_model.image_size)
    _, feats, _, sizes = sam2_model._prepare_backbone_features(sam2_model.forward_image(images))
    maps = [
        f.permute(1, 2, 0).reshape(len(frames), -1, h, w)
        for f, (h, w) in zip(feats, sizes, strict=True)
    ]
    return maps[-1], maps[-2]


def video_samples(
    sam2_model,
    clip,
    video: Video,
    tokens: torch.Tensor | None = None,
    detail: torch.Tensor | None = None,
) -> list:
    """Samples of one video: every described object on every frame after the first, as
    (tokens, previous low-res mask, text embedding, relevant tokens, other objects' tokens,
    stride-8 map or None). ``tokens`` (and ``detail``): the video's encoder maps when already
    computed (a feature cache)."""
    if tokens is None:
        tokens, _ = encoder_maps(sam2_model, video.frames)
    grid = tuple(tokens.shape[-2:])
    ids = sorted(video.descriptions)
    if not ids:
        raise ValueError(f"video {video.name!r} has no described objects to train on")
    embeddings = clip.encode_text([video.descriptions[k] for k in ids])
    masks = torch.from_numpy(video.masks)
    low_res = sam2_model.image_size // 4
    rows = []
    for row, k in enumerate(ids):
        obj = (masks == k).float()[:, None]  # [T, 1, H, W]
        rest = ((masks > 0) & (masks != k)).float()[:, None]
        small = F.interpolate(obj, size=(low_res, low_res), mode="area") > 0.5
        relevant = mask_tokens(obj * 2 - 1, grid, radius=1)  # [T, HW]
        elsewhere = mask_tokens(rest * 2 - 1, grid) & ~relevant
        for t in range(1, video.num_frames):
            fine = None if detail is None else detail[t]
            rows.append((tokens[t], small[t - 1], embeddings[row], relevant[t], elsewhere[t], fine))
    return rows


def cached_maps(
    sam2_model, video: Video, cache: Path | None, detail: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The video's encoder tokens (and with ``detail`` its stride-8 map), read from ``cache``
    when there (float16 on disk, one file per map), else computed (and written there): the
    frozen encoder then runs once per video, not per run. With a cache the first run also
    trains on the float16 values, as every later run will, so that a rerun gives the same
    router whether or not the cache was warm."""
    if cache is None:
        tokens, fine = encoder_maps(sam2_model, video.frames)
        return tokens, fine if detail else None
    stem = f"{video.name}_{video.num_frames}f"
    paths = {"tokens": cache / f"{stem}.pt", "detail": cache / f"{stem}_stride8.pt"}
    wanted = ["tokens", "detail"] if detail else ["tokens"]
    if not all(paths[name].is_file() for name in wanted):
        cache.mkdir(parents=True, exist_ok=True)
        for name, value in zip(
            ("tokens", "detail"), encoder_maps(sam2_model, video.frames), strict=True
        ):
            if name in wanted and not paths[name].is_file():
                torch.save(value.half(), paths[name])
    tokens = torch.load(paths["tokens"], weights_only=True).float()
    fine = torch.load(paths["detail"], weights_only=True).float() if detail else None
    return tokens, fine


def build_samples(
    sam2_model,
    clip,
    videos: Iterable[Video],
    progress: bool = True,
    cache: Path | None = None,
    desc: str = "encode",
    detail: bool = False,
) -> RouterSamples:
    """Encode videos once (or read them from ``cache``) and collect their samples; with
    ``detail`` the rows also carry the stride-8 map (for ``RouterConfig.detail_dim``)."""
    rows = []
    for video in tqdm(list(videos), desc=desc, disable=not progress):
        rows += video_samples(
            sam2_model, clip, video, *cached_maps(sam2_model, video, cache, detail)
        )
    if not rows:
        raise ValueError("no videos to build router samples from")
    columns = list(zip(*rows, strict=True))
    fine = None if columns[-1][0] is None else torch.stack(columns[-1])
    return RouterSamples(*(torch.stack(column) for column in columns[:-1]), detail=fine)


def synthetic_videos(
    split: str,
    num_videos: int,
    image_size: int,
    num_frames: int = 8,
    seed: int = 0,
    world: str = "classic",
) -> Iterator[Video]:
    """Synthetic videos at the model's input size: the classic world, or a family of
    ``worlds.FAMILIES`` (``broad``: every framing, background and motion the micro SAM2 was
    trained on last; never ``held_out`` or ``hard``, which are kept for evaluation)."""
    if world == "classic":
        config = WorldConfig(height=image_size, width=image_size, num_frames=num_frames)
        return make_split(split, num_videos, config, base_seed=seed)
    if world not in TRAINING_WORLDS:
        raise ValueError(f"router training world must be one of {TRAINING_WORLDS}, got {world!r}")
    return family_split(world, split, num_videos, num_frames, height=image_size, base_seed=seed)


def parse_worlds(text: str) -> list[str]:
    """``"classic,broad"`` -> ``["classic", "broad"]``, each a training world, none twice."""
    worlds = [w.strip() for w in text.split(",") if w.strip()]
    bad = [w for w in worlds if w not in TRAINING_WORLDS]
    if not worlds or bad or len(set(worlds)) != len(worlds):
        raise ValueError(
            f"--world must list distinct training worlds from {TRAINING_WORLDS} "
            f"(held_out and hard stay unseen), got {text!r}"
        )
    return worlds


def mixed_synthetic_videos(
    split: str, num_videos: int, image_size: int, num_frames: int, seed: int, worlds: list[str]
) -> list[Video]:
    """``num_videos`` split evenly between ``worlds`` (the first ones take the remainder), in
    the order listed. Why a mix: with 1200 videos, half classic and half broad, the text cue
    prefers the described object more often on classic val itself than with 1200 classic
    ones (model card, "Router")."""
    videos = []
    for i, world in enumerate(worlds):
        count = num_videos // len(worlds) + (i < num_videos % len(worlds))
        videos += synthetic_videos(split, count, image_size, num_frames, seed, world)
    return videos


def davis_videos(
    root: str | Path, split: str, clip, max_videos: int | None = None, frames: int | None = None
) -> list[Video]:
    """A DAVIS-layout split (``ImageSets/2017/<split>.txt``, ``JPEGImages/480p``,
    ``Annotations/480p``), cut to its first ``frames`` frames. Objects without a text in
    ``descriptions.json`` get one from ``clip`` (zero-shot, as the predictor would)."""
    from fsam2lib.text.describe import describe_objects
    from fsam2lib.videos import davis

    names = davis.list_videos(root, split)[:max_videos]
    if not names:
        raise ValueError(f"dataset {root}: split {split!r} lists no videos")
    texts = davis.read_descriptions(root)
    videos = []
    for name in names:
        video = davis.read_video(root, name)
        if frames is not None:
            video = video.first_frames(frames)
        known = texts.get(name, {})
        missing = [k for k in video.object_ids if k not in known]
        if missing:
            auto = describe_objects(clip, video)
            known = {**known, **{k: auto[k][1].phrase for k in missing}}
        video.descriptions = {k: known[k] for k in video.object_ids}
        videos.append(video)
    return videos


def simulate_logits(
    prev_masks: torch.Tensor,
    gen: torch.Generator,
    others: torch.Tensor | None = None,
    misleading: float = 0.0,
    max_shift: int = MASK_SHIFT,
) -> torch.Tensor:
    """Previous-frame mask logits as a tracker would give them: shifted (by up to
    ``max_shift`` tokens per axis on top of the object's own motion), grown or shrunk, noisy.

    With probability ``misleading`` per sample the mask points elsewhere, as it does after a
    camera cut, a re-appearance or a swap with a look-alike: at the frame's other objects
    (``others``: ``[N, H, W]`` token map) when there are any, else at the object moved far away.
    Without such samples the mask prior is right nearly always, the router learns to follow
    it, and the text cue has nothing left to decide."""
    m = prev_masks.float()
    b = len(m)
    if misleading > 0:
        side = m.shape[-1]
        far = torch.randint(side // 4, 3 * side // 4 + 1, (2,), generator=gen).tolist()
        wrong = torch.roll(m, shifts=far, dims=(-2, -1))
        if others is not None:
            tokens = others.float()[:, None]
            at_others = F.interpolate(tokens, size=m.shape[-2:], mode="nearest")
            has_others = others.flatten(1).any(1).reshape(b, 1, 1, 1)
            wrong = torch.where(has_others, at_others, wrong)
        misled = torch.rand(b, 1, 1, 1, generator=gen) < misleading
        m = torch.where(misled, wrong, m)
    shift = torch.randint(-max_shift, max_shift + 1, (2,), generator=gen).tolist()
    m = torch.roll(m, shifts=shift, dims=(-2, -1))
    grow = int(torch.randint(-1, 2, (1,), generator=gen))
    if grow > 0:
        m = F.max_pool2d(m, 3, stride=1, padding=1)
    elif grow < 0:
        m = -F.max_pool2d(-m, 3, stride=1, padding=1)
    drop = torch.rand(b, 1, 1, 1, generator=gen) < 0.1  # the tracker lost the object
    m = torch.where(drop, torch.zeros_like(m), m)
    logits = (m * 2 - 1) * 8 + torch.randn(m.shape, generator=gen) * 3
    return F.avg_pool2d(logits, 3, stride=1, padding=1)


def sample_cues(gen: torch.Generator) -> tuple[str, ...]:
    """All cues most of the time; otherwise a random non-empty subset (cue dropout)."""
    if torch.rand(1, generator=gen) < 0.6:
        return CUES
    while True:
        pick = tuple(c for c in CUES if torch.rand(1, generator=gen) < 0.5)
        if pick:
            return pick


def router_loss(
    router: TokenRouter,
    batch: RouterSamples,
    cues,
    gen,
    hard_negative_weight: float = HARD_NEGATIVE_WEIGHT,
    misleading: float = MISLEADING,
    max_shift: int = MASK_SHIFT,
) -> torch.Tensor:
    """BCE of the combined score against the relevant tokens, plus (when the text cue is on) a
    BCE of the raw text cue in which the frame's other objects weigh ``hard_negative_weight``
    times the positives' weight, so the text cue learns "this object, not those"."""
    logits = simulate_logits(
        batch.prev_masks, gen, _other_objects_map(batch), misleading, max_shift
    )
    out = router(batch.inputs(prev_mask_logits=logits, cues=cues))
    target = batch.labels.float()
    pos_weight = ((1 - target).sum() / target.sum().clamp(min=1)).clamp(max=20)
    loss = F.binary_cross_entropy_with_logits(out["combined"], target, pos_weight=pos_weight)
    if "text" in cues:  # the text cue must single out the described object on its own
        aux = text_cue_bce(out["text"], target, batch.others, hard_negative_weight, pos_weight)
        loss = loss + TEXT_CUE_WEIGHT * aux
    return loss


def _other_objects_map(samples: RouterSamples) -> torch.Tensor:
    """The other objects' tokens as a ``[N, H, W]`` map on the encoder's grid."""
    return samples.others.reshape(len(samples), *samples.features.shape[-2:])


def subset(samples: RouterSamples, idx: torch.Tensor) -> RouterSamples:
    return RouterSamples(
        samples.features[idx],
        samples.prev_masks[idx],
        samples.text[idx],
        samples.labels[idx],
        samples.others[idx],
        None if samples.detail is None else samples.detail[idx],
    )


def recall_at(scores: torch.Tensor, labels: torch.Tensor, ratio: float) -> float:
    """Share of relevant tokens that a top-``ratio`` selection keeps (mean over samples)."""
    k = max(1, round(ratio * scores.shape[1]))
    top = scores.topk(k, dim=1).indices
    kept = torch.zeros_like(labels).scatter_(1, top, True) & labels
    return float((kept.sum(1) / labels.sum(1).clamp(min=1))[labels.any(1)].mean())


@torch.no_grad()
def text_preferred(
    router: TokenRouter, samples: RouterSamples
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample: whether the text cue's mean is higher on the described object's tokens than
    on the other objects' tokens, and whether the sample counts (another object in view).

    The object's own tokens are its (one-token dilated) labels eroded back by one token, so
    that the background ring does not pull its mean down against the undilated others."""
    cue = router(samples.inputs(cues=("text",)))["text"]
    grid = samples.features.shape[-2:]
    dilated = samples.labels.float().reshape(-1, 1, *grid)
    core = (-F.max_pool2d(-dilated, 3, stride=1, padding=1)).flatten(1) > 0
    counted = samples.others.any(1) & core.any(1)
    own = (cue * core).sum(1) / core.sum(1).clamp(min=1)
    other = (cue * samples.others).sum(1) / samples.others.sum(1).clamp(min=1)
    return own > other, counted


def text_discrimination(router: TokenRouter, samples: RouterSamples) -> float:
    """Share of samples with other objects in view where the text cue prefers the described
    object (``text_preferred``; 0.5 = the text is ignored)."""
    preferred, counted = text_preferred(router, samples)
    if not counted.any():
        raise ValueError("no sample has another object in view; use multi-object videos")
    return float(preferred[counted].float().mean())


@torch.no_grad()
def token_recall_table(
    router, samples: RouterSamples, ratios=(0.1, 0.2, 0.3, 0.5), seed=0, misleading: float = 0.0
) -> dict:
    """Relevant-token recall of the router (all cues, each cue off) against the baselines.
    ``misleading=1.0`` measures it where every previous mask points elsewhere (see
    ``simulate_logits``): there only the text cue knows where the object is."""
    gen = torch.Generator().manual_seed(seed)
    logits = simulate_logits(samples.prev_masks, gen, _other_objects_map(samples), misleading)
    base = samples.inputs(prev_mask_logits=logits)
    variants = {
        "router": CUES,
        **{f"router -{cue}": tuple(c for c in CUES if c != cue) for cue in CUES},
        "text_only": ("text",),
    }
    table = {}
    for name, cues in variants.items():
        scores = router(ScoringInputs(**{**base.__dict__, "cues": cues}))["combined"]
        table[name] = {r: recall_at(scores, samples.labels, r) for r in ratios}
    for name, scorer in (
        ("mask_prior", MaskPriorScorer()),
        ("grid", GridScorer()),
        ("random", RandomScorer(seed)),
    ):
        table[name] = {r: recall_at(scorer(base)["combined"], samples.labels, r) for r in ratios}
    return table


def format_table(table: dict) -> str:
    ratios = list(next(iter(table.values())))
    lines = [
        "| scorer | " + " | ".join(f"keep {r}" for r in ratios) + " |",
        "|---|" + "---|" * len(ratios),
    ]
    lines += [
        f"| {name} | " + " | ".join(f"{v[r]:.3f}" for r in ratios) + " |"
        for name, v in table.items()
    ]
    return "\n".join(lines)


def train_router(
    samples: RouterSamples,
    text_dim: int,
    minutes: float = 10.0,
    max_steps: int = 3000,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    progress: bool = True,
    text_context: int = TEXT_CONTEXT,
    hard_negative_weight: float = HARD_NEGATIVE_WEIGHT,
    misleading: float = MISLEADING,
    mask_shift: int = MASK_SHIFT,
    text_gate: str = "always",
) -> tuple[TokenRouter, list[float]]:
    """Fit a fresh router; returns it (eval mode) and the per-step loss curve.

    ``text_context`` and ``hard_negative_weight`` are the text-cue settings the model card's
    text-discrimination comparison varies (``--text-context``, ``--hard-negative-weight``);
    ``misleading`` is the share of samples whose previous mask points elsewhere;
    ``mask_shift`` the largest simulated error of that mask, in tokens; ``text_gate`` when
    the combination reads the text cue (``RouterConfig.text_gate``). Samples that carry
    stride-8 maps (``build_samples(..., detail=True)``) give a router whose text cue reads
    them."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    config = RouterConfig(
        samples.features.shape[1],
        text_dim,
        text_context=text_context,
        text_gate=text_gate,
        detail_dim=0 if samples.detail is None else samples.detail.shape[1],
    )
    router = TokenRouter(config)
    opt = torch.optim.AdamW(router.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max_steps)
    losses, start = [], time.time()
    bar = tqdm(range(max_steps), desc="train router", disable=not progress)
    for _ in bar:
        idx = torch.randint(len(samples), (batch_size,), generator=gen)
        batch = subset(samples, idx)
        loss = router_loss(
            router, batch, sample_cues(gen), gen, hard_negative_weight, misleading, mask_shift
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.detach().item())
        if len(losses) % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        if time.time() - start > minutes * 60:
            break
    return router.eval(), losses


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sam2", default="micro", help="SAM2 model name (frozen)")
    parser.add_argument("--sam2-checkpoint", default=None)
    parser.add_argument("--image-size", type=int, default=None, help="override the SAM2 input size")
    parser.add_argument("--clip", default="micro", help="CLIP model name (frozen)")
    parser.add_argument("--clip-pretrained", default=None, help="open_clip tag or weights file")
    parser.add_argument(
        "--dataset", default="synthetic", help="'synthetic' or a DAVIS-layout folder"
    )
    parser.add_argument(
        "--world",
        default="classic",
        help=f"synthetic world(s) to train on, comma-separated from {TRAINING_WORLDS} "
        "(with --dataset synthetic; videos split evenly between them)",
    )
    parser.add_argument("--train-split", default="train")
    parser.add_argument("--val-split", default="val")
    parser.add_argument("--frames", type=int, default=8, help="frames per video (first N)")
    parser.add_argument("--cache", type=Path, default=None, help="folder caching encoder tokens")
    parser.add_argument("--train-videos", type=int, default=240, help="(at most, for a folder)")
    parser.add_argument("--val-videos", type=int, default=40, help="(at most, for a folder)")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("data/router_micro.safetensors"))
    parser.add_argument(
        "--text-context",
        type=int,
        default=TEXT_CONTEXT,
        help="odd kernel of the token projection the text cue compares with the text (1: per token)",
    )
    parser.add_argument(
        "--hard-negative-weight",
        type=float,
        default=HARD_NEGATIVE_WEIGHT,
        help="weight of the frame's other objects in the text-cue loss, relative to the positives (0: plain negatives)",
    )
    parser.add_argument(
        "--misleading",
        type=float,
        default=MISLEADING,
        help="share of training samples whose simulated previous mask points at other objects or far away",
    )
    parser.add_argument(
        "--mask-shift",
        type=int,
        default=MASK_SHIFT,
        help="largest simulated error of the previous mask, in tokens per axis",
    )
    parser.add_argument(
        "--text-gate",
        default="always",
        choices=TEXT_GATES,
        help="when the router's MLP reads the text cue: on every frame, or only where the "
        "previous mask shows no object",
    )
    parser.add_argument(
        "--text-detail",
        action="store_true",
        help="let the text cue read SAM2's stride-8 map beside the stride-16 tokens "
        "(shape evidence finer than one token)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    mask = parser.add_argument_group(
        "mask objective (--objective mask): the router trained through the frozen SAM2"
    )
    mask.add_argument(
        "--objective",
        default="recall",
        choices=("recall", "mask"),
        help="recall: labels from ground-truth masks (the first design); mask: then train for "
        "SAM2's mask loss through gates (fsam2lib.train.mask_objective)",
    )
    mask.add_argument(
        "--init", type=Path, default=None, help="start the mask objective from this router"
    )
    mask.add_argument(
        "--resume", action="store_true", help="continue the mask-objective run saved in --out"
    )
    mask.add_argument("--mask-minutes", type=float, default=MaskObjectiveConfig.minutes)
    mask.add_argument("--mask-steps", type=int, default=MaskObjectiveConfig.max_steps)
    mask.add_argument("--clips", type=int, default=MaskObjectiveConfig.clips)
    mask.add_argument("--objects-per-clip", type=int, default=MaskObjectiveConfig.objects_per_clip)
    mask.add_argument("--clip-frames", type=int, default=MaskObjectiveConfig.frames)
    mask.add_argument(
        "--keep-range",
        default=f"{MaskObjectiveConfig.keep_min},{MaskObjectiveConfig.keep_max}",
        help="keep ratios drawn per step from this range (one value: that ratio only)",
    )
    mask.add_argument(
        "--text-off",
        type=float,
        default=MaskObjectiveConfig.text_off,
        help="share of steps trained without the text cue",
    )
    mask.add_argument(
        "--text-cue-weight",
        type=float,
        default=MaskObjectiveConfig.text_cue_weight,
        help="weight of the text cue's own loss (the recall objective's) beside the mask loss",
    )
    mask.add_argument(
        "--mask-worlds",
        default=",".join(MASK_WORLDS),
        help="synthetic families the clips come from, drawn evenly (name one twice to draw "
        "it twice as often; held_out and crossing stay unseen)",
    )
    mask.add_argument("--lr", type=float, default=MaskObjectiveConfig.lr)
    mask.add_argument("--log", type=Path, default=None, help="JSON lines, one per step")
    args = parser.parse_args(argv)
    if not 0.0 <= args.misleading <= 1.0:
        parser.error(f"--misleading must be a share in [0, 1], got {args.misleading}")
    if args.mask_shift < 0:
        parser.error(f"--mask-shift must be a number of tokens >= 0, got {args.mask_shift}")
    try:
        parse_worlds(args.world)
    except ValueError as err:
        parser.error(str(err))
    if args.resume and args.init:
        parser.error("--resume and --init exclude each other")
    if args.objective == "recall" and (args.resume or args.init):
        parser.error("--init and --resume belong to --objective mask")
    try:
        mask_cfg = _mask_config(args)
    except ValueError as err:
        parser.error(str(err))
    torch.set_num_threads(args.threads)
    sam2_model = load_sam2(
        args.sam2,
        checkpoint=args.sam2_checkpoint,
        image_size=args.image_size,
        predictor_class=SAM2_BASE,
    )
    clip = load_clip(args.clip, pretrained=args.clip_pretrained)
    labels = {"sam2_weights": weights_label(sam2_model), "clip_weights": clip.label}
    print(f"frozen: {labels['sam2_weights']}; {labels['clip_weights']}")
    if args.objective == "mask" and (args.init or args.resume):
        router = load_router(args.out if args.resume else args.init)
        meta = {k: v for k, v in router.metadata.items() if k != "config"}
    else:
        router, meta = _train_recall(args, sam2_model, clip, labels)
    if args.objective == "mask":
        _train_mask(args, mask_cfg, sam2_model, clip, router, {**meta, **labels})


def _train_recall(args, sam2_model, clip, labels: dict) -> tuple[TokenRouter, dict]:
    """The recall objective: samples from the videos, then :func:`train_router`; saves
    the router to ``--out`` and prints its token-recall tables."""
    progress = not args.no_progress
    worlds = parse_worlds(args.world)
    start = time.time()
    cache = None
    if args.cache is not None:  # one folder per (SAM2, weights, input size): tokens differ
        weights = Path(args.sam2_checkpoint).stem if args.sam2_checkpoint else "shipped"
        cache = args.cache / f"{args.sam2}_{weights}_{sam2_model.image_size}px"
    splits, frames, sample_seconds = {}, 0, 0.0
    for split, count in ((args.train_split, args.train_videos), (args.val_split, args.val_videos)):
        if args.dataset == "synthetic":
            videos = mixed_synthetic_videos(
                split, count, sam2_model.image_size, args.frames, args.seed, worlds
            )
        else:
            videos = davis_videos(args.dataset, split, clip, count, args.frames)
        frames += sum(v.num_frames for v in videos)
        tic = time.time()
        splits[split] = build_samples(
            sam2_model, clip, videos, progress, cache, f"encode {split}", args.text_detail
        )
        sample_seconds += time.time() - tic
    train, val = splits[args.train_split], splits[args.val_split]
    encode_seconds = time.time() - start
    router, losses = train_router(
        train,
        clip.embed_dim,
        args.minutes,
        args.steps,
        seed=args.seed,
        progress=progress,
        text_context=args.text_context,
        hard_negative_weight=args.hard_negative_weight,
        misleading=args.misleading,
        mask_shift=args.mask_shift,
        text_gate=args.text_gate,
    )
    table = token_recall_table(router, val)
    misled = token_recall_table(router, val, misleading=1.0)
    try:
        discrimination = round(text_discrimination(router, val), 3)
    except ValueError:  # no val frame shows two objects (e.g. single-object real videos)
        discrimination = None
    wall = time.time() - start
    meta = {
        "sam2": args.sam2,
        "clip": args.clip,
        "train_samples": str(len(train)),
        "steps": str(len(losses)),
        "hard_negative_weight": str(args.hard_negative_weight),
        "misleading": str(args.misleading),
        "mask_shift": str(args.mask_shift),
        "dataset": str(args.dataset)
        + (f":{','.join(worlds)}" if args.dataset == "synthetic" else ""),
        "encode_seconds": f"{encode_seconds:.0f}",
        "sample_seconds_per_frame": f"{sample_seconds / frames:.3f}",
        **labels,
        "wall_seconds": f"{wall:.0f}",
        "val_token_recall": json.dumps(table),
        "val_token_recall_misled": json.dumps(misled),
        "val_text_discrimination": str(discrimination),
    }
    save_router(router, args.out, meta)
    print(format_table(table))
    print("\nwhen every previous mask points elsewhere:")
    print(format_table(misled))
    print(
        json.dumps(
            {
                "steps": len(losses),
                "final_loss": float(np.mean(losses[-50:])),
                "val_text_discrimination": discrimination,
                "wall_seconds": round(wall),
                "encode_seconds": round(encode_seconds),
                # the frozen encoder per frame (or a cache read, when --cache already has it)
                "sample_seconds_per_frame": round(sample_seconds / frames, 3),
                "cache": None if cache is None else str(cache),
                **labels,
                "samples": len(train),
                "out": str(args.out),
            }
        )
    )
    return router, meta


def _mask_config(args) -> MaskObjectiveConfig:
    keep = [float(v) for v in args.keep_range.split(",")]
    if len(keep) not in (1, 2):
        raise ValueError(f"--keep-range takes one ratio or 'LOW,HIGH', got {args.keep_range!r}")
    worlds = tuple(w.strip() for w in args.mask_worlds.split(",") if w.strip())
    unseen = [w for w in worlds if w not in MASK_WORLDS]
    if unseen:
        raise ValueError(f"--mask-worlds must come from {MASK_WORLDS}, got {unseen}")
    return MaskObjectiveConfig(
        minutes=args.mask_minutes,
        max_steps=args.mask_steps,
        clips=args.clips,
        objects_per_clip=args.objects_per_clip,
        frames=args.clip_frames,
        keep_min=keep[0],
        keep_max=keep[-1],
        text_off=args.text_off,
        text_cue_weight=args.text_cue_weight,
        lr=args.lr,
        worlds=worlds,
        seed=args.seed,
        threads=args.threads,
    )


def _train_mask(args, cfg: MaskObjectiveConfig, sam2_model, clip, router, meta: dict) -> None:
    """The mask objective from ``router`` (recall-trained or ``--init``); saves to ``--out``."""
    source = None
    if args.dataset != "synthetic":
        source = folder_source(
            davis_videos(args.dataset, args.train_split, clip, args.train_videos), cfg.frames
        )
    summary = train_mask_objective(
        sam2_model,
        clip,
        router,
        cfg,
        args.out,
        source=source,
        log_path=args.log,
        resume=args.resume,
        progress=not args.no_progress,
        metadata={**meta, "dataset": _dataset_label(args, cfg)},
    )
    recent = summary["history"][-50:]
    print(
        json.dumps(
            {
                "objective": "mask",
                "steps": summary["steps"],
                "wall_seconds": summary["wall_seconds"],
                "recent_loss": round(float(np.mean([r["total"] for r in recent])), 4)
                if recent
                else None,
                "recent_iou": round(float(np.mean([r["iou"] for r in recent])), 4)
                if recent
                else None,
                "out": str(args.out),
                "sam2_weights": meta.get("sam2_weights"),
                "clip_weights": meta.get("clip_weights"),
            }
        )
    )


def _dataset_label(args, cfg: MaskObjectiveConfig) -> str:
    return f"synthetic:{','.join(cfg.worlds)}" if args.dataset == "synthetic" else str(args.dataset)


if __name__ == "__main__":
    main()
