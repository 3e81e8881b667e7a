"""The packing search of the reduced-cost proof against every packing, enumerated from the
definition (each input and each model at most once), and against the set-packing MILP."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solver.pairwise_colgen import packing_program
from solver.pairwise_pack import LAGRANGE_STEPS, cell_masks, pack_by_search, prepare_cells


def _instance(seed: int, n: int, models: int, per_model: int):
    """Random cells, π >= 0 with some zeros, and σ_m at least each cell's Σ(1 − π), so that
    every reduced cost is >= 0 (what column generation hands the search)."""
    rng = np.random.default_rng(seed)
    cells = []
    for m in range(models):
        for _ in range(int(rng.integers(1, per_model + 1))):
            k = int(rng.integers(2, min(6, n) + 1))
            cells.append((m, np.sort(rng.choice(n, k, replace=False))))
    pi = np.where(rng.random(n) < 0.3, 0.0, rng.uniform(0.0, 1.2, n))
    sigma = np.zeros(models)
    for m, c in cells:
        sigma[m] = max(sigma[m], float((1.0 - pi[c]).sum()))
    sigma += rng.uniform(0.0, 0.5, models) * (rng.random(models) < 0.5)
    return cells, pi, sigma


def _best_packing(cells) -> int:
    """The largest packing, by trying every subset of the cells."""
    best = 0
    for r in range(len(cells) + 1):
        for chosen in itertools.combinations(cells, r):
            models = [m for m, _ in chosen]
            inputs = np.concatenate([c for _, c in chosen]) if chosen else np.array([])
            if len(set(models)) == len(models) and len(set(inputs)) == len(inputs):
                best = max(best, len(inputs))
    return best


def _is_packing_of(assignment: np.ndarray, cells) -> bool:
    """Every model's inputs in ``assignment`` are exactly one of its cells."""
    given = {(m, tuple(c)) for m, c in cells}
    for m in set(assignment[assignment >= 0].tolist()):
        if (m, tuple(np.nonzero(assignment == m)[0])) not in given:
            return False
    return True


@pytest.mark.property
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(4, 12), models=st.integers(1, 3))
def test_search_finds_the_largest_packing_or_proves_none_reaches_the_target(seed, n, models):
    cells, pi, sigma = _instance(seed, n, models, per_model=4)
    opt = _best_packing(cells)
    for target, steps in itertools.product((opt - 1, opt, opt + 1), (0, LAGRANGE_STEPS)):
        found = pack_by_search(cells, pi, sigma, target, time.perf_counter() + 60, steps)
        assert found.finished
        if target > opt:
            assert found.assignment is None  # no packing reaches it: the proof's "none"
        else:
            assert found.assignment is not None
            assert (found.assignment >= 0).sum() == opt  # the strongest, not the first
            assert _is_packing_of(found.assignment, cells)


@pytest.mark.property
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_search_agrees_with_the_set_packing_program_on_larger_instances(seed):
    cells, pi, sigma = _instance(seed, 20, 4, per_model=25)
    packing, bound, optimal = packing_program(cells, 20, 4, 60.0)
    assert optimal
    opt = int((packing >= 0).sum())
    found = pack_by_search(cells, pi, sigma, opt, time.perf_counter() + 60)
    assert found.finished and (found.assignment >= 0).sum() == opt
    beyond = pack_by_search(cells, pi, sigma, opt + 1, time.perf_counter() + 60)
    assert beyond.finished and beyond.assignment is None


@pytest.mark.unit
def test_search_out_of_time_says_it_did_not_finish():
    cells, pi, sigma = _instance(3, 20, 4, per_model=25)
    found = pack_by_search(cells, pi, sigma, 0, time.perf_counter() - 1.0)
    assert not found.finished  # an unfinished search proves nothing


@pytest.mark.unit
def test_masks_hold_each_input_at_its_bit():
    masks = cell_masks([np.array([0, 63]), np.array([64, 70])], 71)
    assert masks.shape == (2, 2)
    assert masks[0, 0] == np.uint64(1) | (np.uint64(1) << np.uint64(63)) and masks[0, 1] == 0
    assert masks[1, 0] == 0 and masks[1, 1] == np.uint64(1) | (np.uint64(1) << np.uint64(6))


@pytest.mark.unit
def test_cell_rows_keep_every_cell_past_the_16_bit_index_range():
    # past 2**15 inputs the rows widen to int32; concatenating pads the narrower part
    from solver.pairwise_cells import CellRows

    n = 40_000
    wide = CellRows.from_list([(1, np.array([39_999, 5])), (0, np.array([32_768]))])
    short = CellRows.from_list([(2, np.array([7, 3, 9]))])
    both = CellRows.concatenate([wide, short], n)
    assert wide.rows.dtype == np.int32 and both.rows.dtype == np.int32
    assert [(m, c.tolist()) for m, c in both] == [(1, [5, 39_999]), (0, [32_768]), (2, [3, 7, 9])]
    values = np.arange(n, dtype=float)
    assert both.sums(values).tolist() == [40_004.0, 32_768.0, 19.0]
    masks = cell_masks(both, n)
    assert masks[0, 39_999 // 64] == np.uint64(1) << np.uint64(39_999 % 64)
    assert int(sum(bin(int(x)).count("1") for x in masks.ravel())) == 6


@pytest.mark.unit
def test_cells_prepared_once_give_the_same_search_as_the_list():
    # the reduced-cost proof prepares its cells once for every target
    cells, pi, sigma = _instance(5, 20, 4, per_model=25)
    table = prepare_cells(cells, pi, sigma)
    assert np.all(np.diff(table.rc) >= 0)  # cheapest first
    for target in (10, 14, 18):
        a = pack_by_search(cells, pi, sigma, target, time.perf_counter() + 60)
        b = pack_by_search(table, pi, sigma, target, time.perf_counter() + 60)
        assert a.finished and b.finished and a.nodes == b.nodes
        assert (a.assignment is None) == (b.assignment is None)
        if a.assignment is not None:
            assert np.array_equal(a.assignment, b.assignment)


@pytest.mark.property
@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_search_told_the_bound_stops_at_the_first_packing_that_meets_it(seed):
    cells, pi, sigma = _instance(seed, 12, 3, per_model=4)
    opt = _best_packing(cells)
    full = pack_by_search(cells, pi, sigma, opt, time.perf_counter() + 60)
    early = pack_by_search(cells, pi, sigma, opt, time.perf_counter() + 60, enough=opt)
    assert early.finished and early.assignment is not None
    assert (early.assignment >= 0).sum() == opt and _is_packing_of(early.assignment, cells)
    assert early.nodes <= full.nodes
