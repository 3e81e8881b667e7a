"""Pairwise upper bounds against the true optimum, found by enumerating every subset.

The optimum is computed here from the definition alone (a cell has >= 2 inputs and a mean
pairwise weight >= λ, up to the shared tolerance), never from the solver's own code, so a
bound that cuts off a real partition fails these tests. Each test also checks that the
bounds are not trivially n on some instances, so the comparison has teeth.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from solver.feasibility import TOL
from solver.pairwise_bounds import (
    conflict_lp_bound,
    pairwise_upper_bound,
    size_bound,
    spectral_size_cap,
)


def _random(seed: int, n: int, M: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.choice([0.0, 0.5, 1.0], p=[0.2, 0.25, 0.55], size=(M, n, n))
    w = np.triu(w, 1)
    return w + np.transpose(w, (0, 2, 1))


def _planted(seed: int, n: int, M: int) -> np.ndarray:
    """A sparse background with one dense block per model, the blocks overlapping."""
    rng = np.random.default_rng(seed)
    w = rng.choice([0.0, 0.5, 1.0], p=[0.45, 0.3, 0.25], size=(M, n, n))
    for m in range(M):
        cell = rng.choice(n, size=int(rng.integers(n // 3, 2 * n // 3 + 1)), replace=False)
        block = rng.choice([0.5, 1.0], p=[0.1, 0.9], size=(len(cell), len(cell)))
        w[m][np.ix_(cell, cell)] = block
    w = np.triu(w, 1)
    return w + np.transpose(w, (0, 2, 1))


def _feasible_masks(w_m: np.ndarray, floor: float) -> np.ndarray:
    """feasible[mask]: the inputs in ``mask`` form a cell meeting ``floor`` (empty: yes)."""
    n = w_m.shape[0]
    masks = np.arange(1 << n)
    bits = ((masks[:, None] >> np.arange(n)[None, :]) & 1).astype(float)
    w_m = w_m.copy()
    np.fill_diagonal(w_m, 0.0)
    total = ((bits @ w_m) * bits).sum(axis=1) / 2.0
    k = bits.sum(axis=1)
    pairs = k * (k - 1) / 2.0
    ok = (k >= 2) & (total - floor * pairs >= -TOL * pairs)
    ok[0] = True
    return ok


def _best_within(feasible: np.ndarray, n: int) -> np.ndarray:
    """best[U]: largest feasible cell inside U (superset-max transform over the masks)."""
    masks = np.arange(1 << n)
    best = np.where(feasible, np.array([bin(x).count("1") for x in masks]), 0)
    for b in range(n):
        has = (masks >> b) & 1 == 1
        best[has] = np.maximum(best[has], best[masks[has] ^ (1 << b)])
    return best


def brute_force(w: np.ndarray, floor: float) -> tuple[int, list[int]]:
    """(optimal strength, each model's largest feasible cell alone), by enumeration."""
    M, n, _ = w.shape
    full = (1 << n) - 1
    popcount = np.array([bin(x).count("1") for x in range(1 << n)])
    feas = [_feasible_masks(w[m], floor) for m in range(M)]
    alone = [int(popcount[f].max()) for f in feas]
    # value[U]: best strength using models m.. on the inputs of U, built from the last model
    value = _best_within(feas[-1], n)
    for m in range(M - 2, -1, -1):
        nxt = value.copy()
        masks = np.arange(1 << n)
        for s in np.nonzero(feas[m])[0]:
            if s == 0:
                continue
            sup = masks[(masks & s) == s]
            nxt[sup] = np.maximum(nxt[sup], popcount[s] + value[sup ^ s])
        value = nxt
    return int(value[full]), alone


CASES = [  # (maker, seed, n, M, floor)
    (_random, 0, 10, 1, 1.0),
    (_random, 1, 10, 1, 0.9),
    (_random, 2, 12, 1, 0.8),
    (_planted, 3, 12, 1, 0.95),
    (_planted, 4, 14, 1, 0.9),
    (_random, 5, 10, 2, 1.0),
    (_random, 6, 10, 2, 0.85),
    (_planted, 7, 12, 2, 1.0),
    (_planted, 8, 12, 2, 0.9),
    (_planted, 9, 12, 2, 0.8),
    (_random, 10, 8, 3, 1.0),
    (_random, 11, 9, 3, 0.75),
    (_planted, 12, 10, 3, 0.95),
    (_planted, 13, 10, 3, 0.85),
]


def _ids(case) -> str:
    maker, seed, n, M, floor = case
    return f"{maker.__name__[1:]}-s{seed}-n{n}-M{M}-f{floor}"


_OPT_CACHE: dict[tuple, tuple[int, list[int]]] = {}


def _optimum(case) -> tuple[np.ndarray, int, list[int]]:
    maker, seed, n, M, floor = case
    w = maker(seed, n, M)
    key = (maker.__name__, seed, n, M, floor)
    if key not in _OPT_CACHE:
        _OPT_CACHE[key] = brute_force(w, floor)
    return w, *_OPT_CACHE[key]


@pytest.mark.unit
def test_brute_force_matches_a_hand_instance():
    # a triangle of ones plus a pendant at 0.5: at floor 1 the best cell is the triangle,
    # at floor 0.75 all four (pair sum 3 + 3·0.5 = 4.5 over 6 pairs)
    w = np.zeros((1, 4, 4))
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        w[0, i, j] = w[0, j, i] = 1.0
    for i in range(3):
        w[0, i, 3] = w[0, 3, i] = 0.5
    assert brute_force(w, 1.0) == (3, [3])
    assert brute_force(w, 0.75) == (4, [4])
    assert brute_force(w, 0.76) == (3, [3])


@pytest.mark.unit
@pytest.mark.parametrize("a, b", [(5, 3), (6, 6), (7, 2)])
def test_spectral_cap_is_exact_on_disjoint_cliques(a, b):
    # λ_max of the union of K_a and K_b is max(a, b) − 1, so at floor 1 the interlacing
    # bound 1 + λ_max/λ is exactly the largest clique; at floor 0.5 it allows more
    w = np.zeros((a + b, a + b))
    w[:a, :a] = 1.0
    w[a:, a:] = 1.0
    np.fill_diagonal(w, 0.0)
    assert spectral_size_cap(w, 1.0) == max(a, b)
    assert spectral_size_cap(w, 0.5) > max(a, b)


@pytest.mark.unit
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_size_caps_hold(case):
    """Each model's spectral cap and the summed size test are >= the true optimum."""
    w, opt, alone = _optimum(case)
    floor = case[-1]
    for m in range(w.shape[0]):
        assert spectral_size_cap(w[m], floor) >= alone[m]
    total, kmax = size_bound(w, floor)
    assert total >= opt
    assert all(int(k) >= a for k, a in zip(kmax, alone))


@pytest.mark.unit
def test_size_caps_are_not_trivial():
    """The caps must bite somewhere, else the test above could not fail."""
    below = 0
    for case in CASES:
        w, _, _ = _optimum(case)
        n = w.shape[1]
        below += sum(spectral_size_cap(w[m], case[-1]) < n for m in range(w.shape[0]))
    assert below >= len(CASES) // 2


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_upper_bound_holds(case):
    w, opt, _ = _optimum(case)
    b, how = pairwise_upper_bound(w, case[-1], "per-model", time_limit=1.0)
    assert b >= opt - 1e-6, how


@pytest.mark.integration
def test_upper_bound_is_not_trivial():
    tight = 0
    for case in CASES:
        w, opt, _ = _optimum(case)
        b, _ = pairwise_upper_bound(w, case[-1], "per-model", time_limit=1.0)
        tight += b < w.shape[1] - 0.5
    assert tight >= len(CASES) // 2


@pytest.mark.integration
def test_cutting_plane_lp_ends_on_a_current_point():
    # HiGHS's run clock adds up over re-solves; a limit set from our own clock alone cut
    # later rounds short, leaving no primal point for pairwise_exact's cut selection
    w = _random(3, 60, 4)
    bound, rounds, lp = conflict_lp_bound(w, 1.0, 2.0)
    assert rounds >= 2
    assert lp.h.getSolution().value_valid
    assert bound < 60


@pytest.mark.integration
def test_global_scope_at_floor_one_holds():
    for case in [c for c in CASES if c[-1] == 1.0]:
        w, opt, _ = _optimum(case)
        b, how = pairwise_upper_bound(w, 1.0, "global", time_limit=1.0)
        assert b >= opt - 1e-6, how


@pytest.mark.property
@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(4, 10),
    floor=st.sampled_from([1.0, 0.95, 0.9, 0.8, 0.6]),
    density=st.floats(0.3, 0.95),
)
def test_spectral_cap_never_cuts_a_feasible_cell(seed, n, floor, density):
    rng = np.random.default_rng(seed)
    w = np.where(rng.random((n, n)) < density, 1.0, rng.choice([0.0, 0.5], size=(n, n)))
    w = np.triu(w, 1)
    w = w + w.T
    _, alone = brute_force(w[None], floor)
    assert spectral_size_cap(w, floor) >= alone[0]
