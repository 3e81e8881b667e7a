"""Exact pairwise solver and pairwise upper bound against brute force on tiny instances."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from solver.feasibility import meets_floor
from solver.pairwise_bounds import pairwise_upper_bound, size_bound
from solver.pairwise_exact import solve_pairwise_exact
from solver.verify import is_feasible


def _instance(seed: int, n: int, M: int = 2, halves: bool = True) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if halves:
        w = rng.choice([0.0, 0.5, 1.0], p=[0.15, 0.2, 0.65], size=(M, n, n))
    else:
        w = rng.uniform(0.3, 1.0, size=(M, n, n))
    w = np.triu(w, 1)
    w = w + np.transpose(w, (0, 2, 1))
    return w


def _valid(w, a, floor, scope) -> bool:
    """The definition, written independently of the solver module."""
    M = w.shape[0]
    tot = cnt = 0.0
    for m in range(M):
        s = [i for i in range(len(a)) if a[i] == m]
        if not s:
            continue
        if len(s) < 2:
            return False
        t = sum(w[m, i, j] for i, j in itertools.combinations(s, 2))
        c = len(s) * (len(s) - 1) / 2
        if scope == "per-model" and not meets_floor(t, c, floor):
            return False
        tot, cnt = tot + t, cnt + c
    return scope != "global" or meets_floor(tot, cnt, floor)


def _brute(w, floor, scope) -> int:
    M, n, _ = w.shape
    best = 0
    for a in itertools.product(range(-1, M), repeat=n):
        k = sum(1 for v in a if v >= 0)
        if k > best and _valid(w, a, floor, scope):
            best = k
    return best


CASES = [  # (seed, n, halves, floor, scope)
    (0, 7, True, 1.0, "per-model"),
    (1, 7, True, 0.9, "per-model"),
    (2, 7, True, 0.75, "per-model"),
    (3, 6, False, 0.7, "per-model"),
    (4, 7, True, 0.85, "global"),
    (5, 6, False, 0.72, "global"),
    (6, 7, True, 1.0, "global"),
]


@pytest.fixture(scope="module")
def brute_optima():
    return {c: _brute(_instance(c[0], c[1], halves=c[2]), c[3], c[4]) for c in CASES}


@pytest.mark.unit
@pytest.mark.parametrize("case", CASES)
def test_upper_bound_dominates_brute_force(case, brute_optima):
    seed, n, halves, floor, scope = case
    w = _instance(seed, n, halves=halves)
    b, how = pairwise_upper_bound(w, floor, scope, time_limit=2.0)
    assert isinstance(how, str) and how
    assert brute_optima[case] <= b + 1e-9 <= n + 1e-9
    if scope == "per-model":
        assert brute_optima[case] <= size_bound(w, floor)[0]


@pytest.mark.unit
def test_upper_bound_is_tight_on_cliques():
    # two models, each one a 4-clique on disjoint inputs; everything else 0
    n = 8
    w = np.zeros((2, n, n))
    w[0][np.ix_(range(4), range(4))] = 1.0
    w[1][np.ix_(range(4, 8), range(4, 8))] = 1.0
    for m in range(2):
        np.fill_diagonal(w[m], 0.0)
    b, _ = pairwise_upper_bound(w, 1.0)
    assert b == pytest.approx(8.0, abs=1e-6)
    w[1] = w[0]
    b, _ = pairwise_upper_bound(w, 1.0)
    assert 4.0 <= b < 5.0


@pytest.mark.integration
@pytest.mark.parametrize("solver", ["highs", "cbc"])
@pytest.mark.parametrize("case", CASES)
def test_exact_equals_brute_force(case, solver, brute_optima):
    seed, n, halves, floor, scope = case
    w = _instance(seed, n, halves=halves)
    a, cert = solve_pairwise_exact(w, floor, scope, solver=solver, time_limit=30)
    assert _valid(w, a, floor, scope)
    assert is_feasible(w, a, floor, "pairwise", scope)
    assert cert.objective == brute_optima[case] == int((a >= 0).sum())
    assert cert.status == "optimal"
    assert cert.bound == cert.objective


@pytest.mark.integration
def test_warm_start_is_used_and_checked():
    w = _instance(2, 7)
    a0 = -np.ones(7, dtype=int)
    a, cert = solve_pairwise_exact(w, 0.75, solver="highs", warm_start=a0, time_limit=20)
    assert cert.objective == _brute(w, 0.75, "per-model")
    bad = np.zeros(7, dtype=int)  # one cell of everything: infeasible at floor 1
    w1 = _instance(0, 7)
    if not is_feasible(w1, bad, 1.0, "pairwise", "per-model"):
        a, cert = solve_pairwise_exact(w1, 1.0, warm_start=bad, time_limit=20)
        assert "warm start dropped: infeasible" in cert.note
        assert is_feasible(w1, a, 1.0, "pairwise", "per-model")


@pytest.mark.integration
def test_a_known_bound_caps_the_program_and_a_wrong_one_is_caught():
    from test_pairwise_bounds import CASES as BOUND_CASES
    from test_pairwise_bounds import _optimum

    case = BOUND_CASES[8]  # the bound LP proves 11 here, the optimum is 8
    w, opt, _ = _optimum(case)
    a, cert = solve_pairwise_exact(w, case[-1], known_bound=opt + 0.5, time_limit=20)
    assert cert.objective == opt and cert.status == "optimal"
    assert f"given bound {opt + 0.5:.2f}" in cert.note
    # a "bound" below a verified partition is a bug somewhere, never a certificate
    with pytest.raises(AssertionError, match="bound below a verified partition"):
        solve_pairwise_exact(w, case[-1], known_bound=opt - 1, warm_start=a, time_limit=20)


@pytest.mark.integration
def test_certificate_optimal_only_when_proven():
    w = _instance(11, 40, M=3)
    a, cert = solve_pairwise_exact(w, 0.8, solver="highs", time_limit=2.0)
    assert is_feasible(w, a, 0.8, "pairwise", "per-model")
    assert cert.bound is not None and cert.bound >= cert.objective
    if "kOptimal" not in cert.note:
        # stopped early: "optimal" is allowed only when a proven bound meets the objective
        assert cert.status == "feasible" or cert.bound == cert.objective
        assert cert.status != "optimal" or cert.gap == 0.0
    else:
        assert cert.status == "optimal"


@pytest.mark.unit
def test_unknown_solver_names_alternatives():
    w = _instance(0, 5)
    with pytest.raises(ValueError) as err:
        solve_pairwise_exact(w, 1.0, solver="no-such-solver")
    msg = str(err.value)
    assert "no-such-solver" in msg
    assert "available" in msg and "HiGHS" in msg
