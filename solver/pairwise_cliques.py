"""Per-model cell-size caps at floor 1 from exact maximum cliques.

At floor λ = 1 a cell's total deficit (δ = 1 − w) may not exceed TOL·C(k, 2) (the verifier's
tolerance), so every pair of a cell has δ at most that for the largest cell, n inputs:
every cell of model m is a clique of the graph G_m = {i ~ j : δ_ij <= TOL·C(n, 2)}, and no
cell of m is larger than ω(G_m). The caps enter the size tables of the bound LP, where the
dense models' fractional points otherwise sit far above any real cell (bench/RESULTS.md,
section 2).

ω(G_m) comes from a branch and bound over bit sets (after Tomita's MCQ and San Segundo's
BBMC): the candidates of each branch are coloured greedily in degeneracy order, the number of
colours bounds the clique they can add, and the branch holding the largest colours is
taken first. The search is resumable in chunks, so a deadline stops it between chunks; a
search stopped early still proves the largest bound among its open branches (each open
branch's clique plus its colour count), which is a valid cap, only a weaker one.

Every search here runs under a budget of branches, not of seconds: a second of the time
given buys ``BRANCHES_PER_SECOND`` branches, and each share (per model, per round, per
check) is counted in the branches the searches before it took. So the caps and the bound
are a function of the graphs and the time given alone, the same on any machine, as the
local search's moves are. A hard deadline only guards the caller's time limit; a search it
stops is reported (``timed_out``), since its result then depends on the machine's speed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from numba import njit

from solver.feasibility import SEARCH_TOL
from solver.pairwise_bounds import _prepare, deficit_budget

_CHUNK_NODES = 200_000  # branches per compiled call: the deadline is checked between calls
_FIRST_CHUNK = 5_000  # the first call's branches; each next call doubles them up to the above
# the branches a second of the time given buys: about the searches' rate on the authors'
# 1000-input graphs on a 2-core machine (100,000-570,000 a second by graph size), taken low
# so that on such a machine the budgets, not the deadline, end the searches
BRANCHES_PER_SECOND = 120_000
RESERVE_SHARE = 0.05  # of clique_caps' branches, kept for each model still to search
GROW_SHARE = 0.6  # of shared_input_bound's branches for growing U
ROUND_SHARE = 0.05  # of shared_input_bound's branches, the most one growing round may take
PROVE_SHARE = 0.5  # of what growing left, to search the best round's open terms again
CHECK_BRANCHES = (20_000, 100_000, 500_000)  # a shrink check's branches in each pass


@dataclass(frozen=True)
class CliqueResult:
    """The largest clique found (input indices), and a proven cap on every clique's size:
    ``upper == len(clique)`` when ``proven``; ``nodes``: the branches searched;
    ``timed_out``: the deadline, not the search or its branch budget, stopped it."""

    clique: np.ndarray
    upper: int
    proven: bool
    nodes: int
    timed_out: bool = False


@dataclass(frozen=True)
class CliqueCaps:
    """Per-model caps on a floor-1 cell's size, whether each is exact, the largest clique
    found for each model, the seconds taken, and whether the deadline stopped a search."""

    caps: np.ndarray
    proven: np.ndarray
    cliques: list[np.ndarray]
    seconds: float
    timed_out: bool = False


@dataclass(frozen=True)
class BestResponses:
    """``best_responses``: the assignment after them, the inputs they added, the cells they
    replaced, the branches taken, and whether the deadline stopped a search."""

    assignment: np.ndarray
    gained: int
    replaced: int
    branches: int
    timed_out: bool = False


@dataclass(frozen=True)
class SharedInputBound:
    """The bound |U| + Σ_m cap(G_m − U) for the best round's U after the shrink, the size of
    that U, the rounds grown, how many inputs the shrink took back out of U, the seconds
    taken and whether the deadline stopped a search (``shared_input_bound``)."""

    bound: int
    shared: int
    rounds: int
    dropped: int
    seconds: float
    timed_out: bool = False


def _bitsets(adj: np.ndarray) -> np.ndarray:
    """Rows of a bool [r, n] matrix as uint64 words: bit j % 64 of word j // 64 is column j."""
    rows, n = adj.shape
    words = (n + 63) // 64
    padded = np.zeros((rows, words * 64), dtype=bool)
    padded[:, :n] = adj
    bits = np.packbits(padded.reshape(rows, words, 64), axis=2, bitorder="little")
    return np.ascontiguousarray(bits).view("<u8").reshape(rows, words).astype(np.uint64)


