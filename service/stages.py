"""The stages of a job, each storing its artifact in the results folder under a key of what it
reads (``service.keys``): network → alignments → successes → IIA → partitions.

A stage reuses an artifact only when the manifest vouches for it; one that fails its check is
recomputed, with a log line naming it. Workers compute; the stages write."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

from service.artifacts import ResultsFolder
from service.keys import (
    alignment_key,
    counterfactual_content,
    iia_key,
    model_content,
    network_identity,
    network_key,
    successes_key,
)
from service.progress import Progress
from service.spec import JobSpec, SpecError
from service.task import design_content
from service.worker import AlignJob, ShardJob

Log = Callable[[str], None]


@dataclass
class JobContext:
    """One job's spec, folder and log; ``store`` guards every read and write under ``root``."""

    spec: JobSpec
    root: Path
    log: Log = print
    resume: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    store: ResultsFolder | None = None

    def __post_init__(self) -> None:
        if self.store is None:
            self.store = ResultsFolder(self.root, self.log)


class NetworkStage(NamedTuple):
    model: object
    tokenizer: object
    ids: object  # token ids [n, length] of the task's prompts
    accuracy: float  # measured on the task now, never read from a file
    weights: str  # digest of the network's config and weights
    identity: str  # digest of the weights and the token ids: what later stages key on
    where: str | Path  # the network's folder (or hub name), for the workers


def network_stage(ctx: JobContext, task) -> NetworkStage:
    """Train (or load) the network once; refuse one below the accuracy floor. A reused
    network is checked file by file against the manifest, and its accuracy is measured again
    (cheap: one forward pass over the task), so the floor is never checked against a file."""
    import torch

    from intervention.network import (
        TrainSettings,
        accuracy,
        load_network,
        network_digest,
        require_accuracy,
        save_network,
        train_network,
    )
    from intervention.tokenizer import build_tokenizer, encode_fixed_length

    spec, store = ctx.spec, ctx.store
    prompts = task.prompts()
    labels = torch.as_tensor(task.labels())
    if spec.network.path is not None:
        model, tokenizer = load_network(spec.network.path)
        ids = encode_fixed_length(tokenizer, prompts)
        if model.config.num_labels != len(task.classes):
            raise SpecError(
                f"network {spec.network.path} has {model.config.num_labels} classes, the task "
                f"{len(task.classes)}"
            )
        where: str | Path = spec.network.path
    else:
        rel = f"network-{network_key(task, spec.network.train.model_dump(mode='json'))}"
        if store.reusable(rel, folder=True):
            model, tokenizer = load_network(store.path(rel))
            ids = encode_fixed_length(tokenizer, prompts)
            ctx.log(f"network: reused {store.path(rel)}")
        else:
            tokenizer = build_tokenizer(prompts)
            ids = encode_fixed_length(tokenizer, prompts)
            settings = TrainSettings(**spec.network.train.model_dump())
            ctx.log(f"network: training {settings.n_layer} layers × {settings.n_embd} wide")
            trained = train_network(
                ids, labels, len(task.classes), len(tokenizer), tokenizer.pad_token_id, settings
            )
            model = trained.model
            store.write_dir(rel, lambda tmp: save_network(model, tokenizer, tmp))
            store.flush()
            ctx.log(f"network: trained in {trained.epochs_run} epochs, {trained.seconds:.0f} s")
        where = store.path(rel)
    acc = accuracy(model, ids, labels)
    ctx.log(f"network: accuracy {acc:.4f} on the task")
    require_accuracy(acc, spec.network.accuracy_floor)
    weights = network_digest(model)
    return NetworkStage(model, tokenizer, ids, acc, weights, network_identity(weights, ids), where)


def _row(alignment, site_index: int) -> dict:
    return {
        "candidate": alignment.candidate,
        "site": site_index,
        "train_iia": alignment.train_iia,
        "held_out_iia": alignment.held_out_iia,
    }


@dataclass(frozen=True)
class Alignments:
    table: list[dict]  # one row per (site, candidate): its train and held-out IIA
    keys: list[str]  # the first site's alignment key per candidate
    rotations: list  # the first site's rotation per candidate


def alignment_stage(ctx: JobContext, task, models, net: NetworkStage, executor) -> Alignments:
    """One DAS alignment per candidate and site: reused when its files check out, else trained
    by the executor's workers and stored here."""
    from intervention.das import META_FILE, ROTATION_FILE, Alignment
    from intervention.digest import digest

    spec, store = ctx.spec, ctx.store
    das = spec.das.model_dump(mode="json")
    found: dict[tuple[int, int], Alignment] = {}
    rels: dict[tuple[int, int], str] = {}
    todo: list[AlignJob] = []
    for k, site in enumerate(spec.sites):
        for i, model in enumerate(models):
            rel = "alignment-" + alignment_key(
                net.identity, task, model, site.model_dump(mode="json"), das
            )
            what = digest(counterfactual_content(task), model_content(model))
            rels[k, i] = rel
            if store.reusable(rel, folder=True):
                files = {n: store.read_bytes(f"{rel}/{n}") for n in (ROTATION_FILE, META_FILE)}
                found[k, i] = Alignment.from_files(files, what, net.weights)
            else:
                todo.append(AlignJob(k, i, what))
    ctx.log(f"alignments: {len(found)} reused, {len(todo)} to train")
    if todo:
        bar = Progress(len(todo), "DAS alignments", ctx.log, every=1)
        for job, alignment in executor.align(todo):
            rel = rels[job.site_index, job.model_index]
            for name, data in alignment.to_files().items():
                store.write_bytes(f"{rel}/{name}", data)
            found[job.site_index, job.model_index] = alignment
            bar.step(f"{alignment.candidate} held-out IIA {alignment.held_out_iia:.3f}")
        bar.close()
        store.flush()
    order = sorted(found)
    return Alignments(
        [_row(found[k, i], k) for k, i in order],
        [rels[0, i].removeprefix("alignment-") for i in range(len(models))],
        [found[0, i].rotation for i in range(len(models))],
    )


