"""Cells of one model by reverse search: every cell that meets the floor and weighs enough
(``enumerate_cells``, for the reduced-cost proof of solver.pairwise_enumerate), or the
heaviest one (``heaviest_cell``, an exact pricer for solver.pairwise_colgen).

A cell of k + 1 >= 3 inputs that meets the floor still meets it without its input of largest
deficit inside, so every feasible cell has one feasible parent and a depth-first walk from
the feasible pairs reaches each cell once, holding one branch rather than a whole level in
memory. A branch is dropped when even the largest weights it could still add cannot lift it
to the threshold.
"""

from __future__ import annotations

import time

import numpy as np

from solver.pairwise_bounds import deficit_budget

# cells kept in all, per proof; beyond it the room is lowered until they fit. What it bounds
# is memory: each kept cell costs about 0.8 KiB (its inputs as an array in a list, ~0.65 KiB,
# and the packing search's table, ~0.1 KiB), about 2.5 GiB at the cap, 3 GiB in the walk's
# last batch (measured at n = 64; bench/RESULTS.md, section 3)
ENUM_MAX_CELLS = 3_000_000


def heaviest_cell(
    delta_m: np.ndarray,
    floor: float,
    weights: np.ndarray,
    max_size: int,
    deadline: float,
    at_least: float = 0.0,
) -> tuple[float, np.ndarray | None] | None:
    """The exact maximum of Σ weights_v over the cells of at most ``max_size`` inputs that
    meet the floor, by the same reverse search as a branch and bound (the threshold rises
    to each better cell found): (weight, cell), or (``at_least``, None) when no cell reaches
    ``at_least`` — a weight known to be reached, such as a known cell's or the empty cell's
    0, which then is the maximum. None when ``deadline`` passed first (nothing proven)."""
    found = enumerate_cells(
        delta_m, floor, weights, at_least, max_size, deadline, ENUM_MAX_CELLS, best_only=True
    )
    if found is None:
        return None
    if not found:
        return float(at_least), None
    return float(np.asarray(weights, dtype=float)[found[-1]].sum()), found[-1]


def enumerate_cells(
    delta_m: np.ndarray,
    floor: float,
    weights: np.ndarray,
    threshold: float,
    max_size: int,
    deadline: float,
    max_cells: int = ENUM_MAX_CELLS,
    best_only: bool = False,
) -> list[np.ndarray] | None:
    """Every cell of at least two and at most ``max_size`` inputs whose deficit fits the
    floor's budget (the verifier's tolerance) and whose weight Σ weights_v is at least
    ``threshold``; None when more than ``max_cells`` were found or ``deadline`` passed first.

    A reverse search: a cell's parent is the cell without its input of largest deficit
    inside (ties: the largest index), which meets the floor when the cell does, so a
    depth-first walk that keeps only the children whose parent it is reaches every cell
    once, holding one branch in memory rather than a whole level. Every deficit it compares
    is summed afresh from the cell's sorted inputs, so a cell's parent does not depend on
    the path that reached it.

    With ``best_only`` it keeps only cells heavier than every one kept before (the last is
    the heaviest) and raises the threshold with each, so that branches which cannot beat
    the best are dropped: a branch and bound (``heaviest_cell``)."""
    walk = _walk(delta_m, floor, weights, threshold, max_size, deadline, max_cells, best_only)
    return None if walk is None else walk[0]


def heaviest_cells(
    delta_m: np.ndarray,
    floor: float,
    weights: np.ndarray,
    threshold: float,
    max_size: int,
    deadline: float,
    max_cells: int = ENUM_MAX_CELLS,
) -> tuple[list[np.ndarray], float] | None:
    """The cells of ``enumerate_cells`` (same arguments), but where more than ``max_cells``
    reach ``threshold``, the threshold is raised until at most ``max_cells`` do: (every
    feasible cell of weight >= the returned threshold, that threshold), or None when the
    deadline passed first."""
    return _walk(delta_m, floor, weights, threshold, max_size, deadline, max_cells, False, True)