@njit(cache=True)
def _lowest_bit(x):
    j = 0
    while (x & np.uint64(1)) == 0:
        x >>= np.uint64(1)
        j += 1
    return j


@njit(cache=True)
def _colour(cand, adj, order, bound):
    """Greedy colouring of the bit set ``cand``, lowest vertex first: ``order`` receives the
    vertices class by class, ``bound[t]`` the number of classes up to ``order[t]``'s."""
    words = cand.shape[0]
    left = cand.copy()
    room = np.empty(words, dtype=np.uint64)
    k = 0
    colours = 0
    while True:
        empty = True
        for i in range(words):
            if left[i]:
                empty = False
                break
        if empty:
            return k
        colours += 1
        for i in range(words):
            room[i] = left[i]
        for i in range(words):
            while room[i]:
                j = _lowest_bit(room[i])
                v = i * 64 + j
                bit = np.uint64(1) << np.uint64(j)
                room[i] &= ~bit
                left[i] &= ~bit
                for t in range(words):
                    room[t] &= ~adj[v, t]  # a class holds no two neighbours
                order[k] = v
                bound[k] = colours
                k += 1


@njit(cache=True)
def _search_chunk(adj, cands, orders, bounds, pos, size, clique, best, state, max_nodes, enough):
    """Run the branch and bound from its saved state for at most ``max_nodes`` branches, or
    until it holds a clique of ``enough`` vertices (0: no such stop). ``state`` = [depth,
    size of best, nodes]; ``best`` holds the best clique. Returns True when the search is
    complete."""
    words = adj.shape[1]
    depth = state[0]
    nodes = 0
    while depth >= 0:
        if nodes >= max_nodes:
            state[0] = depth
            state[2] += nodes
            return False
        i = pos[depth]
        if i < 0 or depth + bounds[depth, i] <= state[1]:
            depth -= 1  # this level's remaining branches cannot beat the best
            continue
        v = orders[depth, i]
        pos[depth] = i - 1
        cands[depth, v >> 6] &= ~(np.uint64(1) << np.uint64(v & 63))
        clique[depth] = v
        nodes += 1
        nonempty = False
        for t in range(words):
            cands[depth + 1, t] = cands[depth, t] & adj[v, t]
            if cands[depth + 1, t]:
                nonempty = True
        if not nonempty:
            if depth + 1 > state[1]:
                state[1] = depth + 1
                best[: depth + 1] = clique[: depth + 1]
                if enough and state[1] >= enough:
                    state[0] = depth  # resumable: this level's next branch is next
                    state[2] += nodes
                    return False
            continue
        depth += 1
        size[depth] = _colour(cands[depth], adj, orders[depth], bounds[depth])
        pos[depth] = size[depth] - 1
    state[0] = -1
    state[2] += nodes
    return True


def _smallest_last(adj: np.ndarray) -> np.ndarray:
    """Vertices in degeneracy order, the core first: the last vertex removed when each time
    the one of least degree among those left goes. The colourings then fill their first
    classes from the dense core (on the authors' floor-1 graphs this took far fewer branches
    than vertices by falling degree)."""
    degree = adj.sum(axis=1).astype(np.int64)
    alive = np.ones(len(adj), dtype=bool)
    removed = np.empty(len(adj), dtype=np.int64)
    for t in range(len(adj)):
        v = int(np.argmin(np.where(alive, degree, np.iinfo(np.int64).max)))
        removed[t] = v
        alive[v] = False
        degree -= adj[v]
    return removed[::-1].copy()


