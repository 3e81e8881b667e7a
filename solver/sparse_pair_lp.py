"""A bound for sparse pairwise data that counts a pair only where both its ends are in.

The bound of ``solver.sparse_search`` credits each input with every positive pair it has,
partner inside the cell or not; where surplus above the floor is common it cannot go below
the number of measured inputs (bench/RESULTS.md, section 7). This one is the LP relaxation of
the problem written over pairs. Per model m, x_vm says input v is in m's cell and y_em that
pair e = (u, v) is, with h_e = w_me − λ + 2·TOL (the margin of ``sparse_upper_bound``):

    max Σ x_vm   s.t.   Σ_m x_vm <= 1                      (each input in one cell)
                        y_em <= x_um, y_em <= x_vm          (pairs with h_e > 0)
                        y_em >= x_um + x_vm − 1             (pairs with h_e <= 0)
                        Σ_e h_e y_em >= 0                   (the floor: mean >= λ)
                        x_vm <= Σ_{e ∋ v} y_em              (each member measured)
                        0 <= x, y <= 1.

A feasible partition with y_em = x_um·x_vm meets every row (a negative pair inside a cell is
forced in, so its deficit is paid), so strength <= the LP's value. The value is not read
from the solver: for any row multipliers r (r >= 0 on a row's finite upper side, <= 0 on a
finite lower side), since 0 <= x <= 1,

    c·x = (c − Aᵀr)·x + r·Ax <= Σ_j max(0, c_j − (Aᵀr)_j) + Σ_rows r·(the side r points at),

so the bound is that sum at HiGHS's row duals (clipped to those signs), valid whatever the
solver's tolerances or a time limit that stopped it early, plus a margin for float sums.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from solver.feasibility import TOL

# HiGHS's interior point per nonzero of A, with room: 1.4 million nonzeros (5,000 inputs,
# 27,397 pairs, 8 models) took the process from about 0.2 to 0.58 GiB peak RSS (~290 bytes each)
BYTES_PER_NONZERO = 450


@dataclass(frozen=True)
class PairLP:
    """The LP's rows as triplets (row, col, value) with row sides, and its objective."""

    rows: np.ndarray
    cols: np.ndarray
    vals: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    cost: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.lower), len(self.cost)


PAIR_LP_MIN_SECONDS = 1.0  # below this the LP is not started
# The interior point's time here grows as nonzeros^1.5: 8 s at 0.26 million nonzeros (1,000
# inputs) and 100 s at 1.4 million (5,000) on one core (bench/RESULTS.md, section 7). A solve
# expected to take a quarter more than the time left is not started: one the time limit
# stops gives no useful duals (its interior point is far from feasible).
SECONDS_AT_A_MILLION = 60.0
OVERRUN = 1.25


def pair_lp_nonzeros(n_inputs: int, n_pairs: int, n_models: int) -> int:
    """Nonzeros of the LP, at most: per model 3 per pair (McCormick), 2 per pair (measured),
    1 per pair (floor), 1 per input (measured), and 1 per input and model (one cell)."""
    return n_models * (6 * n_pairs + 2 * n_inputs)


def pair_lp_bytes(n_inputs: int, n_pairs: int, n_models: int) -> int:
    """Estimated peak bytes of ``pair_lp_bound``."""
    return BYTES_PER_NONZERO * pair_lp_nonzeros(n_inputs, n_pairs, n_models)


def pair_lp_seconds(n_inputs: int, n_pairs: int, n_models: int) -> float:
    """Expected seconds of ``pair_lp_bound`` on this kind of machine (the fit above)."""
    nonzeros = pair_lp_nonzeros(n_inputs, n_pairs, n_models)
    return SECONDS_AT_A_MILLION * (nonzeros / 1e6) ** 1.5


