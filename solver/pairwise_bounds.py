"""Proven upper bounds on the best strength of a pairwise partition.

Notation: w[m] is model m's symmetric pairwise matrix (diagonal ignored), δ = 1 − w the
pair *deficit*. A cell S of model m with |S| = k meets the per-model floor λ iff its total
deficit Σ_{i<j∈S} δ_ij <= (1 − λ)·C(k, 2) ("the deficit budget").

Three valid facts are combined (per-model scope):

(a) *Size test.* Let d_k(v) be the sum of the k − 1 largest entries of row v. In a cell of
    size k, Σ_{u∈S} w(u, v) <= d_k(v), so twice the cell's total weight is at most the sum
    of the k largest values of d_k; a size-k cell needs that sum >= λ·k(k − 1). The same
    test with node v forced in (d_k(v) plus the k − 1 largest other values) and the node's
    own deficit ((k − 1) − d_k(v) <= budget) say whether v can sit in a size-k cell.
(b) *Conflict sets.* If every pair of a set I has deficit >= θ, a cell holding t nodes of
    I carries deficit >= θ·C(t, 2), so t <= t_θ(k) := max{t : θ·C(t,2) <= (1 − λ)·C(k,2)}.
    At λ = 1 this is the clique/independent-set inequality Σ_{v∈I} x_vm <= 1.
(c) *Disjointness.* Each input sits in at most one cell, each model has at most one cell.

They meet in one LP, solved with highspy: x[v,m] ∈ [0,1] (only for eligible (v,m)),
u[m,k] ∈ [0,1] (cell of model m has size k, only for sizes passing (a)), z_m = Σ_k u_mk <= 1,
Σ_v x_vm = Σ_k k·u_mk, Σ_m x_vm <= 1, x_vm <= Σ_{k: v fits a size-k cell} u_mk, and the
conflict-set cuts Σ_{v∈I} x_vm <= Σ_k min(|I|, t_θI(k))·u_mk, separated in rounds by
randomised greedy search on the current LP point. Every round's LP keeps a subset of
valid inequalities of the integer problem, so every round's optimum is a valid bound.

(d) *Spectral size cap.* For a cell S of size k, x = 1_S has xᵀWx = 2·(pair sum) >=
    λ·k(k − 1). With W = Σ_i λ_i u_i u_iᵀ (eigenvalues descending), xᵀWx = Σ_i λ_i c_i where
    c_i = (u_iᵀx)² >= 0 and Σ_i c_i = |x|² = k. For the top r eigenvectors
    c_i <= b_i(k) := max(|top-k sum of u_i|, |top-k sum of −u_i|)², and every later
    eigenvalue is <= λ_{r+1}, so xᵀWx <= λ_{r+1}·k + Σ_{i<=r} (λ_i − λ_{r+1})·c_i, whose
    largest value over 0 <= c_i <= b_i, Σ c_i <= k is taken greedily (the coefficients
    are non-negative and fall with i). A size k whose bound is below λ·k(k − 1) is
    impossible; and since the feasible sizes of one model are downward closed (dropping
    the input with the least weight inside a cell that meets λ leaves one that meets λ),
    the first impossible size k0 caps every cell below k0. With r = 0 this is the
    interlacing bound k <= 1 + λ_max(W)/λ. Sizes above the cap leave (a)'s tables.

Global scope: at λ = 1 a pooled mean of 1 forces every cell to be a clique, so the
per-model bound applies; below 1 a bad cell can be paid for by a good one, and only the
trivial bound n is returned.
"""

from __future__ import annotations

import time

import numpy as np

from solver.backends import new_highs
from solver.feasibility import TOL

_LP_TOL = 1e-6  # slack added to LP optima before they are used as bounds
SPECTRAL_MAX_N_AT_ONE = 200  # see size_structure


def _prepare(w: np.ndarray) -> np.ndarray:
    w = np.array(w, dtype=float, copy=True)
    if w.ndim == 2:
        w = w[None]
    if w.ndim != 3 or w.shape[1] != w.shape[2]:
        raise ValueError(f"w must be [M, n, n]; got shape {w.shape}")
    idx = np.arange(w.shape[1])
    w[:, idx, idx] = 0.0
    return w


