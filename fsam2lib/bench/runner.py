"""One measured run (prompt, propagate, time and count every frame), and the runner that
executes runs either each in a fresh subprocess or all in this process.

Why subprocesses: peak RSS is a per-process figure that only grows, so a configuration's own
peak is only measurable in a process that ran nothing else. The worker is this package's
CLI (``python -m fsam2lib.bench _worker JOB OUT``); the job travels as JSON, the video as an
``.npz`` file.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from fsam2lib.bench.profiling import (
    MemoryAttentionProbe,
    StageTimer,
    bank_bytes,
    fill_bytes,
    peak_rss_bytes,
    reset_peak_rss,
    rss_bytes,
    state_bytes,
    stored_outputs,
)
from fsam2lib.bench.spec import ModelSpec, open_predictor, predictor_info
from fsam2lib.paths import REPO_DIR
from fsam2lib.pruning.config import PruningConfig
from fsam2lib.videos.video import Video

PROMPT_OBJECT = 1  # cost runs track the first target of the synthetic video


def prompt_note(video: Video) -> str:
    """How a cost run prompts ``video``, for the result's settings."""
    return (
        f"synthetic ({video.name}), object {PROMPT_OBJECT} prompted with its frame-0 mask "
        "(N objects: the video's targets on frame 0 in turn, each as its own object)"
    )


def cost_prompts(
    video: Video, objects: int, text: str | None
) -> list[tuple[int, np.ndarray, str | None]]:
    """``(obj_id, frame-0 mask, text)`` for ``objects`` tracked objects: the targets present
    on frame 0, ``PROMPT_OBJECT`` first, taken in turn (ids 1..N; a target may serve several
    ids: SAM2 tracks each id on its own whatever its mask, which is what a cost run needs).
    The first object gets ``text``; the others, when ``text`` is given, their target's own
    description."""
    if isinstance(objects, bool) or not isinstance(objects, int) or objects < 1:
        raise ValueError(f"objects must be an integer >= 1, got {objects!r}")
    present = [k for k in sorted(video.descriptions) if (video.masks[0] == k).any()]
    if PROMPT_OBJECT not in present:
        raise ValueError(f"video {video.name!r}: object {PROMPT_OBJECT} is not on frame 0")
    present.remove(PROMPT_OBJECT)
    targets = [PROMPT_OBJECT, *present]
    prompts = []
    for i in range(objects):
        target = targets[i % len(targets)]
        own = text if i == 0 else video.descriptions.get(target) if text is not None else None
        prompts.append((i + 1, video.masks[0] == target, own))
    return prompts


@contextmanager
def quiet_sam2() -> Iterator[None]:
    """Silence sam2's own per-video progress bar (the library must not print)."""
    with mock.patch("sam2.sam2_video_predictor.tqdm", lambda iterable, *a, **k: iterable):
        yield


