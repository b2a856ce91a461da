"""Backgrounds of the synthetic world: plain colour, procedural clutter, or crops of real
images shipped inside installed packages (matplotlib's and scikit-image's sample data).
Clutter is muted so that objects stand out by colour; photos are used as they are.

Photos come in disjoint sets so that a world can be judged on backgrounds its training never
saw: ``PHOTO_SETS["train"]`` for training and the own val/test splits, ``["held_out"]`` only
for the held-out world, ``["classic"]`` the three images of the first worlds.
"""

from __future__ import annotations

import gzip
from functools import cache
from pathlib import Path

import numpy as np
from matplotlib import cbook, colormaps
from matplotlib.colors import LightSource, hsv_to_rgb
from PIL import Image, ImageDraw

#: Real images by set. Plain names are matplotlib sample files; ``skimage:NAME`` are
#: ``skimage.data`` images bundled with scikit-image (no download).
PHOTO_SETS: dict[str, tuple[str, ...]] = {
    "classic": ("grace_hopper.jpg", "jacksboro_fault_dem.npz", "s1045.ima.gz"),
    "train": (
        "grace_hopper.jpg",
        "jacksboro_fault_dem.npz",
        "s1045.ima.gz",
        "skimage:astronaut",
        "skimage:coffee",
        "skimage:chelsea",
        "skimage:motorcycle",
        "skimage:immunohistochemistry",
        "skimage:brick",
        "skimage:grass",
        "skimage:camera",
        "skimage:coins",
    ),
    "held_out": (
        "skimage:rocket",
        "skimage:retina",
        "skimage:hubble_deep_field",
        "skimage:gravel",
        "skimage:moon",
        "skimage:page",
        "skimage:colorwheel",
    ),
}
PHOTO_SOURCES = tuple(dict.fromkeys(name for names in PHOTO_SETS.values() for name in names))
#: Probabilities of plain / procedural / photo backgrounds when ``background="mixed"``.
MIXED_WEIGHTS = (0.15, 0.45, 0.40)
MAX_BACKGROUND_SATURATION = 0.45


def background(
    kind: str,
    rng: np.random.Generator,
    height: int,
    width: int,
    unit: float,
    photos: str = "classic",
) -> np.ndarray:
    """uint8 [height, width, 3] background of the given kind; its clutter is muted
    (saturation <= MAX_BACKGROUND_SATURATION) so objects stand out by colour, not by shape.
    ``photos`` names the ``PHOTO_SETS`` entry that photo backgrounds are drawn from."""
    if kind == "plain":
        colour = _muted_colours(rng, 1)[0]
        return np.broadcast_to(colour, (height, width, 3)).copy()
    if kind == "procedural":
        return _procedural(rng, height, width, unit)
    if kind == "photo":
        if photos not in PHOTO_SETS:
            raise ValueError(f"unknown photo set {photos!r}; expected one of {sorted(PHOTO_SETS)}")
        return _photo_crop(rng, height, width, PHOTO_SETS[photos])
    raise ValueError(f"unknown background kind {kind!r}; expected plain, procedural or photo")


def _muted_colours(rng: np.random.Generator, n: int) -> np.ndarray:
    """uint8 [n, 3] colours of any hue, low saturation, any brightness."""
    hsv = np.stack(
        [rng.random(n), rng.uniform(0, MAX_BACKGROUND_SATURATION, n), rng.uniform(0.15, 0.9, n)], -1
    )
    return (hsv_to_rgb(hsv) * 255).astype(np.uint8)


