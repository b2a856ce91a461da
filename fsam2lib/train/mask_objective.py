"""Train the router for the mask that comes out: through the frozen SAM2, over clips.

The recall objective (``train_router --objective recall``) teaches the router to find the
object's tokens. Tracking needs something else: the boundary band, the context a look-alike is
told apart from, nothing on far background, and the text cue only where it decides which
object to follow. Here the router is trained on what SAM2 does with its choice:

- each frame is scored by the router and its keep set drawn as inference draws it (top-k at
  the keep ratio; on the prompted frame the object's tokens first); the choice becomes keep
  gates, 0/1 in the forward pass with a straight-through gradient (a sigmoid of the score
  around the k-th score) behind them, so the forward pass is what inference computes;
- memory attention runs densely under those gates (:class:`~fsam2lib.pruning.attention.GatedPlan`):
  pruned memory tokens are hidden from cross-attention, pruned queries from self-attention,
  and a pruned query's output is the fill, as after the scatter at inference;
- SAM2's own mask loss (focal + dice on the mask it outputs, BCE on its object score) over
  clips, the memory bank carried from frame to frame; memory contents are detached between
  frames (truncated backprop), the gates that chose them are not, so a frame's loss also
  reaches the choices of the memory frames it read;
- keep ratios are drawn per step from ``[keep_min, keep_max]`` (one router for all), and a
  share of the steps runs without the text cue, the comparison the text effect is measured
  against, so that the router learns to do without the description as well as with it;
- clips come from worlds where the description can tell the target from a look-alike
  (``lookalike``, ``hard``) and from worlds where it cannot (``lookalike``'s identical twins):
  there the mask loss teaches the router to stay quiet;
- optionally (``text_cue_weight``) the recall objective's loss on the raw text cue stays on:
  a BCE in which the target's tokens are positives and the other objects' tokens weighted
  negatives. Why: trained on the mask loss alone, the first mask router let its text cue drift
  (it told the described object from the others on fewer frames) and gave it almost no weight.

SAM2 and CLIP stay frozen (no parameter of theirs is trained; gradients pass through them).
Start from a recall-trained router (``--init``). Resumable: the weights file records step,
elapsed time and generator state, as the micro SAM2's trainer does.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

from fsam2lib.predictor.memory_reads import TrackedOutput, record_memory_reads
from fsam2lib.pruning.attention import GatedPlan, PrunedMemoryAttention
from fsam2lib.pruning.config import CUES
from fsam2lib.pruning.router import TokenRouter, reads_detail
from fsam2lib.pruning.scorers import ScoringInputs
from fsam2lib.pruning.selection import mask_tokens, num_kept, prioritise
from fsam2lib.train.text_cue_loss import text_cue_bce
from fsam2lib.train.train_sam2_micro import dice_loss, focal_loss
from fsam2lib.videos.frames import to_model_input
from fsam2lib.videos.video import Video
from fsam2lib.videos.world import make_video, video_seed
from fsam2lib.videos.worlds import sample_world

# Worlds the clips come from (families of fsam2lib.videos.worlds; held_out and crossing stay
# unseen): where the description separates look-alikes, and where it cannot (twins).
MASK_WORLDS = ("classic", "broad", "hard", "lookalike")
LOGIT_CLAMP = 20.0


@dataclass(frozen=True)
class MaskObjectiveConfig:
    minutes: float = 60.0
    max_steps: int = 100_000
    clips: int = 4  # videos per step
    objects_per_clip: int = 2  # targets per clip (each a row of the batch)
    frames: int = 8  # clip length
    keep_min: float = 0.1
    keep_max: float = 0.5
    text_off: float = 0.35  # share of steps trained without the text cue
    cue_off: float = 0.1  # share of steps with one of the other cues switched off
    lr: float = 3e-4
    warmup_steps: int = 20
    focal_weight: float = 20.0  # SAM2's own weights (train_sam2_micro)
    dice_weight: float = 1.0
    score_weight: float = 1.0
    # weight of the text cue's own loss (the recall objective's, hard negatives included);
    # 0: the mask loss alone
    text_cue_weight: float = 0.0
    temperature: float = 0.5  # soft gate width, in standard deviations of the frame's scores
    prompt_radius: int = 1  # PruningConfig.prompt_radius: the prompted frame's object tokens
    min_tokens: int = 16  # PruningConfig.min_tokens
    worlds: tuple[str, ...] = MASK_WORLDS
    seed: int = 0
    threads: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.keep_min <= self.keep_max <= 1:
            raise ValueError(
                f"keep ratios must satisfy 0 < keep_min <= keep_max <= 1, got "
                f"{self.keep_min}, {self.keep_max}"
            )
        for name in ("text_off", "cue_off"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a share in [0, 1], got {getattr(self, name)}")
        if self.frames < 2:
            raise ValueError(
                f"clips need at least 2 frames (a prompt and a tracked frame), got {self.frames}"
            )
        if not self.worlds:
            raise ValueError("worlds must name at least one family to draw clips from")
        if self.text_cue_weight < 0:
            raise ValueError(f"text_cue_weight must be >= 0, got {self.text_cue_weight}")


def straight_through_keep(
    scores: Tensor, keep: int, rank: Tensor | None = None, temperature: float = 0.5
) -> Tensor:
    """Keep gates ``[B, N]``: exactly 1 on the ``keep`` tokens ranked highest (by ``rank``,
    default the scores) and 0 elsewhere in the forward pass; the gradient is that of a
    sigmoid of the score around the boundary between kept and pruned scores, ``temperature``
    standard deviations of the row's scores wide."""
    n = scores.shape[1]
    key = (scores if rank is None else rank).detach()
    hard = torch.zeros_like(scores).scatter(1, key.topk(keep, dim=1).indices, 1.0)
    s = scores.detach()
    kept_low = s.masked_fill(hard == 0, torch.inf).amin(1, keepdim=True)
    if keep < n:
        pruned_high = s.masked_fill(hard == 1, -torch.inf).amax(1, keepdim=True)
        threshold = (kept_low + pruned_high) / 2
    else:
        threshold = kept_low - 1
    width = temperature * s.std(1, keepdim=True).clamp(min=1e-6)
    soft = torch.sigmoid((scores - threshold) / width)
    return hard + (soft - soft.detach())  # exactly 0 or 1 forward


