"""Rotary encodings at explicit grid indices: equal to SAM2's own RoPE attention at full
keep, and to full attention with pruned keys masked out when tokens are pruned."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sam2.modeling import position_encoding
from sam2.modeling.sam import transformer
from sam2.modeling.sam.transformer import RoPEAttention

from fsam2lib.pruning.rope import gather_freqs, grid_freqs, rope_attention, rotate

torch.set_num_threads(1)


class MaskedSDPA:
    """Stand-in for ``torch.nn.functional`` inside sam2's transformer module: the same
    functions, except that attention masks keys by sequence length (a reference for
    "full attention with pruned keys masked out")."""

    def __init__(self, key_masks: dict[int, torch.Tensor]) -> None:
        self.key_masks = key_masks  # number of keys -> bool [B, Nk]

    def __getattr__(self, name: str):
        return getattr(F, name)

    def scaled_dot_product_attention(self, q, k, v, dropout_p=0.0):
        mask = self.key_masks[k.shape[-2]][:, None, None, :]
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


def make_attn(kv_in_dim: int | None = None, repeat: bool = False, heads: int = 2) -> RoPEAttention:
    torch.manual_seed(0)
    return RoPEAttention(
        embedding_dim=32,
        num_heads=heads,
        kv_in_dim=kv_in_dim,
        rope_k_repeat=repeat,
        feat_sizes=(8, 8),
    ).eval()


def random_keep(b: int, n: int, k: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(n, generator=gen)[:k].sort().values for _ in range(b)])


def to_mask(idx: torch.Tensor, n: int) -> torch.Tensor:
    return torch.zeros(idx.shape[0], n, dtype=torch.bool).scatter_(1, idx, True)


def take(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Batch-first gather: x [B, N, C] at idx [B, K]."""
    return x.gather(1, idx[..., None].expand(-1, -1, x.shape[-1]))


def test_table_rows_are_row_major_true_positions():
    attn = make_attn()
    rect = grid_freqs(attn, 6, 10)  # H=6, W=10
    square = grid_freqs(attn, 10, 10)
    ys, xs = torch.meshgrid(torch.arange(6), torch.arange(10), indexing="ij")
    assert rect.shape == (60, 8)
    assert torch.equal(rect, square[(ys * 10 + xs).flatten()])
    # and identical to sam2's own table for a square grid
    assert torch.equal(square, position_encoding.compute_axial_cis(16, 10, 10))


def test_full_keep_equals_stock_rope_attention():
    b, hw, frames, ptr = 2, 64, 3, 4
    torch.manual_seed(1)
    self_attn, cross = make_attn(), make_attn(kv_in_dim=16, repeat=True)
    q = torch.randn(b, hw, 32)
    mem = torch.randn(b, frames * hw + ptr, 16)
    full = torch.arange(hw).expand(b, -1)
    table = grid_freqs(self_attn, 8, 8)
    q_f = gather_freqs(table, full)
    k_f = gather_freqs(table, full.repeat(1, frames))
    with torch.no_grad():
        torch.testing.assert_close(
            rope_attention(self_attn, q, q, q, q_f, q_f), self_attn(q, q, q), rtol=0, atol=1e-6
        )
        ours = rope_attention(cross, q, mem, mem, q_f, k_f, num_k_exclude_rope=ptr)
        stock = cross(q, mem.clone(), mem, num_k_exclude_rope=ptr)
    torch.testing.assert_close(ours, stock, rtol=0, atol=1e-6)


@pytest.mark.parametrize("keep_q", [20, 16])  # 16 is a perfect square: stock silently mis-rotates
def test_pruned_cross_attention_equals_masked_full(monkeypatch, keep_q):
    b, hw, frames, ptr = 2, 64, 3, 4
    torch.manual_seed(2)
    cross = make_attn(kv_in_dim=16, repeat=True)
    q = torch.randn(b, hw, 32)
    mem = torch.randn(b, frames * hw + ptr, 16)
    q_idx = random_keep(b, hw, keep_q, seed=0)
    frame_idx = [random_keep(b, hw, k, seed=10 + f) for f, k in enumerate((30, 12, 50))]
    key_mask = torch.cat(
        [to_mask(i, hw) for i in frame_idx] + [torch.ones(b, ptr, dtype=torch.bool)], 1
    )

    monkeypatch.setattr(transformer, "F", MaskedSDPA({frames * hw + ptr: key_mask}))
    with torch.no_grad():
        reference = take(cross(q, mem.clone(), mem, num_k_exclude_rope=ptr), q_idx)
    monkeypatch.undo()

    table_before = cross.freqs_cis.clone()
    mem_index = torch.cat(
        [f * hw + i for f, i in enumerate(frame_idx)]
        + [frames * hw + torch.arange(ptr).expand(b, -1)],
        1,
    )
    table = grid_freqs(cross, 8, 8)
    kept_mem = take(mem, mem_index)
    with torch.no_grad():
        ours = rope_attention(
            cross,
            take(q, q_idx),
            kept_mem,
            kept_mem,
            gather_freqs(table, q_idx),
            gather_freqs(table, torch.cat(frame_idx, 1)),
            num_k_exclude_rope=ptr,
        )
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5)
    assert torch.equal(cross.freqs_cis, table_before)  # the module's cache is untouched


def test_stock_rope_is_wrong_on_pruned_perfect_square(monkeypatch):
    """The pitfall this module exists for: 16 kept tokens of an 8x8 grid are rotated as a
    4x4 grid by RoPEAttention, and its cached table is replaced."""
    b, hw = 1, 64
    torch.manual_seed(3)
    attn = make_attn()
    x = torch.randn(b, hw, 32)
    idx = random_keep(b, hw, 16, seed=4)
    monkeypatch.setattr(transformer, "F", MaskedSDPA({hw: to_mask(idx, hw)}))
    with torch.no_grad():
        attn(x, x, x)  # builds the 8x8 table
        reference = take(attn(x, x, x), idx)
    monkeypatch.undo()
    q_f = gather_freqs(grid_freqs(attn, 8, 8), idx)
    kept = take(x, idx)
    with torch.no_grad():
        ours = rope_attention(attn, kept, kept, kept, q_f, q_f)
        stock = attn(kept, kept, kept)
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5)
    assert (stock - reference).abs().max() > 1e-3
    assert attn.freqs_cis.shape[0] == 16  # stock overwrote its cache with a 4x4 table


def test_rotate_and_rope_attention_reject_mismatched_shapes():
    attn = make_attn()
    x = torch.randn(1, 2, 5, 16)
    with pytest.raises(ValueError, match="rotary frequencies"):
        rotate(x, torch.ones(1, 4, 8, dtype=torch.complex64))
    q = torch.randn(1, 5, 32)
    f = gather_freqs(grid_freqs(attn, 8, 8), torch.arange(5)[None])
    with pytest.raises(ValueError, match="together"):
        rope_attention(attn, q, q, q, f, None)
    with pytest.raises(ValueError, match="num_k_exclude_rope"):
        rope_attention(attn, q, q, q, f, f, num_k_exclude_rope=6)
    with pytest.raises(ValueError, match="indices"):
        gather_freqs(grid_freqs(attn, 8, 8), torch.arange(5))
    with pytest.raises(ValueError, match="grid"):
        grid_freqs(attn, 0, 8)
