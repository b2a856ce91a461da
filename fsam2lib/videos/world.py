"""The synthetic video world: seeded videos of moving coloured shapes, masks and one text each.

Why a synthetic world: it gives unlimited, exactly labelled videos where tracking is hard for
reasons that text can resolve. Targets move, rotate, change scale, occlude one another, leave
and re-enter the frame, and the camera pans; unannotated *distractors* share the colour or the
shape of a target (never both), and backgrounds are clutter (procedural noise, stripes, blobs)
or real images shipped with matplotlib. So "which object?" is answered only by following it or
by reading its description.

Conventions
- Pixels: x right, y down. Sizes, speeds and pans are fractions of ``unit = min(H, W)``, so a
  480x854 video looks like a 256x256 one scaled up, with a wider field of view.
- Masks hold *visible* pixels only (z-order; the frame edge clips). Targets have ids 1..K,
  distractors and background are 0. A target that is fully hidden or out of frame has an empty
  mask in that frame. Every target is visible (mostly unoccluded) in frame 0, so a first-frame
  mask prompt always exists.
- Descriptions read "colour shape". The size word rule: a video may hold two targets of the same
  colour and shape (probability ``size_pair_prob``); only then, and for those two only, the
  description gets "small"/"large", and their radii differ by at least ~1.9x in every frame.
  Distractors never match a target in both colour and shape, so every description names exactly
  one object of its video -- unless ``twin_prob`` asks for identical look-alikes ("twins", for
  training a router to stay quiet where the description cannot tell two objects apart).
- Colours and shapes: see :mod:`fsam2lib.videos.paint`; backgrounds: :mod:`fsam2lib.videos.backgrounds`.
- Splits: train videos only ever show (targets *and* distractors) pairs from
  ``vocab.combos_for_split('train')``; in val/test a fraction ``held_out_fraction`` of the
  targets take a ``HELD_OUT_COMBOS`` pair. ``video_seed`` keeps the splits' seeds disjoint.

``sample_scene`` draws everything (cheap, no pixels); ``render_scene`` paints it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from fsam2lib.text.vocab import HELD_OUT_COMBOS, combos_for_split, describe
from fsam2lib.videos.backgrounds import MIXED_WEIGHTS, PHOTO_SETS, background
from fsam2lib.videos.effects import Effects, apply_effects, sample_effects
from fsam2lib.videos.paint import BOUND, Appearance, paint_object, rasterise, sample_appearance
from fsam2lib.videos.video import Video

BACKGROUNDS = ("plain", "procedural", "photo", "mixed")
#: How an object that stays in frame moves: a smooth persistent random walk through waypoints,
#: a periodic (Lissajous) orbit, or straight lines that bounce off the frame's edges.
MOTIONS = ("waypoints", "periodic", "bounce")
# Object radius r (fraction of unit): ordinary targets/distractors, and the size-pair members.
RADIUS_RANGE = (0.06, 0.12)
SMALL_RADIUS_RANGE = (0.04, 0.05)
LARGE_RADIUS_RANGE = (0.125, 0.15)
SIZE_PAIR_SCALE_CHANGE = 1.1  # size-pair members change scale by at most this factor


_SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
_FIRST_FRAME_SEPARATION = 0.85  # in-frame objects' centres >= this x (sum of bounding radii)
_PLACEMENT_TRIES = 100


@dataclass(frozen=True)
class WorldConfig:
    """What a synthetic video looks like. Validated on construction (ValueError naming the field).

    Speeds, pans and radii are fractions of ``min(height, width)``.
    """

    height: int = 256
    width: int = 256
    num_frames: int = 16
    min_objects: int = 1  # annotated targets per video
    max_objects: int = 3
    max_distractors: int = 2  # unannotated look-alikes (same colour or same shape as a target)
    min_distractors: int = 0  # at least this many (when the targets leave a look-alike pair)
    background: str = "mixed"  # "plain" | "procedural" | "photo" | "mixed"
    camera_pan: bool = True  # then 70 % of the videos pan, by up to max_pan
    occlusion: bool = True  # steer objects over targets; off: only chance crossings
    enter_leave: bool = True  # targets may leave (and re-enter), distractors may enter
    max_speed: float = 0.03  # object speed, per frame (leaving/occluding objects up to 2x)
    max_pan: float = 0.2  # camera displacement over the whole video
    max_rotation: float = 6.0  # degrees per frame
    max_scale_change: float = 1.4  # largest zoom factor of an object from first to last frame
    texture: float = 0.15  # amplitude of object texture (value modulation); 0 = flat colours
    held_out_fraction: float = 1 / 3  # val/test: share of targets with a held-out pair
    size_pair_prob: float = 0.15  # chance of two same colour+shape targets told apart by size
    leave_prob: float = 0.35  # chance that a target leaves the frame (and maybe comes back)
    occlusion_prob: float = 0.7  # chance that an object is steered across a target, above it
    # Broader worlds (the defaults keep the first world's videos exactly as they were):
    photos: str = "classic"  # backgrounds.PHOTO_SETS entry that photo backgrounds come from
    motions: tuple[str, ...] = ("waypoints",)  # MOTIONS an in-frame object draws its motion from
    size_pulse: float = 0.0  # amplitude of a periodic size change, fraction of the radius
    near_prob: float = 0.0  # chance that a distractor is steered to pass close by a target
    max_zoom: float = 1.0  # camera magnification drawn in [1, max_zoom] (start and end)
    max_roll: float = 0.0  # camera roll in degrees drawn in [-max_roll, max_roll]
    lighting_drift: float = 0.0  # amplitude of a slow brightness drift (0.2 = +-20 %)
    blur: float = 0.0  # largest Gaussian blur sigma, fraction of unit (0.01 = 2.6 px at 256)
    noise: float = 0.0  # largest sensor-noise standard deviation, in 0..255 units
    jpeg_quality: int = 0  # lowest JPEG quality of the round trip (0: no JPEG)
    # Where the previous mask misleads (the "hard" family):
    cut_prob: float = 0.0  # chance of one camera cut: the view jumps, every object with it
    vanish_prob: float = 0.0  # chance per target of hiding wholly and reappearing elsewhere
    # chance that a distractor copies its target's colour and shape (an identical look-alike
    # no description tells apart); 0 keeps every description unambiguous
    twin_prob: float = 0.0

    def __post_init__(self) -> None:
        _check_int_range("height", self.height, 64, 2160)
        _check_int_range("width", self.width, 64, 3840)
        _check_int_range("num_frames", self.num_frames, 8, 60)
        _check_int_range("min_objects", self.min_objects, 1, 6)
        _check_int_range("max_objects", self.max_objects, self.min_objects, 6)
        _check_int_range("max_distractors", self.max_distractors, 0, 4)
        _check_int_range("min_distractors", self.min_distractors, 0, self.max_distractors)
        if self.background not in BACKGROUNDS:
            raise ValueError(
                f"WorldConfig.background={self.background!r}; expected one of {BACKGROUNDS}"
            )
        for name in ("camera_pan", "occlusion", "enter_leave"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"WorldConfig.{name} must be a bool, got {getattr(self, name)!r}")
        _check_float_range("max_speed", self.max_speed, 1e-3, 0.2)
        _check_float_range("max_pan", self.max_pan, 0.0, 1.0)
        _check_float_range("max_rotation", self.max_rotation, 0.0, 45.0)
        _check_float_range("max_scale_change", self.max_scale_change, 1.0, 3.0)
        _check_float_range("texture", self.texture, 0.0, 0.4)
        for name in ("held_out_fraction", "size_pair_prob", "leave_prob", "occlusion_prob"):
            _check_float_range(name, getattr(self, name), 0.0, 1.0)
        if self.photos not in PHOTO_SETS:
            raise ValueError(
                f"WorldConfig.photos={self.photos!r}; expected one of {sorted(PHOTO_SETS)}"
            )
        if (
            not isinstance(self.motions, tuple)
            or not self.motions
            or any(m not in MOTIONS for m in self.motions)
        ):
            raise ValueError(
                f"WorldConfig.motions must be a non-empty tuple of {MOTIONS}, got {self.motions!r}"
            )
        _check_float_range("size_pulse", self.size_pulse, 0.0, 0.5)
        _check_float_range("near_prob", self.near_prob, 0.0, 1.0)
        _check_float_range("max_zoom", self.max_zoom, 1.0, 2.0)
        _check_float_range("max_roll", self.max_roll, 0.0, 15.0)
        _check_float_range("lighting_drift", self.lighting_drift, 0.0, 0.5)
        _check_float_range("blur", self.blur, 0.0, 0.05)
        _check_float_range("noise", self.noise, 0.0, 40.0)
        _check_float_range("cut_prob", self.cut_prob, 0.0, 1.0)
        _check_float_range("twin_prob", self.twin_prob, 0.0, 1.0)
        _check_float_range("vanish_prob", self.vanish_prob, 0.0, 1.0)
        if self.jpeg_quality != 0:
            _check_int_range("jpeg_quality", self.jpeg_quality, 10, 95)

    @property
    def has_effects(self) -> bool:
        """Whether videos get camera / sensor effects after painting (see ``effects``)."""
        return (
            self.max_zoom > 1.0
            or self.max_roll > 0
            or self.lighting_drift > 0
            or self.blur > 0
            or self.noise > 0
            or self.jpeg_quality > 0
        )

    @property
    def unit(self) -> int:
        return min(self.height, self.width)


def _check_int_range(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"WorldConfig.{name} must be an int, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"WorldConfig.{name}={value} is outside [{low}, {high}]")


def _check_float_range(name: str, value: object, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"WorldConfig.{name} must be a number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"WorldConfig.{name}={value} is outside [{low}, {high}]")


# ----------------------------------------------------------------------------- scene records


@dataclass(frozen=True, eq=False)
class ObjectSpec:
    """One object of a scene and its whole trajectory, in frame pixel coordinates."""

    colour: str
    shape: str
    size_word: str | None
    obj_id: int  # 1..K for targets; 0 for distractors (unannotated)
    appearance: Appearance
    centers: np.ndarray  # float [T, 2] (x, y)
    angles: np.ndarray  # float [T] radians
    radii: np.ndarray  # float [T] the shape's radius r in pixels (see BOUND)
    hidden: np.ndarray | None = None  # bool [T]: wholly hidden on these frames (not painted)

    @property
    def description(self) -> str:
        return describe(self.colour, self.shape, self.size_word)

    @property
    def is_target(self) -> bool:
        return self.obj_id > 0


@dataclass(frozen=True, eq=False)
class Scene:
    """Everything drawn for one video, before any pixel is painted. Objects are bottom-first."""

    config: WorldConfig
    split: str
    seed: int
    objects: tuple[ObjectSpec, ...]
    camera: np.ndarray  # int [T, 2] (x, y) of the frame's top-left corner in the background
    background: str  # "plain" | "procedural" | "photo"
    background_seed: int
    effects: Effects | None = None  # camera / sensor effects applied after painting

    @property
    def targets(self) -> list[ObjectSpec]:
        return sorted((o for o in self.objects if o.is_target), key=lambda o: o.obj_id)

    @property
    def descriptions(self) -> dict[int, str]:
        return {o.obj_id: o.description for o in self.targets}


@dataclass(frozen=True)
class Visibility:
    """Per frame and target (columns in obj_id order): pixels of its whole silhouette inside the
    frame, and of those the pixels left visible after occlusion (= its mask area)."""

    in_frame: np.ndarray  # int [T, K]
    visible: np.ndarray  # int [T, K]


# ----------------------------------------------------------------------------- seeds, splits


def video_seed(split: str, index: int, base_seed: int = 0) -> int:
    """The seed of video ``index`` of ``split``; splits never share a seed.

    A SeedSequence hash of (base_seed, split, index) gives 62 bits; the split's code takes the
    top two bits of the 64-bit seed, so the three streams are disjoint by construction.
    """
    code = split_code(split)
    for what, value in (("index", index), ("base_seed", base_seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"video_seed: {what} must be a non-negative int, got {value!r}")
    state = np.random.SeedSequence([int(base_seed), code, int(index)]).generate_state(1, np.uint64)
    return (code << 62) | (int(state[0]) & ((1 << 62) - 1))


def split_code(split: str) -> int:
    if split not in _SPLIT_CODES:
        raise ValueError(f"unknown split {split!r}; expected 'train', 'val' or 'test'")
    return _SPLIT_CODES[split]


def check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def make_video(
    seed: int, config: WorldConfig | None = None, split: str = "train", name: str | None = None
) -> Video:
    """One synthetic video, fully determined by (seed, config, split)."""
    scene = sample_scene(seed, config, split)
    return render_scene(scene, name if name is not None else f"{split}_seed{scene.seed}")


def make_split(
    split: str,
    num_videos: int,
    config: WorldConfig | None = None,
    base_seed: int = 0,
    progress: bool = False,
) -> Iterator[Video]:
    """Videos ``<split>_0000``, ``<split>_0001``, ... generated lazily, seeded by ``video_seed``."""
    split_code(split)
    if (
        isinstance(num_videos, bool)
        or not isinstance(num_videos, (int, np.integer))
        or num_videos < 0
    ):
        raise ValueError(f"num_videos must be a non-negative int, got {num_videos!r}")
    for index in tqdm(range(num_videos), desc=f"{split} videos", disable=not progress):
        yield make_video(video_seed(split, index, base_seed), config, split, f"{split}_{index:04d}")


# ----------------------------------------------------------------------------- scene sampling


@dataclass(eq=False)
class _Plan:
    """Mutable per-object sampling state (turned into an ObjectSpec at the end)."""

    colour: str
    shape: str
    size_word: str | None
    obj_id: int
    radii: np.ndarray
    angles: np.ndarray
    leave_edge: int | None = None  # 0 left, 1 right, 2 top, 3 bottom
    occludes: int | None = None  # index of the plan this object is steered over (or near)
    near: bool = False  # steered to pass close by ``occludes`` instead of over it
    world: np.ndarray | None = None  # [n_waypoints, 2]
    path: np.ndarray | None = (
        None  # [T, 2] per-frame world positions (motions other than waypoints)
    )

    @property
    def bound(self) -> np.ndarray:
        return self.radii * BOUND[self.shape]


def sample_scene(seed: int, config: WorldConfig | None = None, split: str = "train") -> Scene:
    """Draw a scene (objects, trajectories, camera, background choice) without painting it."""
    seed = check_seed(seed)
    cfg = config if config is not None else WorldConfig()
    if not isinstance(cfg, WorldConfig):
        raise ValueError(f"config must be a WorldConfig, got {type(cfg).__name__}")
    split_code(split)
    rng = np.random.default_rng(seed)
    n_frames = cfg.num_frames
    camera = _sample_camera(rng, cfg)
    times = _waypoint_times(n_frames)

    targets = _sample_targets(rng, cfg, split)
    plans = targets + _sample_distractors(rng, cfg, split, targets)
    # Pair members first (placed into an empty frame, never shrunk), then targets, distractors.
    plans.sort(key=lambda p: (p.size_word is None, p.obj_id == 0))
    _plan_leaving(rng, cfg, plans)
    _plan_occlusion(rng, cfg, plans)
    _plan_near(rng, cfg, plans)

    placed: list[_Plan] = []
    for plan in plans:
        _place(rng, cfg, plan, placed, camera, times)
        placed.append(plan)

    background = cfg.background
    if background == "mixed":
        background = str(rng.choice(["plain", "procedural", "photo"], p=MIXED_WEIGHTS))
    order = list(rng.permutation(len(plans)))
    for k, plan in enumerate(plans):  # an occluder is painted above the target it is steered over
        if plan.occludes is not None:
            i, j = order.index(k), order.index(plan.occludes)
            if i < j:
                order[i], order[j] = order[j], order[i]
    paths = {}
    for k in order:
        plan = plans[k]
        path = plan.path if plan.path is not None else _spline(plan.world, times, n_frames)
        centers = path - camera
        if not cfg.enter_leave:  # keep every object wholly inside the frame
            low = plan.bound[:, None]
            high = np.array([cfg.width, cfg.height], dtype=float) - low
            centers = np.clip(centers, low, np.maximum(low, high))
        paths[k] = centers
    hidden = {}
    if cfg.cut_prob > 0 and rng.random() < cfg.cut_prob:
        camera = _camera_cut(rng, cfg, plans, paths, camera)
    if cfg.vanish_prob > 0:
        hidden = _vanish(rng, cfg, plans, paths)
    objects = []
    for k in order:
        plan = plans[k]
        objects.append(
            ObjectSpec(
                plan.colour,
                plan.shape,
                plan.size_word,
                plan.obj_id,
                sample_appearance(rng, plan.colour, cfg.texture),
                paths[k],
                plan.angles,
                plan.radii,
                hidden.get(k),
            )
        )
    background_seed = int(rng.integers(2**63))
    effects = None
    if cfg.has_effects:  # a stream of its own: the scene above is drawn as without effects
        effects = sample_effects(
            np.random.default_rng([seed, 1]),
            n_frames,
            cfg.max_zoom,
            cfg.max_roll,
            cfg.lighting_drift,
            cfg.blur * cfg.unit,
            cfg.noise,
            cfg.jpeg_quality,
        )
    return Scene(cfg, split, seed, tuple(objects), camera, background, background_seed, effects)


def _camera_cut(
    rng: np.random.Generator,
    cfg: WorldConfig,
    plans: list[_Plan],
    paths: dict[int, np.ndarray],
    camera: np.ndarray,
) -> np.ndarray:
    """A cut at a random frame: the view jumps by at least a quarter of ``unit``, so every
    object jumps in the frame (``paths`` changed in place) and the background with it; every
    target stays in frame across the cut. Returns the new camera (unchanged if no jump fits)."""
    n = cfg.num_frames
    cut = int(rng.integers(2, n - 2))
    size = np.array([cfg.width, cfg.height], dtype=float)
    low, high = np.full(2, -np.inf), np.full(2, np.inf)  # allowed jump, per axis
    for k, plan in enumerate(plans):
        if plan.obj_id > 0:
            bound = plan.bound[cut]
            low = np.maximum(low, paths[k][cut] - (size - bound))
            high = np.minimum(high, paths[k][cut] - bound)
    for _ in range(_PLACEMENT_TRIES):
        jump = rng.uniform(low, high) if np.all(low < high) else None
        if jump is not None and np.hypot(*jump) >= 0.25 * cfg.unit:
            break
    else:
        return camera
    for centers in paths.values():
        centers[cut:] -= jump
    camera = camera.copy()
    camera[cut:] += np.rint(jump).astype(np.int64)
    return camera - camera.min(axis=0)


def _vanish(
    rng: np.random.Generator, cfg: WorldConfig, plans: list[_Plan], paths: dict[int, np.ndarray]
) -> dict[int, np.ndarray]:
    """Targets that hide wholly for 2-5 frames and reappear at least a third of ``unit`` away
    (``paths`` changed in place). Returns the hidden-frame flags per plan index."""
    n = cfg.num_frames
    size = np.array([cfg.width, cfg.height], dtype=float)
    hidden = {}
    for k, plan in enumerate(plans):
        if plan.obj_id == 0 or rng.random() >= cfg.vanish_prob:
            continue
        start = int(rng.integers(2, n - 3))
        end = min(n - 1, start + int(rng.integers(2, 6)))
        before = paths[k][start - 1]
        for _ in range(_PLACEMENT_TRIES):
            bound = plan.bound[end]
            target = rng.uniform(bound, np.maximum(bound, size - bound))
            if np.hypot(*(target - before)) >= cfg.unit / 3:
                break
        else:
            continue
        paths[k][end:] += target - paths[k][end]
        flags = np.zeros(n, dtype=bool)
        flags[start:end] = True
        hidden[k] = flags
    return hidden


def _sample_camera(rng: np.random.Generator, cfg: WorldConfig) -> np.ndarray:
    """Integer top-left offsets (x, y) of the frame in the background, >= 0, one per frame."""
    n = cfg.num_frames
    if not cfg.camera_pan or cfg.max_pan == 0 or rng.random() < 0.3:
        return np.zeros((n, 2), dtype=np.int64)
    distance = rng.uniform(0.3, 1.0) * cfg.max_pan * cfg.unit
    angle = rng.uniform(0, 2 * np.pi)
    s = np.linspace(0.0, 1.0, n)
    if rng.random() < 0.5:
        s = s * s * (3 - 2 * s)  # ease in and out
    path = s[:, None] * distance * np.array([np.cos(angle), np.sin(angle)])
    return np.rint(path - path.min(axis=0)).astype(np.int64)


def _waypoint_times(n_frames: int) -> np.ndarray:
    """Frames at which trajectories pass through sampled waypoints: about every 8 frames."""
    count = int(np.clip(1 + round((n_frames - 1) / 8), 2, 8))
    return np.rint(np.linspace(0, n_frames - 1, count)).astype(np.int64)


def _spline(points: np.ndarray, times: np.ndarray, n_frames: int) -> np.ndarray:
    """Catmull-Rom curve through ``points`` at ``times``, evaluated at every frame: [T, 2]."""
    padded = np.concatenate([2 * points[:1] - points[1:2], points, 2 * points[-1:] - points[-2:-1]])
    t = np.arange(n_frames)
    seg = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 2)
    s = ((t - times[seg]) / (times[seg + 1] - times[seg]))[:, None]
    p0, p1, p2, p3 = padded[seg], padded[seg + 1], padded[seg + 2], padded[seg + 3]
    return 0.5 * (
        2 * p1
        + (p2 - p0) * s
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * s**2
        + (3 * p1 - p0 - 3 * p2 + p3) * s**3
    )


def draw_combo(
    rng: np.random.Generator, split: str, held_out_fraction: float, exclude: set
) -> tuple[str, str]:
    """A colour-shape pair allowed in ``split``; val/test draw a held-out pair that often."""
    if split == "train":
        pool = combos_for_split("train")
    elif rng.random() < held_out_fraction:
        pool = sorted(HELD_OUT_COMBOS)
    else:
        pool = [c for c in combos_for_split(split) if c not in HELD_OUT_COMBOS]
    pool = [c for c in pool if c not in exclude]  # never empty: <= 6 targets, >= 8 pairs
    return pool[int(rng.integers(len(pool)))]


def _scale_track(rng: np.random.Generator, r0: float, max_change: float, n: int) -> np.ndarray:
    end = np.exp(rng.uniform(-np.log(max_change), np.log(max_change)))
    return r0 * end ** np.linspace(0.0, 1.0, n)


def _new_plan(
    rng: np.random.Generator,
    cfg: WorldConfig,
    combo: tuple[str, str],
    size_word: str | None,
    obj_id: int,
) -> _Plan:
    n, unit = cfg.num_frames, cfg.unit
    ranges = {None: RADIUS_RANGE, "small": SMALL_RADIUS_RANGE, "large": LARGE_RADIUS_RANGE}
    change = (
        min(cfg.max_scale_change, SIZE_PAIR_SCALE_CHANGE) if size_word else cfg.max_scale_change
    )
    radii = _scale_track(rng, rng.uniform(*ranges[size_word]) * unit, change, n)
    if cfg.size_pulse > 0 and size_word is None:  # size pairs keep their size gap
        period, phase = rng.uniform(6, 30), rng.uniform(0, 2 * np.pi)
        amplitude = rng.uniform(0, cfg.size_pulse)
        radii = radii * (1 + amplitude * np.sin(2 * np.pi * np.arange(n) / period + phase))
    spin = np.deg2rad(rng.uniform(-cfg.max_rotation, cfg.max_rotation))
    angles = rng.uniform(0, 2 * np.pi) + spin * np.arange(n)
    return _Plan(combo[0], combo[1], size_word, obj_id, radii, angles)


def _sample_targets(rng: np.random.Generator, cfg: WorldConfig, split: str) -> list[_Plan]:
    count = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    combos: list[tuple[tuple[str, str], str | None]] = []
    if count >= 2 and rng.random() < cfg.size_pair_prob:
        combo = draw_combo(rng, split, cfg.held_out_fraction, set())
        combos += [(combo, "small"), (combo, "large")]
    while len(combos) < count:
        used = {c for c, _ in combos}
        combos.append((draw_combo(rng, split, cfg.held_out_fraction, used), None))
    order = rng.permutation(count)  # object ids do not reveal which target is the pair
    return [_new_plan(rng, cfg, combos[k][0], combos[k][1], i + 1) for i, k in enumerate(order)]


def _sample_distractors(
    rng: np.random.Generator, cfg: WorldConfig, split: str, targets: list[_Plan]
) -> list[_Plan]:
    """Unannotated look-alikes: a target's shape in another colour, or its colour in another
    shape; never both, so no description becomes ambiguous, except for the share
    ``twin_prob`` that copies its target exactly. Fewer than drawn only when the targets
    already use every look-alike pair."""
    count = int(rng.integers(cfg.min_distractors, cfg.max_distractors + 1))
    taken = {(p.colour, p.shape) for p in targets}
    allowed = [c for c in combos_for_split(split) if c not in taken]
    plans = []
    for _ in range(count):
        target = targets[int(rng.integers(len(targets)))]
        if cfg.twin_prob > 0 and rng.random() < cfg.twin_prob:
            plans.append(_new_plan(rng, cfg, (target.colour, target.shape), None, 0))
            continue
        same_shape = [c for c in allowed if c[1] == target.shape]
        same_colour = [c for c in allowed if c[0] == target.colour]
        pool = (same_shape, same_colour) if rng.random() < 0.5 else (same_colour, same_shape)
        pool = pool[0] or pool[1]
        if not pool:
            continue
        plans.append(_new_plan(rng, cfg, pool[int(rng.integers(len(pool)))], None, 0))
    return plans


def _plan_leaving(rng: np.random.Generator, cfg: WorldConfig, plans: list[_Plan]) -> None:
    """Pick the targets that will leave the frame, and through which edge."""
    if not cfg.enter_leave:
        return
    for plan in plans:
        if plan.obj_id > 0 and rng.random() < cfg.leave_prob:
            plan.leave_edge = int(rng.integers(4))


def _plan_occlusion(rng: np.random.Generator, cfg: WorldConfig, plans: list[_Plan]) -> None:
    """Steer one later-placed object over an earlier target that stays in frame."""
    if not cfg.occlusion or rng.random() >= cfg.occlusion_prob:
        return
    victims = [i for i, p in enumerate(plans) if p.obj_id > 0 and p.leave_edge is None]
    if not victims:
        return
    victim = victims[int(rng.integers(len(victims)))]
    candidates = [i for i in range(victim + 1, len(plans)) if plans[i].leave_edge is None]
    if candidates:
        plans[candidates[int(rng.integers(len(candidates)))]].occludes = victim


def _plan_near(rng: np.random.Generator, cfg: WorldConfig, plans: list[_Plan]) -> None:
    """Steer some distractors to pass close by a target (a look-alike brushing past it)."""
    if cfg.near_prob == 0:
        return
    targets = [i for i, p in enumerate(plans) if p.obj_id > 0 and p.leave_edge is None]
    for plan in plans:
        if plan.obj_id == 0 and plan.occludes is None and targets and rng.random() < cfg.near_prob:
            plan.occludes, plan.near = targets[int(rng.integers(len(targets)))], True


# Trajectories are waypoints in background ("world") coordinates: an object that does not move
# in the world moves with the background when the camera pans. Constraints (inside the frame,
# out of it, on top of another object) are stated in frame coordinates at waypoint times,
# frame = world - camera.


def _edge_point(edge: int, depth: float, along: float, cfg: WorldConfig) -> np.ndarray:
    """Frame point ``depth`` pixels inside ``edge`` (negative: outside), ``along`` it."""
    w, h = cfg.width, cfg.height
    return np.array(
        [(depth, along), (w - depth, along), (along, depth), (along, h - depth)][edge], dtype=float
    )


def _edge_length(edge: int, cfg: WorldConfig) -> int:
    return cfg.height if edge < 2 else cfg.width


def _half_depth(edge: int, cfg: WorldConfig) -> float:
    """Distance from ``edge`` to the middle of the frame."""
    return (cfg.width if edge < 2 else cfg.height) / 2


def _clamp_inside(p: np.ndarray, bound: float, cfg: WorldConfig) -> np.ndarray:
    size = np.array([cfg.width, cfg.height], dtype=float)
    return np.clip(p, bound, np.maximum(bound, size - bound))


def _separated(p: np.ndarray, bound0: float, placed: list[_Plan], camera: np.ndarray) -> bool:
    for other in placed:
        q = other.world[0] - camera[0]
        if np.hypot(*(p - q)) < _FIRST_FRAME_SEPARATION * (bound0 + other.bound[0]):
            return False
    return True


def _walk(
    rng: np.random.Generator,
    cfg: WorldConfig,
    plan: _Plan,
    camera: np.ndarray,
    times: np.ndarray,
    start: int,
) -> None:
    """Fill waypoints after ``start`` by a persistent random walk kept inside the frame."""
    heading = rng.uniform(0, 2 * np.pi)
    for j in range(start + 1, len(times)):
        dt = times[j] - times[j - 1]
        heading += rng.normal(0.0, 0.6)
        step = rng.uniform(0.2, 1.0) * cfg.max_speed * cfg.unit * dt
        world = plan.world[j - 1] + step * np.array([np.cos(heading), np.sin(heading)])
        frame = _clamp_inside(world - camera[times[j]], plan.bound[times[j]], cfg)
        plan.world[j] = frame + camera[times[j]]


def _move(
    rng: np.random.Generator,
    cfg: WorldConfig,
    plan: _Plan,
    camera: np.ndarray,
    times: np.ndarray,
    motion: str,
) -> None:
    """Set ``plan.path`` frame by frame from ``plan.world[0]`` with a periodic or bouncing
    motion, kept inside the frame; waypoints are sampled from it for later placements."""
    n = cfg.num_frames
    speed = rng.uniform(0.3, 1.0) * cfg.max_speed * cfg.unit
    start = plan.world[0] - camera[0]
    size = np.array([cfg.width, cfg.height], dtype=float)
    frame = np.empty((n, 2))
    if motion == "periodic":  # Lissajous orbit through the start; peak speed about ``speed``
        omega = 2 * np.pi / rng.uniform(8, 40)
        ratio = rng.choice([0.5, 1.0, 1.0, 2.0])
        phase = rng.uniform(0, 2 * np.pi, 2)
        amp = speed / omega * rng.uniform(0.4, 1.0, 2) / np.array([1.0, max(ratio, 1.0)])
        amp = np.minimum(amp, size / 3)
        t = np.arange(n)[:, None]
        wave = np.sin(t * omega * np.array([1.0, ratio]) + phase)
        frame[:] = start + amp * (wave - np.sin(phase))
        for j in range(n):
            frame[j] = _clamp_inside(frame[j], plan.bound[j], cfg)
    elif motion == "bounce":  # straight lines, mirrored at the frame's edges
        heading = rng.uniform(0, 2 * np.pi)
        velocity = speed * np.array([np.cos(heading), np.sin(heading)])
        frame[0] = start
        for j in range(1, n):
            p = frame[j - 1] + velocity
            low, high = plan.bound[j], size - plan.bound[j]
            for axis in range(2):
                if p[axis] < low or p[axis] > high[axis]:
                    velocity[axis] = -velocity[axis]
                    p[axis] = np.clip(
                        2 * np.clip(p[axis], low, high[axis]) - p[axis], low, high[axis]
                    )
            frame[j] = p
    else:
        raise ValueError(f"unknown motion {motion!r}; expected one of {MOTIONS}")
    plan.path = frame + camera
    plan.world = plan.path[times].copy()


def _place(
    rng: np.random.Generator,
    cfg: WorldConfig,
    plan: _Plan,
    placed: list[_Plan],
    camera: np.ndarray,
    times: np.ndarray,
) -> None:
    """Set ``plan.world`` (one point per waypoint time) according to the plan's role."""
    plan.world = np.zeros((len(times), 2))
    if plan.leave_edge is not None and _place_leaving(rng, cfg, plan, placed, camera, times):
        return
    plan.leave_edge = None
    if plan.occludes is not None and _place_occluder(rng, cfg, plan, placed, camera, times):
        return
    plan.occludes = None
    entering = plan.obj_id == 0 and cfg.enter_leave and rng.random() < 0.4
    if not entering and _place_inside(rng, cfg, plan, placed, camera):
        motion = (
            cfg.motions[int(rng.integers(len(cfg.motions)))]
            if len(cfg.motions) > 1
            else cfg.motions[0]
        )
        if motion == "waypoints":
            _walk(rng, cfg, plan, camera, times, 0)
        else:
            _move(rng, cfg, plan, camera, times, motion)
    else:  # only distractors, and only when objects may enter
        _place_entering(rng, cfg, plan, camera, times)


