"""Reduced-cost enumeration against the true optimum, found by enumerating every subset
(tests/test_pairwise_bounds.py's brute force, written from the definition alone)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_pairwise_bounds import CASES, _feasible_masks, _ids, _optimum, _random
from test_pairwise_colgen import _colgen

from solver.pairwise_bounds import size_bound
from solver.pairwise_cells import enumerate_cells, heaviest_cell, heaviest_cells
from solver.pairwise_enumerate import reduced_cost_cells, reduced_cost_proof
from solver.verify import is_feasible

# one model's small instance: every subset is enumerated as the truth
ONE_MODEL = dict(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(4, 10),
    floor=st.sampled_from([1.0, 0.95, 0.9, 0.8]),
)


def _subsets(seed: int, n: int, floor: float):
    """(w, weights, feasible mask per subset, subset bits, subset sizes)."""
    w = _random(seed, n, 1)[0]
    weights = np.random.default_rng(seed).uniform(-0.5, 1.0, size=n)
    bits = (np.arange(1 << n)[:, None] >> np.arange(n)[None, :]) & 1
    return w, weights, _feasible_masks(w, floor), bits, bits.sum(axis=1)


@pytest.mark.property
@settings(max_examples=25, deadline=None)
@given(**ONE_MODEL, threshold=st.floats(-1.0, 4.0))
def test_enumeration_finds_exactly_the_heavy_feasible_cells(seed, n, floor, threshold):
    w, weights, feasible, bits, size = _subsets(seed, n, floor)
    heavy = bits @ weights >= threshold - 1e-9
    truth = {int(m) for m in np.nonzero(feasible & heavy & (size >= 2))[0]}
    delta = 1.0 - w
    np.fill_diagonal(delta, 0.0)
    cells = enumerate_cells(delta, floor, weights, threshold, n, time.perf_counter() + 60)
    assert cells is not None
    found = [int(sum(1 << int(v) for v in c)) for c in cells]
    assert len(found) == len(set(found))  # each cell once
    assert set(found) == truth


@pytest.mark.property
@settings(max_examples=25, deadline=None)
@given(**ONE_MODEL, max_size=st.integers(2, 10))
def test_heaviest_cell_is_the_maximum_over_every_feasible_cell(seed, n, floor, max_size):
    w, weights, feasible, bits, size = _subsets(seed, n, floor)
    allowed = feasible & (size >= 2) & (size <= max_size)
    truth = max(0.0, float((bits @ weights)[allowed].max())) if allowed.any() else 0.0
    delta = 1.0 - w
    np.fill_diagonal(delta, 0.0)
    out = heaviest_cell(delta, floor, weights, max_size, time.perf_counter() + 60)
    assert out is not None
    weight, cell = out
    assert weight == pytest.approx(truth, abs=1e-9)
    if cell is None:
        assert truth <= 1e-9  # only the empty cell's 0
    else:
        assert allowed[int(sum(1 << int(v) for v in cell))]
        assert float(weights[cell].sum()) == pytest.approx(weight)
    # a weight known to be reached, and above every cell's, comes back as the maximum
    above = weight + 1e-3
    again = heaviest_cell(delta, floor, weights, max_size, time.perf_counter() + 60, above)
    assert again == (above, None)


@pytest.mark.property
@settings(max_examples=25, deadline=None)
@given(**ONE_MODEL, threshold=st.floats(-1.0, 2.0), cap=st.integers(1, 40))
def test_a_capped_enumeration_is_complete_above_its_raised_threshold(
    seed, n, floor, threshold, cap
):
    """Past its cap the walk raises its threshold: what it returns must be exactly the
    feasible cells that meet the threshold it reports, no more than the cap."""
    w, weights, feasible, bits, size = _subsets(seed, n, floor)
    delta = 1.0 - w
    np.fill_diagonal(delta, 0.0)
    out = heaviest_cells(delta, floor, weights, threshold, n, time.perf_counter() + 60, cap)
    assert out is not None
    cells, raised = out
    assert raised >= threshold and len(cells) <= cap
    truth = {
        int(m) for m in np.nonzero(feasible & (bits @ weights >= raised - 1e-9) & (size >= 2))[0]
    }
    assert {int(sum(1 << int(v) for v in c)) for _, c in cells} == truth


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES[:6], ids=_ids)
@pytest.mark.parametrize("cap", [3, 20])
def test_capped_reduced_cost_cells_are_every_cell_of_their_room(case, cap):
    """Across models the cap lowers one room: the cells returned must be every feasible cell
    of every model whose reduced cost fits it (checked against every subset)."""
    w, _, _ = _optimum(case)
    floor = case[-1]
    r = _colgen(case)
    pi = np.maximum(r.multipliers, 0.0)
    sigma = np.maximum(r.pricing_bounds, 0.0)
    M, n, _ = w.shape
    _, largest = size_bound(w, floor)
    wanted = float(pi.sum() + sigma.sum())  # every cell's reduced cost is at most this
    cells, room = reduced_cost_cells(
        w, floor, pi, sigma, wanted, largest, time.perf_counter() + 60, cap
    )
    assert room <= wanted and len(cells) <= cap
    bits = (np.arange(1 << n)[:, None] >> np.arange(n)[None, :]) & 1
    truth = set()
    for m in range(M):
        rc = bits @ pi + sigma[m] - bits.sum(axis=1)
        ok = _feasible_masks(w[m], floor) & (bits.sum(axis=1) >= 2) & (rc <= room + 1e-9)
        ok &= bits.sum(axis=1) <= largest[m]
        truth |= {(m, int(s)) for s in np.nonzero(ok)[0]}
    assert {(m, int(sum(1 << int(v) for v in c))) for m, c in cells} == truth


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES[:6], ids=_ids)
def test_a_proof_under_a_small_cap_still_bounds_the_optimum(case):
    """With room for few cells the proof may not close, but each strength it refutes must
    lie above the optimum, and a partition it returns must be feasible and no stronger
    than its bound."""
    w, opt, _ = _optimum(case)
    floor = case[-1]
    r = _colgen(case)
    _, largest = size_bound(w, floor)
    for cap in (1, 5, 50):
        proof = reduced_cost_proof(
            w, floor, r.multipliers, r.pricing_bounds, 0, largest, 60.0, max_cells=cap
        )
        assert proof.finished and proof.cells <= cap
        assert proof.bound >= opt - 1e-9
        if proof.assignment is not None:
            assert is_feasible(w, proof.assignment, floor, "pairwise", "per-model")
            assert (proof.assignment >= 0).sum() <= proof.bound + 1e-9
        assert proof.proven == (
            proof.assignment is not None and (proof.assignment >= 0).sum() >= proof.bound
        )


@pytest.mark.unit
def test_enumeration_gives_up_at_its_cap():
    w = np.ones((12, 12))
    np.fill_diagonal(w, 0.0)
    delta = 1.0 - w
    np.fill_diagonal(delta, 0.0)
    # 4,083 cells of at least two inputs meet floor 1 here; a cap of 100 stops it
    out = enumerate_cells(delta, 1.0, np.ones(12), 0.0, 12, time.perf_counter() + 60, 100)
    assert out is None


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_proof_finds_the_optimum_from_one_below(case):
    """Told only that a partition of opt − 1 exists, the proof must find one of opt (every
    such partition packs enumerated cells) and must not claim more."""
    w, opt, _ = _optimum(case)
    floor = case[-1]
    r = _colgen(case)
    assert r.multipliers is not None
    _, largest = size_bound(w, floor)
    proof = reduced_cost_proof(
        w, floor, r.multipliers, r.pricing_bounds, opt - 1, largest, time_limit=60.0
    )
    assert proof.finished and proof.proven
    assert proof.pack_finished  # the packing search, not the MILP, closed it
    assert proof.bound >= opt - 1e-9
    assert proof.assignment is not None and (proof.assignment >= 0).sum() == opt
    assert is_feasible(w, proof.assignment, floor, "pairwise", "per-model")


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES[:6], ids=_ids)
def test_proof_of_the_optimum_holds(case):
    w, opt, _ = _optimum(case)
    floor = case[-1]
    r = _colgen(case)
    _, largest = size_bound(w, floor)
    proof = reduced_cost_proof(
        w, floor, r.multipliers, r.pricing_bounds, opt, largest, time_limit=60.0
    )
    assert proof.proven and proof.bound == opt and proof.assignment is None


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES, ids=_ids)
@pytest.mark.parametrize("probe_cells", [1, 30])
def test_a_probe_of_the_cheapest_cells_changes_no_verdict(case, probe_cells, monkeypatch):
    """The probe packs the cheapest cells alone before the proof, and what it finds lowers the
    targets the proof refutes. From an incumbent of 0, whatever the probe finds, the proof
    must end at the optimum, proven, with a feasible partition of it, and say what the
    probe did wherever it ran (more cells than the probe takes, a target above the
    incumbent + 1)."""
    import solver.pairwise_enumerate as enumerate_module

    monkeypatch.setattr(enumerate_module, "PROBE_MAX_CELLS", probe_cells)
    w, opt, _ = _optimum(case)
    floor = case[-1]
    r = _colgen(case)
    _, largest = size_bound(w, floor)
    proof = reduced_cost_proof(w, floor, r.multipliers, r.pricing_bounds, 0, largest, 60.0)
    assert proof.finished and proof.proven and proof.bound == opt
    assert proof.assignment is not None and (proof.assignment >= 0).sum() == opt
    assert is_feasible(w, proof.assignment, floor, "pairwise", "per-model")
    top = np.floor(np.maximum(r.multipliers, 0).sum() + np.maximum(r.pricing_bounds, 0).sum())
    ran = proof.cells > probe_cells and top > 1
    assert proof.probe.startswith(f"probe of the {probe_cells:,} cheapest cells") == ran
    if ran:
        assert "a partition of" in proof.probe  # any cell of two inputs beats 0


def _proof_with_no_search_time(case, monkeypatch, milp_cells=None):
    """The proof from one below the optimum, its packing search stopped at its first branch
    (and, with ``milp_cells``, the MILP handed at most that many cells)."""
    import solver.pairwise_enumerate as enumerate_module

    monkeypatch.setattr(enumerate_module, "PACK_SEARCH_SHARE", 0.0)
    monkeypatch.setattr(enumerate_module, "PACK_SEARCH_SHARE_ALONE", 0.0)
    if milp_cells is not None:
        monkeypatch.setattr(enumerate_module, "PACK_MILP_MAX_CELLS", milp_cells)
    w, opt, _ = _optimum(case)
    floor = case[-1]
    r = _colgen(case)
    _, largest = size_bound(w, floor)
    proof = reduced_cost_proof(
        w, floor, r.multipliers, r.pricing_bounds, opt - 1, largest, time_limit=60.0
    )
    return w, opt, floor, r, largest, proof


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES[:4], ids=_ids)
def test_proof_falls_back_to_the_packing_program_when_the_search_has_no_time(case, monkeypatch):
    """With no time for the packing search (it stops at its first branch), the set-packing
    MILP must still prove the optimum and find it from one below."""
    w, opt, floor, r, largest, proof = _proof_with_no_search_time(case, monkeypatch)
    assert not proof.pack_finished and proof.milp
    assert proof.proven and proof.bound >= opt - 1e-9
    assert proof.assignment is not None and (proof.assignment >= 0).sum() == opt
    held = reduced_cost_proof(w, floor, r.multipliers, r.pricing_bounds, opt, largest, 60.0)
    assert held.proven and held.bound == opt and held.assignment is None


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES[:4], ids=_ids)
def test_proof_without_search_time_or_milp_room_claims_nothing_it_did_not_refute(case, monkeypatch):
    """Where the search has no time and its target admits more cells than the MILP is
    handed, the target stays unproven: the bound must stay above the optimum, and the
    proof must not say proven unless its incumbent already meets the dual bound."""
    _, opt, _, r, _, proof = _proof_with_no_search_time(case, monkeypatch, milp_cells=0)
    assert not proof.pack_finished and not proof.milp and proof.assignment is None
    assert proof.bound >= opt - 1e-9 and not proof.proven
    assert proof.bound == np.floor(
        np.maximum(r.multipliers, 0).sum() + np.maximum(r.pricing_bounds, 0).sum() + 1e-9
    )


@pytest.mark.unit
def test_degenerate_multipliers_past_the_cap_keep_no_cell_and_prove_nothing():
    """π = 1, σ = 0 (an LP that covers every input) gives every cell reduced cost 0: where
    more than the cap tie there, the room falls below 0, no cell is kept, and the proof
    must claim nothing beyond the dual bound n."""
    n, M = 10, 2
    w = np.ones((M, n, n))
    for m in range(M):
        np.fill_diagonal(w[m], 0.0)
    proof = reduced_cost_proof(
        w, 1.0, np.ones(n), np.zeros(M), 0, np.full(M, n), 60.0, max_cells=50
    )
    assert proof.room < 0 and proof.cells == 0
    assert proof.bound == n and not proof.proven and proof.assignment is None


def _reference_walk(delta_m, floor, weights, threshold, max_size):
    """The reverse search written plainly in NumPy (the walk before it was compiled): every
    cell of 2..max_size inputs within the floor's budget and of weight >= threshold."""
    from solver.pairwise_bounds import deficit_budget

    n = len(weights)
    budget = deficit_budget(np.arange(max(max_size, 2) + 2), floor) + 1e-9
    ii, jj = np.triu_indices(n, 1)
    ok = delta_m[ii, jj] <= budget[2]
    stack = [np.array([i, j]) for i, j in zip(ii[ok], jj[ok])]
    found = []
    while stack:
        cell = stack.pop()
        k = len(cell)
        deficit = 0.5 * float(delta_m[np.ix_(cell, cell)].sum())
        if float(weights[cell].sum()) >= threshold - 1e-9:
            found.append(cell)
        if k >= max_size:
            continue
        to = delta_m[cell].sum(axis=0)
        to[cell] = np.inf
        for g in np.nonzero(deficit + to <= budget[k + 1] + 1e-7)[0]:
            kid = np.sort(np.append(cell, g))
            rows = delta_m[np.ix_(kid, kid)].sum(axis=1)
            last = k - int(np.argmax(rows[::-1]))
            if 0.5 * rows.sum() <= budget[k + 1] and kid[last] == g:
                stack.append(kid)
    return found


@pytest.mark.property
@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(12, 20),
    floor=st.sampled_from([0.95, 0.9]),
    max_size=st.integers(3, 8),
)
def test_compiled_walk_matches_the_plain_reverse_search(seed, n, floor, max_size):
    # beyond what every subset can check: real-valued weights and deficits, larger n
    rng = np.random.default_rng(seed)
    w = np.clip(rng.beta(6.0, 1.0, size=(n, n)), 0.0, 1.0)
    w = 0.5 * (w + w.T)
    delta = 1.0 - w
    np.fill_diagonal(delta, 0.0)
    weights = rng.uniform(-0.5, 1.0, size=n)
    threshold = float(rng.uniform(0.0, 2.0))
    truth = {tuple(c) for c in _reference_walk(delta, floor, weights, threshold, max_size)}
    cells = enumerate_cells(delta, floor, weights, threshold, max_size, time.perf_counter() + 60)
    assert cells is not None
    got = [tuple(int(v) for v in c) for c in cells]
    assert len(got) == len(set(got)) and set(got) == truth
