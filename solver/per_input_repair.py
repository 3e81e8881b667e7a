"""Feasible partitions from infeasible ones, and bigger ones from feasible ones, under
per-input semantics: ``repair`` (drop what breaks the floor or the options) and ``fill``
(add unassigned inputs where the floor's slack allows). Both decide with the searches'
tolerance (``solver.feasibility.SEARCH_TOL``), half the verifier's, so that a partition
they call feasible always passes ``solver.verify.check_partition``."""

from __future__ import annotations

import numpy as np

from solver.feasibility import SEARCH_TOL, meets_floor

# Rows per block when the best model of many rows is looked up (bounded scratch memory).
BLOCK_ROWS = 32_768


def _assigned_values(a: np.ndarray, assign: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The assigned rows and their IIA, in float64 whatever the data's type: the floor
    decisions sum these, and a float32 sum of thousands of entries is off by ~1e-4."""
    rows = np.flatnonzero(assign >= 0)
    return rows, a[rows, assign[rows]].astype(np.float64)


def longest_prefix(t: np.ndarray, extra: float = 0.0, margin: float = 0.0) -> np.ndarray:
    """Positions of the longest prefix of ``t`` sorted descending whose running sum plus
    ``extra`` stays >= −``margin``. With t = a − λ + tol for one model's column this is
    the largest cell that model can form from those entries (the k largest terms have the
    largest sum of any k; the running sum rises while the terms are positive and then
    falls, so the feasible lengths are 1..k*). Only the top T entries are sorted
    (argpartition), T growing until the prefix ends inside them."""
    n = len(t)
    top = min(n, 4096)
    while True:
        if top >= n:
            order = np.argsort(-t, kind="stable")
        else:
            part = np.argpartition(-t, top - 1)[:top]
            order = part[np.argsort(-t[part], kind="stable")]
        ok = np.flatnonzero(extra + np.cumsum(t[order]) >= -margin)
        k = int(ok[-1]) + 1 if len(ok) else 0
        if k < top or top >= n:
            return order[:k]
        top *= 4


def _row_best(a: np.ndarray, rows: np.ndarray, models: np.ndarray):
    """For each row in ``rows``: the index (into ``models``) of its highest IIA among
    ``models``, and that IIA in float64; in blocks, so no [rows, models] copy is made."""
    best = np.empty(len(rows), dtype=np.int64)
    best_val = np.empty(len(rows), dtype=np.float64)
    for start in range(0, len(rows), BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, len(rows))
        block = a[rows[start:stop]][:, models]
        j = block.argmax(axis=1)
        best[start:stop] = j
        best_val[start:stop] = block[np.arange(stop - start), j]
    return best, best_val


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
    # Inputs at or above the floor only add slack: place each where its IIA is highest.
    best, best_val = _row_best(a, free, models)
    surplus = best_val >= floor
    assign[free[surplus]] = models[best[surplus]]
    keep = ~surplus
    free, best, best_val = free[keep], best[keep], best_val[keep]
    if len(free) == 0:
        return assign
    totals, counts = cell_sums(a, assign)
    if scope == "global":
        slack = float(totals.sum()) - floor * float(counts.sum())
        cost = floor - best_val
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
    # Every cost here is positive (inputs at or above the floor went above), so only
    # inputs costing at most the slack can start such a prefix: sort just those (the
    # stable sort keeps the same order among them as a sort of the whole column).
    slack = totals[models] - floor * counts[models]
    cand_i, cand_m, cand_c = [], [], []
    for j in range(len(models)):
        if slack[j] <= 0:
            continue
        cost = floor - a[free, models[j]].astype(np.float64)
        near = np.flatnonzero(cost <= slack[j])
        order = near[np.argsort(cost[near], kind="stable")]
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


def reoptimize_cells(
    a: np.ndarray,
    assign: np.ndarray,
    floor: float,
    models: np.ndarray,
    sweeps: int = 3,
) -> np.ndarray:
    """Per-model floor: each cell of ``models`` in turn becomes the largest feasible cell
    its model can form from the inputs no other cell holds (its own and the unassigned):
    those entries sorted by IIA, the longest prefix meeting the floor. The k largest
    entries have the largest sum of any k, so that prefix is the most inputs (then the
    highest total) the cell can hold with the others fixed: a cell never shrinks, a
    feasible partition stays feasible, and a cell of at least ``min_cell`` inputs stays
    one. Up to ``sweeps`` passes, until none gains. Only the entries that could lie in
    such a prefix are sorted (as in ``single_cell_sizes``)."""
    assign = assign.astype(np.int64, copy=True)
    models = np.asarray(models)
    for _ in range(max(sweeps, 0)):
        gained = False
        counts = np.bincount(assign[assign >= 0], minlength=a.shape[1])
        for m in models[np.argsort(-counts[models], kind="stable")].tolist():
            avail = np.flatnonzero((assign < 0) | (assign == m))
            col = np.asarray(a[:, m], dtype=np.float64)[avail]
            # Feasible at the searches' tolerance: Σ (a − λ + SEARCH_TOL) >= 0.
            pick = longest_prefix(col - floor + SEARCH_TOL)
            k = len(pick)
            mine = avail[assign[avail] == m]
            if k < len(mine) or k == 0:
                continue
            if k == len(mine) and float(col[pick].sum()) <= float(
                a[mine, m].astype(np.float64).sum()
            ):
                continue
            assign[mine] = -1
            assign[avail[pick]] = m
            gained = gained or k > len(mine)
        if not gained:
            break
    return assign


def settle(
    a: np.ndarray, assign: np.ndarray, floor: float, scope: str, min_cell: int = 1
) -> np.ndarray:
    """Drop inputs until the floor holds in ``solver.verify``'s own arithmetic.

    The searches decide in float64 from their own running sums; the verifier sums each
    cell afresh (in float64), so a cell filled to a slack of ~0 can pass in one order of
    summation and fail in the other. This redoes the verifier's sums exactly (the same rows
    in the same order, summed the same way) and drops the lowest entry of each cell that
    fails (for a global floor, the lowest assigned entry), emptying cells that fall under
    ``min_cell``, until none fails.
    A partition that passes already is returned unchanged."""
    assign = assign.astype(np.int64, copy=True)
    for _ in range(len(assign) + 1):
        rows = np.flatnonzero(assign >= 0)
        if len(rows) == 0:
            return assign
        # Stable: within a cell the rows stay ascending, as np.flatnonzero(assign == m) is.
        rows = rows[np.argsort(assign[rows], kind="stable")]
        cells, starts = np.unique(assign[rows], return_index=True)
        ends = np.append(starts[1:], len(rows))
        totals, members = [], []
        for m, lo, hi in zip(cells.tolist(), starts.tolist(), ends.tolist()):
            members.append(rows[lo:hi])
            totals.append(float(a[rows[lo:hi], m].sum(dtype=np.float64)))
        drop: list[int] = []
        if scope == "global":
            total = sum(totals)
            if not meets_floor(total, len(rows), floor):
                vals = a[rows, assign[rows]]
                drop.append(int(rows[int(np.argmin(vals))]))
        else:
            for m, cell, total in zip(cells.tolist(), members, totals):
                if not meets_floor(total, len(cell), floor):
                    drop.append(int(cell[int(np.argmin(a[cell, m]))]))
        if not drop:
            return assign
        assign[drop] = -1
        counts = np.bincount(assign[assign >= 0], minlength=a.shape[1])
        small = np.flatnonzero((counts > 0) & (counts < min_cell))
        if len(small):
            assign[np.isin(assign, small)] = -1
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
