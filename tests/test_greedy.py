"""The greedy's own behaviour: the authors' crash case, and feasibility on random data."""

import numpy as np
import pytest
from conftest import random_pairwise
from hypothesis import given, settings
from hypothesis import strategies as st

from solver import PairwiseIIA, PerInputIIA, Solver, check_partition
from solver.greedy import greedy_partition, greedy_per_input, greedy_sequence, prefix_iia


@pytest.mark.unit
def test_failing_two_prefix_gives_an_empty_cell():
    # Inputs 0 and 1 have the highest degree but never agree: the 2-prefix has IIA 0.
    w = np.zeros((1, 5, 5))
    for i, j in [(0, 2), (0, 3), (0, 4), (1, 2), (1, 3), (1, 4), (2, 3)]:
        w[0, i, j] = w[0, j, i] = 1.0
    assignment = greedy_partition(w, 1.0)
    assert np.all(assignment == -1)


@pytest.mark.unit
def test_sequence_relaxes_margin_until_every_node_is_in():
    w = np.zeros((4, 4))
    w[0, 1] = w[1, 0] = 1.0  # 2 and 3 only join once the margin has grown
    seq = greedy_sequence(w, np.arange(4))
    assert sorted(seq.tolist()) == [0, 1, 2, 3] and seq[:2].tolist() == [0, 1]
    iia = prefix_iia(w, seq)
    assert np.isnan(iia[:2]).all() and iia[2] == 1.0 and iia[3] == pytest.approx(1 / 3)


@pytest.mark.property
@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10**6),
    n=st.integers(2, 25),
    n_models=st.integers(1, 4),
    floor=st.sampled_from([1.0, 0.9, 0.75, 0.5, 0.2]),
)
def test_greedy_partitions_are_feasible(seed, n, n_models, floor):
    rng = np.random.default_rng(seed)
    w = random_pairwise(rng, n_models, n, p_one=rng.uniform(0.2, 0.9))
    check_partition(w, greedy_partition(w, floor), floor, "pairwise", "per-model")
    a = rng.random((n, n_models))
    check_partition(a, greedy_per_input(a, floor), floor, "per-input", "per-model")


@pytest.mark.property
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10**6), n=st.integers(3, 30))
def test_greedy_frontier_never_drops_as_the_floor_falls(seed, n):
    rng = np.random.default_rng(seed)
    data = PairwiseIIA(random_pairwise(rng, 3, n, p_one=0.5), ("a", "b", "c"))
    front = Solver(method="greedy").frontier(data, [1.0, 0.9, 0.8, 0.6, 0.4])
    assert front.floors == sorted(front.floors, reverse=True)
    assert front.strengths == sorted(front.strengths)
    per_input = PerInputIIA(rng.random((n, 2)), ("a", "b"))
    front = Solver(semantics="per-input", method="greedy").frontier(per_input, [0.9, 0.5, 0.1])
    assert front.strengths == sorted(front.strengths)
