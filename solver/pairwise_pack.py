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
whose leaving would. Each branch's work over its candidate cells (disjointness with a
choice, by bit masks; coverage; the subgradient steps, over each cell's inputs as a short row
of narrow indices) runs compiled (numba), and the cells are prepared once for every target of
a proof (``prepare_cells``). Where the set-packing MILP stalls on a
large room (bench/RESULTS.md, section 3), this search only ever looks at cells that fit the
room left, which shrinks with every choice.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from numba import njit

from solver.pairwise_cells import CellRows

EPS = 1e-9
LAGRANGE_STEPS = 20  # subgradient steps per branch, at most


class _OutOfTime(Exception):
    pass


class _Reached(Exception):
    """A packing met ``enough``: nothing stronger is wanted."""


@dataclass
class PackingSearch:
    """``assignment``: the strongest partition found of strength >= the target, or None;
    ``finished``: the search ran to its end (None then proves no such partition exists among
    the cells given); ``nodes``: branches visited."""

    assignment: np.ndarray | None
    finished: bool
    nodes: int
    seconds: float


def cell_masks(cells: list[np.ndarray] | CellRows, n: int) -> np.ndarray:
    """Cells as rows of 64-bit words, input v at bit v % 64 of word v // 64."""
    if not isinstance(cells, CellRows):
        cells = CellRows.from_list([(0, c) for c in cells])
    masks = np.zeros((len(cells), max(1, (n + 63) // 64)), dtype=np.uint64)
    j, at = np.nonzero(np.arange(cells.rows.shape[1])[None, :] < cells.length[:, None])
    v = cells.rows[j, at].astype(np.int64)
    np.bitwise_or.at(masks, (j, v // 64), np.left_shift(np.uint64(1), (v % 64).astype(np.uint64)))
    return masks


@dataclass
class CellTable:
    """The cells of a packing search, prepared once for every target: sorted by reduced
    cost (cheapest first), as rows of inputs and as bit masks."""

    cells: CellRows
    masks: np.ndarray  # [C, words] uint64
    rc: np.ndarray  # [C] reduced cost π(S) + σ_m − |S|, clipped at 0
    pi: np.ndarray
    sigma: np.ndarray


def prepare_cells(
    cells: list[tuple[int, np.ndarray]] | CellRows, pi: np.ndarray, sigma: np.ndarray
) -> CellTable:
    """``cells`` (model, inputs) under multipliers ``pi``, ``sigma`` (clipped at 0), for
    ``pack_by_search``."""
    pi = np.maximum(np.asarray(pi, dtype=float), 0.0)
    sigma = np.maximum(np.asarray(sigma, dtype=float), 0.0)
    if not isinstance(cells, CellRows):
        cells = CellRows.from_list(cells)
    rc = np.maximum(cells.sums(pi) + sigma[cells.model] - cells.length, 0.0)
    # cheapest first: the first leaves reached are the strongest partitions
    order = np.argsort(rc, kind="stable")
    cells = cells.take(order)
    return CellTable(cells, cell_masks(cells, len(pi)), rc[order], pi, sigma)


def pack_by_search(
    cells: list[tuple[int, np.ndarray]] | CellTable,
    pi: np.ndarray,
    sigma: np.ndarray,
    target: int,
    deadline: float,
    lagrange_steps: int = LAGRANGE_STEPS,
    enough: int | None = None,
) -> PackingSearch:
    """The strongest packing (each input and each model at most once) of ``cells`` (model,
    inputs) among those of strength >= ``target``, under the multipliers ``pi``, ``sigma``
    (π >= 0, σ >= 0, and σ_m >= Σ_{v∈S} (1 − π_v) for every cell S of model m, so that each
    reduced cost is >= 0). ``cells`` may come prepared (``prepare_cells`` with the same
    multipliers), which saves that work where several targets share them.
    ``lagrange_steps``: subgradient steps of the bound at each branch (0: the parent's
    multipliers only). ``enough``: a strength known to be the most any packing reaches (a
    proven bound); the search stops at the first packing that meets it."""
    t0 = time.perf_counter()
    table = cells if isinstance(cells, CellTable) else prepare_cells(cells, pi, sigma)
    pi, sigma = table.pi, table.sigma
    n, M = len(pi), len(sigma)
    dual = float(pi.sum() + sigma.sum())
    masks, rc = table.masks, table.rc
    model, cell_idx, cell_len = table.cells.model, table.cells.rows, table.cells.length
    priced = pi > EPS
    state = {"budget": dual - target, "best": None, "nodes": 0}

    def compatible(
        cand: np.ndarray, chosen: int | None, dropped: int | None, room: float
    ) -> np.ndarray:
        return _compatible(
            cand,
            masks,
            model,
            rc,
            room,
            -1 if chosen is None else chosen,
            -1 if dropped is None else dropped,
        )

    def leaf(chosen: list[int]) -> None:
        strength = int(cell_len[chosen].sum()) if chosen else 0
        if strength >= dual - state["budget"] - 1e-6:
            a = -np.ones(n, dtype=np.int64)
            for j in chosen:
                a[table.cells.cell(j)] = model[j]
            state["best"] = a
            state["budget"] = dual - (strength + 1)
            if enough is not None and strength >= enough:
                raise _Reached

    def lower_bound(
        cand: np.ndarray, open_: np.ndarray, free: np.ndarray, room: float, alpha: np.ndarray
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """What the open inputs and free models must still pay, at least: the Lagrangian of
        the remaining packing LP with its input rows relaxed by multipliers α (valid for any
        α), raised by a few subgradient steps from the parent's α, stopping once it exceeds
        ``room`` (the branch is then dropped). Returns (bound, α for the children, what forcing
        each cell of ``cand`` adds to the bound, what leaving each input uncovered adds)."""
        if not len(cand):
            return float(sigma[free].sum()), alpha, np.zeros(0), np.full(n, np.inf)
        return _lagrangian(
            cand,
            cell_idx,
            cell_len,
            model,
            rc,
            pi,
            sigma,
            open_,
            free,
            room,
            alpha,
            lagrange_steps,
        )

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
        counts, largest = _coverage(cand, cell_idx, cell_len, model, n, M)
        coverable = counts > 0
        forced = open_ & ~coverable  # no remaining cell covers them: they pay π
        cost += float(pi[forced].sum())
        open_ = open_ & coverable
        if cost > state["budget"] + EPS:
            return
        # the strength the free models can still add: each one cell at most, of the
        # inputs that remaining cells cover
        reach = min(int(largest[free].sum()), int(coverable.sum())) if len(cand) else 0
        if strength + reach < dual - state["budget"] - 1e-6:
            return
        must, alpha, forcing, leaving = lower_bound(
            cand, open_, free, state["budget"] - cost, alpha
        )
        if cost + must > state["budget"] + EPS:
            return
        # a cell whose forcing lifts the bound past the budget is in no completion
        fits = cost + must + forcing <= state["budget"] + EPS
        if not fits.all():
            cand = cand[fits]
            counts, _ = _coverage(cand, cell_idx, cell_len, model, n, M)
        if open_.any():
            where = np.nonzero(open_)[0]
            v = int(where[np.lexsort((-pi[where], counts[where]))[0]])
            bit = (masks[cand, v >> 6] >> np.uint64(v & 63)) & np.uint64(1)
            covering = cand[bit.astype(bool)]
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
        left = open_.copy()
        left[cell_idx[j, : cell_len[j]]] = False
        visit(nxt, left, still, cost + rc[j], chosen + [j], strength + int(cell_len[j]), alpha)
        return True

    finished = True
    try:
        free = np.ones(M, dtype=bool)
        # only the cells whose own reduced cost fits the target's room
        root = np.nonzero(rc <= state["budget"] + EPS)[0].astype(np.int64)
        visit(root, priced.copy(), free, 0.0, [], 0, np.zeros(n))
    except _OutOfTime:
        finished = False
    except _Reached:
        pass  # the strongest wanted: as good as a search run to its end
    return PackingSearch(state["best"], finished, state["nodes"], time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------
# Kernels (numba): the work of one branch over its candidate cells, without the [cells, n]
# temporaries that the vectorised form allocated at every branch
# ---------------------------------------------------------------------------------------


@njit(cache=True)
def _compatible(cand, masks, model, rc, room, chosen, dropped):
    """The cells of ``cand`` whose reduced cost fits ``room``, disjoint from cell ``chosen``
    and of another model (chosen >= 0), and without input ``dropped`` (dropped >= 0)."""
    out = np.empty(len(cand), dtype=np.int64)
    k = 0
    for c in cand:
        if rc[c] > room + EPS:
            continue
        if chosen >= 0:
            if model[c] == model[chosen]:
                continue
            clash = False
            for wd in range(masks.shape[1]):
                if masks[c, wd] & masks[chosen, wd]:
                    clash = True
                    break
            if clash:
                continue
        if dropped >= 0 and (masks[c, dropped >> 6] >> np.uint64(dropped & 63)) & np.uint64(1):
            continue
        out[k] = c
        k += 1
    return out[:k]


@njit(cache=True)
def _coverage(cand, cell_idx, cell_len, model, n, n_models):
    """How many cells of ``cand`` cover each input, and each model's largest cell there."""
    counts = np.zeros(n, dtype=np.int64)
    largest = np.zeros(n_models, dtype=np.int64)
    for c in cand:
        for t in range(cell_len[c]):
            counts[cell_idx[c, t]] += 1
        if cell_len[c] > largest[model[c]]:
            largest[model[c]] = cell_len[c]
    return counts, largest


@njit(cache=True)
def _priced(cand, cell_idx, cell_len, rc, a, out):
    """out[c] = rc of cand[c] minus α over its inputs (α is 0 outside the open inputs)."""
    for c in range(len(cand)):
        j = cand[c]
        s = rc[j]
        for t in range(cell_len[j]):
            s -= a[cell_idx[j, t]]
        out[c] = s


@njit(cache=True)
def _lagrangian(cand, cell_idx, cell_len, model, rc, pi, sigma, open_, free, room, alpha, steps):
    """The bound of ``lower_bound`` (see there): (bound, α for the children, forcing per
    cell of ``cand``, leaving per input)."""
    n = len(pi)
    n_models = len(sigma)
    rows = np.nonzero(open_)[0]
    a = np.zeros(n)
    for v in rows:
        a[v] = alpha[v]
    best = -np.inf
    best_a = a.copy()
    theta = 1.0
    stalled = 0
    prc = np.empty(len(cand))
    g = np.zeros(n)
    pick = np.empty(n_models, dtype=np.int64)
    low = np.empty(n_models)
    for step in range(steps + 1):  # the parent's α, then each step's
        _priced(cand, cell_idx, cell_len, rc, a, prc)
        value = 0.0
        for v in rows:
            value += a[v] + min(0.0, pi[v] - a[v])
            g[v] = 0.0 if pi[v] < a[v] else 1.0  # an input left uncovered where π_v < α_v
        pick[:] = -1
        low[:] = np.inf
        for c in range(len(cand)):
            m = model[cand[c]]
            if prc[c] < low[m]:
                low[m] = prc[c]
                pick[m] = c
        for m in range(n_models):
            if not free[m]:
                continue
            if pick[m] >= 0 and low[m] < sigma[m]:
                value += low[m]
                j = cand[pick[m]]
                for t in range(cell_len[j]):
                    v = cell_idx[j, t]
                    if open_[v]:
                        g[v] -= 1.0
            else:
                value += sigma[m]
        if value > best + 1e-9:
            best = value
            best_a[:] = a
            stalled = 0
        else:
            stalled += 1
            if stalled >= 2:
                theta /= 2.0
                stalled = 0
        norm = 0.0
        for v in rows:
            norm += g[v] * g[v]
        if best > room + EPS or norm == 0.0 or step == steps:
            break
        scale = theta * (room + 0.1 - value) / norm
        for v in rows:
            a[v] += scale * g[v]
    out = alpha.copy()
    for v in rows:
        out[v] = best_a[v]
    # what forcing one cell, or leaving one input uncovered, adds to the bound at the best α
    _priced(cand, cell_idx, cell_len, rc, best_a, prc)
    term = sigma.copy()
    for c in range(len(cand)):
        m = model[cand[c]]
        if free[m] and prc[c] < term[m]:
            term[m] = prc[c]
    forcing = np.empty(len(cand))
    for c in range(len(cand)):
        forcing[c] = prc[c] - term[model[cand[c]]]
    leaving = np.full(n, np.inf)
    for v in rows:
        leaving[v] = max(0.0, pi[v] - best_a[v])
    return best, out, forcing, leaving