@dataclass
class Clips:
    """One step's clips: frames, the targets' masks and descriptions."""

    images: Tensor  # [clips * T, 3, S, S], clip-major
    masks: Tensor  # [T, B, 1, S, S] float; B = number of (clip, object) targets
    others: Tensor  # [T, B, 1, S, S] float: the clip's other objects, for each target
    clip_of: Tensor  # [B] clip of each target
    texts: list[str]  # [B] each target's description
    num_frames: int


def world_clip(family: str, rng: np.random.Generator, frames: int, size: int) -> Video:
    """A training video of ``family`` (train split), ``frames`` long."""
    world = sample_world(family, rng, num_frames=max(8, frames), height=size, min_objects=1)
    return make_video(int(rng.integers(2**31)), world, split="train")


def make_clips(
    rng: np.random.Generator, cfg: MaskObjectiveConfig, image_size: int, source: Callable
) -> Clips:
    """``cfg.clips`` clips from ``source(rng)`` (a video), each with up to
    ``objects_per_clip`` described targets visible on its first frame."""
    images, targets, others, clip_of, texts = [], [], [], [], []
    while len(images) < cfg.clips:
        video = source(rng)
        frames, masks = video.frames[: cfg.frames], video.masks[: cfg.frames]
        visible = [k for k in sorted(video.descriptions) if (masks[0] == k).sum() >= 16]
        if not visible or len(frames) < cfg.frames:
            continue
        for k in rng.permutation(visible)[: cfg.objects_per_clip]:
            for out, mask in ((targets, masks == k), (others, (masks != k) & (masks > 0))):
                mask = torch.from_numpy(mask & (masks != 255)).float()[:, None]
                out.append(F.interpolate(mask, size=(image_size, image_size), mode="nearest"))
            clip_of.append(len(images))
            texts.append(video.descriptions[int(k)])
        images.append(to_model_input(frames, image_size))
    return Clips(
        torch.cat(images),
        torch.stack(targets, 1),
        torch.stack(others, 1),
        torch.tensor(clip_of),
        texts,
        cfg.frames,
    )


