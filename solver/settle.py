"""Settle a pairwise partition: among partitions of the same strength, put each input in the
cell it fits best.

A strongest partition at a floor is rarely unique. Under pairwise semantics a cell may hold
inputs that fit another cell better, because its floor leaves slack (a cell at IIA 0.97 can
absorb a few inputs whose pairs with it fail). The solver maximises strength and is indifferent
between them; a reader is not: an input assigned to a candidate it fits worse than another is a
wrong explanation. Settling moves one input at a time from its cell to another candidate's cell
where its mean weight to the members is higher, only while both cells still meet the floor
(per-model scope). Strength never changes, every cell stays feasible, and each move raises the
moved input's fit, so the process ends (the sum of the inputs' fit to their own cells rises at
every move and the partitions are finite)."""

from __future__ import annotations

import numpy as np

# Moves that raise an input's mean weight by less than this are not worth the change.
MIN_GAIN = 1e-9


def settle(
    weights: np.ndarray, assignment: np.ndarray, floor: float, max_moves: int | None = None
) -> tuple[np.ndarray, int]:
    """The settled assignment and the number of moves. ``weights``: [M, n, n] symmetric
    pairwise weights; ``assignment``: each input's cell (index into the M models) or -1 for
    the fallback, feasible at ``floor`` under per-model scope. Inputs of the fallback stay
    there; a cell never drops below 2 members."""
    w = np.asarray(weights, dtype=np.float64)
    a = np.asarray(assignment, dtype=np.int64).copy()
    n_models, n = w.shape[0], w.shape[1]
    members = [a == m for m in range(n_models)]
    size = np.array([int(x.sum()) for x in members], dtype=np.int64)
    # fit[m, i]: sum of w_m(i, j) over the members j of cell m (j != i).
    fit = np.stack([w[m] @ members[m] - np.diag(w[m]) * members[m] for m in range(n_models)])
    total = np.array([fit[m][members[m]].sum() / 2 for m in range(n_models)])
    moves = 0
    limit = max_moves if max_moves is not None else 10 * n
    while moves < limit:
        best = None
        assigned = np.flatnonzero(a >= 0)
        for i in assigned:
            src = a[i]
            if size[src] <= 2:
                continue
            own = fit[src, i] / (size[src] - 1)
            src_pairs = (size[src] - 1) * (size[src] - 2) / 2
            src_iia = (total[src] - fit[src, i]) / src_pairs
            if src_iia < floor - 1e-12:
                continue
            for dst in range(n_models):
                if dst == src or size[dst] == 0:
                    continue
                gain = fit[dst, i] / size[dst] - own
                if gain <= MIN_GAIN or (best is not None and gain <= best[0]):
                    continue
                dst_pairs = (size[dst] + 1) * size[dst] / 2
                if (total[dst] + fit[dst, i]) / dst_pairs < floor - 1e-12:
                    continue
                best = (gain, i, src, dst)
        if best is None:
            break
        _, i, src, dst = best
        total[src] -= fit[src, i]
        total[dst] += fit[dst, i]
        fit[src] -= w[src, :, i]
        fit[dst] += w[dst, :, i]
        fit[src, i] += w[src, i, i]  # i's own entry never counts
        fit[dst, i] -= w[dst, i, i]
        size[src] -= 1
        size[dst] += 1
        a[i] = dst
        moves += 1
    return a, moves
