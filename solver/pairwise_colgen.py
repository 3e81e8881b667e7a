"""Column generation for the pairwise problem: a Lagrangian bound and a price-and-branch
partition, for instances small enough to price exactly (a few hundred inputs at most).

A *column* is one feasible cell: a model m and a set S of >= 2 inputs whose pairwise
deficit (δ = 1 − w) fits the floor's budget. The problem is a set packing over columns:
each input in at most one column, each model in at most one. Its LP relaxation is solved
from the dual side, where every column is a row,

    min Σ_v π_v + Σ_m σ_m   s.t.   π(S) + σ_m >= |S| for every column (m, S),  π, σ >= 0,

and new rows are found by *pricing*: for each model, the cell that maximises
Σ_{v∈S} (1 − π_v). Relaxing the "one model per input" rows with multipliers π >= 0 gives
the Lagrangian bound, valid for *any* π >= 0 whatever the LP's accuracy,

    L(π) = Σ_v π_v + Σ_m max(0, P_m(π)),

where P_m(π) is any proven upper bound on model m's best pricing value; exact pricing
gives it: first a branch and bound over cells (the reverse search of solver.pairwise_cells,
exact where it finishes within its share of the time), then a HiGHS MILP (size-indexed
deficit formulation, as in solver.pairwise_exact) whose dual bound counts even when its
time limit stops it early; where that stops it, the
doubly non-negative SDP of solver.pairwise_sdp bounds the same problem too (its certificate
checked here), and the smaller of the two counts. Cheap pricing (a greedy
add / drop / swap search from the cells at hand) finds most columns; the exact pricer runs
only when the greedy finds none, and each exact round yields a bound.

The partition is the best integer packing of the columns generated (a HiGHS MILP over the
columns, seeded with the start's cells), or a dive (fix the LP's largest column, price again
on what is free, repeat) where that is stronger, verified by the shared definition. A model whose
cells may be many (``cells_per_model``) is not handled here: its columns would need a
cell count per model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from solver.backends import new_highs
from solver.certificate import floor_bound
from solver.feasibility import MIN_PAIRWISE_CELL, SEARCH_TOL, TOL
from solver.pairwise_bounds import _prepare, deficit_budget, size_bound, size_structure
from solver.pairwise_cells import heaviest_cell
from solver.pairwise_sdp import SDP_MAX_INPUTS, weighted_cell_bound
from solver.verify import is_feasible

COLGEN_MAX_INPUTS = 200  # exact pricing is a MILP over every pair: beyond this it is too slow
# of each pricing share, for the exact combinatorial search (solver.pairwise_cells) before
# the MILP: where it finishes, its maximum is exact, where the MILP often stops at its cap
PRICING_SEARCH_SHARE = 0.5
PRICING_GROWTH = 3.0  # a capped pricing round that found no column is repeated with this
# times the cap (on the 64-input subset at λ = 0.95 the MILPs need 5–20 s, above the first 10)
_EPS = 1e-6  # a column enters only when its reduced value exceeds σ_m by this much


@dataclass(frozen=True)
class ColumnGenerationResult:
    """What column generation proved and found.

    ``bound``: a proven upper bound on the best strength (n when no exact pricing round
    finished); ``lp_value``: the last restricted LP's value (a bound only when
    ``converged``); ``assignment``: the best packing of the generated columns (model per
    input, −1 for none), verified; ``iterations``, ``exact_rounds``, ``columns``: work
    done; ``converged``: exact pricing found no improving column, so ``bound`` is the LP
    optimum up to the pricers' tolerance; ``capped``: the time limit stopped it, or a pricer
    stopped at ``pricing_time`` before proving its optimum; ``multipliers`` and
    ``pricing_bounds``: the π and the per-model bounds P_m that gave ``bound`` (None when no
    exact round finished), for solver.pairwise_enumerate."""

    bound: float
    lp_value: float
    assignment: np.ndarray
    iterations: int
    exact_rounds: int
    columns: int
    converged: bool
    capped: bool
    seconds: float
    multipliers: np.ndarray | None = None
    pricing_bounds: np.ndarray | None = None

    @property
    def strength(self) -> int:
        return int((self.assignment >= 0).sum())


class _Pricer:
    """Model m's exact pricing MILP, built once; each call changes only the objective."""

    def __init__(self, delta_m: np.ndarray, floor: float, sizes_m: np.ndarray, fits_m):
        import highspy

        n = delta_m.shape[0]
        self.ks = np.nonzero(sizes_m)[0]
        self.elig = np.nonzero(fits_m.any(axis=1))[0] if len(self.ks) else np.zeros(0, int)
        h = new_highs()
        h.setOptionValue("mip_rel_gap", 1e-6)
        self.h = h
        inf = highspy.kHighsInf
        ne, nk = len(self.elig), len(self.ks)
        if ne < MIN_PAIRWISE_CELL or nk == 0:
            self.empty = True
            return
        self.empty = False
        budgets = deficit_budget(self.ks, floor)
        # columns: x (eligible inputs), u (sizes), y (pairs with a positive deficit)
        sub = delta_m[np.ix_(self.elig, self.elig)]
        iu, ju = np.triu_indices(ne, 1)
        d = sub[iu, ju]
        pos = d > TOL
        apart = pos & (d > budgets.max())
        costly = pos & ~apart
        py, pj = iu[costly], ju[costly]
        ny = len(py)
        ncol = ne + nk + ny
        lower = np.zeros(ncol)
        upper = np.ones(ncol)
        h.addVars(ncol, lower, upper)
        h.changeColsIntegrality(
            ne + nk,
            np.arange(ne + nk, dtype=np.int32),
            np.full(ne + nk, highspy.HighsVarType.kInteger),
        )
        h.changeObjectiveSense(highspy.ObjSense.kMaximize)
        xs, us, ys = np.arange(ne), ne + np.arange(nk), ne + nk + np.arange(ny)
        rows_lo, rows_hi, starts, ind, val = [], [], [], [], []

        def row(lo, hi, cols, coefs):
            starts.append(len(ind))
            rows_lo.append(lo)
            rows_hi.append(hi)
            ind.extend(int(c) for c in cols)
            val.extend(float(c) for c in coefs)

        row(-inf, 1.0, us, np.ones(nk))  # one size
        row(0.0, 0.0, np.concatenate([xs, us]), np.concatenate([np.ones(ne), -self.ks]))
        for a, v in enumerate(self.elig):
            no = ~fits_m[v, self.ks]
            if no.any():  # x_v + Σ_{k: v does not fit} u_k <= Σ_k u_k <= 1
                row(-inf, 1.0, np.concatenate([[a], us[no]]), np.ones(1 + int(no.sum())))
        for a, b in zip(iu[apart], ju[apart]):
            row(-inf, 1.0, [a, b], [1.0, 1.0])
        for t in range(ny):  # y_ij >= x_i + x_j − 1
            row(-1.0, inf, [ys[t], py[t], pj[t]], [1.0, -1.0, -1.0])
        row(-inf, 0.0, np.concatenate([ys, us]), np.concatenate([d[costly], -budgets]))
        h.addRows(
            len(rows_lo),
            np.array(rows_lo),
            np.array(rows_hi),
            len(ind),
            np.array(starts, dtype=np.int32),
            np.array(ind, dtype=np.int32),
            np.array(val),
        )
        self.ncol = ncol
        self.ne = ne
        self.pairs = (py, pj)
        self.position = -np.ones(n, dtype=np.int64)
        self.position[self.elig] = np.arange(ne)

    def _hint(self, cell: np.ndarray):
        """A full MILP point for a known cell (x, its size's u, its pairs' y)."""
        import highspy

        x = np.zeros(self.ne)
        pos = self.position[cell]
        if (pos < 0).any() or len(cell) not in set(self.ks.tolist()):
            return None
        x[pos] = 1.0
        u = (self.ks == len(cell)).astype(float)
        py, pj = self.pairs
        sol = highspy.HighsSolution()
        sol.col_value = list(np.concatenate([x, u, x[py] * x[pj]]))
        return sol

    def price(
        self, weights: np.ndarray, time_limit: float, hint: np.ndarray | None = None
    ) -> tuple[float, list[np.ndarray], bool]:
        """(a proven upper bound on max Σ_{v∈S} weights[v] over the model's cells — 0 for
        the empty cell —, the cells the MILP found, whether it proved its optimum).
        ``hint``: a known cell, passed as the MILP's starting incumbent."""
        import highspy

        if self.empty:
            return 0.0, [], True
        h = self.h
        cost = np.zeros(self.ncol)
        cost[: self.ne] = weights[self.elig]
        h.changeColsCost(self.ncol, np.arange(self.ncol, dtype=np.int32), cost)
        # the MIP solver measures time_limit from the start of each run() (unlike the LP
        # re-solves of solver.pairwise_bounds, whose clock adds up over runs)
        h.setOptionValue("time_limit", max(0.05, float(time_limit)))
        start = self._hint(hint) if hint is not None else None
        if start is not None:
            h.setSolution(start)
        h.run()
        proven = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        bound = float(h.getInfo().mip_dual_bound)
        if not np.isfinite(bound):  # no bound proven (stopped before the root LP)
            bound = float(np.maximum(weights[self.elig], 0).sum())
            proven = False
        cells = []
        sol = h.getSolution()
        if sol.value_valid:
            x = np.asarray(sol.col_value)[: self.ne] > 0.5
            if x.sum() >= MIN_PAIRWISE_CELL:
                cells.append(self.elig[x])
        return max(bound, 0.0), cells, proven


