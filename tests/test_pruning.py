"""PruningConfig validation, selection, the non-learned strategies, and PrunedMemoryAttention
against SAM2's own MemoryAttention with pruned tokens masked out."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from sam2.modeling.memory_attention import MemoryAttention, MemoryAttentionLayer
from sam2.modeling.sam import transformer
from sam2.modeling.sam.transformer import RoPEAttention

from fsam2lib.pruning.attention import (
    PrunedMemoryAttention,
    PruningPlan,
    gather_tokens,
    scatter_tokens,
)
from fsam2lib.pruning.config import PruningConfig
from fsam2lib.pruning.scorers import (
    GridScorer,
    MaskPriorScorer,
    RandomScorer,
    ScoringInputs,
    check_scores,
    make_scorer,
)
from fsam2lib.pruning.selection import (
    forced_tokens,
    grid_order,
    mask_tokens,
    num_kept,
    prioritise,
    prompt_neighbourhood,
    select_tokens,
)

torch.set_num_threads(1)


# --------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"keep_ratio": 0.0}, "keep_ratio"),
        ({"keep_ratio": 1.5}, "keep_ratio"),
        ({"keep_ratio": float("nan")}, "keep_ratio"),
        ({"keep_ratio": True}, "keep_ratio"),
        ({"keep_ratio": "0.5"}, "keep_ratio"),
        ({"memory_keep_ratio": 0.0}, "memory_keep_ratio"),
        ({"strategy": "topk"}, "strategy"),
        ({"cues": ("visual", "colour")}, "cues"),
        ({"cues": "text"}, "cues"),
        ({"cues": ()}, "cues"),
        ({"cues": ("text", "text")}, "cues"),
        ({"fill": "mean"}, "fill"),
        ({"context": -0.1}, "context"),
        ({"context": 1.5}, "context"),
        ({"context": True}, "context"),
        ({"min_tokens": 0}, "min_tokens"),
        ({"min_tokens": 2.0}, "min_tokens"),
        ({"prompt_radius": -1}, "prompt_radius"),
        ({"seed": -3}, "seed"),
        ({"strategy": "none", "keep_ratio": 0.5}, "strategy='none'"),
    ],
)
def test_config_rejects_bad_values_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        PruningConfig(**kwargs)


def test_config_defaults_normalisation_and_immutability():
    cfg = PruningConfig(keep_ratio=0.5, cues=["text", "visual"])
    assert cfg.cues == ("text", "visual")
    assert cfg.memory_ratio == 0.5
    assert PruningConfig(keep_ratio=0.5, memory_keep_ratio=0.25).memory_ratio == 0.25
    assert PruningConfig(keep_ratio=0.5) == PruningConfig(keep_ratio=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.keep_ratio = 0.3


# --------------------------------------------------------------------------- selection


def test_num_kept():
    assert num_kept(256, 0.5, 16) == 128
    assert num_kept(256, 0.01, 16) == 16
    assert num_kept(256, 1.0, 16) == 256
    assert num_kept(100, 0.7, 1) == 70  # 0.7 * 100 = 70.00000000000001 in floats
    assert num_kept(10, 0.5, 32) == 10
    with pytest.raises(ValueError, match="keep_ratio"):
        num_kept(10, 0.0, 1)


def test_select_tokens_topk_sorted_with_deterministic_ties():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.9, 0.2, 0.5], [1.0, 0.0, 0.0, 0.0, 0.0, 2.0]])
    idx = select_tokens(scores, 3)
    assert idx.tolist() == [[1, 2, 3], [0, 1, 5]]  # ties go to the lower index
    must = torch.zeros_like(scores, dtype=torch.bool)
    must[0, 0] = must[1, 4] = True
    assert select_tokens(scores, 3, must).tolist() == [[0, 1, 3], [0, 4, 5]]
    must[0, :5] = True  # more forced tokens than the budget: all kept
    assert select_tokens(scores, 3, must).tolist() == [[0, 1, 2, 3, 4], [0, 1, 2, 4, 5]]


def test_select_tokens_errors():
    with pytest.raises(ValueError, match="NaN"):
        select_tokens(torch.tensor([[0.0, float("nan")]]), 1)
    with pytest.raises(ValueError, match="keep"):
        select_tokens(torch.zeros(1, 4), 5)
    with pytest.raises(ValueError, match="must_keep"):
        select_tokens(torch.zeros(1, 4), 2, torch.zeros(1, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\[B, H\*W\]"):
        select_tokens(torch.zeros(4), 2)


def test_prioritise_puts_group_first_and_keeps_order():
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.7]])
    first = torch.tensor([[False, True, True, False]])
    assert select_tokens(prioritise(scores, first), 3).tolist() == [[0, 1, 2]]
    assert select_tokens(prioritise(scores, first), 2).tolist() == [[1, 2]]


def test_forced_tokens_add_a_lattice_share_to_the_prompt_neighbourhood():
    grid, keep = (8, 8), 16
    assert forced_tokens(None, grid, keep, 0.0, 2) is None
    lattice = forced_tokens(None, grid, keep, 0.25, 2)  # ceil(0.25 * 16) = 4 lattice tokens
    assert lattice.shape == (2, 64) and lattice.sum(1).tolist() == [4, 4]
    stride4 = torch.zeros(8, 8, dtype=torch.bool)
    stride4[::4, ::4] = True  # the coarsest 4 of grid_order on 8x8: the stride-4 lattice
    assert torch.equal(lattice[0].view(8, 8), stride4)
    must = torch.zeros(2, 64, dtype=torch.bool)
    must[1, 63] = True
    both = forced_tokens(must, grid, keep, 0.25, 2)
    assert both.sum(1).tolist() == [4, 5] and bool(both[1, 63])
    assert not must[0].any()  # the caller's mask is not modified
    # a full share forces the whole budget onto the lattice: the selection is grid's
    scores = torch.randn(1, 64)
    idx = select_tokens(scores, keep, forced_tokens(None, grid, keep, 1.0, 1))
    assert torch.equal(idx, select_tokens(grid_order(grid)[None], keep))


def test_prompt_neighbourhood_and_mask_tokens():
    keep = prompt_neighbourhood(torch.tensor([[[3.5, 2.2], [0.0, 7.9]]]), (8, 8), 1).view(8, 8)
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[1:4, 2:5] = True  # around (x=3, y=2)
    expected[6:8, 0:2] = True  # around (x=0, y=7), clipped at the border
    assert torch.equal(keep, expected)
    logits = torch.full((1, 1, 32, 32), -5.0)
    logits[..., 8:12, 16:20] = 3.0  # token cells (x=4, y=2) of an 8x8 grid
    assert mask_tokens(logits, (8, 8)).nonzero()[:, 1].tolist() == [2 * 8 + 4]
    assert int(mask_tokens(logits, (8, 8), radius=1).sum()) == 9


def test_gather_scatter_round_trip():
    x = torch.randn(12, 2, 3)
    idx = torch.tensor([[0, 5, 7], [1, 2, 11]])
    kept = gather_tokens(x, idx)
    assert torch.equal(kept[:, 1], x[[1, 2, 11], 1])
    dense = scatter_tokens(torch.zeros_like(x), idx, kept)
    assert torch.equal(dense[[0, 5, 7], 0], x[[0, 5, 7], 0])
    assert dense[[1, 2, 3], 0].abs().sum() == 0


# --------------------------------------------------------------------------- strategies


def inputs_for(grid=(16, 16), frame_idx=0, **kw) -> ScoringInputs:
    return ScoringInputs(features=torch.randn(1, 8, *grid), frame_idx=frame_idx, **kw)


@pytest.mark.parametrize(("ratio", "stride"), [(0.25, 2), (1 / 16, 4), (1 / 64, 8)])
def test_grid_selects_uniform_lattice(ratio, stride):
    scores = GridScorer()(inputs_for())["combined"]
    idx = select_tokens(scores, num_kept(256, ratio, 1))
    ys, xs = torch.meshgrid(torch.arange(0, 16, stride), torch.arange(0, 16, stride), indexing="ij")
    assert idx[0].tolist() == (ys * 16 + xs).flatten().tolist()


def test_grid_half_is_checkerboard_and_any_grid_is_a_ranking():
    idx = select_tokens(GridScorer()(inputs_for())["combined"], 128)[0]
    ys, xs = idx // 16, idx % 16
    assert bool(((ys + xs) % 2 == 0).all())
    order = grid_order((12, 10))  # any grid: a strict ranking of all tokens
    assert order.numel() == 120 and len(set(order.tolist())) == 120
    # a partially taken level is spread out: 16 tokens beyond the stride-2 lattice
    kept = select_tokens(GridScorer()(inputs_for())["combined"], 80)[0]
    extra = kept[((kept // 16) % 2 == 1) | ((kept % 16) % 2 == 1)]
    ys, xs = torch.meshgrid(torch.arange(1, 16, 4), torch.arange(1, 16, 4), indexing="ij")
    assert extra.tolist() == (ys * 16 + xs).flatten().tolist()


def test_random_is_seeded_by_seed_and_frame():
    scorer = RandomScorer(seed=3)
    a = select_tokens(scorer(inputs_for(frame_idx=2))["combined"], 40)
    assert torch.equal(a, select_tokens(RandomScorer(3)(inputs_for(frame_idx=2))["combined"], 40))
    assert not torch.equal(a, select_tokens(scorer(inputs_for(frame_idx=3))["combined"], 40))
    assert not torch.equal(
        a, select_tokens(RandomScorer(4)(inputs_for(frame_idx=2))["combined"], 40)
    )
    assert a.shape == (1, 40)


def test_mask_prior_keeps_object_band_then_boundary():
    logits = torch.full((1, 1, 64, 64), -20.0)
    logits[..., 24:40, 24:40] = 20.0  # object = token cells 6..9 x 6..9 of 16x16
    logits[..., 0:4, 60:64] = 0.0  # an ambiguous cell at token (x=15, y=0)
    out = MaskPriorScorer(dilation=1)(inputs_for(prev_mask_logits=logits))
    band = torch.zeros(16, 16, dtype=torch.bool)
    band[5:11, 5:11] = True  # object dilated by one token
    kept = torch.zeros(256, dtype=torch.bool)
    kept[select_tokens(out["combined"], 37)[0]] = True
    assert torch.equal(kept.view(16, 16) & band, band)  # the whole band (36 tokens) ...
    assert bool(kept.view(16, 16)[0, 15])  # ... and the uncertain cell
    assert set(out) == {"combined", "mask", "uncertainty"}


def test_mask_prior_without_or_with_empty_previous_mask_falls_back_to_grid():
    first = MaskPriorScorer()(inputs_for())["combined"]
    assert torch.equal(
        select_tokens(first, 64), select_tokens(GridScorer()(inputs_for())["combined"], 64)
    )
    gone = MaskPriorScorer()(inputs_for(prev_mask_logits=torch.full((1, 1, 64, 64), -1024.0)))
    idx = select_tokens(gone["combined"], num_kept(256, 0.01, 16))
    assert idx.shape == (1, 16) and torch.isfinite(gone["combined"]).all()


class RecordingScorer:
    def __init__(self) -> None:
        self.calls: list[ScoringInputs] = []

    def __call__(self, inputs: ScoringInputs) -> dict[str, torch.Tensor]:
        self.calls.append(inputs)
        return {"combined": inputs.features.mean(1).flatten(1)}


def test_router_strategies_need_a_router_and_pass_cues():
    with pytest.raises(RuntimeError, match=r"predictor\.router"):
        make_scorer(PruningConfig(strategy="router"), None)
    router = RecordingScorer()
    make_scorer(PruningConfig(strategy="router", cues=("visual", "uncertainty")), router)(
        inputs_for()
    )
    make_scorer(PruningConfig(strategy="text_only"), router)(inputs_for())
    assert [c.cues for c in router.calls] == [("visual", "uncertainty"), ("text",)]
    assert make_scorer(PruningConfig(strategy="none"), router) is None


def test_check_scores_validates_scorer_output():
    with pytest.raises(TypeError, match="combined"):
        check_scores({"visual": torch.zeros(1, 4)}, 1, 4, "s")
    with pytest.raises(ValueError, match=r"\(1, 4\)"):
        check_scores({"combined": torch.zeros(1, 5)}, 1, 4, "s")
    with pytest.raises(ValueError, match="finite"):
        check_scores({"combined": torch.full((1, 4), float("inf"))}, 1, 4, "s")


# --------------------------------------------------------------------------- memory attention


class MaskedSDPA:
    """``torch.nn.functional`` for sam2's transformer module with keys masked by length."""

    def __init__(self, key_masks: dict[int, torch.Tensor]) -> None:
        self.key_masks = key_masks

    def __getattr__(self, name: str):
        return getattr(F, name)

    def scaled_dot_product_attention(self, q, k, v, dropout_p=0.0):
        mask = self.key_masks[k.shape[-2]][:, None, None, :]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


