"""Cells of one model by reverse search: every cell that meets the floor and weighs enough
(``enumerate_cells``, for the reduced-cost proof of solver.pairwise_enumerate), or the
heaviest one (``heaviest_cell``, an exact pricer for solver.pairwise_colgen).

A cell of k + 1 >= 3 inputs that meets the floor still meets it without its input of largest
deficit inside, so every feasible cell has one feasible parent and a depth-first walk from
the feasible pairs reaches each cell once, holding one branch rather than a whole level in
memory. A branch is dropped when even the largest weights it could still add cannot lift it
to the threshold. The walk is compiled (numba): on the 64-input instance it lists 2.67 million
cells in about 14 s (bench/RESULTS.md, section 3).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from numba import njit

from solver.pairwise_bounds import deficit_budget

# cells kept in all, per proof; beyond it the room is lowered until they fit. What it bounds
# is memory: each kept cell is a row of narrow indices in the walk's buffer and then in the
# packing search's table (CellRows), about 0.2 KiB in all at n = 64, 0.6 GiB at the cap
ENUM_MAX_CELLS = 3_000_000


@dataclass
class CellRows:
    """Cells as rows, not as one array each (a million small arrays cost five times the
    memory): cell j is ``rows[j, :length[j]]``, its inputs sorted, a cell of model
    ``model[j]``. Iterating gives (model, inputs) pairs."""

    model: np.ndarray  # [C] int64
    rows: np.ndarray  # [C, widest] int16 below 2**15 inputs, else int32; padded with 0
    length: np.ndarray  # [C] int32

    @classmethod
    def from_list(cls, cells: list[tuple[int, np.ndarray]]) -> CellRows:
        model = np.array([m for m, _ in cells], dtype=np.int64)
        length = np.array([len(c) for _, c in cells], dtype=np.int32)
        widest = int(length.max()) if len(cells) else 1
        top = max((int(np.max(c)) for _, c in cells if len(c)), default=0)
        rows = np.zeros((len(cells), max(widest, 1)), dtype=_narrow(top + 1))
        for j, (_, c) in enumerate(cells):
            rows[j, : len(c)] = np.sort(np.asarray(c))
        return cls(model, rows, length)

    @classmethod
    def concatenate(cls, parts: list[CellRows], n: int) -> CellRows:
        widest = max([p.rows.shape[1] for p in parts], default=1)
        rows = np.zeros((sum(len(p) for p in parts), widest), dtype=_narrow(n))
        at = 0
        for p in parts:
            rows[at : at + len(p), : p.rows.shape[1]] = p.rows
            at += len(p)
        return cls(
            np.concatenate([p.model for p in parts] or [np.zeros(0, np.int64)]),
            rows,
            np.concatenate([p.length for p in parts] or [np.zeros(0, np.int32)]),
        )

    def __len__(self) -> int:
        return len(self.length)

    def __iter__(self):
        for j in range(len(self)):
            yield int(self.model[j]), self.cell(j)

    def cell(self, j: int) -> np.ndarray:
        return self.rows[j, : self.length[j]].astype(np.int64)

    def take(self, keep: np.ndarray) -> CellRows:
        return CellRows(self.model[keep], self.rows[keep], self.length[keep])

    def sums(self, values: np.ndarray) -> np.ndarray:
        """Σ_{v∈S} values_v for each cell S (in blocks: no [C, widest] float temporary)."""
        values = np.asarray(values, dtype=float)
        out = np.zeros(len(self))
        inside = np.arange(self.rows.shape[1])[None, :]
        for at in range(0, len(self), 1 << 16):
            rows, length = self.rows[at : at + (1 << 16)], self.length[at : at + (1 << 16)]
            out[at : at + len(rows)] = np.where(inside < length[:, None], values[rows], 0.0).sum(1)
        return out


def _narrow(n: int) -> type:
    """The narrowest index type for n inputs: the kernels stream these rows, and memory speed
    bounds them."""
    return np.int16 if n < 2**15 else np.int32


def heaviest_cell(
    delta_m: np.ndarray,
    floor: float,
    weights: np.ndarray,
    max_size: int,
    deadline: float,
    at_least: float = 0.0,
) -> tuple[float, np.ndarray | None] | None:
    """The exact maximum of Σ weights_v over the cells of at most ``max_size`` inputs that
    meet the floor, by the same reverse search as a branch and bound (the threshold rises
    to each better cell found): (weight, cell), or (``at_least``, None) when no cell reaches
    ``at_least`` — a weight known to be reached, such as a known cell's or the empty cell's
    0, which then is the maximum. None when ``deadline`` passed first (nothing proven)."""
    found = enumerate_cells(
        delta_m, floor, weights, at_least, max_size, deadline, ENUM_MAX_CELLS, best_only=True
    )
    if found is None:
        return None
    if not found:
        return float(at_least), None
    return float(np.asarray(weights, dtype=float)[found[-1]].sum()), found[-1]


def enumerate_cells(
    delta_m: np.ndarray,
    floor: float,
    weights: np.ndarray,
    threshold: float,
    max_size: int,
    deadline: float,
    max_cells: int = ENUM_MAX_CELLS,
    best_only: bool = False,
) -> list[np.ndarray] | None:
    """Every cell of at least two and at most ``max_size`` inputs whose deficit fits the
    floor's budget (the verifier's tolerance) and whose weight Σ weights_v is at least
    ``threshold``; None when more than ``max_cells`` were found or ``deadline`` passed first.

    A reverse search: a cell's parent is the cell without its input of largest deficit
    inside (ties: the largest index), which meets the floor when the cell does, so a
    depth-first walk that keeps only the children whose parent it is reaches every cell
    once, holding one branch in memory rather than a whole level. Every deficit it compares
    is summed afresh from the cell's sorted inputs, so a cell's parent does not depend on
    the path that reached it.

    With ``best_only`` it keeps only cells heavier than every one kept before (the last is
    the heaviest) and raises the threshold with each, so that branches which cannot beat
    the best are dropped: a branch and bound (``heaviest_cell``)."""
    walk = _walk(delta_m, floor, weights, threshold, max_size, deadline, max_cells, best_only)
    return None if walk is None else [c for _, c in walk[0]]


def heaviest_cells(
    delta_m: np.ndarray,
    floor: float,
    weights: np.ndarray,
    threshold: float,
    max_size: int,
    deadline: float,
    max_cells: int = ENUM_MAX_CELLS,
    model: int = 0,
) -> tuple[CellRows, float] | None:
    """The cells of ``enumerate_cells`` (same arguments), but where more than ``max_cells``
    reach ``threshold``, the threshold is raised until at most ``max_cells`` do: (every
    feasible cell of weight >= the returned threshold, as rows of ``model``, that threshold),
    or None when the deadline passed first."""
    walk = _walk(delta_m, floor, weights, threshold, max_size, deadline, max_cells, False, True)
    if walk is None:
        return None
    rows, threshold = walk
    rows.model.fill(model)
    return rows, threshold


# nodes the compiled walk expands between two looks at the clock
_CHUNK_NODES = 20_000


def _walk(
    delta_m: np.ndarray,
    floor: float,
    weights: np.ndarray,
    threshold: float,
    max_size: int,
    deadline: float,
    max_cells: int,
    best_only: bool,
    raise_threshold: bool = False,
) -> tuple[CellRows, float] | None:
    """The reverse search of ``enumerate_cells``: (the cells found, the final threshold), or
    None at the deadline. Past ``max_cells`` cells it returns None too, or with
    ``raise_threshold`` keeps the heaviest ``max_cells`` and raises the threshold above the
    rest. The walk itself is compiled (``_walk_chunk``); between chunks of nodes this loop
    reads the clock and makes room for the cells found."""
    n = len(weights)
    delta_m = np.ascontiguousarray(delta_m, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    pos = np.maximum(weights, 0.0)
    slack = 1e-9  # keep every cell the verifier accepts: the set may only grow
    max_size = max(int(max_size), 2)
    budget = deficit_budget(np.arange(max_size + 2), floor) + slack
    ii, jj = np.triu_indices(n, 1)
    ok = delta_m[ii, jj] <= budget[2]
    ii, jj = ii[ok], jj[ok]
    # heaviest last, popped first: a branch and bound meets good cells early
    order = np.argsort(weights[ii] + weights[jj], kind="stable")
    # depth-first, the stack holds the pairs not yet taken and, per level of the branch,
    # the siblings not yet taken: at most n per level
    stack = np.zeros((len(ii) + n * (max_size + 1), max_size), dtype=np.int32)
    stack_len = np.zeros(len(stack), dtype=np.int32)
    stack[: len(ii), 0] = ii[order]
    stack[: len(ii), 1] = jj[order]
    stack_len[: len(ii)] = 2
    top = len(ii)
    # past the cap: stop, or (raise_threshold) cut back to the heaviest in batches
    limit = max_cells + (max_cells // 4 if raise_threshold else 0) + 1
    cap = min(limit, 1 << 16)
    cells = np.zeros((cap, max_size), dtype=np.int32)
    cell_len = np.zeros(cap, dtype=np.int32)
    mass = np.zeros(cap)
    count = 0
    while True:
        if time.perf_counter() > deadline:
            return None
        top, count, threshold, status = _walk_chunk(
            delta_m,
            weights,
            pos,
            budget,
            max_size,
            float(threshold),
            best_only,
            stack,
            stack_len,
            top,
            cells,
            cell_len,
            mass,
            count,
            _CHUNK_NODES,
        )
        if status == _FULL and count < limit:  # the buffer, not the cap: grow it
            cap = min(limit, 2 * cap)
            cells = np.resize(cells, (cap, max_size))
            cell_len = np.resize(cell_len, cap)
            mass = np.resize(mass, cap)
        elif status == _FULL or (status == _EMPTY and count > max_cells):
            if not raise_threshold:
                return None
            count, threshold = _keep_heaviest(cells, cell_len, mass, count, max_cells)
        if status == _EMPTY:
            break
    rows = cells[:count, : max(1, int(cell_len[:count].max()) if count else 1)]
    found = CellRows(np.zeros(count, np.int64), rows.astype(_narrow(n)), cell_len[:count].copy())
    return found, threshold


def _keep_heaviest(
    cells: np.ndarray, cell_len: np.ndarray, mass: np.ndarray, count: int, max_cells: int
) -> tuple[int, float]:
    """Move at most ``max_cells`` of the heaviest of the first ``count`` cells to the front,
    in the order found, and raise the threshold to just above the heaviest one dropped: the
    cells kept are exactly those that meet it (a walk that goes on with it only prunes more
    than before, so it still meets every cell that does). Returns (cells kept, threshold)."""
    threshold = float(np.sort(mass[:count])[::-1][max_cells]) + 1e-7
    keep = np.nonzero(mass[:count] >= threshold - 1e-9)[0]
    kept = len(keep)
    cells[:kept], cell_len[:kept], mass[:kept] = cells[keep], cell_len[keep], mass[keep]
    return kept, threshold


_EMPTY, _CHUNK, _FULL = 0, 1, 2  # why _walk_chunk returned


@njit(cache=True)
def _walk_chunk(
    delta, weights, pos, budget, max_size, threshold, best_only,
    stack, stack_len, top, cells, cell_len, mass, count, max_nodes,
):  # fmt: skip
    """Expand up to ``max_nodes`` cells of the reverse search from the stack; record each
    cell that meets the threshold. Returns (stack top, cells recorded, threshold, why it
    stopped: the stack ran empty, the chunk ended, or the record buffer is full).

    Every deficit it compares is summed afresh, in the order of the cell's sorted inputs,
    so a cell's parent does not depend on the path that reached it."""
    n = len(weights)
    widest = budget[max_size]
    to = np.empty(n)
    rows = np.empty(max_size + 1)
    kid = np.empty(max_size + 1, dtype=np.int32)
    grow = np.empty(n, dtype=np.int32)
    extra = np.empty(n)
    nodes = 0
    while top > 0:
        if nodes >= max_nodes:
            return top, count, threshold, _CHUNK
        if count >= len(mass):
            return top, count, threshold, _FULL
        nodes += 1
        top -= 1
        k = stack_len[top]
        cell = stack[top, :k].copy()
        deficit = 0.0
        for a in range(k):
            r = 0.0
            for b in range(k):
                r += delta[cell[a], cell[b]]
            deficit += r
        deficit *= 0.5
        for v in range(n):
            s = 0.0
            for b in range(k):
                s += delta[cell[b], v]
            to[v] = s
        for b in range(k):
            to[cell[b]] = np.inf
        weight = 0.0
        for b in range(k):
            weight += weights[cell[b]]
        room = max_size - k
        reach = 0.0
        if room > 0:
            # an input whose deficit to the cell already overflows the largest budget is in
            # no superset (deficits are >= 0)
            m = 0
            for v in range(n):
                if deficit + to[v] <= widest + 1e-7:
                    extra[m] = pos[v]
                    m += 1
            if m > 0:
                got = np.sort(extra[:m])
                for t in range(max(m - room, 0), m):
                    reach += got[t]
        if weight + reach < threshold - 1e-9:
            continue  # no superset reaches the threshold either
        if weight >= threshold - 1e-9:
            cells[count, :k] = cell
            cell_len[count] = k
            mass[count] = weight
            count += 1
            if best_only:
                threshold = weight + 1e-7  # from here on, only heavier cells count
        if room == 0:
            continue
        # each child sorted, its deficits summed afresh; kept where it fits the budget and
        # the new input is the one its parent rule removes
        g_count = 0
        for g in range(n):
            if deficit + to[g] > budget[k + 1] + 1e-7:
                continue
            _insert_sorted(cell, k, g, kid)
            total = 0.0
            last = 0
            for a in range(k + 1):
                r = 0.0
                for b in range(k + 1):
                    r += delta[kid[a], kid[b]]
                rows[a] = r
                total += r
                if r >= rows[last]:  # the largest deficit, the largest index on ties
                    last = a
            if 0.5 * total <= budget[k + 1] and kid[last] == g:
                grow[g_count] = g
                g_count += 1
        if g_count == 0:
            continue
        # the heaviest addition last, popped first
        order = np.argsort(weights[grow[:g_count]], kind="mergesort")
        for t in range(g_count):
            _insert_sorted(cell, k, grow[order[t]], stack[top])
            stack_len[top] = k + 1
            top += 1
    return top, count, threshold, _EMPTY


@njit(cache=True)
def _insert_sorted(cell, k, g, out):
    """``out[:k + 1]``: the sorted ``cell[:k]`` with ``g`` (not in it) added in order."""
    p = 0
    placed = False
    for b in range(k):
        if not placed and g < cell[b]:
            out[p] = g
            p += 1
            placed = True
        out[p] = cell[b]
        p += 1
    if not placed:
        out[p] = g