def _greedy_cells(
    delta_m: np.ndarray,
    floor: float,
    weights: np.ndarray,
    starts: list[np.ndarray],
    rng: np.random.Generator,
    restarts: int = 4,
) -> list[np.ndarray]:
    """Feasible cells of high weight, by best-improvement add / drop / swap moves from each
    start (and from random pairs). Every returned cell meets the floor."""
    n = delta_m.shape[0]
    out = []
    seeds = [np.asarray(s) for s in starts]
    good = np.nonzero(weights > 0)[0]
    for _ in range(restarts):
        if len(good) >= 2:
            seeds.append(rng.choice(good, size=2, replace=False))
    for seed in seeds:
        inside = np.zeros(n, dtype=bool)
        inside[seed] = True
        k = int(inside.sum())
        row = delta_m[:, inside].sum(axis=1)
        total = float(row[inside].sum()) / 2.0
        if k < MIN_PAIRWISE_CELL or total > _search_budget(k, floor):
            continue
        for _step in range(4 * n):
            b_add = _search_budget(k + 1, floor)
            b_same = _search_budget(k, floor)
            b_drop = _search_budget(k - 1, floor)
            best_gain, move = 1e-9, None
            add = np.nonzero(~inside & (total + row <= b_add) & (weights > best_gain))[0]
            if len(add):
                a = add[np.argmax(weights[add])]
                best_gain, move = float(weights[a]), ("add", a, -1)
            if k - 1 >= MIN_PAIRWISE_CELL:
                drop = np.nonzero(inside & (total - row <= b_drop) & (-weights > best_gain))[0]
                if len(drop):
                    a = drop[np.argmin(weights[drop])]
                    best_gain, move = float(-weights[a]), ("drop", a, -1)
            ins, outs = np.nonzero(inside)[0], np.nonzero(~inside)[0]
            if len(ins) and len(outs):
                # swap out u, in v: total − row[u] + row[v] − δ(u, v)
                new_total = (
                    total - row[ins][:, None] + row[outs][None, :] - delta_m[np.ix_(ins, outs)]
                )
                gain = weights[outs][None, :] - weights[ins][:, None]
                gain = np.where(new_total <= b_same, gain, -np.inf)
                i, j = np.unravel_index(int(np.argmax(gain)), gain.shape)
                if gain[i, j] > best_gain:
                    move = ("swap", outs[j], ins[i])
            if move is None:
                break
            kind, a, b = move
            if kind in ("add", "swap"):
                total += row[a]
                inside[a] = True
                row += delta_m[:, a]
                k += 1
            if kind in ("drop", "swap"):
                u = a if kind == "drop" else b
                row -= delta_m[:, u]
                total -= row[u]
                inside[u] = False
                k -= 1
        out.append(np.nonzero(inside)[0])
    return out


