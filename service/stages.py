"""The stages of a job, each storing its artifact in the results folder under a key of what it
reads (``service.keys``): network → alignments → successes → IIA → partitions.

A stage reuses an artifact only when the manifest vouches for it; one that fails its check is
recomputed, with a log line naming it. Workers compute; the stages write."""

from __future__ import annotations

import json
import time
from collections import Counter
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
from service.planting import (
    PLANT_FILE,
    plant_json,
    planted_regions,
    require_plant,
    train_planted,
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
    ids: object  # token ids [n, length] of the task's prompts (padded where lengths differ)
    accuracy: float  # measured on the task now, never read from a file
    weights: str  # digest of the network's config and weights
    identity: str  # digest of the weights and the encoded prompts: what later stages key on
    where: str | Path  # the network's folder (or hub name), for the workers
    inputs: object = None  # intervention.network.TaskInputs: prompts encoded, answer tokens
    correct: int = 0  # how many inputs the network gets right
    plant: dict | None = None  # a planted network's training report (service.planting)


def network_stage(ctx: JobContext, task, models=()) -> NetworkStage:
    """Train (or load) the network once; refuse one below the accuracy floor, or one whose
    sites, prompts or answers do not fit (before any alignment). A reused network is checked
    file by file against the manifest, and its accuracy is measured again (cheap: one forward
    pass over the task), so the floor is never checked against a file."""
    import torch

    from intervention.network import (
        TrainSettings,
        load_network,
        network_digest,
        require_accuracy,
        save_network,
        task_accuracy,
        task_inputs,
        train_on,
        training_data,
    )

    spec, store = ctx.spec, ctx.store
    labels = torch.as_tensor(task.labels())
    plant = None
    if spec.network.path is not None:
        model, tokenizer = load_network(spec.network.path, spec.network.head, spec.network.dtype)
        where: str | Path = spec.network.path
    else:
        train = spec.network.train.model_dump(mode="json")
        if spec.network.plant is not None:  # a planted network is another network
            train["plant"] = spec.network.plant.model_dump(mode="json")
        rel = f"network-{network_key(task, train)}"
        if store.reusable(rel, folder=True):
            model, tokenizer = load_network(store.path(rel))
            if spec.network.plant is not None:
                plant = json.loads(store.read_bytes(f"{rel}/{PLANT_FILE}"))
            ctx.log(f"network: reused {store.path(rel)}")
        else:
            # Everything is checked before training: the tokenizer, the answers (one token per
            # class), the sites' positions on the prompts as this tokenizer reads them.
            settings = TrainSettings(**spec.network.train.model_dump())
            try:
                data = training_data(task, settings)
            except ValueError as exc:
                raise SpecError(f"network.train: {exc}") from None
            _sites_resolve(spec, data, task)
            tokenizer = data.tokenizer
            ctx.log(
                f"network: training {settings.n_layer} layers × {settings.n_embd} wide"
                + ("" if settings.head == "classifier" else f", a {settings.family} causal LM")
                + (f" on {data.level}-level tokens" if data.encoded.padded else "")
            )
            if spec.network.plant is not None:
                planted_regions(spec, task)  # overlapping or empty regions stop before training
                model, plant = train_planted(spec, task, models, data, settings, ctx.log)

                def write(tmp):
                    save_network(model, tokenizer, tmp)
                    (tmp / PLANT_FILE).write_bytes(plant_json(plant))

                store.write_dir(rel, write)
                ctx.log(f"network: planted in {plant['steps']} steps, {plant['seconds']:.0f} s")
            else:
                trained = train_on(data, settings)
                model = trained.model
                store.write_dir(rel, lambda tmp: save_network(model, tokenizer, tmp))
                ctx.log(f"network: trained in {trained.epochs_run} epochs, {trained.seconds:.0f} s")
            store.flush()
        where = store.path(rel)
    try:
        inputs = task_inputs(model, tokenizer, task)
        check_sites(spec, model, inputs, task)
    except ValueError as exc:
        raise SpecError(f"network {where}: {exc}") from None
    acc, correct = task_accuracy(model, inputs, labels)
    ctx.log(f"network: {correct} of {task.n_inputs} inputs right (accuracy {acc:.4f})")
    if plant is not None and acc < spec.network.accuracy_floor:
        raise SpecError(
            f"the planted network solves {acc:.4f} of the task, below network.accuracy_floor = "
            f"{spec.network.accuracy_floor}; no alignment was trained. Raise network.plant.steps "
            "or lower network.plant.weight (its network is kept in the results folder)"
        )
    require_accuracy(acc, spec.network.accuracy_floor)
    if plant is not None:
        require_plant(plant, spec.network.plant.iit_floor)
    weights = network_digest(model)
    identity = network_identity(weights, inputs.identity_tensor())
    return NetworkStage(
        model, tokenizer, inputs.encoded.ids, acc, weights, identity, where, inputs, correct, plant
    )


def control_network(ctx: JobContext, task, net: NetworkStage) -> NetworkStage:
    """The random-init control: ``net``'s architecture with random weights, stored beside it
    (keyed on the network it controls), measured on the task but held to no accuracy floor."""
    from intervention.digest import digest
    from intervention.network import (
        load_network,
        network_digest,
        save_network,
        task_accuracy,
        task_inputs,
    )
    from service.planting import random_init

    spec, store = ctx.spec, ctx.store
    rel = f"network-random-init-{digest('random-init', net.weights)}"
    if store.reusable(rel, folder=True):
        model, tokenizer = load_network(store.path(rel), spec.network.head, spec.network.dtype)
    else:
        model, tokenizer = random_init(net.model), net.tokenizer
        store.write_dir(rel, lambda tmp: save_network(model, tokenizer, tmp))
        store.flush()
    import torch

    inputs = task_inputs(model, tokenizer, task)
    acc, correct = task_accuracy(model, inputs, torch.as_tensor(task.labels()))
    ctx.log(f"control network: {correct} of {task.n_inputs} inputs right (accuracy {acc:.4f})")
    weights = network_digest(model)
    identity = network_identity(weights, inputs.identity_tensor())
    return NetworkStage(
        model,
        tokenizer,
        inputs.encoded.ids,
        acc,
        weights,
        identity,
        store.path(rel),
        inputs,
        correct,
    )


def _site_rows(site, encoded, task):
    """A site's token positions on every input ([n, P]); only the variables this site names
    are located in the prompts (another one may be ambiguous there)."""
    from intervention.prompts import resolve_positions

    spans = task.value_spans(site.variables()) if site.variables() else None
    return resolve_positions(encoded, site.positions, spans, task.prompts())


def _sites_resolve(spec: JobSpec, data, task) -> None:
    """Every site's positions resolve on every prompt as the network to be trained reads them
    (``data``: ``intervention.network.TrainingData``), so a bad site stops before training."""
    for k, site in enumerate(spec.sites):
        try:
            _site_rows(site, data.encoded, task)
        except ValueError as exc:
            raise SpecError(f"sites.{k}.positions: {exc}") from None


def check_sites(spec: JobSpec, model, inputs, task) -> None:
    """Every site of the spec exists in this network and resolves on every input (layer in
    range, positions present, named variables found), before any alignment is trained."""
    from intervention.adapters import decoder_blocks

    n_layer = len(decoder_blocks(model, spec.network.layers))
    for k, site in enumerate(spec.sites):
        if not -1 <= site.layer < n_layer:
            raise SpecError(
                f"sites.{k}.layer = {site.layer}, but the network has {n_layer} blocks: choose "
                f"-1 (embeddings) to {n_layer - 1}"
            )
        rows = _site_rows(site, inputs.encoded, task)
        dim = rows.shape[1] * int(model.config.hidden_size)
        if site.rank > dim:
            raise SpecError(
                f"sites.{k}.rank = {site.rank} exceeds the site's dimension {dim} "
                f"({rows.shape[1]} positions x width {model.config.hidden_size}); choose 1..{dim}"
            )


def site_labels(sites) -> list[str]:
    """A short, unique label per site of the spec, for column names and per-site tables:
    ``embeddings`` (layer -1) or ``block L``; sites that share a label add their positions
    (``[pos 0,1]`` or ``[all pos]``), then their rank, then their index, until no two agree,
    since a column's name is all the solver and the report know it by."""
    labels = ["embeddings" if s.layer == -1 else f"block {s.layer}" for s in sites]
    for rule in ("positions", "rank", "index"):
        counts = Counter(labels)
        if all(n == 1 for n in counts.values()):
            break
        labels = [
            label + _site_suffix(rule, k, site) if counts[label] > 1 else label
            for k, (label, site) in enumerate(zip(labels, sites))
        ]
    return labels


def _site_suffix(rule: str, k: int, site) -> str:
    if rule == "positions":
        return (
            " [all pos]"
            if site.positions is None
            else f" [pos {','.join(map(str, site.positions))}]"
        )
    if rule == "rank":
        return f" rank {site.rank}"
    return f" #{k}"  # identical sites: only their order tells them apart


@dataclass(frozen=True)
class Column:
    """One column of the solver's data: a candidate aligned and scored at one site."""

    site_index: int
    model_index: int
    name: str  # the candidate's name alone when the spec has one site; else "name @ site"

    @property
    def pair(self) -> tuple[int, int]:
        return self.site_index, self.model_index


def columns_of(sites, models) -> list[Column]:
    """The solver's columns: every (site, candidate) pair, site by site, candidates in the
    spec's order. With one site a column keeps the candidate's name, so that one-site jobs
    (and their artifacts, keyed on the names) read exactly as before sites were columns."""
    if len(sites) == 1:
        return [Column(0, i, m.name) for i, m in enumerate(models)]
    labels = site_labels(sites)
    return [
        Column(k, i, f"{m.name} @ {labels[k]}")
        for k in range(len(sites))
        for i, m in enumerate(models)
    ]


def _row(alignment, site_index: int) -> dict:
    return {
        "candidate": alignment.candidate,
        "site": site_index,
        "train_iia": alignment.train_iia,
        "held_out_iia": alignment.held_out_iia,
        "rank": int(alignment.rotation.shape[1]),  # the dimensions the intervention swaps
    }


@dataclass(frozen=True)
class Alignments:
    # one row per (site, candidate): its train and held-out IIA and its rotation's rank (the
    # pipeline adds the no-intervention baseline, which needs the pair design)
    table: list[dict]
    columns: list[Column]  # the solver's columns, in order
    keys: dict[tuple[int, int], str]  # the alignment key per (site, candidate)
    rotations: dict[tuple[int, int], object]  # the rotation per (site, candidate)


def alignment_settings(spec: JobSpec) -> dict:
    """The DAS settings an alignment's key covers: the spec's [das] as written, with the trim
    it uses where that is not plain DAS (a planted network's default), and without the refit
    settings (which a first alignment does not read)."""
    das = spec.das.model_dump(mode="json")
    for name in ("trim", "refit_rounds", "refit_floor"):
        das.pop(name, None)
    if spec.das_trim() != 1.0:
        das["trim"] = spec.das_trim()
    return das


def alignment_stage(ctx: JobContext, task, models, net: NetworkStage, executor) -> Alignments:
    """One DAS alignment per candidate and site: reused when its files check out, else trained
    by the executor's workers and stored here. Each is keyed on its own site, so a site added
    to a finished job trains only that site's alignments."""
    from intervention.das import META_FILE, ROTATION_FILE, Alignment
    from intervention.digest import digest

    spec, store = ctx.spec, ctx.store
    das = alignment_settings(spec)
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
        columns_of(spec.sites, models),
        {pair: rel.removeprefix("alignment-") for pair, rel in rels.items()},
        {pair: alignment.rotation for pair, alignment in found.items()},
    )


