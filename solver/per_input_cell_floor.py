"""Starts for the global floor with ``min_cell``: partitions whose every non-empty cell holds
at least ``min_cell`` inputs while the pooled mean meets the floor.

The option-free answer (each input at its best model, the longest sorted prefix meeting the
floor) leaves many small cells. Which models hold a cell decides most of the answer, so every
start here is a model set plus one way to fill it (``fill_model_set``): each model of the set
first gets ``min_cell`` inputs, then the other inputs go to their best model of the set, best
first, while the pooled mean meets the floor.

- the shrinking walk (``shrinking_sets``): the model set starts with every model and loses
  the model of its smallest cell, one at a time, each input moving to its best model among
  those left; its first set whose cells all hold ``min_cell`` unfilled is the shrinking
  start, and every set it passes is filled;
- the model-set search (``search_model_sets``): from the best filled set, add or remove one
  model at a time while that gains, the inputs' best models updated in place.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from solver.feasibility import meets_floor
from solver.per_input_bounds import best_prefix
from solver.per_input_repair import better

# each model's cell is filled from its top RESERVE_DEPTH x min_cell rows
RESERVE_DEPTH = 4
# the model-set search evaluates at most this many sets per model of the data (each costs a
# sort of the inputs: about 0.2 s at 10^6)
SEARCH_EVALS_PER_MODEL = 5


@dataclass
class CellFloorStarts:
    """``shrunk``: the shrinking start (None: no set of the walk holds ``min_cell`` per cell
    within ``max_models``); ``filled``: the best filled set of the walk; ``searched``: the
    model-set search from it; ``sets_tried``: sets the search evaluated; ``best``: the best
    of the three, which is ``searched`` (None: none exists)."""

    shrunk: np.ndarray | None
    filled: np.ndarray | None
    searched: np.ndarray | None
    sets_tried: int
    best: np.ndarray | None


class _TopRows:
    """Each model's top ``depth`` rows by IIA, found when first asked for."""

    def __init__(self, a: np.ndarray, depth: int) -> None:
        self.a, self.depth = a, min(depth, a.shape[0])
        self.rows: dict[int, np.ndarray] = {}

    def __getitem__(self, m: int) -> np.ndarray:
        if m not in self.rows:
            col = np.asarray(self.a[:, m])
            self.rows[m] = np.argpartition(-col, self.depth - 1)[: self.depth]
        return self.rows[m]


def shrinking_sets(a: np.ndarray, floor: float):
    """The option-free closed form over a model set that starts with every model and loses
    the model of its smallest cell, one at a time, each input moving to its best model
    among those left: yields (order, k, best, value, sizes) per set (the first k of
    ``order`` covered, input i in model best[i] at IIA value[i]; ``sizes`` per model)."""
    n, n_models = a.shape
    keep = np.ones(n_models, dtype=bool)
    best = np.asarray(a.argmax(axis=1), dtype=np.int64)
    value = a[np.arange(n), best].astype(np.float64)
    while keep.any():
        order, k = best_prefix(value, floor)
        if k == 0:
            return
        sizes = np.bincount(best[order[:k]], minlength=n_models)
        yield order, k, best, value, sizes
        used = np.flatnonzero(sizes)
        keep[used[np.argmin(sizes[used])]] = False
        if not keep.any():
            return
        moved = np.flatnonzero(~keep[best])
        cols = np.flatnonzero(keep)
        best[moved] = cols[np.asarray(a[moved][:, cols]).argmax(axis=1)]
        value[moved] = a[moved, best[moved]]


def _take_pairs(rows, cols, vals, n: int, k: int, min_cell: int) -> np.ndarray | None:
    """Up to ``min_cell`` inputs for each of ``k`` models from the candidate pairs (input
    ``rows``, model ``cols`` in 0..k-1, IIA ``vals``), best pairs first: in rounds, each free
    input's best pair to a model with room, each model keeping the best of those up to its
    room (the round's best pair is always kept, so every round takes one). The model of
    each input (-1: none); None where a model cannot be filled."""
    order = np.argsort(-vals, kind="stable")
    rows, cols = rows[order], cols[order]
    owner = np.full(n, -1, dtype=np.int64)
    count = np.zeros(k, dtype=np.int64)
    while count.sum() < k * min_cell:
        idx = np.flatnonzero((owner[rows] < 0) & (count[cols] < min_cell))
        if len(idx) == 0:
            return None
        _, first = np.unique(rows[idx], return_index=True)
        pick = idx[np.sort(first)]  # each free input's best pair, in value order
        by_model = np.argsort(cols[pick], kind="stable")  # value order within each model
        m = cols[pick][by_model]
        rank = np.arange(len(m)) - np.searchsorted(m, m, side="left")
        chosen = pick[by_model[rank < min_cell - count[m]]]
        owner[rows[chosen]] = cols[chosen]
        count += np.bincount(cols[chosen], minlength=k)
    return owner


