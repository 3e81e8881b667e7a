"""Sparse pairwise data (a sampled design's scored pairs): validation, cell IIA against the
dense oracle, unmeasured cells, the local search's results and the bound's validity."""

import itertools

import numpy as np
import pytest
from conftest import random_pairwise

from solver import IIADataError, PairwiseIIA, PartitionCheckError, check_partition, load_iia
from solver.memory import (
    MemoryEstimateError,
    check_dense_memory,
    check_sparse_memory,
    dense_pairwise_bytes,
)
from solver.sparse_data import (
    SparsePairwiseIIA,
    sparse_arrays,
)
from solver.sparse_pair_lp import (
    build_pair_lp,
    certified_value,
    pair_lp_bound,
    pair_lp_bytes,
    round_pair_lp,
)
from solver.sparse_search import (
    greedy_pairwise_sparse,
    search_pairwise_sparse,
    solve_pairwise_sparse,
    sparse_upper_bound,
)
from solver.sparse_verify import (
    UnmeasuredCellError,
    cell_iia_sparse,
    cell_pair_sums_sparse,
    check_partition_sparse,
    is_feasible_sparse,
    sparse_partition_problems,
)
from solver.verify import cell_iia_pairwise


def _random_sparse(rng, n, n_models, p_edge, values=(0.0, 0.5, 1.0), p=(0.2, 0.2, 0.6)):
    i, j = np.triu_indices(n, 1)
    keep = rng.random(i.size) < p_edge
    pairs = np.stack((i[keep], j[keep]), axis=1)
    w = rng.choice(values, size=(n_models, len(pairs)), p=p)
    return SparsePairwiseIIA(pairs, w, tuple("abcdefgh"[:n_models]), n)


def _tiny_case(rng):
    """(data, floor): 4 to 7 inputs, one or two models, small enough to brute-force."""
    n = int(rng.integers(4, 8))
    n_models = 1 if n == 7 else 2
    data = _random_sparse(rng, n, n_models, float(rng.uniform(0.3, 0.8)))
    return data, float(rng.choice([1.0, 0.9, 0.75, 0.6]))


def _good_pairs_joined_by_a_bad_one():
    """Pairs (0, 1) and (2, 3) at 1.0, (0, 2) at 0.5, one model."""
    pairs = np.array([(0, 1), (0, 2), (2, 3)])
    return SparsePairwiseIIA(pairs, np.array([[1.0, 0.5, 1.0]]), ("a",), 4)


