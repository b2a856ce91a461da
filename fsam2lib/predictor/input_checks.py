"""Checks of what a user hands the predictor, run before any inference state changes.

Stock SAM2 accepts NaN clicks, clicks far outside the image and masks of any shape (it
resizes them), and answers a missing folder with "Only MP4 video and JPEG folder are
supported" and a frame past the end with a bare IndexError. Each check here raises a
``ValueError`` (``TypeError`` for a wrong kind of value, ``FileNotFoundError`` for a missing
path) that names the argument, what it got and the valid range.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fsam2lib.videos.streaming import JPEG_SUFFIXES

VIDEO_SUFFIXES = (".mp4", ".MP4")
POINT_LABELS = (-1, 0, 1, 2, 3)  # padding, negative, positive, box corners (sam2's codes)


def check_video_path(video_path: object) -> None:
    """A JPEG folder sam2 can read (frames named ``<integer>.jpg``, the first one readable)
    or an existing ``.mp4`` file."""
    if not isinstance(video_path, (str, os.PathLike)):
        raise TypeError(
            f"video_path must be a JPEG folder or an .mp4 path, got {type(video_path).__name__}"
        )
    path = Path(video_path)
    if not path.exists():
        raise FileNotFoundError(f"video_path {str(path)!r} does not exist")
    if path.is_file():
        if path.suffix not in VIDEO_SUFFIXES:
            raise ValueError(
                f"video_path {str(path)!r} is a {path.suffix or 'suffix-less'} file; expected a "
                "folder of JPEG frames or an .mp4 video"
            )
        if path.stat().st_size == 0:
            raise ValueError(f"video_path {str(path)!r} is an empty file")
        return
    frames = [p for p in path.iterdir() if p.suffix in JPEG_SUFFIXES]
    if not frames:
        raise ValueError(
            f"video_path {str(path)!r} holds no JPEG frames (sam2 reads <index>.jpg files)"
        )
    bad = [p.name for p in frames if not p.stem.isdigit()]
    if bad:
        raise ValueError(
            f"video_path {str(path)!r}: frame names must be integers such as 00000.jpg "
            f"(sam2 orders frames by them); got {sorted(bad)[:3]}"
        )
    first = min(frames, key=lambda p: int(p.stem))
    try:
        with Image.open(first) as image:
            image.verify()
    except Exception as error:  # PIL raises several kinds for unreadable images
        raise ValueError(
            f"video_path {str(path)!r}: frame {first.name} is unreadable ({error})"
        ) from error


def check_frame_idx(state: dict, frame_idx: object) -> int:
    """An integer frame index of the video in ``state``."""
    if isinstance(frame_idx, bool) or not isinstance(frame_idx, (int, np.integer)):
        raise TypeError(f"frame_idx must be an int, got {frame_idx!r}")
    n = state["num_frames"]
    if not 0 <= frame_idx < n:
        raise ValueError(f"frame_idx={frame_idx} is outside the video's frames 0..{n - 1}")
    return int(frame_idx)


def check_every_object_prompted(state: dict) -> None:
    """Before a propagation: every object has a prompt. SAM2 checks this too, but only after
    it has started moving prompts into the tracking memory, so a refusal there leaves the
    state half changed (seen with an object that ``clear_all_prompts_in_frame`` left without
    any prompt). The messages are SAM2's own."""
    if not state["obj_ids"]:
        raise RuntimeError(
            "No input points or masks are provided for any object; please add inputs first."
        )
    outputs = (state["output_dict_per_obj"], state["temp_output_dict_per_obj"])
    for obj_idx, obj_id in state["obj_idx_to_id"].items():
        if not any(per_obj[obj_idx]["cond_frame_outputs"] for per_obj in outputs):
            raise RuntimeError(
                f"No input points or masks are provided for object id {obj_id}; please add "
                "inputs first."
            )


def check_obj_id(obj_id: object) -> None:
    """An object id as sam2 keys them: an int (or a string), never a bool or None."""
    if isinstance(obj_id, bool) or not isinstance(obj_id, (int, np.integer, str)):
        raise TypeError(f"obj_id must be an int (or a str), got {obj_id!r}")


def _as_array(value: object, name: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be numeric, got {value!r}") from error
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite values: {array.tolist()}")
    return array


def _check_inside(xy: np.ndarray, name: str, width: float, height: float, unit: str) -> None:
    outside = (xy[:, 0] < 0) | (xy[:, 0] > width) | (xy[:, 1] < 0) | (xy[:, 1] > height)
    if outside.any():
        raise ValueError(
            f"{name} {xy[outside].tolist()} lie outside the image: x must be in [0, {width:g}] "
            f"and y in [0, {height:g}] ({unit})"
        )


def check_points_and_box(
    state: dict, points: object, labels: object, box: object, normalize_coords: bool
) -> None:
    """Clicks ``[N, 2]`` (x, y) with labels ``[N]``, and/or a box (x1, y1, x2, y2), inside the
    image: video pixels when ``normalize_coords`` (sam2's default), else [0, 1]."""
    if points is None and box is None:
        raise ValueError("give points (with labels) or a box")
    if (points is None) != (labels is None):
        raise ValueError("points and labels must be given together")
    width, height = (state["video_width"], state["video_height"]) if normalize_coords else (1, 1)
    unit = "video pixels" if normalize_coords else "normalised coordinates"
    if points is not None:
        xy = _as_array(points, "points")
        if xy.ndim == 3 and len(xy) == 1:  # sam2 also takes a batch of one: [1, N, 2]
            xy = xy[0]
        if xy.ndim != 2 or xy.shape[-1] != 2 or len(xy) == 0:
            raise ValueError(f"points must be a non-empty [N, 2] array of (x, y), got {xy.shape}")
        lab = _as_array(labels, "labels")
        if lab.ndim == 2 and len(lab) == 1:  # [1, N]
            lab = lab[0]
        if lab.shape != (len(xy),):
            raise ValueError(f"labels must be [N] = [{len(xy)}] to match points, got {lab.shape}")
        if not np.isin(lab, POINT_LABELS).all():
            raise ValueError(f"labels must be in {POINT_LABELS}, got {lab.tolist()}")
        _check_inside(xy, "points", width, height, unit)
    if box is not None:
        corners = _as_array(box, "box").reshape(-1)
        if corners.shape != (4,):
            raise ValueError(f"box must be (x1, y1, x2, y2), got {corners.shape[0]} values")
        if not (corners[0] < corners[2] and corners[1] < corners[3]):
            raise ValueError(f"box must have x1 < x2 and y1 < y2, got {corners.tolist()}")
        _check_inside(corners.reshape(2, 2), "box corners", width, height, unit)


def check_mask(state: dict, mask: object) -> None:
    """A 2-D mask of the video's size (H, W) with at least one pixel set."""
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    size = (state["video_height"], state["video_width"])
    if mask.ndim != 2 or mask.shape != size:
        raise ValueError(f"mask must be 2-D of the video's size {size} (H, W), got {mask.shape}")
    if mask.dtype != bool and not np.isin(mask, (0, 1)).all():
        raise ValueError("mask must be boolean (or 0/1); for logits threshold them first")
    if not mask.any():
        raise ValueError("mask is empty: prompt an object with at least one pixel")
