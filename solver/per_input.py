"""Partitions under per-input semantics: each input i has its own IIA a[i, m] under each
candidate model m, and a cell meets the floor λ when its mean IIA is at least λ.

Maximise the strength (number of assigned inputs) subject to the floor, per model
(``scope="per-model"``) or over all assigned inputs together (``scope="global"``);
among maximal partitions prefer the higher total IIA. Options: at most ``max_models``
non-empty cells, every non-empty cell at least ``min_cell`` inputs.

Methods:

- ``"ilp"``: the exact MILP through PuLP and a named solver (``solver.per_input_milp``);
- ``"auto"``: structure first.
  * global scope, no options: a closed form (each input's best IIA, sorted; the longest
    prefix meeting the floor), proven optimal;
  * per-model scope, no options: the Lagrangian dual of the LP relaxation, minimised over
    the M floor multipliers by a proximal bundle method (every multiplier vector gives a
    valid bound), then rounding from the best multipliers; for moderate sizes the exact
    MILP (highspy, warm-started) for the remaining time to close the gap;
  * options: the MILP through highspy, warm-started from the option-free answer repaired
    to meet the options.

Every partition is checked against the constraints (``solver.feasibility.meets_floor``)
and repaired if a solver's tolerance let a violation through, before it is returned.
"""

from __future__ import annotations

import math
import time

import highspy
import numpy as np

from solver.backends import check_solver_name, new_highs
from solver.certificate import Certificate
from solver.feasibility import TOL
from solver.per_input_milp import (
    SCOPES,
    MilpResult,
    allowed_models,
    milp_highs,
    milp_pulp,
)
from solver.verify import partition_problems

METHODS = ("auto", "ilp")
# Above this many x variables "auto" trusts the Lagrangian bound and rounding alone: the
# plain MILP no longer finishes in reasonable time (3.2 million binaries did not).
MILP_MAX_VARS = 200_000
# Without a time limit "auto" still caps its MILP phase: proving the last unit of a
# knapsack-like gap can take hours (10,000 x 8 synthetic at λ = 0.85: open after 60 s),
# and the Lagrangian answer is already within a few units.
AUTO_MILP_SECONDS = 60.0
# The tie-break phase (max total IIA at maximal strength) is best-effort: its knapsack-like
# bound can take minutes to close, so without a time limit it gets at most this long.
TIE_BREAK_SECONDS = 2.0
# Internal feasibility margin: half of the shared TOL, so that sums recomputed in another
# order by the final check can never flip a verdict taken here.
_MARGIN = 0.5 * TOL


def tie_break_eps(n: int) -> float:
    """ε with ε·Σ a x < 1/2 for every partition, so Σ x + ε Σ a x orders by strength first."""
    return 1.0 / (2 * n + 2)


# ---------------------------------------------------------------------------------------
# Checking and repairing partitions
# ---------------------------------------------------------------------------------------


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


def check_partition(
    a: np.ndarray,
    assign: np.ndarray,
    floor: float,
    scope: str,
    max_models: int | None = None,
    min_cell: int = 1,
) -> list[str]:
    """Every constraint the partition breaks, in words; empty when it is feasible."""
    return partition_problems(
        a, assign, floor, "per-input", scope, max_models=max_models, min_cell=min_cell
    )


def _ok(total: float, count: int, floor: float) -> bool:
    return count <= 0 or total - floor * count >= -_MARGIN * count


