"""The local search, the proven bound and ``solve_pairwise_sparse`` over a sparse pair tensor
(``solver.sparse_data``): a numba annealing walk on the pair graph in CSR form, each move
costing O(degree), checked by ``solver.sparse_verify``."""

from __future__ import annotations

import time

import numpy as np
from numba import njit

from solver.certificate import Certificate, floor_bound
from solver.data import PairwiseIIA
from solver.feasibility import SCOPES, SEARCH_TOL, TOL, meets_floor
from solver.memory import check_sparse_memory
from solver.pairwise_search import SearchResult, _penalty, _randint, _uniform
from solver.sparse_data import SparsePairwiseIIA, as_sparse, sparse_arrays
from solver.sparse_pair_lp import (
    OVERRUN,
    PAIR_LP_MIN_SECONDS,
    pair_lp_bound,
    pair_lp_bytes,
    pair_lp_seconds,
    round_pair_lp,
)
from solver.sparse_verify import (
    check_partition_sparse,
    is_feasible_sparse,
    sparse_partition_problems,
)

# ----------------------------------------------------------------------------------------------
# Local search on the pair graph. CSR adjacency: the partners of v are nbr[indptr[v]:indptr[v+1]]
# and ew[m, e] is the weight of that pair under model m (both directions stored).
#
# State: a[n] (cell or -1); s[M, n] = sum of w[m] from v to the members of cell m; d[M, n] = scored
# partners of v inside cell m; k[M] sizes; ps[M] pair sums; pc[M] pair counts; z[M] members of
# cell m with no scored partner inside (d[m, v] == 0). Moving v touches only v's partners, so a
# move costs O(deg v), and a cell's mean is ps / pc over the scored pairs inside it.

_T_HI, _T_LO = 0.5, 0.02  # geometric cooling within a cycle (as the dense search)
_PEN_LO, _PEN_HI = 5.0, 50.0  # shortfall penalty per "input's worth" of slack
_PENZ_LO, _PENZ_HI = 1.0, 10.0  # penalty per unmeasured member (1: as costly as it is worth)
_REWARD = 5.0  # reward for spare slack: pull toward room for more inputs
_P_SWAP = 0.2  # share of exchange moves
_P_NEIGHBOUR = 0.5  # share of reassignments that target the cell of one of v's partners
_CYCLE_MOVES = 150  # moves per (input x (models + 1)) per cycle: 6.75M at n = 5000, M = 8
_REPAIRS = 200  # repaired snapshots per cycle
_ADD_ROUNDS = 20
_CHUNK_S = 0.2
DEFAULT_CYCLES = 2


def sparse_cycle_moves(n: int, n_models: int) -> int:
    """Moves in one annealing cycle of the sparse search."""
    return max(20_000, _CYCLE_MOVES * n * (n_models + 1))


def sparse_default_moves(n: int, n_models: int) -> int:
    """The default budget, from the instance's size alone (never the clock)."""
    return DEFAULT_CYCLES * sparse_cycle_moves(n, n_models)