def sample_step_cues(rng: np.random.Generator, cfg: MaskObjectiveConfig) -> tuple[str, ...]:
    """The cues of one step: all; or without text (``text_off``); or without one other cue."""
    u = rng.random()
    if u < cfg.text_off:
        return tuple(c for c in CUES if c != "text")
    if u < cfg.text_off + cfg.cue_off:
        dropped = ("visual", "mask", "uncertainty")[int(rng.integers(3))]
        return tuple(c for c in CUES if c != dropped)
    return CUES


def clip_loss(
    sam2_model,
    router: TokenRouter,
    clips: Clips,
    text_embeddings: Tensor,
    keep_ratio: float,
    cues: tuple[str, ...],
    cfg: MaskObjectiveConfig,
) -> dict[str, Tensor]:
    """Prompt each target with its first-frame mask, track it through the clip with the
    router choosing the kept tokens under gates, and return SAM2's mask loss (mean over
    tracked frames) and the IoU of its masks (for the log)."""
    model = sam2_model
    with torch.no_grad():
        backbone = model.forward_image(clips.images)
        _, feats, pos, sizes = model._prepare_backbone_features(backbone)
    attention = PrunedMemoryAttention.convert(model.memory_attention)
    t_count, b = clips.num_frames, len(clips.clip_of)
    h, w = sizes[-1]
    keep = num_kept(h * w, keep_ratio, cfg.min_tokens)
    detail = reads_detail(router)
    output_dict = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    prev_low, prev_conditioned = None, None
    totals = {"mask": 0.0, "score": 0.0, "text_cue": 0.0}
    iou_sum, counted = 0.0, 0
    for t in range(t_count):
        index = clips.clip_of * t_count + t
        feats_t = [f.index_select(1, index) for f in feats]
        pos_t = [p.index_select(1, index) for p in pos]
        curr = feats_t[-1]  # [H*W, B, C]
        first = t == 0
        routed = router(
            ScoringInputs(
                features=curr.permute(1, 2, 0).reshape(b, -1, h, w),
                frame_idx=t,
                prev_mask_logits=prev_low,
                text_embedding=text_embeddings if "text" in cues else None,
                cues=cues,
                detail=feats_t[-2].permute(1, 2, 0).reshape(b, -1, 2 * h, 2 * w)
                if detail
                else None,
                keep_ratio=keep_ratio,
            )
        )
        scores = routed["combined"]
        if "text" in cues and cfg.text_cue_weight > 0:
            totals["text_cue"] = totals["text_cue"] + text_cue_loss(
                routed["text"], clips.masks[t], clips.others[t], (h, w)
            )
        if first:
            mask_inputs = clips.masks[0] > 0.5
            current, sam_outputs, _, _ = model._track_step(
                t, True, feats_t, pos_t, sizes, None, mask_inputs, output_dict, t_count, False,
                None,
            )  # fmt: skip
        else:
            gate = straight_through_keep(scores, keep, temperature=cfg.temperature)
            fill = prev_conditioned if prev_conditioned is not None else curr + model.no_mem_embed
            plan = GatedPlan(grid=(h, w), query_gate=gate, fill=fill)
            with record_memory_reads() as reads, attention.planned(plan):
                plan.memory_sources = reads
                current, sam_outputs, _, pix = model._track_step(
                    t, False, feats_t, pos_t, sizes, None, None, output_dict, t_count, False,
                    None,
                )  # fmt: skip
            prev_conditioned = pix.detach().flatten(2).permute(2, 0, 1)
        _, _, _, low_res, high_res, obj_ptr, score_logits = sam_outputs
        if first:  # the prompted frame's memory: its object's tokens first, then its scores
            obj = mask_tokens(low_res, (h, w), cfg.prompt_radius)
            gate = straight_through_keep(
                scores, keep, prioritise(scores.detach(), obj), cfg.temperature
            )
        else:
            target = clips.masks[t]
            visible = (target.flatten(1).sum(-1) > 0).float()
            n_vis = visible.sum().clamp(min=1)
            # SAM2 writes -1024 where its object score says "absent": no gradient there,
            # only a loss value that would drown the log
            logits = high_res.clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
            per_mask = cfg.focal_weight * focal_loss(logits, target) + (
                cfg.dice_weight * dice_loss(logits, target)
            )
            totals["mask"] = totals["mask"] + (per_mask[:, 0] * visible).sum() / n_vis
            totals["score"] = totals["score"] + F.binary_cross_entropy_with_logits(
                score_logits.squeeze(-1), visible
            )
            with torch.no_grad():
                iou_sum += float(_iou(high_res, target).mean())
            counted += 1
        current.update(pred_masks=low_res, pred_masks_high_res=high_res, obj_ptr=obj_ptr)
        with torch.no_grad():
            model._encode_memory_in_output(
                feats_t, sizes, None, True, high_res, score_logits, current
            )
        stored = TrackedOutput(_detached(current), t, first, reverse=False, prompted=first)
        stored.gate = gate
        output_dict["cond_frame_outputs" if first else "non_cond_frame_outputs"][t] = stored
        prev_low = low_res.detach()
    losses = {  # the mask losses over tracked frames, the text cue's over every frame
        "mask": torch.as_tensor(totals["mask"] / counted),
        "score": torch.as_tensor(totals["score"] / counted),
        "text_cue": torch.as_tensor(totals["text_cue"] / t_count),
    }
    losses["total"] = (
        losses["mask"]
        + cfg.score_weight * losses["score"]
        + cfg.text_cue_weight * losses["text_cue"]
    )
    losses["iou"] = torch.tensor(iou_sum / counted)
    return losses