def _procedural(rng: np.random.Generator, height: int, width: int, unit: float) -> np.ndarray:
    """Smooth colour noise, then maybe stripes, blobs and grain."""
    gh, gw = rng.integers(2, 7, 2)
    coarse = _muted_colours(rng, gh * gw).reshape(gh, gw, 3)
    image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    if rng.random() < 0.7:  # blobs: ellipses, boxes and irregular polygons
        draw = ImageDraw.Draw(image)
        count = int(rng.integers(4, 16) * height * width / unit**2)
        for colour in _muted_colours(rng, count):
            cx, cy = rng.uniform(0, width), rng.uniform(0, height)
            rx, ry = rng.uniform(0.02, 0.15, 2) * unit
            fill = tuple(int(c) for c in colour)
            kind = rng.integers(3)
            if kind == 0:
                draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=fill)
            elif kind == 1:
                draw.rectangle((cx - rx, cy - ry, cx + rx, cy + ry), fill=fill)
            else:
                angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(4, 9))))
                radius = rng.uniform(0.4, 1.0, len(angles)) * rx
                draw.polygon(
                    [
                        (cx + q * np.cos(a), cy + q * np.sin(a))
                        for q, a in zip(radius, angles, strict=True)
                    ],
                    fill=fill,
                )
    pixels = np.asarray(image, dtype=np.float32)
    if rng.random() < 0.5:  # stripes: a wave along a random direction (separable sin/cos)
        period = rng.uniform(0.03, 0.2) * unit
        angle = rng.uniform(0, np.pi)
        fx, fy = 2 * np.pi * np.cos(angle) / period, 2 * np.pi * np.sin(angle) / period
        x, y = np.arange(width, dtype=np.float32) * fx, np.arange(height, dtype=np.float32) * fy
        wave = np.sin(y)[:, None] * np.cos(x)[None, :] + np.cos(y)[:, None] * np.sin(x)[None, :]
        alpha = rng.uniform(0.2, 0.5) * (0.5 + 0.5 * wave)[..., None]
        pixels = pixels * (1 - alpha) + _muted_colours(rng, 1)[0].astype(np.float32) * alpha
    if rng.random() < 0.5:  # grain, in 2x2 blocks
        grain = rng.integers(-12, 13, ((height + 1) // 2, (width + 1) // 2), dtype=np.int16)
        pixels = pixels + np.repeat(np.repeat(grain, 2, 0), 2, 1)[:height, :width, None]
    return np.clip(pixels, 0, 255).astype(np.uint8)


@cache
def photo_image(name: str) -> Image.Image:
    """A PHOTO_SOURCES image as an RGB PIL image (loaded once)."""
    if name.startswith("skimage:"):
        return _skimage_image(name.removeprefix("skimage:"))
    path = cbook.get_sample_data(name, asfileobj=False)
    if not Path(path).is_file():
        raise FileNotFoundError(f"matplotlib sample data {name!r} is missing (looked at {path})")
    if name.endswith(".jpg"):
        return Image.open(path).convert("RGB")
    if name == "jacksboro_fault_dem.npz":  # shaded relief, half desaturated
        elevation = np.load(path)["elevation"].astype(np.float64)
        shaded = LightSource(azdeg=315, altdeg=45).shade(
            elevation,
            cmap=colormaps["gist_earth"],
            blend_mode="overlay",
            vert_exag=0.05,
            dx=10,
            dy=10,
        )[..., :3]
        grey = shaded.mean(axis=-1, keepdims=True)
        return Image.fromarray((255 * (0.5 * shaded + 0.5 * grey)).astype(np.uint8))
    if name == "s1045.ima.gz":  # 256x256 16-bit MRI slice
        with gzip.open(path) as f:
            scan = np.frombuffer(f.read(), dtype=np.uint16).reshape(256, 256).astype(np.float64)
        grey = np.clip(scan / np.percentile(scan, 99.5), 0, 1) * 255
        return Image.fromarray(np.repeat(grey[..., None], 3, -1).astype(np.uint8))
    raise ValueError(f"{name!r} is not one of PHOTO_SOURCES {PHOTO_SOURCES}")


def _photo_crop(
    rng: np.random.Generator, height: int, width: int, names: tuple[str, ...]
) -> np.ndarray:
    """A random crop (40-100 % of the largest one with this aspect) of a random real image,
    resized to [height, width], maybe mirrored."""
    source = photo_image(names[int(rng.integers(len(names)))])
    sw, sh = source.size
    aspect = width / height
    crop_h = min(sh, sw / aspect) * rng.uniform(0.4, 1.0)
    crop_w = crop_h * aspect
    x0, y0 = rng.uniform(0, sw - crop_w), rng.uniform(0, sh - crop_h)
    image = source.resize(
        (width, height), Image.Resampling.BILINEAR, box=(x0, y0, x0 + crop_w, y0 + crop_h)
    )
    if rng.random() < 0.5:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return np.asarray(image).copy()


def _skimage_image(name: str) -> Image.Image:
    """A scikit-image sample image (bundled with the package) as RGB."""
    from skimage import data

    if name == "motorcycle":
        pixels = data.stereo_motorcycle()[0]
    else:
        pixels = getattr(data, name)()
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, -1)
    return Image.fromarray(pixels[..., :3].astype(np.uint8))