def small_memory_attention(pos_at_attn: bool, pos_at_queries: bool) -> MemoryAttention:
    """SAM2.1's memory-attention layout (RoPE self/cross attention, pointer tokens), small."""
    torch.manual_seed(0)
    layer = MemoryAttentionLayer(
        activation="relu",
        cross_attention=RoPEAttention(
            embedding_dim=32, num_heads=2, kv_in_dim=16, rope_k_repeat=True, dropout=0.1
        ),
        d_model=32,
        dim_feedforward=64,
        dropout=0.1,
        pos_enc_at_attn=pos_at_attn,
        pos_enc_at_cross_attn_keys=True,
        pos_enc_at_cross_attn_queries=pos_at_queries,
        self_attention=RoPEAttention(embedding_dim=32, num_heads=2, dropout=0.1),
    )
    return MemoryAttention(d_model=32, pos_enc_at_input=True, layer=layer, num_layers=2).eval()


@dataclasses.dataclass
class Source:
    """A stored memory frame as PrunedMemoryAttention sees it."""

    frame_idx: int
    memory_keep_idx: torch.Tensor | None
    is_compact: bool = False


def keep_idx(n: int, k: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k].sort().values[None]


def bool_mask(idx: torch.Tensor, n: int) -> torch.Tensor:
    return torch.zeros(1, n, dtype=torch.bool).scatter_(1, idx, True)


