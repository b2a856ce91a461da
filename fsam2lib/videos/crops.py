"""Single-object crops of the synthetic world, for training and evaluating a micro CLIP, and
the square crop around a mask that automatic descriptions look at."""

from __future__ import annotations

import numpy as np
from PIL import Image

from fsam2lib.text.vocab import combos_for_split, describe
from fsam2lib.videos.backgrounds import MIXED_WEIGHTS, background
from fsam2lib.videos.paint import BOUND, paint_object, rasterise, sample_appearance
from fsam2lib.videos.world import check_seed, draw_combo, split_code

_CROP_STREAM = 7919  # separates make_object_crops' seeds from video seeds


def crop_object(
    frame: np.ndarray, mask: np.ndarray, pad: float = 0.15, size: int = 64
) -> np.ndarray:
    """uint8 [size, size, 3]: a square around the mask's bounding box, ``pad`` of its side added
    on every side, resized. Where the square leaves the frame, edge pixels are repeated."""
    frame, mask = np.asarray(frame), np.asarray(mask)
    if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"crop_object: frame must be uint8 [H,W,3], got {frame.dtype} {frame.shape}"
        )
    if mask.shape != frame.shape[:2]:
        raise ValueError(f"crop_object: mask {mask.shape} does not match frame {frame.shape[:2]}")
    if not 0 <= pad <= 2:
        raise ValueError(f"crop_object: pad={pad} is outside [0, 2]")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"crop_object: size must be a positive int, got {size!r}")
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        raise ValueError("crop_object: the mask is empty")
    side = (max(ys.max() - ys.min(), xs.max() - xs.min()) + 1) * (1 + 2 * pad)
    side = max(int(round(side)), 1)
    top = int(round((ys.min() + ys.max() + 1 - side) / 2))
    left = int(round((xs.min() + xs.max() + 1 - side) / 2))
    rows = np.clip(np.arange(top, top + side), 0, frame.shape[0] - 1)
    cols = np.clip(np.arange(left, left + side), 0, frame.shape[1] - 1)
    square = frame[rows[:, None], cols[None, :]]
    return np.asarray(Image.fromarray(square).resize((size, size), Image.Resampling.BILINEAR))


#: Object diameter (of its bounding circle) over the crop side, per size word in crops.
CROP_FILL = {None: (0.45, 0.8), "small": (0.25, 0.4), "large": (0.85, 1.0)}


def make_object_crops(
    split: str, num: int, seed: int = 0, size: int = 64, size_word_prob: float = 0.2
) -> tuple[np.ndarray, list[str]]:
    """uint8 [num, size, size, 3] crops of one object each, and their descriptions.

    For training and evaluating a micro CLIP: the same colours, textures, shapes and backgrounds
    as the videos, random scale, rotation and position, sometimes (1 in 4) partly hidden behind
    an object differing in both colour and shape (at most half hidden). Size words follow the
    crop: "small" objects fill 25-40 % of the side, "large" ones 85-100 %, unsized ones 45-80 %
    (``crop_object``'s default padding gives ~77 %, i.e. unsized). Pairs follow the split's rules
    (train: no held-out pair; val/test: a third held out); (seed, split) seed a stream of their own.
    """
    code = split_code(split)
    seed = check_seed(seed)
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 0:
        raise ValueError(f"make_object_crops: num must be a non-negative int, got {num!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 16:
        raise ValueError(f"make_object_crops: size must be an int >= 16, got {size!r}")
    if not 0 <= size_word_prob <= 1:
        raise ValueError(f"make_object_crops: size_word_prob={size_word_prob} is outside [0, 1]")
    rng = np.random.default_rng(np.random.SeedSequence([seed, code, _CROP_STREAM]))
    crops = np.empty((num, size, size, 3), dtype=np.uint8)
    texts = []
    for i in range(num):
        kind = str(rng.choice(["plain", "procedural", "photo"], p=MIXED_WEIGHTS))
        crops[i] = background(kind, rng, size, size, size)
        colour, shape = draw_combo(rng, split, 1 / 3, set())
        word = None
        if rng.random() < size_word_prob:
            word = "small" if rng.random() < 0.5 else "large"
        r = rng.uniform(*CROP_FILL[word]) * size / 2 / BOUND[shape]
        cx, cy = size / 2 + rng.uniform(-0.1, 0.1, 2) * size
        theta = rng.uniform(0, 2 * np.pi)
        hit = rasterise(shape, cx, cy, r, theta, size, size)
        paint_object(crops[i], None, 0, sample_appearance(rng, colour, 0.15), hit, r, theta)
        if rng.random() < 0.25:
            _paint_occluder(rng, crops[i], split, (colour, shape), hit, (cx, cy, r))
        texts.append(describe(colour, shape, word))
    return crops, texts


def _paint_occluder(
    rng: np.random.Generator,
    image: np.ndarray,
    split: str,
    combo: tuple[str, str],
    hit: tuple[int, int, np.ndarray, np.ndarray, np.ndarray],
    circle: tuple[float, float, float],
) -> None:
    """Paint an object of another colour and shape overlapping the crop's object, moved away
    until at most half of that object is hidden."""
    size = image.shape[0]
    pool = [c for c in combos_for_split(split) if c[0] != combo[0] and c[1] != combo[1]]
    colour, shape = pool[int(rng.integers(len(pool)))]
    cx, cy, r = circle
    target = np.zeros((size, size), dtype=bool)
    y0, x0, inside, _, _ = hit
    target[y0 : y0 + inside.shape[0], x0 : x0 + inside.shape[1]] = inside
    r_occ, theta = r * rng.uniform(0.5, 1.0), rng.uniform(0, 2 * np.pi)
    angle = rng.uniform(0, 2 * np.pi)
    distance = 0.8 * BOUND[combo[1]] * r + 0.4 * BOUND[shape] * r_occ
    while True:
        ox, oy = cx + distance * np.cos(angle), cy + distance * np.sin(angle)
        occ = rasterise(shape, ox, oy, r_occ, theta, size, size)
        if occ is None:
            return
        y0, x0, inside, _, _ = occ
        hidden = target[y0 : y0 + inside.shape[0], x0 : x0 + inside.shape[1]] & inside
        if np.count_nonzero(hidden) <= 0.5 * np.count_nonzero(target):
            break
        distance *= 1.2
    paint_object(image, None, 0, sample_appearance(rng, colour, 0.15), occ, r_occ, theta)