def measure_run(
    predictor,
    video: Video,
    config: PruningConfig,
    text: str | None = None,
    bf16: bool = False,
    trace_every: int | None = None,
    policy: str = "lean",
    video_dir: str | None = None,
    objects: int = 1,
) -> dict:
    """Prompt ``PROMPT_OBJECT`` with its first-frame mask, propagate, and measure every frame.

    ``objects``: track that many objects (:func:`cost_prompts`: the first gets ``text``,
    the others their own descriptions).

    ``policy``: the predictor's state policy for the run ("lean" or "stock", see
    :class:`~fsam2lib.predictor.state_policy.StatePolicy`). ``video_dir``: a JPEG folder of
    ``video``'s frames, opened with ``init_state(video_path=...)`` as a user would (else the
    frames are handed over in memory).

    Returns per-frame wall time, stage times and memory-attention token counts; RSS after the
    model was loaded and the peak RSS of the run itself (Linux resets the peak first); peak
    CUDA memory; the inference state's bytes at the end; with ``trace_every``, samples of RSS
    and state bytes every that many frames.
    """
    from fsam2lib.predictor.state_policy import StatePolicy
    from fsam2lib.videos.frames import init_state_from_frames

    device = torch.device(predictor.device)
    cuda = device.type == "cuda"
    predictor.pruning = config
    predictor.state_policy = StatePolicy.named(policy)
    gc.collect()
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    baseline_rss = rss_bytes()
    peak_reset = reset_peak_rss()
    baseline_cuda = torch.cuda.memory_allocated(device) if cuda else None
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    trace, frames = [], []
    prompts = cost_prompts(video, objects, text)
    with torch.inference_mode(), autocast, quiet_sam2():
        if video_dir is None:
            state = init_state_from_frames(predictor, video.frames)
        else:
            state = predictor.init_state(video_path=video_dir)
        for obj_id, mask, obj_text in prompts:
            extra = {} if obj_text is None else {"text": obj_text}
            predictor.add_new_mask(state, frame_idx=0, obj_id=obj_id, mask=mask, **extra)
        probe = MemoryAttentionProbe(predictor.memory_attention)
        with StageTimer(predictor, sync=device if cuda else None) as timer, probe:
            timer.start_frame()
            for frame_idx, _, _ in predictor.propagate_in_video(state):
                entry = timer.frame_done(frame_idx)
                entry["tokens"] = probe.calls[-1] if probe.calls else None
                probe.calls.clear()
                frames.append(entry)
                if trace_every and (
                    frame_idx % trace_every == 0 or frame_idx == video.num_frames - 1
                ):
                    trace.append(_memory_sample(frame_idx, state, entry["tokens"], device))
                timer.start_frame()
    result = {
        "frames": frames,
        "baseline_rss_bytes": baseline_rss,
        "peak_rss_bytes": peak_rss_bytes(),
        "peak_rss_is_run_only": peak_reset,
        "baseline_cuda_bytes": baseline_cuda,
        "peak_cuda_bytes": torch.cuda.max_memory_allocated(device) if cuda else None,
        "state_bytes_end": state_bytes(state),
        "stored_memory_element_bytes": _maskmem_element_bytes(state),
        "stored_outputs": stored_outputs(state),
        "bank_bytes": bank_bytes(state, predictor.num_maskmem),
        "stored_bank_bytes": bank_bytes(state),
        "fill_bytes": fill_bytes(state),
        "trace": trace or None,
    }
    del state
    gc.collect()
    return result


def _maskmem_element_bytes(state: dict) -> int:
    for outputs in state["output_dict_per_obj"].values():
        for part in ("cond_frame_outputs", "non_cond_frame_outputs"):
            for out in outputs[part].values():
                if out.get("maskmem_features") is not None:
                    return int(dict.get(out, "maskmem_features").element_size())
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


# --------------------------------------------------------------------------- jobs


@dataclass
class _Job:
    """One measured run, in-process or in a fresh subprocess."""

    spec: ModelSpec
    strategies: tuple[str, ...]
    seed: int
    config: PruningConfig
    bf16: bool = False
    threads: int | None = None
    trace_every: int | None = None
    policy: str = "lean"
    video_dir: str | None = None  # a JPEG folder of the video, read through init_state
    objects: int = 1
    compile: bool = False  # torch.compile memory attention and the router (compile_pruning)

    def to_json(self, video_path: str) -> dict:
        return {
            "spec": self.spec.to_json(),
            "strategies": list(self.strategies),
            "seed": self.seed,
            "config": dataclasses.asdict(self.config),
            "bf16": self.bf16,
            "threads": self.threads,
            "trace_every": self.trace_every,
            "policy": self.policy,
            "video_dir": self.video_dir,
            "objects": self.objects,
            "compile": self.compile,
            "video": video_path,
        }

    @classmethod
    def from_json(cls, data: dict) -> tuple[_Job, str]:
        config = dict(data["config"])
        config["cues"] = tuple(config["cues"])
        job = cls(
            spec=ModelSpec.from_json(data["spec"]),
            strategies=tuple(data["strategies"]),
            seed=data["seed"],
            config=PruningConfig(**config),
            bf16=data["bf16"],
            threads=data["threads"],
            trace_every=data["trace_every"],
            policy=data["policy"],
            video_dir=data["video_dir"],
            objects=data["objects"],
            compile=data["compile"],
        )
        return job, data["video"]


