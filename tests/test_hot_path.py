"""The pruned predictor's per-frame path: no host syncs and few ops per tracked frame
(counted as PyTorch dispatches them, against Meta's own predictor), float32 scores under
bf16 autocast, and non-finite scores caught once per propagation instead of per frame."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fsam2lib.bench.dispatch import HOST_SYNC_OPS, dispatch_table, format_dispatch_table
from fsam2lib.models.sam2 import load_sam2
from fsam2lib.predictor import PrunedSAM2VideoPredictor
from fsam2lib.predictor.frame_pruning import score_frame
from fsam2lib.pruning.config import PruningConfig
from fsam2lib.pruning.router import RouterConfig, TokenRouter
from fsam2lib.pruning.scorers import ScoringInputs, check_scores

warnings.filterwarnings("ignore", message=r"(?s).*Skipping the post-processing step")

# Issue bound: keep 0.3 with the router dispatches at most 10 % more ops per tracked frame
# than Meta's predictor (measured 2026-12-06: +5.1 % lean, +5.3 % stock state, hiera_t).
MAX_OPS_VS_META = 1.10


def test_tracked_frames_add_no_host_sync_and_few_ops_over_meta():
    """hiera_t (random weights: counts do not depend on them), one object with a
    description, the last of 9 frames (memory bank full); the router reads text and the
    stride-8 map, as the shipped one does."""
    rows = dispatch_table(
        "sam2.1_hiera_t", image_size=256, keeps=(0.3,), frames=9, policies=("lean", "stock")
    )
    table = format_dispatch_table(rows)
    print("\n" + table)
    meta, *pruned = rows
    assert meta["syncs"] == 0, table
    assert meta["ops"] > 500, table  # the counter saw the whole frame
    for row in pruned:
        assert row["syncs"] == meta["syncs"], table
        assert row["ops"] <= MAX_OPS_VS_META * meta["ops"], table
    assert "aten._local_scalar_dense" in HOST_SYNC_OPS


def _router_inputs(grid: int = 64) -> tuple[TokenRouter, ScoringInputs]:
    torch.manual_seed(0)
    router = TokenRouter(RouterConfig(feat_dim=64, text_dim=32, text_context=3, detail_dim=16))
    inputs = ScoringInputs(
        features=torch.randn(1, 64, grid, grid),
        frame_idx=3,
        prev_mask_logits=4 * torch.randn(1, 1, 4 * grid, 4 * grid),
        text_embedding=F.normalize(torch.randn(1, 32), dim=-1),
        detail=torch.randn(1, 16, 2 * grid, 2 * grid),
    )
    return router.eval(), inputs


def test_router_scores_stay_float32_under_bf16_autocast():
    """At 64 x 64 tokens bf16 scores collapse to a few dozen values and ties pick the kept
    set; the router scores in float32 whatever the autocast, so the kept set is the same."""
    router, inputs = _router_inputs()
    config = PruningConfig(keep_ratio=0.3)

    def kept(autocast: bool) -> set[int]:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            record = score_frame(inputs, config, router, text="t", fingerprint=(), prompted=False)
        assert record.scores["combined"].dtype == torch.float32
        return set(record.query_idx[0].tolist())

    fp32, bf16 = kept(False), kept(True)
    assert len(fp32) == 1229
    assert len(fp32 & bf16) / len(fp32) >= 0.99
    # a scorer of the user's own that answers in bf16 is ranked in float32 all the same
    combined = torch.randn(1, 16).bfloat16()
    checked = check_scores({"combined": combined}, 1, 16, "scorer")["combined"]
    assert checked.dtype == torch.float32 and torch.equal(checked, combined.float())


class NaNOnFrame:
    """Random scores, NaN on one frame."""

    def __init__(self, frame_idx: int) -> None:
        self.frame_idx = frame_idx

    def __call__(self, inputs: ScoringInputs) -> dict[str, torch.Tensor]:
        b, _, h, w = inputs.features.shape
        gen = torch.Generator().manual_seed(inputs.frame_idx)
        scores = torch.rand(b, h * w, generator=gen)
        if inputs.frame_idx == self.frame_idx:
            scores[:, 5] = float("nan")
        return {"combined": scores}


@pytest.fixture(scope="module")
def micro():
    predictor = load_sam2("micro", weights="random", predictor_class=PrunedSAM2VideoPredictor)
    predictor.pruning = PruningConfig(keep_ratio=0.3, strategy="router")
    return predictor


def _video(frames: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    video = rng.integers(0, 60, (frames, 48, 64, 3), dtype=np.uint8)
    mask = np.zeros((48, 64), dtype=bool)
    mask[12:28, 8:24] = True
    video[:, 12:28, 8:24] = (220, 40, 40)
    return video, mask


def test_non_finite_scores_on_a_tracked_frame_raise_when_propagation_ends(micro):
    from fsam2lib.videos.frames import init_state_from_frames

    video, mask = _video()
    micro.router = NaNOnFrame(2)
    state = init_state_from_frames(micro, video)
    micro.add_new_mask(state, 0, 1, mask)
    seen = []
    with pytest.raises(ValueError, match=r"non-finite scores .* frames 1\.\.4 \(objects \[1\]\)"):
        for frame_idx, _, _ in micro.propagate_in_video(state):
            seen.append(frame_idx)
    assert seen == [0, 1, 2, 3, 4]  # read once, at the end: no frame stalled on a check
    # a clean propagation afterwards starts a fresh check
    micro.router = NaNOnFrame(-1)
    assert len(list(micro.propagate_in_video(state))) == 5


def test_non_finite_scores_on_a_prompted_frame_raise_at_the_prompt(micro):
    from fsam2lib.videos.frames import init_state_from_frames

    video, mask = _video(3)
    micro.router = NaNOnFrame(0)
    state = init_state_from_frames(micro, video)
    with pytest.raises(ValueError, match="finite"):
        micro.add_new_mask(state, 0, 1, mask)


# --------------------------------------------------------------------------- compile-ready


def _graph_breaks(fn, *args) -> tuple[int, list]:
    torch._dynamo.reset()
    explained = torch._dynamo.explain(fn)(*args)
    return explained.graph_break_count, [str(b.reason) for b in explained.break_reasons]


def _planned_memory_attention(compact: bool):
    """The micro SAM2's memory attention with a pruned plan's arguments: 3 memory frames
    (compact or dense), pointer tokens, keep 0.3."""
    from fsam2lib.pruning.attention import PrunedMemoryAttention

    model = load_sam2("micro", weights="random", predictor_class=PrunedSAM2VideoPredictor)
    attention = PrunedMemoryAttention.convert(model.memory_attention)
    torch.manual_seed(0)
    grid, hw, frames, ptr, kept = (16, 16), 256, 3, 8, 77
    d, m = attention.d_model, model.mem_dim
    idx = [torch.randperm(hw)[:kept].sort().values[None] for _ in range(frames)]
    rows = frames * (kept if compact else hw)
    args = (
        torch.randn(hw, 1, d),
        torch.randn(rows + ptr, 1, m),
        torch.randn(hw, 1, d),
        torch.randn(frames * hw + ptr, 1, m),
        ptr,
        grid,
        torch.randperm(hw)[:kept].sort().values[None],
        [i.to(torch.int32) if compact else i for i in idx],
        [compact] * frames,
    )
    return attention, args


@pytest.mark.parametrize("compact", [True, False])
def test_pruned_memory_attention_compiles_to_one_graph_equal_to_eager(compact):
    attention, args = _planned_memory_attention(compact)
    with torch.no_grad():
        eager = attention.forward_pruned(*args)
        # the tensor work as forward_pruned hands it over: traced whole, no graph break
        breaks, reasons = _graph_breaks(attention.attend_kept, *attention.plan_kept(*args))
        assert breaks == 0, reasons
        attention.compile_paths(backend="aot_eager")  # traced and run as a compiled graph
        compiled = attention.forward_pruned(*args)
    torch._dynamo.reset()
    assert (compiled - eager).abs().max() <= 1e-4


def test_router_compiles_to_one_graph_equal_to_eager():
    router, inputs = _router_inputs(grid=16)
    with torch.no_grad():
        eager = router(inputs)["combined"]
        breaks, reasons = _graph_breaks(router, inputs)
        assert breaks == 0, reasons
        compiled = torch.compile(router, backend="aot_eager", fullgraph=True)(inputs)["combined"]
    torch._dynamo.reset()
    assert (compiled - eager).abs().max() <= 1e-4


def test_compiled_predictor_tracks_as_eager(micro):
    """compile_pruning (memory attention both paths + router) gives the eager masks."""
    from fsam2lib.bench.spec import untrained_router
    from fsam2lib.videos.frames import init_state_from_frames

    video, mask = _video(9)
    micro.router = untrained_router(micro, text_dim=32)

    def masks() -> torch.Tensor:
        state = init_state_from_frames(micro, video)
        micro.add_new_mask(state, 0, 1, mask)
        return torch.stack([m for _, _, m in micro.propagate_in_video(state)])

    eager = masks()
    micro.compile_pruning(backend="aot_eager")
    try:
        compiled = masks()
    finally:
        micro.memory_attention.__dict__.pop("_compiled_kept")
        micro.memory_attention.__dict__.pop("_compiled_stock")
        torch._dynamo.reset()
    assert (compiled - eager).abs().max() <= 1e-4


@pytest.mark.parametrize("policy", ["lean", "stock"])
@pytest.mark.parametrize("keep", [1.0, 0.3])
def test_an_object_added_mid_video_after_propagating_tracks_on_cpu(micro, policy, keep):
    """Regression: object 2's first prompt on frame 3, after object 1 was propagated; the
    next propagation starts at frame 0, where object 2 has memory but no pointer yet, and
    SAM2's bfloat16 memory met float32 weights ("mat1 and mat2 must have the same dtype")."""
    from fsam2lib.predictor.state_policy import StatePolicy
    from fsam2lib.pruning.scorers import RandomScorer
    from fsam2lib.videos.frames import init_state_from_frames

    video, mask = _video(6)
    micro.router = RandomScorer(0)
    micro.pruning = PruningConfig(keep_ratio=keep, strategy="router")
    micro.state_policy = StatePolicy.named(policy)
    try:
        state = init_state_from_frames(micro, video)
        micro.add_new_mask(state, 0, 1, mask)
        assert len(list(micro.propagate_in_video(state))) == 6
        second = np.zeros_like(mask)
        second[30:44, 40:60] = True
        micro.add_new_mask(state, 3, 2, second)
        frames = [(t, ids, m) for t, ids, m in micro.propagate_in_video(state)]
    finally:
        micro.pruning = PruningConfig(keep_ratio=0.3, strategy="router")
        micro.state_policy = StatePolicy()
    assert [t for t, _, _ in frames] == list(range(6))
    assert all(list(ids) == [1, 2] for _, ids, _ in frames)
    assert all(torch.isfinite(m).all() for _, _, m in frames)