def _place_inside(
    rng: np.random.Generator, cfg: WorldConfig, plan: _Plan, placed: list[_Plan], camera: np.ndarray
) -> bool:
    """Start wholly inside the frame, clear of the objects already there. Targets (and all
    objects when nothing may enter) shrink until they fit; distractors may give up."""
    must_fit = plan.obj_id > 0 or not cfg.enter_leave
    while True:
        b0 = plan.bound[0]
        for _ in range(_PLACEMENT_TRIES):
            p = _clamp_inside(rng.uniform([0, 0], [cfg.width, cfg.height]), b0, cfg)
            if _separated(p, b0, placed, camera):
                plan.world[0] = p + camera[0]
                return True
        if not must_fit:
            return False
        plan.radii = plan.radii * 0.9


def _place_entering(
    rng: np.random.Generator, cfg: WorldConfig, plan: _Plan, camera: np.ndarray, times: np.ndarray
) -> None:
    """Start wholly outside an edge and come in by the next waypoint."""
    edge = int(rng.integers(4))
    length, t1 = _edge_length(edge, cfg), times[1]
    along = rng.uniform(0, length)
    plan.world[0] = _edge_point(edge, -1.1 * plan.bound[0], along, cfg) + camera[0]
    reach = min(2 * cfg.max_speed * cfg.unit * t1 - 1.1 * plan.bound[0], _half_depth(edge, cfg))
    depth = rng.uniform(plan.bound[t1], max(plan.bound[t1], reach))
    inside = _edge_point(edge, depth, along + rng.normal(0, 0.1) * length, cfg)
    plan.world[1] = _clamp_inside(inside, plan.bound[t1], cfg) + camera[t1]
    _walk(rng, cfg, plan, camera, times, 1)


