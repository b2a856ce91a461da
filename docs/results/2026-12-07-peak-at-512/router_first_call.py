"""What the router's first call leaves resident: RSS (anonymous) and executable anonymous
memory (compiled kernels) after a first and a second call of an untrained router of the
shipped design sized for sam2.1_hiera_t (RANDOM weights: cost only), on a GRID x GRID token map.

    python router_first_call.py GRID
    ONEDNN_PRIMITIVE_CACHE_CAPACITY=0 python router_first_call.py GRID
"""

import ctypes
import dataclasses
import gc
import os
import sys

import torch
import torch.nn.functional as F

from fsam2lib.pruning.router import TokenRouter, shipped_router_config
from fsam2lib.pruning.scorers import ScoringInputs

MIB = 1024  # /proc reports KiB


def _resident() -> tuple[float, float]:
    """(anonymous RSS, resident executable anonymous mappings) in MiB, after glibc returns
    what it can."""
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status") as status:
        anon = next(int(line.split()[1]) for line in status if line.startswith("RssAnon"))
    executable, in_exec = 0, False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            parts = line.split()
            # a mapping's header is "range perms offset dev inode [path]": no path, anonymous
            if not parts[0].endswith(":"):
                in_exec = "x" in parts[1] and len(parts) == 5
            elif parts[0] == "Rss:" and in_exec:
                executable += int(parts[1])
    return anon / MIB, executable / MIB


def main(grid: int) -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    config = dataclasses.replace(shipped_router_config(), feat_dim=256, text_dim=512, detail_dim=32)
    router = TokenRouter(config).eval()
    inputs = ScoringInputs(
        features=torch.randn(1, 256, grid, grid),
        frame_idx=3,
        prev_mask_logits=torch.randn(1, 1, 4 * grid, 4 * grid),
        text_embedding=F.normalize(torch.randn(1, 512), dim=-1),
        detail=torch.randn(1, 32, 2 * grid, 2 * grid),
        keep_ratio=0.3,
    )
    with torch.no_grad():
        torch.nn.Conv2d(3, 8, 3)(torch.randn(1, 3, 32, 32))  # both libraries started
        torch.randn(256, 256) @ torch.randn(256, 1024)
        before = _resident()
        router(dataclasses.replace(inputs, frame_cache={}))
        first = _resident()
        router(dataclasses.replace(inputs, frame_cache={}))
        second = _resident()
    cache = os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "default")
    print(
        f"grid {grid}, oneDNN cache {cache}: anonymous RSS first call "
        f"{first[0] - before[0]:+.2f} MiB, second {second[0] - first[0]:+.2f}; "
        f"executable anonymous first {first[1] - before[1]:+.2f}, second {second[1] - first[1]:+.2f}"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]))
