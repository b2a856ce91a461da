"""Cost probes for the benchmark: per-stage timers, memory-attention token counts, analytic
FLOPs, process / inference-state memory.

Why hooks and not a profiler: SAM2's per-frame work is a fixed sequence of submodules (image
encoder, memory attention, prompt encoder + mask decoder, memory encoder), so timing each
call with forward pre/post hooks attributes the frame's time to stages with one clock read
per call, and on CUDA a synchronisation in each hook makes the asynchronous kernels count
where they were launched. Token scoring and selection (the pruning overhead, "router") are
predictor methods, not modules; they are timed by wrapping those two methods on the instance.
Everything a frame spends outside these stages (memory assembly, gather/scatter bookkeeping,
resizing masks, Python) is reported as "other".
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

#: Stages in the order of a tracked frame; "other" = frame time minus the others.
STAGES = (
    "image_encoder",
    "router",
    "memory_attention",
    "mask_decoder",
    "memory_encoder",
    "other",
)
#: Submodules of a SAM2 model timed as each stage (the router stage wraps methods instead).
STAGE_MODULES = {
    "image_encoder": ("image_encoder",),
    "memory_attention": ("memory_attention",),
    "mask_decoder": ("sam_prompt_encoder", "sam_mask_decoder"),
    "memory_encoder": ("memory_encoder",),
}
#: Predictor methods that make up token scoring and selection (PrunedSAM2VideoPredictor).
ROUTER_METHODS = ("_score_frame", "_select_memory")


# --------------------------------------------------------------------------- stage timer


class StageTimer:
    """Seconds per stage and per frame of a SAM2 video predictor, from hooks.

    Use as a context manager around propagation; call :meth:`start_frame` before the predictor
    resumes and :meth:`frame_done` each time it yields a frame. Each frame's entry holds the
    wall time between the two calls and the time spent in each stage in between. Stage times
    are exclusive: a stage entered inside another (the image encoder run from token scoring on
    a new frame) pauses the outer one. ``sync`` (a CUDA device) is synchronised in every
    hook so that queued kernels are charged to the stage that queued them.
    """

    def __init__(self, predictor: nn.Module, sync: torch.device | None = None) -> None:
        self.predictor = predictor
        self.sync = sync
        self.frames: list[dict] = []
        self._current = dict.fromkeys(STAGES[:-1], 0.0)
        self._stack: list[str] = []
        self._mark = 0.0
        self._handles: list = []
        self._wrapped: list[str] = []
        self._frame_start: float | None = None

    def _now(self) -> float:
        if self.sync is not None:
            torch.cuda.synchronize(self.sync)
        return time.perf_counter()

    def _charge(self) -> float:
        """Charge the time since the last mark to the innermost open stage."""
        now = self._now()
        if self._stack:
            self._current[self._stack[-1]] += now - self._mark
        self._mark = now
        return now

    def _start(self, stage: str) -> None:
        if stage in self._stack:
            raise RuntimeError(f"stage {stage!r} entered again before it ended (re-entrant call)")
        self._charge()
        self._stack.append(stage)

    def _stop(self, stage: str) -> None:
        if not self._stack or self._stack[-1] != stage:
            raise RuntimeError(f"stage {stage!r} ended out of order (open: {self._stack})")
        self._charge()
        self._stack.pop()

    def __enter__(self) -> StageTimer:
        for stage, names in STAGE_MODULES.items():
            for name in names:
                module = getattr(self.predictor, name, None)
                if not isinstance(module, nn.Module):
                    raise TypeError(f"the predictor has no submodule {name!r} to time ({stage})")
                self._handles.append(
                    module.register_forward_pre_hook(lambda *_, s=stage: self._start(s))
                )
                self._handles.append(
                    module.register_forward_hook(lambda *_, s=stage: self._stop(s))
                )
        for name in ROUTER_METHODS:
            method = getattr(self.predictor, name, None)
            if method is not None:
                setattr(self.predictor, name, self._timed(method))
                self._wrapped.append(name)
        return self

    def _timed(self, method: Callable) -> Callable:
        def timed(*args, **kwargs):
            self._start("router")
            try:
                return method(*args, **kwargs)
            finally:
                self._stop("router")

        return timed

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        for name in self._wrapped:
            delattr(self.predictor, name)  # the instance attribute; the class method remains
        self._handles, self._wrapped = [], []

    def start_frame(self) -> None:
        """Start the clock of the next frame (work done before this call is not counted)."""
        self._frame_start = self._now()

    def frame_done(self, frame_idx: int) -> dict:
        """Close the frame started by :meth:`start_frame` and return its entry."""
        if self._frame_start is None:
            raise RuntimeError("frame_done() called without start_frame()")
        if self._stack:
            raise RuntimeError(f"frame {frame_idx} ended inside stages {self._stack}")
        total = self._now() - self._frame_start
        stages = dict(self._current)
        stages["other"] = max(0.0, total - sum(stages.values()))
        entry = {"frame": int(frame_idx), "seconds": total, "stages": stages}
        self.frames.append(entry)
        self._current = dict.fromkeys(STAGES[:-1], 0.0)
        self._frame_start = None
        return entry


# --------------------------------------------------------------------------- token counts


class MemoryAttentionProbe:
    """Counts the tokens each memory-attention call really attends with.

    Pruned calls (a plan is active on ``fsam2lib.pruning.PrunedMemoryAttention``) report the
    kept query tokens and each memory frame's kept tokens; stock calls report the full grid.
    Each entry: ``query`` (kept query tokens), ``query_total`` (H*W), ``memory_per_frame``
    (tokens kept of each memory frame, in memory order), ``pointers`` (object-pointer tokens).
    """

    def __init__(self, memory_attention: nn.Module) -> None:
        self.module = memory_attention
        self.calls: list[dict] = []
        self._handle = None

    def __enter__(self) -> MemoryAttentionProbe:
        self._handle = self.module.register_forward_pre_hook(self._hook, with_kwargs=True)
        return self

    def __exit__(self, *exc) -> None:
        self._handle.remove()

    def _hook(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        names = ("curr", "memory", "curr_pos", "memory_pos", "num_obj_ptr_tokens")
        given = dict(zip(names, args, strict=False)) | kwargs
        curr = given["curr"][0] if isinstance(given["curr"], list) else given["curr"]
        memory, pointers = given["memory"], int(given.get("num_obj_ptr_tokens", 0))
        hw = int(curr.shape[0])
        plan = getattr(module, "_plan", None)
        if plan is None:
            frames = (int(memory.shape[0]) - pointers) // hw
            entry = {"query": hw, "memory_per_frame": [hw] * frames}
        else:
            # the plan's memory sources are the stored frames SAM2 read, in concatenation order
            entry = {
                "query": int(plan.query_idx.shape[1]),
                "memory_per_frame": [
                    hw if s.memory_keep_idx is None else int(s.memory_keep_idx.shape[1])
                    for s in plan.memory_sources
                ],
            }
        entry.update(query_total=hw, pointers=pointers)
        self.calls.append(entry)


# --------------------------------------------------------------------------- analytic FLOPs


@dataclass(frozen=True)
class MemoryAttentionDims:
    """Sizes that set memory attention's cost, read from the module (all layers alike).

    d_model: token width of the current frame; self_dim / cross_dim: internal width of the
    self- / cross-attention (q, k, v projected to it); memory_dim: width of memory tokens
    (``kv_in_dim``); ffn_dim: MLP hidden width; num_layers.
    """

    d_model: int
    self_dim: int
    cross_dim: int
    memory_dim: int
    ffn_dim: int
    num_layers: int

    @classmethod
    def from_module(cls, memory_attention: nn.Module) -> MemoryAttentionDims:
        layers = list(memory_attention.layers)
        if not layers:
            raise ValueError("memory attention has no layers")
        dims = {cls._layer_dims(layer) for layer in layers}
        if len(dims) != 1:
            raise ValueError(f"memory-attention layers differ in size: {sorted(dims)}")
        d_model, self_dim, cross_dim, memory_dim, ffn_dim = dims.pop()
        return cls(d_model, self_dim, cross_dim, memory_dim, ffn_dim, len(layers))

    @staticmethod
    def _layer_dims(layer: nn.Module) -> tuple[int, ...]:
        sa, ca = layer.self_attn, layer.cross_attn_image
        return (
            sa.q_proj.in_features,
            sa.q_proj.out_features,
            ca.q_proj.out_features,
            ca.k_proj.in_features,
            layer.linear1.out_features,
        )


def memory_attention_flops(
    dims: MemoryAttentionDims, query: int, memory: int | Sequence[int], pointers: int = 0
) -> dict[str, int]:
    """FLOPs (2 per multiply-add) of one memory-attention call over kept tokens.

    query: kept query tokens Nq; memory: kept memory tokens, in total or per memory frame;
    pointers: object-pointer tokens (never pruned). With M = sum(memory) + pointers, per layer:

    - self-attention: q, k, v, out projections ``4 Nq d ds`` + scores and weighted sum ``2 Nq^2 ds``
    - cross-attention: q, out ``2 Nq d dc`` + k, v ``2 M dm dc`` + scores and sum ``2 Nq M dc``
    - MLP: ``2 Nq d f``

    (d = d_model, ds / dc = self / cross internal width, dm = memory width, f = MLP width), all
    times 2 FLOPs per multiply-add and the number of layers. Norms, softmax, rotary encoding and
    biases are linear in the token count with small constants and are left out.
    """
    if isinstance(memory, Sequence):
        memory = sum(int(m) for m in memory)
    for name, value in (("query", query), ("memory", memory), ("pointers", pointers)):
        if value < 0:
            raise ValueError(f"{name} token count must be >= 0, got {value}")
    d, ds, dc, dm, f = dims.d_model, dims.self_dim, dims.cross_dim, dims.memory_dim, dims.ffn_dim
    keys = memory + pointers
    self_macs = 4 * query * d * ds + 2 * query * query * ds
    cross_macs = 2 * query * d * dc + 2 * keys * dm * dc + 2 * query * keys * dc
    mlp_macs = 2 * query * d * f
    out = {
        "self_attention": 2 * dims.num_layers * self_macs,
        "cross_attention": 2 * dims.num_layers * cross_macs,
        "mlp": 2 * dims.num_layers * mlp_macs,
    }
    out["total"] = sum(out.values())
    return out


def amdahl(share: float, stage_speedup: float) -> dict[str, float]:
    """Whole-frame speedup bound when a stage taking ``share`` of the time gets ``stage_speedup``
    faster: ``1 / ((1 - p) + p / s)``; the ceiling (stage free) is ``1 / (1 - p)``."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"share must be in [0, 1], got {share}")
    if stage_speedup <= 0:
        raise ValueError(f"stage speedup must be positive, got {stage_speedup}")
    ceiling = math.inf if share == 1.0 else 1.0 / (1.0 - share)
    return {
        "share": share,
        "stage_speedup": stage_speedup,
        "bound": 1.0 / ((1.0 - share) + share / stage_speedup),
        "ceiling": ceiling,
    }