def scoring_stage(ctx: JobContext, design, aligned: Alignments, executor):
    """Successes of every column (candidate at a site) on every pair of the design, in shards
    named by their pair range, one folder per column keyed on that column's own alignment: a
    site added to a finished job scores only its own columns. Returns the successes per
    column and the keys of their folders."""
    spec, store = ctx.spec, ctx.store
    size = spec.execution.shard_size
    dirs: dict[tuple[int, int], str] = {}
    jobs: list[ShardJob] = []
    for col in aligned.columns:
        k = successes_key(
            aligned.keys[col.pair], aligned.rotations[col.pair], design_content(design), size
        )
        dirs[col.pair] = f"successes-{k}"
        for start in range(0, len(design), size):
            stop = min(start + size, len(design))
            jobs.append(ShardJob(col.site_index, col.model_index, start, stop))

    def rel(job: ShardJob) -> str:
        return f"{dirs[job.site_index, job.model_index]}/{job.name}"

    state: dict[ShardJob, str | None] = {job: store.problem(rel(job)) for job in jobs}

    def absent(why: str | None) -> bool:
        return why is not None and (why == "absent" or why.startswith("not in the manifest"))

    # An interrupted run leaves a column half scored. A column with no shard at all is new
    # work (a site or candidate added to a finished job), not a stale partial run to refuse.
    done, interrupted, changed, fresh = [], [], {}, []
    for pair in dirs:
        mine = [job for job in jobs if (job.site_index, job.model_index) == pair]
        if all(absent(state[job]) for job in mine):
            fresh.extend(mine)
            continue
        for job in mine:
            why = state[job]
            if why is None:
                done.append(job)
            elif absent(why):
                interrupted.append(job)
            else:
                changed[job] = why
    if interrupted and not ctx.resume:
        raise SpecError(
            f"{store.root} holds {len(done)} of {len(jobs)} IIA shards from an interrupted run "
            f"(e.g. {store.path(rel(interrupted[0]))} is missing): pass --resume to finish it, "
            "or delete those successes-* folders to start over"
        )
    for job, why in changed.items():  # differs from the manifest: never used, recomputed
        ctx.log(f"artifacts: {store.path(rel(job))} is {why}; recomputing it")
    missing = [*fresh, *interrupted, *changed]
    for job in missing:  # a stray file no manifest vouches for is never kept
        store.remove(rel(job))
    ctx.log(f"IIA: {len(jobs)} shards, {len(done)} already done")
    ctx.timings["shards_total"] = len(jobs)
    ctx.timings["shards_computed"] = len(missing)
    if missing:
        for folder in dirs.values():
            store.directory(folder)
        bar = Progress(len(missing), "IIA shards", ctx.log)
        for job, successes in executor.score(missing, design, aligned.rotations):
            store.save_array(rel(job), np.asarray(successes, dtype=bool))
            bar.step()
        bar.close()
        store.flush()
    out = [
        np.concatenate(
            [
                store.load_array(rel(j), j.stop - j.start, bool)
                for j in jobs
                if (j.site_index, j.model_index) == col.pair
            ]
        )
        for col in aligned.columns
    ]
    return out, [dirs[col.pair].removeprefix("successes-") for col in aligned.columns]


