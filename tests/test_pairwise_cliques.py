"""The floor-1 clique caps: the bit-set branch and bound against networkx's enumeration of
maximal cliques, a stopped search's cap against the true maximum, and each model's cap
against the largest floor-1 cell found by enumerating every subset."""

from __future__ import annotations

import time

import networkx as nx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_pairwise_bounds import (
    CASES,
    _feasible_masks,
    _ids,
    _optimum,
    _planted,
    _random,
    brute_force,
)

from solver import PairwiseIIA, Solver, check_partition
from solver.pairwise_cliques import (
    _close_open_terms,
    _shrink_shared,
    best_responses,
    clique_caps,
    max_clique,
    shared_input_bound,
)

FLOOR_ONE = [c for c in CASES if c[4] == 1.0]


def _graph(seed: int, n: int, p: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = np.triu(rng.random((n, n)) < p, 1)
    return a | a.T


def _omega(a: np.ndarray) -> int:
    g = nx.from_numpy_array(a.astype(int))
    return max((len(c) for c in nx.find_cliques(g)), default=0)


def _is_clique(a: np.ndarray, cell: np.ndarray) -> bool:
    return bool((a[np.ix_(cell, cell)] | np.eye(len(cell), dtype=bool)).all())


@pytest.mark.property
@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 70),  # past 64: the candidate sets span two words
    p=st.floats(0.05, 0.9),
)
def test_max_clique_is_the_maximum(seed, n, p):
    a = _graph(seed, n, p)
    found = max_clique(a, time.perf_counter() + 60)
    assert found.proven
    assert found.upper == len(found.clique) == _omega(a)
    assert _is_clique(a, found.clique)


@pytest.mark.property
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 60), p=st.floats(0.02, 0.9))
def test_a_search_beyond_a_size_answers_whether_omega_exceeds_it(seed, n, p):
    a = _graph(seed, n, p)
    omega = _omega(a)
    for beyond in (omega - 2, omega - 1, omega, omega + 2):
        found = max_clique(a, time.perf_counter() + 60, beyond=beyond)
        assert found.proven and found.upper == max(omega, beyond, 1)
        assert _is_clique(a, found.clique)
        if omega > max(beyond, 1):  # a clique larger than asked is found and returned
            assert len(found.clique) == omega
        # told to stop at the first clique larger than asked: that clique, or none exists
        early = max_clique(a, time.perf_counter() + 60, beyond=beyond, enough=beyond + 1)
        assert _is_clique(a, early.clique) and early.upper >= len(early.clique)
        if omega > max(beyond, 1):
            assert len(early.clique) > beyond and early.upper >= omega
        else:
            assert early.proven and early.upper == found.upper


def _models_and_shared(seed: int, n: int, M: int):
    """M random graphs on n inputs (one key each), a random set U, and each ω(G_m − U)."""
    rng = np.random.default_rng(seed)
    graphs = [_graph(seed + m, n, float(rng.uniform(0.3, 0.9))) for m in range(M)]
    shared = rng.random(n) < 0.5
    rest = np.nonzero(~shared)[0]
    omegas = [_omega(g[np.ix_(rest, rest)]) for g in graphs]
    return graphs, [bytes([m]) for m in range(M)], shared, omegas


@pytest.mark.property
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 40), M=st.integers(1, 3))
def test_shrinking_the_shared_set_keeps_every_term_a_cap(seed, n, M):
    graphs, keys, shared, terms = _models_and_shared(seed, n, M)
    kept, late = _shrink_shared(
        graphs, keys, shared, np.array(terms), 10**9, time.perf_counter() + 60
    )
    assert not late
    assert not (kept & ~shared).any()  # inputs only leave U
    rest = np.nonzero(~kept)[0]
    for g, term in zip(graphs, terms, strict=True):  # |U| fell, and no term grew
        assert _omega(g[np.ix_(rest, rest)]) <= term


@pytest.mark.property
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 40), M=st.integers(1, 3))
def test_open_terms_searched_again_close_at_omega_outside_u(seed, n, M):
    graphs, keys, shared, omegas = _models_and_shared(seed, n, M)
    # loose terms (n) and one input outside U each as the clique at hand: every term is open
    cliques = [np.nonzero(~shared)[0][:1] for _ in graphs]
    deadline = time.perf_counter() + 60
    terms, _, late = _close_open_terms(
        graphs, keys, shared, np.full(M, n), cliques, 10**9, deadline
    )
    assert list(terms) == omegas and not late
    # searched again from exact terms: each stays as it is
    again, _, _ = _close_open_terms(graphs, keys, shared, terms, cliques, 10**9, deadline)
    assert list(again) == omegas


