"""Named families of worlds: each video draws its own :class:`WorldConfig` from a family.

One ``WorldConfig`` fixes a video's framing and difficulty; a model trained on one config
learns that config's shortcuts (a square frame, one speed, clean pixels). A family varies them
per video:

- ``classic``: the first world, every video with ``WorldConfig()`` at the given size.
- ``broad``: what training, val and test draw from: aspect ratios 1:1 and 4:3 to 16:9, photo
  (``PHOTO_SETS["train"]``), procedural and plain backgrounds, slow to fast objects on
  waypoint, periodic and bouncing paths, size pulses, camera pan, zoom and roll, lighting
  drift, blur, noise and JPEG artefacts, 1-4 targets, look-alike distractors passing close.
- ``held_out``: settings the broad family never samples -- backgrounds from
  ``PHOTO_SETS["held_out"]``, portrait (3:4) and very wide (2:1, 21:9) frames, and mostly fast
  motion reaching past the broad family's top speed. A model is judged on it, never trained.
- ``hard``: the broad family where the previous mask misleads: camera cuts (the view jumps),
  targets that hide wholly and reappear elsewhere, more exits and re-entries, and look-alike
  distractors always passing close. Where the description, not the last mask, says which
  object to follow.

``family_video(family, split, index)`` is deterministic: the same (family, split, index,
base_seed) gives the same video.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np
from tqdm.auto import tqdm

from fsam2lib.videos.paint import BOUND
from fsam2lib.videos.video import Video
from fsam2lib.videos.world import (
    MOTIONS,
    Scene,
    WorldConfig,
    render_scene,
    sample_scene,
    split_code,
    video_seed,
)

FAMILIES = ("classic", "broad", "held_out", "hard", "crossing", "lookalike")
BROAD_ASPECTS = (4 / 3, 16 / 9)  # landscape range; 1:1 is drawn with probability SQUARE_SHARE
SQUARE_SHARE = 0.2
BROAD_SPEED = (0.01, 0.12)  # log-uniform, fraction of min(H, W) per frame
HELD_OUT_ASPECTS = (3 / 4, 2.0, 21 / 9)
HELD_OUT_SPEED = (0.05, 0.14)
_FAMILY_SALT = {
    "classic": 0, "broad": 11, "held_out": 23, "hard": 37, "crossing": 53, "lookalike": 71,
}  # fmt: skip
LOOKALIKE_TWIN_SHARE = 0.3  # lookalike family: share of look-alikes identical to their target


def sample_world(
    family: str,
    rng: np.random.Generator,
    num_frames: int = 16,
    height: int = 256,
    min_objects: int = 1,
    max_objects: int = 4,
) -> WorldConfig:
    """One video's world drawn from ``family`` (see the module docstring)."""
    if family not in FAMILIES:
        raise ValueError(f"unknown world family {family!r}; expected one of {FAMILIES}")
    if family == "classic":
        return WorldConfig(
            height=height, width=height, num_frames=num_frames, min_objects=min_objects,
            max_objects=max(min_objects, min(max_objects, 3)),
        )  # fmt: skip
    if family == "hard":
        broad = sample_world("broad", rng, num_frames, height, min_objects, max_objects)
        return dataclasses.replace(
            broad,
            max_distractors=int(rng.integers(2, 4)),
            near_prob=1.0,
            leave_prob=0.6,
            cut_prob=0.5,
            vanish_prob=0.5,
        )
    if family in ("crossing", "lookalike"):
        base = "held_out" if family == "crossing" else "broad"
        world = sample_world(base, rng, num_frames, height, min_objects, max_objects)
        return dataclasses.replace(
            world,
            min_distractors=1,
            max_distractors=int(rng.integers(1, 4)),
            near_prob=1.0,
            twin_prob=LOOKALIKE_TWIN_SHARE if family == "lookalike" else 0.0,
        )
    if family == "broad":
        aspect = 1.0 if rng.random() < SQUARE_SHARE else rng.uniform(*BROAD_ASPECTS)
        speed = float(np.exp(rng.uniform(*np.log(BROAD_SPEED))))
        photos = "train"
    else:
        aspect = float(HELD_OUT_ASPECTS[int(rng.integers(len(HELD_OUT_ASPECTS)))])
        speed = float(rng.uniform(*HELD_OUT_SPEED))
        photos = "held_out"
    h, w = (height, _even(height * aspect)) if aspect >= 1 else (_even(height / aspect), height)
    background = "photo" if family == "held_out" and rng.random() < 0.7 else "mixed"
    return WorldConfig(
        height=h,
        width=w,
        num_frames=num_frames,
        min_objects=min_objects,
        max_objects=max_objects,
        max_distractors=int(rng.integers(0, 4)),
        background=background,
        max_speed=speed,
        max_pan=float(rng.uniform(0.0, 0.4)),
        max_rotation=float(rng.uniform(0.0, 12.0)),
        max_scale_change=float(rng.uniform(1.0, 1.8)),
        leave_prob=0.35,
        occlusion_prob=0.7,
        photos=photos,
        motions=MOTIONS,
        size_pulse=float(rng.uniform(0.0, 0.3)),
        near_prob=float(rng.uniform(0.0, 0.8)),
        max_zoom=float(rng.uniform(1.0, 1.4)),
        max_roll=float(rng.uniform(0.0, 6.0)),
        lighting_drift=float(rng.uniform(0.0, 0.25)),
        blur=float(rng.uniform(0.0, 0.008)),
        noise=float(rng.uniform(0.0, 12.0)),
        jpeg_quality=int(rng.integers(30, 81)) if rng.random() < 0.5 else 0,
    )


