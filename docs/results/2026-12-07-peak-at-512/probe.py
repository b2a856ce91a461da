"""Where the peak of a 512 px run lies, and what is live there: stock SAM2 against the pruned
path, both with the lean state policy (hiera_t, RANDOM weights: cost only).

Run with glibc's thresholds fixed so that RSS follows live tensors:
    MALLOC_MMAP_THRESHOLD_=131072 MALLOC_TRIM_THRESHOLD_=131072 \
        python probe.py stock|pruned FRAMES AT [AT ...] > out.json
    python probe.py out.json [out.json ...]    prints the table

Configurations: ``stock`` (unpruned), ``pruned`` (router at keep 0.3, with the video's
description), ``pruned-notext`` (the same without a description).

A thread samples RSS every 0.2 ms and notes which SAM2 stage (or the router) was running at
the peak. At the image encoder's start on each frame in AT it records, relative to the RSS
after the model was loaded (the bench's baseline): RSS, its anonymous part (not backed by a
file), the bytes of live non-parameter tensors (every tensor the garbage collector can reach,
storages counted once), and glibc's heap (mallinfo2: bytes in use and bytes free inside its
arenas), and what else could hold memory outside both: Python's small-object arenas and
the modules imported since loading.
"""

import ctypes
import gc
import json
import os
import pathlib
import re
import sys
import tempfile
import threading
import time

import torch

from fsam2lib.bench.profiling import rss_bytes
from fsam2lib.bench.runner import measure_run, save_jpeg_folder
from fsam2lib.bench.sources import cost_video
from fsam2lib.bench.spec import ModelSpec, open_predictor
from fsam2lib.pruning.config import PruningConfig

MIB = 2**20


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
    ]


def _heap() -> tuple[int, int]:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    info = libc.mallinfo2()
    return info.uordblks, info.fordblks


def _anonymous() -> int:
    """Bytes of RSS not backed by a file (``/proc/self/smaps_rollup``): allocations of any
    allocator, as against pages of the shared libraries' code and data."""
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Anonymous:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no Anonymous line in /proc/self/smaps_rollup")


def _pymalloc_arenas() -> int:
    """Arenas Python's small-object allocator holds (256 KiB or more each, mmapped outside
    glibc's heap), read from ``sys._debugmallocstats``, which writes to the C stderr."""
    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        os.dup2(out.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        stats = out.read().decode()
    found = re.search(r"# arenas allocated current\s*=\s*([\d,]+)", stats)
    if found is None:
        raise RuntimeError("sys._debugmallocstats printed no arena count")
    return int(found.group(1).replace(",", ""))


def _tensor_bytes(skip: set[int]) -> int:
    storages = {}
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor):
            storage = obj.untyped_storage()
            if storage.data_ptr() not in skip:
                storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def probe(config_name: str, frames: int, at: list[int]) -> dict:
    torch.set_num_threads(2)
    pruned = config_name.startswith("pruned")
    spec = ModelSpec(model="sam2.1_hiera_t", weights="random", image_size=512)
    with open_predictor(spec, ["router"] if pruned else [], 0) as (pred, _):
        modules = {
            "image_encoder": pred.image_encoder,
            "memory_attention": pred.memory_attention,
            "mask_decoder": pred.sam_mask_decoder,
            "memory_encoder": pred.memory_encoder,
        }
        if pred.router is not None:
            modules["router"] = pred.router
        weights = {
            t.untyped_storage().data_ptr()
            for m in [pred, pred.router]
            if m is not None
            for t in [*m.parameters(), *m.buffers()]
        }
        video = cost_video(512, frames, size=(480, 854))
        folder = save_jpeg_folder(video, pathlib.Path(tempfile.mkdtemp()))
        stage, peak, calls, samples = ["setup"], {"rss": 0, "stage": None}, [0], []
        base = {}

        def encoder_starts(module, args) -> None:
            calls[0] += 1  # the prompted frame is call 1, tracked frame t is call t + 1
            if calls[0] - 1 in at:
                used, free = _heap()
                samples.append(
                    {
                        "frame": calls[0] - 1,
                        "rss_mib": (rss_bytes() - base["rss"]) / MIB,
                        "anonymous_mib": (_anonymous() - base["anonymous"]) / MIB,
                        "tensors_mib": (_tensor_bytes(weights) - base["tensors"]) / MIB,
                        "heap_used_mib": (used - base["used"]) / MIB,
                        "heap_free_mib": (free - base["free"]) / MIB,
                        "pymalloc_arenas": _pymalloc_arenas() - base["arenas"],
                        "modules": len(sys.modules) - base["modules"],
                    }
                )

        for name, module in modules.items():
            module.register_forward_pre_hook(lambda m, a, n=name: stage.__setitem__(0, n))
            module.register_forward_hook(lambda m, a, o, n=name: stage.__setitem__(0, "after " + n))
        pred.image_encoder.register_forward_pre_hook(encoder_starts)
        gc.collect()
        used, free = _heap()
        base.update(
            rss=rss_bytes(),
            anonymous=_anonymous(),
            tensors=_tensor_bytes(weights),
            used=used,
            free=free,
            arenas=_pymalloc_arenas(),
            modules=len(sys.modules),
        )
        running = [True]

        def sample() -> None:
            with open("/proc/self/statm") as statm:
                while running[0]:
                    statm.seek(0)
                    rss = int(statm.read().split()[1]) * 4096
                    if rss > peak["rss"]:
                        peak.update(rss=rss, stage=stage[0])
                    time.sleep(0.0002)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        config = PruningConfig(keep_ratio=0.3) if pruned else PruningConfig(strategy="none")
        text = video.descriptions.get(1) if config_name == "pruned" else None
        run = measure_run(pred, video, config, text, False, None, "lean", folder, 1)
        running[0] = False
        sampler.join()
    return {
        "config": config_name + "+lean",
        "allocator": _allocator(),
        "frames": frames,
        "peak_stage": peak["stage"],
        "working_set_mib": (run["peak_rss_bytes"] - run["baseline_rss_bytes"]) / MIB,
        "at_encoder_start": samples,
    }


