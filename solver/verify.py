"""The independent check every partition passes before it is returned.

It recomputes each cell's IIA from the raw data with none of the solvers' incremental
state, so a bug in a search or a misread solver status becomes an error, never a result.
"""

from __future__ import annotations

import numpy as np

from solver.feasibility import MIN_PAIRWISE_CELL, meets_floor


class PartitionCheckError(RuntimeError):
    """A solver produced a partition that violates the problem it was asked to solve."""


def cell_iia_pairwise(w: np.ndarray, assignment: np.ndarray) -> dict[int, tuple[float, int]]:
    """For each non-empty cell m: (sum of w over unordered pairs inside it, number of pairs)."""
    out = {}
    for m in np.unique(assignment[assignment >= 0]):
        cell = np.flatnonzero(assignment == m)
        k = len(cell)
        out[int(m)] = (float(w[m][np.ix_(cell, cell)].sum()) / 2.0, k * (k - 1) // 2)
    return out


def cell_iia_per_input(a: np.ndarray, assignment: np.ndarray) -> dict[int, tuple[float, int]]:
    """For each non-empty cell m: (sum of a[i, m] over its inputs, number of inputs)."""
    out = {}
    for m in np.unique(assignment[assignment >= 0]):
        cell = np.flatnonzero(assignment == m)
        out[int(m)] = (float(a[cell, m].sum()), len(cell))
    return out


def check_partition(
    values: np.ndarray,
    assignment: np.ndarray,
    floor: float,
    semantics: str,
    scope: str,
    *,
    max_models: int | None = None,
    min_cell: int = 1,
) -> dict[int, float]:
    """Raise PartitionCheckError unless ``assignment`` is feasible; return each cell's IIA.

    ``values`` is w [M, n, n] (pairwise) or a [n, M] (per-input).
    """
    pairwise = semantics == "pairwise"
    n_models = values.shape[0] if pairwise else values.shape[1]
    n = values.shape[1] if pairwise else values.shape[0]
    assignment = np.asarray(assignment)
    if assignment.shape != (n,) or not np.issubdtype(assignment.dtype, np.integer):
        raise PartitionCheckError(f"assignment must be {n} integers, got {assignment.shape}")
    if assignment.min(initial=-1) < -1 or assignment.max(initial=-1) >= n_models:
        raise PartitionCheckError(f"assignment holds model indices outside -1..{n_models - 1}")
    cells = (cell_iia_pairwise if pairwise else cell_iia_per_input)(values, assignment)
    sizes = {m: int((assignment == m).sum()) for m in cells}
    smallest = max(min_cell, MIN_PAIRWISE_CELL if pairwise else 1)
    for m, size in sizes.items():
        if size < smallest:
            raise PartitionCheckError(
                f"cell {m} has {size} inputs, fewer than the minimum {smallest}"
            )
    if max_models is not None and len(cells) > max_models:
        raise PartitionCheckError(f"{len(cells)} models used, more than the maximum {max_models}")
    if scope == "global":
        total = sum(t for t, _ in cells.values())
        count = sum(c for _, c in cells.values())
        if not meets_floor(total, count, floor):
            raise PartitionCheckError(
                f"pooled IIA {total / count:.6f} of the combined model is below the floor {floor}"
            )
    else:
        for m, (total, count) in cells.items():
            if not meets_floor(total, count, floor):
                raise PartitionCheckError(
                    f"cell {m} has IIA {total / count:.6f}, below the floor {floor}"
                )
    return {m: total / count for m, (total, count) in cells.items()}


def partition_problems(
    values: np.ndarray,
    assignment: np.ndarray,
    floor: float,
    semantics: str,
    scope: str,
    *,
    max_models: int | None = None,
    min_cell: int = 1,
) -> list[str]:
    """What makes ``assignment`` infeasible, in words; empty when it is feasible. For solvers
    that test candidates and repair, rather than fail."""
    try:
        check_partition(
            values, assignment, floor, semantics, scope, max_models=max_models, min_cell=min_cell
        )
    except PartitionCheckError as exc:
        return [str(exc)]
    return []