def iia_stage(ctx: JobContext, names: list[str], design, successes, success_keys):
    """The solver's data from the successes, one column per name (a candidate at a site): the
    pairwise tensor (all pairs), the sparse pair tensor (sampled partners, pairwise semantics)
    or the per-input matrix (sampled partners). The fallback is not among its models."""
    from intervention.iia import (
        pairwise_from_successes,
        per_input_from_successes,
        sparse_from_successes,
    )

    edge = ctx.spec.solve.edge
    if design.partners is not None and ctx.spec.solve.semantics == "pairwise":
        # Only the scored pairs, in the paper's mean; the solver reads it with either edge.
        k = iia_key(success_keys, names, {**design_content(design), "tensor": "sparse"})
        data = sparse_from_successes(design, successes, names, None)
    elif design.partners is None:
        # The pairwise tensor in the paper's mean; the solver reads it with either edge.
        k = iia_key(success_keys, names, design_content(design))
        data = pairwise_from_successes(design, successes, names, None)
    else:
        # Sampled partners: the per-input means are built with the edge, from the successes
        # (a per-input matrix cannot be re-read with another edge afterwards).
        k = iia_key(success_keys, names, design_content(design), edge)
        data = per_input_from_successes(design, successes, names, None, edge)
    path = ctx.store.write_with(f"iia-{k}.npz", data.save)
    ctx.store.flush()
    return data, path, k