def _cell_ok(delta_m: np.ndarray, cell: np.ndarray, floor: float) -> bool:
    k = len(cell)
    if k < MIN_PAIRWISE_CELL:
        return False
    total = float(delta_m[np.ix_(cell, cell)].sum()) / 2.0
    return total <= _search_budget(k, floor)


def _search_budget(k: int, floor: float) -> float:
    return float(deficit_budget(k, floor, tol=SEARCH_TOL))


class _DualLP:
    """min Σπ + Σσ s.t. π(S) + σ_m >= |S| per column; rows are added as columns arrive."""

    def __init__(self, n: int, M: int):
        import highspy

        self.hs = highspy
        h = new_highs()
        h.addVars(n + M, np.zeros(n + M), np.full(n + M, highspy.kHighsInf))
        h.changeColsCost(n + M, np.arange(n + M, dtype=np.int32), np.ones(n + M))
        self.h, self.n = h, n
        self.columns: list[tuple[int, np.ndarray]] = []
        self._keys: set[tuple[int, bytes]] = set()

    def add(self, m: int, cell: np.ndarray) -> bool:
        cell = np.sort(np.asarray(cell, dtype=np.int64))
        key = (m, cell.tobytes())
        if key in self._keys:
            return False
        self._keys.add(key)
        self.columns.append((m, cell))
        idx = np.concatenate([cell, [self.n + m]]).astype(np.int32)
        self.h.addRow(float(len(cell)), self.hs.kHighsInf, len(idx), idx, np.ones(len(idx)))
        return True

    def solve(self) -> tuple[float, np.ndarray, np.ndarray]:
        self.h.run()
        x = np.maximum(np.asarray(self.h.getSolution().col_value), 0.0)
        return float(x.sum()), x[: self.n], x[self.n :]

    def primal(self) -> np.ndarray:
        """Each column's value in the packing LP (the duals of this LP's rows)."""
        return np.abs(np.asarray(self.h.getSolution().row_dual))


