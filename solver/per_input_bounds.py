"""Upper bounds on per-input strength, and the partitions they suggest.

- global scope: a closed form (each input's best IIA, sorted; the longest prefix meeting
  the floor), optimal without the options; the options only restrict, so it stays a bound;
- per-model scope: the Lagrangian dual of the LP relaxation, minimised over the M floor
  multipliers by a proximal bundle method (every multiplier vector gives a valid bound),
  and rounding from the best multipliers;
- per-model scope with the options: the largest cell each model can hold alone
  (``single_cell_sizes``) caps both what a model contributes and whether it can meet
  ``min_cell`` at all, which gives the bounds of ``options_bounds``.

The data stays in its own float type (float32 stays float32): the bundle method works on
it, and every bound that is returned is evaluated again in float64, block by block.
"""

from __future__ import annotations

import time

import highspy
import numpy as np

from solver.backends import new_highs
from solver.feasibility import TOL, meets_floor
from solver.per_input_milp import allowed_models
from solver.per_input_repair import fill, longest_prefix, repair

# The bundle method's iteration cap: a deterministic budget (it stops earlier when it
# converges, or when a deadline, the time cap, comes first).
BUNDLE_MAX_ITER = 400
# One cut-model step of the bundle method: past these it counts as failed (a trust-region LP
# step is tried instead), so a stalled HiGHS QP never stalls the bound.
CUT_MODEL_QP_ITERATIONS = 10_000
CUT_MODEL_SECONDS = 5.0
# Rows per block where [rows, M] values are evaluated in float64: ~16 MiB at M = 64.
BLOCK_ROWS = 32_768


def tie_break_eps(n: int) -> float:
    """ε with ε·Σ a x < 1/2 for every partition, so Σ x + ε Σ a x orders by strength first."""
    return 1.0 / (2 * n + 2)


def closed_form_global(a: np.ndarray, floor: float) -> np.ndarray:
    """Optimal for the global floor without options: any k-set's total is at most the sum
    of the k largest best-IIAs, so the longest sorted prefix meeting the floor is the
    maximal strength, and that prefix (each input in its best model) the maximal total."""
    n = a.shape[0]
    best_model = a.argmax(axis=1)
    order, k = best_prefix(a[np.arange(n), best_model], floor)
    assign = np.full(n, -1, dtype=np.int64)
    assign[order[:k]] = best_model[order[:k]]
    return assign


def best_prefix(values: np.ndarray, floor: float) -> tuple[np.ndarray, int]:
    """(the order of ``values``, largest first; k): the first k in that order are the
    longest prefix whose mean meets the floor (at the verifier's tolerance)."""
    # float64 before summing: a float32 running sum over 10^5 inputs drifts by 1e-3 or
    # more, which moves the prefix's end (and a bound claimed from it) by several inputs
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(-values, kind="stable")
    counts = np.arange(1, len(values) + 1)
    good = meets_floor(np.cumsum(values[order]), counts, floor)
    return order, int(counts[good].max()) if good.any() else 0


# ---------------------------------------------------------------------------------------
# Lagrangian dual of the per-model LP relaxation
# ---------------------------------------------------------------------------------------