def text_cue_loss(text: Tensor, target: Tensor, others: Tensor, grid: tuple[int, int]) -> Tensor:
    """:func:`~fsam2lib.train.text_cue_loss.text_cue_bce` for one frame of a clip: the
    target's tokens (any overlap with ``target`` ``[B, 1, S, S]``) against the rest, the other
    objects' tokens as hard negatives."""
    positive = F.adaptive_max_pool2d(target, grid).flatten(1)
    other = F.adaptive_max_pool2d(others, grid).flatten(1) * (1 - positive)
    return text_cue_bce(text, positive, other)


def _detached(output: dict) -> dict:
    """A stored frame's output with its tensors cut from the graph (truncated backprop: the
    memory's contents carry no gradient to later frames; its gate does)."""
    return {k: v.detach() if isinstance(v, Tensor) else v for k, v in output.items()}


def _iou(logits: Tensor, target: Tensor) -> Tensor:
    pred, target = (logits > 0).flatten(1).float(), target.flatten(1)
    inter = (pred * target).sum(1)
    union = pred.sum(1) + target.sum(1) - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))


class TextEmbeddings:
    """The frozen CLIP text tower's embedding of each description, encoded once."""

    def __init__(self, clip) -> None:
        self.clip, self.cache = clip, {}

    def __call__(self, texts: list[str]) -> Tensor:
        missing = sorted({t for t in texts if t not in self.cache})
        if missing:
            with torch.no_grad():
                for text, emb in zip(missing, self.clip.encode_text(missing), strict=True):
                    self.cache[text] = emb.float()
        return torch.stack([self.cache[t] for t in texts])


def lr_at(step: int, elapsed: float, cfg: MaskObjectiveConfig, since: int = 0) -> float:
    """Warm-up over ``warmup_steps`` after step ``since``, then cosine over the budget: the
    steps (``max_steps``) or the minutes, whichever runs out first. A run sized in steps
    (minutes to spare) is then the same run on a fast or a slow machine."""
    if step - since < cfg.warmup_steps:
        return cfg.lr * (step - since + 1) / cfg.warmup_steps
    progress = min(1.0, max(elapsed / (cfg.minutes * 60), step / cfg.max_steps))
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def synthetic_source(cfg: MaskObjectiveConfig, image_size: int) -> Callable:
    """Clips drawn evenly from ``cfg.worlds`` (train split)."""

    def draw(rng: np.random.Generator) -> Video:
        family = cfg.worlds[int(rng.integers(len(cfg.worlds)))]
        return world_clip(family, rng, cfg.frames, image_size)

    return draw


def folder_source(videos: list[Video], frames: int) -> Callable:
    """Clips of ``frames`` consecutive frames from a dataset's videos (random video, start)."""
    usable = [v for v in videos if v.num_frames >= frames and v.descriptions]
    if not usable:
        raise ValueError(f"no video with descriptions is {frames} frames or longer")

    def draw(rng: np.random.Generator) -> Video:
        video = usable[int(rng.integers(len(usable)))]
        start = int(rng.integers(video.num_frames - frames + 1))
        return video.window(start, frames)

    return draw