def _greedy_round(lp: _DualLP, delta, floor, weights, sigma, rng, models) -> int:
    """Columns of positive reduced value found by the greedy, for each model in ``models``."""
    added = 0
    for m in models:
        mine = [c for mm, c in lp.columns if mm == m]
        mine.sort(key=lambda c: -float(weights[c].sum()))
        for cell in _greedy_cells(delta[m], floor, weights, mine[:3], rng):
            if float(weights[cell].sum()) > sigma[m] + _EPS and _cell_ok(delta[m], cell, floor):
                added += lp.add(m, cell)
    return added


def _dive(delta, floor, columns, rng, deadline: float) -> np.ndarray:
    """A partition by diving: solve the packing LP (greedy pricing only) on the inputs and
    models still free, fix its largest column, repeat."""
    M, n, _ = delta.shape
    a = -np.ones(n, dtype=np.int64)
    pool = list(columns)
    while time.perf_counter() < deadline:
        free = a < 0
        models = [m for m in range(M) if not (a == m).any()]
        if not models or free.sum() < MIN_PAIRWISE_CELL:
            break
        lp = _DualLP(n, M)
        for m, cell in pool:
            if m in models and free[cell].all():
                lp.add(m, cell)
        for _ in range(4 * n):
            _, pi, sigma = lp.solve()
            weights = np.where(free, 1.0 - pi, -float(n))  # taken inputs never enter
            if time.perf_counter() >= deadline:
                break
            if not _greedy_round(lp, delta, floor, weights, sigma, rng, models):
                break
        if not lp.columns:
            break
        pool.extend(lp.columns)
        value = lp.primal() + 1e-6 * np.array([len(c) for _, c in lp.columns])
        m, cell = lp.columns[int(np.argmax(value))]
        a[cell] = m
    return a


def _best_packing(columns, n: int, M: int, time_limit: float) -> np.ndarray:
    """The largest packing of the columns (each input and each model at most once)."""
    return packing_program(columns, n, M, time_limit)[0]