def max_clique(
    adj: np.ndarray,
    deadline: float,
    known: np.ndarray | None = None,
    beyond: int = 0,
    enough: int = 0,
    branches: int | None = None,
) -> CliqueResult:
    """A maximum clique of the graph ``adj`` (bool [n, n], symmetric; the diagonal is
    ignored), searched until ``deadline`` (``time.perf_counter()`` seconds). ``known``: a
    clique already at hand; the search then only looks for larger ones (it prunes more).
    ``beyond``: look only for cliques larger than this; where none is found the cap
    reported is ``beyond`` itself (the question asked is only whether ω exceeds it).
    ``enough``: stop at the first clique found of at least this size that is larger than
    ``known`` and ``beyond`` (0: search to the end); the result is then not proven, and its
    cap is the larger of that clique and the open branches' bound. ``branches``: the most
    branches to search (None: no budget, the deadline alone); a search its budget stops
    ends at the same branch on any machine."""
    adj = np.asarray(adj, dtype=bool)
    n = adj.shape[0]
    if adj.shape != (n, n) or not np.array_equal(adj, adj.T):
        raise ValueError("adj must be a symmetric bool [n, n] matrix")
    known = np.zeros(0, dtype=np.int64) if known is None else np.asarray(known, dtype=np.int64)
    sub = adj[np.ix_(known, known)] | np.eye(len(known), dtype=bool)
    if len(known) and not sub.all():
        raise ValueError("known is not a clique of adj")
    if n == 0:
        return CliqueResult(np.zeros(0, dtype=np.int64), 0, True, 0)
    adj = adj.copy()
    np.fill_diagonal(adj, False)
    relabel = _smallest_last(adj)
    bits = _bitsets(adj[np.ix_(relabel, relabel)])
    words = bits.shape[1]
    everyone = _bitsets(np.ones((1, n), dtype=bool))[0]
    root_order = np.zeros(n, dtype=np.int32)
    root_bound = np.zeros(n, dtype=np.int32)
    _colour(everyone, bits, root_order, root_bound)
    # no clique outgrows the first colouring's count: the branch stack needs no more levels
    levels = int(root_bound[-1]) + 1
    cands = np.zeros((levels, words), dtype=np.uint64)
    orders = np.zeros((levels, n), dtype=np.int32)
    bounds = np.zeros((levels, n), dtype=np.int32)
    pos = np.zeros(levels, dtype=np.int64)
    size = np.zeros(levels, dtype=np.int64)
    clique = np.zeros(levels, dtype=np.int32)
    best = np.zeros(levels, dtype=np.int32)
    cands[0], orders[0], bounds[0] = everyone, root_order, root_bound
    size[0] = n
    pos[0] = n - 1
    floor = max(len(known), beyond, 1)  # the search records only cliques larger than this
    state = np.array([0, floor, 0], dtype=np.int64)
    done = timed_out = False
    chunk = _FIRST_CHUNK  # short searches (shrink checks) overrun their deadline by less
    while not done:
        if enough and floor < state[1] >= enough:  # the search's own clique answers it
            break
        if branches is not None and state[2] >= branches:
            break
        if time.perf_counter() >= deadline:
            timed_out = True
            break
        # the budget's last call takes only what is left: the stop does not depend on speed
        step = chunk if branches is None else min(chunk, branches - int(state[2]))
        done = _search_chunk(
            bits, cands, orders, bounds, pos, size, clique, best, state, step, enough
        )
        chunk = min(2 * chunk, _CHUNK_NODES)
    if state[1] > floor:  # best holds a clique of the search's own
        result = np.sort(relabel[best[: state[1]]]).astype(np.int64)
    elif len(known):
        result = np.sort(known)
    else:
        result = np.zeros(1, dtype=np.int64)  # one vertex: the search's floor of 1
    upper = len(result) if state[1] > floor else floor
    if not done:  # each open branch: its clique so far plus what its colours allow
        for d in range(int(state[0]) + 1):
            if pos[d] >= 0:
                upper = max(upper, d + int(bounds[d, pos[d]]))
    return CliqueResult(result, int(upper), bool(done), int(state[2]), timed_out and not done)


def _budget(time_limit: float) -> int:
    """The branches ``time_limit`` seconds buy (module docstring)."""
    return int(BRANCHES_PER_SECOND * max(float(time_limit), 0.0))


