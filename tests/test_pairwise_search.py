"""Annealing search under pairwise semantics: feasible, never weaker than its start, reproducible,
and optimal on instances small enough to enumerate."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from solver.feasibility import SCOPES
from solver.pairwise_search import improve_pairwise, search_pairwise, search_pairwise_starts


def _instance(seed: int, n: int, M: int, p_one: float = 0.6) -> np.ndarray:
    """Symmetric weights in {0, .5, 1} with a zero diagonal, like the real graphs."""
    rng = np.random.default_rng(seed)
    p_rest = (1 - p_one) / 2
    w = rng.choice([0.0, 0.5, 1.0], size=(M, n, n), p=[p_rest, p_rest, p_one])
    w = np.triu(w, 1)
    return w + w.transpose(0, 2, 1)


def _valid(w: np.ndarray, a: np.ndarray, floor: float, scope: str) -> bool:
    """The definition in plain Python, independent of the solver's code."""
    M, n, _ = w.shape
    if len(a) != n or any(x < -1 or x >= M for x in a):
        return False
    total = count = 0.0
    for m in range(M):
        cell = [i for i in range(n) if a[i] == m]
        if not cell:
            continue
        if len(cell) < 2:
            return False
        t = sum(w[m, i, j] for i, j in itertools.combinations(cell, 2))
        c = len(cell) * (len(cell) - 1) / 2
        if scope == "per-model" and t - floor * c < -1e-9 * c:
            return False
        total, count = total + t, count + c
    return scope == "per-model" or count == 0 or total - floor * count >= -1e-9 * count


def _brute_force(w: np.ndarray, floor: float, scope: str) -> int:
    """Best strength over all (M+1)^n assignments, strongest first so it can stop early."""
    M, n, _ = w.shape
    best = 0
    for a in itertools.product(range(-1, M), repeat=n):
        strength = n - a.count(-1)
        if strength > best and _valid(w, np.array(a), floor, scope):
            best = strength
    return best


def _pair_start(w: np.ndarray, floor: float) -> np.ndarray:
    """A small feasible start: the first pair of model 0 that meets the floor (or nothing)."""
    a = np.full(w.shape[1], -1, dtype=np.int64)
    for i, j in itertools.combinations(range(w.shape[1]), 2):
        if w[0, i, j] >= floor:
            a[[i, j]] = 0
            break
    return a


@pytest.mark.unit
@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("seed,n,M,floor", [(0, 12, 2, 0.9), (1, 20, 3, 0.8), (2, 30, 2, 0.95)])
def test_feasible_and_not_weaker(scope: str, seed: int, n: int, M: int, floor: float) -> None:
    w = _instance(seed, n, M)
    for start in (None, _pair_start(w, floor)):
        a = improve_pairwise(
            w, floor, scope, start=start, time_limit=5, seed=seed, max_moves=200_000
        )
        assert a.dtype == np.int64 and a.shape == (n,)
        assert _valid(w, a, floor, scope)
        if start is not None:
            assert (a >= 0).sum() >= (start >= 0).sum()


@pytest.mark.unit
def test_several_starts_keep_the_strongest_run() -> None:
    w = _instance(4, 40, 3)
    pair = _pair_start(w, 0.9)
    found = search_pairwise_starts(
        w, 0.9, starts=[pair, None, pair], time_limit=None, seed=3, max_moves=20_000
    )
    # the pair once (a duplicate runs once, None is no start), then the empty partition
    assert [start for start, _ in found.runs] == [2, 0]
    for start in (pair, None):
        alone = search_pairwise(w, 0.9, start=start, time_limit=None, seed=3, max_moves=20_000)
        assert (found.assignment >= 0).sum() >= (alone.assignment >= 0).sum()
    assert (
        max((run.assignment >= 0).sum() for _, run in found.runs) == (found.assignment >= 0).sum()
    )
    assert _valid(w, found.assignment, 0.9, "per-model")
    assert found.describe().count(" in 20,000 of 20,000 moves") == 2 and not found.capped
    # a result that reaches a proven bound ends the runs
    first = (found.runs[0][1].assignment >= 0).sum()
    stopped = search_pairwise_starts(
        w, 0.9, starts=[pair], time_limit=None, seed=3, max_moves=20_000, stop_at=int(first)
    )
    assert len(stopped.runs) == 1


