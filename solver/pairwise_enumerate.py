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
optimum < t otherwise. Taken top down, from t = ⌊D⌋ to the best known + 1, each t refuted
lowers the bound by one, and the first t packed is the optimum. It works where D − t is small
(a few units on 64 inputs): the cells are enumerated once, for the room D − (best known + 1)
or, where more than the cap fit it, the largest room whose cells fit the cap; targets beyond
that room stay unproven.

The cells come from the reverse search of solver.pairwise_cells. The packing is a depth-first
search on the reduced costs (solver.pairwise_pack), with the set-packing MILP for the time it
leaves when it does not finish, where its target admits few enough cells for the MILP to be of
use (``PACK_MILP_MAX_CELLS``); past that the search has all the time, and a target it does not
settle stays unproven. Before the targets, a probe packs the cheapest cells alone for a
partition above the best known: each strength it reaches is one the proof need not refute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from solver.pairwise_cells import ENUM_MAX_CELLS, CellRows, heaviest_cells
from solver.pairwise_colgen import packing_program
from solver.pairwise_pack import CellTable, pack_by_search, prepare_cells
from solver.verify import is_feasible

PACK_SEARCH_SHARE = 0.7  # of the time the enumeration left, for the packing search
PACK_SEARCH_SHARE_ALONE = 1.0  # the same, for a target whose cells are too many for the MILP
# the most cells the set-packing MILP is handed after a packing search that did not finish:
# on more it proves nothing in its time (bench/RESULTS.md, section 3: none below the trivial
# bound on 188,082 cells in 300 s), and on millions of cells (λ = 0.925) HiGHS ran on past
# the 1800 s limit of the whole solve
PACK_MILP_MAX_CELLS = 100_000
# Before the proof, a probe packs the cheapest cells alone for a partition stronger than the
# incumbent: each target the proof refutes costs more the larger its room, and the weakest
# target, the incumbent + 1, has the largest. At λ = 0.925 on the 64-input subset the probe
# packs the optimum, 59, from the 50,000 cheapest of 2.68 million cells, where a search over
# all of them had not in over 1300 s; the proof then refutes only 62, 61 and 60
# (bench/RESULTS.md, section 3).
PROBE_MAX_CELLS = 50_000
PROBE_SHARE = 0.2  # of the time the enumeration left, at most, for the probe


@dataclass
class EnumerationProof:
    """``bound``: a proven upper bound on the best strength (the optimum when ``proven``);
    ``assignment``: a verified partition better than the incumbent, or None; ``cells``: the
    cells enumerated; ``finished``: False when the time stopped the enumeration;
    ``pack_nodes``: branches of the packing searches; ``pack_finished``: whether each ran to
    its end (otherwise the set-packing MILP finished the job with the time left); ``room``:
    the reduced cost up to which every cell was enumerated (below D − (incumbent + 1) where
    the cap lowered it); ``milp``: whether the set-packing MILP took a target the search left
    unfinished (it does not where the target admits more than ``PACK_MILP_MAX_CELLS``)."""

    bound: float
    proven: bool
    assignment: np.ndarray | None
    cells: int
    finished: bool
    seconds: float
    pack_nodes: int = 0
    pack_finished: bool = False
    room: float = 0.0
    milp: bool = False
    probe: str = ""


def reduced_cost_cells(
    w: np.ndarray,
    floor: float,
    pi: np.ndarray,
    sigma: np.ndarray,
    room: float,
    max_sizes: np.ndarray,
    deadline: float,
    max_cells: int = ENUM_MAX_CELLS,
) -> tuple[CellRows, float] | None:
    """Every (model, cell) whose reduced cost π(S) + σ_m − |S| is at most a room: the cells
    of model m weighing Σ_{v∈S} (1 − π_v) >= σ_m − room. The room is ``room`` where at most
    ``max_cells`` cells fit it, else lowered until they do: (the cells, the room they are
    complete for). None when the deadline stopped the enumeration."""
    weights = 1.0 - pi
    n = len(pi)
    kept, costs = CellRows.concatenate([], n), np.zeros(0)
    for m in range(w.shape[0]):
        delta = 1.0 - w[m]
        np.fill_diagonal(delta, 0.0)
        walk = heaviest_cells(
            delta,
            floor,
            weights,
            float(sigma[m] - room),
            int(max_sizes[m]),
            deadline,
            max_cells,
            model=m,
        )
        if walk is None:
            return None
        cells, threshold = walk
        # a model whose cells overflowed the cap came back complete for a smaller room;
        # so are the cells kept from the models before it
        room = min(room, float(sigma[m] - threshold))
        kept = CellRows.concatenate([kept, cells], n)
        costs = np.concatenate([costs, cells.sums(pi) + sigma[m] - cells.length])
        if len(kept) > max_cells:  # together over the cap: keep the cheapest
            room = float(np.sort(costs)[max_cells]) - 1e-7
        fits = costs <= room + 1e-9
        if not fits.all():
            kept, costs = kept.take(np.nonzero(fits)[0]), costs[fits]
    return kept, room