def clique_caps(
    w: np.ndarray,
    known: list[np.ndarray] | None,
    time_limit: float,
    deadline: float | None = None,
) -> CliqueCaps:
    """Per-model caps on the size of a cell that meets floor 1: the maximum clique of each
    model's graph of pairs that fit the floor's deficit budget (module docstring).
    ``known[m]``: a cell of model m at hand, the search's starting point (the caps never
    depend on it, only how soon they are proven). ``time_limit`` buys the searches' branch
    budget; ``deadline`` (``time.perf_counter()`` seconds; None: ``time_limit`` from now)
    stops them regardless.

    The models go in order of the gap between their first colouring bound and the clique at
    hand (the smaller the gap, the sooner a search tends to close it), and each may use all
    the branches left less ``RESERVE_SHARE`` of the budget for each model after it: the
    dense models whose search would not finish in any share do not starve the others."""
    t0 = time.perf_counter()
    deadline = t0 + time_limit if deadline is None else deadline
    w = _prepare(w)
    M, n, _ = w.shape
    caps = np.full(M, n, dtype=np.int64)
    proven = np.zeros(M, dtype=bool)
    graphs = floor_one_graphs(w)
    starts: list[np.ndarray | None] = []
    gaps = []
    for m in range(M):
        start = None
        if known is not None and len(known[m]):
            cell = np.asarray(known[m], dtype=np.int64)
            inside = graphs[m][np.ix_(cell, cell)] | np.eye(len(cell), dtype=bool)
            start = cell if inside.all() else None  # not a floor-1 cell: no hint
        starts.append(start)
        first = max_clique(graphs[m], np.inf, start, branches=0)  # the root's colouring alone
        gaps.append(first.upper - (0 if start is None else len(start)))
    keys = [w[m].tobytes() for m in range(M)]
    found, _ = _search_models(graphs, keys, starts, gaps, _budget(time_limit), deadline)
    for m, result in enumerate(found):
        caps[m], proven[m] = result.upper, result.proven
    cliques = [result.clique for result in found]
    timed_out = any(result.timed_out for result in found)
    return CliqueCaps(np.minimum(caps, n), proven, cliques, time.perf_counter() - t0, timed_out)


def floor_one_graphs(w: np.ndarray) -> list[np.ndarray]:
    """Each model's graph of the pairs that may share a floor-1 cell (module docstring):
    δ_ij at most the deficit budget of the largest cell, n inputs."""
    w = _prepare(w)
    budget = float(deficit_budget(w.shape[1], 1.0))
    return [(1.0 - w_m) <= budget for w_m in w]


def _search_models(
    graphs, keys, starts, gaps, branches: int, deadline: float
) -> tuple[list[CliqueResult], int]:
    """``max_clique`` of each graph in order of ``gaps``, each allowed the branches left less
    ``RESERVE_SHARE`` of ``branches`` for each graph after it; equal keys searched once.
    Returns the results and the branches they took."""
    M = len(graphs)
    out: list[CliqueResult | None] = [None] * M
    solved: dict[bytes, CliqueResult] = {}  # copies of one model are searched once
    used = 0
    for i, m in enumerate(np.argsort(gaps, kind="stable")):
        if keys[m] not in solved:
            reserve = int(RESERVE_SHARE * branches) * (M - 1 - i)
            share = max(branches - used - reserve, 0)
            solved[keys[m]] = max_clique(graphs[m], deadline, starts[m], branches=share)
            used += solved[keys[m]].nodes
        out[m] = solved[keys[m]]
    return out, used


