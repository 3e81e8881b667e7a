"""What a report needs beside the IIA itself to be read fairly: how sure each per-input IIA is
(Wilson intervals, ``solver.intervals``), what an intervention that changes nothing would
score (the no-intervention baseline), and exactly which rotation produced the successes.

``solve.confidence`` makes the solve use each entry's Wilson lower bound instead of its
estimate, so that a floor is met by what the sample supports, not by a lucky draw."""

from __future__ import annotations

import hashlib

import numpy as np

from service.spec import SpecError
from solver import PerInputIIA, SparsePairwiseIIA
from solver.intervals import (
    OUTCOMES_PER_PAIR,
    at_lower_bound,
    lower_bounds,
    outcomes,
    wilson_interval,
)

# The confidence the report's intervals are given at when the solve sets none.
DEFAULT_CONFIDENCE = 0.95
# Pairs whose counterfactual labels are computed at once for the baselines: bounds the memory of
# a large design (the label lookup holds Python objects per pair).
BASELINE_CHUNK = 1 << 20


def confidence_problem(semantics: str, design: str, confidence: float | None) -> str | None:
    """Why ``solve.confidence`` cannot apply to this job, or None when it can (or is unset)."""
    if confidence is None:
        return None
    if semantics == "pairwise":
        return (
            f"solve.confidence = {confidence} bounds per-input IIA estimated from sampled "
            "partners, but solve.semantics = 'pairwise' reads every pair's own weight, which is "
            "measured, not estimated: remove solve.confidence, or use solve.semantics = "
            "'per-input' with pairs.design = 'sampled'"
        )
    if design == "all":
        return (
            f"solve.confidence = {confidence} bounds per-input IIA estimated from sampled "
            "partners, but pairs.design = 'all' measures every pair, so each input's IIA is "
            "exact over the task's pairs and has no interval: remove solve.confidence, or set "
            "pairs.design = 'sampled' (with pairs.partners = k)"
        )
    return None


def solve_data(data, semantics: str, design: str, edge: str, confidence: float | None):
    """The data the solver reads: ``data`` itself, or with ``confidence`` each entry's Wilson
    lower bound (per-input data from sampled partners, built with ``edge``)."""
    problem = confidence_problem(semantics, design, confidence)
    if problem:
        raise SpecError(problem)
    if confidence is None:
        return data
    if not isinstance(data, PerInputIIA) or data.counts is None:
        raise SpecError(
            "solve.confidence needs per-input IIA with its pair counts (sampled partners); "
            "this job's data has none: remove solve.confidence"
        )
    return at_lower_bound(data, edge, confidence)


def _percent(confidence: float) -> str:
    return f"{confidence * 100:g}%"


def interval_report(
    frontier: list[dict],
    combined,
    data,
    edge: str,
    confidence: float | None,
    partners: int | None,
) -> dict:
    """The report's ``intervals`` block; also adds ``lower_bounds`` to each entry of
    ``frontier`` (the report's entries, in ``combined.results`` order): per cell with members,
    the min and mean Wilson lower bound of its inputs' IIA on the cell's column.

    ``partners`` is the design's (None: all pairs, where the IIA is exact and no interval is
    given). ``confidence`` is the solve's (None: the report's intervals use 0.95)."""
    if partners is None:
        return {
            "confidence": None,
            "exact": True,
            "note": "Every pair was measured (pairs.design = 'all'): each input's IIA is exact "
            f"over the task's pairs, with its {data.n_inputs - 1} partners (no sampling, so no "
            "interval).",
        }
    level = DEFAULT_CONFIDENCE if confidence is None else confidence
    if isinstance(data, SparsePairwiseIIA):
        return _cell_intervals(frontier, combined, data, edge, level, partners)
    low = lower_bounds(data, edge, level)
    _, trials = outcomes(data, edge)
    typical = int(np.median(trials))
    pairs = typical // OUTCOMES_PER_PAIR[edge]
    one, _ = wilson_interval(typical, typical, level)
    for entry, result in zip(frontier, combined.results):
        cells = {}
        for m, name in enumerate(result.models):
            members = np.flatnonzero(result.assignment == m)
            if len(members):
                bounds = low[members, data.models.index(name)]
                cells[name] = {
                    "min": round(float(bounds.min()), 4),
                    "mean": round(float(bounds.mean()), 4),
                }
        entry["lower_bounds"] = cells
    how = (
        f"{typical} outcomes: both directions of each pair, counted as separate draws"
        if edge == "mean"
        else f"{typical} outcomes: one per pair, both directions succeeding"
    )
    note = (
        f"With {partners} partners drawn per input, an input's IIA is measured on a median of "
        f"{pairs} pairs ({how}); an IIA of 1.0 there has the {_percent(level)} Wilson interval "
        f"[{float(one):.3f}, 1]. "
    )
    note += (
        f"The solve met each floor on the lower bounds (solve.confidence = {level:g})."
        if confidence is not None
        else "The solve used the estimates; set solve.confidence to solve on the lower bounds."
    )
    return {
        "confidence": level,
        "outcomes_per_input": typical,
        "solved_on": "lower bound" if confidence is not None else "estimate",
        "note": note,
    }


