"""How one object looks and is drawn: shape geometry, colours and textures, rasterisation.

Shapes are sized by a radius ``r``; each shape's geometry constants are chosen so that all
shapes cover a similar area (~2.4-3.1 r^2). Colours: the hue of the colour word jittered by at
most ``HUE_JITTER`` degrees, saturation and value in [``MIN_SV``, 1]; texture modulates the
value only and stays within [``MIN_SV``, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.colors import hsv_to_rgb

from fsam2lib.text.vocab import COLOURS

TEXTURES = ("flat", "stripes", "shade", "mottled")
HUE_JITTER = 5.0
MIN_SV = 0.6

# Shape geometry in units of r, chosen so that all shapes cover a similar area (~2.4-3.1 r^2).
SQUARE_HALF_SIDE = 0.88
TRIANGLE_CIRCUMRADIUS = 1.45
STAR_OUTER_RADIUS = 1.45
HEXAGON_CIRCUMRADIUS = 1.1
CROSS_ARM, CROSS_HALF_WIDTH = 1.15, 0.38
#: Radius of the circle around each shape's centre that holds it, in units of r.
BOUND = {
    "circle": 1.0,
    "square": SQUARE_HALF_SIDE * np.sqrt(2.0),
    "triangle": TRIANGLE_CIRCUMRADIUS,
    "star": STAR_OUTER_RADIUS,
    "hexagon": HEXAGON_CIRCUMRADIUS,
    "cross": float(np.hypot(CROSS_ARM, CROSS_HALF_WIDTH)),
}


@dataclass(frozen=True, eq=False)
class Appearance:
    """How an object is painted: base colour and a texture in the object's own frame."""

    hue: float  # degrees
    saturation: float
    value: float
    texture: str  # one of TEXTURES
    amplitude: float  # value modulation, fraction of ``value``
    frequency: float  # stripes per object radius
    phase: float
    tile: np.ndarray  # float32 [8, 8] in [-1, 1], the "mottled" pattern
    rgb: np.ndarray  # float32 [3] in [0, 1]: hue and saturation at value 1 (pixel = rgb * value)


def sample_appearance(rng: np.random.Generator, colour: str, texture: float) -> Appearance:
    hue = float((COLOURS[colour] + rng.uniform(-HUE_JITTER, HUE_JITTER)) % 360.0)
    saturation = float(rng.uniform(MIN_SV, 1.0))
    return Appearance(
        hue=hue,
        saturation=saturation,
        value=float(rng.uniform(MIN_SV, 1.0)),
        texture=str(rng.choice(TEXTURES)) if texture > 0 else "flat",
        amplitude=float(rng.uniform(0.5, 1.0) * texture),
        frequency=float(rng.uniform(1.0, 2.5)),
        phase=float(rng.uniform(0, 2 * np.pi)),
        tile=rng.uniform(-1, 1, (8, 8)).astype(np.float32),
        rgb=hsv_to_rgb([hue / 360.0, saturation, 1.0]).astype(np.float32),
    )


def _projection(x: np.ndarray, y: np.ndarray, angle: float) -> np.ndarray:
    """Coordinate along direction ``angle`` of the grid x [1, w] by y [h, 1]: [h, w]."""
    return x * np.float32(np.cos(angle)) + y * np.float32(np.sin(angle))