def build_csr(pairs: np.ndarray, weights: np.ndarray, n: int):
    """(indptr int64 [n + 1], nbr int64 [2P], ew float64 [M, 2P]) of the pair graph."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    src = np.concatenate((pairs[:, 0], pairs[:, 1]))
    dst = np.concatenate((pairs[:, 1], pairs[:, 0]))
    order = np.argsort(src, kind="stable")
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    nbr = np.ascontiguousarray(dst[order])
    w = np.asarray(weights, dtype=np.float64)
    ew = np.ascontiguousarray(np.concatenate((w, w), axis=1)[:, order])
    return indptr, nbr, ew


_meets = njit(cache=True)(meets_floor)


@njit(cache=True)
def _ok(total, count, floor):
    # Searches decide with half the verifier's tolerance: a verdict taken here on incrementally
    # kept sums can never be flipped by the verifier's sums in another order.
    return _meets(total, count, floor, SEARCH_TOL)


@njit(cache=True)
def _rebuild(indptr, nbr, ew, a, s, d, k, ps, pc, z):
    M, n = s.shape
    s[:, :] = 0.0
    d[:, :] = 0
    k[:] = 0
    ps[:] = 0.0
    pc[:] = 0
    z[:] = 0
    for v in range(n):
        m = a[v]
        if m >= 0:
            k[m] += 1
            for e in range(indptr[v], indptr[v + 1]):
                u = nbr[e]
                s[m, u] += ew[m, e]
                d[m, u] += 1
    for v in range(n):
        m = a[v]
        if m >= 0:
            ps[m] += s[m, v]
            pc[m] += d[m, v]
            if d[m, v] == 0:
                z[m] += 1
    for m in range(M):
        ps[m] *= 0.5
        pc[m] //= 2


@njit(cache=True)
def _move(indptr, nbr, ew, a, s, d, k, ps, pc, z, v, t):
    # "Input v goes to t" (t = -1: fallback), applied to every incremental quantity.
    c = a[v]
    if c == t:
        return
    if c >= 0:
        ps[c] -= s[c, v]
        pc[c] -= d[c, v]
        k[c] -= 1
        if d[c, v] == 0:
            z[c] -= 1
        for e in range(indptr[v], indptr[v + 1]):
            u = nbr[e]
            s[c, u] -= ew[c, e]
            d[c, u] -= 1
            if a[u] == c and d[c, u] == 0:
                z[c] += 1  # u has just lost its only partner inside c
    a[v] = t
    if t >= 0:
        ps[t] += s[t, v]
        pc[t] += d[t, v]
        k[t] += 1
        if d[t, v] == 0:
            z[t] += 1
        for e in range(indptr[v], indptr[v + 1]):
            u = nbr[e]
            if a[u] == t and d[t, u] == 0:
                z[t] -= 1  # v is u's first partner inside t
            s[t, u] += ew[t, e]
            d[t, u] += 1


@njit(cache=True)
def _cell_ok(m, k, ps, pc, z, floor):
    if k[m] == 0:
        return True
    return z[m] == 0 and pc[m] >= 1 and _ok(ps[m], pc[m], floor)


@njit(cache=True)
def _state_ok(k, ps, pc, z, floor, glob):
    tot = 0.0
    cnt = 0
    for m in range(k.shape[0]):
        if k[m] == 0:
            continue
        if z[m] != 0 or pc[m] < 1:
            return False
        if not glob and not _ok(ps[m], pc[m], floor):
            return False
        tot += ps[m]
        cnt += pc[m]
    return _ok(tot, cnt, floor) if glob else True


@njit(cache=True)
def _leave(indptr, nbr, ew, a, s, d, k, ps, pc, z, v, stack):
    # v goes to the fallback, and so does every member this leaves with no partner inside
    # (and so on): each input is pushed at most once while in a cell.
    top = 1
    stack[0] = v
    while top > 0:
        top -= 1
        x = stack[top]
        c = a[x]
        if c < 0:
            continue
        _move(indptr, nbr, ew, a, s, d, k, ps, pc, z, x, -1)
        for e in range(indptr[x], indptr[x + 1]):
            u = nbr[e]
            if a[u] == c and d[c, u] == 0:
                stack[top] = u
                top += 1


@njit(cache=True)
def _repair(indptr, nbr, ew, floor, glob, a, s, d, k, ps, pc, z, stack, cand, cgain, cm):
    """Turn the state (in place) into a feasible partition and grow it greedily; return its
    strength. 1: unmeasured members leave; 2: peel, while a cell fails, the member whose
    leaving raises its slack most; 3: add fallback inputs (singly, then adjacent pairs, which
    is also how empty cells start) best slack first, while every cell stays feasible."""
    M, n = s.shape
    for v in range(n):
        m = a[v]
        if m >= 0 and d[m, v] == 0:
            _leave(indptr, nbr, ew, a, s, d, k, ps, pc, z, v, stack)
    if not glob:
        # Per-model cells fail independently, and a member's leaving only touches its own cell:
        # peel each failing cell scanning its own members (O(k) per step, not O(n)).
        for m in range(M):
            if _cell_ok(m, k, ps, pc, z, floor):
                continue
            size = 0
            for v in range(n):
                if a[v] == m:
                    cand[size] = v
                    size += 1
            while not _cell_ok(m, k, ps, pc, z, floor):
                best_v = -1
                best_gain = -1e300
                for idx in range(size):
                    v = cand[idx]
                    if a[v] != m:
                        continue
                    gain = floor * d[m, v] - s[m, v]
                    if gain > best_gain:
                        best_gain = gain
                        best_v = v
                if best_v < 0:
                    break
                _leave(indptr, nbr, ew, a, s, d, k, ps, pc, z, best_v, stack)
    while not _state_ok(k, ps, pc, z, floor, glob):
        best_v = -1
        best_gain = -1e300
        for v in range(n):
            m = a[v]
            if m < 0:
                continue
            if not glob and _cell_ok(m, k, ps, pc, z, floor):
                continue
            gain = floor * d[m, v] - s[m, v]
            if glob:
                gain /= max(d[m, v], 1)  # pooled: the worst mean, not the busiest input
            if gain > best_gain:
                best_gain = gain
                best_v = v
        if best_v < 0:
            break
        _leave(indptr, nbr, ew, a, s, d, k, ps, pc, z, best_v, stack)
    for _ in range(_ADD_ROUNDS):
        added = 0
        tot = 0.0
        cnt = 0
        for m in range(M):
            tot += ps[m]
            cnt += pc[m]
        # Single adds: v joins a cell where it has a partner, best slack change first.
        nc = 0
        for v in range(n):
            if a[v] >= 0:
                continue
            best = -1e300
            bm = -1
            for m in range(M):
                if d[m, v] < 1:
                    continue
                gain = s[m, v] - floor * d[m, v]
                if gain <= best:
                    continue
                if glob:
                    feas = _ok(tot + s[m, v], cnt + d[m, v], floor)
                else:
                    feas = _ok(ps[m] + s[m, v], pc[m] + d[m, v], floor)
                if feas:
                    best = gain
                    bm = m
            if bm >= 0:
                cand[nc] = v
                cgain[nc] = -best
                nc += 1
        order = np.argsort(cgain[:nc])
        for idx in order:
            v = cand[idx]
            if glob:
                tot = 0.0
                cnt = 0
                for m in range(M):
                    tot += ps[m]
                    cnt += pc[m]
            best = -1e300
            bm = -1
            for m in range(M):
                if d[m, v] < 1:
                    continue
                gain = s[m, v] - floor * d[m, v]
                if glob:
                    feas = _ok(tot + s[m, v], cnt + d[m, v], floor)
                else:
                    feas = _ok(ps[m] + s[m, v], pc[m] + d[m, v], floor)
                if feas and gain > best:
                    best = gain
                    bm = m
            if bm >= 0:
                _move(indptr, nbr, ew, a, s, d, k, ps, pc, z, v, bm)
                added += 1
        # Pair adds: two adjacent fallback inputs join a cell together (measured by their pair).
        nc = 0
        for v in range(n):
            if a[v] >= 0:
                continue
            for e in range(indptr[v], indptr[v + 1]):
                u = nbr[e]
                if u <= v or a[u] >= 0:
                    continue
                best = -1e300
                bm = -1
                for m in range(M):
                    ds = s[m, v] + s[m, u] + ew[m, e]
                    dc = d[m, v] + d[m, u] + 1
                    gain = ds - floor * dc
                    if gain > best and _ok(ps[m] + ds, pc[m] + dc, floor):
                        best = gain
                        bm = m
                if bm >= 0:
                    cand[nc] = e
                    cgain[nc] = -best
                    cm[nc] = v
                    nc += 1
        order = np.argsort(cgain[:nc])
        for idx in order:
            e = cand[idx]
            v = cm[idx]
            u = nbr[e]
            if a[v] >= 0 or a[u] >= 0:
                continue
            tot = 0.0
            cnt = 0
            for m in range(M):
                tot += ps[m]
                cnt += pc[m]
            best = -1e300
            bm = -1
            for m in range(M):
                ds = s[m, v] + s[m, u] + ew[m, e]
                dc = d[m, v] + d[m, u] + 1
                gain = ds - floor * dc
                if glob:
                    feas = _ok(tot + ds, cnt + dc, floor)
                else:
                    feas = _ok(ps[m] + ds, pc[m] + dc, floor)
                if feas and gain > best:
                    best = gain
                    bm = m
            if bm >= 0:
                _move(indptr, nbr, ew, a, s, d, k, ps, pc, z, v, bm)
                _move(indptr, nbr, ew, a, s, d, k, ps, pc, z, u, bm)
                added += 2
        if added == 0:
            break
    strength = 0
    for m in range(M):
        strength += k[m]
    return strength


@njit(cache=True)
def _cell_cost(m, k, ps, pc, z, floor, pen, penz, reward):
    # Penalised cost of cell m. Slack is normalised by pc / k (half the mean number of scored
    # partners inside): one input's worth of mean weight, as (k - 1) / 2 in the dense search.
    if m < 0 or k[m] == 0:
        return 0.0
    cost = penz * z[m]
    if pc[m] > 0:
        cost += _penalty(ps[m] - floor * pc[m], max(pc[m] / k[m], 0.5), pen, reward)
    return cost


@njit(cache=True)
def _global_cost(k, ps, pc, z, floor, pen, penz, reward):
    tot = 0.0
    cnt = 0
    nin = 0
    cost = 0.0
    for m in range(k.shape[0]):
        cost += penz * z[m]
        tot += ps[m] - floor * pc[m]
        cnt += pc[m]
        nin += k[m]
    if cnt > 0:
        cost += _penalty(tot, max(cnt / max(nin, 1), 0.5), pen, reward)
    return cost


@njit(cache=True)
def _two_cells_cost(c, t, glob, k, ps, pc, z, floor, pen, penz):
    # What a move between cells c and t can change: the pooled cost (global scope), or the
    # two cells' own costs.
    if glob:
        return _global_cost(k, ps, pc, z, floor, pen, penz, _REWARD)
    return _cell_cost(c, k, ps, pc, z, floor, pen, penz, _REWARD) + _cell_cost(
        t, k, ps, pc, z, floor, pen, penz, _REWARD
    )


@njit(cache=True)
def _anneal(
    indptr, nbr, ew, floor, glob, a, s, d, k, ps, pc, z, best_a, best_val, rng, n_moves, move0,
    cycle, repair_every, ca, cs, cd, ck, cps, cpc, cz, stack, cand, cgain, cm,
):  # fmt: skip
    """``n_moves`` annealing moves; move ``move0 + i`` sits at ``(move0 + i) % cycle`` of a
    cyclic schedule, each cycle restarting from the best feasible partition ``best_a``, so the
    result does not depend on how the moves are chunked. Moves are applied, scored, and undone
    when rejected (cheap: O(deg) each way)."""
    M, n = s.shape
    log_ratio = np.log(_T_LO / _T_HI)
    for i in range(n_moves):
        pos = (move0 + i) % cycle
        if pos == 0:
            a[:] = best_a
            _rebuild(indptr, nbr, ew, a, s, d, k, ps, pc, z)
        frac = pos / cycle
        temp = _T_HI * np.exp(log_ratio * frac)
        pen = _PEN_LO + (_PEN_HI - _PEN_LO) * frac
        penz = _PENZ_LO + (_PENZ_HI - _PENZ_LO) * frac
        v = _randint(rng, n)
        c = a[v]
        if _uniform(rng) < _P_SWAP:
            u = _randint(rng, n)
            t = a[u]
            if t != c:
                before = _two_cells_cost(c, t, glob, k, ps, pc, z, floor, pen, penz)
                _move(indptr, nbr, ew, a, s, d, k, ps, pc, z, v, t)
                _move(indptr, nbr, ew, a, s, d, k, ps, pc, z, u, c)
                after = _two_cells_cost(c, t, glob, k, ps, pc, z, floor, pen, penz)
                delta = before - after
                if not (delta >= 0.0 or _uniform(rng) < np.exp(delta / temp)):
                    _move(indptr, nbr, ew, a, s, d, k, ps, pc, z, u, t)
                    _move(indptr, nbr, ew, a, s, d, k, ps, pc, z, v, c)
        else:
            deg = indptr[v + 1] - indptr[v]
            if deg > 0 and _uniform(rng) < _P_NEIGHBOUR:
                t = a[nbr[indptr[v] + _randint(rng, deg)]]
            else:
                t = _randint(rng, M + 1) - 1
            if t != c:
                before = _two_cells_cost(c, t, glob, k, ps, pc, z, floor, pen, penz)
                _move(indptr, nbr, ew, a, s, d, k, ps, pc, z, v, t)
                after = _two_cells_cost(c, t, glob, k, ps, pc, z, floor, pen, penz)
                delta = (1.0 if t >= 0 else 0.0) - (1.0 if c >= 0 else 0.0) + before - after
                if not (delta >= 0.0 or _uniform(rng) < np.exp(delta / temp)):
                    _move(indptr, nbr, ew, a, s, d, k, ps, pc, z, v, c)
        if (pos + 1) % repair_every == 0 or pos == cycle - 1:
            # Repair a copy, so the walk keeps its (possibly infeasible) course.
            ca[:] = a
            cs[:, :] = s
            cd[:, :] = d
            ck[:] = k
            cps[:] = ps
            cpc[:] = pc
            cz[:] = z
            val = _repair(
                indptr, nbr, ew, floor, glob, ca, cs, cd, ck, cps, cpc, cz, stack, cand, cgain, cm
            )
            if val > best_val[0]:
                best_val[0] = val
                best_a[:] = ca


# ----------------------------------------------------------------------------------------------
# Python entry points: greedy, search, bound, solve.


class _State:
    """The search's arrays for one instance (the walk, a repair copy, scratch)."""

    def __init__(self, indptr, nbr, ew, n: int, assignment: np.ndarray) -> None:
        M = ew.shape[0]
        self.graph = (indptr, nbr, ew)
        self.a = np.asarray(assignment, dtype=np.int64).copy()
        self.s = np.zeros((M, n))
        self.d = np.zeros((M, n), dtype=np.int64)
        self.k = np.zeros(M, dtype=np.int64)
        self.ps = np.zeros(M)
        self.pc = np.zeros(M, dtype=np.int64)
        self.z = np.zeros(M, dtype=np.int64)
        _rebuild(indptr, nbr, ew, self.a, self.s, self.d, self.k, self.ps, self.pc, self.z)
        size = max(n, nbr.shape[0] // 2, 1)
        self.stack = np.zeros(n, dtype=np.int64)
        self.cand = np.zeros(size, dtype=np.int64)
        self.cgain = np.zeros(size)
        self.cm = np.zeros(size, dtype=np.int64)

    def arrays(self):
        return self.a, self.s, self.d, self.k, self.ps, self.pc, self.z

    def copy_arrays(self):
        return tuple(x.copy() for x in self.arrays())

    def scratch(self):
        return self.stack, self.cand, self.cgain, self.cm

    def repair(self, floor: float, glob: bool, arrays=None) -> int:
        arrays = self.arrays() if arrays is None else arrays
        return int(_repair(*self.graph, floor, glob, *arrays, *self.scratch()))


def _check_floor_scope(floor: float, scope: str) -> None:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; expected one of {SCOPES}")
    if not 0.0 < floor <= 1.0:
        raise ValueError(f"floor must lie in (0, 1], got {floor}")


def argmax_start(pairs: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """Each input in the model where the mean over its scored pairs is highest (ties: the
    first model); inputs with no scored pair in the fallback."""
    per_input = SparsePairwiseIIA(pairs, weights, tuple(map(str, range(len(weights)))), n)
    a = per_input.to_per_input()
    start = np.argmax(a.iia, axis=1).astype(np.int64)
    start[a.counts[:, 0] == 0] = -1
    return start


def greedy_pairwise_sparse(data, floor: float, scope: str = "per-model") -> np.ndarray:
    """The greedy alone: every input in its best model by mean over its scored pairs, then
    repaired (unmeasured members leave; peel the member whose leaving raises a failing
    cell's slack most; add fallback inputs, singly and in adjacent pairs, best slack first)."""
    _check_floor_scope(floor, scope)
    pairs, weights, n = sparse_arrays(data)
    indptr, nbr, ew = build_csr(pairs, weights, n)
    state = _State(indptr, nbr, ew, n, argmax_start(pairs, weights, n))
    state.repair(floor, scope == "global")
    return state.a.copy()


def search_pairwise_sparse(
    data,
    floor: float,
    scope: str = "per-model",
    *,
    start: np.ndarray | None = None,
    time_limit: float | None = 60.0,
    seed: int = 0,
    max_moves: int | None = None,
    stop_at: int | None = None,
) -> SearchResult:
    """A feasible assignment (int64 [n], -1 = fallback) on sparse data, at least as strong as
    ``start`` (a feasible partition; None: the greedy's). ``max_moves`` annealing moves (None:
    ``sparse_default_moves``), deterministic for a fixed ``seed``; stops early when the
    strength reaches ``stop_at`` (a proven bound) or when ``time_limit`` seconds run out,
    which the result reports as ``capped``."""
    _check_floor_scope(floor, scope)
    if max_moves is not None and max_moves < 0:
        raise ValueError(f"max_moves must be a non-negative number of moves, got {max_moves}")
    data = as_sparse(data)
    pairs, weights, n = sparse_arrays(data)
    M = weights.shape[0]
    glob = scope == "global"
    started = time.perf_counter()
    indptr, nbr, ew = build_csr(pairs, weights, n)
    if start is None:
        base = np.full(n, -1, dtype=np.int64)
    else:
        base = np.asarray(start, dtype=np.int64).copy()
        if not is_feasible_sparse(data, base, floor, scope):
            raise ValueError(
                "start is not a feasible assignment at this floor on these scored pairs; "
                "pass a feasible one or None"
            )
    budget = sparse_default_moves(n, M) if max_moves is None else int(max_moves)
    # Two greedy starts: the given one grown, and the argmax start repaired; keep the stronger.
    best_a = base.copy()
    best_val = np.array([int((base >= 0).sum())], dtype=np.int64)
    for first in (base, argmax_start(pairs, weights, n)):
        trial = _State(indptr, nbr, ew, n, first)
        val = trial.repair(floor, glob)
        if val > best_val[0]:
            best_val[0] = val
            best_a[:] = trial.a
    limit = budget
    if stop_at is not None and best_val[0] >= stop_at:
        limit = 0
    deadline = None if time_limit is None else started + time_limit
    state = _State(indptr, nbr, ew, n, best_a)
    copies = state.copy_arrays()
    rng = np.array([(seed * 0x9E3779B97F4A7C15 + 1) % 2**64 or 1], dtype=np.uint64)
    cycle = sparse_cycle_moves(n, M)
    repair_every = max(2_000, cycle // _REPAIRS)
    chunk = 20_000
    done = 0
    capped = False
    while done < limit:
        todo = min(chunk, limit - done)
        t0 = time.perf_counter()
        _anneal(
            indptr, nbr, ew, floor, glob, *state.arrays(), best_a, best_val, rng, todo, done,
            cycle, repair_every, *copies, *state.scratch(),
        )  # fmt: skip
        done += todo
        if stop_at is not None and best_val[0] >= stop_at:
            break
        now = time.perf_counter()
        if done < limit and deadline is not None and now >= deadline:
            capped = True
            break
        # Chunks only decide how often the clock is read: the schedule is indexed by the
        # global move count, so chunking never changes the result.
        rate = todo / max(now - t0, 1e-6)
        chunk = int(max(1_000, rate * _CHUNK_S))
        if deadline is not None:
            chunk = int(max(1_000, min(chunk, rate * (deadline - now))))
    if done and state.repair(floor, glob) > best_val[0]:
        best_a[:] = state.a
    result = best_a.copy()
    # The shared rules, from scratch, with none of the search's incremental state.
    if int((result >= 0).sum()) < int((base >= 0).sum()) or not is_feasible_sparse(
        data, result, floor, scope
    ):
        result = base
    return SearchResult(result, done, budget, capped)


def _node_gains(pairs: np.ndarray, weights: np.ndarray, n: int, floor: float) -> np.ndarray:
    """g [M, n] of the bound (see ``sparse_upper_bound``); NaN for inputs with no pair."""
    M = weights.shape[0]
    i, j = pairs[:, 0], pairs[:, 1]
    g = np.full((M, n), np.nan)
    for m in range(M):
        # 2·TOL, not TOL: a margin for the float sums the verifier compares (see below).
        h = np.asarray(weights[m], dtype=np.float64) - floor + 2 * TOL
        hp = np.maximum(h, 0.0)
        pos = np.bincount(i, hp, n) + np.bincount(j, hp, n)
        best = np.full(n, -np.inf)
        np.maximum.at(best, i, h)
        np.maximum.at(best, j, h)
        # A negative input (every pair h <= 0) pays for the pair that measures it in full when
        # the partner is not negative (no other negative input shares that pair), half when
        # it is: g = max over partners u of h_uv · (1 if u is negative else 2).
        negative = best <= 0.0
        share_i = h * np.where(negative[j], 1.0, 2.0)
        share_j = h * np.where(negative[i], 1.0, 2.0)
        neg_g = np.full(n, -np.inf)
        np.maximum.at(neg_g, i, share_i)
        np.maximum.at(neg_g, j, share_j)
        g[m] = np.where(negative, neg_g, pos)
        g[m, np.isinf(best)] = np.nan
    return g


def _lagrangian(g: np.ndarray, mu: np.ndarray) -> float:
    """L(μ) = Σ_v max(0, max_m (1 + μ_m g_m(v))) over inputs with a scored pair."""
    measured = ~np.isnan(g[0])
    vals = 1.0 + mu[:, None] * g[:, measured]
    return float(np.maximum(vals.max(axis=0, initial=0.0), 0.0).sum())


def _lp_multipliers(g: np.ndarray, time_limit: float) -> np.ndarray | None:
    """μ from the LP max Σ x s.t. Σ_m x_vm <= 1, Σ_v g_m(v) x_vm >= 0, 0 <= x <= 1 (the
    absolute row duals of the model rows); None when HiGHS does not solve it."""
    import highspy

    from solver.backends import new_highs

    M, n = g.shape
    measured = np.flatnonzero(~np.isnan(g[0]))
    k = measured.size
    if k == 0:
        return None
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_ = k * M
    lp.num_row_ = k + M
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = np.ones(k * M)
    lp.col_lower_ = np.zeros(k * M)
    lp.col_upper_ = np.ones(k * M)
    lp.row_lower_ = np.concatenate((np.full(k, -inf), np.zeros(M)))
    lp.row_upper_ = np.concatenate((np.ones(k), np.full(M, inf)))
    # Column (v, m) = index m·k + v: a 1 in row v and g_m(v) in row k + m.
    rows = np.empty((k * M, 2), dtype=np.int32)
    vals = np.empty((k * M, 2))
    for m in range(M):
        sl = slice(m * k, (m + 1) * k)
        rows[sl, 0] = np.arange(k)
        rows[sl, 1] = k + m
        vals[sl, 0] = 1.0
        vals[sl, 1] = g[m, measured]
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.arange(0, 2 * k * M + 1, 2, dtype=np.int32)
    lp.a_matrix_.index_ = rows.reshape(-1)
    lp.a_matrix_.value_ = vals.reshape(-1)
    lp.a_matrix_.num_col_ = k * M
    lp.a_matrix_.num_row_ = k + M
    h = new_highs()
    h.setOptionValue("time_limit", max(float(time_limit), 0.1))
    h.passModel(lp)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return None
    return np.abs(np.asarray(h.getSolution().row_dual)[k:])


def _coordinate_descent(g: np.ndarray, mu: np.ndarray, rounds: int = 5) -> np.ndarray:
    """Lower L(μ) one μ_m at a time by exact line search (L is convex and piecewise linear in
    each μ_m); any μ >= 0 it returns gives a valid bound."""
    measured = ~np.isnan(g[0])
    g = g[:, measured]
    mu = mu.copy()
    M = g.shape[0]
    for _ in range(rounds):
        for m in range(M):
            others = np.delete(1.0 + mu[:, None] * g, m, axis=0)
            rest = np.maximum(others.max(axis=0, initial=0.0), 0.0)
            # Term v: max(rest_v, 1 + μ g_v) as a function of μ = μ_m >= 0: convex, one kink at
            # b_v = (rest_v − 1) / g_v. Right slope at μ: Σ g_v over g_v > 0 with b_v <= μ,
            # plus Σ g_v over g_v < 0 with b_v > μ; it only grows, so the minimum sits at 0 or
            # at the first kink where the slope turns non-negative.
            gv = g[m]
            live = gv != 0.0
            b = np.full(gv.shape, -np.inf)
            b[live] = (rest[live] - 1.0) / gv[live]
            up = live & (gv > 0)
            down = live & (gv < 0)
            slope = gv[up & (b <= 0)].sum() + gv[down & (b > 0)].sum()
            if slope >= 0:
                mu[m] = 0.0
                continue
            kinks = (up | down) & (b > 0)
            order = np.argsort(b[kinks], kind="stable")
            steps = np.abs(gv[kinks])[order]
            where = np.flatnonzero(slope + np.cumsum(steps) >= 0)
            mu[m] = b[kinks][order][where[0]] if where.size else b[kinks][order][-1]
    return mu


def sparse_upper_bound(
    data, floor: float, scope: str = "per-model", *, time_limit: float = 10.0
) -> tuple[float, str]:
    """A proven upper bound on the strength of any feasible partition, and how it was found.

    Every member of a cell needs a scored partner inside it, so inputs with no scored pair
    are out: ``measured`` = inputs with at least one (valid for both scopes; the global
    scope gets only this bound, since a bad cell can be paid for by a good one).

    Per-model, with h_e = w_e − λ + 2·TOL, a cell S meets the floor only if Σ_{e in S} h_e >= 0
    (``meets_floor`` with TOL; the second TOL covers float error of the verifier's sum).
    Split the sum. Its positive part is at most ½ Σ_{v in S} pos(v), pos(v) = Σ of h_e > 0
    over v's pairs (each pair counted from both ends). Call v *negative* when all its pairs
    have h_e <= 0: each negative member holds one of its pairs e_v = (v, u) inside S (each
    member measured), and a pair serves at most its two ends, both only when both are
    negative; so the negative part's size is at least Σ over negative members of |h_{e_v}|,
    halved where u is negative too: at least ½ Σ |g(v)|, g(v) = max_u h_uv · (1 if u is
    negative else 2). Hence Σ_{v in S} g(v) >= 0 with g(v) = pos(v) for the other inputs:
    every feasible partition is a 0/1 point of {Σ_m x_vm <= 1, Σ_v g_m(v) x_vm >= 0}, and for
    any μ >= 0 weak duality gives strength <= L(μ) = Σ_v max(0, max_m (1 + μ_m g_m(v))).
    μ comes from that LP's duals (HiGHS), then exact coordinate descent; the bound is L at
    the μ found (plus n·1e-12 for its float sum), so its validity does not rest on the LP
    solver's tolerances."""
    _check_floor_scope(floor, scope)
    pairs, weights, n = sparse_arrays(data)
    measured = int((np.bincount(pairs.ravel(), minlength=n) > 0).sum())
    how = f"inputs with a scored pair ({measured:,} of {n:,})"
    if scope == "global" or measured == 0:
        return float(measured), how
    g = _node_gains(pairs, weights, n, floor)
    M = g.shape[0]
    best, best_how = float(measured), how
    tries = [np.zeros(M)]
    mu = _lp_multipliers(g, time_limit)
    if mu is not None:
        tries.append(mu)
    for mu in list(tries):
        tries.append(_coordinate_descent(g, mu))
    for mu in tries:
        # n · 1e-12: room for the float error of the sum that evaluates L.
        value = _lagrangian(g, mu) + n * 1e-12
        if value < best:
            best = value
            best_how = f"Lagrangian of the pair-deficit relaxation (L = {value:.3f})"
    return best, best_how


def solve_pairwise_sparse(
    data,
    floor: float,
    *,
    scope: str = "per-model",
    seed: int = 0,
    budget: int | None = None,
    time_limit: float = 60.0,
    start: np.ndarray | None = None,
) -> tuple[np.ndarray, Certificate]:
    """(assignment int64 [n], Certificate) on sparse pairwise data (``SparsePairwiseIIA`` or
    a tuple (pairs, weights, n_inputs)): memory check, proven bound, then the local search
    (``budget`` annealing moves; None: ``sparse_default_moves``) from the greedy or from
    ``start`` (dropped with a note when infeasible), stopping at the bound; then, per-model,
    where the search has not met that bound, the pair LP (``solver.sparse_pair_lp``) on the
    time left, whose certified bound replaces the first where smaller. ``time_limit`` caps
    it all; the certificate says when it did."""
    _check_floor_scope(floor, scope)
    started = time.perf_counter()
    data = as_sparse(data)
    pairs, weights, n = sparse_arrays(data)
    M = weights.shape[0]
    check_sparse_memory(n, pairs.shape[0], M)
    notes = []
    if start is not None:
        problems = sparse_partition_problems(data, np.asarray(start), floor, scope)
        if problems:
            notes.append(f"warm start dropped: infeasible at floor {floor} ({problems[0]})")
            start = None
    bound, how = sparse_upper_bound(data, floor, scope, time_limit=min(10.0, 0.2 * time_limit))
    budget = sparse_default_moves(n, M) if budget is None else int(budget)
    left = max(time_limit - (time.perf_counter() - started), 0.0)
    found = search_pairwise_sparse(
        data,
        floor,
        scope,
        start=start,
        time_limit=left,
        seed=seed,
        max_moves=budget,
        stop_at=int(floor_bound(bound)),
    )
    # The final word: the shared rules from scratch (raises on a bug, never returns one).
    check_partition_sparse(data, found.assignment, floor, scope)
    notes.append(f"local search: {found.moves:,} of {budget:,} moves")
    capped = found.capped
    if found.capped:
        notes.append("the time limit cut the local search short (depends on the machine)")
    strength = int((found.assignment >= 0).sum())
    if scope == "per-model" and strength < floor_bound(bound):
        # the pair LP after the search: it takes what the search left, and a bound the
        # search has already met needs no tightening
        left = time_limit - (time.perf_counter() - started)
        bound, how, lp_capped, x = _tighten_by_pair_lp(pairs, weights, n, floor, left, bound, how)
        capped |= lp_capped
        if x is not None and strength < floor_bound(bound):
            # a second search from the LP's rounding, on half the budget (it starts close;
            # with the whole budget it ran past 120 s at 5,000 inputs: bench/RESULTS.md §7)
            start = round_pair_lp(pairs, weights, x, floor)
            again = _search_from(data, floor, start, seed, budget // 2, bound, started, time_limit)
            if again is not None:
                reached = int((again.assignment >= 0).sum())
                notes.append(
                    f"search from the pair LP's rounding: {reached} in {again.moves:,} of "
                    f"{budget // 2:,} moves"
                    + (
                        ", cut short by the time limit (depends on the machine)"
                        if again.capped
                        else ""
                    )
                )
                capped |= again.capped
                if reached > strength:
                    check_partition_sparse(data, again.assignment, floor, scope)
                    found = again
    notes.insert(0, f"bound: {how}")
    return found.assignment, Certificate.build(
        method="auto",
        solver="sparse local search",
        objective=int((found.assignment >= 0).sum()),
        bound=bound,
        seconds=time.perf_counter() - started,
        note="; ".join(notes),
        budget=budget,
        time_limit=time_limit,
        capped=capped,
    )


def _search_from(data, floor, start, seed, budget, bound, started, time_limit):
    """The local search again (per-model), from ``start`` where that is feasible and the
    time allows; None otherwise."""
    left = time_limit - (time.perf_counter() - started)
    if left <= 0 or not is_feasible_sparse(data, start, floor, "per-model"):
        return None
    return search_pairwise_sparse(
        data,
        floor,
        "per-model",
        start=start,
        time_limit=left,
        seed=seed,
        max_moves=budget,
        stop_at=int(floor_bound(bound)),
    )


def _tighten_by_pair_lp(pairs, weights, n, floor, left, bound, how):
    """(bound, how, capped, x): the smaller of ``bound`` and the pair LP's certified bound
    (``solver.sparse_pair_lp``), run on the ``left`` seconds where they and the memory allow;
    ``how`` says what the LP did when it did not win. ``capped``: the time limit stopped the
    LP, so its bound depends on the machine's speed; ``x``: the LP's x_vm, or None."""
    from solver.data import available_memory

    if left < PAIR_LP_MIN_SECONDS:
        return bound, f"{how}; pair LP skipped: {max(left, 0.0):.1f}s left", False, None
    expected = pair_lp_seconds(n, pairs.shape[0], weights.shape[0])
    if expected > OVERRUN * left:
        return (
            bound,
            f"{how}; pair LP skipped: it takes about {expected:.0f}s here, {left:.1f}s left "
            "(a longer time limit runs it)",
            False,
            None,
        )
    needed = pair_lp_bytes(n, pairs.shape[0], weights.shape[0])
    free = available_memory()
    if needed > free:
        return (
            bound,
            f"{how}; pair LP skipped: it needs about {needed / 2**30:.1f} GiB, "
            f"{free / 2**30:.1f} GiB free",
            False,
            None,
        )
    got = pair_lp_bound(pairs, weights, n, floor, left)
    if got is None:
        return bound, f"{how}; pair LP: no duals within {left:.1f}s", True, None
    if got.bound < bound:
        return got.bound, got.how, not got.finished, got.x
    return bound, f"{how}; {got.how}, not below", not got.finished, got.x


def from_dense(data: PairwiseIIA, pairs: np.ndarray | None = None) -> SparsePairwiseIIA:
    """``SparsePairwiseIIA.from_dense``: the scored ``pairs`` of dense data (None: all)."""
    return SparsePairwiseIIA.from_dense(data, pairs)
