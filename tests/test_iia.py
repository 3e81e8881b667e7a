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
    partners = sampled.source[: n * 2].reshape(n, 2)
    manual = [np.mean([w[i, j] for j in partners[i]]) for i in range(n)]
    assert np.allclose(a.iia[:, 0], manual) and np.all(a.counts == 2)
