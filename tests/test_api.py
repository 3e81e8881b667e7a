"""The library surface: configuration errors, data/semantics mismatches, the verifier."""

import numpy as np
import pytest
from conftest import random_pairwise

from solver import (
    IIADataError,
    PairwiseIIA,
    PartitionCheckError,
    PerInputIIA,
    Solver,
    SolverConfigError,
    check_partition,
    solve,
)


@pytest.fixture
def small():
    return PairwiseIIA(random_pairwise(np.random.default_rng(3), 2, 8), ("a", "b"))


@pytest.mark.unit
@pytest.mark.parametrize("floor", [0.0, -0.1, 1.01, float("nan"), float("inf")])
def test_floor_outside_unit_interval(small, floor):
    with pytest.raises(SolverConfigError, match=r"outside \(0, 1\]"):
        Solver(method="greedy").solve(small, floor)


@pytest.mark.unit
def test_configuration_errors_name_the_choices():
    with pytest.raises(SolverConfigError, match="semantics"):
        Solver(semantics="quadratic")
    with pytest.raises(SolverConfigError, match="method"):
        Solver(method="magic")
    with pytest.raises(SolverConfigError, match="scope"):
        Solver(scope="everywhere")
    with pytest.raises(SolverConfigError, match="time limit"):
        Solver(time_limit=0)
    with pytest.raises(SolverConfigError, match="per-input semantics only"):
        Solver(semantics="pairwise", max_models=2)
    with pytest.raises(ValueError, match=r"unknown solver 'gurobi-ish'.*HiGHS"):
        Solver(method="ilp", solver="gurobi-ish")
    with pytest.raises(ValueError, match="not installed here.*PULP_CBC_CMD"):
        Solver(method="ilp", solver="CPLEX_PY")


@pytest.mark.unit
def test_pairwise_semantics_needs_the_pairwise_tensor():
    data = PerInputIIA(np.random.default_rng(0).random((5, 2)), ("a", "b"))
    with pytest.raises(IIADataError, match="pairwise semantics needs"):
        Solver(method="greedy").solve(data, 0.9)


@pytest.mark.unit
def test_unknown_candidate_and_fallback(small):
    with pytest.raises(IIADataError, match="unknown candidate"):
        solve(small, 0.9, method="greedy", candidates=["zz"])
    with pytest.raises(IIADataError, match="unknown fallback"):
        solve(small, 0.9, method="greedy", fallback="zz")
    result = solve(small, 0.9, method="greedy", fallback="b")
    assert result.models == ("a",) and result.fallback == "b"


@pytest.mark.unit
def test_checker_rejects_what_breaks_the_floor():
    w = np.zeros((1, 4, 4))
    w[0, 0, 1] = w[0, 1, 0] = 1.0
    assert check_partition(w, np.array([0, 0, -1, -1]), 1.0, "pairwise", "per-model") == {0: 1.0}
    with pytest.raises(PartitionCheckError, match="below the floor"):
        check_partition(w, np.array([0, 0, 0, -1]), 0.5, "pairwise", "per-model")
    with pytest.raises(PartitionCheckError, match="fewer than the minimum 2"):
        check_partition(w, np.array([0, -1, -1, -1]), 0.5, "pairwise", "per-model")
    with pytest.raises(PartitionCheckError, match="outside"):
        check_partition(w, np.array([0, 0, 1, -1]), 0.5, "pairwise", "per-model")
    # Global scope pools the pairs: 1 good pair + 2 bad ones is a mean of 1/3.
    assert check_partition(w, np.array([0, 0, 0, -1]), 0.3, "pairwise", "global") == {0: 1 / 3}
    a = np.array([[1.0, 0.0], [0.5, 0.9], [0.7, 0.2]])
    with pytest.raises(PartitionCheckError, match="more than the maximum 1"):
        check_partition(a, np.array([0, 1, -1]), 0.5, "per-input", "per-model", max_models=1)


@pytest.mark.unit
def test_result_serialises_names_and_fallback(small):
    result = solve(small, 0.75, method="greedy")
    d = result.to_dict()
    assert d["strength"] == result.strength == sum(x is not None for x in d["assignment"])
    assert set(d["assignment"]) <= {"a", "b", None}
    assert d["certificate"]["status"] == "heuristic" and d["certificate"]["bound"] is None


@pytest.mark.integration
@pytest.mark.parametrize("semantics", ["pairwise", "per-input"])
@pytest.mark.parametrize("method", ["auto", "ilp"])
def test_a_floor_no_cell_can_meet_is_strength_zero_proven(semantics, method):
    w = np.full((2, 6, 6), 0.5)
    for m in range(2):
        np.fill_diagonal(w[m], 0.0)
    data = PairwiseIIA(w, ("a", "b"))
    result = Solver(semantics=semantics, method=method, time_limit=5).solve(data, 0.9)
    assert result.strength == 0 and result.cell_iia == {}
    assert result.certificate.status == "optimal" and result.certificate.bound == 0


@pytest.mark.integration
@pytest.mark.parametrize("scope", ["per-model", "global"])
def test_auto_frontier_on_a_small_instance_is_verified_and_monotone(scope):
    rng = np.random.default_rng(11)
    data = PairwiseIIA(random_pairwise(rng, 3, 14, p_one=0.6), ("a", "b", "c"))
    front = Solver(method="auto", scope=scope, time_limit=4).frontier(data, [1.0, 0.9, 0.8])
    assert front.strengths == sorted(front.strengths)
    for p in front.results:
        check_partition(data.weights, p.assignment, p.floor, "pairwise", scope)
        # The bound holds against the proven optimum, not just the partition found.
        exact = Solver(method="ilp", scope=scope, time_limit=60).solve(data, p.floor)
        assert exact.certificate.status == "optimal"
        assert p.certificate.bound is not None and p.certificate.bound >= exact.strength
        greedy = Solver(method="greedy").solve(data, p.floor)
        assert p.strength >= greedy.strength


@pytest.mark.integration
def test_a_sweep_is_never_below_the_lone_solve_of_a_floor():
    # On this instance the search from the floor-1 partition ends at 93 at floor 0.9, one
    # input short of the search from the greedy partition a lone solve starts from: the sweep
    # runs the search from both (and from the empty partition) and keeps the strongest.
    data = PairwiseIIA(random_pairwise(np.random.default_rng(9), 3, 120, p_one=0.7), "abc")
    solver = Solver(method="auto", time_limit=20, budget=100_000)
    front = solver.frontier(data, [1.0, 0.9])
    alone = solver.solve(data, 0.9)
    swept = front.results[1]
    check_partition(data.weights, swept.assignment, 0.9, "pairwise", "per-model")
    assert swept.strength >= alone.strength == 94
    assert swept.certificate.note.count(" in 100,000 of 100,000 moves") == 3
    assert " from 0 in " in swept.certificate.note


@pytest.mark.unit
def test_a_bad_second_start_is_dropped_with_a_note():
    from solver.pairwise_auto import solve_pairwise_auto

    w = random_pairwise(np.random.default_rng(2), 2, 12)
    a, cert = solve_pairwise_auto(
        w,
        0.9,
        "per-model",
        start=None,
        solver="highs",
        time_limit=5,
        seed=0,
        exact_max_inputs=0,
        budget=1_000,
        also_from=np.zeros(5, dtype=np.int64),
    )
    check_partition(w, a, 0.9, "pairwise", "per-model")
    assert "second start dropped: shape (5,)" in cert.note