def deficit_budget(k: np.ndarray | int, floor: float, tol: float = TOL) -> np.ndarray:
    """Largest total deficit a size-k cell may carry: (1 − λ + tol)·C(k, 2). Searches pass
    ``tol=SEARCH_TOL``, so that the verifier can never disagree on a cell they accept."""
    k = np.asarray(k, dtype=float)
    return max(1.0 - floor, 0.0) * k * (k - 1) / 2.0 + tol * k * (k - 1) / 2.0


def conflict_capacity(theta: float, k: np.ndarray, floor: float) -> np.ndarray:
    """t_θ(k): most nodes of a set with pairwise deficit >= θ that a size-k cell holds."""
    k = np.asarray(k, dtype=float)
    b = deficit_budget(k, floor)
    if theta <= 0:
        return k.astype(int)
    t = np.floor((1.0 + np.sqrt(1.0 + 8.0 * b / theta)) / 2.0 + 1e-9)
    return np.minimum(np.maximum(t, 1.0), k).astype(int)


def spectral_size_cap(w_m: np.ndarray, floor: float, rank: int = 5) -> int:
    """Fact (d) for one model: no cell of ``w_m`` [n, n] meeting ``floor`` has more inputs
    than the returned size (n when the test proves nothing)."""
    from scipy.linalg import eigh

    w_m = np.array(w_m, dtype=float, copy=True)
    n = w_m.shape[0]
    if n < 3:
        return n
    np.fill_diagonal(w_m, 0.0)
    w_m = 0.5 * (w_m + w_m.T)  # xᵀWx only sees the symmetric part
    r = int(min(rank, n - 1))
    # only the top r + 1 eigenpairs are needed (a dense LAPACK method: no eigenvalue is missed)
    ev, vec = eigh(w_m, subset_by_index=[n - r - 1, n - 1], driver="evx")
    ev, vec = ev[::-1], vec[:, ::-1]
    k = np.arange(2, n + 1)
    kf = k.astype(float)
    val = ev[r] * kf
    left = kf.copy()
    for i in range(r):
        up = np.cumsum(-np.sort(-vec[:, i]))[k - 1]
        down = np.cumsum(-np.sort(vec[:, i]))[k - 1]
        cap = np.minimum(np.maximum(np.abs(up), np.abs(down)) ** 2, left)
        val += (ev[i] - ev[r]) * cap
        left -= cap
    # LAPACK's eigenpairs are exact for some W + E with ‖E‖ ≲ n·eps·‖W‖ (even where close
    # eigenvalues rotate their vectors), and xᵀWx <= xᵀ(W + E)x + ‖E‖·k: a slack of
    # 1e-7·n·k·(1 + max|w|) on the quadratic form, far above that, keeps the test safe
    need = (floor - TOL) * kf * (kf - 1.0) - 1e-7 * n * kf * (1.0 + np.abs(w_m).max())
    fail = np.nonzero(val < need)[0]
    return int(k[fail[0]] - 1) if len(fail) else n


