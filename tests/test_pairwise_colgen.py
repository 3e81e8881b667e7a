"""Column generation against the true optimum, found by enumerating every subset
(tests/test_pairwise_bounds.py's brute force, written from the definition alone)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_pairwise_bounds import CASES, _feasible_masks, _ids, _optimum, _random

from solver.certificate import floor_bound
from solver.pairwise_bounds import pairwise_upper_bound, size_structure
from solver.pairwise_colgen import (
    COLGEN_MAX_INPUTS,
    _dive,
    _greedy_cells,
    _Pricer,
    column_generation,
)
from solver.verify import is_feasible

_RESULTS: dict = {}


def _colgen(case):
    if case not in _RESULTS:
        w, _, _ = _optimum(case)
        _RESULTS[case] = column_generation(w, case[-1], time_limit=20.0)
    return _RESULTS[case]


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_bound_holds_and_partition_is_real(case):
    w, opt, _ = _optimum(case)
    r = _colgen(case)
    assert r.bound >= opt - 1e-6
    assert r.strength <= opt
    assert is_feasible(w, r.assignment, case[-1], "pairwise", "per-model")


@pytest.mark.integration
def test_bound_is_tight_where_the_conflict_lp_is_not():
    """The comparison above has teeth: the bound proves the optimum on most instances, and
    on some of them the conflict LP cannot."""
    proven = beats_lp = 0
    for case in CASES:
        w, opt, _ = _optimum(case)
        r = _colgen(case)
        lp, _ = pairwise_upper_bound(w, case[-1], "per-model", time_limit=1.0)
        proven += floor_bound(r.bound) == opt
        beats_lp += floor_bound(r.bound) < floor_bound(lp)
    assert proven >= len(CASES) - 2
    assert beats_lp >= 2


def _best_weighted_cell(w_m: np.ndarray, floor: float, weights: np.ndarray) -> float:
    n = w_m.shape[0]
    feasible = _feasible_masks(w_m, floor)
    bits = ((np.arange(1 << n)[:, None] >> np.arange(n)[None, :]) & 1).astype(float)
    return float(np.max(np.where(feasible, bits @ weights, -np.inf)))  # the empty set: 0


@pytest.mark.integration
@pytest.mark.parametrize("seed, floor", [(0, 1.0), (1, 0.9), (2, 0.8), (3, 0.95)])
def test_exact_pricer_against_enumeration(seed, floor):
    """The pricer's bound covers the best weighted cell (the Lagrangian bound rests on it),
    matches it when solved to optimality, and every cell it returns meets the floor."""
    w = _random(seed, 11, 1)
    rng = np.random.default_rng(seed)
    weights = rng.uniform(-0.5, 1.0, size=11)
    sizes, fits = size_structure(w, floor)
    delta = 1.0 - w[0]
    np.fill_diagonal(delta, 0.0)
    pricer = _Pricer(delta, floor, sizes[0], fits[0])
    bound, cells, proven = pricer.price(weights, 10.0)
    best = _best_weighted_cell(w[0], floor, weights)
    assert proven
    assert best - 1e-6 <= bound <= best + 1e-4
    # a known cell passed as the starting incumbent changes nothing but the speed
    if cells:
        again, _, _ = pricer.price(weights, 10.0, hint=cells[0])
        assert abs(again - bound) <= 1e-4
    for cell in cells:
        a = -np.ones(11, dtype=int)
        a[cell] = 0
        assert is_feasible(w, a, floor, "pairwise", "per-model")


@pytest.mark.property
@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(4, 10),
    floor=st.sampled_from([1.0, 0.95, 0.9, 0.8, 0.6]),
)
def test_greedy_cells_meet_the_floor(seed, n, floor):
    w = _random(seed, n, 1)
    rng = np.random.default_rng(seed)
    weights = rng.uniform(-1.0, 1.0, size=n)
    delta = 1.0 - w[0]
    np.fill_diagonal(delta, 0.0)
    feasible = _feasible_masks(w[0], floor)
    for cell in _greedy_cells(delta, floor, weights, [np.arange(2)], rng):
        mask = int(sum(1 << int(v) for v in cell))
        assert len(cell) >= 2 and feasible[mask]


@pytest.mark.integration
def test_start_cells_are_kept():
    case = CASES[6]  # two models, floor 0.85
    w, opt, _ = _optimum(case)
    from solver.pairwise_exact import solve_pairwise_exact

    best, _ = solve_pairwise_exact(w, case[-1], time_limit=20)
    assert (best >= 0).sum() == opt
    r = column_generation(w, case[-1], time_limit=20.0, start=best)
    assert r.strength == opt
    assert floor_bound(r.bound) >= opt


@pytest.mark.integration
def test_a_pricing_cap_too_short_is_raised_rather_than_ending_the_run():
    """A pricing MILP stopped at its cap without a column used to end column generation
    with a weak bound; the round is now priced again under a longer cap, so a first cap far
    too short still reaches the bound of a comfortable one."""
    w = _random(7, 20, 2)
    short = column_generation(w, 0.9, time_limit=120.0, pricing_time=0.05)
    comfortable = column_generation(w, 0.9, time_limit=120.0, pricing_time=10.0)
    assert comfortable.converged and short.converged and not short.capped
    assert short.bound == pytest.approx(comfortable.bound, abs=1e-5)


@pytest.mark.unit
def test_refuses_what_it_cannot_price():
    with pytest.raises(ValueError, match=f"at most {COLGEN_MAX_INPUTS} inputs"):
        column_generation(np.zeros((1, COLGEN_MAX_INPUTS + 1, COLGEN_MAX_INPUTS + 1)), 0.9)
    with pytest.raises(ValueError, match="floor must lie in"):
        column_generation(np.zeros((1, 4, 4)), 1.5)


@pytest.mark.unit
def test_refuses_a_start_that_is_not_a_partition_meeting_the_floor():
    w = _random(0, 6, 1)
    with pytest.raises(ValueError, match="start must be a partition"):
        column_generation(w, 1.0, start=np.zeros(6, dtype=int))
    with pytest.raises(ValueError, match="start must be a partition"):
        column_generation(w, 1.0, start=np.zeros(5, dtype=int))


@pytest.mark.integration
def test_auto_proves_with_column_generation_before_the_exact_program():
    """Where the conflict LP leaves a gap (bound 11 over an optimum of 8), the column
    generation bound closes it, and the exact program is not needed."""
    from solver.pairwise_auto import solve_pairwise_auto

    case = CASES[8]
    w, opt, _ = _optimum(case)
    lp, _ = pairwise_upper_bound(w, case[-1], "per-model", time_limit=1.0)
    assert floor_bound(lp) > opt
    a, cert = solve_pairwise_auto(
        w,
        case[-1],
        "per-model",
        start=None,
        solver="highs",
        time_limit=30.0,
        seed=0,
        exact_max_inputs=100,
    )
    assert cert.status == "optimal" and cert.objective == opt
    assert "column generation" in cert.note and "exact program" not in cert.solver
    assert is_feasible(w, a, case[-1], "pairwise", "per-model")


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES[5:11], ids=_ids)
def test_dive_gives_a_real_partition(case):
    """Diving from no columns at all: every cell it fixes was priced by the greedy, so the
    partition meets the floor and is no better than the optimum."""
    import time

    w, opt, _ = _optimum(case)
    delta = 1.0 - w
    for m in range(w.shape[0]):
        np.fill_diagonal(delta[m], 0.0)
    a = _dive(delta, case[-1], [], np.random.default_rng(0), time.perf_counter() + 10.0)
    assert is_feasible(w, a, case[-1], "pairwise", "per-model")
    assert 2 <= (a >= 0).sum() <= opt