def _allocator() -> str:
    """Which malloc served the run: jemalloc if preloaded, else glibc and its thresholds; and
    oneDNN's primitive cache capacity where it was set (``dnn N``)."""
    if "jemalloc" in os.environ.get("LD_PRELOAD", ""):
        return "jemalloc"
    mmap = os.environ.get("MALLOC_MMAP_THRESHOLD_", "dynamic")
    cache = os.environ.get("ONEDNN_PRIMITIVE_CACHE_CAPACITY")
    return f"glibc mmap {mmap}" + (f" dnn {cache}" if cache is not None else "")


def table(results: list[dict]) -> str:
    lines = [
        "config              malloc                   working set  peak in         frame  RSS    "
        "anonymous  tensors  heap used  heap free  py arenas  modules",
        "------------------  -----------------------  -----------  --------------  -----  -----  "
        "---------  -------  ---------  ---------  ---------  -------",
    ]
    for r in results:
        for i, s in enumerate(r["at_encoder_start"]):
            head = (
                f"{r['config']:<18}  {r.get('allocator', 'glibc mmap 131072'):<23}"
                f"  {r['working_set_mib']:11.1f}  {r['peak_stage']:<14}"
                if i == 0
                else " " * 73
            )
            lines.append(
                f"{head}  {s['frame']:5d}  {s['rss_mib']:5.1f}  {s['anonymous_mib']:9.1f}"
                f"  {s['tensors_mib']:7.1f}"
                f"  {s['heap_used_mib']:9.1f}  {s['heap_free_mib']:9.1f}"
                f"  {s.get('pymalloc_arenas', '-'):>9}  {s.get('modules', '-'):>7}"
            )
    lines.append(
        "MiB above the RSS after the model was loaded; working set = peak RSS - that RSS; the "
        "other columns at the image encoder's start on that frame (0: the prompted frame); "
        "anonymous: RSS not backed by a file (any allocator's memory, not library pages); "
        "heap: glibc's (zero under jemalloc); py arenas, modules: how many more than after "
        "loading ('-': not recorded by the first version of this probe)"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1].endswith(".json"):
        print(table([json.loads(pathlib.Path(p).read_text()) for p in sys.argv[1:]]))
    else:
        print(
            json.dumps(
                probe(sys.argv[1], int(sys.argv[2]), [int(a) for a in sys.argv[3:]]), indent=1
            )
        )