def shared_input_bound(
    w: np.ndarray, caps: CliqueCaps, time_limit: float, deadline: float | None = None
) -> SharedInputBound:
    """A floor-1 bound that counts the inputs the models' largest cells share only once.
    For any set U of inputs, strength <= |U| + Σ_m ω(G_m − U): the cells are disjoint, so
    together they hold at most |U| inputs of U, and each cell's inputs outside U form a
    clique of G_m − U (any proven cap on that clique counts, so an unfinished search still
    gives a valid term). U starts empty (the bound Σ caps), and each round adds the inputs
    that two or more models' largest cliques claim, as the per-input bound of
    solver.per_input_bounds does, until no input is claimed twice or ``GROW_SHARE`` of the
    branch budget (``time_limit``'s, as in ``clique_caps``) is spent; the best round's terms
    that its searches left open are searched again (``PROVE_SHARE`` of the rest), and its U
    is then shrunk (``_shrink_shared``) with what is left. Growing adds whole sets at once,
    so the best round's U holds inputs that no model's largest clique needs any longer."""
    t0 = time.perf_counter()
    deadline = t0 + time_limit if deadline is None else deadline
    budget = _budget(time_limit)
    w = _prepare(w)
    M, n, _ = w.shape
    graphs = floor_one_graphs(w)
    keys = [w[m].tobytes() for m in range(M)]
    shared = np.zeros(n, dtype=bool)
    last = np.minimum(np.asarray(caps.caps, dtype=np.int64), n)
    best = int(min(n, last.sum()))
    cliques = list(caps.cliques)
    best_shared, best_terms, best_cliques = shared, last, cliques
    rounds = used = 0
    timed_out = False
    grow = int(GROW_SHARE * budget)
    while used < grow and not timed_out:
        claims = np.zeros(n, dtype=np.int64)
        for m in range(M):
            if keys[m] not in keys[:m]:  # the copies of one model (cells per model) claim once
                claims[cliques[m]] += 1
        grown = shared | (claims >= 2)
        if grown.sum() == shared.sum():
            break
        shared = grown
        keep = np.nonzero(~shared)[0]
        sub = [g[np.ix_(keep, keep)] for g in graphs]
        starts = [np.searchsorted(keep, c[~shared[c]]) for c in cliques]
        starts = [s if len(s) else None for s in starts]
        sizes = [len(c) for c in cliques]  # the dense models last, as in clique_caps
        # each round half of what is left, and at most ROUND_SHARE of the whole: the graphs
        # shrink, so later rounds need less, and the first rounds' dense models seldom close
        # in any share (the best round's open terms get their own branches below)
        share = min((grow - used) // 2, int(ROUND_SHARE * budget))
        found, took = _search_models(sub, keys, starts, sizes, share, deadline)
        used += took
        timed_out = any(r.timed_out for r in found)
        rounds += 1
        # U only grows, so each model's term from an earlier round still caps this one's
        last = np.minimum([r.upper for r in found], last)
        cliques = [keep[r.clique] for r in found]
        total = int(shared.sum()) + int(last.sum())
        if total < best:
            best, best_shared, best_terms, best_cliques = total, shared, last, cliques
    dropped = 0
    if best_shared.any():
        share = int(PROVE_SHARE * max(budget - used, 0))
        best_terms, took, late = _close_open_terms(
            graphs, keys, best_shared, best_terms, best_cliques, share, deadline
        )
        used += took
        best = int(best_shared.sum()) + int(best_terms.sum())
        kept, late_shrink = _shrink_shared(
            graphs, keys, best_shared, best_terms, max(budget - used, 0), deadline
        )
        timed_out = timed_out or late or late_shrink
        dropped = int(best_shared.sum() - kept.sum())
        best -= dropped
    return SharedInputBound(
        min(best, n),
        int(best_shared.sum()) - dropped,
        rounds,
        dropped,
        time.perf_counter() - t0,
        timed_out,
    )


def _close_open_terms(
    graphs, keys, shared, terms, cliques, branches: int, deadline: float
) -> tuple[np.ndarray, int, bool]:
    """Each model's term for G_m − U, searched again where it exceeds the clique at hand
    (``cliques``: one per model, inputs outside U): a growing round's search on the dense
    models is mostly cut short, and the best round's U leaves fewer inputs, where it often
    closes at once. Returns the terms, each the smaller of the old and the new cap, the
    branches taken, and whether the deadline stopped a search."""
    open_ = [m for m in range(len(graphs)) if terms[m] > len(cliques[m])]
    terms = np.array(terms, dtype=np.int64)
    if not open_ or branches <= 0:
        return terms, 0, False
    keep = np.nonzero(~shared)[0]
    again, used = _search_models(
        [graphs[m][np.ix_(keep, keep)] for m in open_],
        [keys[m] for m in open_],
        [np.searchsorted(keep, cliques[m]) for m in open_],
        [terms[m] - len(cliques[m]) for m in open_],
        branches,
        deadline,
    )
    for m, result in zip(open_, again, strict=True):
        terms[m] = min(terms[m], result.upper)
    return terms, used, any(result.timed_out for result in again)


def _shrink_shared(
    graphs, keys, shared, terms, branches: int, deadline: float
) -> tuple[np.ndarray, bool]:
    """Take inputs back out of U where no term grows: with u back, G_m − U gains only u, so
    ω(G_m − U + u) <= max(ω(G_m − U), 1 + ω(N_m(u) − U)); u leaves U (the bound falls by
    one) when no model's neighbourhood of u outside U holds a clique as large as its term.
    The terms stay valid caps throughout. Inputs of fewest neighbours outside U go first
    (their checks are the smallest and the likeliest to pass), and each input's models in
    order of how many inputs their checks kept so far. A check stops at the first clique as
    large as the term, which keeps u in U for good (U only shrinks, so the clique stays
    outside it). A check that runs out of its branches keeps u for this pass only: each pass
    gives one budget of ``CHECK_BRANCHES`` per check, the next pass retries those inputs
    with the next, so a small budget spends itself on the first pass (on the authors' graphs
    most such checks end in a clique when given more). All checks together take at most
    ``branches``. Returns the new U and whether the deadline stopped a check."""
    shared = shared.copy()
    unique = [m for m in range(len(graphs)) if keys[m] not in keys[:m]]
    degree = sum(graphs[m][:, ~shared].sum(axis=1) for m in unique)
    kept = {m: 0 for m in unique}  # inputs each model's check kept in U so far
    retry = sorted(np.nonzero(shared)[0], key=lambda v: degree[v])
    for allowed in CHECK_BRANCHES:
        undecided = []
        for u in retry:
            if branches <= 0:
                return shared, False
            if time.perf_counter() >= deadline:
                return shared, True
            leaves = True
            for m in sorted(unique, key=lambda m: -kept[m]):  # the likeliest to keep u first
                near = np.nonzero(graphs[m][u] & ~shared)[0]
                near = near[near != u]
                if len(near) < terms[m]:
                    continue  # too few neighbours for a clique of terms[m] beside u
                term = int(terms[m])  # one clique of this size in the neighbourhood keeps u
                adj = graphs[m][np.ix_(near, near)]
                result = max_clique(
                    adj, deadline, beyond=term - 1, enough=term, branches=min(allowed, branches)
                )
                branches -= result.nodes
                if result.upper >= term:
                    leaves = False
                    if len(result.clique) >= term:
                        kept[m] += 1
                    else:
                        undecided.append(u)
                    break
            if leaves:
                shared[u] = False
        retry = undecided
    return shared, False


def best_responses(
    w: np.ndarray, assignment: np.ndarray, time_limit: float, deadline: float | None = None
) -> BestResponses:
    """A floor-1 partition improved one model at a time, exactly: with every other cell
    held, the best cell of model m is the maximum clique of G_m among the inputs of m's own
    cell and the fallback. Each model in turn takes that clique where it is larger than its
    cell (and is a cell: its total deficit within the floor's budget, which a clique of G_m
    may exceed where deficits are small but not 0), until a round changes nothing. The
    annealing moves one input at a time, so it can stop short of a clique these searches
    find at once (bench/RESULTS.md, section 2). The searches share the branch budget that
    ``time_limit`` buys, as in ``clique_caps``; ``deadline`` guards the caller's limit."""
    deadline = time.perf_counter() + time_limit if deadline is None else deadline
    w = _prepare(w)
    graphs = floor_one_graphs(w)
    best = np.asarray(assignment, dtype=np.int64).copy()
    budget = _budget(time_limit)
    used = gained = replaced = 0
    changed = True
    while changed and used < budget:
        changed = False
        for m, graph in enumerate(graphs):
            free = np.nonzero((best == m) | (best < 0))[0]
            own = np.nonzero(best[free] == m)[0]
            if len(free) <= len(own):
                continue
            adj = graph[np.ix_(free, free)]
            result = max_clique(adj, deadline, own if len(own) else None, branches=budget - used)
            used += result.nodes
            if result.timed_out:
                return BestResponses(best, gained, replaced, used, True)
            cell = free[result.clique]
            k = len(cell)
            # pairs i < j; the diagonal of w is 0 (``_prepare``)
            deficit = (k * (k - 1) - w[m][np.ix_(cell, cell)].sum()) / 2.0
            if k > max(len(own), 1) and deficit <= deficit_budget(k, 1.0, SEARCH_TOL):
                best[best == m] = -1
                best[cell] = m
                gained += k - len(own)
                replaced += 1
                changed = True
            if used >= budget:
                break
    return BestResponses(best, gained, replaced, used, False)
