"""Several cells per model: a model may explain up to K disjoint regions, each meeting the
floor on its own.

A model can be faithful on two separate regions and not on their union, since the pairs
across them fail. Under pairwise semantics with per-model floors, "model m holds up to K
cells, each meeting the floor" is exactly the one-cell problem over K copies of each model:
copy c of model m is a candidate of its own with m's weights. So every solver, bound and
check of the one-cell problem applies unchanged to the copies (a bound proven there is a
bound here, since the two problems have the same feasible partitions), and the answer maps
back to (model, cell) pairs.

Copies are numbered model-major: copy ``m * K + c`` is cell c of model m. Cells are
renumbered on the way back, per model, largest first (ties: the one holding the lowest
input first), so the same partition always carries the same labels.
"""

from __future__ import annotations

import numpy as np

from solver.feasibility import MIN_PAIRWISE_CELL, meets_floor
from solver.sparse_data import SparsePairwiseIIA
from solver.sparse_verify import check_partition_sparse
from solver.verify import PartitionCheckError


def expand(w: np.ndarray | SparsePairwiseIIA, cells_per_model: int):
    """w [M, n, n] -> [M·K, n, n], copy ``m * K + c`` holding model m's weights; a sparse pair
    tensor likewise (its pairs shared, its weights repeated)."""
    if isinstance(w, SparsePairwiseIIA):
        return SparsePairwiseIIA(
            w.pairs,
            np.repeat(w.weights, cells_per_model, axis=0),
            copy_names(w.models, cells_per_model),
            w.n_inputs,
        )
    return np.repeat(w, cells_per_model, axis=0)


def copy_names(models: tuple[str, ...], cells_per_model: int) -> tuple[str, ...]:
    """Names of the copies, in ``expand``'s order: ``model#c``."""
    return tuple(f"{m}#{c}" for m in models for c in range(cells_per_model))


def to_copies(assignment: np.ndarray, cell: np.ndarray | None, cells_per_model: int) -> np.ndarray:
    """(model per input, cell per input) -> copy per input; -1 stays -1. ``cell`` None: every
    model's inputs form its cell 0 (a one-cell partition is a K-cell one)."""
    assignment = np.asarray(assignment, dtype=np.int64)
    cell = np.zeros_like(assignment) if cell is None else np.asarray(cell, dtype=np.int64)
    if cell.shape != assignment.shape:
        raise ValueError(f"cell has shape {cell.shape}, assignment {assignment.shape}")
    if np.any((assignment >= 0) & ((cell < 0) | (cell >= cells_per_model))):
        raise ValueError(f"cell numbers must lie in 0..{cells_per_model - 1} for assigned inputs")
    return np.where(assignment >= 0, assignment * cells_per_model + cell, -1)


def from_copies(copies: np.ndarray, cells_per_model: int) -> tuple[np.ndarray, np.ndarray]:
    """copy per input -> (model per input, cell per input), cells renumbered per model in
    the canonical order (largest first; ties: the lowest first input). -1 for the fallback
    in both."""
    copies = np.asarray(copies, dtype=np.int64)
    assignment = np.where(copies >= 0, copies // cells_per_model, -1)
    cell = np.full_like(copies, -1)
    for m in np.unique(assignment[assignment >= 0]):
        groups = [np.flatnonzero(copies == m * cells_per_model + c) for c in range(cells_per_model)]
        groups = sorted((g for g in groups if g.size), key=lambda g: (-g.size, int(g[0])))
        for number, members in enumerate(groups):
            cell[members] = number
    return assignment, cell


def check_cells(
    w: np.ndarray, assignment: np.ndarray, cell: np.ndarray, floor: float, cells_per_model: int
) -> dict[tuple[int, int], float]:
    """Raise PartitionCheckError unless every (model, cell) meets the floor on its own and no
    model holds more than ``cells_per_model`` cells; return each cell's IIA by (model, cell).

    Recomputed from the models' own weights, with none of the copies' machinery, so a slip in
    the mapping to copies and back is caught here. A sparse pair tensor is checked over its
    scored pairs (``solver.sparse_verify``), each (model, cell) as a copy of its own."""
    sparse = isinstance(w, SparsePairwiseIIA)
    n, n_models = (w.n_inputs, len(w.models)) if sparse else (w.shape[1], w.shape[0])
    assignment = np.asarray(assignment)
    cell = np.asarray(cell)
    if assignment.shape != (n,) or cell.shape != (n,):
        raise PartitionCheckError(
            f"assignment and cell must hold {n} entries, got {assignment.shape} and {cell.shape}"
        )
    if assignment.min(initial=-1) < -1 or assignment.max(initial=-1) >= n_models:
        raise PartitionCheckError(f"assignment holds model indices outside -1..{n_models - 1}")
    assigned = assignment >= 0
    if np.any(cell[assigned] < 0) or np.any(cell[assigned] >= cells_per_model):
        raise PartitionCheckError(
            f"cell numbers of assigned inputs must lie in 0..{cells_per_model - 1}"
        )
    if np.any(cell[~assigned] != -1):
        raise PartitionCheckError("inputs of the fallback must have cell -1")
    if sparse:
        k = cells_per_model
        iia = check_partition_sparse(
            expand(w, k), to_copies(assignment, cell, k), floor, "per-model"
        )
        return {(c // k, c % k): v for c, v in iia.items()}
    out: dict[tuple[int, int], float] = {}
    for m in np.unique(assignment[assigned]):
        for c in np.unique(cell[assignment == m]):
            members = np.flatnonzero((assignment == m) & (cell == c))
            k = members.size
            if k < MIN_PAIRWISE_CELL:
                raise PartitionCheckError(
                    f"cell {c} of model {m} has {k} inputs, fewer than the minimum "
                    f"{MIN_PAIRWISE_CELL}"
                )
            block = w[m][np.ix_(members, members)]
            total = (float(block.sum()) - float(np.trace(block))) / 2.0
            pairs = k * (k - 1) // 2
            if not meets_floor(total, pairs, floor):
                raise PartitionCheckError(
                    f"cell {c} of model {m} has IIA {total / pairs:.6f}, below the floor {floor}"
                )
            out[(int(m), int(c))] = total / pairs
    return out


def cell_tables(
    iia: dict[tuple[int, int], float], models: tuple[str, ...]
) -> tuple[dict[str, float], dict[str, tuple[float, ...]]]:
    """From ``check_cells``'s IIA by (model, cell): each model's weakest cell's IIA, and
    each of its cells' IIA in cell order (``Partition.cell_iia`` and ``cells_iia``)."""
    held: dict[str, tuple[float, ...]] = {}
    for m in sorted({m for m, _ in iia}):
        held[models[m]] = tuple(v for (mm, _), v in sorted(iia.items()) if mm == m)
    return {name: min(v) for name, v in held.items()}, held