def inside_shape(shape: str, x: np.ndarray, y: np.ndarray, r: float, theta: float) -> np.ndarray:
    """bool [h, w]: pixel centres (offsets x [1, w], y [h, 1] from the centre) inside the shape
    of radius ``r`` turned by ``theta``. Polygons are intersections of half-planes."""
    if shape == "circle":
        return x * x + y * y <= r * r
    if shape == "square":
        half = SQUARE_HALF_SIDE * r
        return (np.abs(_projection(x, y, theta)) <= half) & (
            np.abs(_projection(x, y, theta + np.pi / 2)) <= half
        )
    if shape == "triangle":  # edge normals 120 degrees apart, inradius = circumradius / 2
        limit = TRIANGLE_CIRCUMRADIUS * r / 2
        inside = _projection(x, y, theta + np.pi / 2) <= limit
        for k in (1, 2):
            inside &= _projection(x, y, theta + np.pi / 2 + k * 2 * np.pi / 3) <= limit
        return inside
    if shape == "star":
        # A pentagram's edges lie on five lines, one facing each tip at distance R cos 72deg;
        # its points cross at most one of them (the one facing their tip).
        limit = STAR_OUTER_RADIUS * r * np.cos(2 * np.pi / 5)
        crossed = sum(
            (_projection(x, y, theta - np.pi / 2 + k * 2 * np.pi / 5) > limit).astype(np.uint8)
            for k in range(5)
        )
        return crossed <= 1
    if shape == "hexagon":
        limit = HEXAGON_CIRCUMRADIUS * r * np.cos(np.pi / 6)
        inside = np.abs(_projection(x, y, theta)) <= limit
        for k in (1, 2):
            inside &= np.abs(_projection(x, y, theta + k * np.pi / 3)) <= limit
        return inside
    if shape == "cross":
        u = np.abs(_projection(x, y, theta))
        v = np.abs(_projection(x, y, theta + np.pi / 2))
        arm, half = CROSS_ARM * r, CROSS_HALF_WIDTH * r
        return ((u <= arm) & (v <= half)) | ((u <= half) & (v <= arm))
    raise ValueError(f"unknown shape {shape!r}")


def rasterise(
    shape: str, cx: float, cy: float, r: float, theta: float, height: int, width: int
) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray] | None:
    """The shape's pixels within its clipped bounding box: (y0, x0, inside, x, y), or None
    when it is wholly outside the frame. x [1, w] and y [h, 1] are offsets from the centre."""
    b = r * BOUND[shape]
    x0, x1 = max(int(np.floor(cx - b)), 0), min(int(np.ceil(cx + b)) + 1, width)
    y0, y1 = max(int(np.floor(cy - b)), 0), min(int(np.ceil(cy + b)) + 1, height)
    if x0 >= x1 or y0 >= y1:
        return None
    x = (np.arange(x0, x1, dtype=np.float32) + np.float32(0.5 - cx))[None, :]
    y = (np.arange(y0, y1, dtype=np.float32) + np.float32(0.5 - cy))[:, None]
    return y0, x0, inside_shape(shape, x, y, r, theta), x, y


def _pixel_values(
    app: Appearance, x: np.ndarray, y: np.ndarray, r: float, theta: float
) -> np.ndarray | float:
    """HSV value per pixel: the object's value modulated by its texture, kept in [0.6, 1]."""
    if app.texture == "flat" or app.amplitude == 0:
        return app.value
    u = _projection(x, y, theta) / np.float32(r)
    if app.texture == "stripes":
        pattern = np.sin(np.float32(np.pi * app.frequency) * u + np.float32(app.phase))
    elif app.texture == "shade":
        pattern = np.clip(u / np.float32(1.2), -1, 1)
    else:  # mottled: an 8x8 random tile stretched over the object, turning with it
        v = _projection(x, y, theta + np.pi / 2) / np.float32(r)
        i = np.clip(((u + 1.5) * (8 / 3)).astype(np.int64), 0, 7)
        j = np.clip(((v + 1.5) * (8 / 3)).astype(np.int64), 0, 7)
        pattern = app.tile[j, i]
    return np.clip(app.value * (1 + np.float32(app.amplitude) * pattern), MIN_SV, 1.0)


def paint_object(
    image: np.ndarray,
    mask: np.ndarray | None,
    obj_id: int,
    app: Appearance,
    hit: tuple[int, int, np.ndarray, np.ndarray, np.ndarray],
    r: float,
    theta: float,
) -> int:
    """Paint a rasterised object over ``image`` (and ``obj_id`` into ``mask``); its pixel count."""
    y0, x0, inside, x, y = hit
    h, w = inside.shape
    values = _pixel_values(app, x, y, r, theta)
    if np.ndim(values) == 0:
        colours = (app.rgb * (255 * values)).astype(np.uint8)
    else:
        colours = (values[inside][:, None] * (255 * app.rgb)).astype(np.uint8)
    image[y0 : y0 + h, x0 : x0 + w][inside] = colours
    if mask is not None:
        mask[y0 : y0 + h, x0 : x0 + w][inside] = obj_id
    return int(np.count_nonzero(inside))
