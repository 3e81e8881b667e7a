"""The SDP cell-size caps against the true largest cell, found by enumerating every subset
(tests/test_pairwise_bounds.py's brute force, written from the definition alone)."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest
from conftest import BUNDLED_DATA
from hypothesis import given, settings
from hypothesis import strategies as st
from test_pairwise_bounds import CASES, _feasible_masks, _ids, _optimum, _random

from solver.pairwise_bounds import size_bound, size_structure
from solver.pairwise_sdp import (
    CHUNK_ITERS,
    SDP_MAX_INPUTS,
    SETUP_ITERS,
    SizeCertificate,
    _size_cap,
    _SizeSDP,
    iteration_budget,
    sdp_model_caps,
    sdp_size_cap,
    weighted_cell_bound,
)
from solver.pairwise_search import search_pairwise
from solver.verify import is_feasible

# the single-model cases, and a few with several models
SIZE_CASES = [c for c in CASES if c[3] == 1] + [c for c in CASES if c[3] > 1][:4]


def _largest_cell(w_m: np.ndarray, floor: float) -> int:
    feasible = _feasible_masks(w_m, floor)
    sizes = np.array([bin(mask).count("1") for mask in range(len(feasible))])
    return int(sizes[feasible].max())


def _quadratic_max(w_m: np.ndarray, k: int) -> float:
    """max xᵀWx over 0/1 vectors with k ones, by enumeration."""
    n = w_m.shape[0]
    best = -np.inf
    for cell in itertools.combinations(range(n), k):
        c = list(cell)
        best = max(best, float(w_m[np.ix_(c, c)].sum()))
    return best


@pytest.mark.property
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(3, 9), scale=st.floats(0.01, 10.0))
def test_certificate_holds_for_any_multipliers(seed, n, scale):
    """The bound is re-derived from the multipliers alone: whatever SCS returned (here: any
    numbers at all, of either sign), it never falls below the true maximum of xᵀWx."""
    rng = np.random.default_rng(seed)
    w = _random(seed, n, 1)[0]
    sdp = _SizeSDP(w, 0.9)
    y = rng.normal(scale=scale, size=2 + 2 * n + n * (n - 1) // 2)
    for k in range(1, n + 1):
        assert sdp.certify(k, y) >= _quadratic_max(w, k) - 1e-9


@pytest.mark.integration
@pytest.mark.parametrize("case", SIZE_CASES, ids=_ids)
def test_caps_never_below_the_largest_cell(case):
    w, _, _ = _optimum(case)
    floor = case[-1]
    caps = sdp_model_caps(w, floor, np.ones(w.shape[0], dtype=int), time_limit=20.0)
    for m in range(w.shape[0]):
        truth = _largest_cell(w[m], floor)
        assert truth <= caps.caps[m] <= caps.size_test_caps[m]


@pytest.mark.integration
def test_caps_are_tight_where_the_size_tests_are_not():
    """The comparison above has teeth: on enumerable instances the SDP proves the largest
    cell exactly almost everywhere, and below the size tests' cap on many models."""
    exact = below = total = 0
    for case in CASES:
        w, _, _ = _optimum(case)
        floor = case[-1]
        caps = sdp_model_caps(w, floor, np.ones(w.shape[0], dtype=int), time_limit=20.0)
        for m in range(w.shape[0]):
            total += 1
            exact += caps.caps[m] == _largest_cell(w[m], floor)
            below += caps.caps[m] < caps.size_test_caps[m]
    assert exact >= total - 3
    assert below >= total // 3


@pytest.mark.integration
def test_shared_model_is_capped_at_the_cell_the_search_finds():
    """Model 1 of the authors' graphs on its first 120 inputs, floor 0.9: the size tests cap
    its cells at 50, the SDP within one of the cell the search finds (34 today, proven)."""
    w = np.load(BUNDLED_DATA)["twice_w"][1:2, :120, :120].astype(float) / 2
    floor = 0.9
    _, base = size_bound(w, floor)
    found = search_pairwise(w, floor, "per-model", time_limit=60.0, seed=0)
    assert is_feasible(w, found.assignment, floor, "pairwise", "per-model")
    k = int((found.assignment == 0).sum())
    cap, tests, finished = sdp_size_cap(w[0], floor, k, int(base[0]), time_limit=120.0)
    assert finished and tests
    assert k <= cap <= k + 1 and base[0] >= cap + 10
    # each refuted size was refuted by a certificate below its need
    assert all(t.value < t.need for t in tests if t.proven)