def _walk(
    delta_m: np.ndarray,
    floor: float,
    weights: np.ndarray,
    threshold: float,
    max_size: int,
    deadline: float,
    max_cells: int,
    best_only: bool,
    raise_threshold: bool = False,
) -> tuple[list[np.ndarray], float] | None:
    """The reverse search of ``enumerate_cells``: (the cells found, the final threshold), or
    None at the deadline. Past ``max_cells`` cells it returns None too, or with
    ``raise_threshold`` keeps the heaviest ``max_cells`` and raises the threshold above the
    rest."""
    n = len(weights)
    weights = np.asarray(weights, dtype=float)
    pos = np.maximum(weights, 0.0)
    slack = 1e-9  # keep every cell the verifier accepts: the set may only grow
    budget = deficit_budget(np.arange(max(max_size, 2) + 2), floor) + slack
    widest = float(budget[max(max_size, 2)])
    ii, jj = np.triu_indices(n, 1)
    ok = delta_m[ii, jj] <= budget[2]
    ii, jj = ii[ok], jj[ok]
    # heaviest last, popped first: a branch and bound meets good cells early
    order = np.argsort(weights[ii] + weights[jj], kind="stable")
    stack = [np.array([i, j], dtype=np.int64) for i, j in zip(ii[order], jj[order])]
    found: list[np.ndarray] = []
    mass: list[float] = []  # the weight of each cell found
    grown = 0
    while stack:
        cell = stack.pop()
        grown += 1
        if grown % 1024 == 0 and time.perf_counter() > deadline:
            return None
        if len(found) > max_cells:
            if not raise_threshold:
                return None
            if len(found) > max_cells + max_cells // 4:  # cut in batches, not per cell
                found, mass, threshold = _keep_heaviest(found, mass, max_cells)
        k = len(cell)
        inside = delta_m[np.ix_(cell, cell)].sum(axis=1)
        deficit = 0.5 * float(inside.sum())
        to = delta_m[cell].sum(axis=0)
        to[cell] = np.inf
        # an input whose deficit to the cell already overflows the largest budget is in
        # no superset (deficits are >= 0)
        addable = deficit + to <= widest + 1e-7
        weight = float(weights[cell].sum())
        room = max_size - k
        if room > 0:
            extra = np.sort(pos[addable])
            reach = float(extra[max(len(extra) - room, 0) :].sum())
        else:
            reach = 0.0
        if weight + reach < threshold - 1e-9:
            continue  # no superset reaches the threshold either
        if weight >= threshold - 1e-9:
            found.append(cell)
            mass.append(weight)
            if best_only:
                threshold = weight + 1e-7  # from here on, only heavier cells count
        if room == 0:
            continue
        grow = np.nonzero(deficit + to <= budget[k + 1] + 1e-7)[0]
        if len(grow) == 0:
            continue
        # each child sorted, its deficits summed afresh; kept where it fits the budget and
        # the new input is the one its parent rule removes
        kids = np.sort(
            np.concatenate([np.repeat(cell[None, :], len(grow), 0), grow[:, None]], 1), 1
        )
        rows = delta_m[kids[:, :, None], kids[:, None, :]].sum(axis=2)
        fits = 0.5 * rows.sum(axis=1) <= budget[k + 1]
        last = k - np.argmax(rows[:, ::-1], axis=1)  # largest deficit, the largest index on ties
        mine = kids[np.arange(len(grow)), last] == grow
        keep = fits & mine
        # the heaviest addition last, popped first
        for child in kids[keep][np.argsort(weights[grow[keep]], kind="stable")]:
            stack.append(child)
    if len(found) > max_cells:
        if not raise_threshold:
            return None
        found, mass, threshold = _keep_heaviest(found, mass, max_cells)
    return found, threshold


def _keep_heaviest(
    found: list[np.ndarray], mass: list[float], max_cells: int
) -> tuple[list[np.ndarray], list[float], float]:
    """At most ``max_cells`` of the heaviest cells, their weights, and a threshold just above
    the heaviest one dropped: the cells kept are exactly those that meet it (a walk that goes
    on with it only prunes more than before, so it still meets every cell that does)."""
    threshold = float(np.sort(mass)[::-1][max_cells]) + 1e-7
    keep = [j for j, x in enumerate(mass) if x >= threshold - 1e-9]
    return [found[j] for j in keep], [mass[j] for j in keep], threshold