class Solved(NamedTuple):
    combined: object  # the frontier over every column
    singles: dict  # column name -> the frontier of that column alone
    sites: dict  # site label -> the frontier over that site's columns only
    settled: list[int] = []  # per point of the combined frontier: inputs moved (settled)


def settled(partition, data, spec: JobSpec):
    """``partition`` with each input in the cell it fits best among partitions of the same
    strength (``solver.settle``: pairwise semantics, per-model floors; otherwise unchanged),
    and the number of inputs moved. The solver is indifferent between such partitions; a
    reader is not, since an input in a cell it fits worse than another is a wrong
    explanation. Strength and the certificate stay as they were; cell IIAs are recomputed."""
    from dataclasses import replace

    from solver import PairwiseIIA
    from solver.edges import apply_edge
    from solver.settle import settle
    from solver.verify import cell_iia_pairwise

    if (
        not isinstance(data, PairwiseIIA)
        or spec.solve.scope != "per-model"
        or len(partition.models) < 2
        or partition.strength == 0
    ):
        return partition, 0
    weights = apply_edge(data, spec.solve.edge).weights
    w = weights[[data.models.index(name) for name in partition.models]]
    if partition.cell is not None:
        return _settled_cells(partition, w, spec.solve.cells_per_model)
    assignment, moves = settle(w, partition.assignment, partition.floor)
    if moves == 0:
        return partition, 0
    cells = {m: total / pairs for m, (total, pairs) in cell_iia_pairwise(w, assignment).items()}
    low = {partition.models[m]: v for m, v in cells.items() if v < partition.floor - 1e-9}
    if low or (assignment >= 0).sum() != partition.strength:  # settle keeps both by design
        raise RuntimeError(f"settling broke the partition at floor {partition.floor}: {low}")
    return (
        replace(
            partition,
            assignment=assignment,
            cell_iia={partition.models[m]: v for m, v in cells.items()},
        ),
        moves,
    )