def _shared_models(models: list[int], n: int) -> np.ndarray:
    w = np.load(BUNDLED_DATA)["twice_w"][models, :n, :n].astype(float) / 2
    for m in range(len(models)):
        np.fill_diagonal(w[m], 0.0)
    return w


@pytest.mark.integration
def test_a_budget_stops_the_search_at_the_same_iteration_every_time():
    """The cap is a function of the graph and the time given (which buys SCS iterations),
    not of the clock: a budget too short to finish ends at the same size test, after the
    same iterations, with the same certified values, run after run."""
    w = _shared_models([1], 150)
    floor = 0.9
    _, base = size_bound(w, floor)
    runs = [sdp_size_cap(w[0], floor, 40, int(base[0]), time_limit=2.0) for _ in range(2)]
    (cap, tests, finished), (cap2, tests2, finished2) = runs
    assert not finished and not finished2  # the budget, not the search, ended it
    assert tests and not any(t.timed_out for t in tests)
    assert cap == cap2 and cap <= base[0]
    assert [(t.size, t.iterations, t.proven) for t in tests] == [
        (t.size, t.iterations, t.proven) for t in tests2
    ]
    np.testing.assert_array_equal([t.value for t in tests], [t.value for t in tests2])
    assert sum(SETUP_ITERS + t.iterations for t in tests) <= iteration_budget(2.0, 150)


class _ScriptedSDP:
    """Stands in for the SDP's numbers alone, to check the search's policy: sizes above
    ``reach`` refute in one chunk, ``reach`` itself after ``slow`` iterations, and sizes at or
    below ``truth`` never (SCS converges above the need after 100 iterations)."""

    def __init__(self, truth: int, reach: int, slow: int) -> None:
        self.truth, self.reach, self.slow = truth, reach, slow
        self.spent = {}  # iterations each size has had, over its probes (warm starts)

    def test(self, k: int, iterations: int, deadline: float) -> SizeCertificate:
        chunks = iterations // CHUNK_ITERS * CHUNK_ITERS
        had = self.spent.get(k, 0)
        if k > self.reach or (k > self.truth and had + chunks >= self.slow):
            used = CHUNK_ITERS if k > self.reach else max(self.slow - had, CHUNK_ITERS)
            self.spent[k] = had + used
            return SizeCertificate(k, True, 0.0, 1.0, 0.0, used)
        used = min(chunks, 100) if k <= self.truth else chunks
        self.spent[k] = had + used
        return SizeCertificate(k, False, 2.0, 1.0, 0.0, used)


@pytest.mark.unit
def test_a_probe_that_runs_out_does_not_end_the_search():
    """A size just above the largest cell can take more than the budget to refute. The search
    gives such a probe only a share, goes on with the sizes above it, and comes back to the
    smallest one still open with what is left."""
    inf = float("inf")
    # sizes 31-33 never refute within the budget: the search still proves every size above
    # them (cap 33); giving the bisection's probe at 31 all that was left would have ended
    # the search there, with the cap at 40 (41 refuted before it)
    cap, tests, finished = _size_cap(_ScriptedSDP(30, 33, 3000), 20, 60, 2000, inf)
    assert cap == 33 and not finished
    assert [t.size for t in tests][:3] == [21, 41, 31] and not tests[2].proven
    # where coming back to 31 refutes it (1200 iterations over two probes), the sizes below
    # it are searched again, down to the largest cell: the cap is exact
    cap, tests, finished = _size_cap(_ScriptedSDP(30, 31, 1200), 20, 60, 2500, inf)
    assert cap == 30 and finished
    assert [t.size for t in tests].count(31) == 2
    assert sum(SETUP_ITERS + t.iterations for t in tests) <= 2500
    again = _size_cap(_ScriptedSDP(30, 31, 1200), 20, 60, 2500, inf)[1]
    assert [(t.size, t.iterations) for t in again] == [(t.size, t.iterations) for t in tests]


