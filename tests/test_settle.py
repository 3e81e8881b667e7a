"""Settling a pairwise partition: same strength, every cell still meets its floor, and inputs
end up in the cell they fit best where the floors allow it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solver import PairwiseIIA, Solver
from solver.settle import settle
from solver.verify import cell_iia_pairwise


def _planted(n: int, noise: float, seed: int) -> np.ndarray:
    """Two models, model 0 faithful on the first half, model 1 on the second; cross pairs
    succeed at a chance rate, and ``noise`` flips outcomes."""
    rng = np.random.default_rng(seed)
    half = np.arange(n) < n // 2
    w = np.empty((2, n, n))
    for m, region in enumerate((half, ~half)):
        inside = np.outer(region, region)
        p = np.where(inside, 1 - noise, 0.3)
        s = (rng.random((n, n)) < p).astype(float)
        w[m] = (s + s.T) / 2
        np.fill_diagonal(w[m], 1.0)
    return w


def _fit(w: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Each assigned input's mean weight to the other members of its own cell."""
    out = np.full(len(a), np.nan)
    for i in np.flatnonzero(a >= 0):
        cell = np.flatnonzero((a == a[i]) & (np.arange(len(a)) != i))
        out[i] = w[a[i], i, cell].mean()
    return out


@pytest.mark.unit
def test_settling_moves_a_misplaced_input_to_the_cell_it_fits():
    w = _planted(40, 0.0, 0)
    truth = (np.arange(40) >= 20).astype(np.int64)
    start = truth.copy()
    start[3] = 1  # input 3 belongs with model 0; cell 1 can absorb it at floor 0.9
    low = {m: t / p for m, (t, p) in cell_iia_pairwise(w, start).items()}
    assert min(low.values()) >= 0.9
    a, moves = settle(w, start, 0.9)
    assert moves == 1 and (a == truth).all()


@pytest.mark.property
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), noise=st.floats(0.0, 0.08), floor=st.sampled_from([0.9, 0.95]))
def test_settling_keeps_strength_and_floors_and_raises_fit(seed, noise, floor):
    w = _planted(30, noise, seed)
    part = Solver(semantics="pairwise", seed=0, time_limit=5).solve(
        PairwiseIIA(w, ("A", "B")), floor
    )
    a, moves = settle(w, part.assignment, floor)
    assert (a >= 0).sum() == part.strength
    assert ((a < 0) == (part.assignment < 0)).all()  # the fallback's inputs stay there
    for total, pairs in cell_iia_pairwise(w, a).values():
        assert total / pairs >= floor - 1e-9
    moved = np.flatnonzero(a != part.assignment)
    assert len(moved) <= moves
    # Each move raised the mover's fit when it moved; the inputs' total fit never falls.
    assert np.nansum(_fit(w, a)) >= np.nansum(_fit(w, part.assignment)) - 1e-9


@pytest.mark.unit
def test_settling_with_several_cells_per_model_moves_between_a_models_cells():
    from service.stages import _settled_cells

    # Model A is faithful on regions 0..9 and 10..19 apart, not across; input 3 (region one)
    # sits in A's other cell, which can absorb it at floor 0.8 (45 of 55 pairs succeed).
    region = np.repeat([0, 1], 10)
    w = np.stack([(region[:, None] == region[None, :]).astype(float), np.full((20, 20), 0.1)])
    for m in range(2):
        np.fill_diagonal(w[m], 0.0)
    data = PairwiseIIA(w, ("A", "B"))
    cell = region.copy()
    cell[3] = 1
    start = Solver(cells_per_model=2, method="greedy").solve(data, 0.8)
    start = type(start)(
        0.8, "pairwise", "per-model", ("A", "B"), None, np.zeros(20, dtype=np.int64),
        {"A": 45 / 55}, start.certificate, cell=cell, cells_iia={"A": (45 / 55, 1.0)},
    )  # fmt: skip
    settled, moves = _settled_cells(start, w, 2)
    assert moves == 1 and settled.cell.tolist() == region.tolist()
    assert settled.cells_iia == {"A": (1.0, 1.0)} and settled.strength == 20