def family_video(
    family: str,
    split: str,
    index: int,
    num_frames: int = 16,
    height: int = 256,
    min_objects: int = 1,
    max_objects: int = 4,
    base_seed: int = 0,
) -> Video:
    """Video ``index`` of ``split`` in ``family``, named ``<family>_<split>_<index>``."""
    scene = family_scene(
        family, split, index, num_frames, height, min_objects, max_objects, base_seed
    )
    return render_scene(scene, f"{family}_{split}_{index:04d}")


def family_scene(
    family: str,
    split: str,
    index: int,
    num_frames: int = 16,
    height: int = 256,
    min_objects: int = 1,
    max_objects: int = 4,
    base_seed: int = 0,
) -> Scene:
    """The scene (objects and trajectories, no pixels) of :func:`family_video`'s video."""
    split_code(split)
    seed = video_seed(split, index, base_seed + _FAMILY_SALT[family])
    config = sample_world(
        family,
        np.random.default_rng([seed, 2]),
        num_frames=num_frames,
        height=height,
        min_objects=min_objects,
        max_objects=max_objects,
    )
    return sample_scene(seed, config, split)


def family_split(
    family: str,
    split: str,
    num_videos: int,
    num_frames: int = 16,
    height: int = 256,
    min_objects: int = 1,
    max_objects: int = 4,
    base_seed: int = 0,
    progress: bool = False,
) -> Iterator[Video]:
    """``num_videos`` videos of ``split`` drawn from ``family``, generated lazily."""
    for index in tqdm(range(num_videos), desc=f"{family} {split}", disable=not progress):
        yield family_video(
            family, split, index, num_frames, height, min_objects, max_objects, base_seed
        )


def _even(value: float) -> int:
    return int(round(value / 2)) * 2


def lookalike_passes(scene: Scene, reach: float = 1.5) -> dict[int, bool]:
    """Per target: whether a look-alike the description tells apart (same colour or same
    shape, not both) comes within ``reach`` times their summed outer radii of it on some
    frame where neither is hidden (overlapping at 1.0, brushing past up to about 1.5)."""
    out = {}
    for target in scene.targets:
        passes = False
        for other in scene.objects:
            if other.is_target or (other.colour == target.colour) == (other.shape == target.shape):
                continue
            gap = np.linalg.norm(target.centers - other.centers, axis=1)
            limit = reach * (target.radii * BOUND[target.shape] + other.radii * BOUND[other.shape])
            shown = _shown(target) & _shown(other)
            passes = passes or bool(((gap <= limit) & shown).any())
        out[target.obj_id] = passes
    return out


def _shown(obj) -> np.ndarray:
    return np.ones(len(obj.centers), bool) if obj.hidden is None else ~obj.hidden