def packing_program(columns, n: int, M: int, time_limit: float) -> tuple[np.ndarray, float, bool]:
    """The largest packing of the columns (each input and each model at most once) by a
    HiGHS MILP: (assignment, a proven upper bound on the packing's best size — the MILP's
    dual bound, floored, the sizes being whole — and whether that bound was reached)."""
    import highspy

    a = -np.ones(n, dtype=np.int64)
    if not columns:
        return a, 0.0, True
    h = new_highs()
    c = len(columns)
    h.addVars(c, np.zeros(c), np.ones(c))
    h.changeColsIntegrality(
        c, np.arange(c, dtype=np.int32), np.full(c, highspy.HighsVarType.kInteger)
    )
    h.changeColsCost(c, np.arange(c, dtype=np.int32), np.array([len(s) for _, s in columns], float))
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    members: list[list[int]] = [[] for _ in range(n + M)]
    for j, (m, cell) in enumerate(columns):
        for v in cell:
            members[int(v)].append(j)
        members[n + m].append(j)
    for r in members:
        if len(r) > 1:
            h.addRow(-highspy.kHighsInf, 1.0, len(r), np.array(r, np.int32), np.ones(len(r)))
    h.setOptionValue("time_limit", max(0.1, float(time_limit)))
    h.run()
    sol = h.getSolution()
    if sol.value_valid:
        for j in np.nonzero(np.asarray(sol.col_value) > 0.5)[0]:
            m, cell = columns[j]
            a[cell] = m
    status = h.getModelStatus()
    usable = status in (highspy.HighsModelStatus.kOptimal, highspy.HighsModelStatus.kTimeLimit)
    bound = float(sum(len(c) for _, c in columns))
    if usable:
        bound = min(bound, float(np.floor(h.getInfo().mip_dual_bound + 1e-6)))
    return a, bound, bool(usable and (a >= 0).sum() >= bound)