def _settled_cells(partition, w, cells_per_model: int):
    """``settled`` for several cells per model: settle over the models' copies (each cell is
    a copy's), then map back; every cell is checked against the floor again."""
    from dataclasses import replace

    from solver.cells import cell_tables, check_cells, expand, from_copies, to_copies
    from solver.settle import settle

    k = cells_per_model
    copies, moves = settle(
        expand(w, k), to_copies(partition.assignment, partition.cell, k), partition.floor
    )
    if moves == 0:
        return partition, 0
    assignment, cell = from_copies(copies, k)
    weakest, cells_iia = cell_tables(
        check_cells(w, assignment, cell, partition.floor, k), partition.models
    )
    return replace(
        partition, assignment=assignment, cell=cell, cell_iia=weakest, cells_iia=cells_iia
    ), moves


def settled_frontier(frontier, data, spec: JobSpec):
    """Every point of ``frontier`` settled; returns (frontier, moves per point)."""
    from dataclasses import replace

    points = [settled(p, data, spec) for p in frontier.results]
    return replace(frontier, results=tuple(p for p, _ in points)), [m for _, m in points]


def solver_options(spec: JobSpec, data) -> dict:
    """The solver's settings from the spec's [solve], for ``data``."""
    from solver import PairwiseIIA, SparsePairwiseIIA

    s = spec.solve
    return dict(
        semantics=s.semantics,
        scope=s.scope,
        method=s.method,
        solver=s.solver,
        max_models=s.max_models,
        seed=s.seed,
        budget=s.budget,
        cells_per_model=s.cells_per_model,
        # The pairwise tensor holds the mean and is read with the edge here; per-input data
        # from sampled partners was built with it already (iia_stage).
        edge=s.edge if isinstance(data, PairwiseIIA | SparsePairwiseIIA) else "mean",
    )


def solve_stage(
    ctx: JobContext, data, log: Log, sites: dict[str, list[str]] | None = None
) -> Solved:
    """The frontier over every column, each column's alone, and each site's own (``sites``:
    site label -> its columns' names). A combination may explain different inputs at
    different sites; a site's frontier says how far that site alone goes."""
    from service.confidence import solve_data
    from solver import Solver

    s = ctx.spec.solve
    # solve.confidence: the solver reads each entry's Wilson lower bound (``service.confidence``).
    data = solve_data(data, s.semantics, ctx.spec.pairs.design, s.edge, s.confidence)
    kwargs = solver_options(ctx.spec, data)
    # floors "auto": the solver chooses them; the singles and sites then use the combined
    # frontier's, so that every table and curve shares its floors.
    bar = Progress(None if s.floors == "auto" else len(set(s.floors)), "frontier", log, every=1)
    combined = Solver(time_limit=s.time_limit, **kwargs).frontier(
        data,
        s.floors,
        progress=lambda p: bar.step(
            f"floor {p.floor} strength {p.strength} ({p.certificate.status})"
        ),
    )
    bar.close()
    floors = combined.floors
    singles = {}
    single_limit = max(1.0, s.time_limit / max(1, len(combined.models)))
    for name in combined.models:
        singles[name] = Solver(time_limit=single_limit, **kwargs).frontier(
            data, floors, candidates=[name]
        )
    by_site = {}
    if sites and len(sites) == 1:  # one site: its columns are all the columns, already solved
        by_site = {label: combined for label in sites}
    elif sites:
        # The sites share one time limit between them, as the singles do, so that adding
        # sites does not multiply the job's solving time.
        site_limit = max(1.0, s.time_limit / len(sites))
        for label, names in sites.items():
            by_site[label] = Solver(time_limit=site_limit, **kwargs).frontier(
                data, floors, candidates=names
            )
            log(
                f"frontier at {label}: " + " ".join(str(r.strength) for r in by_site[label].results)
            )
    combined, moves = settled_frontier(combined, data, ctx.spec)
    return Solved(combined, singles, by_site, moves)


@contextmanager
def timed(ctx: JobContext, name: str) -> Iterator[None]:
    """Record the seconds a stage takes in ``ctx.timings[name]``."""
    mark = time.perf_counter()
    try:
        yield
    finally:
        ctx.timings[name] = round(time.perf_counter() - mark, 2)
