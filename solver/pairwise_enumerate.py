"""Exactness for small pairwise instances by reduced-cost column enumeration.

Column generation (solver.pairwise_colgen) leaves multipliers π >= 0 on the inputs and, per
model m, a proven bound U_m >= max over m's cells S of Σ_{v∈S} (1 − π_v). Then
(π, σ_m = max(0, U_m)) is feasible for the dual of the set-packing LP over *every* cell, so
for any partition x (cells S_j of models m_j),

    strength(x) = Σ_j |S_j| <= D − Σ_j rc_j,   D = Σ_v π_v + Σ_m σ_m,
    rc_j = π(S_j) + σ_{m_j} − |S_j| >= 0.

A partition of strength >= t therefore uses only cells with rc <= D − t. Enumerating all
those cells (per model, every cell meeting the floor whose weight Σ_{v∈S} (1 − π_v) is at
least σ_m − (D − t)) and solving the set packing over them exactly gives the optimum if it
is >= t, and proves the optimum < t otherwise. With t = best known + 1 this either proves the
best known partition optimal or finds a better one. It works where D − t is small (a few
units on 64 inputs); the enumeration is capped, and an enumeration stopped by its cap proves
nothing.

The enumeration grows cells one input at a time: every cell of k + 1 >= 3 inputs that meets
the floor keeps meeting it without its input of least weight inside (the feasible cells of a
model are downward closed along that order), so growing every feasible cell by every input
that keeps it feasible reaches them all. A cell is dropped when even the largest weights it
could still add cannot lift it to the threshold; its supersets could not reach it either.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from solver.feasibility import MIN_PAIRWISE_CELL
from solver.pairwise_bounds import deficit_budget
from solver.pairwise_colgen import packing_program
from solver.verify import is_feasible

ENUM_MAX_CELLS = 300_000  # cells grown in all, per proof; beyond it the proof is abandoned


@dataclass
class EnumerationProof:
    """``bound``: a proven upper bound on the best strength (the optimum when ``proven``);
    ``assignment``: a verified partition better than the incumbent, or None; ``cells``: the
    cells enumerated; ``finished``: False when a cap stopped the enumeration (the packing
    program's own time limit still leaves its dual bound, which counts)."""

    bound: float
    proven: bool
    assignment: np.ndarray | None
    cells: int
    finished: bool
    seconds: float


def enumerate_cells(
    delta_m: np.ndarray,
    floor: float,
    weights: np.ndarray,
    threshold: float,
    max_size: int,
    deadline: float,
    max_cells: int = ENUM_MAX_CELLS,
) -> list[np.ndarray] | None:
    """Every cell of at least two and at most ``max_size`` inputs whose deficit fits the
    floor's budget (the verifier's tolerance) and whose weight Σ weights_v is at least
    ``threshold``; None when ``max_cells`` cells were grown or ``deadline`` passed first."""
    n = len(weights)
    pos = np.maximum(np.asarray(weights, dtype=float), 0.0)
    slack = 1e-9  # keep every cell the verifier accepts: the set may only grow
    level: dict[frozenset, float] = {}
    ii, jj = np.triu_indices(n, 1)
    ok = delta_m[ii, jj] <= float(deficit_budget(2, floor)) + slack
    for i, j in zip(ii[ok], jj[ok]):
        level[frozenset((int(i), int(j)))] = float(delta_m[i, j])
    found: list[np.ndarray] = []
    grown = len(level)
    k = MIN_PAIRWISE_CELL
    while level and k <= max_size:
        grow_budget = float(deficit_budget(k + 1, floor)) + slack
        nxt: dict[frozenset, float] = {}
        for cell, deficit in level.items():
            idx = np.fromiter(cell, dtype=np.int64, count=len(cell))
            weight = float(weights[idx].sum())
            room = max_size - k
            if room > 0:
                others = pos.copy()
                others[idx] = 0.0
                reach = float(np.sort(others)[n - room :].sum())
            else:
                reach = 0.0
            if weight + reach < threshold - 1e-9:
                continue
            if weight >= threshold - 1e-9:
                found.append(np.sort(idx))
            if room == 0:
                continue
            to = deficit + delta_m[idx].sum(axis=0)
            to[idx] = np.inf
            for v in np.nonzero(to <= grow_budget)[0]:
                bigger = cell | {int(v)}
                if bigger not in nxt:
                    nxt[bigger] = float(to[v])
            if len(nxt) + grown > max_cells or time.perf_counter() > deadline:
                return None
        grown += len(nxt)
        level = nxt
        k += 1
    return found


def reduced_cost_proof(
    w: np.ndarray,
    floor: float,
    pi: np.ndarray,
    upper: np.ndarray,
    incumbent: int,
    max_sizes: np.ndarray,
    time_limit: float,
) -> EnumerationProof:
    """Prove ``incumbent`` optimal, or find better, from multipliers ``pi`` (any π >= 0) and
    ``upper[m]`` (a proven bound on model m's best Σ_{v∈S} (1 − π_v) over its cells);
    ``max_sizes[m]``: a proven cap on model m's cell size. ``w``: [M, n, n], diagonal zero."""
    t0 = time.perf_counter()
    deadline = t0 + time_limit
    M, n, _ = w.shape
    pi = np.maximum(np.asarray(pi, dtype=float), 0.0)
    sigma = np.maximum(np.asarray(upper, dtype=float), 0.0)
    dual = float(pi.sum() + sigma.sum())
    target = incumbent + 1
    if dual < target - 1e-9:  # strengths are whole: the incumbent is already optimal
        bound = float(np.floor(dual + 1e-9))
        return EnumerationProof(bound, True, None, 0, True, time.perf_counter() - t0)
    room = dual - target
    weights = 1.0 - pi
    columns: list[tuple[int, np.ndarray]] = []
    for m in range(M):
        delta = 1.0 - w[m]
        np.fill_diagonal(delta, 0.0)
        cells = enumerate_cells(
            delta,
            floor,
            weights,
            float(sigma[m] - room),
            int(max_sizes[m]),
            deadline,
            ENUM_MAX_CELLS - len(columns),
        )
        if cells is None:  # capped: nothing proven beyond the dual bound itself
            seconds = time.perf_counter() - t0
            return EnumerationProof(dual, False, None, len(columns), False, seconds)
        columns += [(m, c) for c in cells]
    packing, packing_bound, _ = packing_program(
        columns, n, M, max(0.5, deadline - time.perf_counter())
    )
    seconds = time.perf_counter() - t0
    # every partition of strength >= target packs enumerated cells only: the best strength
    # is below target, or at most the packing program's bound
    bound = float(incumbent) if packing_bound < target else packing_bound
    better = None
    strength = int((packing >= 0).sum())
    if strength > incumbent and is_feasible(w, packing, floor, "pairwise", "per-model"):
        better = packing
    best = strength if better is not None else incumbent
    return EnumerationProof(min(bound, dual), best >= bound, better, len(columns), True, seconds)