def _place_leaving(
    rng: np.random.Generator,
    cfg: WorldConfig,
    plan: _Plan,
    placed: list[_Plan],
    camera: np.ndarray,
    times: np.ndarray,
) -> bool:
    """Start near an edge (mostly inside), be wholly outside it at a later waypoint, then come
    back in or stay out. False when no clear start was found (the plan then stays)."""
    edge, n_wp = plan.leave_edge, len(times)
    k = int(rng.integers(1, n_wp))
    tk, b0, bk = times[k], plan.bound[0], plan.bound[times[k]]
    length = _edge_length(edge, cfg)
    reach = min(2 * cfg.max_speed * cfg.unit * tk - 1.1 * bk, _half_depth(edge, cfg))
    for _ in range(_PLACEMENT_TRIES):
        along = rng.uniform(min(b0, length / 2), max(length - b0, length / 2))
        start = _edge_point(edge, rng.uniform(0.6 * b0, max(0.6 * b0, reach)), along, cfg)
        if _separated(start, b0, placed, camera):
            break
    else:
        return False
    out = _edge_point(edge, -1.1 * bk, along + rng.normal(0, 0.1) * length, cfg)
    for j in range(k + 1):  # straight out
        s = times[j] / tk
        plan.world[j] = (1 - s) * start + s * out + camera[times[j]]
    if k + 1 < n_wp and rng.random() < 0.5:  # come back in, then wander
        t = times[k + 1]
        back = _edge_point(edge, rng.uniform(1.0, 2.5) * plan.bound[t], along, cfg)
        plan.world[k + 1] = _clamp_inside(back, plan.bound[t], cfg) + camera[t]
        _walk(rng, cfg, plan, camera, times, k + 1)
    else:  # stay out, drifting along the edge
        for j in range(k + 1, n_wp):
            t = times[j]
            drift = _edge_point(
                edge, -1.2 * plan.bound[t], along + rng.normal(0, 0.1) * length, cfg
            )
            plan.world[j] = drift + camera[t]
    return True