def _floor_one_partition(seed: int, n: int, M: int):
    """M random 0/1 graphs as floor-1 weights, and a floor-1 partition built greedily
    (each model in turn takes a clique among the inputs still free, of at most 3 inputs):
    feasible, and mostly short of each model's best cell."""
    rng = np.random.default_rng(seed)
    w = np.stack([_graph(seed + m, n, float(rng.uniform(0.3, 0.8))) for m in range(M)]) * 1.0
    assignment = np.full(n, -1)
    for m in rng.permutation(M):
        cell: list[int] = []
        for v in rng.permutation(n):
            if assignment[v] < 0 and len(cell) < 3 and all(w[m, v, u] == 1 for u in cell):
                cell.append(int(v))
        if len(cell) >= 2:
            assignment[cell] = m
    return w, assignment


@pytest.mark.property
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 40), M=st.integers(1, 4))
def test_best_responses_leave_every_model_at_its_best_cell(seed, n, M):
    w, start = _floor_one_partition(seed, n, M)
    found = best_responses(w, start, 60.0)
    a = found.assignment
    check_partition(w, a, 1.0, "pairwise", "per-model")
    gained = int((a >= 0).sum() - (start >= 0).sum())
    assert found.gained == gained >= 0 and not found.timed_out
    assert (found.replaced == 0) == (gained == 0)
    for m in range(M):  # no model gains from its own cell and the fallback any more
        free = np.nonzero((a == m) | (a < 0))[0]
        best = _omega(w[m][np.ix_(free, free)] == 1) if len(free) else 0
        assert (a == m).sum() == (best if best >= 2 else 0)  # a cell needs a pair


@pytest.mark.unit
def test_a_best_response_takes_no_clique_whose_deficits_exceed_the_budget():
    # inputs 0-3 are a clique of model 0's floor-1 graph (each pair's deficit 2e-9 is within
    # TOL·C(n, 2)), but their six deficits sum past the budget of a cell of 4: no cell
    n = 10
    w = np.zeros((1, n, n))
    w[0, :4, :4] = 1.0 - 2e-9
    w[0, 4, 5] = w[0, 5, 4] = 1.0
    np.fill_diagonal(w[0], 0.0)
    start = np.full(n, -1)
    start[[4, 5]] = 0
    found = best_responses(w, start, 60.0)
    assert np.array_equal(found.assignment, start) and found.gained == 0
    # with the deficits at 0 the same clique is a cell, and the response takes it
    w[0, :4, :4] = 1.0
    np.fill_diagonal(w[0], 0.0)
    taken = best_responses(w, start, 60.0)
    assert taken.gained == 2 and set(np.nonzero(taken.assignment == 0)[0]) == {0, 1, 2, 3}


@pytest.mark.unit
def test_a_stopped_search_still_caps_every_clique():
    a = _graph(3, 90, 0.6)
    omega = _omega(a)
    stopped = max_clique(a, 0.0)  # no branch searched: the first colouring's count alone
    assert not stopped.proven
    assert stopped.upper >= omega
    assert _is_clique(a, stopped.clique) and len(stopped.clique) <= omega
    # a clique at hand is kept when nothing larger is found, and the cap is the same
    full = max_clique(a, time.perf_counter() + 60)
    again = max_clique(a, time.perf_counter() + 60, known=full.clique)
    assert again.proven and again.upper == omega
    assert sorted(again.clique) == sorted(full.clique)


@pytest.mark.unit
def test_bad_graphs_and_hints_are_refused():
    a = _graph(1, 12, 0.5)
    with pytest.raises(ValueError, match="symmetric"):
        max_clique(np.triu(a), 1e18)
    apart = np.nonzero(~a[0])[0]
    apart = apart[apart != 0][:1]
    with pytest.raises(ValueError, match="not a clique"):
        max_clique(a, 1e18, known=np.array([0, int(apart[0])]))


@pytest.mark.integration
@pytest.mark.parametrize(
    "maker, seed, n, M", [(_random, 0, 10, 1), (_planted, 7, 12, 2), (_random, 10, 8, 3)]
)
def test_caps_are_the_largest_floor_one_cells(maker, seed, n, M):
    w = maker(seed, n, M)
    caps = clique_caps(w, None, 30.0)
    assert caps.proven.all()
    for m in range(M):
        feasible = _feasible_masks(w[m], 1.0)
        sizes = np.array([bin(mask).count("1") for mask in range(len(feasible))])
        largest = int(sizes[feasible].max())
        # a single input is a clique of one but no cell: the cap may exceed the cell by that
        assert caps.caps[m] == max(largest, 1)


@pytest.mark.integration
def test_auto_at_floor_one_takes_exact_caps_and_skips_the_sdp(authors_graphs):
    # 200 of the authors' inputs: too many for the exact program; every cap closes at once
    w = authors_graphs.candidates().weights[:, :200, :200]
    data = PairwiseIIA(w, authors_graphs.candidates().models)
    # a first call compiles the search kernels on a cold cache, inside its own time limit
    Solver(method="auto", time_limit=2, seed=0).solve(data, 1.0)
    result = Solver(method="auto", time_limit=8, seed=0).solve(data, 1.0)
    cert = result.certificate
    assert "clique caps" in cert.note and "(6 of 6 exact" in cert.note
    assert "SDP size caps" not in cert.note  # it cannot lower caps that are exact
    assert "best responses: " in cert.note  # the search's partition is polished by cliques
    caps = clique_caps(w, None, 30.0)
    assert caps.proven.all()
    for m in range(w.shape[0]):  # each cap is a floor-1 cell: the largest one alone
        assert caps.caps[m] >= int((result.assignment == m).sum())
    assert result.strength <= cert.bound <= min(200, int(caps.caps.sum()))


