"""How often the router's text cue prefers the described object over the frame's other
objects, per video, with a bootstrap interval over videos and a breakdown by how alike the
objects are (issue 16: "the text cue prefers the described object on >= 95 % of
multi-object frames").

A counted row is one (object, frame) of a video where another object is in view; the text
cue "prefers" the object when its mean is higher on the object's own tokens than on the
other objects' tokens (:func:`fsam2lib.train.train_router.text_preferred`). Rows of one video
share its objects and background, so the interval resamples videos, not rows.

    python -m fsam2lib.bench.text_preference --dataset synthetic-hard:val:60
    python -m fsam2lib.bench.text_preference --dataset synthetic:val:100 --router FILE
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from fsam2lib.bench.sources import open_dataset
from fsam2lib.metrics import percentile_interval
from fsam2lib.pruning.router import reads_detail
from fsam2lib.text.vocab import parse_description
from fsam2lib.videos.video import Video

# From most to least alike; a row is filed under its object's most alike neighbour.
RELATIONS = ("only size differs", "same colour", "same shape", "distinct", "free text")


def relation(own: str, other: str) -> str:
    """How alike two descriptions are, in ``RELATIONS`` terms ("free text": either one is
    outside the synthetic vocabulary, e.g. a real dataset's own wording)."""
    try:
        a, b = parse_description(own), parse_description(other)
    except ValueError:
        return "free text"
    if (a.colour, a.shape) == (b.colour, b.shape):
        return "only size differs"
    if a.colour == b.colour:
        return "same colour"
    return "same shape" if a.shape == b.shape else "distinct"


def closest_relation(own: str, others: Sequence[str]) -> str:
    """The relation to the most alike of ``others`` (the hardest one to tell apart)."""
    found = {relation(own, other) for other in others}
    return next((r for r in RELATIONS if r in found), "distinct")


@dataclass
class VideoPreference:
    """One video's counted rows: whether the text cue preferred its object, and how alike
    that object's closest neighbour in the video is."""

    name: str
    preferred: np.ndarray  # bool [rows]
    relations: list[str]  # [rows]


@torch.no_grad()
def video_preference(router, sam2_model, clip, video: Video) -> VideoPreference:
    """Score every (object, frame >= 1) of ``video`` that has another object in view."""
    from fsam2lib.train.train_router import build_samples, text_preferred

    texts = video.descriptions
    if not texts:
        raise ValueError(
            f"video {video.name!r} has no object descriptions; the text cue needs one per "
            "object (descriptions.json in a DAVIS-layout folder)"
        )
    samples = build_samples(sam2_model, clip, [video], progress=False, detail=reads_detail(router))
    preferred, counted = text_preferred(router, samples)
    ids = sorted(texts)  # the row order of build_samples: object by object, frame by frame
    relations = [
        closest_relation(texts[k], [texts[j] for j in ids if j != k])
        for k in ids
        for _ in range(1, video.num_frames)
    ]
    keep = counted.numpy()
    return VideoPreference(
        video.name, preferred.numpy()[keep], [r for r, c in zip(relations, keep, strict=True) if c]
    )


def summarize(
    per_video: list[VideoPreference], level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> dict:
    """Share of counted rows preferred, its percentile bootstrap interval over videos, and
    the share per relation (rows, no interval: some relations have few videos)."""
    wins = np.array([v.preferred.sum() for v in per_video], dtype=float)
    rows = np.array([len(v.preferred) for v in per_video], dtype=float)
    if rows.sum() == 0:
        raise ValueError("no frame shows two described objects; use multi-object videos")
    picks = np.random.default_rng(seed).integers(0, len(per_video), (resamples, len(per_video)))
    shares = wins[picks].sum(1) / np.maximum(rows[picks].sum(1), 1)
    low, high = percentile_interval(shares, level)
    by_relation = {}
    flat_rel = np.array([r for v in per_video for r in v.relations])
    flat_win = np.concatenate([v.preferred for v in per_video])
    for name in RELATIONS:
        hit = flat_rel == name
        if hit.any():
            by_relation[name] = {"share": float(flat_win[hit].mean()), "rows": int(hit.sum())}
    return {
        "share": float(wins.sum() / rows.sum()),
        "interval": [low, high],
        "rows": int(rows.sum()),
        "videos": len(per_video),
        "videos_counted": int((rows > 0).sum()),
        "by_relation": by_relation,
    }


def measure(
    router, sam2_model, clip, videos: Iterable[Video], progress: bool = True
) -> list[VideoPreference]:
    """Each video's rows, one video at a time (its encoder tokens are freed before the next)."""
    return [
        video_preference(router, sam2_model, clip, v)
        for v in tqdm(list(videos), desc="text preference", disable=not progress)
    ]


def format_summary(summary: dict) -> str:
    low, high = summary["interval"]
    lines = [
        f"text cue prefers the described object on {100 * summary['share']:.1f} % "
        f"[{100 * low:.1f}, {100 * high:.1f}] of {summary['rows']} multi-object rows "
        f"({summary['videos_counted']} of {summary['videos']} videos; 95 % interval over videos)",
        "| closest other object | share | rows |",
        "|---|---|---|",
    ]
    lines += [
        f"| {name} | {100 * v['share']:.1f} % | {v['rows']} |"
        for name, v in summary["by_relation"].items()
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from fsam2lib.models.clip import load_clip
    from fsam2lib.models.sam2 import load_sam2
    from fsam2lib.pruning.router import load_router
    from fsam2lib.train.train_router import SAM2_BASE

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="synthetic-hard:val:60", help="as the bench's")
    parser.add_argument("--split", default="val", help="ImageSets split of a dataset folder")
    parser.add_argument("--frames", type=int, default=None, help="frames per video")
    parser.add_argument("--router", default=None, help="router weights (default: shipped)")
    parser.add_argument("--sam2", default="micro")
    parser.add_argument("--sam2-checkpoint", default=None)
    parser.add_argument("--image-size", type=int, default=None)
    parser.add_argument("--clip", default="micro")
    parser.add_argument("--clip-pretrained", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="write the summary here")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:  # bad settings, missing weights, unreadable or undescribed videos: one clear line
        source = open_dataset(args.dataset, args.split, frames=args.frames, seed=args.seed)
        router = load_router(args.router)
        sam2_model = load_sam2(
            args.sam2, checkpoint=args.sam2_checkpoint, image_size=args.image_size,
            predictor_class=SAM2_BASE,
        )  # fmt: skip
        clip = load_clip(args.clip, pretrained=args.clip_pretrained)
        videos = (source.load(name) for name in source.names)
        summary = summarize(measure(router, sam2_model, clip, videos, not args.no_progress))
    except (ValueError, FileNotFoundError, RuntimeError) as err:
        parser.error(str(err))
    summary.update(dataset=args.dataset, router=str(args.router or "shipped"))
    print(format_summary(summary))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
