"""Per-input options at scale (solver.per_input with max_models / min_cell): the lone-cell
bounds checked against exact optima (brute force, HiGHS proven), the float32 path, the
verifier-consistent settling, and the memory-estimate refusal."""

from __future__ import annotations

import itertools
import time
import tracemalloc

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solver import data
from solver.feasibility import meets_floor
from solver.memory import (
    MemoryEstimateError,
    check_per_input_memory,
    per_input_memory_need,
)
from solver.per_input import problems, solve_per_input
from solver.per_input_bounds import (
    conflict_bound,
    lagrangian_dual,
    lone_cells,
    single_cell_sizes,
    tie_break_eps,
)
from solver.per_input_milp import milp_pulp
from solver.per_input_repair import reoptimize_cells, settle
from solver.verify import check_partition


def planted(n: int, n_models: int, seed: int, dtype=np.float64) -> np.ndarray:
    """A true model per input with high IIA, a runner-up, low IIA elsewhere (the shape of
    bench/per_input_scale.py's synthetic data, small)."""
    rng = np.random.default_rng(seed)
    a = rng.beta(2.0, 5.0, size=(n, n_models))
    rows = np.arange(n)
    true = rng.integers(0, n_models, size=n)
    second = (true + rng.integers(1, n_models, size=n)) % n_models
    a[rows, second] = rng.beta(7.0, 3.0, size=n)
    a[rows, true] = rng.beta(10.0, 2.5, size=n)
    return np.clip(a, 0.0, 1.0).astype(dtype)


def brute_optimum(a: np.ndarray, floor: float, max_models: int | None, min_cell: int) -> int:
    """The best strength over all (M + 1)^n assignments (per-model floor)."""
    n, n_models = a.shape
    best = 0
    for combo in itertools.product(range(-1, n_models), repeat=n):
        assign = np.asarray(combo)
        strength = int((assign >= 0).sum())
        if strength <= best:
            continue
        if not problems(a, assign, floor, "per-model", max_models, min_cell):
            best = strength
    return best


# ---------------------------------------------------------------------------------------
# the bounds against exact optima
# ---------------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize("seed", range(6))
def test_lone_cell_is_the_largest_feasible_cell(seed):
    # Every subset of one column: the largest feasible one has exactly the lone size.
    rng = np.random.default_rng(seed)
    col = rng.integers(3, 11, size=(9, 1)) / 10.0
    floor = 0.8
    best = 0
    for mask in itertools.product([False, True], repeat=9):
        vals = col[np.asarray(mask), 0]
        if len(vals) > best and meets_floor(vals.sum(), len(vals), floor):
            best = len(vals)
    assert single_cell_sizes(col, floor)[0] == best
    cell = lone_cells(col, floor, np.array([0]))[0]
    assert len(cell) == best and meets_floor(col[cell, 0].sum(), len(cell), floor)


@pytest.mark.property
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(3, 6),
    n_models=st.integers(2, 3),
    floor=st.sampled_from([0.5, 0.7, 0.8]),
    max_models=st.sampled_from([None, 1, 2]),
)
def test_conflict_bound_is_above_brute_force(seed, n, n_models, floor, max_models):
    rng = np.random.default_rng(seed)
    a = rng.integers(2, 11, size=(n, n_models)) / 10.0
    bound, _ = conflict_bound(a, floor, np.arange(n_models), max_models)
    assert bound >= brute_optimum(a, floor, max_models, 1)


@pytest.mark.integration
@pytest.mark.parametrize("seed", range(2))
@pytest.mark.parametrize("max_models,min_cell", [(2, 1), (1, 1), (None, 8), (2, 6)])
def test_options_bound_is_above_the_exact_milp(seed, max_models, min_cell):
    n, n_models = 40 + 20 * seed, 3 + 2 * seed
    a = planted(n, n_models, seed)
    floor = 0.85
    opts = dict(max_models=max_models, min_cell=min_cell)
    _, c_exact = solve_per_input(a, floor, method="ilp", solver="highs", **opts)
    assert c_exact.status == "optimal"
    assign, cert = solve_per_input(a, floor, method="auto", **opts)
    check_partition(a, assign, floor, "per-input", "per-model", **opts)
    assert cert.objective <= c_exact.objective <= cert.bound
    # The bounds "auto" uses at scale (no MILP there), each on its own: the lone-cell bound
    # and the Lagrangian, both on the models that can hold min_cell inputs alone.
    cols = np.flatnonzero(single_cell_sizes(a, floor) >= min_cell)
    lone, _ = conflict_bound(a, floor, cols, max_models)
    assert lone >= c_exact.objective
    if len(cols):
        lag, _, _ = lagrangian_dual(a, floor, tie_break_eps(n), deadline=None, cols=cols)
        assert lag >= c_exact.objective


@pytest.mark.integration
def test_scale_shaped_options_give_a_small_verified_gap():
    # 20,000 x 16 float32 at floor 0.98 (above MILP_MAX_INPUTS: no MILP phase), as at scale.
    a32 = planted(20_001, 16, 7, dtype=np.float32)
    for opts in ({}, {"max_models": 4}, {"min_cell": 60}):
        assign, cert = solve_per_input(a32, 0.98, time_limit=60, **opts)
        check_partition(a32, assign, 0.98, "per-input", "per-model", **opts)
        assert cert.gap is not None and cert.gap <= 0.02, (opts, cert)