def _drop_lowest(vals_sorted_asc: np.ndarray, floor: float) -> int:
    """How many of the smallest entries must go for the rest to meet the floor: dropping
    the smallest keeps the most entries and, among those, the largest total."""
    count = len(vals_sorted_asc)
    total = float(vals_sorted_asc.sum())
    if _ok(total, count, floor):
        return 0
    dropped = np.concatenate(([0.0], np.cumsum(vals_sorted_asc)))
    keep = count - np.arange(count + 1)
    good = (total - dropped) - floor * keep >= -_MARGIN * keep
    good[-1] = True  # the empty cell (rounding can make total − cumsum a hair negative)
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
                k = _drop_lowest(v[order], floor)
                if k:
                    assign[members[order[:k]]] = -1
                    changed = True
        else:
            order = np.argsort(vals, kind="stable")
            k = _drop_lowest(vals[order], floor)
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
        take = np.cumsum(cost[order]) <= slack + _MARGIN * (
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
        if taken[i] or slack[j] - c < -_MARGIN * (cnt[j] + 1):
            continue
        taken[i] = True
        slack[j] -= c
        cnt[j] += 1
        assign[free[i]] = models[j]
    return assign


def _strength_total(a: np.ndarray, assign: np.ndarray) -> tuple[int, float]:
    rows, vals = _assigned_values(a, assign)
    return len(rows), float(vals.sum())


def _better(a: np.ndarray, x: np.ndarray | None, y: np.ndarray | None) -> np.ndarray | None:
    """The lexicographically better of two partitions (strength, then total IIA)."""
    if x is None:
        return y
    if y is None:
        return x
    return x if _strength_total(a, x) >= _strength_total(a, y) else y


# ---------------------------------------------------------------------------------------
# Closed form (global scope, no options)
# ---------------------------------------------------------------------------------------


def closed_form_global(a: np.ndarray, floor: float) -> np.ndarray:
    """Optimal for the global floor without options: any k-set's total is at most the sum
    of the k largest best-IIAs, so the longest sorted prefix meeting the floor is the
    maximal strength, and that prefix (each input in its best model) the maximal total."""
    n = a.shape[0]
    best_model = a.argmax(axis=1)
    best = a[np.arange(n), best_model]
    order = np.argsort(-best, kind="stable")
    total = np.cumsum(best[order])
    k_all = np.arange(1, n + 1)
    good = total - floor * k_all >= -TOL * k_all
    k = int(k_all[good].max()) if good.any() else 0
    assign = np.full(n, -1, dtype=np.int64)
    assign[order[:k]] = best_model[order[:k]]
    return assign


# ---------------------------------------------------------------------------------------
# Lagrangian dual of the per-model LP relaxation
# ---------------------------------------------------------------------------------------


class _Oracle:
    """L(μ) = Σ_i max(0, max_m [c_im + μ_m d_im]), d = a − λ, c = 1 + ε a, and one
    subgradient. c + μ d = (1 + ελ) + (μ + ε) d, so only d is stored (one [n, k] array)
    plus one scratch buffer of the same size."""

    def __init__(self, a_sub: np.ndarray, floor: float, eps: float) -> None:
        self.d = a_sub - floor
        self.buf = np.empty_like(self.d)
        self.base = 1.0 + eps * floor
        self.eps = eps
        self.rows = np.arange(self.d.shape[0])
        self.calls = 0

    def __call__(self, mu: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        self.calls += 1
        np.multiply(self.d, mu + self.eps, out=self.buf)
        j = self.buf.argmax(axis=1)
        dj = self.d[self.rows, j]
        v = self.buf[self.rows, j] + self.base
        pos = v > 0
        f = float(v[pos].sum())
        g = np.bincount(j[pos], weights=dj[pos], minlength=self.d.shape[1])
        return f, g, j, v


def _cut_model(
    alphas: np.ndarray,
    grads: np.ndarray,
    center: np.ndarray,
    u: float | None,
    box: float | None,
    shift: float,
) -> tuple[np.ndarray, float] | None:
    """The bundle step: min_{μ >= 0, r} r + u/2 ||μ − center||² (proximal, ``u``) or r over
    the box |μ − center|_∞ <= ``box`` (trust region, an LP), s.t. r >= α_j + g_j·μ for
    every cut j. Returns (μ, the cutting-plane model at μ) or None when HiGHS fails.
    ``shift``: L at the center, subtracted from the rows.

    The rows are shifted and scaled first (r − shift in units of the largest subgradient
    entry): HiGHS's QP solver reports "Solve error" on the raw cuts, whose right-hand
    sides are ~n while μ moves by 1e-4."""
    k = len(center)
    n_cuts = len(alphas)
    inf = highspy.kHighsInf
    scale = max(float(np.abs(grads).max(initial=0.0)), 1.0)
    lp = highspy.HighsLp()
    lp.num_col_ = k + 1
    lp.num_row_ = n_cuts
    if u is not None:
        lp.col_cost_ = np.concatenate((-(u / scale) * center, [1.0]))
        lp.col_lower_ = np.concatenate((np.zeros(k), [-inf]))
        lp.col_upper_ = np.full(k + 1, inf)
    else:
        lp.col_cost_ = np.concatenate((np.zeros(k), [1.0]))
        lp.col_lower_ = np.concatenate((np.maximum(center - box, 0.0), [-inf]))
        lp.col_upper_ = np.concatenate((center + box, [inf]))
    # Row j: r − g_j·μ >= α_j (scaled and shifted).
    lp.row_lower_ = (alphas - shift) / scale
    lp.row_upper_ = np.full(n_cuts, inf)
    mat = np.concatenate((-grads / scale, np.ones((n_cuts, 1))), axis=1)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.arange(0, n_cuts * (k + 1) + 1, k + 1, dtype=np.int32)
    lp.a_matrix_.index_ = np.tile(np.arange(k + 1, dtype=np.int32), n_cuts)
    lp.a_matrix_.value_ = mat.reshape(-1)
    lp.a_matrix_.num_col_ = k + 1
    lp.a_matrix_.num_row_ = n_cuts
    h = new_highs()
    if u is not None:
        hess = highspy.HighsHessian()
        hess.dim_ = k + 1
        hess.format_ = highspy.HessianFormat.kTriangular
        hess.start_ = np.concatenate((np.arange(k + 1), [k])).astype(np.int32)
        hess.index_ = np.arange(k, dtype=np.int32)
        hess.value_ = np.full(k, u / scale)
        model = highspy.HighsModel()
        model.lp_ = lp
        model.hessian_ = hess
        h.passModel(model)
    else:
        h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    mu = np.maximum(np.asarray(h.getSolution().col_value)[:k], 0.0)
    return mu, float(np.max(alphas + grads @ mu))


def lagrangian_dual(
    a_sub: np.ndarray,
    floor: float,
    eps: float,
    *,
    deadline: float | None,
    rel_tol: float = 1e-7,
    max_iter: int = 400,
) -> tuple[float, np.ndarray, dict]:
    """Minimise L(μ) over μ >= 0 by a proximal bundle method. Every L(μ) is an upper bound
    on Σ x + ε Σ a x over feasible partitions (weak duality), hence on the strength.
    Returns (best L, its μ, stats)."""
    oracle = _Oracle(a_sub, floor, eps)
    k = a_sub.shape[1]
    # μ_m ≈ 1 / (λ − a) prices a deficit input a out of the cell; start at a moderate
    # price for inputs a few points under the floor.
    mu = np.full(k, 1.0 / max(0.05, 1.0 - floor) * 0.2)
    f, g, _, _ = oracle(mu)
    center, f_center = mu.copy(), f
    alphas = [f - float(g @ mu)]
    grads = [g]
    u = max(float(np.linalg.norm(g)), 1.0) / max(float(np.linalg.norm(mu)), 1.0)
    it = 0
    stats = {"iterations": 0, "serious": 0, "stop": "max_iter"}
    while it < max_iter:
        it += 1
        if deadline is not None and time.perf_counter() > deadline:
            stats["stop"] = "time"
            break
        al, gr = np.asarray(alphas), np.asarray(grads)
        res = _cut_model(al, gr, center, u, None, f_center)
        if res is None:
            # HiGHS's QP can still fail on near-degenerate cuts: take a trust-region LP
            # step of the length the proximal term would allow instead.
            res = _cut_model(al, gr, center, None, float(np.abs(gr[-1]).max()) / u, f_center)
            stats["lp_steps"] = stats.get("lp_steps", 0) + 1
        if res is None:
            stats["stop"] = "step failed"
            break
        mu, model_val = res
        pred = f_center - model_val
        if pred <= rel_tol * max(1.0, abs(f_center)):
            stats["stop"] = "converged"
            break
        f, g, _, _ = oracle(mu)
        if f_center - f >= 0.1 * pred:
            if f_center - f >= 0.5 * pred:
                u *= 0.5  # the model is trustworthy: allow longer steps
            center, f_center = mu.copy(), f
            stats["serious"] += 1
        else:
            u *= 1.5  # the model overshot: stay closer to the center
        # Keep the cuts that are (nearly) active at the new point, plus the newest: the
        # QP stays small however long the run.
        al = np.asarray(alphas)
        gr = np.asarray(grads)
        slack_cuts = model_val - (al + gr @ mu)
        keep = np.argsort(slack_cuts, kind="stable")[: 4 * k + 20]
        alphas = [alphas[j] for j in sorted(keep.tolist())] + [f - float(g @ mu)]
        grads = [grads[j] for j in sorted(keep.tolist())] + [g]
    stats["iterations"] = it
    stats["oracle_calls"] = oracle.calls
    del oracle
    return f_center, center, stats


def round_from_duals(
    a: np.ndarray, cols: np.ndarray, floor: float, eps: float, mu: np.ndarray
) -> np.ndarray:
    """Each input to its best Lagrangian score (when positive), then each cell cut to its
    longest feasible prefix by IIA, then the rest added back where slack allows."""
    n = a.shape[0]
    oracle = _Oracle(a[:, cols], floor, eps)
    _, _, j, v = oracle(mu)
    del oracle
    assign = np.where(v > 0, cols[j], -1).astype(np.int64)
    assign = repair(a, assign, floor, "per-model")
    assign = fill(a, assign, floor, "per-model")
    assert assign.shape == (n,)
    return assign


# ---------------------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------------------


def _validate(
    a: np.ndarray,
    floor: float,
    scope: str,
    method: str,
    solver: str,
    max_models: int | None,
    min_cell: int,
    warm_start: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray | None]:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"a must be a 2-D array [n inputs, M models], got shape {a.shape}")
    if not np.all(np.isfinite(a)) or (a.size and (a.min() < 0.0 or a.max() > 1.0)):
        raise ValueError("a must hold finite IIA values in [0, 1]")
    if not (0.0 < floor <= 1.0):
        raise ValueError(f"floor must lie in (0, 1], got {floor}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if max_models is not None and max_models < 0:
        raise ValueError(f"max_models must be >= 0 or None, got {max_models}")
    if min_cell < 1:
        raise ValueError(f"min_cell must be >= 1, got {min_cell}")
    if method == "ilp":
        check_solver_name(solver)  # a ValueError naming the alternatives
    if warm_start is not None:
        warm_start = np.asarray(warm_start).astype(np.int64)
        if warm_start.shape != (a.shape[0],):
            raise ValueError(f"warm_start must have shape ({a.shape[0]},)")
        if np.any((warm_start < -1) | (warm_start >= a.shape[1])):
            raise ValueError(f"warm_start entries must lie in [-1, {a.shape[1]})")
    return a, warm_start


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.perf_counter(), 0.0)


def _relaxation_bound(
    a: np.ndarray, floor: float, scope: str, deadline: float | None
) -> tuple[float, np.ndarray | None]:
    """A proven upper bound on the strength without the options (options only restrict):
    the closed form for the global floor, the Lagrangian dual for per-model floors."""
    if scope == "global":
        return float((closed_form_global(a, floor) >= 0).sum()), None
    cols = np.flatnonzero(allowed_models(a, floor, scope))
    if len(cols) == 0:
        return 0.0, None
    bound, mu, _ = lagrangian_dual(a[:, cols], floor, tie_break_eps(a.shape[0]), deadline=deadline)
    return bound, mu


def _finish(
    a: np.ndarray,
    assign: np.ndarray,
    floor: float,
    scope: str,
    max_models: int | None,
    min_cell: int,
    *,
    method: str,
    solver: str,
    bound: float | None,
    t0: float,
    note: str,
) -> tuple[np.ndarray, Certificate]:
    problems = check_partition(a, assign, floor, scope, max_models, min_cell)
    if problems:
        # A solver's tolerance let a violation through: repair rather than return it.
        assign = repair(a, assign, floor, scope, max_models, min_cell)
        note = (note + "; " if note else "") + "repaired: " + "; ".join(problems[:3])
        problems = check_partition(a, assign, floor, scope, max_models, min_cell)
        if problems:  # pragma: no cover - repair always ends feasible
            raise RuntimeError(f"per-input partition still infeasible: {problems}")
    strength = int((assign >= 0).sum())
    cert = Certificate.build(
        method=method,
        solver=solver,
        objective=float(strength),
        bound=bound,
        seconds=time.perf_counter() - t0,
        note=note,
    )
    return assign, cert


def _tie_break(
    a: np.ndarray,
    assign: np.ndarray,
    floor: float,
    scope: str,
    max_models: int | None,
    min_cell: int,
    *,
    solver: str | None,
    deadline: float | None,
) -> tuple[np.ndarray, str]:
    """Phase 2: the highest total IIA at the proven maximal strength (best effort)."""
    budget = TIE_BREAK_SECONDS if deadline is None else min(_remaining(deadline), TIE_BREAK_SECONDS)
    strength = int((assign >= 0).sum())
    if budget < 0.05 or strength == 0:
        return assign, "tie-break skipped (no time left)" if strength else ""
    kwargs = dict(
        time_limit=budget,
        max_models=max_models,
        min_cell=min_cell,
        warm_start=assign,
        min_strength=strength,
    )
    if solver is None:
        res = milp_highs(a, floor, scope, **kwargs)
    else:
        res = milp_pulp(a, floor, scope, solver=solver, **kwargs)
    if res.assign is None:
        return assign, f"tie-break: no incumbent ({res.status})"
    cand = res.assign
    if check_partition(a, cand, floor, scope, max_models, min_cell):
        cand = repair(a, cand, floor, scope, max_models, min_cell)
    best = _better(a, assign, cand)
    word = "proven" if res.proven_optimal else f"best effort, {res.status}"
    return best, f"tie-break {word}"


def _heuristic(
    a: np.ndarray,
    floor: float,
    scope: str,
    max_models: int | None,
    min_cell: int,
    warm_start: np.ndarray | None,
    mu: np.ndarray | None = None,
) -> np.ndarray:
    """A quick feasible partition meeting the options: the option-free structured answer
    (closed form or Lagrangian rounding), repaired and refilled."""
    if scope == "global":
        base = closed_form_global(a, floor)
    else:
        cols = np.flatnonzero(allowed_models(a, floor, scope))
        if len(cols) == 0:
            base = np.full(a.shape[0], -1, dtype=np.int64)
        else:
            if mu is None:
                _, mu, _ = lagrangian_dual(
                    a[:, cols], floor, tie_break_eps(a.shape[0]), deadline=None, max_iter=60
                )
            base = round_from_duals(a, cols, floor, tie_break_eps(a.shape[0]), mu)
    cand = fill(
        a, repair(a, base, floor, scope, max_models, min_cell), floor, scope, max_models, min_cell
    )
    if warm_start is not None:
        ws = fill(
            a,
            repair(a, warm_start, floor, scope, max_models, min_cell),
            floor,
            scope,
            max_models,
            min_cell,
        )
        cand = _better(a, cand, ws)
    return cand


def _solve_ilp(a, floor, scope, solver, deadline, max_models, min_cell, warm_start, t0):
    warm = None
    if warm_start is not None:
        warm = repair(a, warm_start, floor, scope, max_models, min_cell)
    res: MilpResult = milp_pulp(
        a,
        floor,
        scope,
        solver=solver,
        time_limit=_remaining(deadline),
        max_models=max_models,
        min_cell=min_cell,
        warm_start=warm,
    )
    note = f"{res.solver}: {res.status}"
    bound = res.bound
    assign = res.assign
    if assign is not None and check_partition(a, assign, floor, scope, max_models, min_cell):
        assign = repair(a, assign, floor, scope, max_models, min_cell)
    if assign is None:
        note += "; no incumbent within the time limit, returning " + (
            "the warm start" if warm is not None else "a heuristic partition"
        )
        assign = (
            warm if warm is not None else _heuristic(a, floor, scope, max_models, min_cell, None)
        )
    else:
        assign = _better(a, assign, warm)
    strength = int((assign >= 0).sum())
    proven = bound is not None and math.floor(bound + 1e-6) <= strength
    if not proven:
        # The solver's bound is missing or open: the relaxation's is valid regardless.
        relax, _ = _relaxation_bound(a, floor, scope, None)
        bound = relax if bound is None else min(bound, relax)
        proven = math.floor(bound + 1e-6) <= strength
    if proven:
        assign, tb = _tie_break(
            a, assign, floor, scope, max_models, min_cell, solver=solver, deadline=deadline
        )
        if tb:
            note += "; " + tb
    return _finish(
        a,
        assign,
        floor,
        scope,
        max_models,
        min_cell,
        method="ilp",
        solver=solver,
        bound=bound,
        t0=t0,
        note=note,
    )


def _solve_auto(a, floor, scope, deadline, max_models, min_cell, warm_start, t0):
    n = a.shape[0]
    options = max_models is not None or min_cell > 1
    if scope == "global" and not options:
        assign = closed_form_global(a, floor)
        return _finish(
            a,
            assign,
            floor,
            scope,
            None,
            1,
            method="auto",
            solver="closed-form",
            bound=float((assign >= 0).sum()),
            t0=t0,
            note="sorted best IIA, longest prefix meeting the floor",
        )
    cols = np.flatnonzero(allowed_models(a, floor, scope))
    n_vars = n * len(cols)
    note_parts: list[str] = []
    mu = None
    bound: float | None = None
    if scope == "per-model":
        eps = tie_break_eps(n)
        bound, mu, stats = lagrangian_dual(a[:, cols], floor, eps, deadline=deadline)
        note_parts.append(
            f"lagrangian: {stats['iterations']} bundle iterations ({stats['stop']}), "
            f"bound {bound:.4f}"
        )
    else:
        bound = float((closed_form_global(a, floor) >= 0).sum())
        note_parts.append("bound: closed form without options")
    assign = _heuristic(a, floor, scope, max_models, min_cell, warm_start, mu)
    strength = int((assign >= 0).sum())
    solver = "lagrangian" if scope == "per-model" else "closed-form"
    # The exact MILP where it is affordable; at scale only with options (which the
    # Lagrangian does not see) and only under a time limit.
    gap_open = math.floor(bound + 1e-6) > strength
    if gap_open and (n_vars <= MILP_MAX_VARS or (options and deadline is not None)):
        remaining = _remaining(deadline)
        if remaining is None:
            remaining = AUTO_MILP_SECONDS
        if remaining > 0.05:
            res = milp_highs(
                a,
                floor,
                scope,
                time_limit=remaining,
                max_models=max_models,
                min_cell=min_cell,
                warm_start=assign,
            )
            solver = "highs"
            note_parts.append(f"milp: {res.status}")
            if res.assign is not None:
                cand = res.assign
                if check_partition(a, cand, floor, scope, max_models, min_cell):
                    cand = repair(a, cand, floor, scope, max_models, min_cell)
                assign = _better(a, assign, cand)
            if res.bound is not None:
                bound = min(bound, res.bound)
    strength = int((assign >= 0).sum())
    if math.floor(bound + 1e-6) <= strength and n_vars <= MILP_MAX_VARS:
        assign, tb = _tie_break(
            a, assign, floor, scope, max_models, min_cell, solver=None, deadline=deadline
        )
        if tb:
            note_parts.append(tb)
    return _finish(
        a,
        assign,
        floor,
        scope,
        max_models,
        min_cell,
        method="auto",
        solver=solver,
        bound=bound,
        t0=t0,
        note="; ".join(note_parts),
    )


def solve_per_input(
    a: np.ndarray,
    floor: float,
    scope: str = "per-model",
    *,
    method: str = "auto",
    solver: str = "highs",
    time_limit: float | None = None,
    max_models: int | None = None,
    min_cell: int = 1,
    warm_start: np.ndarray | None = None,
) -> tuple[np.ndarray, Certificate]:
    """Return (assignment int64 [n] with -1 = fallback, certificate).

    ``a``: per-input IIA, [n inputs, M models], values in [0, 1]. ``floor``: λ in (0, 1].
    ``scope``: "per-model" (every cell's mean >= λ) or "global" (the mean over all
    assigned inputs >= λ). ``method``: "ilp" (PuLP MILP with ``solver``: "highs", "cbc"
    or any PuLP solver name) or "auto" (structured, see the module docstring).
    ``time_limit``: seconds for the whole call (None: no limit for "ilp"; "auto" then
    stops when its bundle method converges and gives its MILP phase at most
    ``AUTO_MILP_SECONDS``). ``max_models``: at most this many non-empty
    cells. ``min_cell``: every non-empty cell holds at least this many inputs.
    ``warm_start``: a partition to start from (repaired to feasibility first).

    The certificate's objective is the strength; its bound a proven upper bound on the
    best strength; status "optimal" when they meet.
    """
    t0 = time.perf_counter()
    a, warm_start = _validate(a, floor, scope, method, solver, max_models, min_cell, warm_start)
    deadline = None if time_limit is None else t0 + float(time_limit)
    n = a.shape[0]
    # Nothing can be assigned when no entry reaches the floor (a non-empty cell's mean is
    # at most its largest entry), when no model may be used, or when cells must be bigger
    # than the input set: the empty partition is optimal without a solver.
    if n == 0 or max_models == 0 or min_cell > n or not np.any(a >= floor - TOL):
        assign = np.full(n, -1, dtype=np.int64)
        return _finish(
            a,
            assign,
            floor,
            scope,
            max_models,
            min_cell,
            method=method,
            solver="presolve",
            bound=0.0,
            t0=t0,
            note="no input can be assigned: the empty partition is optimal",
        )
    if method == "ilp":
        return _solve_ilp(a, floor, scope, solver, deadline, max_models, min_cell, warm_start, t0)
    return _solve_auto(a, floor, scope, deadline, max_models, min_cell, warm_start, t0)
