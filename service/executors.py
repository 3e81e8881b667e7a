"""Executors run a job's alignment and scoring jobs and hand back results as they finish;
the stages store them. In-process here (one worker, one job after another); on Ray actors in
``service.ray_exec``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Protocol

import numpy as np

from service.spec import JobSpec
from service.worker import AlignJob, ShardJob, Worker, network_ref

Log = Callable[[str], None]


# A rotation per (site index, candidate index): each column is scored with its own site's.
Rotations = Mapping[tuple[int, int], object]


class Executor(Protocol):
    def align(self, jobs: list[AlignJob]) -> Iterable[tuple[AlignJob, object]]: ...

    def score(
        self, jobs: list[ShardJob], design, rotations: Rotations
    ) -> Iterable[tuple[ShardJob, np.ndarray]]: ...

    def close(self) -> None: ...


class InProcessExecutor:
    """One worker in this process."""

    def __init__(self, spec: JobSpec, network: str | Path, identity: str, log: Log) -> None:
        threads = spec.execution.threads_per_worker
        self.worker = Worker(spec.model_dump_json(), network_ref(network), threads, identity)

    def align(self, jobs: list[AlignJob]) -> Iterator[tuple[AlignJob, object]]:
        for job in jobs:
            yield job, self.worker.align(job)

    def score(
        self, jobs: list[ShardJob], design, rotations: Rotations
    ) -> Iterator[tuple[ShardJob, np.ndarray]]:
        for job in jobs:
            rotation = rotations[job.site_index, job.model_index]
            yield job, self.worker.score(job, design, rotation)

    def close(self) -> None:
        pass


def make_executor(
    spec: JobSpec, network: str | Path, identity: str, log: Log, address: str | None
) -> Executor:
    """In-process when the spec says so and no address is given; Ray otherwise (the embedded
    local Ray without an address)."""
    if spec.execution.mode == "in-process" and address is None:
        return InProcessExecutor(spec, network, identity, log)
    from service.ray_exec import RayExecutor

    return RayExecutor(spec, network, identity, log, address=address or spec.execution.address)