def reduced_cost_proof(
    w: np.ndarray,
    floor: float,
    pi: np.ndarray,
    upper: np.ndarray,
    incumbent: int,
    max_sizes: np.ndarray,
    time_limit: float,
    max_cells: int = ENUM_MAX_CELLS,
) -> EnumerationProof:
    """Prove ``incumbent`` optimal, or find better, from multipliers ``pi`` (any π >= 0) and
    ``upper[m]`` (a proven bound on model m's best Σ_{v∈S} (1 − π_v) over its cells);
    ``max_sizes[m]``: a proven cap on model m's cell size; ``max_cells``: the most cells
    enumerated. ``w``: [M, n, n], diagonal zero.

    Top down: the cells that fit the room of the strongest conceivable partition, ⌊D⌋, are
    packed first; each strength refuted lowers the bound by one, and the room (and the
    cells taken) grows by one, down to the incumbent + 1. The cells are enumerated once, for
    the largest room the cap admits; a target that room does not reach is left unproven."""
    t0 = time.perf_counter()
    deadline = t0 + time_limit
    M, n, _ = w.shape
    pi = np.maximum(np.asarray(pi, dtype=float), 0.0)
    sigma = np.maximum(np.asarray(upper, dtype=float), 0.0)
    dual = float(pi.sum() + sigma.sum())
    top = int(np.floor(dual + 1e-9))  # strengths are whole
    if top <= incumbent:  # the incumbent is already optimal
        return EnumerationProof(float(top), True, None, 0, True, time.perf_counter() - t0)
    enumerated = reduced_cost_cells(
        w, floor, pi, sigma, dual - (incumbent + 1), max_sizes, deadline, max_cells
    )
    if enumerated is None:  # out of time: nothing proven beyond the dual bound itself
        return EnumerationProof(dual, False, None, 0, False, time.perf_counter() - t0)
    columns, room = enumerated
    table = prepare_cells(columns, pi, sigma)  # once, for every target
    bound, better, nodes, searched, milp_ran = float(top), None, 0, True, False

    def stronger(packing: np.ndarray | None) -> np.ndarray | None:
        if packing is None or (better is not None and (better >= 0).sum() >= (packing >= 0).sum()):
            return better
        return packing

    probe = ""
    if len(table.rc) > PROBE_MAX_CELLS and top > incumbent + 1:
        now = time.perf_counter()
        search = pack_by_search(
            _cheapest(table, PROBE_MAX_CELLS),
            pi,
            sigma,
            incumbent + 1,
            now + PROBE_SHARE * max(0.0, deadline - now),
            enough=incumbent + 1,
        )
        nodes += search.nodes
        if search.assignment is not None and is_feasible(
            w, search.assignment, floor, "pairwise", "per-model"
        ):
            better = search.assignment
        found = "none" if better is None else f"a partition of {int((better >= 0).sum())}"
        cheap = float(table.rc[PROBE_MAX_CELLS - 1])
        probe = (
            f"probe of the {PROBE_MAX_CELLS:,} cheapest cells (reduced cost <= {cheap:.2f}): "
            f"{found} in {search.nodes:,} branches"
            + ("" if search.finished else ", stopped at its share of the time")
        )
    known = incumbent if better is None else int((better >= 0).sum())
    # only the strengths above the best known need refuting
    lowest = max(known + 1, int(np.ceil(dual - room - 1e-9)))
    for target in range(top, lowest - 1, -1):
        now = time.perf_counter()
        # the depth-first packing first: it only looks at cells that fit the room a choice
        # leaves, where the set-packing MILP stalls on a large room
        # every strength above target is refuted (or above D): the first packing that
        # reaches target is optimal, and the search stops there
        # the table is sorted by reduced cost, so the cells this target admits are a prefix
        admitted = int(np.searchsorted(table.rc, dual - target, side="right"))
        fallback = admitted <= PACK_MILP_MAX_CELLS  # else the MILP is not handed them
        share = PACK_SEARCH_SHARE if fallback else PACK_SEARCH_SHARE_ALONE
        search = pack_by_search(
            table, pi, sigma, target, now + share * max(0.0, deadline - now), enough=target
        )
        nodes += search.nodes
        better = stronger(search.assignment)
        if search.finished:
            if search.assignment is None:  # no partition of strength >= target: one less
                bound = float(target - 1)
                continue
            # the strongest partition of strength >= target, where target + 1 is refuted
            bound = float((search.assignment >= 0).sum())
            break
        # the search stopped: the set-packing MILP, with its own dual bound, takes the time
        # left, on the cells this target admits (a partition of strength >= target uses
        # only those)
        searched = False
        if admitted > PACK_MILP_MAX_CELLS:
            break  # target unproven: the bound stays at the last target refuted
        fit = list(table.cells.take(np.arange(admitted)))
        milp_ran = True
        milp, milp_bound, _ = packing_program(fit, n, M, max(0.5, deadline - time.perf_counter()))
        better = stronger(milp)
        if milp_bound < target:
            bound = float(target - 1)
            continue
        bound = min(bound, milp_bound)
        break
    if better is not None:
        strength = int((better >= 0).sum())
        if strength <= incumbent or not is_feasible(w, better, floor, "pairwise", "per-model"):
            better = None
    best = int((better >= 0).sum()) if better is not None else incumbent
    return EnumerationProof(
        min(bound, dual),
        best >= bound,
        better,
        len(columns),
        True,
        time.perf_counter() - t0,
        nodes,
        searched,
        room,
        milp_ran,
        probe,
    )


def _cheapest(table: CellTable, count: int) -> CellTable:
    """The ``count`` cells of least reduced cost (the table is sorted by it)."""
    keep = np.arange(min(count, len(table.rc)))
    return CellTable(
        table.cells.take(keep), table.masks[keep], table.rc[keep], table.pi, table.sigma
    )
