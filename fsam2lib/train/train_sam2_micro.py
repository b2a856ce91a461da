"""Train the micro SAM2 (SAM2's own architecture, configured small) on the synthetic world.

Video training as SAM2 itself is trained: prompt the first frame (ground-truth mask, clicks or a
box), then propagate frame by frame through memory attention with gradients, and supervise
every frame's masks (focal + dice on the best of the multimask outputs), SAM2's IoU head and its
object-score head (an untrained object-score head blanks every mask to -1024; see
shared/design/micro-training.md). Each clip is trained once per visible object, so the model
learns "this object, not that one" rather than "the salient object".

    python -m fsam2lib.train.train_sam2_micro --minutes 90 --out data/sam2_micro.safetensors

Two levers make the from-scratch model learn "this object" sooner (shared/design/micro-training.md):
the world gets harder over training (plain backgrounds and no distractors first, the full world
last), and early on some memory frames are encoded from the ground-truth mask instead of the
model's own prediction (teacher forcing, annealed to zero), so memory attention sees a clean
"which object" signal before the decoder is good.

Two worlds (``--world``): ``classic`` (the first world, made harder over the run) and
``broad`` (each clip draws its own world from :mod:`fsam2lib.videos.worlds`: aspect ratios,
photo backgrounds, motion models, camera and sensor effects), where ``--max-stride`` also
speeds clips up as if every k-th frame were kept (SAM2 samples clips with a random temporal
stride for the same reason: a slow world then also yields fast clips). ``--hard-share``
mixes in clips of the hard family, where an object must be found again after it was lost.

Resumable (``--resume``), seeded, logs JSON lines next to the run's checkpoint. A run longer
than one sitting resumes from its weights file (``--out``) alone when the run directory is
gone (a new machine): the weights file records step, elapsed time and generator state, and
the optimiser restarts with a short warm-up.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from fsam2lib.models.sam2 import load_sam2
from fsam2lib.videos.frames import to_model_input
from fsam2lib.videos.world import WorldConfig, make_video, video_seed
from fsam2lib.videos.worlds import sample_world

SAM2_BASE = "sam2.modeling.sam2_base.SAM2Base"


@dataclass
class TrainConfig:
    minutes: float = 90.0
    max_steps: int = 100_000
    clips: int = 4  # videos per step
    objects_per_clip: int = 2  # each visible object is a separate target
    frames: tuple[int, ...] = (3, 5, 8)  # curriculum: clip length by training phase
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 200
    prompt_mix: tuple[float, float, float] = (0.7, 0.2, 0.1)  # mask, clicks, box
    focal_weight: float = 20.0
    dice_weight: float = 1.0
    iou_weight: float = 1.0
    score_weight: float = 1.0
    teacher_forcing: float = 0.5  # chance a memory frame is encoded from the GT mask, at start
    teacher_forcing_until: float = 0.5  # ... annealed linearly to 0 at this share of the budget
    seed: int = 0
    threads: int = 2
    image_size: int = 256
    world: str = "classic"  # "classic" (difficulty curriculum) or "broad" (see worlds.py)
    max_stride: int = 1  # broad world: clips sped up by a random factor 1..max_stride
    max_objects: int = 3  # targets per clip (at least two)
    hard_share: float = 0.0  # broad world: share of clips drawn from the hard family instead

    def __post_init__(self) -> None:
        if not 0.0 <= self.hard_share <= 1.0:
            raise ValueError(f"TrainConfig.hard_share must be in [0, 1], got {self.hard_share!r}")
        if self.hard_share > 0 and self.world != "broad":
            raise ValueError(
                "TrainConfig.hard_share draws from the hard family: needs world='broad'"
            )


# Curriculum over the world's difficulty: (share of the budget it starts at, world overrides).
# The last stage is the full world the model card evaluates on.
WORLD_CURRICULUM: tuple[tuple[float, dict], ...] = (
    (0.0, dict(background="plain", max_distractors=0, camera_pan=False, occlusion=False)),
    (0.1, dict(background="procedural", max_distractors=1, occlusion=False)),
    (0.3, dict()),
)


def world_at(
    progress: float, cfg: TrainConfig, num_frames: int, rng: np.random.Generator | None = None
) -> WorldConfig:
    """The training world of one clip at ``progress`` (0..1 of the budget). Classic: easy
    first, the full world last. Broad: a world drawn from the broad family, sped up by a
    random temporal stride (speed and spin times the stride, within WorldConfig's limits);
    with ``hard_share`` that share of clips comes from the hard family (camera cuts, targets
    that vanish and reappear elsewhere, exits, look-alikes close), so that the model learns
    to find an object again after losing it."""
    if cfg.world == "broad":
        hard = cfg.hard_share > 0 and rng.random() < cfg.hard_share
        world = sample_world(
            "hard" if hard else "broad",
            rng,
            num_frames=max(8, num_frames),
            height=cfg.image_size,
            min_objects=2,
            max_objects=cfg.max_objects,
        )
        stride = int(rng.integers(1, cfg.max_stride + 1))
        return dataclasses.replace(
            world,
            max_speed=min(0.2, world.max_speed * stride),
            max_rotation=min(45.0, world.max_rotation * stride),
        )
    overrides = [o for start, o in WORLD_CURRICULUM if progress >= start][-1]
    return WorldConfig(
        height=cfg.image_size,
        width=cfg.image_size,
        num_frames=max(8, num_frames),
        min_objects=2,  # two or more targets per clip: "this object, not that one"
        max_objects=cfg.max_objects,
        **overrides,
    )


def teacher_forcing_at(progress: float, cfg: TrainConfig) -> float:
    if cfg.teacher_forcing_until <= 0:
        return 0.0
    return cfg.teacher_forcing * max(0.0, 1.0 - progress / cfg.teacher_forcing_until)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha=0.25, gamma=2.0) -> torch.Tensor:
    """Per-mask sigmoid focal loss, mean over pixels: [B, M, H, W] -> [B, M]."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = ce * (1 - p_t) ** gamma * (alpha * target + (1 - alpha) * (1 - target))
    return loss.flatten(2).mean(-1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    prob = logits.sigmoid().flatten(2)
    target = target.flatten(2)
    return 1 - (2 * (prob * target).sum(-1) + 1) / (prob.sum(-1) + target.sum(-1) + 1)


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    pred = (logits > 0).flatten(2).float()
    target = target.flatten(2)
    inter = (pred * target).sum(-1)
    union = pred.sum(-1) + target.sum(-1) - inter
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(inter))


@dataclass
class Batch:
    images: torch.Tensor  # [clips * T, 3, S, S], clip-major
    masks: torch.Tensor  # [T, B, 1, S, S] float targets, B = number of (clip, object) targets
    clip_of: torch.Tensor  # [B] clip index of each target
    num_frames: int


def make_batch(
    rng: np.random.Generator,
    cfg: TrainConfig,
    num_frames: int,
    world: WorldConfig | Callable[[], WorldConfig],
) -> Batch:
    """Clips (their first ``num_frames`` frames) and per-object targets, each clip from
    ``world`` (or from a fresh ``world()`` per clip when it is a callable)."""
    images, targets, clip_of = [], [], []
    while len(images) < cfg.clips:
        config = world() if callable(world) else world
        video = make_video(int(rng.integers(2**31)), config, split="train")
        frames, masks = video.frames[:num_frames], video.masks[:num_frames]
        first = masks[0]
        visible = [k for k in video.descriptions if (first == k).sum() >= 16]
        if not visible:
            continue
        chosen = rng.permutation(visible)[: cfg.objects_per_clip]
        for k in chosen:
            target = torch.from_numpy(masks == k).float()
            if target.shape[-2:] != (cfg.image_size, cfg.image_size):  # frames are squashed too
                size = (cfg.image_size, cfg.image_size)
                target = F.interpolate(target[:, None], size=size, mode="nearest")[:, 0]
            targets.append(target)
            clip_of.append(len(images))
        images.append(to_model_input(frames, cfg.image_size))
    masks = torch.stack(targets, dim=1)[:, :, None]  # [T, B, 1, S, S]
    return Batch(torch.cat(images), masks, torch.tensor(clip_of), num_frames)


def sample_prompt(kind: str, mask0: torch.Tensor, rng: np.random.Generator):
    """First-frame prompt for every target: ("mask", tensor) or ("points", dict)."""
    if kind == "mask":
        return None, mask0 > 0.5
    coords, labels = [], []
    for m in mask0[:, 0]:
        ys, xs = torch.nonzero(m > 0.5, as_tuple=True)
        if kind == "box":
            box = [[xs.min().item(), ys.min().item()], [xs.max().item(), ys.max().item()]]
            coords.append(box)
            labels.append([2, 3])
        else:
            i = int(rng.integers(len(xs)))
            coords.append([[xs[i].item() + 0.5, ys[i].item() + 0.5]])
            labels.append([1])
    points = {
        "point_coords": torch.tensor(coords, dtype=torch.float32),
        "point_labels": torch.tensor(labels, dtype=torch.int32),
    }
    return points, None


def video_loss(
    model, batch: Batch, prompt_kind: str, cfg: TrainConfig, rng, forcing: float = 0.0
) -> dict[str, torch.Tensor]:
    """Run one batch of clips through SAM2's tracking step frame by frame; sum the losses.

    With probability ``forcing`` a tracked frame's memory is encoded from the ground-truth mask
    (as SAM2 encodes a mask prompt) instead of the prediction; its loss is computed as usual.
    """
    backbone_out = model.forward_image(batch.images)
    _, feats, pos, sizes = model._prepare_backbone_features(backbone_out)
    point_inputs, mask_inputs = sample_prompt(prompt_kind, batch.masks[0], rng)
    output_dict = {"cond_frame_outputs": {}, "non_cond_frame_outputs": {}}
    totals = {"mask": 0.0, "iou": 0.0, "score": 0.0, "iou_metric": 0.0}
    counted = 0
    for t in range(batch.num_frames):
        index = batch.clip_of * batch.num_frames + t
        feats_t = [f.index_select(1, index) for f in feats]
        pos_t = [p.index_select(1, index) for p in pos]
        first = t == 0
        points_t = point_inputs if first else None
        current, sam_outputs, _, _ = model._track_step(
            t,
            first,
            feats_t,
            pos_t,
            sizes,
            points_t,
            mask_inputs if first else None,
            output_dict,
            batch.num_frames,
            False,
            None,
        )
        _, multimasks, ious, low_res, high_res, obj_ptr, score_logits = sam_outputs
        current.update(pred_masks=low_res, pred_masks_high_res=high_res, obj_ptr=obj_ptr)
        memory_masks, memory_scores = high_res, score_logits
        if not first and rng.random() < forcing:
            visible_t = batch.masks[t].flatten(1).amax(-1, keepdim=True)
            memory_masks = batch.masks[t] * 20.0 - 10.0  # SAM2's mask-prompt logit scaling
            memory_scores = visible_t * 20.0 - 10.0
        if batch.num_frames > 1:  # single images (the image phase) need no memory
            model._encode_memory_in_output(
                feats_t, sizes, points_t, True, memory_masks, memory_scores, current
            )
        output_dict["cond_frame_outputs" if first else "non_cond_frame_outputs"][t] = current
        if first and mask_inputs is not None:
            continue  # the mask prompt is the output itself: nothing to learn on this frame
        target = batch.masks[t]
        visible = (target.flatten(1).sum(-1) > 0).float()
        per_mask = cfg.focal_weight * focal_loss(multimasks, target.expand_as(multimasks)) + (
            cfg.dice_weight * dice_loss(multimasks, target.expand_as(multimasks))
        )
        best = per_mask.argmin(-1)
        rows = torch.arange(len(best))
        true_iou = mask_iou(multimasks, target.expand_as(multimasks)).detach()
        n_vis = visible.sum().clamp(min=1)
        totals["mask"] = totals["mask"] + (per_mask[rows, best] * visible).sum() / n_vis
        # BCE on the sigmoid IoU head (its gradient w.r.t. the logit is p - IoU): an L1 loss
        # saturates it at 0 early in from-scratch training, and then tracking picks among
        # the multimask outputs at random.
        iou_err = F.binary_cross_entropy(ious.clamp(1e-6, 1 - 1e-6), true_iou, reduction="none")
        totals["iou"] = totals["iou"] + (iou_err.mean(-1) * visible).sum() / n_vis
        totals["score"] = totals["score"] + F.binary_cross_entropy_with_logits(
            score_logits.squeeze(-1), visible
        )
        totals["iou_metric"] += float((mask_iou(high_res, target)[:, 0] * visible).sum() / n_vis)
        counted += 1
    losses = {k: v / counted for k, v in totals.items()}
    losses["total"] = (
        losses["mask"] + cfg.iou_weight * losses["iou"] + cfg.score_weight * losses["score"]
    )
    return losses


def lr_at(step: int, elapsed: float, cfg: TrainConfig, since: int = 0) -> float:
    """Linear warm-up over the ``warmup_steps`` after step ``since`` (the optimiser's start),
    then cosine decay over the wall-clock budget (the budget, not steps, ends training)."""
    if step - since < cfg.warmup_steps:
        return cfg.lr * (step - since + 1) / cfg.warmup_steps
    progress = min(1.0, elapsed / (cfg.minutes * 60))
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def clip_length(elapsed: float, cfg: TrainConfig) -> int:
    phase = min(len(cfg.frames) - 1, int(len(cfg.frames) * elapsed / (cfg.minutes * 60)))
    return cfg.frames[phase]


def train(
    cfg: TrainConfig, run_dir: Path, out: Path, resume: bool = False, init: Path | None = None
) -> dict:
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    if init is not None:  # continue from earlier weights (e.g. the shipped ones), new optimiser
        model = load_sam2("micro", checkpoint=init, predictor_class=SAM2_BASE)
    else:
        model = load_sam2("micro", weights="random", predictor_class=SAM2_BASE, seed=cfg.seed)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(video_seed("train", 0, cfg.seed))
    step, elapsed_before = 0, 0.0
    ckpt_path = run_dir / "checkpoint.pt"
    optimiser_from = 0  # step at which this optimiser started (its warm-up counts from there)
    if resume and not ckpt_path.is_file():
        if not out.is_file():
            raise FileNotFoundError(f"--resume: neither {ckpt_path} nor {out} exists")
        step, elapsed_before, rng = _load_weights_checkpoint(model, out)
        optimiser_from = step
    elif resume:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        step, elapsed_before = ckpt["step"], ckpt["elapsed"]
        rng = np.random.default_rng()
        rng.bit_generator.state = ckpt["rng"]
        torch.set_rng_state(ckpt["torch_rng"])
    log = (run_dir / "log.jsonl").open("a")
    start = time.time() - elapsed_before
    kinds = ("mask", "points", "box")
    bar = tqdm(
        total=int(cfg.minutes * 60), initial=int(elapsed_before), unit="s", desc="train micro SAM2"
    )
    last_save = time.time()
    history = []
    try:
        while step < cfg.max_steps and (elapsed := time.time() - start) < cfg.minutes * 60:
            for group in opt.param_groups:
                group["lr"] = lr_at(step, elapsed, cfg, optimiser_from)
            progress = elapsed / (cfg.minutes * 60)
            frames = clip_length(elapsed, cfg)
            batch = make_batch(rng, cfg, frames, partial(world_at, progress, cfg, frames, rng))
            kind = kinds[int(rng.choice(3, p=cfg.prompt_mix))]
            forcing = teacher_forcing_at(progress, cfg)
            losses = video_loss(model, batch, kind, cfg, rng, forcing)
            opt.zero_grad(set_to_none=True)
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            record = {k: round(_scalar(v), 4) for k, v in losses.items()}
            record.update(
                step=step,
                elapsed=round(elapsed, 1),
                frames=batch.num_frames,
                prompt=kind,
                forcing=round(forcing, 3),
            )
            history.append(record)
            log.write(json.dumps(record) + "\n")
            log.flush()
            bar.update(int(elapsed) - bar.n)
            if step % 10 == 0:
                recent = history[-50:]
                bar.set_postfix(
                    step=step,
                    loss=f"{np.mean([r['total'] for r in recent]):.3f}",
                    iou=f"{np.mean([r['iou_metric'] for r in recent]):.3f}",
                )
            if time.time() - last_save > 300:
                _save(model, opt, step, time.time() - start, rng, ckpt_path, out)
                last_save = time.time()
    except KeyboardInterrupt:  # a sitting ends (Ctrl-C / SIGINT): save where the run stands
        pass
    bar.close()
    _save(model, opt, step, time.time() - start, rng, ckpt_path, out)
    summary = {"steps": step, "wall_seconds": round(time.time() - start, 1), "config": asdict(cfg)}
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _scalar(value: torch.Tensor | float) -> float:
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


def _save(model, opt, step, elapsed, rng, ckpt_path: Path, out: Path) -> None:
    from safetensors.torch import save_file

    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "step": step,
            "elapsed": elapsed,
            "rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
        },
        ckpt_path,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    progress = {
        "step": str(step),
        "elapsed": f"{elapsed:.1f}",
        "rng": json.dumps(rng.bit_generator.state),
    }
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out), progress)


