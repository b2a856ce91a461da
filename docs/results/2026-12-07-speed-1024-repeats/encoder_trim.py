"""Does handing freed heap back to the OS (the lean policy's ``malloc_trim`` after each tracked
frame) slow the next image encoder call? hiera_t, RANDOM weights, 1024 px, 2 threads: the
encoder run 12 times, a ``malloc_trim`` before every other call; medians of the seconds and
of the minor page faults each call took.

Usage: python encoder_trim.py > encoder_trim.txt
"""

import resource
import statistics
import time
import warnings

import torch

from fsam2lib.models.sam2 import load_sam2
from fsam2lib.predictor.bounded_state import trim_heap

warnings.filterwarnings("ignore")

torch.set_num_threads(2)
m = load_sam2("sam2.1_hiera_t", weights="random", image_size=1024, seed=0)
x = torch.randn(1, 3, 1024, 1024)
res = {"trim": [], "keep": []}
flt = {"trim": [], "keep": []}
with torch.inference_mode():
    m.forward_image(x)
    for i in range(12):
        mode = "trim" if i % 2 else "keep"
        if mode == "trim":
            trim_heap()
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t = time.perf_counter()
        m.forward_image(x)
        res[mode].append(time.perf_counter() - t)
        flt[mode].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
for k in res:
    print(
        k,
        "median s",
        round(statistics.median(res[k]), 3),
        [round(v, 2) for v in res[k]],
        "minor faults",
        statistics.median(flt[k]),
    )
