"""Train the micro CLIP contrastively on synthetic object crops, on CPU, in minutes.

    python -m fsam2lib.train.train_clip_micro --out data/clip_micro.safetensors [--steps N]
        [--minutes M] [--seed S] [--resume]
    python -m fsam2lib.train.train_clip_micro --eval-only [--weights data/clip_micro.safetensors]

Why not plain CLIP loss: the synthetic world has only 40 training descriptions, so a batch holds
many crops with the same caption, and CLIP's one-hot in-batch targets would push identical
captions apart. Instead every step embeds the whole (small) training caption pool and uses a
*multi-positive* symmetric InfoNCE: an image's positives are all captions consistent with it,
a caption's positives all images it describes; the loss is minus the log of the summed
softmax probability of the positives. The pool holds full descriptions (also with "small"/
"large", which a crop cannot show, so both stay positives), and colour-only and shape-only
captions ("red", "circle"), each group with its own softmax, which teaches the text tower the
factors it needs to compose descriptions never seen in training (``vocab.HELD_OUT_COMBOS``
never appear, neither as images nor as captions).

Grayscale copies: a model trained only on the train pairs learns that, say, red objects are
never stars, and its shape features for an unseen pair are weak (held-out shape accuracy fell
to ~0.37 against ~0.94 on seen pairs in a first run). So each batch adds grayscale copies of
other training crops whose only positives are the shape words ("star"): shape must then be
read from the silhouette alone. They carry no hue, so no held-out colour-shape pair is ever
shown (unlike hue-rotation augmentation, which would leak the held-out pairs).

Deterministic for a seed: data, initialisation, and each step's batch and augmentation come from
seeded generators (a resumed run draws the same batches). Writes the weights (compact
safetensors, see ``fsam2lib.models.clip``) and a JSON log next to them.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from fsam2lib.models.clip import (
    DEFAULT_MICRO_WEIGHTS,
    ClipBundle,
    accuracy_table,
    build_micro_model,
    load_clip,
    micro_config,
    save_micro_weights,
    wrap_micro_model,
    zero_shot_accuracy,
)
from fsam2lib.text import vocab
from fsam2lib.videos.crops import make_object_crops

_MAX_LOG_SCALE = math.log(100.0)


@dataclass
class TrainConfig:
    """Training hyper-parameters (the defaults made the shipped weights)."""

    steps: int = 3000
    minutes: float | None = 27.0  # wall-clock budget of the loop (30 min cap); schedule_progress()
    batch_size: int = 64
    gray_fraction: float = 0.5  # grayscale shape-only copies per batch, relative to batch_size
    num_train: int = 24000  # training crops, generated once
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: int = 50
    seed: int = 0
    threads: int = 2
    log_every: int = 25
    eval_every: int = 100  # probe accuracy and resume checkpoint
    probe_num: int = 200  # val crops for the periodic probe
    eval_num: int = 1000  # val and test crops for the final table

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "num_train", "threads", "log_every", "eval_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.gray_fraction <= 1:
            raise ValueError(
                f"TrainConfig.gray_fraction must be in [0, 1], got {self.gray_fraction}"
            )
        if self.minutes is not None and self.minutes <= 0:
            raise ValueError(f"TrainConfig.minutes must be positive, got {self.minutes}")


@dataclass(frozen=True)
class Caption:
    """A training caption and what it says: colour, shape, size word (None = not mentioned)."""

    text: str
    colour: str | None
    shape: str | None
    size: str | None
    group: str  # "full" | "colour" | "shape": each group gets its own softmax


def caption_pool() -> list[Caption]:
    """Every training caption: train-split descriptions without and with a size word, colour
    words and shape words. Held-out colour-shape pairs are excluded."""
    pool = []
    for colour, shape in vocab.combos_for_split("train"):
        for size in (None, *vocab.SIZES):
            pool.append(Caption(vocab.describe(colour, shape, size), colour, shape, size, "full"))
    pool += [Caption(c, c, None, None, "colour") for c in vocab.COLOURS]
    pool += [Caption(s, None, s, None, "shape") for s in vocab.SHAPES]
    return pool


@dataclass(frozen=True)
class ImageLabel:
    """What a training image shows; colour None for a grayscale copy (no colour word fits)."""

    colour: str | None
    shape: str
    size: str | None


def positives(labels: list[ImageLabel], pool: list[Caption]) -> torch.Tensor:
    """bool ``[B, T]``: caption t is consistent with image b (every word it says is true).

    A crop's size word says how much of the crop the object fills ("small" 25-40 %, "large"
    85-100 %, none in between; see ``synthetic.make_object_crops``), so a sized caption only
    fits crops with that word, an unsized caption fits every size. A caption naming a colour
    never fits a grayscale image (label colour None)."""
    ok = np.ones((len(labels), len(pool)), dtype=bool)
    for attr in ("colour", "shape", "size"):
        image = np.array([getattr(d, attr) for d in labels], dtype=object)[:, None]
        text = np.array([getattr(p, attr) for p in pool], dtype=object)[None, :]
        ok &= (text == None) | ((text == image) & (image != None))  # noqa: E711 - elementwise
    return torch.from_numpy(ok)


def multi_positive_loss(logits: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Symmetric multi-positive InfoNCE on ``[B, T]`` logits: -log sum of positives' softmax
    probability, over texts for each image and over images for each text (rows/columns without
    a positive are skipped)."""

    def one_side(lg: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        keep = p.any(dim=1)
        lg, p = lg[keep], p[keep]
        return (lg.logsumexp(dim=1) - lg.masked_fill(~p, float("-inf")).logsumexp(dim=1)).mean()

    return 0.5 * (one_side(logits, pos) + one_side(logits.T, pos.T))


def contrastive_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    pos: torch.Tensor,
    groups: list[str],
    logit_scale: torch.Tensor,
) -> torch.Tensor:
    """Sum over caption groups of :func:`multi_positive_loss` on scaled cosine similarities."""
    logits = logit_scale.exp() * image_features @ text_features.T
    total = logits.new_zeros(())
    for group in dict.fromkeys(groups):
        cols = torch.tensor([g == group for g in groups])
        total = total + multi_positive_loss(logits[:, cols], pos[:, cols])
    return total