def _execute(job: _Job, video: Video, built: tuple | None = None) -> dict:
    """Run a job in this process (building the predictor unless ``built`` is given)."""
    if job.threads is not None:
        torch.set_num_threads(job.threads)
    opened = (
        open_predictor(job.spec, job.strategies, job.seed) if built is None else nullcontext(built)
    )
    with opened as (predictor, carried):
        text = video.descriptions.get(PROMPT_OBJECT) if predictor.text_encoder is not None else None
        if job.compile and "_compiled_kept" not in predictor.memory_attention.__dict__:
            predictor.compile_pruning()
        if torch.device(predictor.device).type == "cuda" or job.compile:
            # Untimed warm-up: CUDA libraries build a kernel plan for each new tensor shape on
            # first use (cuDNN attention, once per memory length), and torch.compile compiles
            # each graph on its first call; unwarmed, a fresh process charges that to the
            # measured frames (about 45 ms a frame at 1024 px on an H200).
            measure_run(
                predictor, video, job.config, text, job.bf16, None, job.policy, None, job.objects
            )
        run = measure_run(
            predictor,
            video,
            job.config,
            text,
            job.bf16,
            job.trace_every,
            job.policy,
            job.video_dir,
            job.objects,
        )
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


def save_jpeg_folder(video: Video, folder: Path) -> str:
    """``video``'s frames as ``00000.jpg``, ... (quality 95), the layout sam2 reads."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(video.frames):
        Image.fromarray(frame).save(folder / f"{t:05d}.jpg", quality=95)
    return str(folder)


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


def worker_main(spec_path: str, out_path: str) -> None:
    """The worker process: read a job, run it, write its result (``fsam2lib.bench _worker``)."""
    job, video_path = _Job.from_json(json.loads(Path(spec_path).read_text()))
    result = _execute(job, _load_video(video_path))
    Path(out_path).write_text(json.dumps(result))


class Runner:
    """Runs pruning configurations of one model on one video: each in a fresh subprocess
    (``isolate``: its peak RSS is its own) or all in this process with one predictor (peak RSS
    then reported as None: it is the process's, not the configuration's).

    A spec holding in-memory objects cannot go to a subprocess: ``isolate=True`` then raises
    ValueError here, before any run. ``jpeg``: the video is written as a JPEG folder and each
    run opens it with ``init_state(video_path=...)``, as a user would.
    """

    def __init__(
        self,
        spec: ModelSpec,
        strategies: Sequence[str],
        video: Video,
        isolate: bool,
        seed: int = 0,
        bf16: bool = False,
        threads: int | None = None,
        jpeg: bool = False,
    ) -> None:
        if isolate:
            spec.to_json()  # raises for in-memory objects
        self.spec, self.strategies, self.seed = spec, tuple(strategies), seed
        self.video, self.isolate, self.bf16, self.threads = video, isolate, bf16, threads
        self._stack = ExitStack()
        self._folder = Path()
        self._video_path = ""
        self.jpeg, self._video_dir = jpeg, None
        self._built: tuple | None = None
        self._count = 0

    def __enter__(self) -> Runner:
        if self.isolate or self.jpeg:
            self._folder = Path(
                self._stack.enter_context(tempfile.TemporaryDirectory(prefix="fsam2_bench_"))
            )
        if self.isolate:
            self._video_path = _save_video(self.video, self._folder)
        if self.jpeg:
            self._video_dir = save_jpeg_folder(self.video, self._folder / "frames")
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def run(
        self,
        config: PruningConfig,
        trace_every: int | None = None,
        policy: str = "lean",
        objects: int = 1,
        compile: bool = False,
    ) -> dict:
        """Measure one configuration under a state policy ("lean" or "stock") with
        ``objects`` tracked objects, ``compile``d or eager: ``{"info": model header
        entries, "run": measurements}``."""
        job = _Job(
            self.spec,
            self.strategies,
            self.seed,
            config,
            self.bf16,
            self.threads,
            trace_every,
            policy,
            self._video_dir,
            objects,
            compile,
        )
        self._count += 1
        if self.isolate:
            return _run_subprocess(job, self._video_path, self._folder, self._count)
        if self._built is None:
            self._built = self._stack.enter_context(
                open_predictor(self.spec, self.strategies, self.seed)
            )
        result = _execute(job, self.video, self._built)
        result["run"]["peak_rss_bytes"] = None  # process-wide here: not this config's
        return result