def train_mask_objective(
    sam2_model,
    clip,
    router: TokenRouter,
    cfg: MaskObjectiveConfig,
    out: Path,
    source: Callable | None = None,
    log_path: Path | None = None,
    resume: bool = False,
    save_every: float = 300.0,
    progress: bool = True,
    metadata: dict | None = None,
) -> dict:
    """Fine-tune ``router`` with the mask objective (SAM2 and CLIP frozen) until the time or
    step budget is spent; save to ``out`` every ``save_every`` seconds and at the end, with
    where the run stands in the file's metadata (``--resume`` continues from it)."""
    from fsam2lib.pruning.router import save_router

    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    sam2_model.eval().requires_grad_(False)
    router.train().requires_grad_(True)
    source = source or synthetic_source(cfg, sam2_model.image_size)
    rng = np.random.default_rng(video_seed("train", 0, cfg.seed + 101))
    step, elapsed_before = 0, 0.0
    if resume:
        step, elapsed_before, rng = _resume_point(router)
    opt = torch.optim.AdamW(router.parameters(), lr=cfg.lr, weight_decay=1e-4)
    since = step
    texts = TextEmbeddings(clip)
    log = None if log_path is None else log_path.open("a")
    start = time.time() - elapsed_before
    last_save = time.time()
    history: list[dict] = []
    bar = tqdm(
        total=int(cfg.minutes * 60), initial=int(elapsed_before), unit="s",
        desc="train router (mask)", disable=not progress,
    )  # fmt: skip

    def save() -> None:
        meta = {
            **(metadata or {}),
            "objective": "mask",
            "step": str(step),
            "elapsed": f"{time.time() - start:.1f}",
            "rng": json.dumps(rng.bit_generator.state),
            "mask_objective": json.dumps(dataclasses.asdict(cfg)),
        }
        save_router(router, out, meta)

    try:
        while step < cfg.max_steps and (elapsed := time.time() - start) < cfg.minutes * 60:
            for group in opt.param_groups:
                group["lr"] = lr_at(step, elapsed, cfg, since)
            clips = make_clips(rng, cfg, sam2_model.image_size, source)
            keep = float(rng.uniform(cfg.keep_min, cfg.keep_max))
            cues = sample_step_cues(rng, cfg)
            losses = clip_loss(sam2_model, router, clips, texts(clips.texts), keep, cues, cfg)
            opt.zero_grad(set_to_none=True)
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(router.parameters(), 1.0)
            opt.step()
            step += 1
            record = {k: round(float(v.detach()), 4) for k, v in losses.items()}
            record.update(
                step=step, elapsed=round(elapsed, 1), keep=round(keep, 3), text="text" in cues
            )
            history.append(record)
            if log is not None:
                log.write(json.dumps(record) + "\n")
                log.flush()
            bar.update(int(elapsed) - bar.n)
            if step % 10 == 0:
                recent = history[-50:]
                bar.set_postfix(
                    step=step,
                    loss=f"{np.mean([r['total'] for r in recent]):.3f}",
                    iou=f"{np.mean([r['iou'] for r in recent]):.3f}",
                )
            if time.time() - last_save > save_every:
                save()
                last_save = time.time()
    except KeyboardInterrupt:  # a sitting ends: save where the run stands
        pass
    bar.close()
    save()
    router.eval()
    return {"steps": step, "wall_seconds": round(time.time() - start, 1), "history": history}


def _resume_point(router: TokenRouter) -> tuple[int, float, np.random.Generator]:
    """Step, elapsed seconds and generator of a run saved by :func:`train_mask_objective`
    (read from the router's metadata, as ``load_router`` leaves it)."""
    meta = getattr(router, "metadata", None) or {}
    if meta.get("objective") != "mask" or "step" not in meta:
        raise ValueError(
            "--resume needs a router saved by a mask-objective run (its file records the "
            "step); start one with --init instead"
        )
    rng = np.random.default_rng()
    rng.bit_generator.state = json.loads(meta["rng"])
    return int(meta["step"]), float(meta["elapsed"]), rng