def vocabulary_token_ids(tokenizer) -> torch.Tensor:
    """Token ids the synthetic vocabulary uses (with start/end of text)."""
    texts = vocab.all_descriptions(with_sizes=True) + list(vocab.COLOURS) + list(vocab.SHAPES)
    ids = torch.unique(tokenizer(texts))
    return ids[ids != 0]  # 0 pads


def restrict_token_embedding(model: torch.nn.Module, keep_ids: torch.Tensor) -> None:
    """Zero every token-embedding row outside ``keep_ids``: the model then stores compactly and
    unknown words embed as zero vectors instead of random ones."""
    with torch.no_grad():
        mask = torch.ones(model.token_embedding.weight.shape[0], dtype=torch.bool)
        mask[keep_ids] = False
        model.token_embedding.weight[mask] = 0.0


def normalise_batch(crops: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B,H,W,3]`` -> float ``[B,3,H,W]`` normalised like the evaluation preprocess."""
    x = crops.permute(0, 3, 1, 2).float().div_(255.0)
    return (x - mean[:, None, None]) / std[:, None, None]


def grayscale(crops: torch.Tensor) -> torch.Tensor:
    """uint8 ``[B,H,W,3]`` -> its luminance (ITU-R 601 weights) in all three channels."""
    weights = torch.tensor([0.299, 0.587, 0.114])
    luma = (crops.float() * weights).sum(dim=-1, keepdim=True).round().clamp(0, 255)
    return luma.to(torch.uint8).expand_as(crops).contiguous()


def augment(crops: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random 90-degree rotations and flips: the world's shapes rotate freely; colour untouched."""
    k = torch.randint(0, 4, (len(crops),), generator=generator)
    flip = torch.rand(len(crops), generator=generator) < 0.5
    out = crops.clone()
    for r in range(1, 4):
        sel = k == r
        out[sel] = torch.rot90(out[sel], r, dims=(1, 2))
    out[flip] = out[flip].flip(2)
    return out


def schedule_progress(step: int, elapsed_s: float, cfg: TrainConfig) -> float:
    """Training progress in [0, 1]: steps done, or the share of the wall-clock budget used if
    that is further along (so a run on a busy machine still ends with an annealed rate; only
    then does the schedule depend on timing, and the log says so)."""
    done = step / cfg.steps
    if cfg.minutes is not None:
        done = max(done, elapsed_s / (cfg.minutes * 60.0))
    return min(done, 1.0)


