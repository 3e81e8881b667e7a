"""Ray execution: DAS training per (candidate, site) as Ray tasks, IIA scoring by a pool of
actors that each load the network once. Resources are explicit on every actor and task;
actor restarts and task retries are on, and shards are idempotent, so a lost worker loses no
finished shard and a retried one writes the same bytes."""

from __future__ import annotations

from pathlib import Path

from service.pipeline import AlignJob, Log, Progress, ShardJob, Worker, alignment_line
from service.spec import JobSpec, SpecError

WORKER_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "NUMBA_NUM_THREADS": "1"}


def _align(spec_json: str, network_dir: str, threads: int, job: AlignJob) -> dict:
    return Worker(spec_json, network_dir, threads).align(job)


class RayExecutor:
    def __init__(self, spec: JobSpec, network_dir: Path, log: Log, address: str | None) -> None:
        import ray

        self.ray = ray
        self.log = log
        self.started_ray = False
        if not ray.is_initialized():
            try:
                ray.init(
                    address=address,
                    log_to_driver=False,
                    runtime_env={"env_vars": WORKER_ENV},
                )
            except ConnectionError as exc:
                raise SpecError(
                    f"cannot reach a Ray cluster at {address!r} ({exc}); check the address, or "
                    "leave it out to start an embedded local Ray"
                ) from None
            self.started_ray = True
        ex = spec.execution
        have = ray.cluster_resources()
        for resource, per_worker in (("GPU", ex.gpus_per_worker), ("CPU", ex.cpus_per_worker)):
            if per_worker > have.get(resource, 0):
                self.close()
                raise SpecError(
                    f"execution asks for {per_worker:g} {resource} per worker but the cluster has "
                    f"{have.get(resource, 0):g}; lower execution.{resource.lower()}s_per_worker "
                    "or add nodes"
                )
        self.spec_json = spec.model_dump_json()
        self.network_dir = str(Path(network_dir).resolve())
        self.threads = ex.threads_per_worker
        self.resources = {"num_cpus": ex.cpus_per_worker, "num_gpus": ex.gpus_per_worker}
        self.workers = ex.workers
        self.actors: list = []  # started for scoring, after the alignment tasks have their CPUs
        log(
            f"ray: {ex.workers} workers ({ex.cpus_per_worker:g} CPU, {ex.gpus_per_worker:g} GPU "
            f"each) on {'a cluster at ' + address if address else 'the embedded local Ray'}"
        )

    def align(self, jobs: list[AlignJob]) -> list[dict]:
        task = self.ray.remote(_align).options(**self.resources, max_retries=3)
        refs = [task.remote(self.spec_json, self.network_dir, self.threads, j) for j in jobs]
        out: list[dict | None] = [None] * len(refs)
        index = {ref: k for k, ref in enumerate(refs)}
        pending = list(refs)
        bar = Progress(len(refs), "DAS alignments", self.log, every=1)
        while pending:
            done, pending = self.ray.wait(pending, num_returns=1)
            k = index[done[0]]
            out[k] = self.ray.get(done[0])
            bar.step(alignment_line(out[k]))
        bar.close()
        return out

    def score(self, jobs: list[ShardJob], design, alignment_dirs: list[str]) -> None:
        from ray.util import ActorPool

        if not self.actors:
            actor = self.ray.remote(Worker).options(
                **self.resources, max_restarts=3, max_task_retries=3
            )
            self.actors = [
                actor.remote(self.spec_json, self.network_dir, self.threads)
                for _ in range(self.workers)
            ]
        design_ref = self.ray.put(design)
        pool = ActorPool(self.actors)
        results = pool.map_unordered(
            lambda actor, job: actor.score.remote(
                job, design_ref, alignment_dirs[job.candidate_index]
            ),
            jobs,
        )
        bar = Progress(len(jobs), "IIA shards", self.log)
        for _ in results:
            bar.step()
        bar.close()

    def worker_pids(self) -> list[int]:
        return self.ray.get([a.pid.remote() for a in self.actors])

    def close(self) -> None:
        for actor in getattr(self, "actors", []):
            self.ray.kill(actor)
        self.actors = []
        if self.started_ray:
            self.ray.shutdown()
            self.started_ray = False
