"""Exactness for small pairwise instances by reduced-cost column enumeration.

Column generation (solver.pairwise_colgen) leaves multipliers π >= 0 on the inputs and, per
model m, a proven bound U_m >= max over m's cells S of Σ_{v∈S} (1 − π_v). Then
(π, σ_m = max(0, U_m)) is feasible for the dual of the set-packing LP over *every* cell, so
for any partition x (cells S_j of models m_j),

    strength(x) = Σ_j |S_j| <= D − Σ_j rc_j,   D = Σ_v π_v + Σ_m σ_m,
    rc_j = π(S_j) + σ_{m_j} − |S_j| >= 0.

A partition of strength >= t therefore uses only cells with rc <= D − t. Enumerating all
those cells (per model, every cell meeting the floor whose weight Σ_{v∈S} (1 − π_v) is at
least σ_m − (D − t)) and packing them exactly gives the optimum if it is >= t, and proves the
optimum < t otherwise. With t = best known + 1 this either proves the best known partition
optimal or finds a better one. It works where D − t is small (a few units on 64 inputs); the
enumeration is capped, and an enumeration stopped by its cap proves nothing.

The cells come from the reverse search of solver.pairwise_cells. The packing is a depth-first
search on the reduced costs (solver.pairwise_pack), with the set-packing MILP for the time it
leaves when it does not finish.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from solver.pairwise_cells import ENUM_MAX_CELLS, enumerate_cells
from solver.pairwise_colgen import packing_program
from solver.pairwise_pack import pack_by_search
from solver.verify import is_feasible

PACK_SEARCH_SHARE = 0.7  # of the time the enumeration left, for the packing search


@dataclass
class EnumerationProof:
    """``bound``: a proven upper bound on the best strength (the optimum when ``proven``);
    ``assignment``: a verified partition better than the incumbent, or None; ``cells``: the
    cells enumerated; ``finished``: False when a cap stopped the enumeration (the packing
    program's own time limit still leaves its dual bound, which counts); ``pack_nodes``:
    branches of the packing search; ``pack_finished``: whether that search ran to its end
    (otherwise the set-packing MILP finished the job with the time left)."""

    bound: float
    proven: bool
    assignment: np.ndarray | None
    cells: int
    finished: bool
    seconds: float
    pack_nodes: int = 0
    pack_finished: bool = False


def reduced_cost_cells(
    w: np.ndarray,
    floor: float,
    pi: np.ndarray,
    sigma: np.ndarray,
    room: float,
    max_sizes: np.ndarray,
    deadline: float,
    max_cells: int = ENUM_MAX_CELLS,
) -> list[tuple[int, np.ndarray]] | None:
    """Every (model, cell) whose reduced cost π(S) + σ_m − |S| is at most ``room``: the cells
    of model m weighing Σ_{v∈S} (1 − π_v) >= σ_m − room; None when more than ``max_cells``
    in all, or the deadline, stopped the enumeration."""
    weights = 1.0 - pi
    columns: list[tuple[int, np.ndarray]] = []
    for m in range(w.shape[0]):
        delta = 1.0 - w[m]
        np.fill_diagonal(delta, 0.0)
        cells = enumerate_cells(
            delta,
            floor,
            weights,
            float(sigma[m] - room),
            int(max_sizes[m]),
            deadline,
            max_cells - len(columns),
        )
        if cells is None:
            return None
        columns += [(m, c) for c in cells]
    return columns


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
    columns = reduced_cost_cells(w, floor, pi, sigma, room, max_sizes, deadline)
    if columns is None:  # capped: nothing proven beyond the dual bound itself
        seconds = time.perf_counter() - t0
        return EnumerationProof(dual, False, None, 0, False, seconds)
    # the depth-first packing first: it only looks at cells that fit the room a choice
    # leaves, where the set-packing MILP stalls on a large room; the MILP, with its own dual
    # bound, takes what time the search leaves unused
    now = time.perf_counter()
    search = pack_by_search(
        columns, pi, sigma, target, now + PACK_SEARCH_SHARE * max(0.0, deadline - now)
    )
    if search.finished:
        packing = search.assignment
        # finished: every partition of strength >= target packs enumerated cells, and the
        # search met the strongest of them, or proved there is none
        bound = float(incumbent) if packing is None else float((packing >= 0).sum())
    else:
        packing, packing_bound, _ = packing_program(
            columns, n, M, max(0.5, deadline - time.perf_counter())
        )
        if search.assignment is not None and (search.assignment >= 0).sum() > (packing >= 0).sum():
            packing = search.assignment
        bound = float(incumbent) if packing_bound < target else packing_bound
    seconds = time.perf_counter() - t0
    better = None
    if packing is not None:
        strength = int((packing >= 0).sum())
        if strength > incumbent and is_feasible(w, packing, floor, "pairwise", "per-model"):
            better = packing
    best = int((better >= 0).sum()) if better is not None else incumbent
    return EnumerationProof(
        min(bound, dual),
        best >= bound,
        better,
        len(columns),
        True,
        seconds,
        search.nodes,
        search.finished,
    )
