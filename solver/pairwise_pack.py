"""The packing step of the reduced-cost proof, as a depth-first search over inputs.

With multipliers π >= 0 on the inputs and σ_m >= 0 on the models (a feasible dual of the
set-packing LP over every cell, D = Σπ + Σσ), every partition x satisfies

    strength(x) = D − cost(x),  cost(x) = Σ_j rc_j + π(uncovered inputs) + σ(unused models),

with rc_j = π(S_j) + σ_{m_j} − |S_j| >= 0. A partition of strength >= t has cost <= D − t, and
every part of that cost is non-negative, so the search below branches on the input with
positive π that the fewest remaining cells cover (each cell that covers it, then "left
uncovered", which pays π_v) and drops a branch once its cost so far, plus a lower bound on what
its open inputs and free models must still pay, exceeds D − t. That bound is the Lagrangian
of the remaining packing LP (cells priced by their reduced costs, the open inputs' rows
relaxed by multipliers α, valid for any α), raised by a few subgradient steps from the
parent's α; at the best α, a cell whose forcing would lift the bound past D − t is dropped
from the branch (reduced-cost fixing), and so is the "left uncovered" branch of an input
whose leaving would. Cells are bit masks, so the disjointness of every
remaining cell with a choice is one vectorised AND. Where the set-packing MILP stalls on a
large room (bench/RESULTS.md, section 3), this search only ever looks at cells that fit the
room left, which shrinks with every choice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

EPS = 1e-9
LAGRANGE_STEPS = 20  # subgradient steps per branch, at most


class _OutOfTime(Exception):
    pass


@dataclass
class PackingSearch:
    """``assignment``: the strongest partition found of strength >= the target, or None;
    ``finished``: the search ran to its end (None then proves no such partition exists among
    the cells given); ``nodes``: branches visited."""

    assignment: np.ndarray | None
    finished: bool
    nodes: int
    seconds: float


def cell_masks(cells: list[np.ndarray], n: int) -> np.ndarray:
    """Cells as rows of 64-bit words, input v at bit v % 64 of word v // 64."""
    words = (n + 63) // 64
    masks = np.zeros((len(cells), words), dtype=np.uint64)
    for j, cell in enumerate(cells):
        cell = np.asarray(cell, dtype=np.int64)
        np.bitwise_or.at(
            masks[j], cell // 64, np.left_shift(np.uint64(1), (cell % 64).astype(np.uint64))
        )
    return masks


def _members(masks: np.ndarray, n: int) -> np.ndarray:
    """[cells, n] booleans from the masks."""
    bits = np.unpackbits(masks.view(np.uint8), axis=1, bitorder="little")
    return bits[:, :n].astype(bool)


