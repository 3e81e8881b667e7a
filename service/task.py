"""The task of a job spec: the built-in, custom or data task, the candidates to align, the
pairs."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from service.spec import JobSpec, SpecError

if TYPE_CHECKING:  # the neural side is imported only when a task is built
    from intervention.causal_model import CausalModel
    from intervention.tasks import Task


def build_task(spec: JobSpec) -> tuple[Task, list[CausalModel]]:
    """The task, and the candidates to align and score, in the spec's order.

    The fallback is neither aligned nor scored: it takes the inputs no candidate explains, its
    IIA never enters a solve (``solver`` sets it aside), and the report names it only."""
    from intervention.data_tasks import data_task
    from intervention.tasks import BUILT_IN, custom_task

    if spec.task.builtin is not None:
        task = BUILT_IN[spec.task.builtin]()
        if spec.task.answer is not None:
            task = dataclasses.replace(task, answer=spec.task.answer)
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
        return task, [m for m in task.candidates if m.name in chosen]
    cands = {name: {"P": cs.P, "O": cs.O} for name, cs in spec.candidates.items()}
    if spec.task.data is not None:
        d = spec.task.data
        try:
            task = data_task(
                spec.name,
                d.path,
                d.output,
                cands,
                template=d.template,
                answer=d.answer,
                classes=d.classes,
                fallback=spec.fallback or "output",
            )
        except ValueError as exc:
            raise SpecError(f"task.data / candidates: {exc}") from None
        return task, list(task.candidates)
    c = spec.task.custom
    try:
        task = custom_task(
            spec.name,
            c.inputs,
            c.template,
            c.output,
            cands,
            fallback=spec.fallback or "output",
            classes=c.classes,
            answer=c.answer,
        )
    except ValueError as exc:
        raise SpecError(f"task.custom / candidates: {exc}") from None
    return task, list(task.candidates)


def design_of(spec: JobSpec, n: int):
    """The pair design of the spec over a task of ``n`` inputs."""
    from intervention.iia import PairDesign

    if spec.pairs.design == "all":
        return PairDesign.all_pairs(n)
    if spec.pairs.partners > n - 1:
        raise SpecError(f"pairs.partners = {spec.pairs.partners} but the task has {n} inputs")
    return PairDesign.sampled(n, spec.pairs.partners, spec.pairs.seed)


def design_content(design) -> dict:
    """A design as its key reads it: which pairs, in which order."""
    return {"n": design.n_inputs, "partners": design.partners, "seed": design.seed}


def with_data_path(spec: JobSpec, path: str) -> JobSpec:
    """The spec with its data task's file at ``path`` (the file is not read again)."""
    data = spec.task.data.model_copy(update={"path": path})
    return spec.model_copy(update={"task": spec.task.model_copy(update={"data": data})})


def worker_spec(spec: JobSpec) -> JobSpec:
    """The spec as workers read it: a data task's relative path made absolute, since a Ray
    worker does not start in the driver's working directory (on another node the file must
    then be on shared storage, as the results folder is)."""
    if spec.task.data is None:
        return spec
    from pathlib import Path

    return with_data_path(spec, str(Path(spec.task.data.path).expanduser().resolve()))
