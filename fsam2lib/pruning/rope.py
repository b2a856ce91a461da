"""Rotary position encodings at explicit grid indices, for pruned token sequences.

SAM2's ``RoPEAttention`` infers the token grid from ``sqrt(sequence length)`` and caches
its frequency table on the module. Once tokens are pruned that inference is wrong (it
asserts, mis-shapes, or -- for a perfect-square count -- silently rotates tokens with the
wrong positions and corrupts the module's cache). Here the table is built for the true
``(H, W)`` grid with sam2's own ``compute_axial_cis`` and each kept token is rotated with
the row of its own grid index (row-major, ``index = y * W + x``). The module's projection
layers are reused as they are; its cached table is only ever set to the full grid's table,
as its own forward would set it (``PrunedMemoryAttention``'s ``_FreqsCache``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from sam2.modeling.sam.transformer import Attention, RoPEAttention
from torch import Tensor

from fsam2lib.pruning.hot_path import moved

GATE_LOGIT_CAP = 10.0  # largest logit above the kept keys' peak that a pruned key's gradient sees


def grid_freqs(attn: RoPEAttention, height: int, width: int) -> Tensor:
    """Complex rotary table ``[H*W, D/2]`` of ``attn`` for a full ``height x width`` grid.

    Row ``y * width + x`` holds the frequencies of the token at ``(x, y)``; this is the
    same table ``RoPEAttention`` builds for a square grid (``compute_axial_cis`` with
    ``end_x = width``, ``end_y = height``), valid for non-square grids too.
    """
    if not isinstance(attn, RoPEAttention):
        raise TypeError(f"grid_freqs needs a RoPEAttention module, got {type(attn).__name__}")
    if height < 1 or width < 1:
        raise ValueError(f"grid must be positive, got height={height}, width={width}")
    return attn.compute_cis(end_x=width, end_y=height)


def gather_freqs(table: Tensor, idx: Tensor) -> Tensor:
    """Rows of a rotary ``table`` ``[H*W, D/2]`` at grid indices ``idx`` ``[B, K]`` -> ``[B, K, D/2]``."""
    if idx.dim() != 2:
        raise ValueError(f"indices must be [B, K], got shape {tuple(idx.shape)}")
    return moved(table, idx.device)[idx]


def rotate(x: Tensor, freqs: Tensor) -> Tensor:
    """Rotate ``x`` ``[B, heads, N, D]`` by per-token complex ``freqs`` ``[B, N, D/2]``.

    Same arithmetic as sam2's ``apply_rotary_enc`` (float32 complex product, cast back),
    so unpruned tokens get bit-identical results.
    """
    b, _, n, d = x.shape
    if freqs.shape != (b, n, d // 2):
        raise ValueError(
            f"rotary frequencies {tuple(freqs.shape)} do not match tokens {tuple(x.shape)} "
            f"(expected {(b, n, d // 2)})"
        )
    x_c = torch.view_as_complex(x.float().reshape(b, x.shape[1], n, d // 2, 2))
    return torch.view_as_real(x_c * freqs.unsqueeze(1)).flatten(3).type_as(x)


def rope_attention(
    attn: Attention,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    q_freqs: Tensor | None,
    k_freqs: Tensor | None,
    num_k_exclude_rope: int = 0,
    key_gate: Tensor | None = None,
) -> Tensor:
    """``attn``'s forward with rotary encodings given per token instead of inferred.

    q ``[B, Nq, C]``, k/v ``[B, Nk, Ck]`` (batch-first, as SAM2's memory-attention layers
    call their attention modules). ``q_freqs`` ``[B, Nq, D/2]`` and ``k_freqs``
    ``[B, Nk - num_k_exclude_rope, D/2]`` come from :func:`gather_freqs`; the last
    ``num_k_exclude_rope`` keys (object pointers) stay unrotated, as in SAM2. Pass ``None``
    for both to run a module without rotary encoding (plain ``Attention``).

    ``key_gate`` ``[B, Nk]`` (training, :func:`gated_attention`): a 0/1 keep gate per key
    whose gradient reaches the scores that chose it.
    """
    if (q_freqs is None) != (k_freqs is None):
        raise ValueError("q_freqs and k_freqs must be given together (or both None)")
    if q_freqs is not None and not isinstance(attn, RoPEAttention):
        raise TypeError(f"rotary frequencies given for a non-rotary {type(attn).__name__}")
    if not 0 <= num_k_exclude_rope <= k.shape[1]:
        raise ValueError(f"num_k_exclude_rope={num_k_exclude_rope} outside [0, {k.shape[1]}]")
    q = attn._separate_heads(attn.q_proj(q), attn.num_heads)
    k = attn._separate_heads(attn.k_proj(k), attn.num_heads)
    v = attn._separate_heads(attn.v_proj(v), attn.num_heads)
    if q_freqs is not None:
        num_k_rope = k.shape[2] - num_k_exclude_rope
        q = rotate(q, q_freqs)
        # in place, as sam2's RoPEAttention: a concatenation would copy every key once more
        k[:, :, :num_k_rope] = rotate(k[:, :, :num_k_rope], k_freqs)
    if key_gate is not None:
        out = gated_attention(q, k, v, key_gate)
    else:
        dropout_p = attn.dropout_p if attn.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p)
    return attn.out_proj(attn._recombine_heads(out))


def gated_attention(q: Tensor, k: Tensor, v: Tensor, key_gate: Tensor) -> Tensor:
    """Softmax attention ``[B, heads, Nq, D]`` in which key j's weight is multiplied by
    ``key_gate[:, j]`` before normalising: the additive log-gate ``logits + log(gate)``
    written so that a gate of exactly 0 (a pruned key) removes the key from the forward pass,
    as pruning does, yet still has a finite gradient (how much attending to it would have
    changed the output). Why not ``log``: its gradient at 0 is infinite."""
    logits = (q.float() @ k.float().transpose(-2, -1)) * q.shape[-1] ** -0.5
    gate = key_gate.float()[:, None, None, :]
    peak = logits.masked_fill(gate == 0, -torch.inf).amax(-1, keepdim=True).detach()
    # a pruned key far above the kept ones would overflow; its forward weight is 0 anyway
    weights = (logits - peak).clamp(max=GATE_LOGIT_CAP).exp() * gate
    weights = weights / weights.sum(-1, keepdim=True).clamp(min=1e-30)
    return (weights @ v.float()).type_as(v)