def _load_weights_checkpoint(model, path: Path) -> tuple[int, float, np.random.Generator]:
    """Resume from a weights file written by ``_save``: its weights, step, elapsed time and
    generator state (the optimiser is not in it and restarts)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as handle:
        meta = handle.metadata() or {}
    if "step" not in meta:
        raise ValueError(f"{path} records no training progress; start a run with --init instead")
    model.load_state_dict(load_file(str(path)))
    rng = np.random.default_rng()
    rng.bit_generator.state = json.loads(meta["rng"])
    return int(meta["step"]), float(meta["elapsed"]), rng


def _stop_on_signals() -> None:
    """SIGINT and SIGTERM end the sitting cleanly (the loop saves where the run stands), also
    when the run was started in the background, where SIGINT would otherwise be ignored."""

    def stop(signum, frame):
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=TrainConfig.minutes)
    parser.add_argument("--max-steps", type=int, default=TrainConfig.max_steps)
    parser.add_argument("--clips", type=int, default=TrainConfig.clips)
    parser.add_argument("--objects-per-clip", type=int, default=TrainConfig.objects_per_clip)
    parser.add_argument("--frames", type=str, default=",".join(map(str, TrainConfig.frames)))
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument(
        "--prompt-mix",
        type=str,
        default=",".join(map(str, TrainConfig.prompt_mix)),
        help="shares of first-frame mask, click and box prompts",
    )
    parser.add_argument("--teacher-forcing", type=float, default=TrainConfig.teacher_forcing)
    parser.add_argument(
        "--teacher-forcing-until", type=float, default=TrainConfig.teacher_forcing_until
    )
    parser.add_argument("--warmup-steps", type=int, default=TrainConfig.warmup_steps)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--world", choices=("classic", "broad"), default=TrainConfig.world)
    parser.add_argument("--max-stride", type=int, default=TrainConfig.max_stride)
    parser.add_argument("--max-objects", type=int, default=TrainConfig.max_objects)
    parser.add_argument(
        "--hard-share",
        type=float,
        default=TrainConfig.hard_share,
        help="broad world: share of clips from the hard family (re-detection after a loss)",
    )
    parser.add_argument("--threads", type=int, default=TrainConfig.threads)
    parser.add_argument("--run-dir", type=Path, default=Path("runs/sam2_micro"))
    parser.add_argument("--out", type=Path, default=Path("data/sam2_micro.safetensors"))
    parser.add_argument("--resume", action="store_true", help="continue from RUN_DIR/checkpoint.pt")
    parser.add_argument(
        "--init", type=Path, default=None, help="start from these weights (e.g. the shipped ones)"
    )
    args = parser.parse_args(argv)
    frames = tuple(int(f) for f in args.frames.split(","))
    if any(f < 2 for f in frames):
        parser.error(f"--frames needs clip lengths >= 2, got {args.frames}")
    mix = tuple(float(p) for p in args.prompt_mix.split(","))
    if len(mix) != 3 or min(mix) < 0 or abs(sum(mix) - 1) > 1e-6:
        parser.error(f"--prompt-mix needs three non-negative shares summing to 1, got {mix}")
    cfg = TrainConfig(
        minutes=args.minutes,
        max_steps=args.max_steps,
        clips=args.clips,
        objects_per_clip=args.objects_per_clip,
        frames=frames,
        lr=args.lr,
        prompt_mix=mix,
        warmup_steps=args.warmup_steps,
        teacher_forcing=args.teacher_forcing,
        teacher_forcing_until=args.teacher_forcing_until,
        seed=args.seed,
        threads=args.threads,
        world=args.world,
        max_stride=args.max_stride,
        max_objects=args.max_objects,
        hard_share=args.hard_share,
    )
    if args.resume and args.init:
        parser.error("--resume and --init exclude each other")
    _stop_on_signals()
    summary = train(cfg, args.run_dir, args.out, resume=args.resume, init=args.init)
    print(json.dumps({k: summary[k] for k in ("steps", "wall_seconds")}), "->", args.out)


if __name__ == "__main__":
    main()