def scoring_stage(ctx: JobContext, models, design, aligned: Alignments, executor):
    """Successes of every candidate on every pair of the design, in shards named by their pair
    range. Returns the successes per candidate and the keys of their folders."""
    spec, store = ctx.spec, ctx.store
    size = spec.execution.shard_size
    dirs, jobs = [], []
    for i in range(len(models)):
        k = successes_key(aligned.keys[i], aligned.rotations[i], design_content(design), size)
        dirs.append(f"successes-{k}")
        for start in range(0, len(design), size):
            jobs.append(ShardJob(i, start, min(start + size, len(design))))

    def rel(job: ShardJob) -> str:
        return f"{dirs[job.model_index]}/{job.name}"

    done, interrupted, changed = [], [], {}
    for job in jobs:
        why = store.problem(rel(job))
        if why is None:
            done.append(job)
        elif why == "absent" or why.startswith("not in the manifest"):
            interrupted.append(job)
        else:
            changed[job] = why
    if done and interrupted and not ctx.resume:
        raise SpecError(
            f"{store.root} holds {len(done)} of {len(jobs)} IIA shards from an interrupted run "
            f"(e.g. {store.path(rel(interrupted[0]))} is missing): pass --resume to finish it, "
            "or delete those successes-* folders to start over"
        )
    for job, why in changed.items():  # differs from the manifest: never used, recomputed
        ctx.log(f"artifacts: {store.path(rel(job))} is {why}; recomputing it")
    for job in [*interrupted, *changed]:
        store.remove(rel(job))
    missing = [*interrupted, *changed]
    ctx.log(f"IIA: {len(jobs)} shards, {len(done)} already done")
    ctx.timings["shards_total"] = len(jobs)
    ctx.timings["shards_computed"] = len(missing)
    if missing:
        for i in range(len(models)):
            store.directory(dirs[i])
        bar = Progress(len(missing), "IIA shards", ctx.log)
        for job, successes in executor.score(missing, design, aligned.rotations):
            store.save_array(rel(job), np.asarray(successes, dtype=bool))
            bar.step()
        bar.close()
        store.flush()
    out = [
        np.concatenate(
            [store.load_array(rel(j), j.stop - j.start, bool) for j in jobs if j.model_index == i]
        )
        for i in range(len(models))
    ]
    return out, [d.removeprefix("successes-") for d in dirs]


def iia_stage(ctx: JobContext, models, design, successes, success_keys):
    """The solver's data from the successes: the pairwise tensor (all pairs) or the per-input
    matrix (sampled partners). The fallback is not among its models."""
    from intervention.iia import pairwise_from_successes, per_input_from_successes

    names = [m.name for m in models]
    k = iia_key(success_keys, names, design_content(design))
    if design.partners is None:
        data = pairwise_from_successes(design, successes, names, None)
    else:
        data = per_input_from_successes(design, successes, names, None)
    path = ctx.store.write_with(f"iia-{k}.npz", data.save)
    ctx.store.flush()
    return data, path, k


def solve_stage(ctx: JobContext, data, log: Log):
    from solver import Solver

    s = ctx.spec.solve
    if s.semantics == "pairwise" and ctx.spec.pairs.design != "all":
        raise SpecError("solve.semantics = 'pairwise' needs pairs.design = 'all'")
    kwargs = dict(
        semantics=s.semantics,
        scope=s.scope,
        method=s.method,
        solver=s.solver,
        max_models=s.max_models,
        seed=s.seed,
        budget=s.budget,
    )
    bar = Progress(len(set(s.floors)), "frontier", log, every=1)
    combined = Solver(time_limit=s.time_limit, **kwargs).frontier(
        data,
        s.floors,
        progress=lambda p: bar.step(
            f"floor {p.floor} strength {p.strength} ({p.certificate.status})"
        ),
    )
    bar.close()
    singles = {}
    single_limit = max(1.0, s.time_limit / max(1, len(combined.models)))
    for name in combined.models:
        singles[name] = Solver(time_limit=single_limit, **kwargs).frontier(
            data, s.floors, candidates=[name]
        )
    return combined, singles


@contextmanager
def timed(ctx: JobContext, name: str) -> Iterator[None]:
    """Record the seconds a stage takes in ``ctx.timings[name]``."""
    mark = time.perf_counter()
    try:
        yield
    finally:
        ctx.timings[name] = round(time.perf_counter() - mark, 2)