def build_pair_lp(pairs: np.ndarray, weights: np.ndarray, n: int, floor: float) -> PairLP:
    """The LP above; column v·M + m is x_vm, column n·M + e·M + m is y_em."""
    M, P = weights.shape
    i, j = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    nx = n * M
    rows, cols, vals, lower, upper = [], [], [], [], []
    count = 0

    def block(k: int, per_row: int, c: np.ndarray, v: np.ndarray, lo, hi) -> None:
        nonlocal count
        rows.append(count + np.repeat(np.arange(k, dtype=np.int64), per_row))
        cols.append(np.asarray(c, dtype=np.int64).reshape(-1))
        vals.append(np.asarray(v, dtype=np.float64).reshape(-1))
        lower.append(np.broadcast_to(np.asarray(lo, dtype=np.float64), (k,)))
        upper.append(np.broadcast_to(np.asarray(hi, dtype=np.float64), (k,)))
        count += k

    block(n, M, np.arange(nx), np.ones(nx), -np.inf, 1.0)  # Σ_m x_vm <= 1
    for m in range(M):
        h = np.asarray(weights[m], dtype=np.float64) - floor + 2 * TOL
        y = nx + np.arange(P, dtype=np.int64) * M + m
        pos, neg = np.flatnonzero(h > 0), np.flatnonzero(h <= 0)
        for end in (i, j):  # y_em − x_um <= 0
            c = np.stack((y[pos], end[pos] * M + m), axis=1)
            block(len(pos), 2, c, np.tile([1.0, -1.0], len(pos)), -np.inf, 0.0)
        c = np.stack((y[neg], i[neg] * M + m, j[neg] * M + m), axis=1)
        block(len(neg), 3, c, np.tile([1.0, -1.0, -1.0], len(neg)), -1.0, np.inf)
        block(1, P, y, h, 0.0, np.inf)  # the floor
        # measured: x_vm − Σ_{e ∋ v} y_em <= 0, one row per input, its entries grouped
        ends = np.concatenate((np.arange(n), i, j))
        c = np.concatenate((np.arange(n) * M + m, y, y))
        v = np.concatenate((np.ones(n), -np.ones(P), -np.ones(P)))
        order = np.argsort(ends, kind="stable")
        rows.append(count + ends[order])
        cols.append(c[order])
        vals.append(v[order])
        lower.append(np.full(n, -np.inf))
        upper.append(np.zeros(n))
        count += n
    cost = np.concatenate((np.ones(nx), np.zeros(P * M)))
    return PairLP(
        np.concatenate(rows),
        np.concatenate(cols),
        np.concatenate(vals),
        np.concatenate(lower),
        np.concatenate(upper),
        cost,
    )


def certified_value(lp: PairLP, duals: np.ndarray) -> float:
    """max c·x over {lower <= Ax <= upper, 0 <= x <= 1} is at most this, for any ``duals``
    (module docstring): each multiplier is clipped to the sign its finite side allows, and a
    margin covers the float error of the sums."""
    r = np.asarray(duals, dtype=np.float64)
    r = np.where((r > 0) & np.isfinite(lp.upper), r, 0.0) + np.where(
        (r < 0) & np.isfinite(lp.lower), r, 0.0
    )
    reduced = lp.cost - np.bincount(lp.cols, lp.vals * r[lp.rows], minlength=len(lp.cost))
    side = np.where(r > 0, r * np.where(np.isfinite(lp.upper), lp.upper, 0.0), 0.0) + np.where(
        r < 0, r * np.where(np.isfinite(lp.lower), lp.lower, 0.0), 0.0
    )
    terms = np.concatenate((np.maximum(reduced, 0.0), side))
    margin = 1e-9 * (float(np.abs(terms).sum()) + float(np.abs(lp.vals * r[lp.rows]).sum()))
    return float(terms.sum()) + margin


@dataclass(frozen=True)
class PairLPBound:
    """``bound``: certified (module docstring); ``how``: a line for the certificate's note;
    ``finished``: HiGHS reached its optimum (else the time limit stopped it); ``x``: the LP's
    x_vm as [n, M], the start of ``round_pair_lp``."""

    bound: float
    how: str
    finished: bool
    x: np.ndarray


