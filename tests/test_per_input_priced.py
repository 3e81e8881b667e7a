"""The priced bounds for per-input partitions under max_models (solver.per_input_priced):
each model's fractional knapsack against every cell of tiny columns, the bound at any
prices and after branching on the model set against brute-force optima (per-model and
global floors), the top-rows shortcut against the whole column, and the gaps they close."""

from __future__ import annotations

import itertools
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_per_input import brute_force
from test_per_input_options_scale import brute_optimum, planted

from solver import per_input_priced as priced
from solver.certificate import floor_bound
from solver.feasibility import meets_floor
from solver.per_input import solve_per_input
from solver.per_input_bounds import closed_form_global, conflict_bound
from solver.per_input_priced import (
    _descend,
    _global_descend,
    _Knapsacks,
    _MakeUp,
    _worth,
    global_priced_bound,
    model_set_bound,
    priced_bound,
)
from solver.verify import check_partition


def best_cell_value(column: np.ndarray, floor: float, price: np.ndarray) -> float:
    """max Σ_{i∈S} (1 − π_i) over every cell S of one model that meets the floor."""
    best = 0.0
    for mask in itertools.product([False, True], repeat=len(column)):
        pick = np.asarray(mask)
        if pick.any() and meets_floor(column[pick].sum(), int(pick.sum()), floor):
            best = max(best, float((1.0 - price[pick]).sum()))
    return best


@pytest.mark.property
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(2, 9),
    floor=st.sampled_from([0.5, 0.7, 0.8, 0.9]),
)
def test_knapsack_is_at_least_every_cell_and_a_feasible_fraction(seed, n, floor):
    rng = np.random.default_rng(seed)
    a = rng.integers(2, 11, size=(n, 2)) / 10.0
    price = rng.choice([0.0, 0.3, 1.0, rng.uniform()], size=n)
    sacks = _Knapsacks(a, floor, np.arange(2))
    for j in range(2):
        value, rows, frac = sacks.value(j, price)
        assert value >= best_cell_value(a[:, j], floor, price) - 1e-9
        # the value is that of a fractional cell that meets the floor's terms
        assert np.all((frac >= 0) & (frac <= 1))
        assert value == pytest.approx(float(frac @ (1.0 - price[rows])), abs=1e-9)
        assert float(frac @ sacks.terms[j]) >= -1e-9


@pytest.mark.property
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(3, 6),
    n_models=st.integers(2, 3),
    floor=st.sampled_from([0.5, 0.7, 0.8]),
    max_models=st.sampled_from([1, 2]),
)
def test_bounds_are_above_brute_force(seed, n, n_models, floor, max_models):
    rng = np.random.default_rng(seed)
    a = rng.integers(2, 11, size=(n, n_models)) / 10.0
    best = brute_optimum(a, floor, max_models, 1)
    cols = np.arange(n_models)
    # any prices give a bound: one evaluation from random ones
    sacks = _Knapsacks(a, floor, cols)
    every = np.ones(n_models, dtype=bool)
    start = rng.uniform(size=n)
    once = _descend(sacks, every, ~every, max_models, 0, start, None, 1)
    assert once.bound >= best - 1e-9
    assert priced_bound(a, floor, cols, max_models, 0).bound >= best - 1e-9
    branched = model_set_bound(a, floor, cols, max_models, 0)
    assert floor_bound(branched.bound) >= best
    assert branched.bound <= branched.root + 1e-9


@pytest.mark.unit
def test_top_rows_give_the_whole_columns_answer():
    # 3000 rows: each knapsack starts from its top rows; at any prices its answer must be
    # the one over the whole column (the shortcut grows the rows where it cannot vouch).
    a = planted(3000, 5, 3)
    rng = np.random.default_rng(0)
    sacks = _Knapsacks(a, 0.85, np.arange(5))
    whole = _Knapsacks(a, 0.85, np.arange(5))
    for j in range(5):
        whole.rows[j] = np.argsort(-a[:, j], kind="stable")
        whole.terms[j] = a[whole.rows[j], j] - (0.85 - 1e-9)
    assert all(len(sacks.rows[j]) < 3000 for j in range(5))
    for trial in range(6):
        price = np.zeros(3000)
        hot = rng.choice(3000, size=300 * trial, replace=False)
        price[hot] = rng.uniform(size=len(hot))
        for j in range(5):
            got = sacks.value(j, price)[0]
            assert got == pytest.approx(whole.value(j, price)[0], rel=1e-12, abs=1e-9)


@pytest.mark.integration
def test_model_set_bound_meets_the_exact_optimum():
    # 60 inputs, 5 models, at most 2 cells: HiGHS proves the optimum; the branched bound
    # must hold above it and must not exceed the lone-cell bound.
    a = planted(60, 5, 1)
    floor = 0.85
    _, exact = solve_per_input(a, floor, method="ilp", solver="highs", max_models=2)
    assert exact.status == "optimal"
    cols = np.arange(5)
    found = model_set_bound(a, floor, cols, 2, 0)
    assert found.closed
    lone, _ = conflict_bound(a, floor, cols, 2)
    assert exact.objective <= floor_bound(found.bound) <= lone