@pytest.mark.integration
def test_skipped_clique_caps_are_said_in_the_note(authors_graphs):
    # 1000 inputs: at a 5 s limit the caps would get 2 s, past the SDP's size too little to
    # prove anything, so they do not run, and the certificate says why rather than nothing
    result = Solver(method="auto", time_limit=5, seed=0).solve(authors_graphs, 1.0)
    note = result.certificate.note
    assert "clique caps skipped: the time limit buys them 2.0s" in note
    assert "a time limit of at least 20s runs them" in note
    assert "clique caps [" not in note


@pytest.mark.integration
@pytest.mark.parametrize("case", FLOOR_ONE, ids=_ids)
def test_counting_shared_inputs_once_stays_above_the_optimum(case):
    w, optimum, _ = _optimum(case)
    caps = clique_caps(w, None, 30.0)
    shared = shared_input_bound(w, caps, 30.0)
    assert optimum <= shared.bound <= min(w.shape[1], int(caps.caps.sum()))


@pytest.mark.unit
def test_counting_shared_inputs_once_beats_the_sum_of_caps():
    # two models, one clique of 8 inputs each, the same 8 (model 1 also joins inputs 8 and
    # 9): the caps sum to 16; the shared 8 counted once leave 8 + 1 + 2, and one of the 8
    # may leave U again (alone outside it, it adds no clique larger than 1 and 2): 7 + 1 +
    # 2, the optimum of 10 (model 0 takes the 8, model 1 the pair)
    n = 12
    w = np.zeros((2, n, n))
    w[:, :8, :8] = 1.0
    w[:, 8:, 8:] = 0.5
    w[1, 8, 9] = w[1, 9, 8] = 1.0
    for m in range(2):
        np.fill_diagonal(w[m], 0.0)
    caps = clique_caps(w, None, 30.0)
    assert list(caps.caps) == [8, 8] and caps.proven.all()
    shared = shared_input_bound(w, caps, 30.0)
    assert shared.rounds >= 1 and shared.dropped == 1 and shared.shared == 7
    assert shared.bound == 7 + 1 + 2
    optimum, _ = brute_force(w, 1.0)
    assert optimum == 10


@pytest.mark.unit
def test_a_branch_budget_stops_the_search_at_the_same_branch_every_time():
    a = _graph(5, 300, 0.7)  # a dense graph whose search takes far more than the budget
    runs = [max_clique(a, time.perf_counter() + 60, branches=30_000) for _ in range(2)]
    for found in runs:
        assert found.nodes == 30_000 and not found.proven and not found.timed_out
        assert _is_clique(a, found.clique) and found.upper > len(found.clique)
    assert runs[0].upper == runs[1].upper
    assert np.array_equal(runs[0].clique, runs[1].clique)
    # the deadline alone stops it: reported, as its result depends on the machine's speed
    late = max_clique(a, time.perf_counter() - 1.0, branches=30_000)
    assert late.timed_out and late.nodes == 0 and late.upper >= runs[0].upper


@pytest.mark.integration
def test_caps_and_the_shared_input_bound_repeat_under_their_branch_budgets():
    # three dense models on 300 inputs: 0.2 s of budget (40,000 branches) closes no cap,
    # so where each search stops decides the caps and the bound; a generous deadline
    # leaves that to the budgets alone
    rng = np.random.default_rng(3)
    w = np.stack(
        [np.where(_graph(m, 300, 0.75), 1.0, rng.choice([0.0, 0.5], (300, 300))) for m in range(3)]
    )
    w = np.minimum(w, np.transpose(w, (0, 2, 1)))  # symmetric, as the bound reads pairs
    for m in range(3):
        np.fill_diagonal(w[m], 0.0)
    runs = []
    for _ in range(2):
        deadline = time.perf_counter() + 600
        caps = clique_caps(w, None, 0.2, deadline)
        shared = shared_input_bound(w, caps, 0.2, deadline)
        runs.append((caps, shared))
    (caps, shared), (caps2, shared2) = runs
    assert not caps.proven.any() and not caps.timed_out and not shared.timed_out
    assert np.array_equal(caps.caps, caps2.caps)
    assert (shared.bound, shared.shared, shared.rounds, shared.dropped) == (
        shared2.bound,
        shared2.shared,
        shared2.rounds,
        shared2.dropped,
    )
    assert shared.bound <= min(300, int(caps.caps.sum()))