def _planted_sparse(seed, n=300, n_models=4):
    """Each input has a true model; 5 random partners each; pairs of the same true model score
    high under it, the rest Beta(2, 3) noise."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, n_models, size=n)
    src = np.repeat(np.arange(n), 5)
    dst = (src + rng.integers(1, n, size=src.size)) % n
    pairs = np.unique(np.sort(np.stack((src, dst), axis=1), axis=1), axis=0)
    w = rng.beta(2.0, 3.0, size=(n_models, len(pairs)))
    same = np.flatnonzero(true[pairs[:, 0]] == true[pairs[:, 1]])
    w[true[pairs[same, 0]], same] = 1.0 - rng.exponential(0.03, size=same.size).clip(0, 1)
    return SparsePairwiseIIA(pairs, w, tuple("abcdefgh"[:n_models]), n)


def _brute_force(data, floor, scope="per-model"):
    """The best strength over every assignment (tiny instances only)."""
    n, n_models = data.n_inputs, data.weights.shape[0]
    best = 0
    for a in itertools.product(range(-1, n_models), repeat=n):
        a = np.array(a)
        strength = int((a >= 0).sum())
        if strength > best and is_feasible_sparse(data, a, floor, scope):
            best = strength
    return best


# ---------------------------------------------------------------------------------------
# the data type


@pytest.mark.unit
@pytest.mark.parametrize(
    "pairs, weights, n, message",
    [
        ([[0, 5]], [[0.5]], 4, r"outside 0\.\.3"),
        ([[-1, 2]], [[0.5]], 4, "outside"),
        ([[1, 1]], [[0.5]], 4, "self-pairs"),
        ([[0, 1], [1, 0]], [[0.5, 0.5]], 4, "duplicate pairs"),
        ([[0, 1], [2, 3]], [[0.5, 1.5]], 4, r"\[0, 1\]"),
        ([[0, 1], [2, 3]], [[0.5, np.nan]], 4, "NaN"),
        ([[0, 1], [2, 3]], [[0.5, 0.5, 0.5]], 4, r"shape \[models, P\]"),
        ([[0, 1, 2]], [[0.5]], 4, r"shape \[P, 2\]"),
        ([[0.0, 1.0]], [[0.5]], 4, "integer"),
        ([[0, 1]], [[0.5]], 1, "at least 2 inputs"),
    ],
)
def test_validation_names_the_problem(pairs, weights, n, message):
    with pytest.raises(IIADataError, match=message):
        SparsePairwiseIIA(np.array(pairs), np.array(weights), ("a",), n)


@pytest.mark.unit
def test_pairs_are_unordered_float32_stays_and_names_and_fallback_mirror_pairwise():
    data = SparsePairwiseIIA(
        np.array([[3, 1], [0, 2]]),
        np.array([[0.5, 1.0], [0.25, 0.0]], dtype=np.float32),
        ("a", "b"),
        4,
        fallback="b",
    )
    assert data.pairs.tolist() == [[1, 3], [0, 2]]
    assert data.weights.dtype == np.float32 and not data.weights.flags.writeable
    cands = data.candidates()
    assert cands.models == ("a",) and cands.fallback is None
    assert np.array_equal(cands.weights, data.weights[:1])
    assert data.with_fallback(None).fallback is None
    with pytest.raises(IIADataError, match="unknown fallback"):
        data.with_fallback("z")
    with pytest.raises(IIADataError, match="duplicate model names"):
        SparsePairwiseIIA(data.pairs, data.weights, ("a", "a"), 4)


@pytest.mark.unit
def test_save_load_round_trip_through_load_iia(tmp_path):
    rng = np.random.default_rng(3)
    data = _random_sparse(rng, 9, 2, 0.4).with_fallback("b")
    data.save(tmp_path / "sparse.npz")
    back = load_iia(tmp_path / "sparse.npz")
    assert isinstance(back, SparsePairwiseIIA)
    assert back.n_inputs == 9 and back.models == ("a", "b") and back.fallback == "b"
    assert np.array_equal(back.pairs, data.pairs) and np.array_equal(back.weights, data.weights)
    np.savez(tmp_path / "half.npz", pairs=data.pairs, models=np.array(["a", "b"]))
    with pytest.raises(IIADataError, match="missing"):
        load_iia(tmp_path / "half.npz")
    np.savez(
        tmp_path / "bad.npz",
        pairs=np.array([[0, 0]]),
        pair_weights=np.array([[0.5]]),
        models=np.array(["a"]),
        n_inputs=np.array(3),
    )
    with pytest.raises(IIADataError, match=r"bad\.npz.*self-pairs"):
        load_iia(tmp_path / "bad.npz")


@pytest.mark.unit
def test_to_per_input_is_the_mean_over_scored_pairs():
    data = SparsePairwiseIIA(np.array([[0, 1], [0, 2]]), np.array([[1.0, 0.5]]), ("a",), 4)
    per = data.to_per_input()
    assert np.allclose(per.iia[:, 0], [0.75, 1.0, 0.5, 0.0])
    assert per.counts[:, 0].tolist() == [2, 1, 1, 0]  # input 3: unmeasured, count 0


# ---------------------------------------------------------------------------------------
# cell IIA and verification


@pytest.mark.property
@pytest.mark.parametrize("seed", range(5))
def test_all_pairs_give_the_dense_cell_iia(seed):
    # Oracle: with every pair scored, the sparse cell sums are the dense verifier's.
    rng = np.random.default_rng(seed)
    dense = PairwiseIIA(random_pairwise(rng, 3, 12), ("a", "b", "c"))
    sparse = SparsePairwiseIIA.from_dense(dense)
    for _ in range(10):
        a = rng.integers(-1, 3, size=12)
        want = cell_iia_pairwise(dense.weights, a)
        got = cell_pair_sums_sparse(sparse.pairs, sparse.weights, a)
        assert got.keys() == want.keys()
        for m, (total, count) in want.items():
            assert got[m][1] == count and got[m][0] == pytest.approx(total, abs=1e-12)
            iia, pairs = cell_iia_sparse(sparse.pairs, sparse.weights, a)[m]
            assert pairs == count
            assert (iia is None) == (count == 0)


@pytest.mark.property
@pytest.mark.parametrize("seed", range(3))
def test_with_every_pair_scored_the_search_passes_the_dense_verifier(seed):
    # Oracle: every pair scored, so "each member measured" is "at least two inputs" and the
    # sparse rules are the dense ones; the dense verifier must accept the sparse search's cells.
    rng = np.random.default_rng(seed)
    dense = PairwiseIIA(random_pairwise(rng, 2, 14, p_one=0.7), ("a", "b"))
    sparse = SparsePairwiseIIA.from_dense(dense)
    for floor in (0.9, 0.75):
        a, cert = solve_pairwise_sparse(sparse, floor, seed=seed, budget=20_000)
        assert cert.objective > 0
        check_partition(dense.weights, a, floor, "pairwise", "per-model")


@pytest.mark.unit
def test_unmeasured_cell_and_member_are_reported_not_guessed():
    # Pairs (0, 1) and (2, 3) only. Cell {0, 2}: no scored pair inside.
    data = SparsePairwiseIIA(np.array([[0, 1], [2, 3]]), np.array([[1.0, 1.0]]), ("a",), 5)
    a = np.array([0, -1, 0, -1, -1])
    assert cell_iia_sparse(data.pairs, data.weights, a) == {0: (None, 0)}
    with pytest.raises(UnmeasuredCellError, match="no scored pair inside.*unmeasured"):
        check_partition_sparse(data, a, 0.5)
    # Cell {0, 1, 4}: mean 1.0 over its one pair, but input 4 has no partner inside.
    a = np.array([0, 0, -1, -1, 0])
    with pytest.raises(UnmeasuredCellError, match="first: input 4.*unmeasured"):
        check_partition_sparse(data, a, 0.5)
    # A cell of two inputs with their one scored pair is fine: its IIA is that pair's weight.
    assert check_partition_sparse(data, np.array([0, 0, -1, -1, -1]), 1.0) == {0: 1.0}


@pytest.mark.unit
def test_floor_violations_per_model_and_global():
    data = SparsePairwiseIIA(
        np.array([[0, 1], [2, 3]]), np.array([[1.0, 0.5], [0.5, 0.5]]), ("a", "b"), 4
    )
    a = np.array([0, 0, 1, 1])
    with pytest.raises(PartitionCheckError, match="cell 1 has IIA 0.500000") as err:
        check_partition_sparse(data, a, 0.75)
    assert not isinstance(err.value, UnmeasuredCellError)
    assert check_partition_sparse(data, a, 0.75, "global") == {0: 1.0, 1: 0.5}  # pooled 0.75
    assert sparse_partition_problems(data, a, 0.8, "global")[0].startswith("pooled IIA")
    assert "outside" in sparse_partition_problems(data, np.array([0, 0, 2, 2]), 0.5)[0]


# ---------------------------------------------------------------------------------------
# search and bound


@pytest.mark.property
@pytest.mark.parametrize("seed", range(12))
def test_bound_covers_brute_force_and_search_verifies(seed):
    data, floor = _tiny_case(np.random.default_rng(100 + seed))
    scope = "global" if seed % 4 == 3 else "per-model"
    best = _brute_force(data, floor, scope)
    bound, _ = sparse_upper_bound(data, floor, scope)
    assert bound + 1e-6 >= best
    a, cert = solve_pairwise_sparse(data, floor, scope=scope, seed=seed, budget=5000)
    assert is_feasible_sparse(data, a, floor, scope)
    assert int((a >= 0).sum()) <= best
    assert cert.bound >= best and cert.objective == int((a >= 0).sum())


@pytest.mark.property
def test_bound_below_the_trivial_one_when_surplus_is_scarce():
    # One model, a clique {0, 1, 2} of weight 1 (surplus 0.05 per pair at floor 0.95) and a
    # ring of pairs at 0.5: no ring input can be paid for, so the bound must leave them out.
    pairs = [(0, 1), (0, 2), (1, 2)] + [(i, i + 1) for i in range(3, 9)]
    w = [1.0, 1.0, 1.0] + [0.5] * 6
    data = SparsePairwiseIIA(np.array(pairs), np.array([w]), ("a",), 10)
    bound, how = sparse_upper_bound(data, 0.95)
    assert 3 <= bound < 4 and "Lagrangian" in how
    a, cert = solve_pairwise_sparse(data, 0.95, budget=2000)
    assert sorted(np.flatnonzero(a >= 0)) == [0, 1, 2] and cert.status == "optimal"


@pytest.mark.property
@pytest.mark.parametrize("low", [0.85, 0.8, 0.7, 0.6])
def test_bound_is_tight_on_a_star(low):
    # Center 0, leaves 1..6: three pairs at 1.0 (surplus 0.1 each at floor 0.9) and three at
    # 0.8, 0.8 and `low`. A leaf's only pair is with the center, which no other leaf shares,
    # so each low leaf costs its full deficit: the bound must be the optimum, not n.
    w = [1.0, 1.0, 1.0, 0.8, 0.8, low]
    data = SparsePairwiseIIA(np.array([(0, v) for v in range(1, 7)]), np.array([w]), ("a",), 7)
    best = _brute_force(data, 0.9)
    bound, _ = sparse_upper_bound(data, 0.9)
    assert best <= bound < best + 1
    a, cert = solve_pairwise_sparse(data, 0.9, budget=2000)
    assert int((a >= 0).sum()) == best and cert.status == "optimal"


@pytest.mark.property
def test_bound_halves_a_pair_two_negative_inputs_share():
    # A triangle at 0.95 (surplus 0.05 per pair at floor 0.9) and, apart, inputs 3 and 4
    # whose only pair is at 0.76: one cell of all five has mean (3·0.95 + 0.76) / 4 >= 0.9.
    # The pair's deficit is shared by its two ends: a bound charging it twice is below 5.
    pairs = np.array([(0, 1), (0, 2), (1, 2), (3, 4)])
    data = SparsePairwiseIIA(pairs, np.array([[0.95, 0.95, 0.95, 0.76]]), ("a",), 5)
    assert _brute_force(data, 0.9) == 5
    assert 5 <= sparse_upper_bound(data, 0.9)[0] < 6


@pytest.mark.property
@pytest.mark.parametrize("seed", range(12))
def test_pair_lp_bound_covers_brute_force_and_any_multipliers_certify(seed):
    # The pair LP's bound is certified from row multipliers, so it must hold for *any*
    # multipliers, not only the solver's: random ones (both signs, several scales) too.
    rng = np.random.default_rng(300 + seed)
    data, floor = _tiny_case(rng)
    best = _brute_force(data, floor)
    pairs, weights, n_inputs = sparse_arrays(data)
    got = pair_lp_bound(pairs, weights, n_inputs, floor, time_limit=30.0)
    assert got is not None and got.finished and got.bound + 1e-6 >= best
    rounded = round_pair_lp(pairs, weights, got.x, floor)
    assert is_feasible_sparse(data, rounded, floor, "per-model")
    lp = build_pair_lp(pairs, weights, n_inputs, floor)
    for scale in (0.1, 1.0, 10.0):
        r = rng.normal(0.0, scale, size=lp.shape[0])
        assert certified_value(lp, r) + 1e-6 >= best
    assert certified_value(lp, np.zeros(lp.shape[0])) == pytest.approx(weights.shape[0] * n_inputs)


@pytest.mark.property
def test_pair_lp_charges_a_bad_pair_between_two_good_inputs():
    # Pairs (0, 1) and (2, 3) at 1.0, (0, 2) at 0.5, one model, floor 0.95. Every input has
    # a pair above the floor, so the per-input bound counts all 4; but a cell holding 0 and
    # 2 holds their bad pair, and a cell of 0, 1 (or 2, 3) is all one model can have.
    data = _good_pairs_joined_by_a_bad_one()
    assert _brute_force(data, 0.95) == 2
    assert sparse_upper_bound(data, 0.95)[0] == 4
    got = pair_lp_bound(*sparse_arrays(data), 0.95, time_limit=30.0)
    assert 2 <= got.bound < 3 and "pair LP" in got.how
    a, cert = solve_pairwise_sparse(data, 0.95, budget=2000)
    assert int((a >= 0).sum()) == 2 and cert.status == "optimal" and "pair LP" in cert.note


@pytest.mark.integration
def test_a_second_search_from_the_lp_rounding_keeps_the_stronger_partition():
    data = _planted_sparse(11)
    n = data.n_inputs
    first = search_pairwise_sparse(data, 0.99, seed=0, max_moves=20_000, time_limit=None)
    a, cert = solve_pairwise_sparse(data, 0.99, seed=0, budget=20_000, time_limit=120.0)
    check_partition_sparse(data, a, 0.99)
    assert "pair LP, certified" in cert.note and "search from the pair LP's rounding" in cert.note
    assert (first.assignment >= 0).sum() <= cert.objective <= cert.bound < n


@pytest.mark.integration
def test_pair_lp_is_skipped_with_a_note_when_memory_is_short(monkeypatch):
    import solver.data

    data = _good_pairs_joined_by_a_bad_one()
    need = pair_lp_bytes(4, 3, 1)
    monkeypatch.setattr(solver.data, "available_memory", lambda: need - 1)
    _, cert = solve_pairwise_sparse(data, 0.95, budget=2000)
    assert cert.bound == 4 and "pair LP skipped" in cert.note and "GiB" in cert.note


@pytest.mark.integration
def test_pair_lp_is_skipped_with_a_note_when_it_would_outrun_the_time_limit(monkeypatch):
    import solver.sparse_pair_lp

    data = _good_pairs_joined_by_a_bad_one()
    monkeypatch.setattr(solver.sparse_pair_lp, "SECONDS_AT_A_MILLION", 1e12)
    _, cert = solve_pairwise_sparse(data, 0.95, budget=2000, time_limit=30.0)
    assert cert.bound == 4 and "pair LP skipped" in cert.note and "longer time limit" in cert.note
    assert not cert.capped


@pytest.mark.integration
def test_search_is_deterministic_and_beats_or_matches_the_greedy():
    data = _planted_sparse(7)
    n = data.n_inputs
    greedy = greedy_pairwise_sparse(data, 0.9)
    check_partition_sparse(data, greedy, 0.9)
    runs = [
        search_pairwise_sparse(data, 0.9, seed=1, max_moves=200_000, time_limit=None)
        for _ in range(2)
    ]
    assert np.array_equal(runs[0].assignment, runs[1].assignment)
    assert not runs[0].capped and runs[0].moves == 200_000
    check_partition_sparse(data, runs[0].assignment, 0.9)
    assert (runs[0].assignment >= 0).sum() >= (greedy >= 0).sum()
    with pytest.raises(ValueError, match="not a feasible assignment"):
        search_pairwise_sparse(data, 0.9, start=np.zeros(n, dtype=np.int64), max_moves=10)
    # An infeasible warm start is dropped with a note, never used.
    _, cert = solve_pairwise_sparse(data, 0.9, budget=1000, start=np.zeros(n, dtype=np.int64))
    assert "warm start dropped" in cert.note


# ---------------------------------------------------------------------------------------
# memory estimates


@pytest.mark.unit
def test_memory_estimates_refuse_with_the_estimate_and_the_fix():
    assert dense_pairwise_bytes(1000, 8) == dense_pairwise_bytes(500, 8) * 4
    with pytest.raises(MemoryEstimateError, match=r"dense pairwise path.*GiB.*sparse tensor"):
        check_dense_memory(100_000, 8, available=8 * 2**30)
    assert check_dense_memory(100, 8, available=8 * 2**30) == dense_pairwise_bytes(100, 8)
    assert issubclass(MemoryEstimateError, ValueError)
    with pytest.raises(MemoryEstimateError, match="scored pairs"):
        check_sparse_memory(10**7, 10**9, 8, available=2**30)
    check_sparse_memory(5000, 30_000, 8, available=2**30)


@pytest.mark.unit
def test_both_edges_keeps_only_pairs_where_both_directions_succeeded():
    data = SparsePairwiseIIA(np.array([[0, 1], [1, 2]]), np.array([[1.0, 0.5]]), ("a",), 3)
    assert data.both_edges().weights.tolist() == [[1.0, 0.0]]
    with pytest.raises(IIADataError, match="edge 'mean'"):
        SparsePairwiseIIA(data.pairs, np.array([[0.7, 0.5]]), ("a",), 3).both_edges()


# ---------------------------------------------------------------------------------------
# through the library's Solver and the command line


def _two_sampled_regions(seed=0, n=60, partners=8):
    """Model A faithful on two interleaved regions apart (pairs across fail), model B
    nowhere; each input scored against ``partners`` random others."""
    rng = np.random.default_rng(seed)
    region = np.arange(n) % 2
    pairs = set()
    for i in range(n):
        for j in rng.choice(n, size=partners, replace=False):
            if i != j:
                pairs.add((min(i, j), max(i, int(j))))
    pairs = np.array(sorted(pairs))
    same = region[pairs[:, 0]] == region[pairs[:, 1]]
    weights = np.stack([same.astype(float), np.full(len(pairs), 0.25)])
    return SparsePairwiseIIA(pairs, weights, ("A", "B"), n), region


@pytest.mark.integration
def test_solver_takes_a_sparse_tensor_and_verifies_over_its_scored_pairs():
    from solver import Solver, SolverConfigError

    data, region = _two_sampled_regions()
    one = Solver(time_limit=20).solve(data, 0.9)
    # One cell of A holds one region and a few of the other's inputs its floor can pay
    # for; half of all scored pairs cross the regions, so never both.
    assert 30 <= one.strength < 45 and one.certificate.bound is not None
    check_partition(data, one.assignment, 0.9, "pairwise", "per-model")
    two = Solver(time_limit=20, cells_per_model=2).solve(data, 0.9)
    assert two.strength == 60 and two.certificate.status == "optimal"
    agree = (two.cell == region).mean()
    assert max(agree, 1 - agree) > 0.9  # the cells are the regions, up to a few inputs
    front = Solver(time_limit=20).frontier(data, [1.0, 0.9])
    assert front.strengths == sorted(front.strengths)
    greedy = Solver(method="greedy").solve(data, 0.9)
    assert greedy.certificate.solver == "sparse-greedy"
    # Per-input: each input's mean over all its scored pairs, half of them across the
    # regions, so A scores each input about 0.5 and B 0.25.
    per_input = Solver(semantics="per-input", time_limit=20)
    assert per_input.solve(data, 0.9).strength == 0
    assert per_input.solve(data, 0.35).strength == 60
    with pytest.raises(SolverConfigError, match="no exact program over a sparse pair tensor"):
        Solver(method="ilp").solve(data, 0.9)
    # A start whose cell has an input with no scored pair inside it is dropped, not used.
    lonely = np.full(60, -1)
    lonely[[0, 1]] = 0
    if not is_feasible_sparse(data, lonely, 0.9):
        again = Solver(time_limit=20).solve(data, 0.9, warm_start=lonely)
        assert "warm start dropped" in again.certificate.note


@pytest.mark.integration
def test_cli_solves_a_sparse_file(tmp_path, capsys):
    import json

    from service.cli import main

    data, _ = _two_sampled_regions(seed=1)
    path = tmp_path / "sparse.npz"
    data.save(path)
    out = tmp_path / "out.json"
    assert main(["solve", str(path), "--floors", "0.9", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["results"][0]["strength"] >= 30 and doc["models"] == ["A", "B"]
    assert main(["solve", str(path), "--method", "ilp"]) == 2
    assert "no exact program" in capsys.readouterr().err


@pytest.mark.integration
def test_dense_solve_refused_before_building_when_memory_is_short(monkeypatch):
    # The machine's free memory cannot be made small for real: the reading is replaced.
    import solver.data
    from solver import Solver

    monkeypatch.setattr(solver.data, "available_memory", lambda: 10_000)
    dense = PairwiseIIA(random_pairwise(np.random.default_rng(0), 2, 12, p_one=0.7), ("a", "b"))
    with pytest.raises(MemoryEstimateError, match="sparse tensor"):
        Solver().solve(dense, 0.9)