def learning_rate(step: int, done: float, cfg: TrainConfig) -> float:
    """Linear warm-up over ``cfg.warmup`` steps, then cosine decay (by progress) to 5 % of the
    peak."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    start = cfg.warmup / cfg.steps
    t = (done - start) / max(1e-9, 1.0 - start)
    return cfg.lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, max(0.0, t)))))


def evaluate(clip: ClipBundle, num: int = 1000, seed: int = 0) -> dict[str, dict]:
    """Zero-shot accuracy table on ``num`` val and ``num`` test crops (fixed seed)."""
    size = clip.image_size
    results = {}
    for split in ("val", "test"):
        crops, texts = make_object_crops(split, num, seed=seed, size=size)
        results[split] = zero_shot_accuracy(clip, crops, texts)
    return results


def parameter_counts(model: torch.nn.Module) -> dict[str, int]:
    """Parameters of the vision tower, the text tower (with its used token rows only) and all."""
    vision = sum(p.numel() for p in model.visual.parameters())
    table = model.token_embedding.weight
    used_rows = int((table.abs().sum(dim=1) > 0).sum())
    text = sum(
        p.numel()
        for n, p in model.named_parameters()
        if not n.startswith("visual.") and n != "logit_scale"
    )
    return {
        "vision": vision,
        "text": text,
        "text_stored": text - table.numel() + used_rows * table.shape[1],
        "token_rows_used": used_rows,
        "total": sum(p.numel() for p in model.parameters()),
    }


def train(
    cfg: TrainConfig,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    model_overrides: dict | None = None,
) -> tuple[torch.nn.Module, dict]:
    """Train a micro CLIP; save it to ``out`` (if given) with a JSON log; return (model, log).

    ``model_overrides`` shrink the architecture for smoke tests; the shipped model uses none.
    With ``resume``, continue from ``<out stem>.partial.pt`` when it exists.
    """
    torch.set_num_threads(cfg.threads)
    start, cpu_start = time.time(), time.process_time()
    torch.manual_seed(cfg.seed)
    model = build_micro_model(**(model_overrides or {}))
    clip = wrap_micro_model(model)
    restrict_token_embedding(model, vocabulary_token_ids(clip.tokenizer))
    size = clip.image_size
    pre = model.visual.preprocess_cfg
    mean, std = torch.tensor(pre["mean"]), torch.tensor(pre["std"])

    crops_np, texts = make_object_crops("train", cfg.num_train, seed=cfg.seed, size=size)
    labels = [ImageLabel(d.colour, d.shape, d.size) for d in map(vocab.parse_description, texts)]
    gray_labels = [ImageLabel(None, d.shape, d.size) for d in labels]
    crops = torch.from_numpy(crops_np)
    probe_crops, probe_texts = make_object_crops("val", cfg.probe_num, seed=cfg.seed + 1, size=size)
    pool = caption_pool()
    tokens = clip.tokenizer([c.text for c in pool])
    groups = [c.group for c in pool]
    data_time = time.time() - start

    optimizers = _optimizers(model, cfg)
    log = {
        "config": asdict(cfg),
        "model_overrides": model_overrides or {},
        "parameters": parameter_counts(model),
        "data_time_s": round(data_time, 1),
        "history": [],
        "probes": [],
    }
    first_step, elapsed_before = 0, 0.0
    partial = _partial_path(out) if out is not None else None
    if resume and partial is not None and partial.is_file():
        state = torch.load(partial, weights_only=False)
        model.load_state_dict(state["model"])
        for opt, opt_state in zip(optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(opt_state)
        first_step, elapsed_before, log = state["step"], state["elapsed"], state["log"]
        print(f"resumed from {partial} at step {first_step}")

    loop_start = time.time()
    step = first_step
    stopped_early = time_driven = False
    bar = tqdm(
        range(first_step, cfg.steps),
        disable=not progress,
        desc="clip-micro",
        initial=first_step,
        total=cfg.steps,
    )
    for step in bar:
        elapsed = elapsed_before + time.time() - loop_start
        done = schedule_progress(step, elapsed, cfg)
        time_driven = time_driven or done > step / cfg.steps
        if done >= 1.0:
            stopped_early = True
            break
        lr = learning_rate(step, done, cfg)
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        idx = torch.randint(0, len(crops), (cfg.batch_size,), generator=gen)
        gray_idx = torch.randint(
            0, len(crops), (round(cfg.gray_fraction * cfg.batch_size),), generator=gen
        )
        batch = torch.cat([augment(crops[idx], gen), grayscale(augment(crops[gray_idx], gen))])
        images = normalise_batch(batch, mean, std)
        pos = positives([labels[i] for i in idx] + [gray_labels[i] for i in gray_idx], pool)
        for opt in optimizers:
            for g in opt.param_groups:
                g["lr"] = lr
        model.train()
        loss = contrastive_loss(
            model.encode_image(images, normalize=True),
            model.encode_text(tokens, normalize=True),
            pos,
            groups,
            model.logit_scale,
        )
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        for opt in optimizers:
            opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0.0, _MAX_LOG_SCALE)
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            entry = {
                "step": step,
                "loss": round(loss.item(), 4),
                "lr": round(lr, 7),
                "progress": round(done, 4),
                "logit_scale": round(model.logit_scale.exp().item(), 2),
                "elapsed_s": round(elapsed, 1),
            }
            log["history"].append(entry)
            bar.set_postfix(loss=entry["loss"], scale=entry["logit_scale"])
            if not progress:
                print(json.dumps(entry), flush=True)
        if (step + 1) % cfg.eval_every == 0:
            probe = zero_shot_accuracy(clip, probe_crops, probe_texts)["all"]
            log["probes"].append({"step": step + 1, **probe})
            print(f"step {step + 1}: probe on {cfg.probe_num} val crops {probe}", flush=True)
            if partial is not None:
                partial.parent.mkdir(parents=True, exist_ok=True)
                torch.save(
                    {
                        "model": model.state_dict(),
                        "optimizers": [opt.state_dict() for opt in optimizers],
                        "step": step + 1,
                        "elapsed": elapsed_before + time.time() - loop_start,
                        "log": log,
                    },
                    partial,
                )
    else:
        step = cfg.steps
    model.eval()
    model.token_embedding.sparse = False
    log["steps_done"] = step
    log["stopped_early"] = stopped_early  # wall-clock budget ran out before cfg.steps
    log["schedule_followed_wall_clock"] = time_driven
    log["train_time_s"] = round(elapsed_before + time.time() - loop_start, 1)
    if out is not None:
        out = save_micro_weights(model, out, config=micro_config() | (model_overrides or {}))
        log["weights"] = out.name
        log["file_size_bytes"] = out.stat().st_size
        # the table measures the shipped (float16) weights, exactly as load_clip returns them
        shipped = load_clip("micro", pretrained=out)
        log["final"] = evaluate(shipped, cfg.eval_num, seed=0)
        log["eval_num"] = cfg.eval_num
        log["wall_time_s"] = round(time.time() - start, 1)
        # CPU seconds of this process: what the run costs on an idle core (the machine is shared)
        log["cpu_time_s"] = round(time.process_time() - cpu_start, 1)
        _log_path(out).write_text(json.dumps(log, indent=1) + "\n")
        if partial is not None and partial.exists():
            partial.unlink()
    return model, log


def _optimizers(model: torch.nn.Module, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
    """AdamW (weight decay on matrices only) and, for the 49408-row token table of which the
    vocabulary uses ~20 rows, a sparse embedding gradient with SparseAdam: a dense gradient
    and AdamW update of the whole table would cost more than the text tower itself."""
    model.token_embedding.sparse = True
    named = [(n, p) for n, p in model.named_parameters() if n != "token_embedding.weight"]
    decay = [p for n, p in named if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in named if not (p.ndim >= 2 and "embedding" not in n)]
    dense = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
    )
    return [dense, torch.optim.SparseAdam([model.token_embedding.weight], lr=cfg.lr)]


def _partial_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".partial.pt")


def _log_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.stem + "_train.json")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_MICRO_WEIGHTS, help="weights file to write"
    )
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument(
        "--minutes",
        type=float,
        default=TrainConfig.minutes,
        help="wall-clock budget of the training loop (0 = none: the schedule follows steps only)",
    )
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--num-train", type=int, default=TrainConfig.num_train)
    parser.add_argument("--threads", type=int, default=TrainConfig.threads)
    parser.add_argument("--eval-num", type=int, default=TrainConfig.eval_num)
    parser.add_argument("--resume", action="store_true", help="continue from <out>.partial.pt")
    parser.add_argument("--no-progress", action="store_true", help="print log lines, no bar")
    parser.add_argument("--eval-only", action="store_true", help="only print the accuracy table")
    parser.add_argument("--weights", type=Path, default=None, help="weights for --eval-only")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.eval_only:
        clip = load_clip("micro", pretrained=args.weights or args.out)
        print(accuracy_table(evaluate(clip, args.eval_num, seed=0)))
        return
    cfg = TrainConfig(
        steps=args.steps,
        minutes=args.minutes if args.minutes > 0 else None,
        seed=args.seed,
        batch_size=args.batch_size,
        num_train=args.num_train,
        threads=args.threads,
        eval_num=args.eval_num,
    )
    _, log = train(cfg, out=args.out, resume=args.resume, progress=not args.no_progress)
    print(
        f"saved {args.out} ({log['file_size_bytes'] / 1e6:.2f} MB) after {log['steps_done']} steps, {log['train_time_s']} s"
    )
    print(accuracy_table(log["final"]))


if __name__ == "__main__":
    main()
