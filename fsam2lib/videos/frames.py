"""Feeding in-memory videos (numpy frames) to SAM2, exactly as sam2 preprocesses JPEG folders.

sam2's ``init_state`` only reads folders of JPEG files, which are lossy and slow to write.
``init_state_from_frames`` runs the predictor's own ``init_state`` with sam2's frame loader
swapped, for that one call, for a loader that returns our frames preprocessed the same way
(square resize with PIL's default filter, /255, ImageNet mean/std).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from PIL import Image

IMG_MEAN = (0.485, 0.456, 0.406)
IMG_STD = (0.229, 0.224, 0.225)
#: The ``video_path`` that ``init_state_from_frames`` hands ``init_state`` (no file behind it).
IN_MEMORY_VIDEO = "<in-memory frames>"


def to_model_input(frames: np.ndarray, image_size: int) -> torch.Tensor:
    """uint8 ``[T, H, W, 3]`` frames -> normalised float32 ``[T, 3, S, S]`` as sam2 loads them."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [T,H,W,3], got {frames.dtype} {frames.shape}")
    if frames.shape[1:3] != (image_size, image_size):
        frames = np.stack(
            [np.array(Image.fromarray(f).resize((image_size, image_size))) for f in frames]
        )
    images = torch.from_numpy(frames / 255.0).permute(0, 3, 1, 2).float()
    mean = torch.tensor(IMG_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(IMG_STD, dtype=torch.float32)[:, None, None]
    return (images - mean) / std


@contextmanager
def _frames_as_video(frames: np.ndarray, device: torch.device):
    height, width = frames.shape[1:3]

    def load(video_path, image_size, offload_video_to_cpu=False, compute_device=None, **_):
        images = to_model_input(frames, image_size)
        if not offload_video_to_cpu:
            images = images.to(compute_device or device)
        return images, height, width

    with mock.patch("sam2.sam2_video_predictor.load_video_frames", load):
        yield


def init_state_from_frames(predictor, frames: np.ndarray, **kwargs) -> dict:
    """``predictor.init_state`` for uint8 ``[T, H, W, 3]`` frames held in memory."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty uint8 [T,H,W,3] array, got {frames.shape}")
    with _frames_as_video(frames, predictor.device):
        return predictor.init_state(video_path=IN_MEMORY_VIDEO, **kwargs)


def read_video_file(path: str | Path) -> np.ndarray:
    """Every frame of a video file (e.g. MP4) as uint8 RGB ``[T, H, W, 3]``, decoded with
    OpenCV (sam2's own MP4 path needs ``decord``, which has no wheels for this Python)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(
            f"video file {str(path)!r} cannot be opened (not a video, or a codec OpenCV lacks)"
        )
    frames = []
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise ValueError(f"video file {str(path)!r} holds no decodable frames")
    return np.stack(frames)


def write_video_file(path: str | Path, frames: np.ndarray, fps: float = 24.0) -> Path:
    """Write uint8 RGB ``[T, H, W, 3]`` frames as an MP4 (``mp4v``; lossy, like any MP4)."""
    import cv2

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(f"frames must be a non-empty uint8 [T,H,W,3] array, got {frames.shape}")
    path = Path(path)
    height, width = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path