@pytest.mark.integration
def test_auto_closes_the_gap_the_lone_cell_bound_left():
    # 20,001 x 16 float32 at floor 0.9, at most 8 cells (no MILP at this size): the
    # lone-cell bound leaves a gap of several percent; the model-set bound closes it to
    # under 0.2%, and every branch settles.
    a32 = planted(20_001, 16, 7, dtype=np.float32)
    assign, cert = solve_per_input(a32, 0.9, time_limit=60, max_models=8)
    check_partition(a32, assign, 0.9, "per-input", "per-model", max_models=8)
    lone, _ = conflict_bound(a32, 0.9, np.arange(16), 8)
    assert (lone - cert.objective) / lone > 0.01
    assert cert.gap is not None and cert.gap <= 0.002, cert
    assert "every branch settled" in cert.note


@pytest.mark.property
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(3, 6),
    n_models=st.integers(2, 3),
    floor=st.sampled_from([0.5, 0.7, 0.8, 1.0]),
    max_models=st.sampled_from([None, 1, 2]),
    min_cell=st.sampled_from([1, 2, 3]),
    mu=st.floats(0.0, 20.0),
)
def test_global_bounds_are_above_brute_force(seed, n, n_models, floor, max_models, min_cell, mu):
    rng = np.random.default_rng(seed)
    a = rng.integers(2, 11, size=(n, n_models)) / 10.0
    best, _ = brute_force(a, floor, "global", max_models, min_cell)
    # any multiplier, any prices (here the first step's, all 0): a bound
    first = _global_descend(a, floor, mu, max_models, min_cell, 0, None, 1)
    assert first.bound >= best - 1e-9
    hint = rng.choice(n_models, size=max_models or n_models, replace=False)
    found = global_priced_bound(a, floor, max_models, np.sort(hint), 0, min_cell=min_cell)
    assert floor_bound(found.bound) >= best
    # fewer make-up candidates than a cell needs (0: only the rows of w > 0): the rows
    # past them count at the edge, and every price the steps reach still gives a bound
    for rows in (0, 1):
        with mock.patch.object(priced, "_MAKE_UP_ROWS", rows):
            short = _global_descend(a, floor, mu, max_models, min_cell, 0, None, 30)
        assert short.bound >= best - 1e-9


@pytest.mark.property
@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    rows=st.integers(0, 3),
    size=st.integers(1, 5),
    k=st.integers(1, 5),
)
def test_make_up_is_at_least_the_best_rows_at_any_prices(seed, rows, size, k):
    # the k largest w − π among a model's rows that w − π > 0 does not count already
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 21, size=(12, 3)) / 20.0
    floor, mu = 0.6, float(rng.uniform(0.5, 8.0))
    used_rows = np.unique(_worth(a, floor, mu)[0])
    positive = np.bincount(_worth(a, floor, mu)[1], minlength=3)
    price = rng.uniform(0.0, 1.5, size=len(used_rows))
    full_price = np.zeros(12)
    full_price[used_rows] = price
    with mock.patch.object(priced, "_MAKE_UP_ROWS", rows):
        make_up = _MakeUp(a, floor, mu, positive, size, used_rows)
    for m in range(3):
        w = 1.0 + mu * (a[:, m] - (floor - 1e-9))
        value = w - full_price
        rest = np.sort(value[~((w > 0) & (value > 0))])[::-1]
        exact = rest[:k].sum() if len(rest) >= k else -np.inf
        got, _ = make_up.add(m, k, np.append(price, 0.0))
        assert got >= exact - 1e-9
        if positive[m] + rows * size >= 12:  # every row a candidate: exact
            assert got == pytest.approx(exact) or (np.isinf(got) and np.isinf(exact))


@pytest.mark.integration
def test_auto_global_with_max_models_proves_what_the_closed_form_could_not():
    # Global floor, at most 4 models, 20,001 float32 inputs (no MILP at this size): the
    # closed form's bound ignores the 4 and sits far above; the priced bound meets the
    # partition.
    a32 = planted(20_001, 16, 7, dtype=np.float32)
    assign, cert = solve_per_input(a32, 0.9, "global", time_limit=60, max_models=4)
    check_partition(a32, assign, 0.9, "per-input", "global", max_models=4)
    free = int((closed_form_global(a32, 0.9) >= 0).sum())
    assert free > 2 * cert.objective
    assert cert.gap is not None and cert.gap <= 0.002, cert
    assert "priced bound" in cert.note


@pytest.mark.integration
def test_auto_global_with_min_cell_proves_no_cell_fits():
    # Global floor 0.9, every cell at least 1500 of 20,001 inputs: no model holds that many
    # at the pooled floor, which the closed form (it ignores min_cell) cannot see.
    a32 = planted(20_001, 16, 7, dtype=np.float32)
    assign, cert = solve_per_input(a32, 0.9, "global", time_limit=60, min_cell=1500)
    assert int((closed_form_global(a32, 0.9) >= 0).sum()) > 5000
    assert cert.status == "optimal" and cert.objective == 0 == cert.bound, cert
    assert not (assign >= 0).any()
