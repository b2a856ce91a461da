"""The in-memory video record shared by the synthetic world, DAVIS I/O, predictors and metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Video:
    """A video with per-pixel instance masks and one text description per object.

    frames: uint8 ``[T, H, W, 3]`` RGB.
    masks: uint8 ``[T, H, W]``; 0 = background, k = object id k (1..K), 255 = void.
    annotated: bool ``[T]``; False where a frame has no annotation (e.g. DAVIS test-dev),
        whose mask is then all zeros and must not be scored.
    descriptions: object id -> "[size] colour shape" (or any free text for real data).
    frame_names: file stems, "00000", "00001", ...
    """

    name: str
    frames: np.ndarray
    masks: np.ndarray
    descriptions: dict[int, str] = field(default_factory=dict)
    frame_names: list[str] | None = None
    annotated: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[-1] != 3 or self.frames.dtype != np.uint8:
            raise ValueError(
                f"video {self.name!r}: frames must be uint8 [T,H,W,3], got "
                f"{self.frames.dtype} {tuple(self.frames.shape)}"
            )
        if self.masks.shape != self.frames.shape[:3]:
            raise ValueError(
                f"video {self.name!r}: masks {tuple(self.masks.shape)} do not match frames "
                f"{tuple(self.frames.shape[:3])}"
            )
        if self.frame_names is None:
            self.frame_names = [f"{i:05d}" for i in range(len(self.frames))]
        if len(self.frame_names) != len(self.frames):
            raise ValueError(
                f"video {self.name!r}: {len(self.frame_names)} names for {len(self.frames)} frames"
            )
        if self.annotated is None:
            self.annotated = np.ones(len(self.frames), dtype=bool)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def object_ids(self) -> list[int]:
        """Object ids present in any annotated frame (void and background excluded)."""
        ids = np.unique(self.masks[self.annotated])
        return [int(i) for i in ids if i not in (0, 255)]

    def first_frames(self, count: int) -> Video:
        """The video cut to its first ``count`` frames (itself when it is not longer): real
        videos run for 50-100 frames, minutes per run at full resolution on a CPU."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ValueError(f"count must be a positive int, got {count!r}")
        if count >= self.num_frames:
            return self
        return self.window(0, count)

    def window(self, start: int, count: int) -> Video:
        """Frames ``start`` to ``start + count`` (exclusive) as a video of their own, with
        their names, annotation flags and the descriptions (training clips)."""
        if not 0 <= start < start + count <= self.num_frames:
            raise ValueError(
                f"video {self.name!r} has {self.num_frames} frames; no window of {count} "
                f"from frame {start}"
            )
        stop = start + count
        return Video(
            self.name,
            self.frames[start:stop],
            self.masks[start:stop],
            dict(self.descriptions),
            list(self.frame_names[start:stop]),
            self.annotated[start:stop].copy(),
        )
