"""The independent check every partition passes before it is returned, and the screen
every user-supplied start passes before a solver sees it.

It recomputes each cell's IIA from the raw data with none of the solvers' incremental
state, so a bug in a search or a misread solver status becomes an error, never a result.

Three names, three questions: ``check_partition`` raises (the final word, public);
``partition_problems`` lists what is wrong, in words (for solvers that repair);
``is_feasible`` answers yes or no.
"""

from __future__ import annotations

import numpy as np

from solver.feasibility import MIN_PAIRWISE_CELL, meets_floor


class PartitionCheckError(RuntimeError):
    """A solver produced a partition that violates the problem it was asked to solve."""


def cell_iia_pairwise(w: np.ndarray, assignment: np.ndarray) -> dict[int, tuple[float, int]]:
    """For each non-empty cell m: (sum of w over unordered pairs inside it, number of pairs).
    The diagonal is never counted: an input is no pair with itself."""
    out = {}
    for m in np.unique(assignment[assignment >= 0]):
        cell = np.flatnonzero(assignment == m)
        k = len(cell)
        block = w[m][np.ix_(cell, cell)]
        total = (float(block.sum()) - float(np.trace(block))) / 2.0
        out[int(m)] = (total, k * (k - 1) // 2)
    return out


def cell_iia_per_input(a: np.ndarray, assignment: np.ndarray) -> dict[int, tuple[float, int]]:
    """For each non-empty cell m: (sum of a[i, m] over its inputs, number of inputs)."""
    out = {}
    for m in np.unique(assignment[assignment >= 0]):
        cell = np.flatnonzero(assignment == m)
        # Summed in float64 whatever the data's type: float32 sums over cells of thousands
        # drift by ~1e-4, enough to flip a verdict at the floor.
        out[int(m)] = (float(a[cell, m].sum(dtype=np.float64)), len(cell))
    return out


def _is_sparse(values) -> bool:
    # The sparse pair tensor (solver.sparse_data) imports this module: recognised by type
    # name here, and its checks imported where they are used.
    return type(values).__name__ == "SparsePairwiseIIA"


def _shape(values: np.ndarray, semantics: str) -> tuple[int, int]:
    """(inputs, models) of w [M, n, n] (pairwise), a [n, M] (per-input) or a sparse pair
    tensor."""
    if _is_sparse(values):
        return values.n_inputs, len(values.models)
    if semantics == "pairwise":
        return values.shape[1], values.shape[0]
    return values.shape[0], values.shape[1]


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

    ``values`` is w [M, n, n] (pairwise), a [n, M] (per-input) or a sparse pair tensor
    (pairwise over its scored pairs; a cell with an input that has no scored pair inside it
    is unmeasured, and refused).
    """
    if _is_sparse(values):
        from solver.sparse_verify import check_partition_sparse

        return check_partition_sparse(values, np.asarray(assignment), floor, scope)
    pairwise = semantics == "pairwise"
    n, n_models = _shape(values, semantics)
    assignment = np.asarray(assignment)
    if assignment.shape != (n,) or not np.issubdtype(assignment.dtype, np.integer):
        raise PartitionCheckError(
            f"assignment must be {n} integers, got shape {assignment.shape} "
            f"of dtype {assignment.dtype}"
        )
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


def is_feasible(
    values: np.ndarray,
    assignment: np.ndarray,
    floor: float,
    semantics: str,
    scope: str,
    *,
    max_models: int | None = None,
    min_cell: int = 1,
) -> bool:
    """Whether ``assignment`` meets every constraint (``partition_problems`` is empty)."""
    return not partition_problems(
        values, assignment, floor, semantics, scope, max_models=max_models, min_cell=min_cell
    )


def screen_start(
    values: np.ndarray,
    start,
    floor: float,
    semantics: str,
    scope: str,
    *,
    max_models: int | None = None,
    min_cell: int = 1,
) -> tuple[np.ndarray | None, str]:
    """A warm start a solver may use, or None and the reason it was dropped.

    A start is checked before any solver sees it: integers (whole-number floats are
    accepted), one per input, model indices in -1..M-1, and feasible at this floor under
    this semantics, scope, ``max_models`` and ``min_cell``. A bad start is never an error:
    the solve goes on without it, and the reason goes into the certificate's note."""
    if start is None:
        return None, ""
    n, n_models = _shape(values, semantics)
    try:
        arr = np.asarray(start)
    except Exception as exc:  # ragged lists and the like
        return None, f"warm start dropped: not an array ({exc})"
    if arr.shape != (n,):
        return None, f"warm start dropped: shape {arr.shape}, expected ({n},), one entry per input"
    if arr.dtype == bool or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    ):
        return None, f"warm start dropped: dtype {arr.dtype}, expected model indices (integers)"
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            return None, "warm start dropped: entries must be whole model indices"
    arr = arr.astype(np.int64)
    if n and (arr.min() < -1 or arr.max() >= n_models):
        return None, (
            f"warm start dropped: model indices must lie in -1..{n_models - 1} "
            f"(-1 is the fallback), got {int(arr.min())}..{int(arr.max())}"
        )
    problems = partition_problems(
        values, arr, floor, semantics, scope, max_models=max_models, min_cell=min_cell
    )
    if problems:
        return None, f"warm start dropped: infeasible at floor {floor} ({problems[0]})"
    return arr, ""
