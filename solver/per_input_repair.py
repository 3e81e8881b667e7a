"""Feasible partitions from infeasible ones, and bigger ones from feasible ones, under
per-input semantics: ``repair`` (drop what breaks the floor or the options) and ``fill``
(add unassigned inputs where the floor's slack allows). Both decide with the searches'
tolerance (``solver.feasibility.SEARCH_TOL``), half the verifier's, so that a partition
they call feasible always passes ``solver.verify.check_partition``."""

from __future__ import annotations

import numpy as np

from solver.feasibility import SEARCH_TOL, meets_floor


def _assigned_values(a: np.ndarray, assign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows = np.flatnonzero(assign >= 0)
    return rows, a[rows, assign[rows]]


def cell_sums(a: np.ndarray, assign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(total IIA, count) of every model's cell."""
    n_models = a.shape[1]
    rows, vals = _assigned_values(a, assign)
    cells = assign[rows]
    return (
        np.bincount(cells, weights=vals, minlength=n_models),
        np.bincount(cells, minlength=n_models).astype(np.int64),
    )


def drop_lowest(vals_sorted_asc: np.ndarray, floor: float) -> int:
    """How many of the smallest entries must go for the rest to meet the floor: dropping
    the smallest keeps the most entries and, among those, the largest total."""
    count = len(vals_sorted_asc)
    total = float(vals_sorted_asc.sum())
    if meets_floor(total, count, floor, SEARCH_TOL):
        return 0
    dropped = np.concatenate(([0.0], np.cumsum(vals_sorted_asc)))
    keep = count - np.arange(count + 1)
    good = meets_floor(total - dropped, keep, floor, SEARCH_TOL)  # the empty cell always
    return int(np.argmax(good))


def repair(
    a: np.ndarray,
    assign: np.ndarray,
    floor: float,
    scope: str,
    max_models: int | None = None,
    min_cell: int = 1,
) -> np.ndarray:
    """A feasible partition inside the given one: drop the lowest entries of cells under
    the floor, empty cells below ``min_cell``, keep the ``max_models`` biggest cells;
    repeated until nothing changes (emptying a cell can break a global floor)."""
    assign = assign.astype(np.int64, copy=True)
    n_models = a.shape[1]
    for _ in range(2 * n_models + 2):
        changed = False
        rows, vals = _assigned_values(a, assign)
        if scope == "per-model":
            cells = assign[rows]
            for m in np.unique(cells):
                members = rows[cells == m]
                v = vals[cells == m]
                order = np.argsort(v, kind="stable")
                k = drop_lowest(v[order], floor)
                if k:
                    assign[members[order[:k]]] = -1
                    changed = True
        else:
            order = np.argsort(vals, kind="stable")
            k = drop_lowest(vals[order], floor)
            if k:
                assign[rows[order[:k]]] = -1
                changed = True
        totals, counts = cell_sums(a, assign)
        small = np.flatnonzero((counts > 0) & (counts < min_cell))
        if len(small):
            assign[np.isin(assign, small)] = -1
            changed = True
            totals, counts = cell_sums(a, assign)
        used = np.flatnonzero(counts > 0)
        if max_models is not None and len(used) > max_models:
            # Keep the biggest cells (then the highest total): strength first.
            rank = np.lexsort((-totals[used], -counts[used]))
            assign[np.isin(assign, used[rank[max_models:]])] = -1
            changed = True
        if not changed:
            break
    return assign


def fill(
    a: np.ndarray,
    assign: np.ndarray,
    floor: float,
    scope: str,
    max_models: int | None = None,
    min_cell: int = 1,
) -> np.ndarray:
    """Add unassigned inputs greedily where the floor's slack allows, cheapest first (the
    highest IIA first). Only cells that are already open take inputs, unless the options
    leave room for new cells (then a single input at or above the floor opens one)."""
    assign = assign.astype(np.int64, copy=True)
    n, n_models = a.shape
    free = np.flatnonzero(assign < 0)
    if len(free) == 0:
        return assign
    totals, counts = cell_sums(a, assign)
    if max_models is None and min_cell <= 1:
        models = np.arange(n_models)
    else:
        models = np.flatnonzero(counts > 0)
    if len(models) == 0:
        return assign
    sub = a[np.ix_(free, models)]
    # Inputs at or above the floor only add slack: place each where its IIA is highest.
    best = sub.argmax(axis=1)
    best_val = sub[np.arange(len(free)), best]
    surplus = best_val >= floor
    assign[free[surplus]] = models[best[surplus]]
    free, sub = free[~surplus], sub[~surplus]
    if len(free) == 0:
        return assign
    totals, counts = cell_sums(a, assign)
    if scope == "global":
        slack = float(totals.sum()) - floor * float(counts.sum())
        best = sub.argmax(axis=1)
        cost = floor - sub[np.arange(len(free)), best]
        order = np.argsort(cost, kind="stable")
        take = np.cumsum(cost[order]) <= slack + SEARCH_TOL * (
            counts.sum() + np.arange(1, len(order) + 1)
        )
        k = int(np.argmin(take)) if not take.all() else len(order)
        chosen = order[:k]
        assign[free[chosen]] = models[best[chosen]]
        return assign
    # Per model: the candidates that could fit by themselves (prefix of cheapest costs
    # whose running sum stays within that model's slack), then one pass in cost order.
    slack = totals[models] - floor * counts[models]
    cand_i, cand_m, cand_c = [], [], []
    for j in range(len(models)):
        if slack[j] <= 0:
            continue
        cost = floor - sub[:, j]
        order = np.argsort(cost, kind="stable")
        k = int(np.searchsorted(np.cumsum(cost[order]), slack[j], side="right"))
        if k:
            cand_i.append(order[:k])
            cand_m.append(np.full(k, j))
            cand_c.append(cost[order[:k]])
    if not cand_i:
        return assign
    ci, cm, cc = np.concatenate(cand_i), np.concatenate(cand_m), np.concatenate(cand_c)
    order = np.argsort(cc, kind="stable")
    taken = np.zeros(len(free), dtype=bool)
    cnt = counts[models].astype(np.float64)
    for t in order.tolist():
        i, j, c = int(ci[t]), int(cm[t]), float(cc[t])
        if taken[i] or slack[j] - c < -SEARCH_TOL * (cnt[j] + 1):
            continue
        taken[i] = True
        slack[j] -= c
        cnt[j] += 1
        assign[free[i]] = models[j]
    return assign


def strength_total(a: np.ndarray, assign: np.ndarray) -> tuple[int, float]:
    rows, vals = _assigned_values(a, assign)
    return len(rows), float(vals.sum())


def better(a: np.ndarray, x: np.ndarray | None, y: np.ndarray | None) -> np.ndarray | None:
    """The lexicographically better of two partitions (strength, then total IIA)."""
    if x is None:
        return y
    if y is None:
        return x
    return x if strength_total(a, x) >= strength_total(a, y) else y