def size_structure(
    w: np.ndarray,
    floor: float,
    spectral: bool | None = None,
    caps: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Facts (a) and (d) for every model. ``spectral`` None: use (d) below floor 1, and at
    floor 1 only up to ``SPECTRAL_MAX_N_AT_ONE`` inputs — there the conflict LP's clique
    cuts bound the cells far below (d), and the eigenvalue work would eat the LP's time.
    ``caps``: per-model cell-size caps proven elsewhere (``solver.pairwise_sdp``), or None.

    Returns ``sizes`` bool [M, n + 1] (sizes[m, k]: a size-k cell of model m may meet the
    floor; k < 2 always False) and ``fits`` bool [M, n, n + 1] (fits[m, v, k]: input v may
    sit in a size-k cell of model m).
    """
    w = _prepare(w)
    M, n, _ = w.shape
    if spectral is None:
        spectral = floor < 1.0 - TOL or n <= SPECTRAL_MAX_N_AT_ONE
    sizes = np.zeros((M, n + 1), dtype=bool)
    fits = np.zeros((M, n, n + 1), dtype=bool)
    if n < 2:
        return sizes, fits
    k = np.arange(2, n + 1)  # column c = k - 2 of P holds d_k
    need = floor * k * (k - 1) - TOL * k * (k - 1)
    budget = deficit_budget(k, floor)
    for m in range(M):
        r = w[m].copy()
        np.fill_diagonal(r, -np.inf)
        r = -np.sort(-r, axis=1)[:, : n - 1]  # each row descending, diagonal dropped
        P = np.cumsum(r, axis=1)  # P[v, k-2] = d_k(v)
        Q = -np.sort(-P, axis=0)  # each column descending over nodes
        cs = np.cumsum(Q, axis=0)  # cs[j, c] = sum of the j+1 largest d_{c+2}
        cols = k - 2
        top_k = cs[k - 1, cols]
        sizes[m, 2:] = top_k >= need
        top_km1 = cs[k - 2, cols]
        kth = Q[k - 1, cols]
        with_v = np.where(P >= kth[None, :], top_k[None, :], top_km1[None, :] + P)
        own = (k - 1)[None, :] - P <= budget[None, :] + 1e-12
        if spectral and sizes[m].any():
            sizes[m, spectral_size_cap(w[m], floor) + 1 :] = False
        if caps is not None:
            sizes[m, int(caps[m]) + 1 :] = False
        fits[m, :, 2:] = (with_v >= need[None, :]) & own & sizes[m, None, 2:]
    return sizes, fits


def size_bound(
    w: np.ndarray, floor: float, sizes: np.ndarray | None = None
) -> tuple[int, np.ndarray]:
    """Bounds (a) and (d): Σ_m (largest feasible cell size of m), capped at n; and the
    per-model sizes. ``sizes``: the table of ``size_structure`` when already at hand."""
    w = _prepare(w)
    if sizes is None:
        sizes, _ = size_structure(w, floor)
    kmax = np.array([int(np.nonzero(s)[0].max()) if s.any() else 0 for s in sizes])
    return int(min(w.shape[1], kmax.sum())), kmax


class _ConflictLP:
    """The LP of the module docstring, built and re-solved incrementally with highspy."""

    def __init__(
        self,
        w: np.ndarray,
        floor: float,
        sizes: np.ndarray,
        fits: np.ndarray,
        seed: int = 0,
        sized: bool = True,
    ):
        import highspy

        self.hs = highspy
        self.w = w
        self.floor = floor
        M, n, _ = w.shape
        self.M, self.n = M, n
        self.delta = 1.0 - w
        idx = np.arange(n)
        self.delta[:, idx, idx] = 0.0
        self.rng = np.random.default_rng(seed)
        elig = fits.any(axis=2)  # [M, n]
        self.elig = elig
        self.ks = [np.nonzero(sizes[m])[0] for m in range(M)]
        self.kmax = np.array([int(k.max()) if len(k) else 0 for k in self.ks])
        self.sized = sized
        # columns: x (eligible (v,m)), then per model z_m and u_mk
        self.xcol = -np.ones((n, M), dtype=np.int64)
        nx = int(elig.sum())
        vm = np.argwhere(elig.T)  # rows (v, m)
        self.xcol[vm[:, 0], vm[:, 1]] = np.arange(nx)
        col = nx
        self.zcol = np.zeros(M, dtype=np.int64)
        self.ucol = []
        for m in range(M):
            if not sized:
                self.ucol.append(np.zeros(0, dtype=np.int64))
                continue
            self.zcol[m] = col
            col += 1
            self.ucol.append(np.arange(col, col + len(self.ks[m])))
            col += len(self.ks[m])
        self.ncol = col
        h = new_highs()
        # interior point without crossover is ~50x faster than simplex on these degenerate
        # LPs; the bound is then taken from a projected dual solution (see dual_bound)
        h.setOptionValue("solver", "ipm")
        h.setOptionValue("run_crossover", "off")
        self._lo: list[np.ndarray] = []
        self._hi: list[np.ndarray] = []
        self._ind: list[np.ndarray] = []
        self._val: list[np.ndarray] = []
        self._row: list[np.ndarray] = []
        self.nrow = 0
        h.addVars(col, np.zeros(col), np.ones(col))
        cost = np.zeros(col)
        cost[:nx] = 1.0
        h.changeColsCost(col, np.arange(col, dtype=np.int32), cost)
        h.changeObjectiveSense(highspy.ObjSense.kMaximize)
        self.h = h
        rows: list[tuple[float, float, np.ndarray, np.ndarray]] = []
        for v in range(n):
            c = self.xcol[v][self.xcol[v] >= 0]
            if len(c) > 1:
                rows.append((-np.inf, 1.0, c, np.ones(len(c))))
        for m in range(M):
            xc = self.xcol[:, m][self.xcol[:, m] >= 0]
            ks = self.ks[m]
            if not sized:
                if len(xc):
                    rows.append((-np.inf, float(self.kmax[m]), xc, np.ones(len(xc))))
                continue
            # Σ_v x_vm − Σ_k k u_mk = 0
            rows.append(
                (
                    0.0,
                    0.0,
                    np.concatenate([xc, self.ucol[m]]),
                    np.concatenate([np.ones(len(xc)), -ks.astype(float)]),
                )
            )
            # z_m − Σ_k u_mk = 0
            rows.append(
                (
                    0.0,
                    0.0,
                    np.concatenate([[self.zcol[m]], self.ucol[m]]),
                    np.concatenate([[1.0], -np.ones(len(ks))]),
                )
            )
            # x_vm <= Σ_{k: v fits} u_mk, written against z when shorter
            for v in np.nonzero(elig[m])[0]:
                f = fits[m, v, ks]
                if f.all():
                    rows.append(
                        (
                            -np.inf,
                            0.0,
                            np.array([self.xcol[v, m], self.zcol[m]]),
                            np.array([1.0, -1.0]),
                        )
                    )
                elif f.sum() <= (~f).sum():
                    uc = self.ucol[m][f]
                    rows.append(
                        (
                            -np.inf,
                            0.0,
                            np.concatenate([[self.xcol[v, m]], uc]),
                            np.concatenate([[1.0], -np.ones(len(uc))]),
                        )
                    )
                else:
                    uc = self.ucol[m][~f]
                    rows.append(
                        (
                            -np.inf,
                            0.0,
                            np.concatenate([[self.xcol[v, m], self.zcol[m]], uc]),
                            np.concatenate([[1.0, -1.0], np.ones(len(uc))]),
                        )
                    )
        self._add_rows(rows)
        self.cuts: list[tuple[int, np.ndarray, float]] = []  # (model, set, θ)
        self._seen: set[tuple[int, bytes]] = set()
        # thresholds for conflict graphs: distinct positive deficits (few), else a grid
        pos = np.unique(np.round(self.delta[self.delta > TOL], 9))
        self.thetas = list(pos) if len(pos) <= 4 else [float(pos.min()), 0.25, 0.5, 0.75, 1.0]
        self.thetas = sorted({float(t) for t in self.thetas if t > 0})
        if floor >= 1.0 - TOL and self.thetas:
            self.thetas = [self.thetas[0]]  # any positive deficit is a conflict at λ = 1

    def _add_rows(self, rows) -> None:
        if not rows:
            return
        lo = np.array([r[0] for r in rows], dtype=float)
        hi = np.array([r[1] for r in rows], dtype=float)
        lens = np.array([len(r[2]) for r in rows])
        starts = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int32)
        ind = np.concatenate([r[2] for r in rows]).astype(np.int32)
        val = np.concatenate([r[3] for r in rows]).astype(float)
        self._lo.append(lo)
        self._hi.append(hi)
        self._ind.append(ind)
        self._val.append(val)
        self._row.append(np.repeat(np.arange(self.nrow, self.nrow + len(rows)), lens))
        self.nrow += len(rows)
        lo = np.where(np.isinf(lo), -self.hs.kHighsInf, lo)
        hi = np.where(np.isinf(hi), self.hs.kHighsInf, hi)
        self.h.addRows(len(rows), lo, hi, len(ind), starts, ind, val)

    def dual_bound(self, row_dual: np.ndarray) -> float:
        """A rigorous upper bound from any row multipliers: for y projected onto the valid
        sign pattern (y_r > 0 only on rows with a finite upper side, y_r < 0 only on rows
        with a finite lower side), max_{x∈[0,1]} c·x + Σ_r y_r (b_r − a_r·x) bounds the LP,
        whatever the accuracy of the solver. Both sign conventions are tried."""
        lo = np.concatenate(self._lo)
        hi = np.concatenate(self._hi)
        ind = np.concatenate(self._ind)
        val = np.concatenate(self._val)
        row = np.concatenate(self._row)
        cost = np.zeros(self.ncol)
        cost[: int((self.xcol >= 0).sum())] = 1.0
        best = np.inf
        for sign in (1.0, -1.0):
            y = sign * np.asarray(row_dual, dtype=float)
            y = np.where((y > 0) & np.isinf(hi), 0.0, y)
            y = np.where((y < 0) & np.isinf(lo), 0.0, y)
            rhs = np.where(y > 0, np.where(np.isinf(hi), 0.0, hi), np.where(np.isinf(lo), 0.0, lo))
            aty = np.bincount(ind, weights=val * y[row], minlength=self.ncol)
            red = cost - aty
            best = min(best, float(y @ rhs) + float(np.maximum(red, 0.0).sum()))
        return best

    def cut_coefficients(self, m: int, members: np.ndarray, theta: float) -> np.ndarray:
        """c_k = min(|I|, t_θ(k)) for the model's feasible sizes."""
        ks = self.ks[m]
        return np.minimum(len(members), conflict_capacity(theta, ks, self.floor))

    def _cut_row(self, m: int, members: np.ndarray, theta: float):
        xc = self.xcol[members, m]
        if not self.sized:
            cap = min(len(members), int(conflict_capacity(theta, self.kmax[m], self.floor)))
            return (-np.inf, float(cap), xc, np.ones(len(xc)))
        c = self.cut_coefficients(m, members, theta).astype(float)
        cmax = c.max() if len(c) else 0.0
        cmin = c.min() if len(c) else 0.0
        if (c < cmax).sum() <= (c > cmin).sum():
            sel = c < cmax  # Σ x − cmax z + Σ (cmax − c_k) u_k <= 0
            return (
                -np.inf,
                0.0,
                np.concatenate([xc, [self.zcol[m]], self.ucol[m][sel]]),
                np.concatenate([np.ones(len(xc)), [-cmax], cmax - c[sel]]),
            )
        sel = c > cmin  # Σ x − cmin z − Σ (c_k − cmin) u_k <= 0
        return (
            -np.inf,
            0.0,
            np.concatenate([xc, [self.zcol[m]], self.ucol[m][sel]]),
            np.concatenate([np.ones(len(xc)), [-cmin], -(c[sel] - cmin)]),
        )

    def add_cuts(self, found) -> int:
        rows = []
        for m, members, theta in found:
            members = np.sort(members)
            key = (m, members.tobytes())
            if key in self._seen or len(members) < 2:
                continue
            self._seen.add(key)
            self.cuts.append((m, members, theta))
            rows.append(self._cut_row(m, members, theta))
        self._add_rows(rows)
        return len(rows)

    def greedy_sets(
        self, m: int, theta: float, score: np.ndarray, passes: int, noise: float
    ) -> list[np.ndarray]:
        """Greedy partitions of the eligible nodes into sets with pairwise deficit >= θ
        (colour classes of the graph {δ < θ}), each set grown in order of (noisy) score."""
        conflict = self.delta[m] >= theta - 1e-12
        np.fill_diagonal(conflict, False)
        cand = np.nonzero(self.elig[m])[0]
        out = []
        for p in range(passes):
            s = score[cand] + noise * self.rng.random(len(cand))
            order = cand[np.argsort(-s, kind="stable")]
            conf = conflict[np.ix_(order, order)]
            left = np.ones(len(order), dtype=bool)
            while left.any():
                allowed = left.copy()
                chosen = []
                while True:
                    i = int(np.argmax(allowed))
                    if not allowed[i]:
                        break
                    chosen.append(i)
                    allowed &= conf[i]
                left[chosen] = False
                if len(chosen) >= 2:
                    out.append(order[np.array(chosen)])
                if score[order[left]].sum() <= 1e-6 and p > 0:
                    break
        return out

    def seed_cuts(self, passes: int = 3) -> int:
        found = []
        for m in range(self.M):
            if not self.elig[m].any():
                continue
            deg = self.delta[m][:, self.elig[m]].sum(axis=1)
            for theta in self.thetas:
                for members in self.greedy_sets(m, theta, deg / max(deg.max(), 1.0), passes, 1.0):
                    found.append((m, members, self._set_theta(m, members)))
        return self.add_cuts(found)

    def _set_theta(self, m: int, members: np.ndarray) -> float:
        sub = self.delta[m][np.ix_(members, members)]
        iu = np.triu_indices(len(members), 1)
        return float(sub[iu].min())

    def solve(self) -> tuple[float | None, np.ndarray | None]:
        """(rigorous bound from the duals, primal point) or (None, None)."""
        self.h.run()
        solution = self.h.getSolution()
        if not solution.dual_valid:
            return None, None
        val = self.dual_bound(np.asarray(solution.row_dual))
        sol = np.asarray(solution.col_value) if solution.value_valid else None
        return val, sol

    def separate(self, sol: np.ndarray, passes: int = 6) -> int:
        found = []
        for m in range(self.M):
            if not self.elig[m].any():
                continue
            xv = np.zeros(self.n)
            ok = self.xcol[:, m] >= 0
            xv[ok] = sol[self.xcol[ok, m]]
            if xv.max() <= 1e-6:
                continue
            uv = sol[self.ucol[m]]
            for theta in self.thetas:
                for members in self.greedy_sets(m, theta, xv, passes, 0.3):
                    members = (
                        members[xv[members] > 1e-9] if (xv[members] > 1e-9).sum() >= 2 else members
                    )
                    th = self._set_theta(m, members)
                    if self.sized:
                        rhs = float(self.cut_coefficients(m, members, th) @ uv)
                    else:
                        rhs = min(
                            len(members), int(conflict_capacity(th, self.kmax[m], self.floor))
                        )
                    if xv[members].sum() - rhs > 1e-4:
                        found.append((m, members, th))
        return self.add_cuts(found)


def conflict_lp_bound(
    w: np.ndarray,
    floor: float,
    time_limit: float = 10.0,
    *,
    max_rounds: int = 50,
    seed: int = 0,
    sizes: np.ndarray | None = None,
    fits: np.ndarray | None = None,
    sized: bool | None = None,
):
    """Run the cutting-plane LP; returns (bound, rounds, the _ConflictLP object)."""
    t0 = time.perf_counter()
    w = _prepare(w)
    if sizes is None or fits is None:
        sizes, fits = size_structure(w, floor)
    if sized is None:  # the size-indexed LP pays on small instances below floor 1
        sized = floor < 1.0 - TOL and int(sizes.sum()) <= 2000
    lp = _ConflictLP(w, floor, sizes, fits, seed=seed, sized=sized)
    lp.seed_cuts()
    best = float(w.shape[1])
    rounds = 0
    last = None
    while True:
        remaining = time_limit - (time.perf_counter() - t0)
        if remaining <= 0:
            break
        # HiGHS compares time_limit with its run clock, which adds up over every run() of
        # this object: the limit is that clock plus what is left of ours
        lp.h.setOptionValue("time_limit", lp.h.getRunTime() + max(remaining, 0.01))
        t_solve = time.perf_counter()
        val, sol = lp.solve()
        t_solve = time.perf_counter() - t_solve
        if val is None:
            break
        rounds += 1
        best = min(best, val + _LP_TOL)
        if sol is None:
            break
        if rounds >= max_rounds or (last is not None and last - val < 1e-3 and rounds > 3):
            break
        last = val
        # Stop while the last LP point is still current when the next, larger LP would
        # likely be cut short: callers read that point (pairwise_exact keeps the cuts tight
        # there), and a point cut short by the time limit or made stale by new cuts is none.
        if time_limit - (time.perf_counter() - t0) < 4.0 * t_solve + 0.2:
            break
        if lp.separate(sol) == 0:
            break
    return best, rounds, lp


def pairwise_upper_bound(
    w: np.ndarray, floor: float, scope: str = "per-model", time_limit: float = 10.0
) -> tuple[float, str]:
    """A proven upper bound on the best strength, and a short text naming how it was obtained."""
    if scope not in ("per-model", "global"):
        raise ValueError(f"unknown scope {scope!r}; expected 'per-model' or 'global'")
    if not 0.0 < floor <= 1.0:
        raise ValueError(f"floor must lie in (0, 1]; got {floor}")
    t0 = time.perf_counter()
    w = _prepare(w)
    n = w.shape[1]
    if n < 2:
        return 0.0, "fewer than two inputs"
    if scope == "global" and floor < 1.0 - TOL:
        return float(n), "trivial (n): a pooled floor below 1 lets one cell subsidise another"
    sizes, fits = size_structure(w, floor)
    a_bound, kmax = size_bound(w, floor, sizes)
    caps = list(map(int, kmax))
    text = f"size tests (a, d): sum of per-model max cell sizes {caps} = {a_bound}"
    best = float(a_bound)
    remaining = time_limit - (time.perf_counter() - t0)
    if remaining > 0.05 and best > 0:
        lp_val, rounds, _ = conflict_lp_bound(w, floor, remaining, sizes=sizes, fits=fits)
        if lp_val < best:
            best = lp_val
            text = (
                f"conflict-set LP ({rounds} rounds; eligibility, size test, disjointness, "
                f"conflict cuts) = {lp_val:.2f}; size test alone {a_bound}"
            )
    if scope == "global":
        text += " (global at floor 1: every cell must be a clique)"
    return float(min(best, n)), text
