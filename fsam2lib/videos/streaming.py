"""Frames decoded as they are needed: :class:`StreamedFrames` stands in for the ``[T, 3, S, S]``
tensor sam2's ``init_state`` builds (it only indexes it by frame and takes its length), so a
long video no longer sits in memory as float32 from the first call on.

The preprocessing is sam2's own, bit for bit: a JPEG goes through
``sam2.utils.misc._load_img_as_tensor`` and is normalised in float32 exactly as the eager
folder loader does; an MP4 frame is decoded with OpenCV and preprocessed by
:func:`~fsam2lib.videos.frames.to_model_input`, as the predictor's eager MP4 path does.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from fsam2lib.videos.frames import IMG_MEAN, IMG_STD, to_model_input

JPEG_SUFFIXES = (".jpg", ".jpeg", ".JPG", ".JPEG")  # what sam2's folder loader reads

#: Decoded frames held besides the prefetched ones: the frame in flight (a frame read again
#: later, e.g. to describe a prompted object, is decoded again: same bits).
IN_FLIGHT = 1


class StreamedFrames:
    """A video's frames, decoded on first access and forgotten once out of a small cache.

    decode: frame index -> normalised float32 ``[3, S, S]`` tensor. The cache holds the
    latest ``IN_FLIGHT`` frames read plus up to ``prefetch`` frames decoded ahead in the
    direction of reading (on a background thread). ``decoded`` counts decodes, for tests.
    """

    def __init__(
        self,
        decode: Callable[[int], Tensor],
        num_frames: int,
        device: torch.device | str = "cpu",
        prefetch: int = 1,
    ) -> None:
        if num_frames < 1:
            raise ValueError(f"a video needs at least one frame, got {num_frames}")
        self._decode, self.num_frames, self.device = decode, num_frames, torch.device(device)
        self.prefetch = prefetch
        self.decoded = 0
        self._cache: OrderedDict[int, Tensor] = OrderedDict()
        self._ahead: dict[int, Future] = {}
        self._last: int | None = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1) if prefetch else None

    def __len__(self) -> int:
        return self.num_frames

    def held_tensors(self) -> list[Tensor]:
        """The decoded frames held right now (for memory accounting)."""
        return list(self._cache.values())

    def _load(self, index: int) -> Tensor:
        image = self._decode(index).to(self.device)
        with self._lock:
            self.decoded += 1
        return image

    def __getitem__(self, index: int) -> Tensor:
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"frames are indexed by an integer, got {type(index).__name__}")
        index = int(index)
        if not 0 <= index < self.num_frames:
            raise IndexError(f"frame {index} outside the video's {self.num_frames} frames")
        if index in self._cache:
            self._cache.move_to_end(index)
            image = self._cache[index]
        else:
            future = self._ahead.pop(index, None)
            image = future.result() if future is not None else self._load(index)
            self._cache[index] = image
        step = 1 if self._last is None or index >= self._last else -1
        self._last = index
        self._forget()
        self._read_ahead(index, step)
        return image

    def _forget(self) -> None:
        while len(self._cache) > IN_FLIGHT:
            self._cache.popitem(last=False)

    def _read_ahead(self, index: int, step: int) -> None:
        if self._pool is None:
            return
        wanted = {index + step * k for k in range(1, self.prefetch + 1)}
        wanted = {t for t in wanted if 0 <= t < self.num_frames and t not in self._cache}
        for t in list(self._ahead):
            if t not in wanted:
                self._ahead.pop(t).cancel()
        for t in sorted(wanted - set(self._ahead)):
            self._ahead[t] = self._pool.submit(self._load, t)

    def close(self) -> None:
        """Stop the prefetch thread (also done when the object is collected)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __del__(self) -> None:
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


def jpeg_frame_paths(folder: str | Path) -> list[str]:
    """The frames of a JPEG folder in sam2's order (integer file stems)."""
    names = [p for p in os.listdir(folder) if os.path.splitext(p)[-1] in JPEG_SUFFIXES]
    names.sort(key=lambda p: int(os.path.splitext(p)[0]))
    return [os.path.join(folder, name) for name in names]


def stream_jpeg_folder(
    folder: str | Path, image_size: int, device: torch.device | str, prefetch: int = 1
) -> tuple[StreamedFrames, int, int]:
    """``(frames, video_height, video_width)`` of a JPEG folder, as sam2's loader returns them."""
    from sam2.utils.misc import _load_img_as_tensor

    paths = jpeg_frame_paths(folder)
    if not paths:
        raise ValueError(f"no JPEG frames in {str(folder)!r}")
    mean = torch.tensor(IMG_MEAN, dtype=torch.float32)[:, None, None]
    std = torch.tensor(IMG_STD, dtype=torch.float32)[:, None, None]

    def decode(index: int) -> Tensor:
        image = _load_img_as_tensor(paths[index], image_size)[0].float()
        image -= mean
        image /= std
        return image

    _, height, width = _load_img_as_tensor(paths[0], image_size)
    return StreamedFrames(decode, len(paths), device, prefetch), height, width


class _VideoFileReader:
    """Sequential OpenCV decoding with seeking only when access is not in order."""

    def __init__(self, path: str) -> None:
        import cv2

        self._cv2, self.path = cv2, path
        self._capture = cv2.VideoCapture(path)
        self._next = 0
        self._lock = threading.Lock()
        if not self._capture.isOpened():
            raise ValueError(
                f"video file {path!r} cannot be opened (not a video, or a codec OpenCV lacks)"
            )

    def count(self) -> tuple[int, int, int]:
        """``(frames, height, width)``, by decoding the file once (container counts can lie)."""
        with self._lock:
            frames, shape = 0, None
            self._capture.set(self._cv2.CAP_PROP_POS_FRAMES, 0)
            while True:
                ok, bgr = self._capture.read()
                if not ok:
                    break
                shape = shape or bgr.shape[:2]
                frames += 1
            self._capture.set(self._cv2.CAP_PROP_POS_FRAMES, 0)
            self._next = 0
        if not frames:
            raise ValueError(f"video file {self.path!r} holds no decodable frames")
        return frames, shape[0], shape[1]

    def read(self, index: int) -> np.ndarray:
        with self._lock:
            if index != self._next:
                self._capture.set(self._cv2.CAP_PROP_POS_FRAMES, index)
            ok, bgr = self._capture.read()
            if not ok:
                raise ValueError(f"video file {self.path!r}: frame {index} cannot be decoded")
            self._next = index + 1
            return self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB)


def stream_video_file(
    path: str | Path, image_size: int, device: torch.device | str, prefetch: int = 1
) -> tuple[StreamedFrames, int, int]:
    """``(frames, video_height, video_width)`` of an MP4, decoded lazily."""
    reader = _VideoFileReader(str(path))
    num_frames, height, width = reader.count()

    def decode(index: int) -> Tensor:
        return to_model_input(reader.read(index)[None], image_size)[0]

    return StreamedFrames(decode, num_frames, device, prefetch), height, width
