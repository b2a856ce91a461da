"""Benchmarks of token pruning for SAM2: cost (time per stage, FLOPs, memory) and accuracy (J&F).

    python -m fsam2lib.bench efficiency --model sam2.1_hiera_t --weights random \\
        --image-size 1024 --frames 16 --keep 1.0,0.5,0.3,0.2 [--strategy router] \\
        [--device cuda] [--bf16] [--repeats 3] [--quick] --json out.json
    python -m fsam2lib.bench accuracy --model micro --dataset synthetic:val:20 \\
        --keep 1.0,0.5,0.3,0.2,0.1 --strategies router,random,grid,mask_prior,text_only --json acc.json
    python -m fsam2lib.bench ablation --model micro --dataset DIR --keep 0.3 --json abl.json
    python -m fsam2lib.bench memory --model micro --frames 200 --image-size 256 --keep 1.0,0.3
    python -m fsam2lib.bench compare previous.json current.json

Every run prints a table and, with ``--json``, writes the result and its plots (PNG, next to
the JSON); ``--compare previous.json`` prints the change of every figure against an earlier run.

What is measured, and how:
- **Efficiency** runs one synthetic video (``fsam2lib.videos.world`` at the model's input size, the
  first target prompted with its first-frame mask) under stock SAM2 (strategy "none", keep 1.0:
  the reference) and each keep ratio. Configurations alternate within each repeat (order
  rotated between repeats); each (repeat, configuration) runs in a fresh subprocess, so its
  peak RSS belongs to it alone. Times are steady-state: frames with a full memory bank
  (index >= ``num_maskmem``); speedups are per-repeat ratios against the reference of the same
  repeat, then the median. With random weights the masks mean nothing; costs are still real,
  except that where tokens go (not how many) depends on the masks.
- **Accuracy** runs every configuration on every video (configurations interleaved per video),
  scores J, F and J&F (DAVIS protocol, ``fsam2lib.metrics``) and reports each configuration's
  drop against the reference (stock SAM2, run once).
- **Memory** follows a long video frame by frame: process RSS, the bytes the inference state
  holds (by part), and the memory tokens memory attention reads, with SAM2's default (every
  frame's output kept) and with frames outside the memory window released.

Library functions (``run_efficiency``, ``run_accuracy``, ``run_ablation``, ``run_memory``, the
``format_*`` tables, ``compare_results`` and the ``plot_*`` figures) return values and never
print; progress bars appear only when asked for (``progress=True``, as the CLI does).

Result JSON (all kinds): ``kind``, ``schema``, ``created``, ``versions``, the model
(``model``, ``weights``, ``weights_label``, ``random_weights``, ``note``, ``image_size``,
``grid``, ``num_maskmem``, ``max_obj_ptrs_in_encoder``, ``hidden_dim``, ``mem_dim``,
``memory_attention`` dims, ``device``, ``device_name``, ``threads``, ``router``,
``text_encoder``, ``text``) and ``settings``. Then per kind:

- efficiency: ``reference`` and ``configs`` (reference first), each with ``name``,
  ``strategy``, ``keep_ratio``, ``memory_keep_ratio``, ``seconds_per_frame``,
  ``frames_per_second``, ``speedup``, ``stage_seconds`` / ``stage_share`` (per stage, see
  ``profiling.STAGES``), ``memory_attention_speedup``, ``amdahl`` (``share``,
  ``stage_speedup``, ``bound``, ``ceiling``), ``tokens`` (``query_kept``, ``query_total``,
  ``query_expected``, ``memory_frames``, ``memory_kept_per_frame``,
  ``memory_expected_per_frame``, ``pointer_tokens`` [min, max]), ``memory_attention_flops``
  (``self_attention``, ``cross_attention``, ``mlp``, ``total``), ``flops_vs_dense``,
  ``memory_bank_bytes`` (``dense``, ``kept``, ``indices``, ``stored``), ``baseline_rss_bytes``,
  ``peak_rss_bytes`` (None in-process), ``peak_cuda_bytes`` (None off CUDA),
  ``state_bytes_end``, and ``runs`` (per repeat: seconds, speedups, per-frame stage times).
- accuracy / ablation: ``configs`` (``name``, ``strategy``, ``keep_ratio``,
  ``memory_keep_ratio``, ``cues``, ``fill``, ``context``, ``J&F``, ``J``, ``F`` as fractions,
  ``jf_drop``, ``seconds_per_frame``, ``speedup``, ``summary`` = DAVIS statistics) and
  ``videos`` (one row per video and config: ``J``, ``F``, ``J&F``, ``jf_drop``,
  ``seconds_per_frame``, ``frames``, ``objects``).
- memory: ``memory_note`` and ``series`` (per config and release mode: sampled ``frames``,
  ``rss_bytes``, ``state_bytes``, ``maskmem_bytes``, ``cuda_allocated_bytes``,
  ``attended_memory_tokens``, growth per frame, ``state_bytes_end`` by part, peaks).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from tqdm.auto import tqdm

from fsam2lib.bench.profiling import (
    STAGES,
    MemoryAttentionDims,
    MemoryAttentionProbe,
    StageTimer,
    amdahl,
    memory_attention_flops,
    peak_rss_bytes,
    rss_bytes,
    state_bytes,
)
from fsam2lib.paths import REPO_DIR
from fsam2lib.pruning.config import CUES, FILLS, ROUTER_STRATEGIES, STRATEGIES, PruningConfig
from fsam2lib.pruning.selection import num_kept
from fsam2lib.videos.video import Video

SCHEMA_VERSION = 1
PROMPT_OBJECT = 1  # cost runs track the first target of the synthetic video
RANDOM_TEXT_DIM = 512  # text width of an untrained router when there is no text encoder
INDEX_BYTES = 8  # kept indices are int64
ACCURACY_STRATEGIES = tuple(s for s in STRATEGIES if s != "none")
MIB = 1024.0**2


# --------------------------------------------------------------------------- argument checks


def parse_ratios(
    value: str | float | Sequence[float], what: str = "keep ratio", unique: bool = True
) -> list[float]:
    """Keep ratios from "1.0,0.5" (or numbers); each must be in (0, 1]; no duplicates if
    ``unique``."""
    items = value.split(",") if isinstance(value, str) else value
    items = [items] if isinstance(items, (int, float)) else list(items)
    ratios = []
    for item in items:
        try:
            ratio = float(item)
        except (TypeError, ValueError):
            raise ValueError(f"{what} {item!r} is not a number") from None
        if not (math.isfinite(ratio) and 0.0 < ratio <= 1.0):
            raise ValueError(f"{what} {item!r} is out of range: must be in (0, 1]")
        ratios.append(ratio)
    if not ratios:
        raise ValueError(f"no {what} given")
    if unique and len(set(ratios)) != len(ratios):
        raise ValueError(f"duplicated {what}s in {value!r}")
    return ratios


def parse_memory_keep(value: str | float | Sequence[float] | None, keeps: Sequence[float]) -> list:
    """Memory keep ratio per keep ratio: "same"/None (= the keep ratio), one value for all, or
    one value per keep ratio."""
    if value is None or (isinstance(value, str) and value.strip() == "same"):
        return [None] * len(keeps)
    ratios = parse_ratios(value, "memory keep ratio", unique=False)
    if len(ratios) == 1:
        return ratios * len(keeps)
    if len(ratios) != len(keeps):
        raise ValueError(
            f"give one memory keep ratio, 'same', or one per keep ratio ({len(keeps)}); got "
            f"{len(ratios)}: {value!r}"
        )
    return ratios


def parse_strategies(value: str | Sequence[str], allowed: Sequence[str] = STRATEGIES) -> list[str]:
    """Strategy names from "router,random" (or a list); unknown names raise ValueError."""
    names = [s.strip() for s in value.split(",")] if isinstance(value, str) else list(value)
    unknown = [s for s in names if s not in allowed]
    if unknown or not names:
        raise ValueError(f"unknown strategy {unknown or names!r}; choose from {', '.join(allowed)}")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicated strategies in {value!r}")
    return names


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


# --------------------------------------------------------------------------- predictor


@dataclass(frozen=True)
class ModelSpec:
    """Which SAM2 to build, with which CLIP and router (JSON-serialisable: sent to workers).

    weights: None (trained) or "random" (cost only). clip: CLIP for the text cue and
    automatic descriptions (None: no text). router: a trained router file; None: the shipped
    micro router where a router strategy needs one (trained micro model only), or with random
    weights an untrained router, so that its cost is measured.
    """

    model: str = "micro"
    checkpoint: str | None = None
    weights: str | None = None
    image_size: int | None = None
    device: str = "cpu"
    clip: str | None = "micro"
    clip_pretrained: str | None = None
    router: str | None = None
    seed: int = 0


def build_bench_predictor(spec: ModelSpec, strategies: Sequence[str] = ()) -> tuple:
    """A ``PrunedSAM2VideoPredictor`` (``fsam2lib.build_predictor``) for ``spec`` and a dict
    saying which router and text encoder it carries."""
    from fsam2lib.predictor.predictor import build_predictor
    from fsam2lib.pruning.router import RouterConfig, TokenRouter

    needs_router = any(s in ROUTER_STRATEGIES for s in strategies)
    random = spec.weights == "random"
    if spec.router is not None:
        router, label = spec.router, f"trained ({spec.router})"
    elif needs_router and not random:
        router, label = "shipped", "trained (shipped micro router)"
    else:
        router, label = None, None
    predictor = build_predictor(
        model=spec.model,
        checkpoint=spec.checkpoint,
        device=spec.device,
        weights=spec.weights,
        image_size=spec.image_size,
        clip=spec.clip,
        clip_pretrained=spec.clip_pretrained,
        router=router,
    )
    if needs_router and predictor.router is None:  # random weights: cost of an untrained one
        text_dim = (
            RANDOM_TEXT_DIM
            if predictor.text_encoder is None
            else int(predictor.text_encoder(["red circle"]).shape[-1])
        )
        torch.manual_seed(spec.seed)
        config = RouterConfig(feat_dim=predictor.hidden_dim, text_dim=text_dim)
        predictor.router = TokenRouter(config).to(spec.device).eval()
        label = "untrained (RANDOM weights, cost only)"
    text = (
        None
        if spec.clip is None
        else f"CLIP {spec.clip}" + (f" ({spec.clip_pretrained})" if spec.clip_pretrained else "")
    )
    return predictor, {"router": label, "text_encoder": text}


def predictor_info(predictor, extra: dict) -> dict:
    """What a result must say about the model it measured."""
    from fsam2lib.models.sam2 import weights_label

    device = torch.device(predictor.device)
    grid = predictor.sam_image_embedding_size
    return {
        "model": getattr(predictor, "fsam2_name", type(predictor).__name__),
        "weights": getattr(predictor, "fsam2_weights", "trained"),
        "weights_label": weights_label(predictor),
        "image_size": int(predictor.image_size),
        "grid": [grid, grid],
        "num_maskmem": int(predictor.num_maskmem),
        "max_obj_ptrs_in_encoder": int(predictor.max_obj_ptrs_in_encoder),
        "hidden_dim": int(predictor.hidden_dim),
        "mem_dim": int(predictor.mem_dim),
        "memory_attention": dataclasses.asdict(
            MemoryAttentionDims.from_module(predictor.memory_attention)
        ),
        "device": str(device),
        "device_name": _device_name(device),
        "threads": torch.get_num_threads(),
        **extra,
    }


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def _header(kind: str, info: dict, **settings) -> dict:
    from importlib.metadata import version

    from fsam2lib import __version__

    random = info["weights"] == "random"
    return {
        "kind": kind,
        "schema": SCHEMA_VERSION,
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "versions": {
            "fsam2lib": __version__,
            "torch": torch.__version__,
            "sam2": version("sam2"),
            "python": platform.python_version(),
        },
        **info,
        "random_weights": random,
        "note": (
            "RANDOM weights: masks are meaningless; times, FLOPs, token counts and memory are "
            "real costs (which tokens are kept still follows meaningless masks)"
            if random
            else "trained weights"
        ),
        "settings": settings,
    }


# --------------------------------------------------------------------------- videos


def cost_video(image_size: int, frames: int, seed: int = 0) -> Video:
    """A synthetic video at the model's input size; longer than the world's 60-frame limit by
    playing it forwards and backwards (continuous motion)."""
    from fsam2lib.videos.world import WorldConfig, make_video

    _check_positive("frames", frames)
    base_len = min(max(frames, 8), 60)
    config = WorldConfig(height=image_size, width=image_size, num_frames=base_len)
    base = make_video(seed, config, split="val", name=f"cost_{image_size}px")
    if frames == base_len:
        return base
    period = 2 * base_len - 2
    index = [t % period for t in range(frames)]
    index = np.array([i if i < base_len else period - i for i in index])
    return Video(
        name=f"{base.name}_pingpong{frames}",
        frames=base.frames[index],
        masks=base.masks[index],
        descriptions=base.descriptions,
    )


@dataclass
class VideoSource:
    """Videos of a dataset, read one at a time."""

    description: str
    names: list[str]
    load: Callable[[str], Video]
    has_texts: bool


def open_dataset(
    dataset: str,
    split: str = "val",
    resolution: str = "480p",
    max_videos: int | None = None,
    frames: int | None = None,
    seed: int = 0,
) -> VideoSource:
    """A DAVIS-layout folder, or ``synthetic:SPLIT:N`` generated on the fly.

    frames: synthetic videos are generated this long (default: the world's 16); a folder's
    videos are cut to their first ``frames`` frames (default: whole videos).
    """
    from fsam2lib.videos import davis

    _check_positive("max_videos", max_videos)
    _check_positive("frames", frames)
    if dataset.startswith("synthetic:"):
        from fsam2lib.videos.world import WorldConfig, make_video, video_seed

        parts = dataset.split(":")
        if len(parts) != 3 or not parts[2].isdigit() or int(parts[2]) < 1:
            raise ValueError(
                f"synthetic dataset must read 'synthetic:SPLIT:N' (N >= 1), got {dataset!r}"
            )
        syn_split, count = parts[1], int(parts[2])
        config = WorldConfig() if frames is None else WorldConfig(num_frames=frames)
        count = count if max_videos is None else min(count, max_videos)
        names = [f"{syn_split}_{i:04d}" for i in range(count)]
        seeds = {name: video_seed(syn_split, i, seed) for i, name in enumerate(names)}

        def load(name: str) -> Video:
            return make_video(seeds[name], config, syn_split, name)

        desc = f"synthetic {syn_split} split, {count} videos, {config.num_frames} frames"
        return VideoSource(desc, names, load, has_texts=True)
    root = Path(dataset)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    names = davis.list_videos(root, split)
    if max_videos is not None:
        names = names[:max_videos]
    if not names:
        raise ValueError(f"dataset {root}: split {split!r} lists no videos")
    has_texts = bool(davis.read_descriptions(root))

    def load_folder(name: str) -> Video:
        video = davis.read_video(root, name, resolution)
        if frames is None or frames >= video.num_frames:
            return video
        return Video(
            video.name,
            video.frames[:frames],
            video.masks[:frames],
            video.descriptions,
            video.frame_names[:frames],
            video.annotated[:frames],
        )

    cut = "" if frames is None else f", first {frames} frames"
    return VideoSource(f"{root} ({split}, {len(names)} videos{cut})", names, load_folder, has_texts)


# --------------------------------------------------------------------------- one measured run


@contextmanager
def _quiet_sam2() -> Iterator[None]:
    """Silence sam2's own per-video progress bar (the library must not print)."""
    with mock.patch("sam2.sam2_video_predictor.tqdm", lambda iterable, *a, **k: iterable):
        yield


def release_old_frames(predictor, state: dict, frame_idx: int) -> int:
    """Drop stored outputs (and token records) of non-conditioning frames that forward tracking
    never reads again after ``frame_idx``; returns how many were dropped.

    SAM2 reads the last ``num_maskmem - 1`` frames' memory (every ``stride``-th but the last)
    and up to ``max_obj_ptrs_in_encoder - 1`` previous object pointers; older outputs stay in
    the state only because SAM2 keeps every frame's output for the caller.
    """
    stride = predictor.memory_temporal_stride_for_eval
    window = max(1 + (predictor.num_maskmem - 2) * stride, predictor.max_obj_ptrs_in_encoder - 1)
    oldest = frame_idx + 1 - window
    records = state.get("fsam2", {}).get("records", {})
    dropped = 0
    for obj_idx, outputs in state["output_dict_per_obj"].items():
        old = [t for t in outputs["non_cond_frame_outputs"] if t < oldest]
        obj_records = records.get(state["obj_idx_to_id"][obj_idx], {})
        for t in old:
            del outputs["non_cond_frame_outputs"][t]
            obj_records.pop(t, None)
        dropped += len(old)
    return dropped


def measure_run(
    predictor,
    video: Video,
    config: PruningConfig,
    text: str | None = None,
    bf16: bool = False,
    trace_every: int | None = None,
    release: bool = False,
) -> dict:
    """Prompt ``PROMPT_OBJECT`` with its first-frame mask, propagate, and measure every frame.

    Returns per-frame wall time, stage times and memory-attention token counts; peak RSS /
    CUDA memory; the inference state's bytes at the end; with ``trace_every``, samples of RSS
    and state bytes every that many frames; with ``release``, old frames are released as the
    video advances (:func:`release_old_frames`).
    """
    device = torch.device(predictor.device)
    cuda = device.type == "cuda"
    predictor.pruning = config
    gc.collect()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    baseline_rss = rss_bytes()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    trace, released, frames = [], 0, []
    mask = video.masks[0] == PROMPT_OBJECT
    if not mask.any():
        raise ValueError(f"video {video.name!r}: object {PROMPT_OBJECT} is not on frame 0")
    with torch.inference_mode(), autocast, _quiet_sam2():
        state = _init_state(predictor, video)
        extra = {} if text is None else {"text": text}
        predictor.add_new_mask(state, frame_idx=0, obj_id=PROMPT_OBJECT, mask=mask, **extra)
        probe = MemoryAttentionProbe(predictor.memory_attention)
        with StageTimer(predictor, sync=device if cuda else None) as timer, probe:
            timer.start_frame()
            for frame_idx, _, _ in predictor.propagate_in_video(state):
                entry = timer.frame_done(frame_idx)
                entry["tokens"] = probe.calls[-1] if probe.calls else None
                probe.calls.clear()
                frames.append(entry)
                if release:
                    released += release_old_frames(predictor, state, frame_idx)
                if trace_every and (
                    frame_idx % trace_every == 0 or frame_idx == video.num_frames - 1
                ):
                    trace.append(_memory_sample(frame_idx, state, entry["tokens"], device))
                timer.start_frame()
    result = {
        "frames": frames,
        "baseline_rss_bytes": baseline_rss,
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_cuda_bytes": torch.cuda.max_memory_allocated(device) if cuda else None,
        "state_bytes_end": state_bytes(state),
        "stored_memory_element_bytes": _maskmem_element_bytes(state),
        "released_frames": released,
        "trace": trace or None,
    }
    del state
    gc.collect()
    return result


def _init_state(predictor, video: Video) -> dict:
    from fsam2lib.videos.frames import init_state_from_frames

    return init_state_from_frames(predictor, video.frames)


def _maskmem_element_bytes(state: dict) -> int:
    for outputs in state["output_dict_per_obj"].values():
        for part in ("cond_frame_outputs", "non_cond_frame_outputs"):
            for out in outputs[part].values():
                if out.get("maskmem_features") is not None:
                    return int(out["maskmem_features"].element_size())
    raise RuntimeError("no stored memory features in the inference state")


def _memory_sample(frame_idx: int, state: dict, tokens: dict | None, device: torch.device) -> dict:
    attended = None if tokens is None else sum(tokens["memory_per_frame"]) + tokens["pointers"]
    return {
        "frame": int(frame_idx),
        "rss_bytes": rss_bytes(),
        "state_bytes": state_bytes(state),
        "cuda_allocated_bytes": torch.cuda.memory_allocated(device)
        if device.type == "cuda"
        else None,
        "attended_memory_tokens": attended,
    }


# --------------------------------------------------------------------------- jobs (isolated)


@dataclass
class _Job:
    """One measured run, in-process or in a fresh subprocess."""

    spec: ModelSpec
    strategies: tuple[str, ...]
    config: PruningConfig
    bf16: bool = False
    threads: int | None = None
    trace_every: int | None = None
    release: bool = False

    def to_json(self, video_path: str) -> dict:
        return {
            "spec": dataclasses.asdict(self.spec),
            "strategies": list(self.strategies),
            "config": dataclasses.asdict(self.config),
            "bf16": self.bf16,
            "threads": self.threads,
            "trace_every": self.trace_every,
            "release": self.release,
            "video": video_path,
        }

    @classmethod
    def from_json(cls, data: dict) -> tuple[_Job, str]:
        config = dict(data["config"])
        config["cues"] = tuple(config["cues"])
        job = cls(
            spec=ModelSpec(**data["spec"]),
            strategies=tuple(data["strategies"]),
            config=PruningConfig(**config),
            bf16=data["bf16"],
            threads=data["threads"],
            trace_every=data["trace_every"],
            release=data["release"],
        )
        return job, data["video"]


def _execute(job: _Job, video: Video, built: tuple | None = None) -> dict:
    """Run a job in this process (building the predictor unless ``built`` is given)."""
    if job.threads is not None:
        torch.set_num_threads(job.threads)
    predictor, carried = built or build_bench_predictor(job.spec, job.strategies)
    text = video.descriptions.get(PROMPT_OBJECT) if predictor.text_encoder is not None else None
    run = measure_run(predictor, video, job.config, text, job.bf16, job.trace_every, job.release)
    info = predictor_info(predictor, {**carried, "text": text, "bf16": job.bf16})
    return {"info": info, "run": run}


def _save_video(video: Video, folder: Path) -> str:
    path = folder / "video.npz"
    np.savez(
        path,
        frames=video.frames,
        masks=video.masks,
        name=video.name,
        descriptions=json.dumps({str(k): v for k, v in video.descriptions.items()}),
    )
    return str(path)


def _load_video(path: str) -> Video:
    with np.load(path) as data:
        descriptions = {int(k): v for k, v in json.loads(str(data["descriptions"])).items()}
        return Video(str(data["name"]), data["frames"], data["masks"], descriptions)


def _run_subprocess(job: _Job, video_path: str, folder: Path, index: int) -> dict:
    spec_path, out_path = folder / f"job{index}.json", folder / f"result{index}.json"
    spec_path.write_text(json.dumps(job.to_json(video_path)))
    env = dict(os.environ)
    root = str(REPO_DIR)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    proc = subprocess.run(
        [sys.executable, "-m", "fsam2lib.bench", "_worker", str(spec_path), str(out_path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"benchmark worker failed (exit {proc.returncode}) for {job.config}:\n"
            f"{proc.stderr[-3000:]}"
        )
    return json.loads(out_path.read_text())


def _worker_main(spec_path: str, out_path: str) -> None:
    job, video_path = _Job.from_json(json.loads(Path(spec_path).read_text()))
    result = _execute(job, _load_video(video_path))
    Path(out_path).write_text(json.dumps(result))


class _Runner:
    """Runs jobs either each in a fresh subprocess (``isolate``) or all in this process with
    one shared predictor."""

    def __init__(self, video: Video, isolate: bool) -> None:
        self.video, self.isolate = video, isolate
        self._folder: tempfile.TemporaryDirectory | None = None
        self._video_path = ""
        self._built: dict = {}
        self._count = 0

    def __enter__(self) -> _Runner:
        if self.isolate:
            self._folder = tempfile.TemporaryDirectory(prefix="fsam2_bench_")
            self._video_path = _save_video(self.video, Path(self._folder.name))
        return self

    def __exit__(self, *exc) -> None:
        if self._folder is not None:
            self._folder.cleanup()
        self._built.clear()

    def run(self, job: _Job) -> dict:
        self._count += 1
        if self.isolate:
            return _run_subprocess(job, self._video_path, Path(self._folder.name), self._count)
        key = (job.spec, job.strategies)
        if key not in self._built:
            self._built[key] = build_bench_predictor(job.spec, job.strategies)
        result = _execute(job, self.video, self._built[key])
        result["run"]["peak_rss_bytes"] = None  # process-wide here: not this config's
        return result


# --------------------------------------------------------------------------- efficiency


def _config_name(config: PruningConfig) -> str:
    if config.strategy == "none":
        return "keep=1.00 (stock)"
    name = f"keep={config.keep_ratio:.2f}"
    if config.memory_keep_ratio is not None:
        name += f" mem={config.memory_keep_ratio:.2f}"
    return name


def run_efficiency(
    model: str = "sam2.1_hiera_t",
    weights: str | None = None,
    checkpoint: str | None = None,
    image_size: int | None = None,
    frames: int = 16,
    keep: Sequence[float] | str = (1.0, 0.5, 0.3, 0.2),
    memory_keep: Sequence[float] | str | None = None,
    strategy: str = "router",
    device: str = "cpu",
    bf16: bool = False,
    repeats: int = 3,
    quick: bool = False,
    isolate: bool = True,
    threads: int | None = None,
    clip: str | None = "micro",
    clip_pretrained: str | None = None,
    router: str | None = None,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Steady-state cost per keep ratio against stock SAM2, measured interleaved.

    The reference (stock SAM2: strategy "none", keep 1.0) is always run; keep ratios below 1
    run with ``strategy``. ``quick``: at most 9 frames, 1 repeat. ``isolate``: each (repeat,
    config) in a fresh subprocess (peak RSS per config); otherwise one process with one
    predictor (peak RSS not reported). ``threads``: torch threads per run. Model, CLIP and
    router arguments: see :class:`ModelSpec`. Returns the result (schema: module docstring).
    """
    keeps = parse_ratios(keep)
    mem_keeps = parse_memory_keep(memory_keep, keeps)
    (strategy,) = parse_strategies([strategy], ACCURACY_STRATEGIES)
    _check_positive("repeats", repeats)
    _check_positive("frames", frames)
    _check_positive("threads", threads)
    if quick:
        frames, repeats = min(frames, 9), 1
    configs = [PruningConfig(strategy="none")] + [
        PruningConfig(keep_ratio=k, memory_keep_ratio=m, strategy=strategy)
        for k, m in zip(keeps, mem_keeps, strict=True)
        if not (k == 1.0 and m in (None, 1.0))
    ]
    spec = ModelSpec(
        model, checkpoint, weights, image_size, device, clip, clip_pretrained, router, seed
    )
    size = image_size or _config_image_size(model)
    video = cost_video(size, frames, seed)
    runs: dict[str, list[dict]] = {_config_name(c): [] for c in configs}
    info = None
    order = list(range(len(configs)))
    with _Runner(video, isolate) as runner:
        bar = tqdm(total=repeats * len(configs), desc="efficiency", disable=not progress)
        for r in range(repeats):
            for i in order[r % len(order) :] + order[: r % len(order)]:
                job = _Job(spec, (strategy,), configs[i], bf16, threads)
                result = runner.run(job)
                info = info or _check_steady(result["info"], frames)
                runs[_config_name(configs[i])].append(result["run"])
                bar.update()
        bar.close()
    steady_from = info["num_maskmem"]
    header = _header(
        "efficiency",
        info,
        frames=frames,
        steady_frames=[steady_from, frames - 1],
        strategy=strategy,
        repeats=repeats,
        isolated=isolate,
        quick=quick,
        seed=seed,
        video=f"synthetic ({video.name}), object {PROMPT_OBJECT} prompted with its frame-0 mask",
    )
    return {
        **header,
        "reference": _config_name(configs[0]),
        "configs": _summarise_efficiency(configs, runs, info),
    }


def _check_steady(info: dict, frames: int) -> dict:
    if frames <= info["num_maskmem"]:
        raise ValueError(
            f"frames={frames} leaves no frame with a full memory bank (num_maskmem="
            f"{info['num_maskmem']}); use at least {info['num_maskmem'] + 1} frames"
        )
    return info


def _config_image_size(model: str) -> int:
    """The config's input size without building the model (hydra compose)."""
    from fsam2lib.models.sam2 import SAM2_MODELS, _fsam2_config_dir

    spec = SAM2_MODELS.get(model)
    if spec is None:
        raise ValueError(f"unknown SAM2 model {model!r}; known: {', '.join(SAM2_MODELS)}")
    import sam2  # noqa: F401  (registers sam2's config search path)
    from hydra import compose

    ctx = nullcontext() if spec.is_packaged_config else _fsam2_config_dir()
    with ctx:
        return int(compose(config_name=spec.config).model.image_size)


def _steady(run: dict, steady_from: int) -> list[dict]:
    return [f for f in run["frames"] if f["frame"] >= steady_from]


def _median(values: Sequence[float | None]) -> float | None:
    values = [v for v in values if v is not None]
    return float(statistics.median(values)) if values else None


def _summarise_efficiency(
    configs: list[PruningConfig], runs: dict[str, list[dict]], info: dict
) -> list[dict]:
    dims = MemoryAttentionDims(**info["memory_attention"])
    steady_from, (h, w) = info["num_maskmem"], info["grid"]
    hw = h * w

    def per_run(name: str) -> list[dict]:
        out = []
        for run in runs[name]:
            steady = _steady(run, steady_from)
            if any(f["tokens"] is None for f in steady):
                raise RuntimeError(f"{name}: a steady-state frame ran no memory attention")
            seconds = statistics.fmean(f["seconds"] for f in steady)
            stages = {s: statistics.fmean(f["stages"][s] for f in steady) for s in STAGES}
            out.append({"seconds": seconds, "stages": stages})
        return out

    ref_name = _config_name(configs[0])
    ref = per_run(ref_name)
    share = _median([r["stages"]["memory_attention"] / r["seconds"] for r in ref])
    rows = []
    for config in configs:
        name = _config_name(config)
        mine = per_run(name)
        speedups = [a["seconds"] / b["seconds"] for a, b in zip(ref, mine, strict=True)]
        ma_speedups = [
            a["stages"]["memory_attention"] / b["stages"]["memory_attention"]
            for a, b in zip(ref, mine, strict=True)
        ]
        seconds = _median([r["seconds"] for r in mine])
        stages = {s: _median([r["stages"][s] for r in mine]) for s in STAGES}
        tokens = [f["tokens"] for f in _steady(runs[name][0], steady_from)]
        ma_speedup = _median(ma_speedups)
        rows.append(
            {
                "name": name,
                "strategy": config.strategy,
                "keep_ratio": config.keep_ratio,
                "memory_keep_ratio": config.memory_ratio,
                "seconds_per_frame": seconds,
                "frames_per_second": 1.0 / seconds,
                "speedup": _median(speedups),
                "stage_seconds": stages,
                "stage_share": {s: v / seconds for s, v in stages.items()},
                "memory_attention_speedup": ma_speedup,
                "amdahl": amdahl(share, ma_speedup),
                "tokens": _token_summary(config, tokens, hw),
                **_flops_summary(dims, tokens, hw),
                "memory_bank_bytes": _bank_bytes(
                    tokens[-1], hw, info["mem_dim"], runs[name][0], config
                ),
                "baseline_rss_bytes": _median([r["baseline_rss_bytes"] for r in runs[name]]),
                "peak_rss_bytes": _median([r["peak_rss_bytes"] for r in runs[name]]),
                "peak_cuda_bytes": _median([r["peak_cuda_bytes"] for r in runs[name]]),
                "state_bytes_end": runs[name][0]["state_bytes_end"],
                "runs": {
                    "seconds_per_frame": [r["seconds"] for r in mine],
                    "speedup": speedups,
                    "memory_attention_speedup": ma_speedups,
                    "peak_rss_bytes": [r["peak_rss_bytes"] for r in runs[name]],
                    "frames": [
                        [
                            {"frame": f["frame"], "seconds": f["seconds"], **f["stages"]}
                            for f in r["frames"]
                        ]
                        for r in runs[name]
                    ],
                },
            }
        )
    return rows


def _token_summary(config: PruningConfig, tokens: list[dict], hw: int) -> dict:
    """Tokens memory attention read on the last steady frame (constant over steady frames but
    for the pointers, whose range is given), and what the config asks for."""
    last = tokens[-1]
    stock = config.strategy == "none"
    return {
        "query_kept": last["query"],
        "query_total": hw,
        "query_expected": hw if stock else num_kept(hw, config.keep_ratio, config.min_tokens),
        "memory_frames": len(last["memory_per_frame"]),
        "memory_kept_per_frame": last["memory_per_frame"],
        "memory_expected_per_frame": hw
        if stock
        else num_kept(hw, config.memory_ratio, config.min_tokens),
        "pointer_tokens": [min(t["pointers"] for t in tokens), last["pointers"]],
    }


def _flops_summary(dims: MemoryAttentionDims, tokens: list[dict], hw: int) -> dict:
    """Analytic memory-attention FLOPs per steady frame (mean), from the tokens really read,
    and their ratio to the dense call with the same memory frames and pointers."""
    flops = [
        memory_attention_flops(dims, t["query"], t["memory_per_frame"], t["pointers"])
        for t in tokens
    ]
    dense = [
        memory_attention_flops(dims, hw, [hw] * len(t["memory_per_frame"]), t["pointers"])
        for t in tokens
    ]
    return {
        "memory_attention_flops": {
            part: statistics.fmean(f[part] for f in flops) for part in flops[0]
        },
        "flops_vs_dense": statistics.fmean(
            f["total"] / d["total"] for f, d in zip(flops, dense, strict=True)
        ),
    }


def _bank_bytes(tokens: dict, hw: int, mem_dim: int, run: dict, config: PruningConfig) -> dict:
    """The memory bank one steady frame attends to: dense, kept, and what is really stored.

    The implementation keeps every frame's dense memory features (as SAM2 does, in its
    storage dtype) and adds the kept indices; it does not compact the bank. So "stored" is
    dense + indices; "kept" is what a compacted bank would hold.
    """
    elem = run["stored_memory_element_bytes"]
    frames = len(tokens["memory_per_frame"])
    kept = sum(tokens["memory_per_frame"])
    index = 0 if config.strategy == "none" else kept * INDEX_BYTES
    return {
        "frames": frames,
        "dense": frames * hw * mem_dim * elem,
        "kept": kept * mem_dim * elem,
        "indices": index,
        "stored": frames * hw * mem_dim * elem + index,
        "element_bytes": elem,
        "note": "stored = dense features of every memory frame + kept indices (not compacted)",
    }


# --------------------------------------------------------------------------- accuracy


def _accuracy_configs(
    keeps: list[float],
    mem_keeps: list,
    strategies: list[str],
    context: float | None = None,
    fill: str | None = None,
) -> list[tuple[str, PruningConfig]]:
    extra = {} if context is None else {"context": context}
    if fill is not None:
        extra["fill"] = fill
    configs = [("reference", PruningConfig(strategy="none"))]
    for strategy in strategies:
        for k, m in zip(keeps, mem_keeps, strict=True):
            if k == 1.0 and m in (None, 1.0):
                continue  # keep 1.0 is the reference, run once
            name = f"{strategy}@{k:.2f}" + ("" if m is None else f"/mem{m:.2f}")
            configs.append(
                (
                    name,
                    PruningConfig(keep_ratio=k, memory_keep_ratio=m, strategy=strategy, **extra),
                )
            )
    return configs


def _text_setup(predictor, source: VideoSource, strategies: Sequence[str]) -> dict:
    """How objects get text, checked before any video runs."""
    if source.has_texts:
        if predictor.text_encoder is None:
            raise ValueError(
                "the dataset has descriptions but the predictor has no text encoder; attach one "
                "(build_predictor does for the micro model) or remove descriptions.json"
            )
        return {"source": "dataset descriptions", "use_dataset_texts": True}
    if predictor.describe_object is not None:
        return {"source": "automatic (predictor.describe_object)", "use_dataset_texts": False}
    needs_text = [s for s in strategies if s == "text_only"]
    if needs_text:
        raise ValueError(
            "strategy 'text_only' needs object texts, but the dataset has no descriptions.json "
            "and the predictor no describe_object: drop text_only from --strategies"
        )
    return {
        "source": "none: no descriptions, the router's text cue is off",
        "use_dataset_texts": False,
    }


def _evaluate_configs(
    predictor,
    source: VideoSource,
    configs: list[tuple[str, PruningConfig]],
    protocol: str,
    use_texts: bool,
    progress: bool,
) -> tuple[list[dict], list[dict]]:
    """Run every config on every video (configs interleaved per video); score each run."""
    from fsam2lib.evaluate import run_video, score_run
    from fsam2lib.metrics import summarize

    scores: dict[str, list] = {name: [] for name, _ in configs}
    seconds = dict.fromkeys(scores, 0.0)
    frames = 0
    rows = []
    bar = tqdm(total=len(source.names) * len(configs), desc="accuracy", disable=not progress)
    for video_name in source.names:
        video = source.load(video_name)
        frames += video.num_frames
        for name, config in configs:
            predictor.pruning = config
            with _quiet_sam2():
                run = run_video(
                    predictor, video, protocol, texts=video.descriptions if use_texts else None
                )
            score = score_run(run, video)
            scores[name].append(score)
            seconds[name] += run.seconds
            rows.append(
                {
                    "video": video.name,
                    "config": name,
                    "J": score.J_mean,
                    "F": score.F_mean,
                    "J&F": score.JF_mean,
                    "seconds_per_frame": run.seconds / video.num_frames,
                    "frames": video.num_frames,
                    "objects": len(score.object_ids),
                }
            )
            bar.update()
    bar.close()
    predictor.pruning = PruningConfig(strategy="none")
    summaries = []
    for name, config in configs:
        summary = summarize(scores[name])
        summaries.append(
            {
                "name": name,
                "strategy": config.strategy,
                "keep_ratio": config.keep_ratio,
                "memory_keep_ratio": config.memory_ratio,
                "cues": list(config.cues),
                "fill": config.fill,
                "context": config.context,
                "J&F": summary["J&F-Mean"],
                "J": summary["J-Mean"],
                "F": summary["F-Mean"],
                "seconds_per_frame": seconds[name] / frames,
                "summary": summary,
            }
        )
    ref = summaries[0]["J&F"]
    ref_seconds = summaries[0]["seconds_per_frame"]
    for row in summaries:
        row["jf_drop"] = ref - row["J&F"]
        row["speedup"] = ref_seconds / row["seconds_per_frame"]
    ref_by_video = {r["video"]: r["J&F"] for r in rows if r["config"] == configs[0][0]}
    for row in rows:
        row["jf_drop"] = ref_by_video[row["video"]] - row["J&F"]
    return summaries, rows


def _accuracy_setup(
    spec: ModelSpec,
    dataset: str,
    strategies: Sequence[str],
    split: str,
    resolution: str,
    max_videos: int | None,
    quick: bool,
    seed: int,
) -> tuple:
    if quick and max_videos is None:
        max_videos = 2
    source = open_dataset(dataset, split, resolution, max_videos, 8 if quick else None, seed)
    predictor, carried = build_bench_predictor(spec, strategies)
    text = _text_setup(predictor, source, strategies)
    return source, predictor, carried, text


def run_accuracy(
    model: str = "micro",
    dataset: str = "synthetic:val:20",
    keep: Sequence[float] | str = (1.0, 0.5, 0.3, 0.2, 0.1),
    strategies: Sequence[str] | str = ("router", "random", "grid", "mask_prior", "text_only"),
    memory_keep: Sequence[float] | str | None = None,
    protocol: str = "mask",
    max_videos: int | None = None,
    checkpoint: str | None = None,
    weights: str | None = None,
    image_size: int | None = None,
    device: str = "cpu",
    clip: str | None = "micro",
    clip_pretrained: str | None = None,
    router: str | None = None,
    split: str = "val",
    resolution: str = "480p",
    quick: bool = False,
    seed: int = 0,
    progress: bool = False,
    context: float | None = None,
    fill: str | None = None,
) -> dict:
    """J, F, J&F per video and mean for every strategy x keep ratio, and the drop of each
    against stock SAM2 (the reference, run once). ``quick``: at most 2 videos of 8 frames.
    ``context`` / ``fill``: :attr:`PruningConfig.context` / :attr:`PruningConfig.fill` of
    every pruned run (None: the config's default)."""
    from fsam2lib.evaluate import PROTOCOLS

    keeps = parse_ratios(keep)
    mem_keeps = parse_memory_keep(memory_keep, keeps)
    strategies = parse_strategies(strategies, ACCURACY_STRATEGIES)
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose from {', '.join(PROTOCOLS)}")
    if fill is not None and fill not in FILLS:
        raise ValueError(f"unknown fill {fill!r}; choose from {', '.join(FILLS)}")
    spec = ModelSpec(
        model, checkpoint, weights, image_size, device, clip, clip_pretrained, router, seed
    )
    source, predictor, carried, text = _accuracy_setup(
        spec, dataset, strategies, split, resolution, max_videos, quick, seed
    )
    configs = _accuracy_configs(keeps, mem_keeps, strategies, context, fill)
    summaries, rows = _evaluate_configs(
        predictor, source, configs, protocol, text["use_dataset_texts"], progress
    )
    info = predictor_info(predictor, {**carried, "text": text["source"]})
    header = _header(
        "accuracy", info, dataset=source.description, protocol=protocol, quick=quick, seed=seed
    )
    return {**header, "reference": "reference", "configs": summaries, "videos": rows}


def run_ablation(
    model: str = "micro",
    dataset: str = "synthetic:val:20",
    keep: float | str = 0.3,
    memory_keep: float | str | None = None,
    strategy: str = "router",
    fills: Sequence[str] = FILLS,
    contexts: Sequence[float] = (0.0, 0.5),
    protocol: str = "mask",
    max_videos: int | None = None,
    checkpoint: str | None = None,
    weights: str | None = None,
    image_size: int | None = None,
    device: str = "cpu",
    clip: str | None = "micro",
    clip_pretrained: str | None = None,
    router: str | None = None,
    split: str = "val",
    resolution: str = "480p",
    quick: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """At one keep ratio: ``strategy`` as configured, (router only) with each cue off, with
    each other fill of pruned query positions and each other lattice share ``contexts``
    (:attr:`PruningConfig.context`); plus the reference."""
    (keep,) = parse_ratios([keep])
    mem = None if memory_keep is None else parse_ratios([memory_keep], "memory keep ratio")[0]
    (strategy,) = parse_strategies([strategy], ACCURACY_STRATEGIES)
    bad = [f for f in fills if f not in FILLS]
    if bad:
        raise ValueError(f"unknown fill {bad}; choose from {', '.join(FILLS)}")
    spec = ModelSpec(
        model, checkpoint, weights, image_size, device, clip, clip_pretrained, router, seed
    )
    source, predictor, carried, text = _accuracy_setup(
        spec, dataset, [strategy], split, resolution, max_videos, quick, seed
    )
    base = PruningConfig(keep_ratio=keep, memory_keep_ratio=mem, strategy=strategy)
    configs = [("reference", PruningConfig(strategy="none")), (f"{strategy} all cues", base)]
    if strategy == "router":  # the only strategy that combines cues
        configs += [
            (
                f"router without {cue}",
                dataclasses.replace(base, cues=tuple(c for c in CUES if c != cue)),
            )
            for cue in CUES
        ]
    configs += [
        (f"{strategy} fill={fill}", dataclasses.replace(base, fill=fill))
        for fill in fills
        if fill != base.fill
    ]
    configs += [
        (f"{strategy} context={c:g}", dataclasses.replace(base, context=c))
        for c in contexts
        if c != base.context
    ]
    summaries, rows = _evaluate_configs(
        predictor, source, configs, protocol, text["use_dataset_texts"], progress
    )
    info = predictor_info(predictor, {**carried, "text": text["source"]})
    header = _header(
        "ablation",
        info,
        dataset=source.description,
        protocol=protocol,
        keep_ratio=keep,
        memory_keep_ratio=base.memory_ratio,
        default_fill=base.fill,
        quick=quick,
        seed=seed,
    )
    return {**header, "reference": "reference", "configs": summaries, "videos": rows}


# --------------------------------------------------------------------------- memory vs length


def run_memory(
    model: str = "micro",
    frames: int = 200,
    image_size: int | None = 256,
    keep: Sequence[float] | str = (1.0, 0.3),
    memory_keep: Sequence[float] | str | None = None,
    strategy: str = "router",
    release: Sequence[bool] = (False, True),
    weights: str | None = None,
    checkpoint: str | None = None,
    device: str = "cpu",
    bf16: bool = False,
    trace_every: int | None = None,
    isolate: bool = True,
    threads: int | None = None,
    clip: str | None = "micro",
    clip_pretrained: str | None = None,
    router: str | None = None,
    quick: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> dict:
    """Memory as a long video advances, per keep ratio, with SAM2's default (every output
    kept: ``release=False``) and with old frames released (``release=True``).

    Each series records, every ``trace_every`` frames: RSS, the inference state's tensor bytes
    by part, and the memory tokens memory attention read. ``quick``: at most 30 frames.
    """
    keeps = parse_ratios(keep)
    mem_keeps = parse_memory_keep(memory_keep, keeps)
    (strategy,) = parse_strategies([strategy], ACCURACY_STRATEGIES)
    _check_positive("frames", frames)
    _check_positive("trace_every", trace_every)
    if not release or any(not isinstance(r, bool) for r in release):
        raise ValueError(f"release must be a non-empty list of booleans, got {release!r}")
    if quick:
        frames = min(frames, 30)
    trace_every = trace_every or max(1, frames // 50)
    configs = [
        PruningConfig(strategy="none")
        if k == 1.0 and m in (None, 1.0)
        else PruningConfig(keep_ratio=k, memory_keep_ratio=m, strategy=strategy)
        for k, m in zip(keeps, mem_keeps, strict=True)
    ]
    spec = ModelSpec(
        model, checkpoint, weights, image_size, device, clip, clip_pretrained, router, seed
    )
    video = cost_video(image_size or _config_image_size(model), frames, seed)
    series, info = [], None
    with _Runner(video, isolate) as runner:
        jobs = [(c, r) for r in release for c in configs]
        for config, rel in tqdm(jobs, desc="memory", disable=not progress):
            job = _Job(spec, (strategy,), config, bf16, threads, trace_every, rel)
            result = runner.run(job)
            info = info or result["info"]
            series.append(_memory_series(config, rel, result["run"]))
    header = _header(
        "memory",
        info,
        frames=frames,
        trace_every=trace_every,
        strategy=strategy,
        isolated=isolate,
        quick=quick,
        seed=seed,
        video=f"synthetic ({video.name}), object {PROMPT_OBJECT} prompted with its frame-0 mask",
    )
    header["memory_note"] = (
        "SAM2 reads at most num_maskmem memory frames and max_obj_ptrs_in_encoder pointers, so "
        "the tokens memory attention reads stay bounded; but SAM2 keeps every frame's output "
        "(dense memory features, low-res masks, object pointer) in the inference state, which "
        "grows linearly unless old frames are released (release=True). Pruning does not shrink "
        "what is stored: dense features are kept, plus kept-token indices and per-frame scores."
    )
    return {**header, "series": series}


def _memory_series(config: PruningConfig, release: bool, run: dict) -> dict:
    trace = run["trace"]
    frames = [s["frame"] for s in trace]
    totals = [s["state_bytes"]["total"] for s in trace]
    rss = [s["rss_bytes"] for s in trace]
    return {
        "name": _config_name(config) + (" release" if release else " keep-all"),
        "strategy": config.strategy,
        "keep_ratio": config.keep_ratio,
        "memory_keep_ratio": config.memory_ratio,
        "release": release,
        "frames": frames,
        "rss_bytes": rss,
        "state_bytes": totals,
        "maskmem_bytes": [s["state_bytes"]["maskmem_features"] for s in trace],
        "cuda_allocated_bytes": [s["cuda_allocated_bytes"] for s in trace],
        "attended_memory_tokens": [s["attended_memory_tokens"] for s in trace],
        "state_growth_bytes_per_frame": _slope(frames, totals),
        "rss_growth_bytes_per_frame": None if None in rss else _slope(frames, rss),
        "state_bytes_end": run["state_bytes_end"],
        "peak_rss_bytes": run["peak_rss_bytes"],
        "peak_cuda_bytes": run["peak_cuda_bytes"],
        "released_frames": run["released_frames"],
    }


def _slope(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Least-squares slope over the second half of the samples (after the bank fills)."""
    half = len(x) // 2
    xs, ys = np.asarray(x[half:], float), np.asarray(y[half:], float)
    if len(xs) < 2 or np.ptp(xs) == 0:
        return None
    return float(np.polyfit(xs, ys, 1)[0])


# --------------------------------------------------------------------------- tables


def _fmt(value: float | None, spec: str = ".3f", scale: float = 1.0, suffix: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value / scale:{spec}}{suffix}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _title(result: dict) -> str:
    prec = "bf16 autocast" if result.get("bf16") else "fp32"
    return (
        f"{result['kind']} — {result['weights_label']} — {result['device']} "
        f"({result['device_name']}), {prec}, {result['image_size']} px, threads {result['threads']}"
    )


def format_efficiency_table(result: dict) -> str:
    """Keep ratios side by side: time per frame and per stage, speedups, tokens, FLOPs, memory."""
    configs = result["configs"]
    s = result["settings"]
    rows: list[list[str]] = []

    def add(label: str, fn: Callable[[dict], str]) -> None:
        rows.append([label, *[fn(c) for c in configs]])

    add("s/frame (steady)", lambda c: _fmt(c["seconds_per_frame"], ".4f"))
    add("speedup vs stock", lambda c: _fmt(c["speedup"], ".2f", suffix="x"))
    for stage in STAGES:
        add(f"  {stage} s", lambda c, st=stage: _fmt(c["stage_seconds"][st], ".4f"))
    add("  memory_attention share", lambda c: _fmt(c["stage_share"]["memory_attention"], ".1%"))
    add("memory-attn speedup", lambda c: _fmt(c["memory_attention_speedup"], ".2f", suffix="x"))
    add("Amdahl bound", lambda c: _fmt(c["amdahl"]["bound"], ".2f", suffix="x"))
    add("Amdahl ceiling 1/(1-p)", lambda c: _fmt(c["amdahl"]["ceiling"], ".2f", suffix="x"))
    add("query tokens kept", lambda c: f"{c['tokens']['query_kept']}/{c['tokens']['query_total']}")
    add("memory frames x kept", lambda c: f"{c['tokens']['memory_frames']}x{_kept(c)}")
    add("pointer tokens", lambda c: "{}-{}".format(*c["tokens"]["pointer_tokens"]))
    add("mem-attn GFLOP/frame", lambda c: _fmt(c["memory_attention_flops"]["total"], ".3f", 1e9))
    add("FLOPs vs dense", lambda c: _fmt(c["flops_vs_dense"], ".1%"))
    add("bank dense MiB", lambda c: _fmt(c["memory_bank_bytes"]["dense"], ".2f", MIB))
    add("bank kept MiB", lambda c: _fmt(c["memory_bank_bytes"]["kept"], ".2f", MIB))
    add("bank stored MiB", lambda c: _fmt(c["memory_bank_bytes"]["stored"], ".2f", MIB))
    add("peak RSS MiB", lambda c: _fmt(c["peak_rss_bytes"], ".0f", MIB))
    add("peak CUDA MiB", lambda c: _fmt(c["peak_cuda_bytes"], ".0f", MIB))
    lines = [
        _title(result),
        f"{s['video']}; {s['frames']} frames, steady state = frames {s['steady_frames'][0]}-"
        f"{s['steady_frames'][1]}; strategy {s['strategy']}; medians of {s['repeats']} "
        f"interleaved repeat(s){'; each run in a fresh process' if s['isolated'] else ''}",
        f"router: {result['router']}; object text: {result['text']!r} encoded by "
        f"{result['text_encoder']}",
        _table(["", *[c["name"] for c in configs]], rows),
        f"NOTE: {result['note']}",
        "bank stored = what the implementation holds (dense features + kept indices).",
    ]
    return "\n".join(lines)


def _kept(config: dict) -> str:
    kept = set(config["tokens"]["memory_kept_per_frame"])
    return (
        str(kept.pop())
        if len(kept) == 1
        else "/".join(map(str, config["tokens"]["memory_kept_per_frame"]))
    )


def format_accuracy_table(result: dict) -> str:
    """One row per configuration: J&F, J, F, drop against the reference, s/frame."""
    rows = [
        [
            c["name"],
            f"{c['keep_ratio']:.2f}",
            f"{c['memory_keep_ratio']:.2f}",
            _fmt(100 * c["J&F"], ".1f"),
            _fmt(100 * c["J"], ".1f"),
            _fmt(100 * c["F"], ".1f"),
            _fmt(100 * c["jf_drop"], "+.1f"),
            _fmt(c["seconds_per_frame"], ".4f"),
            _fmt(c["speedup"], ".2f", suffix="x"),
        ]
        for c in result["configs"]
    ]
    header = ["config", "keep", "mem", "J&F", "J", "F", "drop", "s/frame", "speedup"]
    s = result["settings"]
    return "\n".join(
        [
            _title(result),
            f"dataset: {s['dataset']}; protocol {s['protocol']}; text: {result['text']} "
            f"(encoder: {result['text_encoder']}); router: {result['router']}",
            _table(header, rows),
            "J&F, J, F and drop in points (x100); drop = reference J&F - config J&F.",
            f"NOTE: {result['note']}",
        ]
    )


def format_memory_table(result: dict) -> str:
    """Per series: state and RSS at start and end, growth per frame, attended tokens."""
    rows = []
    for s in result["series"]:
        rows.append(
            [
                s["name"],
                _fmt(s["state_bytes"][0], ".1f", MIB),
                _fmt(s["state_bytes"][-1], ".1f", MIB),
                _fmt(s["state_growth_bytes_per_frame"], ".1f", 1024.0),
                _fmt(s["maskmem_bytes"][-1], ".2f", MIB),
                _fmt(s["rss_bytes"][-1], ".0f", MIB),
                _fmt(s["rss_growth_bytes_per_frame"], ".1f", 1024.0),
                _fmt(s["peak_rss_bytes"], ".0f", MIB),
                str(max((t for t in s["attended_memory_tokens"] if t is not None), default="n/a")),
            ]
        )
    header = [
        "series",
        "state MiB first",
        "state MiB last",
        "state KiB/frame",
        "maskmem MiB",
        "RSS MiB last",
        "RSS KiB/frame",
        "peak RSS MiB",
        "max tokens read",
    ]
    return "\n".join(
        [
            _title(result),
            f"{result['settings']['video']}; {result['settings']['frames']} frames",
            _table(header, rows),
            result["memory_note"],
            f"NOTE: {result['note']}",
        ]
    )


def format_result(result: dict) -> str:
    """The table for any result kind."""
    kind = result.get("kind")
    formatters = {
        "efficiency": format_efficiency_table,
        "accuracy": format_accuracy_table,
        "ablation": format_accuracy_table,
        "memory": format_memory_table,
    }
    if kind not in formatters:
        raise ValueError(f"not a benchmark result (kind={kind!r})")
    return formatters[kind](result)


# --------------------------------------------------------------------------- compare


# Result entries that describe the setup or hold raw per-run data, not figures to compare.
_NOT_FIGURES = frozenset({"runs", "settings", "versions", "memory_attention", "grid"})


def flatten_figures(result: dict, include_videos: bool = False) -> dict[str, float]:
    """Every scalar number of a result, keyed by a readable path (configs by name; raw
    per-run lists, traces and settings left out)."""
    out: dict[str, float] = {}

    def walk(obj: object, path: str) -> None:
        if isinstance(obj, bool) or obj is None:
            return
        if isinstance(obj, (int, float)):
            out[path] = float(obj)
        elif isinstance(obj, dict):
            for key, value in obj.items():
                if key not in _NOT_FIGURES:
                    walk(value, f"{path}.{key}")
        elif isinstance(obj, list) and obj and all(isinstance(o, dict) for o in obj):
            for o in obj:
                key = o.get("name") or f"{o.get('video')}/{o.get('config')}"
                walk(o, f"{path}[{key}]")

    for key, value in result.items():
        # top-level scalars are settings (image size, schema...), not figures
        if isinstance(value, (dict, list)) and key not in _NOT_FIGURES:
            if include_videos or key != "videos":
                walk(value, key)
    return out


def compare_results(previous: dict, current: dict, include_videos: bool = False) -> dict:
    """Figures of two results of the same kind side by side: rows (path, previous, current,
    change, relative change), and the paths only one of them has."""
    if previous.get("kind") != current.get("kind"):
        raise ValueError(
            f"cannot compare a {previous.get('kind')!r} result with a {current.get('kind')!r} one"
        )
    old, new = flatten_figures(previous, include_videos), flatten_figures(current, include_videos)
    rows = []
    for path in [p for p in new if p in old]:
        change = new[path] - old[path]
        rel = change / abs(old[path]) if old[path] else None
        rows.append(
            {
                "figure": path,
                "previous": old[path],
                "current": new[path],
                "change": change,
                "relative": rel,
            }
        )
    return {
        "rows": rows,
        "only_previous": sorted(set(old) - set(new)),
        "only_current": sorted(set(new) - set(old)),
        "previous_label": previous.get("weights_label"),
        "current_label": current.get("weights_label"),
    }


def format_comparison(comparison: dict) -> str:
    rows = [
        [
            r["figure"],
            f"{r['previous']:.6g}",
            f"{r['current']:.6g}",
            f"{r['change']:+.4g}",
            "n/a" if r["relative"] is None else f"{r['relative']:+.1%}",
        ]
        for r in comparison["rows"]
    ]
    lines = [
        f"compare: previous {comparison['previous_label']} -> current {comparison['current_label']}",
        _table(["figure", "previous", "current", "change", "relative"], rows),
    ]
    for key in ("only_previous", "only_current"):
        if comparison[key]:
            lines.append(f"{key.replace('_', ' ')}: {', '.join(comparison[key])}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- plots


def _figure(ncols: int = 1, width: float = 6.4):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, 4.2), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, np.atleast_1d(axes)


def _subtitle(result: dict) -> str:
    return f"{result['weights_label']}, {result['device']}, {result['image_size']} px"


def plot_stage_times(result: dict):
    """Stacked bars: steady-state seconds per frame by stage, per keep ratio."""
    if result.get("kind") != "efficiency":
        raise ValueError("plot_stage_times needs an efficiency result")
    fig, (ax,) = _figure()
    configs = result["configs"]
    x = np.arange(len(configs))
    bottom = np.zeros(len(configs))
    for stage in STAGES:
        values = np.array([c["stage_seconds"][stage] for c in configs]) * 1000
        ax.bar(x, values, bottom=bottom, label=stage.replace("_", " "))
        bottom += values
    for xi, c, top in zip(x, configs, bottom, strict=True):
        ax.annotate(f"{c['speedup']:.2f}x", (xi, top), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(x, [c["name"] for c in configs], rotation=15)
    ax.set_ylabel("ms per frame (steady state, median)")
    ax.set_title(f"Time per frame by stage\n{_subtitle(result)}", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def plot_jf_vs_keep(result: dict):
    """J&F against keep ratio, one line per strategy; the reference (stock SAM2) dashed."""
    if result.get("kind") not in ("accuracy", "ablation"):
        raise ValueError("plot_jf_vs_keep needs an accuracy result")
    fig, (ax,) = _figure()
    ref = next(c for c in result["configs"] if c["name"] == result["reference"])
    ax.axhline(100 * ref["J&F"], color="k", ls="--", lw=1, label="stock SAM2 (keep 1.0)")
    strategies = sorted({c["strategy"] for c in result["configs"]} - {"none"})
    for strategy in strategies:
        points = sorted(
            (c["keep_ratio"], 100 * c["J&F"])
            for c in result["configs"]
            if c["strategy"] == strategy and c["memory_keep_ratio"] == c["keep_ratio"]
        ) + [(1.0, 100 * ref["J&F"])]
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", label=strategy)
    ax.set_xlabel("keep ratio (query and memory tokens)")
    ax.set_ylabel("J&F")
    ax.set_title(f"J&F vs keep ratio\n{_subtitle(result)}", fontsize=10)
    ax.legend(fontsize=8)
    return fig


def plot_memory_vs_length(result: dict):
    """Three panels against frame index: process RSS, inference-state bytes, tokens read."""
    if result.get("kind") != "memory":
        raise ValueError("plot_memory_vs_length needs a memory result")
    fig, axes = _figure(3, width=4.6)
    keeps = sorted({(s["keep_ratio"], s["memory_keep_ratio"]) for s in result["series"]})
    for s in result["series"]:
        style = dict(
            ls="--" if s["release"] else "-",
            color=f"C{keeps.index((s['keep_ratio'], s['memory_keep_ratio']))}",
            label=s["name"],
        )
        if None not in s["rss_bytes"]:
            axes[0].plot(s["frames"], np.array(s["rss_bytes"]) / MIB, **style)
        axes[1].plot(s["frames"], np.array(s["state_bytes"]) / MIB, **style)
        tokens = [np.nan if t is None else t for t in s["attended_memory_tokens"]]
        axes[2].plot(s["frames"], tokens, **style)
    for ax, label in zip(
        axes,
        ("process RSS (MiB)", "inference state (MiB)", "memory tokens read per frame"),
        strict=True,
    ):
        ax.set_xlabel("frame")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Memory vs video length — {_subtitle(result)}", fontsize=10)
    return fig


def save_plots(result: dict, json_path: str | Path) -> list[Path]:
    """Save the result's figures as PNG next to ``json_path`` (``<stem>_<plot>.png``)."""
    json_path = Path(json_path)
    plots = {
        "efficiency": {"stages": plot_stage_times},
        "accuracy": {"jf_vs_keep": plot_jf_vs_keep},
        "ablation": {},
        "memory": {"memory_vs_length": plot_memory_vs_length},
    }[result["kind"]]
    paths = []
    for suffix, plot in plots.items():
        path = json_path.with_name(f"{json_path.stem}_{suffix}.png")
        plot(result).savefig(path, dpi=120)
        paths.append(path)
    return paths


def write_result(result: dict, json_path: str | Path) -> list[Path]:
    """Write the JSON and its plots; returns every path written."""
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(result, indent=1, allow_nan=True))
    return [json_path, *save_plots(result, json_path)]


# --------------------------------------------------------------------------- CLI


def _add_common(p: argparse.ArgumentParser, model: str) -> None:
    p.add_argument(
        "--model", default=model, help="micro, sam2.1_hiera_t, ... (default %(default)s)"
    )
    p.add_argument("--checkpoint", default=None, help="SAM2 checkpoint file (trained weights)")
    p.add_argument(
        "--weights",
        default="trained",
        choices=("trained", "random"),
        help="random: seeded random weights, for cost only (default %(default)s)",
    )
    p.add_argument("--image-size", type=int, default=None, help="override the input size")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--clip", default="micro", help="CLIP for text (open_clip name, or 'none'; default micro)"
    )
    p.add_argument("--clip-pretrained", default=None, help="open_clip tag or checkpoint file")
    p.add_argument("--router", default=None, help="trained router weights file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny run for CI (seconds per config)")
    p.add_argument("--json", type=Path, default=None, help="write the result (and PNG plots)")
    p.add_argument("--compare", type=Path, default=None, help="earlier result JSON to compare with")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_keep(p: argparse.ArgumentParser, default: str) -> None:
    p.add_argument("--keep", default=default, help="comma-separated keep ratios in (0, 1]")
    p.add_argument("--memory-keep", default="same", help="'same', one ratio, or one per keep ratio")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m fsam2lib.bench",
        description="Cost and accuracy benchmarks of token pruning for SAM2.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    eff = sub.add_parser("efficiency", help="time per stage, FLOPs, memory per keep ratio")
    _add_common(eff, "sam2.1_hiera_t")
    _add_keep(eff, "1.0,0.5,0.3,0.2")
    eff.add_argument("--frames", type=int, default=16)
    eff.add_argument("--strategy", default="router")
    eff.add_argument("--bf16", action="store_true", help="torch.autocast bfloat16")
    eff.add_argument("--repeats", type=int, default=3)
    eff.add_argument("--threads", type=int, default=None, help="torch threads per run")
    eff.add_argument(
        "--in-process", action="store_true", help="no subprocess per run (no peak RSS)"
    )

    for name, helptext in (
        ("accuracy", "J&F per strategy x keep ratio"),
        ("ablation", "cues off, fills"),
    ):
        acc = sub.add_parser(name, help=helptext)
        _add_common(acc, "micro")
        acc.add_argument(
            "--dataset", default="synthetic:val:20", help="DAVIS-layout folder or synthetic:SPLIT:N"
        )
        acc.add_argument("--split", default="val", help="ImageSets split of a dataset folder")
        acc.add_argument("--resolution", default="480p")
        acc.add_argument("--protocol", default="mask", choices=("mask", "click"))
        acc.add_argument("--max-videos", type=int, default=None)
        if name == "accuracy":
            _add_keep(acc, "1.0,0.5,0.3,0.2,0.1")
            acc.add_argument("--strategies", default="router,random,grid,mask_prior,text_only")
            acc.add_argument(
                "--context", type=float, default=None, help="lattice share of each budget"
            )
            acc.add_argument(
                "--fill", default=None, choices=FILLS, help="what pruned query positions get"
            )
        else:
            acc.add_argument("--keep", default="0.3", help="one keep ratio")
            acc.add_argument("--memory-keep", default="same")
            acc.add_argument("--strategy", default="router")
            acc.add_argument("--fills", default=",".join(FILLS))
            acc.add_argument(
                "--contexts", default="0,0.5", help="lattice shares to compare with the default"
            )

    mem = sub.add_parser("memory", help="memory vs video length, with and without pruning")
    _add_common(mem, "micro")
    _add_keep(mem, "1.0,0.3")
    mem.add_argument("--frames", type=int, default=200)
    mem.set_defaults(image_size=256)
    mem.add_argument("--strategy", default="router")
    mem.add_argument(
        "--release",
        default="both",
        choices=("no", "yes", "both"),
        help="release frames outside SAM2's memory window (default: both variants)",
    )
    mem.add_argument("--trace-every", type=int, default=None, help="sample every N frames")
    mem.add_argument("--bf16", action="store_true")
    mem.add_argument("--threads", type=int, default=None)
    mem.add_argument("--in-process", action="store_true")

    cmp_ = sub.add_parser("compare", help="change of every figure between two result JSONs")
    cmp_.add_argument("previous", type=Path)
    cmp_.add_argument("current", type=Path)
    cmp_.add_argument("--videos", action="store_true", help="include per-video rows")

    worker = sub.add_parser("_worker", help="internal: one isolated measurement")
    worker.add_argument("spec")
    worker.add_argument("out")
    return parser


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"result file not found: {path}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def _run_command(args: argparse.Namespace) -> dict:
    common = dict(
        model=args.model,
        checkpoint=args.checkpoint,
        weights=None if args.weights == "trained" else "random",
        image_size=args.image_size,
        device=args.device,
        clip=None if args.clip == "none" else args.clip,
        clip_pretrained=args.clip_pretrained,
        router=args.router,
        quick=args.quick,
        seed=args.seed,
        progress=not args.no_progress,
    )
    memory_keep = None if args.memory_keep == "same" else args.memory_keep
    if args.command == "efficiency":
        return run_efficiency(
            frames=args.frames,
            keep=args.keep,
            memory_keep=memory_keep,
            strategy=args.strategy,
            bf16=args.bf16,
            repeats=args.repeats,
            isolate=not args.in_process,
            threads=args.threads,
            **common,
        )
    if args.command == "memory":
        release = {"no": (False,), "yes": (True,), "both": (False, True)}[args.release]
        return run_memory(
            frames=args.frames,
            keep=args.keep,
            memory_keep=memory_keep,
            strategy=args.strategy,
            release=release,
            bf16=args.bf16,
            trace_every=args.trace_every,
            isolate=not args.in_process,
            threads=args.threads,
            **common,
        )
    data = dict(
        dataset=args.dataset,
        protocol=args.protocol,
        max_videos=args.max_videos,
        split=args.split,
        resolution=args.resolution,
    )
    if args.command == "accuracy":
        return run_accuracy(
            keep=args.keep,
            strategies=args.strategies,
            memory_keep=memory_keep,
            context=args.context,
            fill=args.fill,
            **data,
            **common,
        )
    return run_ablation(
        keep=args.keep,
        memory_keep=memory_keep,
        strategy=args.strategy,
        fills=[f.strip() for f in args.fills.split(",")],
        contexts=_parse_contexts(args.contexts),
        **data,
        **common,
    )


def _parse_contexts(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as err:
        raise ValueError(
            f"--contexts must be comma-separated numbers in [0, 1], got {text!r}"
        ) from err
    bad = [v for v in values if not 0.0 <= v <= 1.0]
    if bad:
        raise ValueError(f"--contexts must lie in [0, 1], got {bad}")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "_worker":
        _worker_main(args.spec, args.out)
        return 0
    try:
        if args.command == "compare":
            comparison = compare_results(
                _read_json(args.previous), _read_json(args.current), args.videos
            )
            print(format_comparison(comparison))
            return 0
        previous = _read_json(args.compare) if args.compare is not None else None
        result = _run_command(args)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    print(format_result(result))
    if args.json is not None:
        for path in write_result(result, args.json):
            print(f"wrote {path}")
    if previous is not None:
        print(format_comparison(compare_results(previous, result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
