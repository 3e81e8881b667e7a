"""A doubly non-negative SDP cap on one model's cell size, with a certificate checked here.

A cell S of model m with |S| = k meets the floor λ iff xᵀWx >= λ·k(k − 1), where x = 1_S
and W = w[m] (diagonal zero). X = xxᵀ then satisfies

    X ⪰ 0,  X >= 0,  X_ii <= 1,  tr X = k,  ⟨J, X⟩ = k²,  Σ_j X_ij = k·X_ii  (each i),

so if the SDP  max ⟨W, X⟩  over those constraints stays below λ·k(k − 1), no size-k cell
exists, and (the feasible sizes of one model being downward closed: dropping a cell's input
with the least weight inside keeps the floor) none larger either. The SDP is solved
approximately by SCS; its answer is *not* trusted. The bound is re-derived from the solver's
multipliers alone: for any α, τ, r, d and any N >= 0 (symmetric, zero diagonal), with
R = Σ_i r_i·((e_i 1ᵀ + 1 e_iᵀ)/2 − k·e_i e_iᵀ) and M = W + N − αI − τJ − R − diag(d),

    xᵀWx <= xᵀ(W + N)x = xᵀMx + α·k + τ·k² + 0 + Σ_{i∈S} d_i
         <= λ_max(M)·k + α·k + τ·k² + (sum of the k largest d_i)

for every 0/1 vector x with k ones (xᵀRx = 0 and xᵀ diag(d) x = Σ_{i∈S} d_i for such x).
N is clipped to >= 0 before use, λ_max is computed by LAPACK with a slack far above its
error, so the test is valid whatever the solver returned: a poor solve only makes it weak.

The cap is the tightest size this proves below the caps already known (size and spectral
tests), searched by bisection between a known feasible size and that cap; a probe gets only a
share of the iterations left, and the smallest size still open gets the rest (refuting it
opens the sizes below again). On the authors'
graphs it closes most of the gap the degree and eigenvalue tests leave on single models at
λ = 0.9 (``bench/pairwise_single_model.py``).

The searches run on budgets of SCS iterations, not of seconds: a second of the time given
buys ``iterations_per_second(n)`` iterations (below SCS's rate on this machine at that size),
building one size's solver costs ``SETUP_ITERS`` of them, and every share (per model, per
size) is counted in the iterations the solves before it took. So the caps are a function of
the graph and the time given alone, as the local search's moves and the clique searches'
branches are. A deadline only guards the caller's limit; a search it stops is reported
(``timed_out``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from solver.feasibility import TOL
from solver.pairwise_bounds import _prepare, size_bound, size_structure

SDP_MAX_INPUTS = 700  # the PSD projection is a dense n×n eigendecomposition per iteration
FIRST_GAP = 0.03
EPS = 1e-3  # SCS's tolerance: the certificate, not the solver, decides what is proven
CHUNK_ITERS = 25  # SCS iterations between two certificates (SCS checks convergence as often)
MAX_PROBE_ITERS = 2500  # a size SCS has not refuted by then is left unproven
PROBE_SHARE = 0.5  # of the iterations left, the most one probe takes (the open one aside)
SETUP_ITERS = 15  # building one size's data and solver costs about this many iterations
# seconds per iteration ≈ SECONDS_BASE + SECONDS_AT_400·(n/400)^2.35: fitted to SCS's chunks
# with their certificates on this machine (2.8, 7.3, 32–35, 57–60 and 132 ms at n = 100, 200,
# 400, 500 and 700), then made slower (4–20%), so a budget ends before the time it stands for
SECONDS_BASE = 0.003
SECONDS_AT_400 = 0.036


def iterations_per_second(n: int) -> float:
    """The SCS iterations a second of the time given buys on ``n`` inputs (module docstring)."""
    return 1.0 / (SECONDS_BASE + SECONDS_AT_400 * (n / 400.0) ** 2.35)


def iteration_budget(time_limit: float, n: int) -> int:
    """The iterations ``time_limit`` seconds buy on ``n`` inputs."""
    return int(max(float(time_limit), 0.0) * iterations_per_second(n))


@dataclass
class SizeCertificate:
    """Outcome of one size test: ``proven`` when no cell of ``size`` inputs meets the floor."""

    size: int
    proven: bool
    value: float  # the certified upper bound on xᵀWx over size-k 0/1 vectors
    need: float  # what a cell of that size needs
    seconds: float
    iterations: int = 0  # SCS iterations taken
    timed_out: bool = False  # the deadline stopped it (its verdict then stands for nothing)


def _svec_index(n: int) -> tuple[np.ndarray, np.ndarray]:
    # SCS packs the PSD cone's lower triangle column by column, which is the upper triangle
    # row by row: entry p of svec(X) is X[a[p], b[p]] (times √2 off the diagonal)
    return np.triu_indices(n)


class _SizeSDP:
    """The SDP of the module docstring for one model, rebuilt per size k (the data are
    cheap next to the solve) and warm-started from the previous size's solution."""

    def __init__(self, w_m: np.ndarray, floor: float, weights: np.ndarray | None = None) -> None:
        w = np.array(w_m, dtype=float, copy=True)
        np.fill_diagonal(w, 0.0)
        self.w = 0.5 * (w + w.T)
        self.floor = floor
        # weights: maximise Σ_{i∈S} weights_i over cells instead (the column-generation
        # pricing problem); the floor then enters as one more row, ⟨W, X⟩ >= need(k)
        self.weights = None if weights is None else np.asarray(weights, dtype=float)
        self.n = n = w.shape[0]
        self.a, self.b = _svec_index(n)
        self.diag_pos = np.nonzero(self.a == self.b)[0]
        self.off_pos = np.nonzero(self.a != self.b)[0]
        self.nvar = len(self.a)
        self.warm: dict | None = None

    def need(self, k: int) -> float:
        n = self.n
        # the same allowance as the spectral test: LAPACK's eigenvalue error, far exceeded
        return (self.floor - TOL) * k * (k - 1) - 1e-7 * n * k * (1.0 + np.abs(self.w).max())

    def _data(self, k: int):
        from scipy import sparse

        n, a, b = self.n, self.a, self.b
        nv = self.nvar
        s2 = np.sqrt(2.0)
        is_diag = a == b
        scale = np.where(is_diag, 1.0, s2)
        # zero cone: tr X = k; ⟨J, X⟩ = k²; Σ_j X_ij − k X_ii = 0 for each i
        rows, cols, vals = [], [], []
        rows.append(np.zeros(n, dtype=int))
        cols.append(self.diag_pos)
        vals.append(np.ones(n))
        rows.append(np.ones(nv, dtype=int))
        cols.append(np.arange(nv))
        vals.append(scale)
        # RLT row i touches the off-diagonal entries (i, j) with coefficient ½·√2, and X_ii
        off = self.off_pos
        half = np.full(len(off), s2 / 2.0)
        rows += [2 + a[off], 2 + b[off], 2 + a[self.diag_pos]]
        cols += [off, off, self.diag_pos]
        vals += [half, half, np.full(n, 1.0 - k)]
        nz = 2 + n
        # non-negative cone: 1 − X_ii >= 0; X_ij >= 0 (i < j)
        rows += [nz + np.arange(n), nz + n + np.arange(len(off))]
        cols += [self.diag_pos, off]
        vals += [np.ones(n), -np.ones(len(off))]
        nl = n + len(off)
        if self.weights is not None:  # ⟨W, X⟩ − need >= 0
            rows.append(np.full(nv, nz + nl))
            cols.append(np.arange(nv))
            vals.append(-self.w[a, b] * scale)
            nl += 1
        # PSD cone: s = svec(X)
        r0 = nz + nl
        rows.append(r0 + np.arange(nv))
        cols.append(np.arange(nv))
        vals.append(-np.ones(nv))
        A = sparse.csc_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(r0 + nv, nv),
        )
        bvec = np.zeros(r0 + nv)
        bvec[0] = k
        bvec[1] = float(k) * k
        bvec[nz : nz + n] = 1.0
        if self.weights is None:
            c = -self.w[a, b] * scale
        else:
            bvec[nz + nl - 1] = -self.need(k)
            c = np.zeros(nv)
            c[self.diag_pos] = -self.weights[a[self.diag_pos]]
        return A, bvec, c, {"z": nz, "l": nl, "s": [n]}

    def certify(self, k: int, y: np.ndarray) -> float:
        """The certified bound on xᵀWx over 0/1 vectors with k ones (with weights: on
        Σ_{i∈S} weights_i over size-k cells), from multipliers y laid out as SCS's dual
        vector (only its zero- and non-negative-cone parts are used)."""
        from scipy.linalg import eigh

        n, a, b = self.n, self.a, self.b
        alpha, tau = float(y[0]), float(y[1])
        r = y[2 : 2 + n]
        d = y[2 + n : 2 + 2 * n]
        off = self.off_pos
        nvals = np.maximum(y[2 + 2 * n : 2 + 2 * n + len(off)], 0.0) / np.sqrt(2.0)
        N = np.zeros((n, n))
        N[a[off], b[off]] = nvals
        N = N + N.T
        R = 0.5 * (r[:, None] + r[None, :]) - k * np.diag(r)
        if self.weights is None:
            M = self.w + N - tau - R - np.diag(d)
            shift = 0.0
        else:
            # Σ_{i∈S} weights_i <= xᵀ(diag(weights) + μW)x − μ·need(k) on cells, for μ >= 0
            mu = max(float(y[2 + 2 * n + len(off)]), 0.0)
            M = mu * self.w + np.diag(self.weights) + N - tau - R - np.diag(d)
            shift = -mu * self.need(k)
        M[np.diag_indices(n)] -= alpha
        M = 0.5 * (M + M.T)
        lam = eigh(M, eigvals_only=True, subset_by_index=[n - 1, n - 1], driver="evx")[0]
        # LAPACK's slack, as in spectral_size_cap (scaled to M's entries)
        lam += 1e-7 * n * (1.0 + np.abs(M).max())
        top = np.sort(d)[::-1][:k]
        value = lam * k + alpha * k + tau * k * k + top.sum() + shift
        # floating-point slack on the sum itself (its terms can be large and of both signs)
        scale = abs(lam * k) + abs(alpha * k) + abs(tau) * k * k + np.abs(top).sum() + abs(shift)
        return float(value + 1e-9 * scale)

    def bound(
        self,
        k: int,
        iterations: int,
        stop_below: float = -np.inf,
        deadline: float = np.inf,
    ) -> tuple[float, int, bool]:
        """Run SCS on size k in chunks of ``CHUNK_ITERS``, certifying after each. Stops below
        ``stop_below``, when SCS converges, when the next chunk would pass ``iterations``
        or at ``deadline`` (``time.perf_counter()`` seconds). Returns the best certified
        value, the iterations taken, and whether the deadline stopped it."""
        import scs

        A, bvec, c, cone = self._data(k)
        solver = scs.SCS(
            {"A": A, "b": bvec, "c": c},
            cone,
            eps_abs=EPS,
            eps_rel=EPS,
            max_iters=CHUNK_ITERS,
            verbose=False,
            acceleration_lookback=10,
        )
        value, used = np.inf, 0
        for _ in range(min(int(iterations), MAX_PROBE_ITERS) // CHUNK_ITERS):
            if time.perf_counter() > deadline:
                return value, used, True
            sol = solver.solve(warm_start=self.warm is not None, **(self.warm or {}))
            self.warm = {"x": sol["x"], "y": sol["y"], "s": sol["s"]}
            used += int(sol["info"]["iter"])
            value = min(value, self.certify(k, sol["y"]))
            converged = sol["info"]["status"] in ("solved", "solved_inaccurate")
            if value < stop_below or converged:
                break
        return value, used, False

    def test(self, k: int, iterations: int, deadline: float = np.inf) -> SizeCertificate:
        """Whether the certificate refutes cells of size k, within ``iterations``."""
        t0 = time.perf_counter()
        need = self.need(k)
        value, used, late = self.bound(k, iterations, stop_below=need, deadline=deadline)
        seconds = time.perf_counter() - t0
        return SizeCertificate(k, bool(value < need), value, need, seconds, used, late)


def sdp_size_cap(
    w_m: np.ndarray,
    floor: float,
    known_feasible: int,
    known_cap: int,
    time_limit: float = 30.0,
    deadline: float | None = None,
) -> tuple[int, list[SizeCertificate], bool]:
    """The smallest cap on model ``w_m``'s cell size that the SDP proves, searched between
    ``known_feasible`` (a size a cell is known to reach, e.g. the search's: only a hint) and
    ``known_cap`` (a proven cap, e.g. the size tests'). ``time_limit`` buys the search's SCS
    iterations (module docstring); ``deadline`` (``time.perf_counter()`` seconds, by default
    twice the limit from now) stops it regardless. Returns the cap (``known_cap`` when nothing
    better was proven), every size test run, and whether the search finished (False: its
    budget or the deadline ended it, and a longer one might prove a smaller cap; a test the
    deadline stopped is the last and says ``timed_out``)."""
    n = np.asarray(w_m).shape[0]
    if n > SDP_MAX_INPUTS:
        raise ValueError(
            f"the SDP size test is dense in n: {n} inputs exceed SDP_MAX_INPUTS = "
            f"{SDP_MAX_INPUTS}; use the size and spectral tests (size_structure) instead"
        )
    deadline = time.perf_counter() + 2.0 * time_limit if deadline is None else deadline
    return _size_cap(
        _SizeSDP(w_m, floor), known_feasible, known_cap, iteration_budget(time_limit, n), deadline
    )


def _size_cap(
    sdp: _SizeSDP, known_feasible: int, known_cap: int, iterations: int, deadline: float
) -> tuple[int, list[SizeCertificate], bool]:
    # Refuting a size above the SDP's reach takes a few chunks; a size near it, or one a cell
    # reaches, can take the whole budget and still miss. So a probe gets at most PROBE_SHARE
    # of what is left, the bisection goes on above a probe that ran out, and what is left at
    # the end goes to the smallest size still open: where that refutes it, the sizes below
    # it are searched again.
    known = int(known_feasible)
    lo, hi = known, int(known_cap)  # hi: a proven cap; lo: no probe refuted it (a hint)
    lo_open = False  # lo's probe ran out of iterations, so more might refute it
    tests: list[SizeCertificate] = []
    left = int(iterations)
    while hi > known:
        whole = min(left - SETUP_ITERS, MAX_PROBE_ITERS)
        if hi > lo:
            # the first probe claims a gap of about 3% above the hint (a cold solve costs the
            # most, so it should succeed; where the hint is weak it fails, and gives up only
            # its share); bisection after that
            if tests:
                k = (lo + hi + 1) // 2
            else:
                k = min(hi, lo + max(1, int(np.ceil(FIRST_GAP * lo))))
            give = min(whole, max(4 * CHUNK_ITERS, int(PROBE_SHARE * left)))
        elif lo_open:
            k, give = lo, whole
        else:
            break
        if give < CHUNK_ITERS:
            return hi, tests, False
        cert = sdp.test(k, give, deadline)
        tests.append(cert)
        left -= SETUP_ITERS + cert.iterations
        if cert.proven:
            hi = k - 1
            if hi < lo:  # lo itself fell: the sizes below it are open again
                lo, lo_open = known, False
        if cert.timed_out:
            return hi, tests, False
        if not cert.proven:
            # SCS stopping short of its iterations means it converged above the need
            lo, lo_open = k, cert.iterations >= (give // CHUNK_ITERS) * CHUNK_ITERS
    return hi, tests, True


@dataclass
class ModelCaps:
    """Per-model cell-size caps: ``caps[m]`` is proven (the size tests' cap where the SDP
    proved nothing better); ``tests`` every SDP size test run, per model."""

    caps: np.ndarray
    size_test_caps: np.ndarray
    tests: list[list[SizeCertificate]]
    finished: bool  # False: the budget or the deadline stopped some model's search
    seconds: float
    timed_out: bool = False  # the deadline stopped a search (not the budget)

    @property
    def bound(self) -> int:
        """Σ_m caps[m]: a bound on the strength (the caller caps it at n)."""
        return int(self.caps.sum())


def sdp_model_caps(
    w: np.ndarray,
    floor: float,
    known: np.ndarray,
    time_limit: float,
    sizes: np.ndarray | None = None,
    deadline: float | None = None,
) -> ModelCaps:
    """Tighten every model's cell-size cap with the SDP, sharing the iterations that
    ``time_limit`` buys between the models (each takes an equal share of what the ones before
    it left); ``deadline`` as in ``sdp_size_cap``. ``known[m]``: a size some cell of model m
    is known to reach (a hint where the search starts; the caps' validity never depends on it);
    ``sizes``: the table of ``size_structure`` when already at hand."""
    t0 = time.perf_counter()
    deadline = t0 + 2.0 * time_limit if deadline is None else deadline
    w = _prepare(w)
    M, n, _ = w.shape
    if sizes is None:
        sizes, _ = size_structure(w, floor)
    _, base = size_bound(w, floor, sizes)
    caps = base.copy()
    tests: list[list[SizeCertificate]] = [[] for _ in range(M)]
    known = np.minimum(np.maximum(np.asarray(known, dtype=int), 1), base)
    todo = [m for m in np.argsort(known - base, kind="stable") if base[m] > known[m]]
    finished, timed_out = True, False
    left = iteration_budget(time_limit, n)
    solved: dict[bytes, int] = {}  # copies of one model (cells_per_model) are solved once
    distinct = len({w[m].tobytes() for m in todo})
    for m in todo:
        key = w[m].tobytes()
        if key in solved:
            caps[m] = min(caps[m], solved[key])
            continue
        share = left // (distinct - len(solved))
        caps[m], tests[m], done = _size_cap(
            _SizeSDP(w[m], floor), int(known[m]), int(base[m]), share, deadline
        )
        solved[key] = int(caps[m])
        left -= sum(SETUP_ITERS + t.iterations for t in tests[m])
        finished &= done
        if tests[m] and tests[m][-1].timed_out:
            timed_out = True
            break
    return ModelCaps(caps, base, tests, finished, time.perf_counter() - t0, timed_out)


def weighted_cell_bound(
    w_m: np.ndarray,
    floor: float,
    weights: np.ndarray,
    sizes_m: np.ndarray,
    time_limit: float,
    deadline: float | None = None,
) -> float:
    """A proven upper bound on max Σ_{i∈S} weights_i over the cells S of model ``w_m`` that
    meet ``floor`` and whose size k has ``sizes_m[k]`` True (the pricing problem of column
    generation; the empty cell, 0, is the caller's). Each size's bound is the smaller of the
    sum of its k largest weights and the SDP's certificate; sizes are taken by that sum,
    largest first, and those the budget (the SCS iterations ``time_limit`` buys) or the
    deadline leaves are bounded by the sum alone."""
    weights = np.asarray(weights, dtype=float)
    ks = np.nonzero(np.asarray(sizes_m, dtype=bool))[0]
    ks = ks[ks >= 2]
    if len(ks) == 0:
        return -np.inf
    deadline = time.perf_counter() + 2.0 * time_limit if deadline is None else deadline
    top = np.cumsum(np.sort(weights)[::-1])[ks - 1]
    sdp = _SizeSDP(w_m, floor, weights)
    left = iteration_budget(time_limit, sdp.n)
    best = -np.inf
    for i in np.argsort(-top, kind="stable"):
        if top[i] <= best:
            break  # every later size's top-k sum is smaller still
        value = top[i]
        if left - SETUP_ITERS >= CHUNK_ITERS and time.perf_counter() < deadline:
            certified, used, _ = sdp.bound(int(ks[i]), left - SETUP_ITERS, best, deadline)
            left -= SETUP_ITERS + used
            value = min(value, certified)
        best = max(best, value)
    return float(best)
