"""What a real camera adds after the scene is painted: zoom and roll, lighting that drifts,
blur, sensor noise and JPEG artefacts.

A tracker trained on clean, steady frames learns shortcuts (exact colours, pixel-sharp edges,
a fixed scale) that real video does not keep. These effects are sampled once per video
(:func:`sample_effects`, from a stream of its own so that worlds without them render exactly
as before) and applied to the painted frames; the camera warp moves the masks with the pixels.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter


@dataclass(frozen=True, eq=False)
class Effects:
    """Per-video camera and sensor effects (identity when every field is at its default)."""

    zoom: np.ndarray  # float [T] >= 1: magnification about the frame centre
    roll: np.ndarray  # float [T] degrees, camera rotation about the frame centre
    gains: np.ndarray  # float [T, 3] per-frame, per-channel brightness gains (lighting drift)
    blur: float = 0.0  # Gaussian sigma in pixels
    noise: float = 0.0  # sensor noise std, in 0..255 units
    jpeg_quality: int = 0  # 0: no JPEG round trip
    seed: int = 0  # of the sensor noise

    @property
    def warps(self) -> bool:
        return bool(np.any(self.zoom != 1.0) or np.any(self.roll != 0.0))


def sample_effects(
    rng: np.random.Generator,
    num_frames: int,
    max_zoom: float,
    max_roll: float,
    lighting_drift: float,
    blur: float,
    noise: float,
    jpeg_quality: int,
) -> Effects:
    """Draw one video's effects. Zoom and roll follow smooth ramps from the identity on frame 0
    (a camera zooming or tilting over the clip), lighting a slow sinusoidal drift per channel; blur, noise and JPEG
    quality are fixed for the video, each drawn up to its maximum (``jpeg_quality`` is the
    lowest quality, 0 = off)."""
    t = np.linspace(0.0, 1.0, num_frames)
    ease = t * t * (3 - 2 * t)
    zoom = np.ones(num_frames)  # both ramps start at the identity: frame 0 is as painted,
    if max_zoom > 1.0:  # so every target stays visible there (a first-frame prompt exists)
        zoom = 1.0 + (rng.uniform(1.0, max_zoom) - 1.0) * ease
    roll = np.zeros(num_frames)
    if max_roll > 0:
        roll = rng.uniform(-max_roll, max_roll) * ease
    gains = np.ones((num_frames, 3))
    if lighting_drift > 0:
        amplitude = rng.uniform(0, lighting_drift)
        period = rng.uniform(0.5, 2.0) * num_frames
        phase = rng.uniform(0, 2 * np.pi)
        tint = 1 + rng.uniform(-0.3, 0.3, 3)  # the drift is not perfectly grey
        wave = np.sin(2 * np.pi * np.arange(num_frames) / period + phase)
        gains = 1 + amplitude * wave[:, None] * tint[None, :]
    return Effects(
        zoom=zoom,
        roll=roll,
        gains=gains,
        blur=float(rng.uniform(0, blur)) if blur > 0 else 0.0,
        noise=float(rng.uniform(0, noise)) if noise > 0 else 0.0,
        jpeg_quality=int(rng.integers(jpeg_quality, 96)) if jpeg_quality > 0 else 0,
        seed=int(rng.integers(2**63)),
    )


def cover_zoom(roll_degrees: float, height: int, width: int) -> float:
    """The least magnification at which a frame rolled by ``roll_degrees`` still fills the
    frame (no empty corners): ``cos a + (long side / short side) * sin a``."""
    a = np.deg2rad(abs(roll_degrees))
    return float(np.cos(a) + max(height, width) / min(height, width) * np.sin(a))


def _affine(zoom: float, roll: float, height: int, width: int) -> tuple[float, ...]:
    """PIL's inverse affine map (output -> source pixel) for a zoom and roll about the centre."""
    a = np.deg2rad(roll)
    cx, cy = width / 2, height / 2
    cos, sin = np.cos(a) / zoom, np.sin(a) / zoom
    return (cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy)


def apply_effects(frames: np.ndarray, masks: np.ndarray, effects: Effects) -> None:
    """Apply ``effects`` in place to uint8 frames ``[T, H, W, 3]`` and label masks
    ``[T, H, W]`` (the masks only follow the camera warp; nearest-neighbour keeps labels).
    Order: camera warp, blur, lighting gain, sensor noise, JPEG."""
    n, h, w = masks.shape
    for t in range(n):
        image = Image.fromarray(frames[t])
        if effects.warps:
            zoom = max(float(effects.zoom[t]), cover_zoom(effects.roll[t], h, w))
            coeffs = _affine(zoom, float(effects.roll[t]), h, w)
            image = image.transform(
                (w, h), Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR
            )
            masks[t] = np.asarray(
                Image.fromarray(masks[t]).transform(
                    (w, h), Image.Transform.AFFINE, coeffs, Image.Resampling.NEAREST
                )
            )
        if effects.blur > 0:
            image = image.filter(ImageFilter.GaussianBlur(effects.blur))
        frames[t] = np.asarray(image)
    if np.any(effects.gains != 1.0) or effects.noise > 0:
        pixels = frames.astype(np.float32) * effects.gains[:, None, None, :].astype(np.float32)
        if effects.noise > 0:
            rng = np.random.default_rng(effects.seed)
            pixels += np.float32(effects.noise) * rng.standard_normal(pixels.shape, np.float32)
        np.clip(pixels, 0, 255, out=pixels)
        frames[:] = pixels.astype(np.uint8)
    if effects.jpeg_quality > 0:
        for t in range(n):
            buffer = io.BytesIO()
            Image.fromarray(frames[t]).save(buffer, format="JPEG", quality=effects.jpeg_quality)
            frames[t] = np.asarray(Image.open(buffer).convert("RGB"))