def test_objects_of_a_frame_share_the_router_work_that_depends_on_the_frame(micro, monkeypatch):
    """SAM2 scores each object separately; the router's maps that do not depend on the
    object (normalised tokens, visual cue, projected tokens for the text cue) are computed
    once per tracked frame and give the same masks as computing them per object."""
    from fsam2lib.bench.spec import untrained_router
    from fsam2lib.videos.frames import init_state_from_frames

    video, mask = _video(5)
    second = np.zeros_like(mask)
    second[30:44, 40:60] = True
    micro.router = untrained_router(micro, text_dim=32)
    embedding = F.normalize(torch.randn(1, 32, generator=torch.Generator().manual_seed(1)), dim=-1)
    micro.text_encoder = lambda texts: embedding.expand(len(texts), -1)
    calls = []
    handle = micro.router.visual.register_forward_hook(lambda *_: calls.append(1))

    def run() -> torch.Tensor:
        calls.clear()
        state = init_state_from_frames(micro, video)
        micro.add_new_mask(state, 0, 1, mask, text="red square")
        micro.add_new_mask(state, 0, 2, second, text="blue disc")
        return torch.stack([m for _, _, m in micro.propagate_in_video(state)])

    try:
        shared = run()
        assert len(calls) == 2 + 4  # two prompts, then once per tracked frame
        monkeypatch.setattr(PrunedSAM2VideoPredictor, "_shared_per_frame", lambda *a: None)
        alone = run()
        assert len(calls) == 2 + 4 * 2  # once per object and tracked frame
    finally:
        handle.remove()
        micro.text_encoder = None
    assert torch.equal(shared, alone)
