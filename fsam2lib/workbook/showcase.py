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


WITH, WITHOUT = "with description", "without"


@dataclass
class TextContrast:
    """One video tracked twice at the same keep ratio, every object with its description and
    with none (the text cue off), as ``bench text-effect`` runs it."""

    labels: dict[str, np.ndarray]  # per run: predicted label map uint8 [T, H, W]
    jf: dict[str, dict[int, float]]  # per run: J&F of each object over the video
    video_jf: dict[str, float]  # per run: the video's J&F (the bench's per-video row)
    kept: dict[str, dict[int, np.ndarray]]  # per run and object: kept tokens bool [T, gh, gw]

    def share(self, label: str, video: Video, obj_id: int) -> np.ndarray:
        """Per frame: the share of ``obj_id``'s tokens its run kept (NaN where absent)."""
        sel = self.kept[label][obj_id]
        return np.array(
            [
                viz.kept_share(sel[t : t + 1], video.masks[t : t + 1] == obj_id)
                if sel[t].any() and (video.masks[t] == obj_id).any()
                else np.nan
                for t in range(video.num_frames)
            ]
        )

    def most_changed(self) -> int:
        """The object whose J&F the description changed most (with minus without)."""
        gains = {o: self.jf[WITH][o] - self.jf[WITHOUT][o] for o in self.jf[WITH]}
        return max(gains, key=gains.get)


def text_contrast(predictor, video: Video, keep_ratio: float) -> TextContrast:
    """Track every target of ``video`` under the router at ``keep_ratio`` twice -- each object
    with its description, then with none -- and keep what each run predicted and kept."""
    from fsam2lib.evaluate import run_video, score_run
    from fsam2lib.pruning.config import PruningConfig

    pruning, describe = predictor.pruning, predictor.describe_object
    labels, jf, video_jf, kept = {}, {}, {}, {}
    for label, texts in ((WITH, video.descriptions), (WITHOUT, None)):
        predictor.pruning = PruningConfig(keep_ratio=keep_ratio, strategy="router")
        predictor.describe_object = None  # "without" must stay without: no automatic text
        try:
            run = run_video(predictor, video, texts=texts)
        finally:  # the predictor is lent: leave it as it came
            predictor.pruning, predictor.describe_object = pruning, describe
        scores = score_run(run, video)
        labels[label] = run.labels
        jf[label] = {
            o: float(v) for o, v in zip(scores.object_ids, scores.JF_per_object, strict=True)
        }
        video_jf[label] = float(scores.JF_mean)
        kept[label] = {
            o: viz.collect_scores(predictor, run.state, o, video.num_frames).kept
            for o in scores.object_ids
        }
    return TextContrast(labels, jf, video_jf, kept)


def largest_text_effect(result: dict, keep_ratio: float) -> tuple[str, float]:
    """The video of a ``bench text-effect`` result whose J&F the description raised most at
    ``keep_ratio``: (video name, router minus router without text, in J&F points x100)."""
    with_text = f"router@{keep_ratio:.2f}"
    without = f"router without text@{keep_ratio:.2f}"
    rows = {(r["video"], r["config"]): r["J&F"] for r in result["videos"]}
    names = sorted({video for video, _ in rows})
    if (names[0], with_text) not in rows:
        raise ValueError(
            f"the result holds no {with_text!r} rows (keep ratios it ran: see its configs)"
        )
    gains = {n: rows[(n, with_text)] - rows[(n, without)] for n in names}
    best = max(gains, key=gains.get)
    return best, 100 * gains[best]


@dataclass
class Crossing:
    """A video in which a look-alike passes a target: the video, its object labels (every
    object, distractors included: ``world.object_labels``), the target's id, the look-alike's
    label in ``labels`` and description, and the frames showing both."""

    video: Video
    labels: np.ndarray
    obj_id: int
    lookalike: int
    lookalike_text: str
    frames: list[int]


