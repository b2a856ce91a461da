"""Videos the benchmarks run on: one synthetic cost video at the model's input size, and
datasets (a DAVIS-layout folder, or synthetic videos generated on the fly) read one video at a
time, so that a long dataset never sits in memory whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fsam2lib.bench.spec import check_positive
from fsam2lib.videos.video import Video


def cost_video(
    image_size: int, frames: int, seed: int = 0, size: tuple[int, int] | None = None
) -> Video:
    """A synthetic video at the model's input size (or ``size`` = (height, width)); longer
    than the world's 60-frame limit by playing it forwards and backwards (continuous motion)."""
    from fsam2lib.videos.world import WorldConfig, make_video

    check_positive("frames", frames)
    height, width = size or (image_size, image_size)
    base_len = min(max(frames, 8), 60)
    config = WorldConfig(height=height, width=width, num_frames=base_len)
    name = f"cost_{image_size}px" if size is None else f"cost_{height}x{width}"
    base = make_video(seed, config, split="val", name=name)
    if frames == base_len:
        return base
    period = 2 * base_len - 2
    index = [t % period for t in range(frames)]
    index = np.array([i if i < base_len else period - i for i in index])
    return Video(
        name=f"{base.name}_pingpong{frames}",
        frames=base.frames[index],
        masks=base.masks[index],
        descriptions=base.descriptions,
    )


@dataclass
class VideoSource:
    """Videos of a dataset, read one at a time."""

    description: str
    names: list[str]
    load: Callable[[str], Video]
    has_texts: bool


def open_dataset(
    dataset: str,
    split: str = "val",
    resolution: str = "480p",
    max_videos: int | None = None,
    frames: int | None = None,
    seed: int = 0,
    quick: bool = False,
) -> VideoSource:
    """A DAVIS-layout folder, or synthetic videos generated on the fly: ``synthetic:SPLIT:N``
    (the first world) or ``synthetic-WORLD:SPLIT:N`` with WORLD a family of
    :mod:`fsam2lib.videos.worlds` (``broad``, ``held_out``, ``hard``; 1-4 objects a video).

    frames: synthetic videos are generated this long (default: the world's 16); a folder's
    videos are cut to their first ``frames`` frames (default: whole videos). ``quick``: a tiny
    run: ``max_videos`` defaults to 2 and ``frames`` to 8.
    """
    from fsam2lib.videos import davis

    if quick:
        max_videos = 2 if max_videos is None else max_videos
        frames = 8 if frames is None else frames
    check_positive("max_videos", max_videos)
    check_positive("frames", frames)
    if dataset.startswith("synthetic"):
        return _synthetic_source(dataset, frames, max_videos, seed)
    root = Path(dataset)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    names = davis.list_videos(root, split)
    if max_videos is not None:
        names = names[:max_videos]
    if not names:
        raise ValueError(f"dataset {root}: split {split!r} lists no videos")
    has_texts = bool(davis.read_descriptions(root))

    def load_folder(name: str) -> Video:
        video = davis.read_video(root, name, resolution)
        return video if frames is None else video.first_frames(frames)

    cut = "" if frames is None else f", first {frames} frames"
    return VideoSource(f"{root} ({split}, {len(names)} videos{cut})", names, load_folder, has_texts)


def _synthetic_source(
    dataset: str, frames: int | None, max_videos: int | None, seed: int
) -> VideoSource:
    from fsam2lib.videos.world import WorldConfig, make_video, video_seed
    from fsam2lib.videos.worlds import FAMILIES, family_video

    head, *rest = dataset.split(":")
    world = head.removeprefix("synthetic").removeprefix("-") or "classic"
    if len(rest) != 2 or not rest[1].isdigit() or int(rest[1]) < 1 or world not in FAMILIES:
        raise ValueError(
            "synthetic dataset must read 'synthetic:SPLIT:N' or 'synthetic-WORLD:SPLIT:N' "
            f"(WORLD one of {FAMILIES}, N >= 1), got {dataset!r}"
        )
    split, count = rest[0], int(rest[1])
    count = count if max_videos is None else min(count, max_videos)
    num_frames = 16 if frames is None else frames
    if world == "classic":
        config = WorldConfig(num_frames=num_frames)
        names = [f"{split}_{i:04d}" for i in range(count)]
        seeds = {name: video_seed(split, i, seed) for i, name in enumerate(names)}

        def load(name: str) -> Video:
            return make_video(seeds[name], config, split, name)

        desc = f"synthetic {split} split, {count} videos, {num_frames} frames"
        return VideoSource(desc, names, load, has_texts=True)
    names = [f"{world}_{split}_{i:04d}" for i in range(count)]

    def load_family(name: str) -> Video:
        index = names.index(name)
        return family_video(world, split, index, num_frames, base_seed=seed)

    desc = f"synthetic {world} world, {split} split, {count} videos, {num_frames} frames"
    return VideoSource(desc, names, load_family, has_texts=True)