@pytest.mark.parametrize(("pos_at_attn", "pos_at_queries"), [(False, False), (True, True)])
def test_pruned_memory_attention_equals_masked_full(monkeypatch, pos_at_attn, pos_at_queries):
    grid, hw, ptr = (8, 8), 64, 8
    stock = small_memory_attention(pos_at_attn, pos_at_queries)
    pruned = PrunedMemoryAttention.convert(copy.deepcopy(stock))
    assert list(pruned.state_dict()) == list(stock.state_dict())
    torch.manual_seed(1)
    curr, curr_pos = torch.randn(hw, 1, 32), torch.randn(hw, 1, 32)
    memory, memory_pos = torch.randn(3 * hw + ptr, 1, 16), torch.randn(3 * hw + ptr, 1, 16)
    query_idx = keep_idx(hw, 25, 0)
    memory_idx = [keep_idx(hw, 30, 1), None, keep_idx(hw, 9, 2)]  # each frame its own tokens
    memory_mask = torch.cat(
        [
            bool_mask(memory_idx[0], hw),
            torch.ones(1, hw, dtype=torch.bool),
            bool_mask(memory_idx[2], hw),
        ]
        + [torch.ones(1, ptr, dtype=torch.bool)],
        dim=1,
    )
    with torch.no_grad():
        dense_stock = stock(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=ptr)
        assert torch.equal(
            pruned(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=ptr), dense_stock
        )
        monkeypatch.setattr(
            transformer, "F", MaskedSDPA({hw: bool_mask(query_idx, hw), 3 * hw + ptr: memory_mask})
        )
        reference = stock(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=ptr)[query_idx[0]]
        monkeypatch.undo()
        kept = pruned.forward_pruned(
            curr, memory, curr_pos, memory_pos, ptr, grid, query_idx, memory_idx
        )
    torch.testing.assert_close(kept, reference, rtol=0, atol=1e-5)
    assert not torch.allclose(kept, dense_stock[query_idx[0]], atol=1e-3)  # pruning did matter