def column_generation(
    w: np.ndarray,
    floor: float,
    time_limit: float = 60.0,
    *,
    start: np.ndarray | None = None,
    seed: int = 0,
    pricing_time: float = 10.0,
    size_caps: np.ndarray | None = None,
) -> ColumnGenerationResult:
    """Per-model scope (or global at floor 1, where every cell must meet the floor).
    ``start``: a verified partition whose cells seed the columns; ``pricing_time``: the
    first cap of one exact pricing MILP (its dual bound still counts when the cap stops
    it; a round that stops there without a column is repeated with ``PRICING_GROWTH``
    times the cap while the time allows);
    ``size_caps``: proven per-model cell-size caps (``solver.pairwise_sdp``), or None."""
    t0 = time.perf_counter()
    if not 0.0 < floor <= 1.0:
        raise ValueError(f"floor must lie in (0, 1]; got {floor}")
    w = _prepare(w)
    M, n, _ = w.shape
    if n > COLGEN_MAX_INPUTS:
        raise ValueError(
            f"column generation prices exactly and takes at most {COLGEN_MAX_INPUTS} inputs; "
            f"got {n} (use pairwise_upper_bound for larger instances)"
        )
    delta = 1.0 - w
    idx = np.arange(n)
    delta[:, idx, idx] = 0.0
    sizes, fits = size_structure(w, floor, caps=size_caps)
    _, largest = size_bound(w, floor, sizes)
    rng = np.random.default_rng(seed)
    lp = _DualLP(n, M)
    if start is not None:
        start = np.asarray(start)
        if start.shape != (n,) or not is_feasible(w, start, floor, "pairwise", "per-model"):
            raise ValueError(
                "start must be a partition of the n inputs (model index or -1 each) whose "
                "cells meet the floor; screen it with solver.verify.screen_start first"
            )
        for m in range(M):
            cell = np.nonzero(start == m)[0]
            if _cell_ok(delta[m], cell, floor):
                lp.add(m, cell)
    known = int((start >= 0).sum()) if start is not None else 0
    pricers: list[_Pricer | None] = [None] * M
    bound, lp_value = float(n), float(n)
    best_pi = best_p = None
    iterations = exact_rounds = 0
    converged = capped = False
    cap = pricing_time
    settled: dict[int, float] = {}  # models priced to optimality at the multipliers settled_at
    settled_at: np.ndarray | None = None

    def left() -> float:
        return time_limit - (time.perf_counter() - t0)

    while True:
        if left() <= 0:
            capped = True
            break
        lp_value, pi, sigma = lp.solve()
        iterations += 1
        weights = 1.0 - pi
        if _greedy_round(lp, delta, floor, weights, sigma, rng, range(M)):
            continue
        # the greedy found nothing: price exactly, and take the Lagrangian bound
        added = 0
        exact_rounds += 1
        if settled_at is None or not np.array_equal(pi, settled_at):
            settled, settled_at = {}, pi.copy()
        lagrange = float(pi.sum())
        all_proven = True
        p_bounds = np.zeros(M)
        for m in range(M):
            if m in settled:  # priced to optimality at these same multipliers
                p_bounds[m] = settled[m]
                lagrange += max(0.0, settled[m])
                continue
            if pricers[m] is None:
                pricers[m] = _Pricer(delta[m], floor, sizes[m], fits[m])
            share = max(0.05, min(cap, left() / max(1, M - m)))
            mine = [c for mm, c in lp.columns if mm == m]
            hint = max(mine, key=lambda c: float(weights[c].sum())) if mine else None
            known_weight = max(0.0, float(weights[hint].sum())) if hint is not None else 0.0
            priced_from = time.perf_counter()
            # the combinatorial search is tried every round, even for a model where it ran
            # out before: the multipliers move, and banning it after one timeout left the
            # far slower MILP pricing most rounds at λ = 0.925 (bench/RESULTS.md, section 3)
            heaviest = heaviest_cell(
                delta[m],
                floor,
                weights,
                int(largest[m]),
                time.perf_counter() + PRICING_SEARCH_SHARE * share,
                known_weight,
            )
            if heaviest is not None:  # the combinatorial search proved the maximum
                p_bound, proven = heaviest[0], True
                cells = [heaviest[1]] if heaviest[1] is not None else []
            else:  # it ran out of its share: the MILP, with its dual bound, takes over
                p_bound, cells, proven = pricers[m].price(
                    weights, max(0.05, share - (time.perf_counter() - priced_from)), hint
                )
            if not proven and n <= SDP_MAX_INPUTS:
                # the capped MILP's dual bound tends to stay near the size cap; the SDP's
                # certificate bounds the same pricing problem, often far lower
                given = min(share, left())
                sdp = weighted_cell_bound(
                    w[m], floor, weights, sizes[m], given, deadline=time.perf_counter() + given
                )
                p_bound = min(p_bound, sdp)
            all_proven &= proven
            if proven:
                settled[m] = p_bound
            p_bounds[m] = p_bound
            lagrange += max(0.0, p_bound)
            for cell in cells:
                if float(weights[cell].sum()) > sigma[m] + _EPS and _cell_ok(delta[m], cell, floor):
                    added += lp.add(m, cell)
        if best_pi is None or lagrange < bound:  # valid for any π >= 0, capped pricers too
            bound, best_pi, best_p = min(bound, lagrange), pi.copy(), p_bounds
        if added == 0:
            if not all_proven and left() > 2 * cap:
                # a pricer stopped at its cap without a column: the multipliers stay, so
                # price the unsettled models again with a longer cap rather than stop
                cap *= PRICING_GROWTH
                continue
            converged = all_proven
            capped = not all_proven  # a pricer stopped at its cap
            break
        if known and floor_bound(bound) <= known:
            break  # the start is proven optimal
    packing = _best_packing(lp.columns, n, M, max(0.5, min(10.0, left() + 2.0)))
    if (packing >= 0).sum() < floor_bound(bound) and left() > 0:
        dived = _dive(delta, floor, lp.columns, rng, time.perf_counter() + left())
        if (dived >= 0).sum() > (packing >= 0).sum():
            packing = dived
    if not is_feasible(w, packing, floor, "pairwise", "per-model"):
        raise AssertionError("a packing of verified columns failed the floor: bug")
    if start is not None and (start >= 0).sum() > (packing >= 0).sum():
        packing = start.astype(np.int64)
    return ColumnGenerationResult(
        bound=float(min(bound, n)),
        lp_value=lp_value,
        assignment=packing,
        iterations=iterations,
        exact_rounds=exact_rounds,
        columns=len(lp.columns),
        converged=converged,
        capped=capped,
        seconds=time.perf_counter() - t0,
        multipliers=best_pi,
        pricing_bounds=best_p,
    )