@pytest.mark.integration
def test_a_deadline_stops_the_search_and_says_so():
    w = _shared_models([1, 2], 60)
    floor = 0.9
    _, base = size_bound(w, floor)
    cap, tests, finished = sdp_size_cap(
        w[0], floor, 1, int(base[0]), time_limit=10.0, deadline=time.perf_counter() - 1.0
    )
    assert cap == base[0] and not finished
    assert len(tests) == 1 and tests[0].timed_out and not tests[0].proven
    known = np.array([20, 20])  # below the cells a search finds (24 and 24)
    caps = sdp_model_caps(w, floor, known, 10.0, deadline=time.perf_counter() - 1.0)
    assert caps.timed_out and not caps.finished
    np.testing.assert_array_equal(caps.caps, caps.size_test_caps)
    # with the time it needs, the same models finish, and nothing says the time cut them
    caps = sdp_model_caps(w, floor, known, 10.0)
    assert caps.finished and not caps.timed_out and (caps.caps < caps.size_test_caps).all()


@pytest.mark.unit
def test_size_structure_takes_caps():
    w = _random(3, 12, 2)
    sizes, fits = size_structure(w, 0.8)
    capped, capped_fits = size_structure(w, 0.8, caps=np.array([4, 12]))
    assert not capped[0, 5:].any() and not capped_fits[0, :, 5:].any()
    np.testing.assert_array_equal(capped[0, :5], sizes[0, :5])
    np.testing.assert_array_equal(capped[1], sizes[1])


@pytest.mark.unit
def test_refuses_instances_too_large_for_a_dense_sdp():
    w = np.zeros((SDP_MAX_INPUTS + 1, SDP_MAX_INPUTS + 1))
    with pytest.raises(ValueError, match="SDP_MAX_INPUTS"):
        sdp_size_cap(w, 0.9, 1, 10)


@pytest.mark.integration
def test_copies_of_a_model_are_solved_once():
    """cells_per_model works on copies of each model: one SDP search serves them all."""
    w, _, _ = _optimum(CASES[4])
    twice = np.concatenate([w, w])
    caps = sdp_model_caps(twice, CASES[4][-1], np.array([1, 1]), time_limit=20.0)
    assert caps.caps[0] == caps.caps[1] == _largest_cell(w[0], CASES[4][-1])
    assert sum(1 for t in caps.tests if t) == 1


WEIGHTED_CASES = [(1, 0.9), (2, 0.8), (3, 0.95), (4, 1.0), (5, 0.9), (6, 0.85)]


def _weighted_case(seed: int, floor: float):
    from test_pairwise_colgen import _best_weighted_cell

    w = _random(seed, 11, 1)
    weights = np.random.default_rng(seed).uniform(-0.5, 1.0, size=11)
    sizes, _ = size_structure(w, floor)
    best = _best_weighted_cell(w[0], floor, weights)
    value = weighted_cell_bound(w[0], floor, weights, sizes[0], time_limit=20.0)
    ks = np.nonzero(sizes[0])[0]
    top = max(np.cumsum(np.sort(weights)[::-1])[k - 1] for k in ks)  # the size tests' bound
    return best, value, top


@pytest.mark.integration
@pytest.mark.parametrize("seed, floor", WEIGHTED_CASES)
def test_weighted_bound_covers_the_best_weighted_cell(seed, floor):
    """The pricing bound of column generation: never below the best weighted cell found by
    enumeration, nor above the size tests' top-k sums, and close to the best."""
    best, value, top = _weighted_case(seed, floor)
    assert best - 1e-6 <= value <= top + 1e-9
    assert value <= best + 0.25


@pytest.mark.integration
def test_weighted_bound_beats_the_top_k_sums():
    below = exact = 0
    for seed, floor in WEIGHTED_CASES:
        best, value, top = _weighted_case(seed, floor)
        below += value < top - 0.05
        exact += value <= best + 1e-3
    assert below >= 4 and exact >= 2
