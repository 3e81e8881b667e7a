"""A bound for per-input partitions under ``max_models`` that prices the inputs, not only
the floors (per-model scope).

Relax "each input in at most one cell" with a price π_i in [0, 1] on every input. For any
partition with at most K non-empty cells S_m,

    strength = Σ_i Σ_m x_im <= Σ_i π_i + Σ_m Σ_{i∈S_m} (1 − π_i)
             <= Σ_i π_i + (the K largest of v_m(π)),

where v_m(π) >= 0 is the most that one feasible cell of model m can be worth at those
prices. A cell is feasible when its terms t_i = a_im − λ + tol sum to >= 0 (the verifier's
tolerance), so v_m(π) is at most the fractional knapsack: every input of t_i >= 0 (it adds
surplus and has a value >= 0), then the others by value per unit of deficit, (1 − π_i) / −t_i,
until the surplus is spent, the last one in part. The lone-cell bound (``conflict_bound``)
is the case of prices 0 or 1 with the knapsack solved whole. Prices are set by Polyak
subgradient steps, which approach the LP with the model choice (at most K cells) inside but
can stall above it; ``model_set_bound`` then branches on the model set, and settles a set
of exactly K models by the floors' Lagrangian on those models alone (a bundle method over K
multipliers, which does converge).

Only the inputs that rank high in some model ever carry a price: each model's inputs are
ranked once by a_im, and its knapsack looks at its top rows only, which holds the exact
fractional answer as long as its last row's ratio 1 / −t is no more than the ratio where the
knapsack stops (no row below it could have been taken first); a model where that fails is
computed again with more rows.

Under the global floor (``global_priced_bound``) the cells share one pooled floor, so the
floor's Lagrangian comes first: with its multiplier μ each input is worth
c_im = max(0, 1 + μ(a_im − λ + tol)) in model m, and the prices split those worths among
the K models counted the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from solver.certificate import floor_bound
from solver.feasibility import TOL
from solver.per_input_bounds import (
    BLOCK_ROWS,
    best_prefix,
    lagrangian_dual,
    tie_break_eps,
)

# Subgradient steps at most (fewer when the bound stops improving, meets the incumbent, or
# the deadline passes): on 200,000 × 64 the bound settles within about 30.
PRICED_MAX_STEPS = 60
# rows each model's knapsack starts with, beyond those above the floor, as a multiple of
# the rows it took at prices 0 (grown where the check above fails)
_EXTRA_ROWS = 3
# Polyak steps: θ halves after this many steps without a better bound
_PATIENCE = 4
# slack added to the bound for float rounding in the knapsack sums
_ROUNDING = 1e-9


@dataclass
class PricedBound:
    """``bound``: a proven upper bound on the strength; ``models``: the K models whose
    knapsacks count at the best prices (a model set worth trying for a partition);
    ``price``: those prices; ``steps``: subgradient steps taken; ``stop``: why it stopped."""

    bound: float
    models: np.ndarray
    price: np.ndarray
    steps: int
    stop: str


@dataclass
class ModelSetBound:
    """The priced bound branched on which models hold a cell. ``bound``: proven (the
    largest over the model sets left open and the sets settled one by one); ``root``: the
    priced bound before branching; ``nodes``: bounds computed; ``closed``: every branch
    settled (else the deadline or the node budget stopped it, and ``bound`` counts the open
    ones at their own bounds); ``sets``: the model sets settled whole whose bound stayed
    above the partition known (worth a partition of their own), best first."""

    bound: float
    root: float
    nodes: int
    closed: bool
    sets: list[np.ndarray]


class _Knapsacks:
    """Each model's top rows and terms, ranked once."""

    def __init__(self, a: np.ndarray, floor: float, cols: np.ndarray) -> None:
        self.a, self.floor, self.cols = a, floor, np.asarray(cols)
        self.rows: list[np.ndarray] = []
        self.terms: list[np.ndarray] = []
        for m in self.cols.tolist():
            t = np.asarray(a[:, m], dtype=np.float64) - (floor - TOL)
            self.rows.append(self._top(t, _first_size(t)))
            self.terms.append(t[self.rows[-1]])

    @staticmethod
    def _top(t: np.ndarray, size: int) -> np.ndarray:
        if size >= len(t):
            return np.argsort(-t, kind="stable")
        part = np.argpartition(-t, size - 1)[:size]
        return part[np.argsort(-t[part], kind="stable")]

    def value(self, j: int, price: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """v_m(π) for the j-th model of ``cols``: (value, its rows, their fractions)."""
        while True:
            rows, t = self.rows[j], self.terms[j]
            worth = 1.0 - price[rows]
            pos = t >= 0
            surplus = float(t[pos].sum())
            neg = np.flatnonzero(~pos & (worth > 0))
            ratio = worth[neg] / -t[neg]
            order = neg[np.argsort(-ratio, kind="stable")]
            spent = np.cumsum(-t[order])
            k = int(np.searchsorted(spent, surplus, side="right"))
            frac = pos.astype(np.float64)
            frac[order[:k]] = 1.0
            value = float(worth[pos].sum() + worth[order[:k]].sum())
            stop_ratio = 0.0
            if k < len(order):
                part = (surplus - (float(spent[k - 1]) if k else 0.0)) / -t[order[k]]
                frac[order[k]] = part
                value += part * float(worth[order[k]])
                stop_ratio = float(worth[order[k]] / -t[order[k]])
            full = len(rows) == len(self.a)
            # rows below the last one ranked have ratio at most 1 / −t_last: none of them
            # could have come before the stop
            if full or (k < len(order) and t[-1] < 0 and stop_ratio >= 1.0 / -t[-1]):
                return value, rows, frac
            column = np.asarray(self.a[:, self.cols[j]], dtype=np.float64) - (self.floor - TOL)
            self.rows[j] = self._top(column, min(len(self.a), 4 * len(rows)))
            self.terms[j] = column[self.rows[j]]


def _counted(values: np.ndarray, k: int, must: np.ndarray) -> np.ndarray:
    """The knapsacks that count: every required one, then the largest of the rest."""
    rest = np.flatnonzero(~must)
    rest = rest[np.argsort(-values[rest], kind="stable")][: max(k - int(must.sum()), 0)]
    return np.concatenate([np.flatnonzero(must), rest])


def _first_size(t: np.ndarray) -> int:
    above = int((t >= 0).sum())
    surplus = float(t[t >= 0].sum())
    below = np.sort(-t[t < 0])[: 4 * max(above, 64)]
    taken = int(np.searchsorted(np.cumsum(below), surplus, side="right"))
    return min(len(t), above + _EXTRA_ROWS * max(taken, 64))


def priced_bound(
    a: np.ndarray,
    floor: float,
    cols: np.ndarray,
    max_models: int,
    known: int,
    deadline: float | None = None,
    max_steps: int = PRICED_MAX_STEPS,
) -> PricedBound:
    """Minimise Σπ + (the ``max_models`` largest v_m(π)) over π in [0, 1], the models
    ``cols``, by Polyak subgradient steps toward ``known`` (the strength of a verified
    partition). Every value it evaluates is a bound; the smallest is returned."""
    sacks = _Knapsacks(a, floor, np.asarray(cols))
    everyone = np.ones(len(cols), dtype=bool)
    return _descend(sacks, everyone, ~everyone, max_models, known, None, deadline, max_steps)


def _descend(
    sacks: _Knapsacks,
    allowed: np.ndarray,
    required: np.ndarray,
    max_models: int,
    known: int,
    start: np.ndarray | None,
    deadline: float | None,
    max_steps: int,
) -> PricedBound:
    """The priced bound over model sets T with required ⊆ T ⊆ allowed (masks over the
    knapsacks' models), |T| <= max_models: every required knapsack counts, then the
    largest of the other allowed ones."""
    n = len(sacks.a)
    cols = sacks.cols
    price = np.zeros(n) if start is None else start.copy()
    descent = _Polyak(known, deadline)
    index = np.flatnonzero(allowed)
    must = required[index]
    step = 0
    for step in range(1, max_steps + 1):
        solved = [sacks.value(j, price) for j in index.tolist()]
        values = np.array([v for v, _, _ in solved])
        top = _counted(values, max_models, must)
        bound = float(price.sum() + values[top].sum()) + _ROUNDING * (1 + n)
        if descent.seen(bound, np.sort(cols[index[top]]), price, step):
            break
        # subgradient in π: 1 − (how much of input i the counted knapsacks take)
        used = np.zeros(n)
        for j in top.tolist():
            _, rows, frac = solved[j]
            used[rows] += frac
        price = descent.next_price(price, 1.0 - used, bound, 1.0)
        if price is None:
            break
    descent.best.steps = step
    return descent.best


class _Polyak:
    """Polyak subgradient steps toward ``known`` (a verified partition's strength): the best
    bound seen, and θ halved after ``_PATIENCE`` steps without a better one."""

    def __init__(self, known: int, deadline: float | None) -> None:
        self.known, self.deadline = known, deadline
        self.best = PricedBound(float("inf"), np.zeros(0, np.int64), np.zeros(0), 0, "max_steps")
        self.theta, self.stale = 1.0, 0

    def seen(self, bound: float, models: np.ndarray, price: np.ndarray, step: int) -> bool:
        """Record one evaluation; True where the descent stops (``best.stop`` says why)."""
        if bound < self.best.bound - 1e-9:
            self.best = PricedBound(bound, models, price, step, "max_steps")
            self.stale = 0
        else:
            self.stale += 1
            if self.stale >= _PATIENCE:
                self.theta, self.stale = self.theta / 2, 0
        if floor_bound(self.best.bound) <= self.known:
            self.best.stop = "met the partition"
            return True
        if self.deadline is not None and time.perf_counter() > self.deadline:
            self.best.stop = "time"
            return True
        return False

    def next_price(
        self, price: np.ndarray, grad: np.ndarray, bound: float, upper: float | None
    ) -> np.ndarray | None:
        """The next prices, in [0, ``upper``]; None where the steps have converged."""
        # a price already at 0 that would fall stays there (the projection): leave it out
        # of the step's length
        grad[(price <= 0) & (grad > 0)] = 0.0
        norm = float(grad @ grad)
        if norm <= 0 or self.theta < 1e-3:
            self.best.stop = "converged"
            return None
        return np.clip(price - self.theta * (bound - self.known) / norm * grad, 0.0, upper)


def model_set_bound(
    a: np.ndarray,
    floor: float,
    cols: np.ndarray,
    max_models: int,
    known: int,
    deadline: float | None = None,
    max_nodes: int = 200,
) -> ModelSetBound:
    """Branch the priced bound on the model set. A node holds the sets T with
    required ⊆ T ⊆ allowed; where its bound stays above ``known``, the K models it counts,
    m_1..m_K, split it: T = {m_1..m_K} exactly (settled by the priced bound on those models
    alone: the floors' Lagrangian over them), or m_j is left out while m_1..m_{j-1} stay in, one
    child per j. The children cover the node's sets once each. Depth first, each child from
    its parent's prices; the proven bound is the largest of what is settled and what is
    left open."""
    cols = np.asarray(cols)
    sacks = _Knapsacks(a, floor, cols)
    everyone = np.ones(len(cols), dtype=bool)
    root = _descend(sacks, everyone, ~everyone, max_models, known, None, deadline, PRICED_MAX_STEPS)
    stack = [(everyone, ~everyone, root)]
    settled, nodes, sets = 0.0, 1, []
    while stack:
        if nodes >= max_nodes or (deadline is not None and time.perf_counter() > deadline):
            break
        allowed, required, node = stack.pop()
        if floor_bound(node.bound) <= known:
            settled = max(settled, min(node.bound, known))
            continue
        counted = np.isin(cols, node.models)
        if allowed.sum() <= max_models or counted.sum() < max_models:
            # every allowed model counts already: the node is one model set
            settled = max(settled, node.bound)
            sets.append((node.bound, node.models))
            continue
        # T = the counted models exactly: the Lagrangian over the floors on those models
        # alone (the same LP, but its bundle method settles it where the prices stall)
        whole, _, _ = lagrangian_dual(
            a, floor, tie_break_eps(len(a)), deadline=deadline, cols=cols[counted]
        )
        nodes += 1
        settled = max(settled, whole if floor_bound(whole) > known else known)
        if floor_bound(whole) > known:
            sets.append((whole, cols[counted]))
        free = [j for j in np.flatnonzero(counted) if not required[j]]
        children = []
        for i, j in enumerate(free):
            child_allowed = allowed.copy()
            child_allowed[j] = False
            child_required = required.copy()
            child_required[free[:i]] = True
            child = _descend(
                sacks,
                child_allowed,
                child_required,
                max_models,
                known,
                node.price,
                deadline,
                PRICED_MAX_STEPS,
            )
            nodes += 1
            children.append((child_allowed, child_required, child))
        stack.extend(children)
    open_bound = max((node.bound for _, _, node in stack), default=0.0)
    bound = max(settled, open_bound, float(known))
    sets.sort(key=lambda found: -found[0])
    return ModelSetBound(
        min(bound, root.bound), root.bound, nodes, not stack, [models for _, models in sets]
    )


# ---------------------------------------------------------------------------------------
# global scope
# ---------------------------------------------------------------------------------------


def global_priced_bound(
    a: np.ndarray,
    floor: float,
    max_models: int | None,
    hint: np.ndarray,
    known: int,
    min_cell: int = 1,
    deadline: float | None = None,
    max_steps: int = PRICED_MAX_STEPS,
) -> PricedBound:
    """A bound on the strength under the global floor with at most ``max_models`` models
    (None: no limit) and cells of at least ``min_cell`` inputs.

    For μ >= 0 and any partition P, |P| <= Σ_{i∈P} w_{i,m(i)} with w = 1 + μ(a − λ + tol)
    (the pooled floor's Lagrangian), and with prices π >= 0 on the inputs,
    |P| <= Σπ + Σ_m (the most a cell S_m of model m is worth at w − π), each term at least 0
    (the empty cell). A cell of at least c inputs is worth exactly the sum of its model's
    positive w − π plus, where fewer than c are positive, the largest w − π of its other
    rows to make up c (``_MakeUp``: the rows past its top ones count at the lowest w of
    those, at least their own w − π, so the term stays a bound); with ``max_models`` = K
    only the K largest terms count. μ is searched around μ* from the closed form on the
    models ``hint`` (a model set known to be good, such as the best partition's):
    μ* = 1 / (λ − v), v the best IIA of the first input that closed form leaves out; π by
    Polyak steps from 0 toward ``known`` at each μ. Every value evaluated is a
    bound; the smallest is returned (``models``: the models counted there)."""
    n = a.shape[0]
    hint = np.asarray(hint)
    best = PricedBound(float(n), hint, np.zeros(0), 0, "no multiplier")
    if len(hint) == 0 or known >= n:
        return best
    # the closed form on ``hint``: each input at its best IIA there, the longest prefix
    values = a[:, hint].max(axis=1)
    order, taken = best_prefix(values, floor)
    if taken >= n or values[order[taken]] >= floor - TOL:
        return best
    mu_star = 1.0 / (floor - TOL - float(values[order[taken]]))
    steps = 0

    def evaluate(log_scale: float) -> float:
        nonlocal best, steps
        found = _global_descend(
            a, floor, mu_star * np.exp(log_scale), max_models, min_cell, known, deadline, max_steps
        )
        steps += found.steps
        if found.bound < best.bound:
            best = found
        return found.bound

    def done() -> bool:
        return floor_bound(best.bound) <= known or (
            deadline is not None and time.perf_counter() > deadline
        )

    # Golden-section search over log(μ / μ*): with exact prices the bound is a convex
    # function of μ (a Lagrangian dual); the prices' descent is not exact, but every value
    # it gives is a bound and the smallest seen is kept.
    lo, hi = np.log(_MU_RANGE[0]), np.log(_MU_RANGE[1])
    x1, x2 = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
    f1 = evaluate(x1)
    f2 = evaluate(x2) if not done() else f1
    for _ in range(_MU_EVALS - 2):
        if done():
            break
        if f1 <= f2:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - _GOLDEN * (hi - lo)
            f1 = evaluate(x1)
        else:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + _GOLDEN * (hi - lo)
            f2 = evaluate(x2)
    best.steps = steps
    return best


# The multiplier's search: μ / μ* in this range (a cell size floor moves the best μ up: on
# 10^6 × 64 at 0.98 with min_cell 1000, about 1.18 μ*), golden-section steps, at most
# this many bounds evaluated (the range shrinks to about 1% of its log-width)
_MU_RANGE = (0.7, 2.6)
_GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0
_MU_EVALS = 12


def _worth(a: np.ndarray, floor: float, mu: float):
    """The sparse positive part of w = 1 + μ(a − λ + tol): (rows, models, values)."""
    rows, models, vals = [], [], []
    for start in range(0, a.shape[0], BLOCK_ROWS):
        block = a[start : start + BLOCK_ROWS].astype(np.float64)
        block -= floor - TOL
        block *= mu
        block += 1.0
        r, m = np.nonzero(block > 0)
        rows.append(r + start)
        models.append(m)
        vals.append(block[r, m])
    return np.concatenate(rows), np.concatenate(models), np.concatenate(vals)


class _MakeUp:
    """What a cell short of ``size`` inputs at w − π > 0 can still add: for each model, its
    top rows by a (its ``positive`` rows of w > 0 rank first, then ``_MAKE_UP_ROWS`` × size
    more), their w, and their price slots (-1: a row that never carries a price); no row
    outside them has a w above ``edge`` (the lowest w among them)."""

    def __init__(self, a, floor, mu, positive, size, used_rows) -> None:
        n = a.shape[0]
        self.w: list[np.ndarray] = []
        self.slot: list[np.ndarray] = []
        self.edge: list[float] = []
        for m in range(a.shape[1]):
            top = min(n, int(positive[m]) + _MAKE_UP_ROWS * size)
            col = np.asarray(a[:, m])
            part = np.argpartition(-col, top - 1)[:top] if 0 < top < n else np.arange(top)
            w = 1.0 + mu * (col[part].astype(np.float64) - (floor - TOL))
            at = np.searchsorted(used_rows, part)
            found = used_rows[np.minimum(at, len(used_rows) - 1)] == part if len(used_rows) else 0
            self.w.append(w)
            self.slot.append(np.where(found, at, -1))
            if top == n:
                self.edge.append(-np.inf)
            else:
                # the largest a outside: at most the lowest inside (or the column's largest)
                edge = col[part].min() if top else col.max()
                self.edge.append(1.0 + mu * (float(edge) - (floor - TOL)))

    def add(self, m: int, k: int, padded: np.ndarray) -> tuple[float, np.ndarray]:
        """The most k more inputs add to model m's cell at the prices ``padded`` (with a
        0 appended, the price of slot -1), beside the ones it counts already (w − π > 0):
        the k largest w − π of the others, where rows outside the candidates count at
        ``edge`` (at least their w − π); and the price slots of the candidates chosen."""
        w, slot = self.w[m], self.slot[m]
        value = w - padded[slot]
        rest = np.flatnonzero(~((w > 0) & (value > 0)))
        pool = np.concatenate([value[rest], np.full(k, self.edge[m])])
        pick = np.argpartition(-pool, k - 1)[:k]
        chosen = slot[rest[pick[pick < len(rest)]]]
        return float(pool[pick].sum()), chosen[chosen >= 0]


# candidate rows each model's make-up looks at beyond its rows of w > 0, as a multiple of
# min_cell (rows past them count at the edge, a bound)
_MAKE_UP_ROWS = 3


def _global_descend(a, floor, mu, max_models, min_cell, known, deadline, max_steps) -> PricedBound:
    n, n_models = a.shape
    row, model, val = _worth(a, floor, mu)
    used_rows, row = np.unique(row, return_inverse=True)
    positive = np.bincount(model, minlength=n_models)
    make_up = _MakeUp(a, floor, mu, positive, min_cell, used_rows) if min_cell > 1 else None
    price = np.zeros(len(used_rows))
    slack = _ROUNDING * (1 + n) * max(1.0, float(val.max(initial=0.0)))
    descent = _Polyak(known, deadline)
    step = 0
    for step in range(1, max_steps + 1):
        excess = np.maximum(val - price[row], 0.0)
        # (float even with no entries, where bincount would give integers)
        worth = np.bincount(model, weights=excess, minlength=n_models).astype(np.float64)
        made_up: dict[int, np.ndarray] = {}
        if make_up is not None:
            # a cell short of min_cell at w − π > 0 makes up the rest from its other rows
            # at w − π (each at most 0)
            still = np.bincount(model, weights=excess > 0, minlength=n_models).astype(np.int64)
            padded = np.append(price, 0.0)
            for m in np.flatnonzero(still < min_cell).tolist():
                more, made_up[m] = make_up.add(m, min_cell - int(still[m]), padded)
                worth[m] += more
        worth = np.maximum(worth, 0.0)
        order = np.argsort(-worth, kind="stable")
        top = order if max_models is None else order[:max_models]
        top = top[worth[top] > 0]
        bound = float(price.sum() + worth[top].sum()) + slack
        if descent.seen(bound, np.sort(top), price, step):
            break
        counted = np.zeros(n_models, dtype=bool)
        counted[top] = True
        hits = counted[model] & (excess > 0)
        grad = 1.0 - np.bincount(row[hits], minlength=len(price))
        for m, slots in made_up.items():
            if counted[m]:
                np.subtract.at(grad, slots, 1.0)
        price = descent.next_price(price, grad, bound, None)
        if price is None:
            break
    descent.best.steps = step
    return descent.best
