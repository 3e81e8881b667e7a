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
from typing import NamedTuple

from service.artifacts import ArtifactError, ResultsFolder, prepare_results
from service.confidence import add_baselines, interval_report, rotation_sha256
from service.executors import make_executor
from service.keys import report_key
from service.planting import planted_regions, recovery
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


class Explained(NamedTuple):
    aligned: object  # service.stages.Alignments, after any refits
    successes: list
    success_keys: list[str]
    data: object  # the solver's data
    iia_path: object
    iia_key: str
    rounds: list[dict]  # the refit rounds ([] without refits)


def _explain(ctx: JobContext, task, models, net, design, address, planted) -> Explained:
    """Alignments, successes and the solver's data for ``net``: DAS per column, every pair
    of the design scored, then (``das.refit_rounds``) partition and refits alternated."""
    from service.refit import refit_rounds

    spec = ctx.spec
    executor = OnDemand(
        lambda: make_executor(worker_spec(spec), net.where, net.identity, ctx.log, address)
    )
    try:
        with timed(ctx, "align_seconds"):
            aligned = alignment_stage(ctx, task, models, net, executor)
        with timed(ctx, "score_seconds"):
            successes, success_keys = scoring_stage(ctx, design, aligned, executor)
        if spec.refit_rounds() > 0:
            with timed(ctx, "refit_seconds"):
                aligned, successes, success_keys, data, path, key, rounds = refit_rounds(
                    ctx,
                    task,
                    models,
                    net,
                    design,
                    aligned,
                    successes,
                    success_keys,
                    executor,
                    planted,
                )
            return Explained(aligned, successes, success_keys, data, path, key, rounds)
    finally:
        executor.close()
    names = [col.name for col in aligned.columns]
    data, path, key = iia_stage(ctx, names, design, successes, success_keys)
    return Explained(aligned, successes, success_keys, data, path, key, [])


class Control(NamedTuple):
    frontier: object  # solver.Frontier of the combination on the control network
    summary: dict  # what the report says of it


def _control(ctx, control: str, task, models, net, design, address, planted) -> Control:
    """The job's alignments, scoring, refits and frontier on a control network: the same
    architecture with random weights. Its artifacts are keyed on its own weights."""
    from service.confidence import solve_data
    from service.stages import control_network, settled_frontier, solver_options
    from solver import Solver

    ctx.log(f"control {control}: the same job on the same architecture with random weights")
    timings = dict(ctx.timings)
    cnet = control_network(ctx, task, net)
    found = _explain(ctx, task, models, cnet, design, address, planted)
    ctx.timings.clear()
    ctx.timings.update(timings)  # the main job's timings stay the report's
    s = ctx.spec.solve
    data = solve_data(found.data, s.semantics, ctx.spec.pairs.design, s.edge, s.confidence)
    frontier, moves = settled_frontier(
        Solver(time_limit=s.time_limit, **solver_options(ctx.spec, data)).frontier(data, s.floors),
        data,
        ctx.spec,
    )
    add_baselines(found.aligned.table, task, models, design)
    points = []
    for point, moved in zip(frontier.results, moves):
        entry = {**point.to_dict(), "settled": moved}
        if planted is not None:
            entry["recovery"] = recovery(point.assignment, list(point.models), *planted)
        points.append(entry)
    summary = {
        "network_accuracy": cnet.accuracy,
        "network_weights": cnet.weights,
        "alignment_iia": found.aligned.table,
        "frontier": points,
    }
    if found.rounds:
        summary["rounds"] = found.rounds
    return Control(frontier, summary)


def _run(ctx: JobContext, address: str | None, started: float) -> dict:
    from intervention.engine import Site
    from service.report import build_report, write_report

    spec, log = ctx.spec, ctx.log
    task, models = build_task(spec)
    planted = None
    if spec.network.plant is not None:  # known regions: refused here if they overlap
        planted = (planted_regions(spec, task), list(spec.network.plant.regions))
    net = network_stage(ctx, task, models)
    design = design_of(spec, task.n_inputs)
    found = _explain(ctx, task, models, net, design, address, planted)
    aligned, success_keys = found.aligned, found.success_keys
    # What an intervention that changes nothing would score, beside each alignment's IIA.
    add_baselines(aligned.table, task, models, design)
    data, iia_path, iia = found.data, found.iia_path, found.iia_key
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
            # the stored rotation file's SHA-256: exactly which alignment scored this column
            "rotation_sha256": rotation_sha256(ctx.store, aligned.keys[col.pair]),
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
    report["intervals"] = interval_report(
        report["frontier"],
        solved.combined,
        data,
        spec.solve.edge,
        spec.solve.confidence,
        design.partners,
    )
    if found.rounds:
        report["rounds"] = found.rounds  # the alternation of partition and refits
    for entry, moved in zip(report["frontier"], solved.settled):
        entry["settled"] = moved  # inputs moved to a cell they fit better (service.stages)
    if planted is not None:
        report["plant"] = {"regions": dict(spec.network.plant.regions), **(net.plant or {})}
        for entry, point in zip(report["frontier"], solved.combined.results):
            entry["recovery"] = recovery(point.assignment, list(point.models), *planted)
    controls = {}
    for control in spec.controls:  # the same job on a network that cannot hold the answer
        controls[control] = _control(ctx, control, task, models, net, design, address, planted)
    if controls:
        report["controls"] = {name: c.summary for name, c in controls.items()}
    report["timings"] = {**ctx.timings, "seconds": round(time.perf_counter() - started, 1)}
    paths = write_report(
        report,
        solved.combined,
        solved.singles,
        task,
        ctx.store,
        solved.sites,
        controls={name: c.frontier for name, c in controls.items()},
    )
    log(f"report: {paths[0]}")
    return report
