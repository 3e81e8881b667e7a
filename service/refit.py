"""Alignments and partition found together: solve, refit each candidate's rotation on the
pairs inside its cell, rescore, re-solve, until the partition is stable.

Why: DAS fitted once on pairs from every input (the paper's procedure) averages over pairs
that no rotation can satisfy when a network implements a candidate on a region only; the
rotation is pulled away from the region's (PLANT-NOTES: within-region IIA 0.3-0.5 instead of
0.998). A trimmed first fit gets most of the way; a refit inside the cell finishes it.

A refit can fit its cell's noise: each cell's held-out inputs (never trained on by the refit)
decide. The refit rotation is kept only where the mean pairwise IIA among the cell's held-out
inputs does not drop; otherwise the column keeps its rotation and successes."""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from service.planting import recovery
from service.stages import (
    Alignments,
    JobContext,
    _row,
    iia_stage,
    scoring_stage,
    settled,
    solver_options,
)
from service.worker import AlignJob

# A cell smaller than this (or than MIN_REFIT_SHARE of the inputs) is not refit: too few pairs
# to train on, and on a control network the cells that chance pairs form are this small.
MIN_REFIT_CELL = 16
MIN_REFIT_SHARE = 0.02


def _cell_iia(w: np.ndarray, members: np.ndarray) -> float:
    """Mean pairwise weight among ``members`` (distinct pairs); nan below 2 members."""
    if len(members) < 2:
        return float("nan")
    sub = w[np.ix_(members, members)]
    return float((sub.sum() - np.trace(sub)) / (len(members) * (len(members) - 1)))


def refit_rounds(
    ctx: JobContext,
    task,
    models,
    net,
    design,
    aligned: Alignments,
    successes: list[np.ndarray],
    success_keys: list[str],
    executor,
    planted: tuple[np.ndarray, list[str]] | None = None,
):
    """Alternate partition and refits for ``spec.refit_rounds()`` rounds at most. Returns the
    final (aligned, successes, success_keys, data) and one report entry per round: the
    partition at the refit floor, each cell's IIA, the refits (held-out IIA before and after,
    kept or not) and, for a planted network, the recovery."""
    from intervention.das import META_FILE, ROTATION_FILE, Alignment, split_inputs
    from intervention.digest import digest
    from intervention.iia import pairwise_from_successes
    from service.keys import counterfactual_content, model_content
    from solver import Solver

    spec, store, log = ctx.spec, ctx.store, ctx.log
    names = [col.name for col in aligned.columns]
    floor = spec.das.refit_floor
    data = pairwise_from_successes(design, successes, names, None)
    rounds: list[dict] = []
    previous = None
    started = time.perf_counter()
    table = list(aligned.table)
    for r in range(spec.refit_rounds() + 1):
        part, moves = settled(
            Solver(time_limit=spec.solve.time_limit, **solver_options(spec, data)).solve(
                data, floor
            ),
            data,
            spec,
        )
        entry = {
            "round": r,
            "floor": floor,
            "strength": part.strength,
            "cells": part.cell_sizes,
            "cell_iia": {k: round(v, 4) for k, v in part.cell_iia.items()},
            "certificate": part.certificate.status,
            "settled": moves,
            "assignment": part.labels(),  # the round's partition: a column (or None) per input
        }
        if previous is not None:
            entry["changed"] = int((part.assignment != previous).sum())
        if planted is not None:
            entry["recovery"] = recovery(part.assignment, names, *planted)
        rounds.append(entry)
        if planted is not None:
            log(
                f"round {r}: cells {part.cell_sizes}, recovered "
                f"{entry['recovery']['recovered']:.3f}"
            )
        else:
            log(f"round {r}: cells {part.cell_sizes}")
        if r == spec.refit_rounds() or (
            previous is not None and np.array_equal(part.assignment, previous)
        ):
            entry["seconds"] = round(time.perf_counter() - started, 1)
            break
        previous = part.assignment
        jobs, rels, cells = [], {}, {}
        found: dict[tuple[int, int], Alignment] = {}
        for c, col in enumerate(aligned.columns):
            members = np.flatnonzero(part.assignment == c)
            if len(members) < max(MIN_REFIT_CELL, MIN_REFIT_SHARE * len(part.assignment)):
                continue
            rotation = aligned.rotations[col.pair]
            model = models[col.model_index]
            rel = "alignment-refit-" + digest(aligned.keys[col.pair], members, rotation)
            what = digest(counterfactual_content(task), model_content(model))
            rels[col.pair], cells[col.pair] = rel, members
            if store.reusable(rel, folder=True):
                files = {n: store.read_bytes(f"{rel}/{n}") for n in (ROTATION_FILE, META_FILE)}
                found[col.pair] = Alignment.from_files(files, what, net.weights)
            else:
                jobs.append(
                    AlignJob(
                        col.site_index,
                        col.model_index,
                        what,
                        cell=tuple(members.tolist()),
                        init=rotation,
                    )
                )
        for job, alignment in executor.align(jobs):
            pair = job.site_index, job.model_index
            for name, blob in alignment.to_files().items():
                store.write_bytes(f"{rels[pair]}/{name}", blob)
            found[pair] = alignment
        store.flush()
        if not found:
            entry["seconds"] = round(time.perf_counter() - started, 1)
            break
        trial = replace(
            aligned,
            keys={**aligned.keys, **{p: rel.removeprefix("alignment-") for p, rel in rels.items()}},
            rotations={**aligned.rotations, **{p: a.rotation for p, a in found.items()}},
        )
        new_successes, new_keys = scoring_stage(ctx, design, trial, executor)
        new_data = pairwise_from_successes(design, new_successes, names, None)
        refits = {}
        kept_keys, kept_rotations = dict(aligned.keys), dict(aligned.rotations)
        for c, col in enumerate(aligned.columns):
            if col.pair not in found:
                continue
            members = cells[col.pair]
            held = members[split_inputs(len(members), spec.das.held_out, spec.das.seed)[1]]
            before = _cell_iia(data.weights[c], held)
            after = _cell_iia(new_data.weights[c], held)
            keep = not after < before  # nan (too few held-out inputs) keeps the refit
            refits[col.name] = {
                "cell": len(members),
                "held_out_inputs": len(held),
                "held_out_iia_before": round(before, 4),
                "held_out_iia_after": round(after, 4),
                "kept": keep,
            }
            if keep:
                successes[c], success_keys[c] = new_successes[c], new_keys[c]
                kept_keys[col.pair] = trial.keys[col.pair]
                kept_rotations[col.pair] = trial.rotations[col.pair]
                table = [
                    {**_row(found[col.pair], col.site_index), "refit_round": r + 1}
                    if (row["site"], row["candidate"])
                    == (col.site_index, found[col.pair].candidate)
                    else row
                    for row in table
                ]
        entry["refits"] = refits
        entry["seconds"] = round(time.perf_counter() - started, 1)
        aligned = replace(aligned, keys=kept_keys, rotations=kept_rotations, table=table)
        data = pairwise_from_successes(design, successes, names, None)
    final, path, key = iia_stage(ctx, names, design, successes, success_keys)
    return aligned, successes, success_keys, final, path, key, rounds
