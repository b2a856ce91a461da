"""Ops and host syncs per tracked frame, counted as PyTorch dispatches them.

On a GPU, SAM2's tracked frame is bound by launches and host syncs, not FLOPs (see
docs/ARCHITECTURE.md): every dispatched op is at least a launch or a Python round trip, and a
host read (``.item()``, ``bool(t)``, ``nonzero``, a data-dependent shape) stalls the stream.
Both can be counted on any machine with a ``TorchDispatchMode``: the counts do not depend on
the device, the image size or the weights, so a CPU run with random weights says what a GPU
run would dispatch.

    python -m fsam2lib.bench.dispatch [--model sam2.1_hiera_t] [--image-size 512] [--keep 0.3]

prints, per configuration, the ops and host syncs of the last tracked frame (memory bank
full) against Meta's own predictor.
"""

from __future__ import annotations

import argparse
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

# The ops behind a host read of a tensor's value (``.item()``, ``int(t)``, ``bool(t)``,
# ``if t:``) or behind an output whose size depends on values (``nonzero``).
HOST_SYNC_OPS = frozenset(
    {"aten._local_scalar_dense", "aten.is_nonzero", "aten.item", "aten.nonzero"}
)
STOCK_PREDICTOR = "sam2.sam2_video_predictor.SAM2VideoPredictor"


class DispatchCounter(TorchDispatchMode):
    """Counts every op dispatched inside the block, by name (``aten.add`` ...)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))

    @property
    def total(self) -> int:
        return sum(self.ops.values())

    @property
    def syncs(self) -> dict[str, int]:
        return {name: n for name, n in self.ops.items() if name in HOST_SYNC_OPS}


@dataclass(frozen=True)
class FrameDispatch:
    """What one tracked frame dispatched: its index, all ops by name, and host syncs."""

    frame_idx: int
    ops: Counter

    @property
    def total(self) -> int:
        return sum(self.ops.values())

    @property
    def syncs(self) -> int:
        return sum(n for name, n in self.ops.items() if name in HOST_SYNC_OPS)


def count_frames(frames: Iterator) -> list[FrameDispatch]:
    """Drive a ``propagate_in_video`` generator, counting what each yielded frame dispatched
    (the work SAM2 does for that frame: encoder, memory attention, decoder, memory encoder)."""
    counted = []
    while True:
        counter = DispatchCounter()
        with counter:
            try:
                frame_idx, _, _ = next(frames)
            except StopIteration:
                return counted
        counted.append(FrameDispatch(int(frame_idx), counter.ops))


def tracked_frame_dispatch(
    predictor: torch.nn.Module, frames: np.ndarray, mask: np.ndarray, obj_id: int = 1
) -> list[FrameDispatch]:
    """Prompt ``obj_id`` with ``mask`` on frame 0 of ``frames`` (``[T, H, W, 3]`` uint8) and
    count each tracked frame's dispatches (frame 0, the prompt's output, is not tracked)."""
    from fsam2lib.videos.frames import init_state_from_frames

    state = init_state_from_frames(predictor, frames)
    predictor.add_new_mask(state, 0, obj_id, mask)
    return [f for f in count_frames(predictor.propagate_in_video(state)) if f.frame_idx > 0]


def dispatch_table(
    model: str = "sam2.1_hiera_t",
    image_size: int = 512,
    keeps: tuple[float, ...] = (1.0, 0.3),
    frames: int = 10,
    seed: int = 0,
    policies: tuple[str, ...] = ("lean", "stock"),
) -> list[dict]:
    """Ops and host syncs of the last tracked frame (memory bank full at ``frames`` >
    ``num_maskmem``) for Meta's predictor and the router at each keep ratio and state policy;
    random weights (counts do not depend on them), a random router of the shipped design
    reading the object's description. Rows: ``name``, ``ops``, ``syncs``, ``vs_meta``."""
    from fsam2lib.bench.sources import cost_video

    video = cost_video(image_size, frames, seed)
    mask = video.masks[0] == min(video.descriptions)

    def last(build: Callable[[], torch.nn.Module]) -> FrameDispatch:
        return tracked_frame_dispatch(build(), video.frames, mask)[-1]

    meta = last(lambda: _random_predictor(model, image_size, STOCK_PREDICTOR, seed))
    rows = [{"name": "Meta SAM2VideoPredictor", "ops": meta.total, "syncs": meta.syncs}]
    for policy in policies:
        for keep in keeps:
            frame = last(
                lambda k=keep, p=policy: random_router_predictor(model, image_size, k, p, seed)
            )
            rows.append(
                {
                    "name": f"router keep {keep:g}, {policy} state",
                    "ops": frame.total,
                    "syncs": frame.syncs,
                }
            )
    for row in rows:
        row["vs_meta"] = row["ops"] / meta.total
    return rows


def _random_predictor(model: str, image_size: int, predictor_class: str, seed: int):
    from fsam2lib.models.sam2 import load_sam2

    return load_sam2(
        model, weights="random", image_size=image_size, predictor_class=predictor_class, seed=seed
    )


def random_router_predictor(
    model: str, image_size: int, keep: float, policy: str = "lean", seed: int = 0
):
    """A pruned predictor with random weights and a random router of the shipped router's
    design, every object described by a fixed random text embedding: the whole per-frame
    path of the method, for counting and timing only."""
    from fsam2lib.bench.spec import untrained_router
    from fsam2lib.predictor import PrunedSAM2VideoPredictor
    from fsam2lib.predictor.state_policy import StatePolicy
    from fsam2lib.pruning.config import PruningConfig

    predictor = _random_predictor(model, image_size, PrunedSAM2VideoPredictor, seed)
    predictor.router = untrained_router(predictor, text_dim=64, seed=seed)
    embedding = torch.nn.functional.normalize(torch.randn(1, 64), dim=-1)
    predictor.text_encoder = lambda texts: embedding.expand(len(texts), -1)
    predictor.describe_object = lambda image, mask: "an object"
    predictor.pruning = PruningConfig(keep_ratio=keep, strategy="router")
    predictor.state_policy = StatePolicy.named(policy)
    return predictor


def format_dispatch_table(rows: list[dict]) -> str:
    lines = ["| predictor | ops per tracked frame | vs Meta | host syncs |", "|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['ops']} | {r['vs_meta']:.3f} | {r['syncs']} |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="sam2.1_hiera_t")
    parser.add_argument("--image-size", type=int, default=512)
    parser.add_argument("--keep", default="1.0,0.3", help="comma-separated keep ratios")
    parser.add_argument("--frames", type=int, default=10)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=r"(?s).*Skipping the post-processing step")
    keeps = tuple(float(k) for k in args.keep.split(","))
    rows = dispatch_table(args.model, args.image_size, keeps, args.frames)
    print(
        f"{args.model}, {args.image_size} px, one object, last of {args.frames} frames "
        "(memory full), RANDOM weights (counts only)"
    )
    print(format_dispatch_table(rows))
    print(
        f"command: python -m fsam2lib.bench.dispatch --model {args.model} --image-size {args.image_size} --keep {args.keep} --frames {args.frames}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
