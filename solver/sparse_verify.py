"""Cell IIA and verification over a sparse pair tensor, by the rules of ``solver.sparse_data``:
a cell's IIA is the mean over the scored pairs inside it, and a cell with a member that has no
scored partner inside it is unmeasured, so infeasible, and said so in words."""

from __future__ import annotations

import numpy as np

from solver.feasibility import SCOPES, meets_floor
from solver.sparse_data import (
    MIN_PARTNERS_INSIDE,
    MIN_SCORED_PAIRS,
    sparse_arrays,
)
from solver.verify import PartitionCheckError

# ----------------------------------------------------------------------------------------------
# Cell IIA and verification.


def cell_pair_sums_sparse(
    pairs: np.ndarray, weights: np.ndarray, assignment: np.ndarray
) -> dict[int, tuple[float, int]]:
    """For each non-empty cell m: (sum of w[m] over the scored pairs inside it, their number).
    The counterpart of ``verify.cell_iia_pairwise``; a count of 0 is an unmeasured cell."""
    assignment = np.asarray(assignment)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    ai, aj = assignment[pairs[:, 0]], assignment[pairs[:, 1]]
    inside = (ai == aj) & (ai >= 0)
    cells = np.unique(assignment[assignment >= 0])
    out = {}
    for m in cells:
        sel = inside & (ai == m)
        # Summed in float64 whatever the stored dtype, as the search's sums are.
        out[int(m)] = (float(np.asarray(weights[m], np.float64)[sel].sum()), int(sel.sum()))
    return out


def cell_iia_sparse(
    pairs: np.ndarray, weights: np.ndarray, assignment: np.ndarray
) -> dict[int, tuple[float | None, int]]:
    """For each non-empty cell m: (IIA, number of scored pairs inside). The IIA is the mean
    of w[m] over those pairs, or None when there is none: the cell's IIA is unmeasured."""
    return {
        m: (total / count if count else None, count)
        for m, (total, count) in cell_pair_sums_sparse(pairs, weights, assignment).items()
    }


def unmeasured_members(pairs: np.ndarray, assignment: np.ndarray) -> dict[int, np.ndarray]:
    """For each cell with any: the inputs that have no scored partner inside their cell."""
    assignment = np.asarray(assignment)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    n = assignment.shape[0]
    ai, aj = assignment[pairs[:, 0]], assignment[pairs[:, 1]]
    inside = (ai == aj) & (ai >= 0)
    partners = np.bincount(pairs[inside].ravel(), minlength=n)
    lonely = np.flatnonzero((assignment >= 0) & (partners < MIN_PARTNERS_INSIDE))
    return {int(m): lonely[assignment[lonely] == m] for m in np.unique(assignment[lonely])}


class UnmeasuredCellError(PartitionCheckError):
    """A cell (or a member of it) with no scored pair inside: its IIA is unmeasured."""


def sparse_partition_problems(
    data, assignment: np.ndarray, floor: float, scope: str = "per-model"
) -> list[str]:
    """Everything that makes ``assignment`` infeasible on sparse data, one line each
    (empty: feasible). Unmeasured cells and members are named as such, never given a number.
    ``data``: a SparsePairwiseIIA or a tuple (pairs, weights, n_inputs)."""
    return [text for _, text in _problems(data, assignment, floor, scope)]


def _problems(data, assignment, floor, scope) -> list[tuple[bool, str]]:
    # (unmeasured?, text) per problem.
    pairs, weights, n = sparse_arrays(data)
    n_models = weights.shape[0]
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; expected one of {SCOPES}")
    assignment = np.asarray(assignment)
    if assignment.shape != (n,) or not np.issubdtype(assignment.dtype, np.integer):
        return [
            (
                False,
                f"assignment must be {n} integers, got shape {assignment.shape} "
                f"of dtype {assignment.dtype}",
            )
        ]
    if assignment.min(initial=-1) < -1 or assignment.max(initial=-1) >= n_models:
        return [(False, f"assignment holds model indices outside -1..{n_models - 1}")]
    problems = []
    sums = cell_pair_sums_sparse(pairs, weights, assignment)
    lonely = unmeasured_members(pairs, assignment)
    for m, (total, count) in sums.items():
        if count < MIN_SCORED_PAIRS:
            size = int((assignment == m).sum())
            problems.append(
                (
                    True,
                    f"cell {m} ({size} inputs) has no scored pair inside: its IIA is "
                    "unmeasured, so it cannot be shown to meet the floor",
                )
            )
        elif m in lonely:
            who = lonely[m]
            problems.append(
                (
                    True,
                    f"cell {m} has {who.size} members with no scored partner inside the cell "
                    f"(first: input {int(who[0])}): their membership is unmeasured",
                )
            )
        elif scope == "per-model" and not meets_floor(total, count, floor):
            problems.append(
                (
                    False,
                    f"cell {m} has IIA {total / count:.6f} over {count} scored pairs, "
                    f"below the floor {floor}",
                )
            )
    if scope == "global" and sums:
        total = sum(t for t, _ in sums.values())
        count = sum(c for _, c in sums.values())
        if count and not meets_floor(total, count, floor):
            problems.append(
                (
                    False,
                    f"pooled IIA {total / count:.6f} over {count} scored pairs is below the "
                    f"floor {floor}",
                )
            )
    return problems


def check_partition_sparse(
    data, assignment: np.ndarray, floor: float, scope: str = "per-model"
) -> dict[int, float]:
    """Raise unless ``assignment`` is feasible on sparse data; return each cell's IIA.
    ``UnmeasuredCellError`` (a ``PartitionCheckError``) when a cell or a member of one has
    no scored pair inside; ``PartitionCheckError`` for any other violation."""
    problems = _problems(data, assignment, floor, scope)
    if problems:
        unmeasured = any(flag for flag, _ in problems)
        kind = UnmeasuredCellError if unmeasured else PartitionCheckError
        raise kind("; ".join(text for _, text in problems))
    pairs, weights, _ = sparse_arrays(data)
    return {m: t / c for m, (t, c) in cell_pair_sums_sparse(pairs, weights, assignment).items()}


def is_feasible_sparse(
    data, assignment: np.ndarray, floor: float, scope: str = "per-model"
) -> bool:
    return not sparse_partition_problems(data, assignment, floor, scope)