def _place_occluder(
    rng: np.random.Generator,
    cfg: WorldConfig,
    plan: _Plan,
    placed: list[_Plan],
    camera: np.ndarray,
    times: np.ndarray,
) -> bool:
    """Start within reach of where the victim will be at a waypoint and be on top of it there.
    False when no clear start within reach was found (the plan then wanders)."""
    victim = placed[plan.occludes]  # placement follows plan order; victims come first
    k = int(rng.integers(1, len(times)))
    tk, b0 = times[k], plan.bound[0]
    if plan.near:  # beside the victim, just clear of it
        angle = rng.uniform(0, 2 * np.pi)
        gap = (victim.bound[tk] + plan.bound[tk]) * rng.uniform(0.95, 1.3)
        offset = gap * np.array([np.cos(angle), np.sin(angle)])
    else:
        offset = rng.normal(0.0, 0.15, 2) * victim.bound[tk]
    meet = victim.world[k] + offset
    reach = 2 * cfg.max_speed * cfg.unit * tk
    for _ in range(_PLACEMENT_TRIES):
        angle, dist = rng.uniform(0, 2 * np.pi), reach * np.sqrt(rng.random())
        start = meet - camera[0] + dist * np.array([np.cos(angle), np.sin(angle)])
        if np.array_equal(start, _clamp_inside(start, b0, cfg)) and _separated(
            start, b0, placed, camera
        ):
            break
    else:
        return False
    start = start + camera[0]
    for j in range(k + 1):  # straight at the meeting point
        s = times[j] / tk
        plan.world[j] = (1 - s) * start + s * meet
    _walk(rng, cfg, plan, camera, times, k)
    return True