class _Oracle:
    """L(μ) = Σ_i max(0, max_m [c_im + μ_m d_im]), d = a − λ, c = 1 + ε a, and one
    subgradient. c + μ d = (1 + ελ) + (μ + ε) d, so only d is stored (one [n, k] array in
    the data's float type) plus a scratch block of rows. ``cols``: the columns
    of ``a_sub`` to use (None: all); selected straight into d, so no third copy exists.

    In float32 the values are approximate (a few 1e-7 relative): good enough to steer the
    bundle method; the bound itself comes from ``dual_value``, in float64."""

    def __init__(
        self, a_sub: np.ndarray, floor: float, eps: float, cols: np.ndarray | None = None
    ) -> None:
        dtype = np.float32 if a_sub.dtype == np.float32 else np.float64
        if cols is None:
            self.d = np.array(a_sub, dtype=dtype)
        else:
            self.d = np.ascontiguousarray(a_sub[:, cols], dtype=dtype)
        self.d -= dtype(floor)
        # One block of rows at a time: the scratch stays small (and in cache), so the
        # oracle holds one [n, k] array, not two.
        self.block = max(1, min(self.d.shape[0], 2**21 // max(self.d.shape[1], 1)))
        self.buf = np.empty((self.block, self.d.shape[1]), dtype=dtype)
        self.base = 1.0 + eps * floor
        self.eps = eps
        self.calls = 0

    def __call__(self, mu: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        self.calls += 1
        n = self.d.shape[0]
        weight = (mu + self.eps).astype(self.d.dtype)
        j_all = np.empty(n, dtype=np.int64)
        v_all = np.empty(n, dtype=np.float64)
        dj_all = np.empty(n, dtype=np.float64)
        for start in range(0, n, self.block):
            stop = min(start + self.block, n)
            blk = self.d[start:stop]
            buf = self.buf[: stop - start]
            np.multiply(blk, weight, out=buf)
            j = buf.argmax(axis=1)
            r = np.arange(stop - start)
            j_all[start:stop] = j
            v_all[start:stop] = buf[r, j]
            dj_all[start:stop] = blk[r, j]
        v_all += self.base
        pos = v_all > 0
        f = float(v_all[pos].sum())
        g = np.bincount(j_all[pos], weights=dj_all[pos], minlength=self.d.shape[1])
        return f, g, j_all, v_all


def best_scores(
    a: np.ndarray, cols: np.ndarray, floor: float, eps: float, mu: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For every input: its best column j (an index into ``cols``) by the Lagrangian score
    c + μ d = (1 + ελ) + (μ + ε)(a − λ), and that score, both computed in float64 in
    blocks of ``BLOCK_ROWS`` rows (no [n, M] float64 array)."""
    n = a.shape[0]
    cols = np.asarray(cols)
    weight = np.asarray(mu, dtype=np.float64) + eps
    base = 1.0 + eps * floor
    j_all = np.empty(n, dtype=np.int64)
    v_all = np.empty(n, dtype=np.float64)
    for start in range(0, n, BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, n)
        block = a[start:stop][:, cols].astype(np.float64)
        block -= floor
        block *= weight
        j = block.argmax(axis=1)
        j_all[start:stop] = j
        v_all[start:stop] = block[np.arange(stop - start), j] + base
    return j_all, v_all


def dual_value(a: np.ndarray, cols: np.ndarray, floor: float, eps: float, mu: np.ndarray) -> float:
    """L(μ) in float64, at the floor λ − TOL that ``solver.verify`` accepts (a cell passes
    when Σ (a − λ) >= −TOL·count, i.e. Σ (a − (λ − TOL)) >= 0): for every x feasible there,
    Σ x (1 + ε a) <= Σ x (1 + ε a) + Σ_m μ_m Σ_i x_im (a_im − λ + TOL) (each added term is
    >= 0 as μ >= 0) <= Σ_i max(0, max_m ...) = this value. So it bounds the strength of
    every partition the verifier accepts, whatever μ >= 0, and whatever float type the
    data has (float32 entries are exact in float64)."""
    _, v = best_scores(a, cols, floor - TOL, eps, np.maximum(mu, 0.0))
    return float(v[v > 0].sum())


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
    # HiGHS's QP can stall on near-degenerate cut sets (seen: one call running for minutes);
    # a step that does not finish is a failed step, never a hang.
    h.setOptionValue("qp_iteration_limit", CUT_MODEL_QP_ITERATIONS)
    h.setOptionValue("time_limit", CUT_MODEL_SECONDS)
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
    max_iter: int = BUNDLE_MAX_ITER,
    cols: np.ndarray | None = None,
) -> tuple[float, np.ndarray, dict]:
    """Minimise L(μ) over μ >= 0 by a proximal bundle method. Every L(μ) is an upper bound
    on Σ x + ε Σ a x over feasible partitions (weak duality), hence on the strength.
    ``cols``: the columns of ``a_sub`` the cells may use (None: all of them).
    Returns (L at the best μ evaluated in float64 by ``dual_value``, that μ, stats)."""
    oracle = _Oracle(a_sub, floor, eps, cols)
    k = oracle.d.shape[1]
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
    # The bundle steered by (possibly float32) oracle values; the bound is L at its best μ,
    # evaluated again in float64 (valid by weak duality for any μ >= 0).
    use = np.arange(a_sub.shape[1]) if cols is None else np.asarray(cols)
    return dual_value(a_sub, use, floor, eps, center), center, stats


def round_from_duals(
    a: np.ndarray, cols: np.ndarray, floor: float, eps: float, mu: np.ndarray
) -> np.ndarray:
    """Each input to its best Lagrangian score (when positive), then each cell cut to its
    longest feasible prefix by IIA, then the rest added back where slack allows."""
    n = a.shape[0]
    cols = np.asarray(cols)
    j, v = best_scores(a, cols, floor, eps, mu)
    assign = np.where(v > 0, cols[j], -1).astype(np.int64)
    del j, v
    assign = repair(a, assign, floor, "per-model")
    assign = fill(a, assign, floor, "per-model")
    assert assign.shape == (n,)
    return assign


def relaxation_bound(
    a: np.ndarray, floor: float, scope: str, deadline: float | None
) -> tuple[float, np.ndarray | None, dict]:
    """A proven upper bound on the strength without the options (options only restrict):
    the closed form for the global floor, the Lagrangian dual for per-model floors.
    Returns (bound, the multipliers or None, the bundle method's stats)."""
    if scope == "global":
        return float((closed_form_global(a, floor) >= 0).sum()), None, {"stop": "closed form"}
    cols = np.flatnonzero(allowed_models(a, floor, scope))
    if len(cols) == 0:
        return 0.0, None, {"stop": "no model reaches the floor"}
    return lagrangian_dual(a, floor, tie_break_eps(a.shape[0]), deadline=deadline, cols=cols)


# ---------------------------------------------------------------------------------------
# Bounds with the options (per-model scope)
# ---------------------------------------------------------------------------------------


def _lone_cell(t: np.ndarray, extra: float) -> np.ndarray:
    """Positions of the largest cell from the terms t = a − λ + TOL (a cell is feasible at
    the verifier's tolerance when its terms sum to >= 0) given ``extra`` >= 0 of free
    surplus (``longest_prefix``). A margin of 1e-9 on the running sum: float rounding may
    only lengthen the cell, which keeps a bound built from it valid."""
    return longest_prefix(t, extra, 1e-9)


def lone_cells(
    a: np.ndarray, floor: float, cols: np.ndarray, priced: np.ndarray | None = None
) -> list[np.ndarray]:
    """For each model in ``cols``: the rows of the largest cell it can hold alone (per-model
    floor, at the verifier's tolerance), counting only rows outside ``priced`` (a boolean
    mask over the rows, or None) while every priced row at or above the floor still lends
    its surplus for free. Any feasible cell C of model m has |C \\ priced| <= the length
    returned: C's unpriced rows, plus at most all the priced surplus, meet the floor."""
    out = []
    free_rows = None if priced is None else np.flatnonzero(~priced)
    for m in np.asarray(cols).tolist():
        t = np.asarray(a[:, m], dtype=np.float64) - (floor - TOL)
        if priced is None:
            out.append(_lone_cell(t, 0.0))
            continue
        tp = t[priced]
        extra = float(tp[tp > 0].sum())
        out.append(free_rows[_lone_cell(t[free_rows], extra)])
    return out


def single_cell_sizes(a: np.ndarray, floor: float, cols: np.ndarray | None = None) -> np.ndarray:
    """The largest cell each model of ``cols`` (None: all) can hold alone (per-model
    floor, at the verifier's tolerance): any feasible cell of model m has at most this
    many inputs (``lone_cells``)."""
    cols = np.arange(a.shape[1]) if cols is None else np.asarray(cols)
    return np.array([len(c) for c in lone_cells(a, floor, cols)], dtype=np.int64)


def options_bounds(
    sizes: np.ndarray, max_models: int | None, min_cell: int
) -> tuple[np.ndarray, float]:
    """What ``sizes`` (from ``single_cell_sizes``) prove under the options.

    Returns (the models, as indices into ``sizes``, that can hold a non-empty cell, and an
    upper bound on the strength).

    - ``min_cell``: a model whose largest lone cell is under ``min_cell`` inputs can only
      stay empty, so the problem equals the one on the other models (any bound there holds);
    - the cells of a partition are disjoint and cell m holds at most sizes[m] inputs, so
      the strength is at most the sum of the sizes left, and with ``max_models`` = K at most
      the sum of the K largest."""
    eligible = np.flatnonzero(sizes >= max(min_cell, 1))
    top = np.sort(sizes[eligible])[::-1]
    if max_models is not None:
        top = top[:max_models]
    return eligible, float(top.sum())


def conflict_bound(
    a: np.ndarray,
    floor: float,
    cols: np.ndarray,
    max_models: int | None,
    rounds: int = 2,
    deadline: float | None = None,
) -> tuple[float, int]:
    """An upper bound on the strength (per-model floor) that counts contested inputs once.

    For any set P of rows: strength <= |P| + the sum (with ``max_models`` = K: of the K
    largest) over the models ``cols`` of |lone cell counting only rows outside P|
    (``lone_cells``). Valid because a partition's cells are disjoint: together they hold at
    most |P| rows of P, and each cell's rows outside P number at most its model's lone
    count outside P (the Lagrangian relaxation of "each input in one cell" with price 1 on
    P and 0 elsewhere, where every model's subproblem is solved exactly). P = {} gives the
    sum of lone cell sizes. P grows from the rows in two or more of the counted models'
    lone cells, for up to ``rounds`` rounds (fewer when ``deadline`` passes: every round's
    value is a bound). Returns (the best bound, |P| there)."""
    n = a.shape[0]
    cols = np.asarray(cols)
    if len(cols) == 0:
        return 0.0, 0
    priced = np.zeros(n, dtype=bool)
    best, best_p = float("inf"), 0
    for _ in range(rounds + 1):
        cells = lone_cells(a, floor, cols, priced if priced.any() else None)
        sizes = np.array([len(c) for c in cells], dtype=np.int64)
        counted = np.argsort(-sizes, kind="stable")
        if max_models is not None:
            counted = counted[:max_models]
        value = float(priced.sum() + sizes[counted].sum())
        if value < best:
            best, best_p = value, int(priced.sum())
        hits = np.zeros(n, dtype=np.int32)
        for j in counted.tolist():
            hits[cells[j]] += 1
        new = hits >= 2
        if not new.any() or (deadline is not None and time.perf_counter() > deadline):
            break
        priced |= new
    return best, best_p
