"""Upper bounds on per-input strength without the options (``max_models``, ``min_cell``
only restrict, so a bound without them holds with them), and the partitions they suggest.

- global scope: a closed form (each input's best IIA, sorted; the longest prefix meeting
  the floor), optimal;
- per-model scope: the Lagrangian dual of the LP relaxation, minimised over the M floor
  multipliers by a proximal bundle method (every multiplier vector gives a valid bound),
  and rounding from the best multipliers.
"""

from __future__ import annotations

import time

import highspy
import numpy as np

from solver.backends import new_highs
from solver.feasibility import meets_floor
from solver.per_input_milp import allowed_models
from solver.per_input_repair import fill, repair

# The bundle method's iteration cap: a deterministic budget (it stops earlier when it
# converges, or when a deadline, the time cap, comes first).
BUNDLE_MAX_ITER = 400
# One cut-model step of the bundle method: past these it counts as failed (a trust-region LP
# step is tried instead), so a stalled HiGHS QP never stalls the bound.
CUT_MODEL_QP_ITERATIONS = 10_000
CUT_MODEL_SECONDS = 5.0


def tie_break_eps(n: int) -> float:
    """ε with ε·Σ a x < 1/2 for every partition, so Σ x + ε Σ a x orders by strength first."""
    return 1.0 / (2 * n + 2)


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
    good = meets_floor(total, k_all, floor)
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
    return lagrangian_dual(a[:, cols], floor, tie_break_eps(a.shape[0]), deadline=deadline)