def rope_tables(module: MemoryAttention) -> list[torch.Tensor]:
    """Every rotary table ``module`` holds: its RoPE modules' own and any kept beside them."""
    own = [m.freqs_cis for m in module.modules() if isinstance(m, RoPEAttention)]
    return own + list(module.__dict__.get("_rope_tables", {}).values())


@pytest.mark.parametrize("grid", [(8, 8), (6, 10)])
def test_pruning_holds_no_more_rotary_table_than_stock(grid):
    """Stock SAM2 swaps each RoPE module's 64 x 64 default table for the grid it meets; the
    pruned path once kept the default beside a table of its own (24 MiB at 512 px on
    hiera_t, the whole memory cost of pruning there). On a square grid it now holds what
    stock holds; a non-square grid, which stock cannot rotate, adds one table per grid."""
    hw, ptr = grid[0] * grid[1], 4
    stock = small_memory_attention(False, False)
    pruned = PrunedMemoryAttention.convert(copy.deepcopy(stock))
    torch.manual_seed(3)
    curr, curr_pos = torch.randn(hw, 1, 32), torch.randn(hw, 1, 32)
    memory, memory_pos = torch.randn(2 * hw + ptr, 1, 16), torch.randn(2 * hw + ptr, 1, 16)
    default_rows = 64 * 64
    assert all(t.shape[0] == default_rows for t in rope_tables(pruned))
    with torch.no_grad():
        for _ in range(2):
            pruned.forward_pruned(
                curr, memory, curr_pos, memory_pos, ptr, grid, keep_idx(hw, 20, 5), [None, None]
            )
        if grid[0] == grid[1]:
            stock(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=ptr)
    held = rope_tables(pruned)
    if grid[0] == grid[1]:
        assert [t.shape for t in held] == [t.shape for t in rope_tables(stock)]
        assert all(t.shape[0] == hw for t in held)
    else:  # the modules keep their default; one shared table for the grid beside them
        assert sorted(t.shape[0] for t in held) == [hw] + [default_rows] * 4


