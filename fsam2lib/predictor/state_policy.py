"""What the predictor keeps in an inference state, and for how long: :class:`StatePolicy`.

Stock SAM2 holds every frame of the video as float32 from ``init_state`` on and every
frame's output (dense memory features, low-res masks, object pointer) until the state is
reset, although memory attention only ever reads a short window of them. On a long video
that, not the model, is what fills memory. The lean policy (the default) changes what is
stored, never what is computed:

* ``compact_memory``: a pruned frame's memory keeps only its kept tokens (features in SAM2's
  storage dtype plus int32 grid indices); memory attention reads those directly.
* ``bounded``: during propagation, non-conditioning outputs that SAM2 can no longer read
  (outside the ``num_maskmem`` window and the object-pointer window, in tracking order) are
  released, and so is the finished frame's cached backbone output; frames near a prompted
  frame are kept so that a later propagation in the other direction reads what stock SAM2
  would, and so is the window behind the latest frame (a correction click there works).
  Masks are still yielded for every frame. What a released frame can no longer serve -- a
  correction prompt on it or near it, a propagation starting next to it -- raises
  :class:`~fsam2lib.predictor.bounded_state.ReleasedFrameError`, before the state changes.
* ``score_records``: token-score records kept per object: those of the latest this-many
  processed frames plus every prompted frame (``None``: all, for notebooks that look back).
* ``streaming``: a JPEG folder or MP4 is decoded as frames are needed (the frame in flight,
  plus ``prefetch`` frames decoded ahead on a thread), with the same preprocessing bits as
  sam2's eager loader. Prefetch is off by default: decoding is ~1 % of a frame's time here,
  and a second thread gets its own malloc arena (~90 MiB more RSS at 1024 px).
* ``trim_memory``: after each tracked frame, hand freed heap memory back to the operating
  system (glibc's ``malloc_trim``; a no-op elsewhere). PyTorch's CPU tensors come from
  malloc, whose freed blocks otherwise stay resident and fragment, so that RSS climbs well
  above what is live (at 1024 px: peak 599 MiB with it, 693 MiB without, over 24 frames).

``StatePolicy.stock()`` turns all of it off: stock SAM2's behaviour, one argument away.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StatePolicy:
    """What an inference state keeps (see the module docstring for each field)."""

    compact_memory: bool = True
    bounded: bool = True
    score_records: int | None = 16
    streaming: bool = True
    prefetch: int = 0
    trim_memory: bool = True

    def __post_init__(self) -> None:
        for name in ("compact_memory", "bounded", "streaming", "trim_memory"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"StatePolicy.{name} must be a bool, got {getattr(self, name)!r}")
        records = self.score_records
        if records is not None and (
            isinstance(records, bool) or not isinstance(records, int) or records < 1
        ):
            raise ValueError(
                f"StatePolicy.score_records must be an integer >= 1 or None (all), got {records!r}"
            )
        if (
            isinstance(self.prefetch, bool)
            or not isinstance(self.prefetch, int)
            or self.prefetch < 0
        ):
            raise ValueError(f"StatePolicy.prefetch must be an integer >= 0, got {self.prefetch!r}")

    @classmethod
    def stock(cls) -> StatePolicy:
        """Stock SAM2's storage: dense memory, every output and record kept, eager frames."""
        return cls(
            compact_memory=False,
            bounded=False,
            score_records=None,
            streaming=False,
            trim_memory=False,
        )

    @classmethod
    def named(cls, name: str | StatePolicy) -> StatePolicy:
        """``"lean"`` (the default policy) or ``"stock"``; a policy is returned as is."""
        if isinstance(name, StatePolicy):
            return name
        if name == "lean":
            return cls()
        if name == "stock":
            return cls.stock()
        raise ValueError(f"state policy must be 'lean', 'stock' or a StatePolicy, got {name!r}")
