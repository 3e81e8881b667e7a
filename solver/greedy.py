"""The authors' greedy (PAPER.md, "The authors' greedy"), reproduced step for step.

It is the baseline every other method is measured against, so it keeps the authors'
choices (model order by IIA on the remaining inputs, degree ordering, the growing
margin, float arithmetic in the same order) and departs only where their code is
broken: a model whose 2-prefix already misses the floor gets an empty cell instead
of a crash or a stale value.
"""

from __future__ import annotations

import numpy as np

from solver.feasibility import TOL

MARGIN_STEP = 0.01  # the authors' relaxation per pass that appends nothing


def _pair_mean(total: float, k: int) -> float:
    return total / (k * (k - 1) / 2)


def _subset_iia(w: np.ndarray, nodes: np.ndarray) -> float:
    k = len(nodes)
    if k < 2:
        return 0.0
    return _pair_mean(float(w[np.ix_(nodes, nodes)].sum()) / 2.0, k)


def greedy_sequence(w: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The authors' sequence: passes over ``order`` appending every node that keeps the
    running IIA within ``margin`` of its current value, relaxing the margin by 0.01 after
    a pass that appends nothing, until every node is in."""
    seq: list[int] = []
    in_seq = np.zeros(w.shape[0], dtype=bool)
    partner_sum = np.zeros(w.shape[0])  # Σ_{u in seq} w(u, v), kept incrementally
    total = 0.0  # Σ over pairs inside seq
    margin = 0.0
    remaining = len(order)
    while remaining:
        appended = False
        for v in order:
            if in_seq[v]:
                continue
            k = len(seq)
            if k >= 2:
                current = _pair_mean(total, k)
                extended = _pair_mean(total + partner_sum[v], k + 1)
                if not extended >= current - margin:
                    continue
            total += partner_sum[v]
            seq.append(int(v))
            in_seq[v] = True
            partner_sum += w[v]
            remaining -= 1
            appended = True
        if not appended:
            margin += MARGIN_STEP
    return np.asarray(seq, dtype=np.int64)


def prefix_iia(w: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """IIA of every prefix seq[:k], k = 0..len(seq) (NaN where k < 2)."""
    sub = w[np.ix_(seq, seq)]
    # Pairs added when the k-th node joins: its weights to the k-1 nodes before it.
    added = np.tril(sub, k=-1).sum(axis=1)
    totals = np.concatenate([[0.0], np.cumsum(added)])
    k = np.arange(len(seq) + 1)
    pairs = k * (k - 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(k >= 2, totals / np.where(pairs > 0, pairs, 1), np.nan)


def longest_feasible_prefix(iia: np.ndarray, floor: float) -> int:
    """Largest k with IIA(seq[:k']) >= floor for every k' in 2..k; 0 when the 2-prefix fails."""
    k = 1
    while k + 1 < len(iia) and iia[k + 1] >= floor:
        k += 1
    return 0 if k < 2 else k


def greedy_partition(w: np.ndarray, floor: float) -> np.ndarray:
    """The authors' greedy partition at one floor: assignment [n], -1 for the fallback.

    ``w`` is [M, n, n] with a zero diagonal; models are visited in the order the greedy
    picks them (best IIA on the inputs still unexplained first).
    """
    n_models, n = w.shape[0], w.shape[1]
    assignment = np.full(n, -1, dtype=np.int64)
    explained = np.zeros(n, dtype=bool)
    # Unweighted degree over all n inputs: the number of partners with any success.
    degree = (w > 0).sum(axis=2)
    unvisited = list(range(n_models))
    while unvisited and not explained.all():
        rest = np.flatnonzero(~explained)
        scores = [_subset_iia(w[m], rest) for m in unvisited]
        best = unvisited[int(np.argmax(scores))]  # first of equals, as max() picks
        unvisited.remove(best)
        order = rest[np.argsort(-degree[best][rest], kind="stable")]
        seq = greedy_sequence(w[best], order)
        k = longest_feasible_prefix(prefix_iia(w[best], seq), floor)
        cell = seq[:k]
        assignment[cell] = best
        explained[cell] = True
    return assignment


def greedy_per_input(a: np.ndarray, floor: float) -> np.ndarray:
    """The same greedy for the per-input semantics: visit models by mean IIA on the inputs
    still unexplained, and give each the longest run of its best inputs whose mean meets
    the floor (sorted descending, so the running mean only falls)."""
    n, n_models = a.shape
    assignment = np.full(n, -1, dtype=np.int64)
    explained = np.zeros(n, dtype=bool)
    unvisited = list(range(n_models))
    while unvisited and not explained.all():
        rest = np.flatnonzero(~explained)
        best = unvisited[int(np.argmax([a[rest, m].mean() for m in unvisited]))]
        unvisited.remove(best)
        order = rest[np.argsort(-a[rest, best], kind="stable")]
        running = np.cumsum(a[order, best] - floor)
        meets = running >= -TOL * np.arange(1, len(order) + 1)
        k = len(order) if meets.all() else int(np.argmin(meets))
        assignment[order[:k]] = best
        explained[order[:k]] = True
    return assignment
