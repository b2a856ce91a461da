"""Where independent pieces of benchmark work run: one after another in this process
("serial"), or as Ray tasks ("ray") -- on a local Ray started for the call, or on a cluster
given by ``address`` (or the ``RAY_ADDRESS`` environment variable, as ``ray.init`` reads it).

A task is a module-level function and its arguments; results come back in the order of the
items, whatever order the tasks finish in, so that a sweep's result does not depend on where
it ran. Each Ray task declares the CPUs and GPUs it needs; the function itself is told its
CPU count so that it can size torch's thread pool to it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

EXECUTORS = ("serial", "ray")


@dataclass(frozen=True)
class Executor:
    """How to run tasks: ``kind`` "serial" or "ray"; for Ray, the cluster ``address`` (None:
    ``RAY_ADDRESS`` if set, else a local Ray on this machine, shut down afterwards) and the
    resources one task declares."""

    kind: str = "serial"
    address: str | None = None
    cpus_per_task: float = 1.0
    gpus_per_task: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, got {self.kind!r}")
        if self.kind == "serial" and self.address is not None:
            raise ValueError("an address only makes sense with the ray executor")
        for name in ("cpus_per_task", "gpus_per_task"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if self.cpus_per_task == 0 and self.gpus_per_task == 0:
            raise ValueError("a task needs at least some CPU or GPU")

    @classmethod
    def named(cls, executor: str | Executor, address: str | None = None) -> Executor:
        """An executor from its name (and address), or the one given."""
        if isinstance(executor, Executor):
            return executor
        return cls(kind=executor, address=address)

    def map(
        self,
        task: Callable,
        items: Sequence[tuple],
        *,
        progress: bool = False,
        desc: str = "tasks",
    ) -> list:
        """``[task(*item, threads=...) for item in items]``, serially or as Ray tasks; the
        results in item order. ``threads``: the task's CPU share (at least 1)."""
        threads = max(1, int(self.cpus_per_task))
        if self.kind == "serial":
            return [
                task(*item, threads=None) for item in tqdm(items, desc=desc, disable=not progress)
            ]
        return _ray_map(self, task, items, threads, progress, desc)


def _ray_map(
    executor: Executor,
    task: Callable,
    items: Sequence[tuple],
    threads: int,
    progress: bool,
    desc: str,
) -> list:
    try:
        import ray
    except ImportError as error:
        raise ImportError(
            "the ray executor needs Ray: pip install 'ray>=2.9' (or fsam2lib[ray])"
        ) from error
    started_here = not ray.is_initialized()
    if started_here:
        local = executor.address is None and not os.environ.get("RAY_ADDRESS")
        ray.init(
            address=executor.address,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
            **({"num_cpus": os.cpu_count()} if local else {}),
        )
    try:
        remote = ray.remote(num_cpus=executor.cpus_per_task, num_gpus=executor.gpus_per_task)(task)
        refs = [remote.remote(*item, threads=threads) for item in items]
        position = {ref: i for i, ref in enumerate(refs)}
        results: list = [None] * len(refs)
        pending = list(refs)
        with tqdm(total=len(refs), desc=f"{desc} (ray)", disable=not progress) as bar:
            while pending:
                done, pending = ray.wait(pending, num_returns=1)
                for ref in done:
                    results[position[ref]] = ray.get(ref)
                    bar.update()
        return results
    finally:
        if started_here:
            ray.shutdown()
