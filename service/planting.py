"""Known truths beside a job: a network trained here with a planted combination
(``network.plant``), how much of the plant a partition recovers, and the random-init control
network that the same job runs on."""

from __future__ import annotations

import json

import numpy as np

from service.spec import JobSpec, SpecError

PLANT_FILE = "plant.json"  # the plant's training report, inside the network's folder


def planted_regions(spec: JobSpec, task) -> np.ndarray | None:
    """Each input's planted region (the index of its candidate in ``network.plant.regions``,
    -1 where it is in none); None without a plant. Overlapping regions and regions with no
    input are refused here, before any training."""
    from intervention.plant import PlantError, region_of_inputs

    plant = spec.network.plant
    if plant is None:
        return None
    try:
        return region_of_inputs(task.values, plant.regions, f"the fallback {task.fallback.name}")
    except PlantError as exc:
        raise SpecError(str(exc)) from None


def plant_settings(spec: JobSpec):
    from intervention.plant import PlantSettings

    p = spec.network.plant
    return PlantSettings(
        regions=dict(p.regions),
        layer=p.layer,
        positions=tuple(p.positions),
        dims=p.dims,
        steps=p.steps,
        pairs_per_region=p.pairs_per_region,
        task_batch=p.task_batch,
        lr=p.lr,
        weight=p.weight,
        held_out=p.held_out,
        target=p.target,
        seed=spec.network.train.seed,
        threads=spec.network.train.threads,
    )


def train_planted(spec: JobSpec, task, models, data, settings, log):
    """A network of ``settings`` (``TrainSettings``) trained on ``data`` with the spec's plant;
    returns (model, the plant report as a dict)."""
    from intervention.network import build_network
    from intervention.plant import PlantError, plant
    from intervention.prompts import resolve_positions

    region = planted_regions(spec, task)
    by_name = {m.name: m for m in models}
    missing = [c for c in spec.network.plant.regions if c not in by_name]
    if missing:
        raise SpecError(
            f"network.plant.regions plant {missing}, which are not among the job's candidates "
            f"{list(by_name)}; add them to candidates or fix the names"
        )
    ps = plant_settings(spec)
    try:
        spans = (
            task.value_spans()
            if any(isinstance(p, str) and p != "last" for p in ps.positions)
            else None
        )
        rows = resolve_positions(data.encoded, list(ps.positions), spans, task.prompts())
    except ValueError as exc:
        raise SpecError(f"network.plant.positions: {exc}") from None
    tok = data.tokenizer
    model = build_network(settings, len(tok), data.encoded.length, data.n_classes, tok.pad_token_id)
    cf = [lambda b, s, m=by_name[c]: task.counterfactual_labels(m, b, s) for c in ps.regions]
    try:
        report = plant(model, data.encoded, rows, task.labels(), region, cf, ps, log)
    except PlantError as exc:
        raise SpecError(str(exc)) from None
    return model, report.to_dict()


def require_plant(report: dict, iit_floor: float) -> None:
    """Refuse to align a plant that did not take: a region whose held-out IIT accuracy is
    below ``iit_floor`` holds no truth to recover."""
    weak = [r for r in report["regions"] if r["iit_accuracy"] < iit_floor]
    if weak:
        shown = ", ".join(
            f"{r['candidate']} (on {r['region']}): IIT {r['iit_accuracy']:.3f}, task "
            f"{r['task_accuracy']:.3f}"
            for r in weak
        )
        raise SpecError(
            f"the plant did not take after {report['steps']} steps: {shown}, below "
            f"network.plant.iit_floor = {iit_floor}; no alignment was trained. Raise "
            "network.plant.steps or dims, or lower network.plant.lr"
        )


def plant_json(report: dict) -> bytes:
    return (json.dumps(report, indent=1) + "\n").encode()


def random_init(model):
    """The same architecture as ``model`` with fresh random weights (seeded by the config's
    own initialisation under seed 0): the control a job runs beside the network."""
    import torch

    torch.manual_seed(0)
    control = type(model)(model.config)
    return control.to(next(model.parameters()).dtype).eval()


def recovery(assignment: np.ndarray, models, region: np.ndarray, planted: list[str]) -> dict:
    """How much of a planted combination a partition recovers.

    ``assignment``: each input's column index (into ``models``), -1 for the fallback;
    ``region``: each input's planted region (index into ``planted``), -1 for none. A column
    ``"name @ site"`` counts for its candidate ``name``. ``recovered``: the share of all inputs
    assigned as planted (an input in no region is recovered when the fallback takes it); per
    planted candidate, the cell's precision (of the inputs assigned to it, the share planted
    there) and recall (of the inputs planted there, the share assigned to it)."""
    candidate_of = [name.split(" @ ")[0] for name in models]
    got = np.array(
        [
            planted.index(candidate_of[m]) if m >= 0 and candidate_of[m] in planted else -2
            for m in assignment.tolist()
        ]
    )
    got[np.asarray(assignment) < 0] = -1
    cells = {}
    for r, name in enumerate(planted):
        assigned, truth = got == r, region == r
        both = int((assigned & truth).sum())
        cells[name] = {
            "planted": int(truth.sum()),
            "assigned": int(assigned.sum()),
            "correct": both,
            "precision": round(both / int(assigned.sum()), 4) if assigned.any() else None,
            "recall": round(both / int(truth.sum()), 4) if truth.any() else None,
        }
    return {"recovered": round(float((got == region).mean()), 4), "cells": cells}
