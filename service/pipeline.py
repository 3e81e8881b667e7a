"""One job: task → network → alignments → successes → IIA → partitions → report.

Every stage writes its artifact under the job's results folder, keyed by a digest of the spec
parts it depends on, so a re-run reuses what exists and a resumed run redoes only what is
missing (success shards included). The scoring of shards goes through an executor: in-process
here, Ray actors in ``service.ray_exec``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from service.spec import JobSpec, SpecError

Log = Callable[[str], None]


class Progress:
    """A progress bar on a terminal; in job logs (no terminal) a line every tenth of the way."""

    def __init__(self, total: int, what: str, log: Log, every: int | None = None) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=total, desc=what, disable=None, leave=False, dynamic_ncols=True)
        self.total, self.what, self.log, self.done = total, what, log, 0
        self.every = every or max(1, total // 10)

    def step(self, detail: str = "") -> None:
        self.done += 1
        self.bar.update(1)
        if detail:
            self.bar.set_postfix_str(detail, refresh=False)
        if self.bar.disable and (self.done % self.every == 0 or self.done == self.total):
            self.log(f"{self.what}: {self.done}/{self.total} {detail}".rstrip())

    def close(self) -> None:
        self.bar.close()


@dataclass
class ShardJob:
    """Everything a worker needs to score one shard: plain data, so it crosses processes."""

    candidate_index: int
    shard_index: int
    pairs: np.ndarray  # indices into the design
    out_path: str


@dataclass
class JobContext:
    spec: JobSpec
    root: Path
    log: Log = print
    resume: bool = False
    timings: dict[str, float] = field(default_factory=dict)

    def stage_dir(self, stage: str, *parts: str) -> Path:
        path = self.root / f"{stage}-{self.spec.digest(*parts)}"
        path.mkdir(parents=True, exist_ok=True)
        return path


def _atomic_save(path: Path, array: np.ndarray) -> None:
    # A shard appears whole or not at all: a driver killed mid-write leaves no half shard.
    tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def prepare_results(spec: JobSpec) -> Path:
    root = spec.results_dir().resolve()
    base = Path(spec.results).resolve()
    if base not in root.parents:
        raise SpecError(f"results for {spec.name!r} would be written outside {base}")
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise SpecError(
            f"results folder {root} is not writable ({exc.strerror}); choose another with "
            'results = "..." in the spec'
        ) from None
    return root


# -- stages ----------------------------------------------------------------------------------


def build_task(spec: JobSpec):
    """The task, and the models to align: the chosen candidates, then the fallback."""
    from intervention.tasks import BUILT_IN, custom_task

    if spec.task.builtin is not None:
        task = BUILT_IN[spec.task.builtin]()
        names = [m.name for m in task.candidates]
        chosen = names if spec.candidates is None else list(spec.candidates)
        unknown = [c for c in chosen if c not in names]
        if unknown:
            raise SpecError(
                f"candidates {unknown} are not candidates of the {task.name} task; it has {names}"
            )
        fallback = spec.fallback or task.fallback.name
        if fallback != task.fallback.name:
            raise SpecError(
                f"fallback {fallback!r} is not the {task.name} task's fallback "
                f"{task.fallback.name!r}"
            )
        models = [m for m in task.candidates if m.name in chosen]
    else:
        c = spec.task.custom
        cands = {name: {"P": cs.P, "O": cs.O} for name, cs in spec.candidates.items()}
        try:
            task = custom_task(
                spec.name,
                c.inputs,
                c.template,
                c.output,
                cands,
                fallback=spec.fallback or "output",
                classes=c.classes,
            )
        except ValueError as exc:
            raise SpecError(f"task.custom / candidates: {exc}") from None
        models = list(task.candidates)
    return task, models + [task.fallback]


def network_stage(ctx: JobContext, task):
    """Train (or load) the network once; refuse one below the accuracy floor."""
    import torch

    from intervention.network import (
        TrainSettings,
        accuracy,
        load_network,
        require_accuracy,
        save_network,
        train_network,
    )
    from intervention.tokenizer import build_tokenizer, encode_fixed_length

    spec = ctx.spec
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
        acc = accuracy(model, ids, labels)
        where = Path(spec.network.path)
    else:
        where = ctx.stage_dir("network", "task", "network")
        meta = where / "accuracy.json"
        if meta.exists():
            model, tokenizer = load_network(where)
            ids = encode_fixed_length(tokenizer, prompts)
            acc = json.loads(meta.read_text())["accuracy"]
            ctx.log(f"network: reused {where} (accuracy {acc:.4f})")
        else:
            tokenizer = build_tokenizer(prompts)
            ids = encode_fixed_length(tokenizer, prompts)
            settings = TrainSettings(**spec.network.train.model_dump())
            ctx.log(f"network: training {settings.n_layer} layers × {settings.n_embd} wide")
            trained = train_network(
                ids, labels, len(task.classes), len(tokenizer), tokenizer.pad_token_id, settings
            )
            model, acc = trained.model, trained.accuracy
            save_network(model, tokenizer, where)
            meta.write_text(json.dumps({"accuracy": acc, "seconds": trained.seconds}) + "\n")
            ctx.log(f"network: accuracy {acc:.4f} after {trained.epochs_run} epochs")
    require_accuracy(acc, spec.network.accuracy_floor)
    return model, tokenizer, ids, acc, where


ALIGN_KEYS = ("task", "network", "candidates", "fallback", "sites", "das")
SCORE_KEYS = (*ALIGN_KEYS, "pairs")


@dataclass
class AlignJob:
    site_index: int
    model_index: int
    out_dir: str


def _engine(spec: JobSpec, model, ids, site_index: int):
    from intervention.engine import InterchangeEngine, Site

    s = spec.sites[site_index]
    site = Site(s.layer, None if s.positions is None else tuple(s.positions))
    return InterchangeEngine(model, ids, site, batch_size=2048)


class Worker:
    """Loads the network once and holds the engine of one site; trains alignments and scores
    shards. The in-process executor holds one; the Ray executor wraps it in an actor."""

    def __init__(self, spec_json: str, network_dir: str, threads: int = 1) -> None:
        import torch

        from intervention.network import load_network
        from intervention.tokenizer import encode_fixed_length

        torch.set_num_threads(threads)
        self.spec = JobSpec.model_validate_json(spec_json)
        self.task, self.models = build_task(self.spec)
        self.model, tokenizer = load_network(network_dir)
        if torch.cuda.is_available():  # a GPU actor (num_gpus > 0) sees only its own device
            self.model.to("cuda")
        self.ids = encode_fixed_length(tokenizer, self.task.prompts())
        self.engines: dict[int, object] = {}
        self.rotations: dict[str, object] = {}

    def pid(self) -> int:
        """The process this worker runs in (tests kill one mid-run)."""
        return os.getpid()

    def engine(self, site_index: int):
        if site_index not in self.engines:
            self.engines[site_index] = _engine(self.spec, self.model, self.ids, site_index)
        return self.engines[site_index]

    def align(self, job: AlignJob) -> dict:
        from intervention.das import Alignment, DASSettings, network_digest, train_alignment

        out = Path(job.out_dir)
        task_digest = self.spec.digest("task")
        if (out / "alignment.json").exists():
            a = Alignment.load(out, task_digest, network_digest(self.model))
        else:
            model = self.models[job.model_index]
            das = self.spec.das
            settings = DASSettings(
                rank=self.spec.sites[job.site_index].rank,
                steps=das.steps,
                batch_size=das.batch_size,
                lr=das.lr,
                seed=das.seed,
                held_out=das.held_out,
            )
            a = train_alignment(
                self.engine(job.site_index),
                lambda b, s: self.task.counterfactual_labels(model, b, s),
                model.name,
                task_digest,
                settings,
            )
            a.save(out)
        return {
            "candidate": a.candidate,
            "site": job.site_index,
            "train_iia": a.train_iia,
            "held_out_iia": a.held_out_iia,
        }

    def score(self, job: ShardJob, design, alignment_dir: str) -> str:
        import torch
        from safetensors.torch import load_file

        from intervention.iia import score_shard

        out = Path(job.out_path)
        if out.exists():  # idempotent: a retried or resumed shard is already there
            return str(out)
        rotation = self.rotations.get(alignment_dir)
        if rotation is None:
            rotation = load_file(str(Path(alignment_dir) / "rotation.safetensors"))["rotation"]
            self.rotations[alignment_dir] = rotation
        model = self.models[job.candidate_index]
        with torch.no_grad():
            s = score_shard(self.engine(0), self.task, model, rotation, design, job.pairs)
        _atomic_save(out, s)
        return str(out)


def alignment_line(row: dict) -> str:
    return f"{row['candidate']} held-out IIA {row['held_out_iia']:.3f}"


class InProcessExecutor:
    """Runs alignment and scoring jobs one after another in this process."""

    def __init__(self, spec: JobSpec, network_dir: Path, log: Log) -> None:
        threads = spec.execution.threads_per_worker
        self.worker = Worker(spec.model_dump_json(), str(network_dir), threads)
        self.log = log

    def align(self, jobs: list[AlignJob]) -> list[dict]:
        out = []
        bar = Progress(len(jobs), "DAS alignments", self.log, every=1)
        for job in jobs:
            out.append(self.worker.align(job))
            bar.step(alignment_line(out[-1]))
        bar.close()
        return out

    def score(self, jobs: list[ShardJob], design, alignment_dirs: list[str]) -> None:
        bar = Progress(len(jobs), "IIA shards", self.log)
        for job in jobs:
            self.worker.score(job, design, alignment_dirs[job.candidate_index])
            bar.step()
        bar.close()

    def close(self) -> None:
        pass


def design_of(spec: JobSpec, n: int):
    from intervention.iia import PairDesign

    if spec.pairs.design == "all":
        return PairDesign.all_pairs(n)
    if spec.pairs.partners > n - 1:
        raise SpecError(f"pairs.partners = {spec.pairs.partners} but the task has {n} inputs")
    return PairDesign.sampled(n, spec.pairs.partners, spec.pairs.seed)


def alignment_stage(ctx: JobContext, models, executor) -> tuple[list[dict], list[str]]:
    root = ctx.stage_dir("alignments", *ALIGN_KEYS)
    jobs = [
        AlignJob(k, i, str(root / f"site{k}" / f"model{i:02d}"))
        for k in range(len(ctx.spec.sites))
        for i in range(len(models))
    ]
    table = executor.align(jobs)
    primary = [j.out_dir for j in jobs if j.site_index == 0]
    return table, primary


def scoring_stage(ctx: JobContext, models, design, alignment_dirs, executor) -> list[np.ndarray]:
    root = ctx.stage_dir("successes", *SCORE_KEYS)
    jobs = []
    for i in range(len(models)):
        (root / f"model{i:02d}").mkdir(exist_ok=True)
        for k, shard in enumerate(design.shards(ctx.spec.execution.shard_size)):
            jobs.append(ShardJob(i, k, shard, str(root / f"model{i:02d}" / f"shard{k:05d}.npy")))
    missing = [j for j in jobs if not Path(j.out_path).exists()]
    if 0 < len(missing) < len(jobs) and not ctx.resume:
        raise SpecError(
            f"{root} holds {len(jobs) - len(missing)} of {len(jobs)} IIA shards from an "
            "interrupted run: pass --resume to finish it, or delete that folder to start over"
        )
    ctx.log(f"IIA: {len(jobs)} shards, {len(jobs) - len(missing)} already done")
    ctx.timings["shards_total"] = len(jobs)
    ctx.timings["shards_computed"] = len(missing)
    if missing:
        executor.score(missing, design, alignment_dirs)
    return [
        np.concatenate([np.load(j.out_path) for j in jobs if j.candidate_index == i])
        for i in range(len(models))
    ]


def iia_stage(ctx: JobContext, task, models, design, successes):
    from intervention.iia import pairwise_from_successes, per_input_from_successes

    names = [m.name for m in models]
    fallback = task.fallback.name
    path = ctx.root / f"iia-{ctx.spec.digest(*SCORE_KEYS)}.npz"
    if design.partners is None:
        data = pairwise_from_successes(design, successes, names, fallback)
    else:
        data = per_input_from_successes(design, successes, names, fallback)
    data.save(path)
    return data, path


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


def make_executor(spec: JobSpec, network_dir: Path, log: Log, address: str | None):
    if spec.execution.mode == "in-process" and address is None:
        return InProcessExecutor(spec, network_dir, log)
    from service.ray_exec import RayExecutor

    return RayExecutor(spec, network_dir, log, address=address or spec.execution.address)


def run(
    spec: JobSpec, *, address: str | None = None, resume: bool = False, log: Log = print
) -> dict:
    """The whole job; returns the report (also written under the results folder).

    Finished stages are reused; a stage an interrupted run left half done (some IIA shards)
    is finished only with ``resume``, so that a stale partial run is never mixed in silently."""
    from service.report import build_report, write_report

    started = time.perf_counter()
    root = prepare_results(spec)
    ctx = JobContext(spec, root, log, resume=resume)
    task, models = build_task(spec)
    model, tokenizer, ids, acc, network_dir = network_stage(ctx, task)
    design = design_of(spec, task.n_inputs)
    executor = make_executor(spec, network_dir, log, address)
    try:
        mark = time.perf_counter()
        table, alignment_dirs = alignment_stage(ctx, models, executor)
        ctx.timings["align_seconds"] = round(time.perf_counter() - mark, 2)
        mark = time.perf_counter()
        successes = scoring_stage(ctx, models, design, alignment_dirs, executor)
        ctx.timings["score_seconds"] = round(time.perf_counter() - mark, 2)
    finally:
        executor.close()
    data, iia_path = iia_stage(ctx, task, models, design, successes)
    log(f"IIA written to {iia_path}")
    combined, singles = solve_stage(ctx, data, log)
    from intervention.engine import Site

    sites = [
        Site(s.layer, None if s.positions is None else tuple(s.positions)).describe()
        + f", rank {s.rank}"
        for s in spec.sites
    ]
    report = build_report(
        spec.digest(*SCORE_KEYS, "solve"), acc, table, combined, singles, task, sites
    )
    report["timings"] = {**ctx.timings, "seconds": round(time.perf_counter() - started, 1)}
    paths = write_report(report, combined, singles, task, root)
    log(f"report: {paths[0]}")
    return report