def find_crossing(
    split: str = "val", config: WorldConfig | None = None, base_seed: int = 0, max_tries: int = 500
) -> Crossing:
    """The first video of ``split`` in which a look-alike that the description tells apart
    (same colour or same shape, not both) passes by a target (``worlds.lookalike_passes``).
    ``config`` must have no camera or sensor effects (the default: the first world with a
    look-alike steered past a target)."""
    from fsam2lib.videos.world import object_labels
    from fsam2lib.videos.worlds import lookalike_passes

    cfg = config if config is not None else WorldConfig(min_distractors=1, near_prob=1.0)
    for i in range(max_tries):
        scene = sample_scene(video_seed(split, i, base_seed), cfg, split)
        passing = [o for o, p in lookalike_passes(scene).items() if p]
        if not passing:
            continue
        target = next(o for o in scene.targets if o.obj_id == passing[0])
        k, look = next(
            (k, o)
            for k, o in enumerate(scene.objects)
            if not o.is_target and (o.colour == target.colour) != (o.shape == target.shape)
        )
        video = render_scene(scene, f"{split}_{i:04d}")
        labels = object_labels(scene)
        both = [
            t
            for t in range(1, video.num_frames)
            if (video.masks[t] == target.obj_id).any() and (labels[t] == k + 1).any()
        ]
        if both:
            return Crossing(video, labels, target.obj_id, k + 1, look.description, both)
    raise RuntimeError(f"no video among the first {max_tries} of split {split!r} has a crossing")


@dataclass
class BudgetChoice:
    """Where a small budget goes under each description: per run, the share of the kept
    query tokens that touch the target and that touch the look-alike (mean over the frames
    showing both), and the kept tokens themselves."""

    keep: int  # tokens kept per frame
    on_target: dict[str, float]
    on_lookalike: dict[str, float]
    kept: dict[str, np.ndarray]  # per run: bool [T, gh, gw]


def budget_choice(
    predictor, crossing: Crossing, texts: dict[str, str | None], share: float = 0.6
) -> BudgetChoice:
    """Track the crossing's target once per description in ``texts`` (None: no text) with a
    budget of ``share`` times the tokens the target and the look-alike cover together (the
    median over the frames showing both), so that the budget cannot hold both: the
    description has to choose."""
    from fsam2lib.evaluate import run_video
    from fsam2lib.pruning.config import PruningConfig

    video, frames = crossing.video, crossing.frames
    grid = predictor_grid(predictor)
    hw = grid[0] * grid[1]
    target = video.masks == crossing.obj_id
    look = crossing.labels == crossing.lookalike
    touching = [
        (viz.cell_coverage(target[t], grid) > 0) | (viz.cell_coverage(look[t], grid) > 0)
        for t in frames
    ]
    keep = max(4, int(share * np.median([m.sum() for m in touching])))
    pruning, describe = predictor.pruning, predictor.describe_object
    on_target, on_look, kept = {}, {}, {}
    for label, text in texts.items():
        predictor.pruning = PruningConfig(keep_ratio=keep / hw, min_tokens=keep, strategy="router")
        predictor.describe_object = None
        try:
            run = run_video(
                predictor,
                video,
                texts=None if text is None else {crossing.obj_id: text},
                object_ids=[crossing.obj_id],
            )
        finally:
            predictor.pruning, predictor.describe_object = pruning, describe
        sel = viz.collect_scores(predictor, run.state, crossing.obj_id, video.num_frames).kept
        kept[label] = sel
        on_target[label] = _budget_share(sel, target, frames, grid)
        on_look[label] = _budget_share(sel, look, frames, grid)
    return BudgetChoice(keep, on_target, on_look, kept)


def predictor_grid(predictor) -> tuple[int, int]:
    """The token grid of the predictor's SAM2 (input size / 16)."""
    side = predictor.image_size // 16
    return side, side


def _budget_share(
    kept: np.ndarray, region: np.ndarray, frames: list[int], grid: tuple[int, int]
) -> float:
    """Mean over ``frames`` of the share of kept tokens whose cell ``region`` touches."""
    shares = [
        float((kept[t] & (viz.cell_coverage(region[t], grid) > 0)).sum() / kept[t].sum())
        for t in frames
        if kept[t].any()
    ]
    return float(np.mean(shares)) if shares else float("nan")


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