def test_planned_forward_scatters_onto_fill_and_reports_memory():
    grid, hw, ptr = (8, 8), 64, 4
    pruned = PrunedMemoryAttention.convert(small_memory_attention(False, False))
    torch.manual_seed(2)
    curr, curr_pos = torch.randn(hw, 1, 32), torch.randn(hw, 1, 32)
    memory, memory_pos = torch.randn(2 * hw + ptr, 1, 16), torch.randn(2 * hw + ptr, 1, 16)
    sources = [Source(3, keep_idx(hw, 10, 3)), Source(5, None)]
    fill = torch.randn(hw, 1, 32)
    plan = PruningPlan(grid=grid, query_idx=keep_idx(hw, 20, 4), fill=fill, memory_sources=sources)
    with torch.no_grad():
        with pruned.planned(plan):
            dense = pruned([curr], memory, [curr_pos], memory_pos, num_obj_ptr_tokens=ptr)
        kept = pruned.forward_pruned(
            curr,
            memory,
            curr_pos,
            memory_pos,
            ptr,
            grid,
            plan.query_idx,
            [s.memory_keep_idx for s in sources],
        )
    pruned_rows = ~bool_mask(plan.query_idx, hw)[0]
    assert torch.equal(dense[pruned_rows], fill[pruned_rows])
    assert torch.equal(dense[plan.query_idx[0]], kept)
    assert list(plan.attended) == [3, 5] and plan.attended[5] is None  # frame 5: every token
    assert torch.equal(plan.attended[3], sources[0].memory_keep_idx)
    assert pruned._plan is None  # the plan is only active inside the block
    with pytest.raises(RuntimeError, match="memory layout"):
        with pruned.planned(
            PruningPlan(grid=grid, query_idx=plan.query_idx, fill=fill, memory_sources=sources[:1])
        ):
            pruned(curr, memory, curr_pos, memory_pos, num_obj_ptr_tokens=ptr)


