"""Choosing the examples the notebooks show: synthetic videos that contain given objects,
descriptions that are wrong on purpose, frames spread over a video, and whether the files
for the real-checkpoint notebook are on this machine.

Why a helper: a figure that compares "red circle" with "blue star" on one video needs a video
holding both. Scenes are sampled without painting (cheap), so searching a few hundred seeds
takes seconds; only the match is rendered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fsam2lib.text import vocab
from fsam2lib.videos.video import Video
from fsam2lib.videos.world import WorldConfig, render_scene, sample_scene, video_seed
from fsam2lib.workbook import viz


def find_video_with(
    texts: Sequence[str],
    split: str = "val",
    config: WorldConfig | None = None,
    base_seed: int = 0,
    max_tries: int = 5000,
) -> tuple[Video, dict[str, int]]:
    """The first video of ``split`` (seeds ``video_seed(split, i, base_seed)``, i = 0, 1, ...)
    whose targets include an object matching each description's colour and shape.

    Returns the video and description -> object id. Raises ValueError for a text outside the
    vocabulary or a pair the split never shows (a held-out pair in "train"), RuntimeError when
    ``max_tries`` seeds hold no match.
    """
    if not texts:
        raise ValueError("give at least one description to look for")
    wanted = [vocab.parse_description(t) for t in texts]
    pairs = [(d.colour, d.shape) for d in wanted]
    if len(set(pairs)) != len(pairs):
        raise ValueError(f"descriptions {list(texts)} name the same colour and shape twice")
    allowed = set(vocab.combos_for_split(split))
    never = [p for p in pairs if p not in allowed]
    if never:
        raise ValueError(f"split {split!r} never shows {never} (held-out pairs); use 'val'")
    cfg = config if config is not None else WorldConfig()
    if cfg.max_objects < len(pairs):
        raise ValueError(
            f"WorldConfig.max_objects={cfg.max_objects} cannot hold {len(pairs)} described objects"
        )
    for i in range(max_tries):
        scene = sample_scene(video_seed(split, i, base_seed), cfg, split)
        ids = {(o.colour, o.shape): o.obj_id for o in scene.targets}
        if all(p in ids for p in pairs):
            video = render_scene(scene, f"{split}_{i:04d}")
            return video, {t: ids[p] for t, p in zip(texts, pairs, strict=True)}
    raise RuntimeError(
        f"no video among the first {max_tries} of split {split!r} holds all of {list(texts)}; "
        "raise max_tries or WorldConfig.max_objects"
    )


def find_return(videos: Sequence[Video], min_gap: int = 1) -> tuple[Video, int, list[int], int]:
    """The first video with a target that disappears (an empty mask on ``min_gap`` or more
    frames after it was seen) and comes back: (video, obj_id, frames it is gone, frame it is
    back). The hard world (``videos.worlds``, camera cuts and vanishing targets) has many."""
    for video in videos:
        for obj_id in sorted(video.descriptions):
            seen = (video.masks == obj_id).reshape(video.num_frames, -1).any(1)
            first = int(np.argmax(seen))
            gone = [t for t in range(first + 1, video.num_frames) if not seen[t]]
            back = [t for t in range(gone[0] + 1, video.num_frames) if seen[t]] if gone else []
            if len(gone) >= min_gap and back:
                return video, obj_id, [t for t in gone if t < back[0]], back[0]
    raise RuntimeError(f"none of {len(videos)} videos has a target that disappears and returns")


@dataclass
class TextOnReturn:
    """One object tracked with and without descriptions at the same keep ratio."""

    kept: dict[str, np.ndarray]  # "with description" / "without": bool [T, gh, gw]
    share: dict[str, np.ndarray]  # per frame, share of the object's tokens kept (NaN: absent)
    jf: dict[str, float]  # J&F of the object over the video


def text_on_return(predictor, video: Video, obj_id: int, keep_ratio: float) -> TextOnReturn:
    """Track every target of ``video`` under the router at ``keep_ratio`` twice -- each object
    with its description, then with none (the text cue off) -- and follow ``obj_id``."""
    from fsam2lib.evaluate import run_video, score_run
    from fsam2lib.pruning.config import PruningConfig

    pruning, describe = predictor.pruning, predictor.describe_object
    kept, share, jf = {}, {}, {}
    for label, texts in (("with description", video.descriptions), ("without", None)):
        predictor.pruning = PruningConfig(keep_ratio=keep_ratio, strategy="router")
        predictor.describe_object = None  # "without" must stay without: no automatic text
        try:
            run = run_video(predictor, video, texts=texts)
        finally:  # the predictor is lent: leave it as it came
            predictor.pruning, predictor.describe_object = pruning, describe
        sel = viz.collect_scores(predictor, run.state, obj_id, video.num_frames).kept
        kept[label] = sel
        share[label] = np.array(
            [
                viz.kept_share(sel[t : t + 1], video.masks[t : t + 1] == obj_id)
                if sel[t].any() and (video.masks[t] == obj_id).any()
                else np.nan
                for t in range(video.num_frames)
            ]
        )
        scores = score_run(run, video)
        jf[label] = float(scores.JF_per_object[scores.object_ids.index(obj_id)])
    return TextOnReturn(kept, share, jf)


def wrong_description(text: str, change: str = "both") -> str:
    """A vocabulary description that differs from ``text`` in colour, shape or both (the
    next word of the vocabulary, deterministic); size words are dropped."""
    if change not in ("colour", "shape", "both"):
        raise ValueError(f"change must be 'colour', 'shape' or 'both', got {change!r}")
    d = vocab.parse_description(text)
    colours, shapes = list(vocab.COLOURS), list(vocab.SHAPES)
    colour = (
        colours[(colours.index(d.colour) + 1) % len(colours)] if change != "shape" else d.colour
    )
    shape = shapes[(shapes.index(d.shape) + 1) % len(shapes)] if change != "colour" else d.shape
    return vocab.describe(colour, shape)


def spread_frames(num_frames: int, count: int) -> list[int]:
    """``count`` frame indices spread evenly from the first to the last frame."""
    if num_frames < 1 or count < 1:
        raise ValueError(f"need num_frames >= 1 and count >= 1, got {num_frames}, {count}")
    count = min(count, num_frames)
    return sorted({int(round(t)) for t in np.linspace(0, num_frames - 1, count)})


DAVIS_URL = "https://davischallenge.org/davis2017/code.html"


@dataclass
class SetupCheck:
    """What a real-data run found on this machine (name -> path) and what it lacks
    (name -> how to get it). ``ready`` when nothing is missing."""

    found: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        return not self.missing

    def report(self) -> str:
        lines = [f"found   {k}: {v}" for k, v in self.found.items()]
        lines += [f"MISSING {k}: {v}" for k, v in self.missing.items()]
        lines.append("ready." if self.ready else "not ready: the heavy cells will be skipped.")
        return "\n".join(lines)


def check_real_setup(
    sam2_model: str,
    sam2_checkpoint: str | None = None,
    davis_root: str | None = None,
    split: str = "val",
    resolution: str = "480p",
) -> SetupCheck:
    """Look (locally, no download) for a SAM2 checkpoint and a DAVIS-layout dataset.

    The checkpoint is ``sam2_checkpoint`` if given, else the official file name of
    ``sam2_model`` in ``fsam2lib.models.sam2.checkpoint_search_dirs()`` (the shipped file for
    "micro"). The dataset needs ``ImageSets/2017/<split>.txt`` and the frame and annotation
    folders at ``resolution``. Missing entries say what to download and where to put it.
    """
    from fsam2lib.models.sam2 import MICRO_SAM2_WEIGHTS, SAM2_MODELS, checkpoint_search_dirs
    from fsam2lib.videos import davis

    check = SetupCheck()
    if sam2_model not in SAM2_MODELS:
        raise ValueError(f"unknown SAM2 model {sam2_model!r}; known: {', '.join(SAM2_MODELS)}")
    spec = SAM2_MODELS[sam2_model]
    if sam2_checkpoint:
        path = Path(sam2_checkpoint).expanduser()
        candidates = [path]
        advice = f"{path} does not exist; point SAM2_CHECKPOINT (FSAM2_SAM2_CHECKPOINT) at the downloaded file"
    elif spec.checkpoint is None:
        candidates = [MICRO_SAM2_WEIGHTS]
        advice = f"{MICRO_SAM2_WEIGHTS} is missing; it ships with the repository (data/)"
    else:
        dirs = checkpoint_search_dirs()
        candidates = [d / spec.checkpoint for d in dirs]
        advice = (
            f"download {spec.url} into one of: {', '.join(str(d) for d in dirs)} "
            "(or set FSAM2_SAM2_CHECKPOINT to its path)"
        )
    hit = next((p for p in candidates if p.is_file()), None)
    if hit is None:
        check.missing[f"SAM2 checkpoint ({sam2_model})"] = advice
    else:
        check.found[f"SAM2 checkpoint ({sam2_model})"] = str(hit)
    layout = (
        f"download DAVIS-2017-trainval-480p.zip from {DAVIS_URL}, unzip it and set FSAM2_DAVIS_ROOT "
        f"to the folder holding JPEGImages/{resolution}, Annotations/{resolution} and "
        "ImageSets/2017 (or make a synthetic one: python -m fsam2lib.videos.make_dataset)"
    )
    if not davis_root:
        check.missing["DAVIS dataset"] = f"DAVIS_ROOT is not set (or $FSAM2_DAVIS_ROOT); {layout}"
        return check
    root = Path(davis_root).expanduser()
    absent = [
        str(p)
        for p in (root / "JPEGImages" / resolution, root / "Annotations" / resolution)
        if not p.is_dir()
    ]
    try:
        names = davis.list_videos(root, split)
    except (FileNotFoundError, ValueError) as err:
        absent.append(str(err))
        names = []
    if absent:
        check.missing["DAVIS dataset"] = f"{root} is incomplete ({'; '.join(absent)}); {layout}"
    else:
        check.found["DAVIS dataset"] = f"{root} ({split}: {len(names)} videos)"
    return check


RANDOM_WEIGHTS_WARNING = (
    "**RANDOM weights.** This run loaded weights marked RANDOM (the CI rehearsal's stand-ins "
    "for Meta's and OpenAI's files): it shows that the path runs and what it costs. Masks, "
    "token scores, descriptions and J&F below are meaningless."
)


def weights_caption(predictor, clip) -> str:
    """One line naming the frozen models and their weights, shown beside every output of the
    real-checkpoint notebook (RANDOM weights say so)."""
    from fsam2lib.models.sam2 import weights_label

    return f"SAM2 {weights_label(predictor)}; {clip.label}"