def _cell_intervals(frontier, combined, data, edge: str, level: float, partners: int) -> dict:
    """``interval_report`` for pairwise semantics over sampled partners: a cell's IIA is a mean
    over the scored pairs inside it, so each cell gets the Wilson lower bound of that mean,
    its outcomes being the pairs' directions (edge mean: two per pair) or the pairs (edge
    both), under ``cell_lower_bounds`` (a model's cells by number with several per model)."""
    from solver.sparse_verify import cell_pair_sums_sparse

    read = data.both_edges() if edge == "both" else data
    per_pair = OUTCOMES_PER_PAIR[edge]
    for entry, result in zip(frontier, combined.results):
        cells = {}
        cell = result.cell if result.cell is not None else np.where(result.assignment >= 0, 0, -1)
        for m, name in enumerate(result.models):
            numbers = np.unique(cell[result.assignment == m])
            for c in numbers:
                # The cell alone, as model 0 of a one-model tensor holding its column.
                held = np.where((result.assignment == m) & (cell == c), 0, -1)
                column = read.weights[[read.models.index(name)]]
                total, count = cell_pair_sums_sparse(read.pairs, column, held)[0]
                trials = per_pair * count
                low, _ = wilson_interval(round(total * per_pair), trials, level)
                label = name if len(numbers) == 1 and result.cell is None else f"{name}#{c}"
                cells[label] = {
                    "iia": round(total / count, 4) if count else None,
                    "lower": round(float(low), 4),
                    "pairs": int(count),
                }
        entry["cell_lower_bounds"] = cells
    note = (
        f"With {partners} partners drawn per input, each cell's IIA is the mean over the scored "
        f"pairs inside it; its {_percent(level)} Wilson lower bound counts "
        + (
            "both directions of each pair as separate draws. "
            if edge == "mean"
            else "one outcome per pair, both directions succeeding. "
        )
        + "The solve used the estimates."
    )
    return {"confidence": level, "solved_on": "estimate", "per_cell": True, "note": note}


def no_intervention_baselines(task, models, design) -> dict[str, float]:
    """Per candidate, the share of the design's (base, source) pairs whose counterfactual
    label equals the base input's own label: the IIA of an intervention that changes nothing
    (a network that is right on the base). An IIA near it says the alignment moved little."""
    labels = task.labels()
    total = len(design)
    out = {}
    for model in models:
        same = 0
        for start in range(0, total, BASELINE_CHUNK):
            base = design.base[start : start + BASELINE_CHUNK]
            source = design.source[start : start + BASELINE_CHUNK]
            cf = task.counterfactual_labels(model, base, source)
            same += int(np.count_nonzero(cf == labels[base]))
        out[model.name] = round(same / total, 6) if total else 0.0
    return out


def add_baselines(table: list[dict], task, models, design) -> None:
    """Each alignment row gains its candidate's no-intervention ``baseline`` (the same at
    every site: it depends on the labels alone)."""
    baselines = no_intervention_baselines(task, models, design)
    for row in table:
        row["baseline"] = baselines.get(row["candidate"])


def rotation_sha256(store, alignment: str) -> str:
    """The SHA-256 of the rotation file of the alignment keyed ``alignment``, as stored (and
    checked against the manifest): ``sha256sum alignment-KEY/rotation.safetensors`` gives it."""
    from intervention.das import ROTATION_FILE

    return hashlib.sha256(store.read_bytes(f"alignment-{alignment}/{ROTATION_FILE}")).hexdigest()