def test_compact_chunks_give_the_same_output_as_dense_ones():
    """A chunk holding only a frame's kept tokens (in index order, int32 indices) attends
    exactly like the dense chunk with the same indices; its position encoding stays dense
    (SAM2's one shared encoding), and a memory of compact chunks only is read as it is."""
    grid, hw, ptr = (8, 8), 64, 4
    pruned = PrunedMemoryAttention.convert(small_memory_attention(True, True))
    torch.manual_seed(3)
    curr, curr_pos = torch.randn(hw, 1, 32), torch.randn(hw, 1, 32)
    memory, memory_pos = torch.randn(2 * hw + ptr, 1, 16), torch.randn(2 * hw + ptr, 1, 16)
    query_idx, first = keep_idx(hw, 20, 4), keep_idx(hw, 12, 5)
    compact_rows = torch.cat([first[0], torch.arange(hw, 2 * hw + ptr)])
    with torch.no_grad():
        dense = pruned.forward_pruned(
            curr, memory, curr_pos, memory_pos, ptr, grid, query_idx, [first, None]
        )
        compact = pruned.forward_pruned(
            curr,
            memory[compact_rows],
            curr_pos,
            memory_pos,
            ptr,
            grid,
            query_idx,
            [first.to(torch.int32), None],
            [True, False],
        )
    assert torch.equal(dense, compact)
    # every chunk compact: the memory is attended as concatenated, with no gather
    second = keep_idx(hw, 30, 6)
    both_rows = torch.cat([first[0], hw + second[0], torch.arange(2 * hw, 2 * hw + ptr)])
    with torch.no_grad():
        dense = pruned.forward_pruned(
            curr, memory, curr_pos, memory_pos, ptr, grid, query_idx, [first, second]
        )
        compact = pruned.forward_pruned(
            curr,
            memory[both_rows],
            curr_pos,
            memory_pos,
            ptr,
            grid,
            query_idx,
            [first.to(torch.int32), second.to(torch.int32)],
            [True, True],
        )
    assert torch.equal(dense, compact)
    with pytest.raises(RuntimeError, match="memory_pos has"):
        pruned.forward_pruned(
            curr,
            memory[both_rows],
            curr_pos,
            memory_pos[both_rows],
            ptr,
            grid,
            query_idx,
            [first, second],
            [True, True],
        )
    with pytest.raises(ValueError, match="one chunk per memory_idx"):
        pruned.forward_pruned(
            curr, memory, curr_pos, memory_pos, ptr, grid, query_idx, [first, None], [True]
        )


def test_convert_only_accepts_memory_attention():
    with pytest.raises(TypeError, match="MemoryAttention"):
        PrunedMemoryAttention.convert(torch.nn.Linear(2, 2))