# ---------------------------------------------------------------------------------------
# float32, settling, local re-forming
# ---------------------------------------------------------------------------------------


@pytest.mark.unit
def test_float32_data_gets_no_float64_copy():
    a = planted(100_000, 16, 3, dtype=np.float32)
    tracemalloc.start()
    try:
        # No options: the Lagrangian over all 16 models runs (its oracle is the big part).
        assign, cert = solve_per_input(a, 0.98)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The oracle keeps two float32 [n, M] arrays; a float64 copy of a and a float64 oracle
    # would need 6x a.nbytes.
    print(f"tracemalloc peak {peak / a.nbytes:.2f} x a.nbytes")
    assert peak < 3.5 * a.nbytes, peak / a.nbytes
    assert "bundle iterations" in cert.note
    check_partition(a, assign, 0.98, "per-input", "per-model")


@pytest.mark.unit
def test_settle_drops_the_lowest_until_the_verifier_agrees():
    a = np.array([[0.95], [0.95], [0.89], [0.5]])
    assign = np.array([0, 0, 0, 0])
    fixed = settle(a, assign, 0.9, "per-model")
    assert fixed.tolist() == [0, 0, 0, -1]
    assert not problems(a, fixed, 0.9, "per-model")
    assert settle(a, fixed, 0.9, "per-model").tolist() == fixed.tolist()
    # min_cell: a cell that falls under it is emptied.
    assert settle(a, assign, 0.9, "per-model", min_cell=4).tolist() == [-1] * 4


@pytest.mark.unit
def test_reoptimize_cells_never_shrinks_a_cell():
    a = planted(300, 4, 1)
    assign = np.full(300, -1)
    assign[:40] = np.argmax(a[:40], axis=1)
    from solver.per_input_repair import repair

    assign = repair(a, assign, 0.85, "per-model")
    before = np.bincount(assign[assign >= 0], minlength=4)
    after_assign = reoptimize_cells(a, assign, 0.85, np.arange(4))
    after = np.bincount(after_assign[after_assign >= 0], minlength=4)
    assert np.all(after >= before) and after.sum() > before.sum()
    assert not problems(a, after_assign, 0.85, "per-model")


# ---------------------------------------------------------------------------------------
# the memory-estimate refusal
# ---------------------------------------------------------------------------------------


@pytest.mark.unit
def test_memory_estimate_counts_the_oracle_and_the_milp():
    lag = per_input_memory_need(1_000_000, 64, "lagrangian", itemsize=4)
    assert 2 * 1_000_000 * 64 * 4 < lag < 8 * 2**30  # the 10^6 x 64 float32 case fits 8 GiB
    assert per_input_memory_need(1_000_000, 64, "lagrangian", itemsize=8) > lag
    assert per_input_memory_need(1_000_000, 64, "pulp") > 100 * 2**30  # refused anywhere
    assert per_input_memory_need(1000, 8, "highs") < per_input_memory_need(1000, 8, "pulp")
    with pytest.raises(ValueError):
        per_input_memory_need(10, 2, "nonsense")
    # Normal sizes pass on this machine.
    assert check_per_input_memory(1000, 8, "pulp") > 0


@pytest.mark.unit
@pytest.mark.parametrize("method", ["ilp", "auto"])
def test_refused_before_building_when_memory_is_short(monkeypatch, method):
    monkeypatch.setattr(data, "available_memory", lambda: 2**20)
    a = planted(200_000, 8, 0, dtype=np.float32)
    t0 = time.perf_counter()
    with pytest.raises(MemoryEstimateError) as info:
        solve_per_input(a, 0.9, method=method)
    # PuLP would spend minutes building 1.6 million variables: the refusal came first.
    assert time.perf_counter() - t0 < 5.0
    assert isinstance(info.value, ValueError)
    text = str(info.value)
    assert "GiB" in text and "available" in text and "200,000 inputs x 8 models" in text
    assert ("method='auto'" in text) == (method == "ilp")


@pytest.mark.unit
def test_milp_builders_refuse_too(monkeypatch):
    monkeypatch.setattr(data, "available_memory", lambda: 2**20)
    a = planted(100_000, 8, 0)
    with pytest.raises(MemoryEstimateError, match="method='auto'"):
        milp_pulp(
            a,
            0.9,
            "per-model",
            solver="highs",
            time_limit=1,
            max_models=None,
            min_cell=1,
            warm_start=None,
        )


@pytest.mark.integration
def test_auto_skips_its_milp_phase_when_only_the_lagrangian_fits(monkeypatch):
    a = planted(120, 4, 2)
    room = per_input_memory_need(120, 4, "lagrangian") + 1
    monkeypatch.setattr(data, "available_memory", lambda: room)
    assign, cert = solve_per_input(a, 0.85, max_models=2)
    assert "milp: skipped" in cert.note
    check_partition(a, assign, 0.85, "per-input", "per-model", max_models=2)
    monkeypatch.undo()
    _, exact = solve_per_input(a, 0.85, method="ilp", max_models=2)
    assert exact.status == "optimal" and cert.bound >= exact.objective