def round_pair_lp(pairs: np.ndarray, weights: np.ndarray, x: np.ndarray, floor: float):
    """A partition from the LP's x (int64 [n], -1 for none): each input to its largest
    x_vm where that is at least ½; then, per model, members with no scored partner inside
    leave, and while the cell's pairs fall short of the floor (Σ (w − λ) < 0, stricter than
    the verifier) the member whose pairs inside fall shortest leaves. The caller verifies."""
    n, M = x.shape
    a = np.where(x.max(axis=1) >= 0.5, x.argmax(axis=1), -1).astype(np.int64)
    i, j = pairs[:, 0], pairs[:, 1]
    for m in range(M):
        h = np.asarray(weights[m], dtype=np.float64) - floor
        while True:
            inside = a == m
            both = inside[i] & inside[j]
            partners = np.bincount(i[both], minlength=n) + np.bincount(j[both], minlength=n)
            alone = inside & (partners == 0)
            if alone.any():
                a[alone] = -1
                continue
            if not both.any() or h[both].sum() >= 0.0:
                break
            share = np.bincount(i[both], h[both], minlength=n) + np.bincount(
                j[both], h[both], minlength=n
            )
            share[~inside] = np.inf
            a[int(np.argmin(share))] = -1
    return a


def pair_lp_bound(
    pairs: np.ndarray, weights: np.ndarray, n: int, floor: float, time_limit: float
) -> PairLPBound | None:
    """The pair LP's certified bound (per-model scope), or None where HiGHS gave no duals
    within ``time_limit`` seconds. A solve the time limit stopped still gives a valid bound
    (its duals so far, certified as above); ``how`` says so."""
    import highspy

    from solver.backends import new_highs

    started = time.perf_counter()
    lp = build_pair_lp(pairs, weights, n, floor)
    n_rows, n_cols = lp.shape
    order = np.lexsort((lp.cols, lp.rows))  # row-wise, as HiGHS takes it below
    model = highspy.HighsLp()
    model.num_col_, model.num_row_ = n_cols, n_rows
    model.sense_ = highspy.ObjSense.kMaximize
    model.col_cost_ = lp.cost
    model.col_lower_ = np.zeros(n_cols)
    model.col_upper_ = np.ones(n_cols)
    inf = highspy.kHighsInf
    model.row_lower_ = np.where(np.isfinite(lp.lower), lp.lower, -inf)
    model.row_upper_ = np.where(np.isfinite(lp.upper), lp.upper, inf)
    model.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    model.a_matrix_.start_ = np.searchsorted(lp.rows[order], np.arange(n_rows + 1)).astype(np.int32)
    model.a_matrix_.index_ = lp.cols[order].astype(np.int32)
    model.a_matrix_.value_ = lp.vals[order]
    model.a_matrix_.num_col_, model.a_matrix_.num_row_ = n_cols, n_rows
    h = new_highs()
    left = time_limit - (time.perf_counter() - started)
    if left <= 0:
        return None
    h.setOptionValue("time_limit", float(left))
    # interior point: the simplex took over 8 minutes at 5,000 inputs where it takes 103 s;
    # no crossover, since any duals are certified (a vertex is not needed)
    h.setOptionValue("solver", "ipm")
    h.setOptionValue("run_crossover", "off")
    h.passModel(model)
    h.run()
    solution = h.getSolution()
    if not solution.dual_valid:
        return None
    duals = np.asarray(solution.row_dual)
    # HiGHS's sign convention for a maximisation is taken as given in neither direction:
    # both orientations are certified and the smaller counts
    bound = min(certified_value(lp, duals), certified_value(lp, -duals))
    finished = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    seconds = time.perf_counter() - started
    how = (
        f"pair LP, certified from its duals (L = {bound:.3f}, {n_cols:,} columns, "
        f"{seconds:.1f}s{'' if finished else ', stopped by the time limit'})"
    )
    x = np.asarray(solution.col_value)[: n * weights.shape[0]].reshape(n, weights.shape[0])
    return PairLPBound(bound, how, finished, x)
