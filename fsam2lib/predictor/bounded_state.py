"""A bounded inference state: outputs SAM2 can no longer read are released as tracking
advances, and anything that would have read one fails loudly instead of silently seeing a
frame without memory.

Which outputs a tracked frame reads (sam2 1.1.0, ``_prepare_memory_conditioned_features``):
the previous frame, ``num_maskmem - 2`` more frames every ``memory_temporal_stride_for_eval``
frames back, and up to ``max_obj_ptrs_in_encoder - 1`` previous object pointers -- so nothing
older than :func:`read_window` frames behind. A propagation in the other direction from a
prompted frame reads the frames on the far side of it, so frames within the window of a
conditioning frame are never released.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator


class ReleasedFrameError(RuntimeError):
    """Raised when something needs the output of a frame the bounded state released."""


class ReleasingOutputs(dict):
    """``non_cond_frame_outputs`` that remembers which frames were released and refuses to
    pretend they never existed (stock SAM2 would read a missing frame as padding)."""

    def __init__(self, data: dict, obj_id: object) -> None:
        super().__init__(data)
        self.obj_id = obj_id
        self.released: set[int] = set()

    def release(self, frame_idx: int) -> None:
        del self[frame_idx]
        self.released.add(frame_idx)

    def _refuse(self, frame_idx: object) -> None:
        if frame_idx in self.released:
            raise ReleasedFrameError(
                f"the output of frame {frame_idx} for object {self.obj_id!r} was released by the "
                "bounded inference state (StatePolicy.bounded): it is outside the frames SAM2 "
                "reads while tracking, so a prompt on or near it, or a propagation starting "
                "next to it, cannot see it. Propagate again from a prompted frame, or build the "
                "predictor with state_policy=StatePolicy(bounded=False) (or 'stock') to keep "
                "every frame's output"
            )

    def get(self, frame_idx: object, default: object = None) -> object:
        self._refuse(frame_idx)
        return super().get(frame_idx, default)

    def __getitem__(self, frame_idx: object) -> object:
        self._refuse(frame_idx)
        return super().__getitem__(frame_idx)

    def __setitem__(self, frame_idx: object, value: object) -> None:
        self.released.discard(frame_idx)
        super().__setitem__(frame_idx, value)

    def clear(self) -> None:
        self.released.clear()
        super().clear()


def trim_heap() -> bool:
    """Hand freed heap memory back to the OS (glibc ``malloc_trim(0)``); False where there is
    no glibc. Process-wide and harmless: only memory already freed is returned."""
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim  # noqa: B018 (probe: musl and macOS lack it)
        except (OSError, AttributeError):
            _LIBC = False
    if not _LIBC:
        return False
    _LIBC.malloc_trim(0)
    return True


_LIBC: ctypes.CDLL | bool | None = None


def read_window(model) -> int:
    """How many frames back (in tracking order) a tracked frame may read memory or pointers."""
    stride = model.memory_temporal_stride_for_eval
    return max(1 + (model.num_maskmem - 2) * stride, model.max_obj_ptrs_in_encoder - 1)


def releasable(
    stored: Iterator[int] | list[int],
    cond_frames: list[int],
    frame_idx: int,
    reverse: bool,
    window: int,
) -> list[int]:
    """Stored non-conditioning frames that neither tracking past ``frame_idx``, nor a prompt
    on ``frame_idx``, nor a propagation from a conditioning frame would read."""

    # one frame more than the next frame reads: a correction prompt on the frame just
    # tracked reads ``window`` frames behind it
    def behind(t: int) -> bool:
        return t > frame_idx + window if reverse else t < frame_idx - window

    return [t for t in stored if behind(t) and all(abs(t - c) > window for c in cond_frames)]


def release_behind(model, state: dict, frame_idx: int, reverse: bool, records: dict) -> int:
    """Release, for every object, the outputs (and token records) that tracking past
    ``frame_idx`` in this direction cannot read; returns how many were released."""
    window = read_window(model)
    released = 0
    for obj_idx, outputs in state["output_dict_per_obj"].items():
        obj_id = state["obj_idx_to_id"][obj_idx]
        stored = outputs["non_cond_frame_outputs"]
        if not isinstance(stored, ReleasingOutputs):
            stored = outputs["non_cond_frame_outputs"] = ReleasingOutputs(stored, obj_id)
        old = releasable(
            list(stored), list(outputs["cond_frame_outputs"]), frame_idx, reverse, window
        )
        obj_records = records.get(obj_id, {})
        for t in old:
            stored.release(t)
            obj_records.pop(t, None)
        released += len(old)
    return released


def check_not_released(model, state: dict, obj_id: object, frame_idx: int) -> None:
    """Fail before a prompt on ``frame_idx`` would read a released output: of ``obj_id`` on
    the frames its prompt reads (up to :func:`read_window` frames on either side, depending on
    direction), or of any object on ``frame_idx`` itself (SAM2 shows every object's mask on a
    prompted frame, reading each one's stored output there)."""
    check_frame_kept(state, frame_idx, "a prompt on")
    obj_idx = state["obj_id_to_idx"].get(obj_id)
    if obj_idx is None:  # a new object's first prompt reads no memory
        return
    stored = state["output_dict_per_obj"][obj_idx]["non_cond_frame_outputs"]
    window = read_window(model)
    near = sorted(t for t in getattr(stored, "released", ()) if abs(t - frame_idx) <= window)
    if near:
        raise ReleasedFrameError(
            f"a prompt on frame {frame_idx} for object {obj_id!r} reads the outputs of frames "
            f"{frame_idx - window}..{frame_idx + window}, and the bounded inference state "
            f"(StatePolicy.bounded) released frames {near[0]}..{near[-1]} of them while "
            f"tracking. {_WHAT_TO_DO}"
        )


def check_frame_kept(state: dict, frame_idx: int, doing: str) -> None:
    """Fail before an operation that shows every object's mask on ``frame_idx`` (a prompt, a
    cleared prompt, a removed object's prompted frames) finds one of them released."""
    for obj_idx, outputs in state["output_dict_per_obj"].items():
        if frame_idx in getattr(outputs["non_cond_frame_outputs"], "released", ()):
            obj_id = state["obj_idx_to_id"][obj_idx]
            raise ReleasedFrameError(
                f"{doing} frame {frame_idx} shows every object's mask there, and the bounded "
                f"inference state (StatePolicy.bounded) released object {obj_id!r}'s output on "
                f"that frame while tracking. {_WHAT_TO_DO}"
            )


def check_propagation_start(model, state: dict, start: int | None, reverse: bool) -> None:
    """Fail before a propagation from ``start`` (SAM2's default: the earliest prompted frame)
    would read a released output: its first frames read up to :func:`read_window` frames
    behind the start, in tracking order. Checked before SAM2 moves any prompt into memory."""
    if start is None:
        per_obj = (state["output_dict_per_obj"], state["temp_output_dict_per_obj"])
        starts = [t for d in per_obj for o in d.values() for t in o["cond_frame_outputs"]]
        if not starts:
            return  # nothing prompted: SAM2's own refusal follows
        start = min(starts)
    window = read_window(model)
    behind = range(start + 1, start + window + 1) if reverse else range(start - window, start)
    for obj_idx, outputs in state["output_dict_per_obj"].items():
        released = getattr(outputs["non_cond_frame_outputs"], "released", set())
        near = sorted(t for t in behind if t in released)
        if near:
            obj_id = state["obj_idx_to_id"][obj_idx]
            raise ReleasedFrameError(
                f"a propagation from frame {start} ({'reverse' if reverse else 'forward'}) reads "
                f"the outputs of frames {behind.start}..{behind.stop - 1}, and the bounded "
                f"inference state (StatePolicy.bounded) released frames {near[0]}..{near[-1]} of "
                f"object {obj_id!r} while tracking. {_WHAT_TO_DO}"
            )


_WHAT_TO_DO = (
    "Prompt a frame within the last tracked window, re-propagate from a prompted frame first, "
    "or build the predictor with state_policy='stock' (or StatePolicy(bounded=False)) to keep "
    "every output"
)


def trim_records(records: dict, limit: int | None) -> None:
    """Keep the token records of the latest ``limit`` processed frames (insertion order) plus
    every prompted frame's; ``None`` keeps all."""
    if limit is None:
        return
    tracked = [t for t, record in records.items() if not record.prompted]
    for t in tracked[: max(0, len(tracked) - limit)]:
        del records[t]
