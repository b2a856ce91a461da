"""Helpers for the per-frame path (scoring, selection, memory attention).

On a GPU a tracked frame costs launches and host syncs more than FLOPs, so this path reads
nothing back to the host and dispatches no op that changes nothing: a ``.to()`` or
``.float()`` of a tensor that already has that device and dtype is still a dispatched op.
"""

from __future__ import annotations

import torch
from torch import Tensor


def moved(
    x: Tensor, device: torch.device | str | None = None, dtype: torch.dtype | None = None
) -> Tensor:
    """``x`` on ``device`` with ``dtype`` (each None: unchanged); ``x`` itself when it already
    is, without dispatching anything."""
    device = None if device is None else torch.device(device)
    same_device = (
        device is None
        or x.device == device
        or (device.index is None and x.device.type == device.type)
    )
    if same_device and (dtype is None or x.dtype == dtype):
        return x
    return x.to(device=device if not same_device else x.device, dtype=dtype or x.dtype)