def _paint(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """frames uint8 [T, H, W, 3]; visible-pixel masks uint8 [T, H, W] (target ids, 0 elsewhere);
    in-frame silhouette areas int [T, N] of scene.objects, before occlusion."""
    cfg, camera = scene.config, scene.camera
    n, h, w = cfg.num_frames, cfg.height, cfg.width
    rng = np.random.default_rng(scene.background_seed)
    canvas = background(
        scene.background, rng, h + camera[:, 1].max(), w + camera[:, 0].max(), cfg.unit, cfg.photos
    )
    frames = np.empty((n, h, w, 3), dtype=np.uint8)
    masks = np.zeros((n, h, w), dtype=np.uint8)
    areas = np.zeros((n, len(scene.objects)), dtype=np.int64)
    for t in range(n):
        ox, oy = camera[t]
        frames[t] = canvas[oy : oy + h, ox : ox + w]
        for k, obj in enumerate(scene.objects):
            if obj.hidden is not None and obj.hidden[t]:
                continue
            (cx, cy), r, theta = obj.centers[t], obj.radii[t], obj.angles[t]
            hit = rasterise(obj.shape, cx, cy, r, theta, h, w)
            if hit is not None:  # distractors paint 0: they hide what is under them
                areas[t, k] = paint_object(
                    frames[t], masks[t], obj.obj_id, obj.appearance, hit, r, theta
                )
    if scene.effects is not None:
        apply_effects(frames, masks, scene.effects)
    return frames, masks, areas


def object_labels(scene: Scene) -> np.ndarray:
    """uint8 ``[T, H, W]``: which object of ``scene.objects`` (its index + 1; 0 background)
    each pixel shows, distractors included -- what the masks leave out, for figures that ask
    where a look-alike is. Scenes with camera or sensor effects are refused (the warp would
    have to be replayed)."""
    if scene.effects is not None:
        raise ValueError("object_labels needs a scene without camera or sensor effects")
    cfg = scene.config
    labels = np.zeros((cfg.num_frames, cfg.height, cfg.width), dtype=np.uint8)
    for t in range(cfg.num_frames):
        for k, obj in enumerate(scene.objects):  # bottom-first: later objects cover earlier
            if obj.hidden is not None and obj.hidden[t]:
                continue
            (cx, cy), r, theta = obj.centers[t], obj.radii[t], obj.angles[t]
            hit = rasterise(obj.shape, cx, cy, r, theta, cfg.height, cfg.width)
            if hit is not None:
                y0, x0, inside = hit[:3]
                h, w = inside.shape
                labels[t, y0 : y0 + h, x0 : x0 + w][inside] = k + 1
    return labels


def render_scene(scene: Scene, name: str | None = None) -> Video:
    """Paint a scene: frames, visible-pixel instance masks and the targets' descriptions."""
    frames, masks, _ = _paint(scene)
    name = name if name is not None else f"{scene.split}_seed{scene.seed}"
    return Video(name, frames, masks, scene.descriptions)


def target_visibility(scene: Scene) -> Visibility:
    """How much of each target is in frame and how much of that is visible (occlusion)."""
    _, masks, areas = _paint(scene)
    ids = [o.obj_id for o in scene.objects]
    target_ids = sorted(i for i in ids if i > 0)
    visible = np.stack([np.bincount(m.ravel(), minlength=256) for m in masks])
    return Visibility(
        in_frame=areas[:, [ids.index(i) for i in target_ids]], visible=visible[:, target_ids]
    )
