"""Pair designs, shards and the fold from successes into the solver's data types."""

import numpy as np
import pytest

from intervention.iia import PairDesign, pairwise_from_successes, per_input_from_successes


@pytest.mark.unit
def test_all_pairs_design_and_shards():
    d = PairDesign.all_pairs(5)
    assert len(d) == 20 and not np.any(d.base == d.source)
    assert len(set(zip(d.base.tolist(), d.source.tolist()))) == 20
    shards = d.shards(7)
    assert [len(s) for s in shards] == [7, 7, 6]
    assert np.array_equal(np.concatenate(shards), np.arange(20))


@pytest.mark.unit
def test_sampled_partners_are_distinct_others_and_seeded():
    d = PairDesign.sampled(30, 6, seed=4)
    assert len(d) == 2 * 30 * 6
    i, j = d.base[:180].reshape(30, 6), d.source[:180].reshape(30, 6)
    assert np.all(i == np.arange(30)[:, None]) and not np.any(i == j)
    assert all(len(set(row)) == 6 for row in j.tolist())
    # The second half is the same pairs, reversed.
    assert np.array_equal(d.base[180:], d.source[:180])
    assert np.array_equal(PairDesign.sampled(30, 6, seed=4).source, d.source)
    with pytest.raises(ValueError, match="1..29"):
        PairDesign.sampled(30, 30, seed=0)


@pytest.mark.unit
def test_fold_successes_into_pairwise_and_per_input():
    n = 6
    rng = np.random.default_rng(2)
    success = rng.random((n, n)) < 0.6  # success[b, s]
    d = PairDesign.all_pairs(n)
    s = success[d.base, d.source]
    tensor = pairwise_from_successes(d, [s, ~s], ["m", "fb"], "fb")
    w = tensor.weights[0]
    for b in range(n):
        for c in range(n):
            expected = 0.0 if b == c else (int(success[b, c]) + int(success[c, b])) / 2
            assert w[b, c] == expected
    assert tensor.fallback == "fb" and tensor.candidates().models == ("m",)
    per_input = per_input_from_successes(d, [s, ~s], ["m", "fb"], "fb")
    assert np.allclose(per_input.iia[:, 0], w.sum(axis=1) / (n - 1))
    sampled = PairDesign.sampled(n, 2, seed=1)
    s2 = success[sampled.base, sampled.source]
    a = per_input_from_successes(sampled, [s2], ["m"], None)
    # Every input is measured on the distinct partners it meets at either end of a pair.
    drawn = zip(sampled.base[: n * 2].tolist(), sampled.source[: n * 2].tolist())
    met = {i: set() for i in range(n)}
    for i, j in drawn:
        met[i].add(j)
        met[j].add(i)
    manual = [np.mean([w[i, j] for j in sorted(met[i])]) for i in range(n)]
    assert np.allclose(a.iia[:, 0], manual)
    assert a.counts[:, 0].tolist() == [len(met[i]) for i in range(n)]
    assert np.all(a.counts >= 2) and a.counts.sum() > 2 * n  # some inputs were also drawn


@pytest.mark.unit
def test_per_input_counts_both_ends_of_each_sampled_pair():
    # Four inputs, one partner each: 0 draws 1, 1 draws 0, 2 draws 3, 3 draws 0. Unordered
    # pairs: {0, 1} (drawn from both ends, counted once), {2, 3}, {0, 3}.
    base = np.array([0, 1, 2, 3])
    source = np.array([1, 0, 3, 0])
    design = PairDesign(4, np.concatenate([base, source]), np.concatenate([source, base]), 1, 0)
    # s(b, s) for the first half (base, source), then the same pairs reversed.
    forward = np.array([True, False, True, False])  # s(0,1), s(1,0), s(2,3), s(3,0)
    backward = np.array([False, True, True, False])  # s(1,0), s(0,1), s(3,2), s(0,3)
    data = per_input_from_successes(design, [np.concatenate([forward, backward])], ["m"], None)
    # w{0,1} = 0.5, w{2,3} = 1, w{0,3} = 0. Input 3 drew 0 (w 0) and was drawn by 2 (w 1).
    assert data.iia[:, 0].tolist() == [0.25, 0.5, 1.0, 0.5]
    assert data.counts[:, 0].tolist() == [2, 1, 1, 2]


@pytest.mark.unit
def test_designs_beyond_their_limits_are_refused_before_they_are_built():
    from intervention.iia import MAX_ALL_PAIRS_INPUTS, MAX_PAIRS, DesignError

    with pytest.raises(DesignError, match=f"limit of {MAX_ALL_PAIRS_INPUTS:,}.*design = 'sampled'"):
        PairDesign.all_pairs(1_000_000)  # a trillion pairs
    with pytest.raises(DesignError, match=f"more than the limit of {MAX_PAIRS:,}.*at most 25 "):
        PairDesign.sampled(1_000_000, 1000, seed=0)