def pack_by_search(
    cells: list[tuple[int, np.ndarray]],
    pi: np.ndarray,
    sigma: np.ndarray,
    target: int,
    deadline: float,
    lagrange_steps: int = LAGRANGE_STEPS,
) -> PackingSearch:
    """The strongest packing (each input and each model at most once) of ``cells`` (model,
    inputs) among those of strength >= ``target``, under the multipliers ``pi``, ``sigma``
    (π >= 0, σ >= 0, and σ_m >= Σ_{v∈S} (1 − π_v) for every cell S of model m, so that each
    reduced cost is >= 0). ``lagrange_steps``: subgradient steps of the bound at each branch
    (0: the parent's multipliers only)."""
    t0 = time.perf_counter()
    pi = np.maximum(np.asarray(pi, dtype=float), 0.0)
    sigma = np.maximum(np.asarray(sigma, dtype=float), 0.0)
    n, M = len(pi), len(sigma)
    dual = float(pi.sum() + sigma.sum())
    model = np.array([m for m, _ in cells], dtype=np.int64)
    inputs = [np.asarray(c, dtype=np.int64) for _, c in cells]
    masks = cell_masks(inputs, n)
    member = _members(masks, n) if cells else np.zeros((0, n), dtype=bool)
    rc = np.array([pi[c].sum() + sigma[m] - len(c) for m, c in zip(model, inputs)], dtype=float)
    rc = np.maximum(rc, 0.0)
    size = member.sum(axis=1)
    # cheapest first: the first leaves reached are the strongest partitions
    order = np.argsort(rc, kind="stable")
    model, masks, member, rc, size = (
        model[order],
        masks[order],
        member[order],
        rc[order],
        size[order],
    )
    inputs = [inputs[j] for j in order]
    priced = pi > EPS
    state = {"budget": dual - target, "best": None, "nodes": 0}

    def compatible(
        cand: np.ndarray, chosen: int | None, dropped: int | None, room: float
    ) -> np.ndarray:
        keep = rc[cand] <= room + EPS
        if chosen is not None:
            keep &= ~np.any(masks[cand] & masks[chosen], axis=1)
            keep &= model[cand] != model[chosen]
        if dropped is not None:
            keep &= ~member[cand, dropped]
        return cand[keep]

    def leaf(chosen: list[int]) -> None:
        strength = int(size[chosen].sum()) if chosen else 0
        if strength >= dual - state["budget"] - 1e-6:
            a = -np.ones(n, dtype=np.int64)
            for j in chosen:
                a[inputs[j]] = model[j]
            state["best"] = a
            state["budget"] = dual - (strength + 1)

    def lower_bound(
        cand: np.ndarray, open_: np.ndarray, free: np.ndarray, room: float, alpha: np.ndarray
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """What the open inputs and free models must still pay, at least: the Lagrangian of
        the remaining packing LP with its input rows relaxed by multipliers α (valid for any
        α), raised by a few subgradient steps from the parent's α, stopping once it exceeds
        ``room`` (the branch is then dropped). Returns (bound, α for the children, what forcing
        each cell of ``cand`` adds to the bound, what leaving each input uncovered adds)."""
        rows = np.nonzero(open_)[0]
        if not len(cand):
            return float(sigma[free].sum()), alpha, np.zeros(0), np.full(n, np.inf)
        a = alpha[rows].copy()
        hits = member[cand][:, rows].astype(np.float64)
        groups = [(int(m), np.nonzero(model[cand] == m)[0]) for m in np.nonzero(free)[0]]
        best, best_a, theta, stalled = -np.inf, a, 1.0, 0
        for step in range(lagrange_steps + 1):  # the parent's α, then each step's
            priced_rc = rc[cand] - hits @ a
            value = float(a.sum() + np.minimum(0.0, pi[rows] - a).sum())
            g = 1.0 - (pi[rows] < a)  # an input left uncovered where π_v < α_v
            for m, where in groups:
                if not len(where):
                    value += float(sigma[m])
                    continue
                j = where[np.argmin(priced_rc[where])]
                if priced_rc[j] < sigma[m]:
                    value += float(priced_rc[j])
                    g -= hits[j]
                else:
                    value += float(sigma[m])
            if value > best + 1e-9:
                best, best_a, stalled = value, a, 0
            else:
                stalled += 1
                if stalled >= 2:
                    theta, stalled = theta / 2.0, 0
            norm = float(g @ g)
            if best > room + EPS or norm == 0.0 or step == lagrange_steps:
                break
            a = a + theta * (room + 0.1 - value) / norm * g
        out = alpha.copy()
        out[rows] = best_a
        # what forcing one cell, or leaving one input uncovered, adds to the bound at the
        # best α: the Lagrangian of that restriction (reduced-cost fixing)
        priced_rc = rc[cand] - hits @ best_a
        term = np.asarray(sigma, dtype=float).copy()
        for m, where in groups:
            if len(where):
                term[m] = min(term[m], float(priced_rc[where].min()))
        forcing = priced_rc - term[model[cand]]
        leaving = np.full(n, np.inf)
        leaving[rows] = np.maximum(0.0, pi[rows] - best_a)
        return best, out, forcing, leaving

    def visit(
        cand: np.ndarray,
        open_: np.ndarray,
        free: np.ndarray,
        cost: float,
        chosen: list[int],
        strength: int,
        alpha: np.ndarray,
    ):
        state["nodes"] += 1
        if state["nodes"] % 256 == 1 and time.perf_counter() > deadline:
            raise _OutOfTime
        coverable = member[cand].any(axis=0) if len(cand) else np.zeros(n, dtype=bool)
        forced = open_ & ~coverable  # no remaining cell covers them: they pay π
        cost += float(pi[forced].sum())
        open_ = open_ & coverable
        if cost > state["budget"] + EPS:
            return
        # the strength the free models can still add: each one cell at most, of the
        # inputs that remaining cells cover
        if len(cand):
            largest = np.zeros(M, dtype=np.int64)
            np.maximum.at(largest, model[cand], size[cand])
            reach = min(int(largest[free].sum()), int(coverable.sum()))
        else:
            reach = 0
        if strength + reach < dual - state["budget"] - 1e-6:
            return
        must, alpha, forcing, leaving = lower_bound(
            cand, open_, free, state["budget"] - cost, alpha
        )
        if cost + must > state["budget"] + EPS:
            return
        # a cell whose forcing lifts the bound past the budget is in no completion
        cand = cand[cost + must + forcing <= state["budget"] + EPS]
        if open_.any():
            counts = member[cand][:, open_].sum(axis=0)
            where = np.nonzero(open_)[0]
            v = int(where[np.lexsort((-pi[where], counts))[0]])
            covering = cand[member[cand, v]]
            for j in covering:
                if not take(int(j), cand, open_, free, cost, chosen, strength, alpha):
                    break  # sorted by rc: none further fits
            if max(cost + pi[v], cost + must + leaving[v]) <= state["budget"] + EPS:
                nxt = compatible(cand, None, v, state["budget"] - cost - pi[v])
                left = open_.copy()
                left[v] = False
                visit(nxt, left, free, cost + float(pi[v]), chosen, strength, alpha)
            return
        # every priced input is decided: free models take cells of unpriced inputs, or none
        users = [m for m in np.nonzero(free)[0] if np.any(model[cand] == m)]
        if not users:
            leaf(chosen)  # the cost bound above already counted σ of the free models
            return
        m = users[0]
        for j in cand[model[cand] == m]:
            if not take(int(j), cand, open_, free, cost, chosen, strength, alpha):
                break
        still = free.copy()
        still[m] = False
        visit(cand[model[cand] != m], open_, still, cost + float(sigma[m]), chosen, strength, alpha)

    def take(j, cand, open_, free, cost, chosen, strength, alpha) -> bool:
        """Visit the branch that takes cell j; False when its reduced cost does not fit."""
        if cost + rc[j] > state["budget"] + EPS:
            return False
        nxt = compatible(cand, j, None, state["budget"] - cost - rc[j])
        still = free.copy()
        still[model[j]] = False
        left = open_ & ~member[j]
        visit(nxt, left, still, cost + rc[j], chosen + [j], strength + int(size[j]), alpha)
        return True

    finished = True
    try:
        free = np.ones(M, dtype=bool)
        visit(np.arange(len(cells)), priced.copy(), free, 0.0, [], 0, np.zeros(n))
    except _OutOfTime:
        finished = False
    return PackingSearch(state["best"], finished, state["nodes"], time.perf_counter() - t0)
