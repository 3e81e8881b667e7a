"""Ray execution: one pool of actors, each loading the network once, that train the alignments
and then score the shards. Resources are explicit on every actor; restarts and task retries
are on, and a shard's result depends only on its pairs, so a lost worker loses no finished
shard and a retried one returns the same bytes.

The pool holds only actors the cluster can place: a worker's CPUs and GPUs must fit on one
node, so the count comes from each alive node's resources, never the cluster's total. Actors
that do not start within ``READY_TIMEOUT_S`` are dropped (the job goes on with the rest) or,
when none starts, the job stops saying what is missing: it never waits on an actor that
cannot be placed."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np

from service.spec import JobSpec, SpecError
from service.worker import AlignJob, ShardJob, Worker, network_ref

Log = Callable[[str], None]
WORKER_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "NUMBA_NUM_THREADS": "1"}
READY_TIMEOUT_S = 300.0  # an actor loads torch and the network; a GPT-2 small loads in ~30 s
IN_FLIGHT = 2  # tasks queued per actor: the next shard is there as soon as one finishes


def _alive(node: dict) -> bool:
    return bool(node.get("Alive", node.get("alive", False)))


def placeable(nodes: list[dict], cpus: float, gpus: float) -> int:
    """How many workers of ``cpus`` CPUs and ``gpus`` GPUs each the alive nodes can hold
    (``nodes`` as ``ray.nodes()`` gives them): per node, since an actor lives on one node."""
    total = 0
    for node in filter(_alive, nodes):
        have = node.get("Resources", {})
        # A small tolerance: Ray stores resources in fixed point (0.1 + 0.2 must fit 0.3).
        fit = math.floor(have.get("CPU", 0.0) / cpus + 1e-6)
        if gpus > 0:
            fit = min(fit, math.floor(have.get("GPU", 0.0) / gpus + 1e-6))
        total += max(0, fit)
    return total


def plan_workers(nodes: list[dict], workers: int, cpus: float, gpus: float) -> int:
    """The pool size: ``workers`` capped to what the nodes can place; an error naming the
    nodes' resources when not even one worker fits."""
    fit = placeable(nodes, cpus, gpus)
    if fit == 0:
        have = (
            "; ".join(
                f"{n.get('NodeManagerAddress', '?')}: {n.get('Resources', {}).get('CPU', 0):g} "
                f"CPU, {n.get('Resources', {}).get('GPU', 0):g} GPU"
                for n in filter(_alive, nodes)
            )
            or "none alive"
        )
        raise SpecError(
            f"execution asks for {gpus:g} GPU and {cpus:g} CPU per worker, but no node of the "
            f"cluster has that much (nodes: {have}); a worker must fit on one node: lower "
            "execution.gpus_per_worker or execution.cpus_per_worker, or add such a node"
        )
    return min(workers, fit)


