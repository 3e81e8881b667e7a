"""One job: task → network → alignments → successes → IIA → partitions → report.

The layers, each depending only on those below it:

- ``service.pipeline``: this function, the order of the stages;
- ``service.stages``: each stage, reusing or computing its artifact;
- ``service.executors`` / ``service.ray_exec``: where alignment and scoring jobs run
  (in-process, or a pool of Ray actors);
- ``service.worker``: what one worker does (load the network, align, score);
- ``service.keys``: what each stage's artifact key covers;
- ``service.artifacts``: the results folder (lock, manifest, checked and atomic writes, no
  links).
"""

from __future__ import annotations

import time

from service.artifacts import ArtifactError, ResultsFolder, prepare_results
from service.executors import make_executor
from service.keys import report_key
from service.spec import JobSpec, require_address
from service.stages import (
    JobContext,
    Log,
    alignment_stage,
    iia_stage,
    network_stage,
    scoring_stage,
    site_labels,
    solve_stage,
    timed,
)
from service.task import build_task, design_of, worker_spec

__all__ = [
    "ArtifactError",
    "JobContext",
    "build_task",
    "design_of",
    "network_stage",
    "prepare_results",
    "run",
]


class OnDemand:
    """An executor started only when a stage has work for it: a re-run whose artifacts all
    check out starts no worker (and no Ray)."""

    def __init__(self, start) -> None:
        self.start, self.executor = start, None

    def _get(self):
        if self.executor is None:
            self.executor = self.start()
        return self.executor

    def align(self, jobs):
        return self._get().align(jobs) if jobs else iter(())

    def score(self, jobs, design, rotations):
        return self._get().score(jobs, design, rotations) if jobs else iter(())

    def close(self) -> None:
        if self.executor is not None:
            self.executor.close()


def run(
    spec: JobSpec, *, address: str | None = None, resume: bool = False, log: Log = print
) -> dict:
    """The whole job; returns the report (also written under the results folder).

    Finished stages are reused; a stage an interrupted run left half done (some IIA shards)
    is finished only with ``resume``, so that a stale partial run is never mixed in silently.
    The job's folder is locked for the job's life: a second job on it stops at once."""
    started = time.perf_counter()
    address = require_address(spec, address)  # a cluster job without one stops before any work
    root = prepare_results(spec)
    store = ResultsFolder(root, log)
    store.lock()
    try:
        return _run(JobContext(spec, root, log, resume, store=store), address, started)
    finally:
        store.flush()
        store.unlock()


def _run(ctx: JobContext, address: str | None, started: float) -> dict:
    from intervention.engine import Site
    from service.report import build_report, write_report

    spec, log = ctx.spec, ctx.log
    task, models = build_task(spec)
    net = network_stage(ctx, task)
    design = design_of(spec, task.n_inputs)
    executor = OnDemand(
        lambda: make_executor(worker_spec(spec), net.where, net.identity, log, address)
    )
    try:
        with timed(ctx, "align_seconds"):
            aligned = alignment_stage(ctx, task, models, net, executor)
        with timed(ctx, "score_seconds"):
            successes, success_keys = scoring_stage(ctx, design, aligned, executor)
    finally:
        executor.close()
    names = [col.name for col in aligned.columns]
    data, iia_path, iia = iia_stage(ctx, names, design, successes, success_keys)
    log(f"IIA written to {iia_path}")
    labels = site_labels(spec.sites)
    by_site = {
        label: [col.name for col in aligned.columns if col.site_index == k]
        for k, label in enumerate(labels)
    }
    solved = solve_stage(ctx, data, log, by_site)
    sites = [
        Site(s.layer, None if s.positions is None else tuple(s.positions)).describe()
        + f", rank {s.rank}"
        for s in spec.sites
    ]
    columns = [
        {
            "name": col.name,
            "site": col.site_index,
            "site_label": labels[col.site_index],
            "candidate": models[col.model_index].name,
            "alignment": aligned.keys[col.pair],
            "successes": key,
        }
        for col, key in zip(aligned.columns, success_keys)
    ]
    digest = report_key(iia, spec.solve.model_dump(mode="json"), spec.network.accuracy_floor)
    report = build_report(
        digest,
        net.accuracy,
        aligned.table,
        solved.combined,
        solved.singles,
        task,
        sites,
        columns=columns,
        data=data,
        site_frontiers=solved.sites,
    )
    report["network_correct"] = net.correct  # of report["n_inputs"], at the network's head
    report["network_head"] = net.inputs.head
    report["edge"] = spec.solve.edge  # what a pair counted in the solve
    report["timings"] = {**ctx.timings, "seconds": round(time.perf_counter() - started, 1)}
    paths = write_report(report, solved.combined, solved.singles, task, ctx.store, solved.sites)
    log(f"report: {paths[0]}")
    return report