# --------------------------------------------------------------------------- memory

MIB = 1024.0**2  # bytes per MiB, the unit of memory in tables and plots


def _proc_status_bytes(field: str) -> int | None:
    """A ``kB`` field of ``/proc/self/status`` in bytes (None where there is no procfs)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def rss_bytes() -> int | None:
    """Current resident set size of this process (Linux; None elsewhere)."""
    return _proc_status_bytes("VmRSS")


def peak_rss_bytes() -> int | None:
    """Peak resident set size of this process so far (Linux ``VmHWM``; ru_maxrss elsewhere)."""
    peak = _proc_status_bytes("VmHWM")
    if peak is not None:
        return peak
    import resource
    import sys

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(maxrss if sys.platform == "darwin" else maxrss * 1024)


def reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux: ``clear_refs`` 5 resets ``VmHWM``), so that the
    next :func:`peak_rss_bytes` is the peak since now; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


def stored_outputs(state: dict) -> int:
    """How many per-frame outputs the inference state holds (all objects, cond and not)."""
    return sum(
        len(outputs[part])
        for outputs in state["output_dict_per_obj"].values()
        for part in ("cond_frame_outputs", "non_cond_frame_outputs")
    )


def bank_bytes(state: dict, frames: int | None = None) -> int:
    """Stored bytes of what tracking reads back from each frame's output: its memory features
    (with their kept indices where stored compact) and, where kept, its memory-conditioned
    features (the next frame's fill under ``fill="previous"``: :func:`fill_bytes`); of
    every stored frame, or with ``frames``, of the memory the next frame reads (every
    conditioning frame and the latest ``frames - 1`` non-conditioning frames)."""

    def size(out) -> int:
        features = dict.get(out, "maskmem_features")
        index = getattr(out, "memory_keep_idx", None) if getattr(out, "is_compact", False) else None
        return (
            (0 if features is None else features.nbytes)
            + (0 if index is None else index.nbytes)
            + _fill_size(out)
        )

    total = 0
    for outputs in state["output_dict_per_obj"].values():
        recent = sorted(outputs["non_cond_frame_outputs"])
        if frames is not None:
            recent = recent[-(frames - 1) :] if frames > 1 else []
        total += sum(size(out) for out in outputs["cond_frame_outputs"].values())
        total += sum(size(outputs["non_cond_frame_outputs"][t]) for t in recent)
    return total


def fill_bytes(state: dict) -> int:
    """Stored bytes of the memory-conditioned features kept as a fill (prompted frames and
    the latest tracked frame, per object): counted in :func:`bank_bytes` too, shown apart
    because they are not memory SAM2 attends to."""
    return sum(
        _fill_size(out)
        for outputs in state["output_dict_per_obj"].values()
        for kind in ("cond_frame_outputs", "non_cond_frame_outputs")
        for out in outputs[kind].values()
    )


def _fill_size(out) -> int:
    conditioned = getattr(out, "conditioned", None)
    return 0 if conditioned is None else conditioned.nbytes


def _tensors(obj: object, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Tensor]]:
    """Every tensor reachable from containers, dataclasses and dict subclasses' attributes."""
    if isinstance(obj, Tensor):
        yield path, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from _tensors(value, (*path, str(key)))
        if type(obj) is not dict:  # e.g. TrackedOutput: kept indices, conditioned features
            for key, value in vars(obj).items():
                yield from _tensors(value, (*path, str(key)))
    elif isinstance(obj, (list, tuple, set, frozenset)):
        for i, value in enumerate(obj):
            yield from _tensors(value, (*path, str(i)))
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for item in dataclasses.fields(obj):
            yield from _tensors(getattr(obj, item.name), (*path, item.name))
    elif hasattr(obj, "held_tensors"):  # e.g. StreamedFrames: the frames decoded right now
        yield from _tensors(obj.held_tensors(), path)


def state_bytes(state: dict) -> dict[str, int]:
    """Bytes of tensor storage held by an inference state, by top-level key.

    Storages shared between tensors (views, ``expand``, SAM2's one ``maskmem_pos_enc`` for all
    frames) are counted once, under the first key that reaches them. Extra keys:
    ``"maskmem_features"`` (the stored memory features of every frame, wherever they sit),
    ``"total"``.
    """
    seen: set[tuple[str, int]] = set()
    out: dict[str, int] = {"maskmem_features": 0}
    for path, tensor in _tensors(state, ()):
        storage = tensor.untyped_storage()
        key = (str(tensor.device), storage.data_ptr())
        if key in seen:
            continue
        seen.add(key)
        size = storage.nbytes()
        top = ".".join(path[:2]) if path[0] == "fsam2" else path[0]
        out[top] = out.get(top, 0) + size
        if path[-1] == "maskmem_features":
            out["maskmem_features"] += size
    out["total"] = sum(v for k, v in out.items() if k != "maskmem_features")
    return out