class RayExecutor:
    def __init__(
        self,
        spec: JobSpec,
        network: str | Path,
        identity: str,
        log: Log,
        address: str | None,
    ) -> None:
        import ray

        self.ray = ray
        self.log = log
        self.started_ray = False
        self.actors: list = []
        if not ray.is_initialized():
            try:
                ray.init(
                    address=address,
                    log_to_driver=False,
                    runtime_env={"env_vars": WORKER_ENV},
                )
            except ConnectionError as exc:
                from service.jobs import redact  # an address may carry user:password@

                raise SpecError(
                    redact(
                        f"cannot reach a Ray cluster at {address!r} ({exc}); check the address, "
                        "or leave it out to start an embedded local Ray"
                    )
                ) from None
            self.started_ray = True
        try:
            self._start_pool(spec, network, identity, address)
        except BaseException:
            self.close()
            raise

    def _start_pool(self, spec: JobSpec, network, identity: str, address: str | None) -> None:
        ex = spec.execution
        count = plan_workers(self.ray.nodes(), ex.workers, ex.cpus_per_worker, ex.gpus_per_worker)
        from service.jobs import redact

        where = f"a cluster at {redact(address)}" if address else "the embedded local Ray"
        if count < ex.workers:
            self.log(
                f"ray: {where} can place {count} of the {ex.workers} workers asked "
                f"({ex.cpus_per_worker:g} CPU, {ex.gpus_per_worker:g} GPU each); using {count}"
            )
        actor = self.ray.remote(Worker).options(
            num_cpus=ex.cpus_per_worker,
            num_gpus=ex.gpus_per_worker,
            max_restarts=3,
            max_task_retries=3,
        )
        args = (spec.model_dump_json(), network_ref(network), ex.threads_per_worker, identity)
        self.actors = [actor.remote(*args) for _ in range(count)]
        self._wait_ready(ex)
        self.log(
            f"ray: {len(self.actors)} workers ({ex.cpus_per_worker:g} CPU, "
            f"{ex.gpus_per_worker:g} GPU each) on {where}"
        )

    def _wait_ready(self, ex) -> None:
        refs = {a.pid.remote(): a for a in self.actors}
        ready, pending = self.ray.wait(list(refs), num_returns=len(refs), timeout=READY_TIMEOUT_S)
        for ref in ready:
            try:
                self.ray.get(ref)
            except self.ray.exceptions.RayError as exc:
                # The actor's constructor failed (the network, its identity): say why.
                raise SpecError(f"a Ray worker failed to start: {_cause(exc)}") from None
        if pending:
            for ref in pending:
                self.ray.kill(refs[ref])
            self.actors = [refs[r] for r in ready]
            if not self.actors:
                raise SpecError(
                    f"no Ray worker started within {READY_TIMEOUT_S:g} s: the cluster has no "
                    f"room for a worker of {ex.cpus_per_worker:g} CPU and "
                    f"{ex.gpus_per_worker:g} GPU (other jobs may hold it: "
                    f"free now {self.ray.available_resources()}); try again later or lower "
                    "execution.cpus_per_worker / gpus_per_worker"
                )
            self.log(
                f"ray: {len(pending)} workers did not start within {READY_TIMEOUT_S:g} s; "
                f"going on with {len(self.actors)}"
            )

    def _map(self, method: str, jobs: list, args: Callable[[object], tuple]) -> Iterator[tuple]:
        """Run ``jobs`` over the actors, ``IN_FLIGHT`` at a time on each; yield (job, result) as
        each finishes. A failed job (after Ray's retries) raises its error here."""
        queue = list(jobs)
        free = [a for a in self.actors for _ in range(IN_FLIGHT)]
        running: dict = {}
        while queue or running:
            while queue and free:
                actor, job = free.pop(), queue.pop(0)
                running[getattr(actor, method).remote(job, *args(job))] = (job, actor)
            done, _ = self.ray.wait(list(running), num_returns=1)
            job, actor = running.pop(done[0])
            result = self.ray.get(done[0])
            free.append(actor)
            yield job, result

    def align(self, jobs: list[AlignJob]) -> Iterator[tuple[AlignJob, object]]:
        return self._map("align", jobs, lambda job: ())

    def score(
        self, jobs: list[ShardJob], design, rotations: Mapping[tuple[int, int], object]
    ) -> Iterator[tuple[ShardJob, np.ndarray]]:
        design_ref = self.ray.put(design)
        # Each rotation goes to the object store once, whatever the number of its shards; only
        # the columns with work are sent (a site added to a finished job sends its own only).
        wanted = {(job.site_index, job.model_index) for job in jobs}
        refs = {pair: self.ray.put(rotations[pair]) for pair in sorted(wanted)}
        return self._map(
            "score", jobs, lambda job: (design_ref, refs[job.site_index, job.model_index])
        )

    def worker_pids(self) -> list[int]:
        return self.ray.get([a.pid.remote() for a in self.actors])

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
        if self.started_ray:
            self.ray.shutdown()
            self.started_ray = False


def _cause(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    # Ray wraps the constructor's exception in a traceback; its last line is the message.
    return text[-1] if text else type(exc).__name__