def fill_model_set(
    a: np.ndarray,
    floor: float,
    used: np.ndarray,
    order: np.ndarray,
    best: np.ndarray,
    value: np.ndarray,
    min_cell: int,
    tops: _TopRows,
) -> np.ndarray | None:
    """Every model of ``used`` first gets ``min_cell`` inputs (``_take_pairs`` over each
    model's top rows), then the other inputs go to their best model (``best``, at IIA
    ``value``, ``order`` sorting ``value`` largest first), best first, while the pooled mean
    meets the floor; an input whose best model is not in ``used`` stays out. None where a
    cell cannot be filled or the filled cells alone break the floor. A small cell filled up
    costs some of the pool's surplus, where dropping its model loses its inputs."""
    n = a.shape[0]
    if len(used) == 0 or min_cell * len(used) > n:
        return None
    rows = np.concatenate([tops[int(m)] for m in used])
    cols = np.repeat(np.arange(len(used)), tops.depth)
    owner = _take_pairs(rows, cols, a[rows, used[cols]], n, len(used), min_cell)
    if owner is None:
        return None
    assign = np.where(owner >= 0, used[np.maximum(owner, 0)], -1)
    taken = owner >= 0
    base = float(np.sum(a[taken, assign[taken]], dtype=np.float64))
    in_used = np.zeros(a.shape[1], dtype=bool)
    in_used[used] = True
    rest = order[~taken[order] & in_used[best[order]]]  # best first, as ``order``
    counts = np.arange(len(rest) + 1)
    sums = base + np.concatenate([[0.0], np.cumsum(value[rest], dtype=np.float64)])
    good = meets_floor(sums, min_cell * len(used) + counts, floor)
    if not good.any():
        return None
    k = int(counts[good].max())
    assign[rest[:k]] = best[rest[:k]]
    return assign


def search_model_sets(
    a: np.ndarray,
    floor: float,
    max_models: int | None,
    min_cell: int,
    start: np.ndarray,
    tops: _TopRows,
    deadline: float | None = None,
    max_sets: int | None = None,
) -> tuple[np.ndarray, int]:
    """Local search over the model set of ``start``: remove one model (smallest cell
    first) or add one (the one that would be best for most inputs first), each set filled
    by ``fill_model_set``; the move that gains the most inputs is taken, until none gains,
    ``max_sets`` sets were tried or the deadline passes. (best partition, sets tried)."""
    n, n_models = a.shape
    limit = n_models if max_models is None else max_models
    max_sets = SEARCH_EVALS_PER_MODEL * n_models if max_sets is None else max_sets
    current, strength = start, int((start >= 0).sum())
    used = np.unique(start[start >= 0])
    sub = np.asarray(a[:, used])
    best = used[sub.argmax(axis=1)]
    value = a[np.arange(n), best].astype(np.float64)
    wins = np.bincount(np.asarray(a.argmax(axis=1)), minlength=n_models)
    tried = 0
    gained = True
    while gained and tried < max_sets:
        gained = False
        sizes = np.bincount(current[current >= 0], minlength=n_models)
        removals = [(int(m), False) for m in used[np.argsort(sizes[used], kind="stable")]]
        others = np.setdiff1d(np.arange(n_models), used)
        additions = [(int(m), True) for m in others[np.argsort(-wins[others], kind="stable")]]
        moves = removals + (additions if len(used) < limit else [])
        found = None
        for m, add in moves:
            if tried >= max_sets or (deadline is not None and time.perf_counter() > deadline):
                break
            if not add and len(used) == 1:
                continue
            new_used, new_best, new_value = _moved(a, used, best, value, m, add)
            order = np.argsort(-new_value, kind="stable")
            tried += 1
            cand = fill_model_set(a, floor, new_used, order, new_best, new_value, min_cell, tops)
            if cand is not None and int((cand >= 0).sum()) > strength:
                found = (cand, new_used, new_best, new_value)
                strength = int((cand >= 0).sum())
        if found is not None:
            current, used, best, value = found
            gained = True
    return current, tried


def _moved(a, used, best, value, m: int, add: bool):
    """The model set with model m added or removed, and each input's best model and IIA in
    it (only the inputs whose best changes are recomputed)."""
    if add:
        col = np.asarray(a[:, m], dtype=np.float64)
        wins = col > value
        new_best = np.where(wins, m, best)
        return np.sort(np.append(used, m)), new_best, np.where(wins, col, value)
    new_used = used[used != m]
    new_best, new_value = best.copy(), value.copy()
    moved = np.flatnonzero(best == m)
    new_best[moved] = new_used[np.asarray(a[moved][:, new_used]).argmax(axis=1)]
    new_value[moved] = a[moved, new_best[moved]]
    return new_used, new_best, new_value


def cell_floor_starts(
    a: np.ndarray,
    floor: float,
    max_models: int | None,
    min_cell: int,
    deadline: float | None = None,
) -> CellFloorStarts:
    """The starts of this module in one walk of ``shrinking_sets``, then the model-set search
    from the best of them (until ``deadline``)."""
    n, n_models = a.shape
    limit = n_models if max_models is None else max_models
    tops = _TopRows(a, RESERVE_DEPTH * min_cell)
    shrunk: np.ndarray | None = None
    filled: np.ndarray | None = None
    for order, k, best, value, sizes in shrinking_sets(a, floor):
        used = np.flatnonzero(sizes)
        if len(used) > limit:
            continue
        if shrunk is None and sizes[used].min() >= min_cell:
            shrunk = np.full(n, -1, dtype=np.int64)
            shrunk[order[:k]] = best[order[:k]]
        cand = fill_model_set(a, floor, used, order, best, value, min_cell, tops)
        filled = better(a, filled, cand)
    start = better(a, shrunk, filled)
    searched, tried = None, 0
    if start is not None:
        searched, tried = search_model_sets(
            a, floor, max_models, min_cell, start, tops, deadline=deadline
        )
    # the search returns its start unless a set gains inputs: it is the best already
    return CellFloorStarts(shrunk, filled, searched, tried, searched)