@pytest.mark.unit
def test_strong_start_is_kept() -> None:
    # A start found by a long run is never traded for a weaker partition by a short one.
    w = _instance(3, 25, 3)
    strong = improve_pairwise(w, 0.9, start=None, time_limit=5, seed=1, max_moves=300_000)
    again = improve_pairwise(w, 0.9, start=strong, time_limit=5, seed=2, max_moves=1_000)
    assert _valid(w, again, 0.9, "per-model")
    assert (again >= 0).sum() >= (strong >= 0).sum()


@pytest.mark.unit
@pytest.mark.parametrize("scope", SCOPES)
def test_deterministic_with_max_moves(scope: str) -> None:
    w = _instance(4, 24, 3)
    runs = [
        improve_pairwise(w, 0.85, scope, time_limit=10, seed=7, max_moves=150_000) for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.unit
@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize(
    "seed,n,floor,p_one",
    [
        (10, 7, 0.9, 0.6),
        (12, 9, 0.95, 0.6),
        (13, 9, 1.0, 0.6),
        (30, 9, 0.75, 0.35),
        (30, 9, 0.9, 0.35),
        (32, 9, 0.9, 0.35),
    ],
)
def test_reaches_brute_force_optimum(
    scope: str, seed: int, n: int, floor: float, p_one: float
) -> None:
    w = _instance(seed, n, 2, p_one)
    a = improve_pairwise(w, floor, scope, time_limit=5, seed=0, max_moves=400_000)
    assert _valid(w, a, floor, scope)
    assert (a >= 0).sum() == _brute_force(w, floor, scope)


@pytest.mark.unit
def test_general_weights_and_time_limit() -> None:
    # Weights anywhere in [0, 1] (not just halves), and the clock stops a run with no move cap.
    rng = np.random.default_rng(5)
    w = np.triu(rng.uniform(0.4, 1.0, size=(3, 150, 150)), 1)
    w = w + w.transpose(0, 2, 1)
    t0 = time.perf_counter()
    a = improve_pairwise(w, 0.8, "per-model", time_limit=1.0, seed=0)
    assert time.perf_counter() - t0 < 3.0
    assert _valid(w, a, 0.8, "per-model")
    assert (a >= 0).sum() > 0


@pytest.mark.unit
def test_diagonal_is_ignored() -> None:
    # The authors store w(i, i) = 1; a pair is never an input with itself.
    w = _instance(8, 10, 2, p_one=0.3)
    with_diag = w.copy()
    for m in range(2):
        np.fill_diagonal(with_diag[m], 1.0)
    a = improve_pairwise(with_diag, 0.9, time_limit=5, seed=3, max_moves=50_000)
    b = improve_pairwise(w, 0.9, time_limit=5, seed=3, max_moves=50_000)
    np.testing.assert_array_equal(a, b)
    assert _valid(w, a, 0.9, "per-model")


@pytest.mark.unit
def test_rejects_bad_input() -> None:
    w = _instance(6, 6, 2)
    with pytest.raises(ValueError):
        improve_pairwise(w, 0.9, scope="pooled")
    with pytest.raises(ValueError):
        improve_pairwise(w, 0.9, start=np.array([0, -1, -1, -1, -1, -1]))  # a singleton cell


@pytest.mark.property
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(2, 16),
    M=st.integers(1, 3),
    floor=st.sampled_from([0.5, 0.75, 0.9, 1.0]),
    scope=st.sampled_from(SCOPES),
    p_one=st.floats(0.2, 0.9),
)
def test_always_feasible(seed: int, n: int, M: int, floor: float, scope: str, p_one: float) -> None:
    w = _instance(seed, n, M, p_one)
    start = _pair_start(w, floor)
    a = improve_pairwise(
        w, floor, scope, start=start, time_limit=5, seed=seed % 1000, max_moves=30_000
    )
    assert _valid(w, a, floor, scope)
    assert (a >= 0).sum() >= (start >= 0).sum()
