"""Several cells per model (``Solver(cells_per_model=K)``): the mapping to copies and back, the
independent check, optimality against enumeration, and the refusals."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from solver import PairwiseIIA, Solver, SolverConfigError
from solver.cells import check_cells, from_copies, to_copies
from solver.feasibility import MIN_PAIRWISE_CELL, meets_floor
from solver.verify import PartitionCheckError


def two_regions(sizes=(6, 5), noise=0, seed=0) -> PairwiseIIA:
    """Model A is faithful inside each of two regions and fails across them; model B is
    faithful nowhere. The inputs of the two regions are interleaved, so cell order is not
    input order."""
    n = sum(sizes)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    region = np.empty(n, dtype=int)
    region[order[: sizes[0]]] = 0
    region[order[sizes[0] :]] = 1
    a = (region[:, None] == region[None, :]).astype(float)
    b = np.full((n, n), 0.2)
    w = np.stack([a, b])
    if noise:
        flips = np.triu(rng.random((n, n)) < noise, 1)
        w[0][flips] = 1 - w[0][flips]
        w[0] = np.triu(w[0], 1) + np.triu(w[0], 1).T
    for m in range(2):
        np.fill_diagonal(w[m], 0.0)
    return PairwiseIIA(w, ("A", "B"))


def brute_force(w: np.ndarray, floor: float, k: int) -> int:
    """The most inputs any partition with at most k cells per model explains, where every
    cell meets the floor on its own: every labelling of inputs with (model, cell) or none."""
    m_count, n = w.shape[0], w.shape[1]
    best = 0
    for labels in itertools.product(range(-1, m_count * k), repeat=n):
        labels = np.array(labels)
        strength = int((labels >= 0).sum())
        if strength <= best:
            continue
        ok = True
        for copy in np.unique(labels[labels >= 0]):
            members = np.flatnonzero(labels == copy)
            if members.size < MIN_PAIRWISE_CELL:
                ok = False
                break
            block = w[copy // k][np.ix_(members, members)]
            pairs = members.size * (members.size - 1) // 2
            if not meets_floor((block.sum() - np.trace(block)) / 2, pairs, floor):
                ok = False
                break
        if ok:
            best = strength
    return best


@pytest.mark.unit
def test_copies_round_trip_and_canonical_numbering():
    copies = np.array([3, -1, 2, 3, 0, 3, 2, -1, 1])  # K = 2: model 1 cells {3: 3 inputs, 2: 2}
    assignment, cell = from_copies(copies, 2)
    assert assignment.tolist() == [1, -1, 1, 1, 0, 1, 1, -1, 0]
    # Model 1: copy 3 is larger, so it becomes cell 0; model 0: copy 0 holds input 4 and
    # copy 1 holds input 8 (equal sizes), so the one with the lower first input is cell 0.
    assert cell.tolist() == [0, -1, 1, 0, 0, 0, 1, -1, 1]
    again, cell_again = from_copies(to_copies(assignment, cell, 2), 2)
    assert again.tolist() == assignment.tolist() and cell_again.tolist() == cell.tolist()
    # No cells given: each model's inputs are its cell 0.
    assert to_copies(np.array([1, -1, 0]), None, 3).tolist() == [3, -1, 0]
    with pytest.raises(ValueError, match="0..1"):
        to_copies(np.array([0, 1]), np.array([0, 2]), 2)


@pytest.mark.unit
def test_check_cells_judges_each_cell_on_its_own():
    data = two_regions()
    w = data.weights
    region = (w[0].sum(axis=1) == 5).astype(int)  # the 6-region's members have 5 partners
    assignment = np.zeros(11, dtype=np.int64)
    iia = check_cells(w, assignment, 1 - region, 1.0, 2)
    assert sorted(iia.values()) == [1.0, 1.0]
    with pytest.raises(PartitionCheckError, match="below the floor"):
        check_cells(w, assignment, np.zeros(11, dtype=np.int64), 0.9, 2)  # the union fails
    with pytest.raises(PartitionCheckError, match="0..0"):
        check_cells(w, assignment, 1 - region, 1.0, 1)  # two cells, one allowed
    first = np.flatnonzero(region == 1)[:3]  # three inputs of one region: cells {2, 1}
    partial = np.full(11, -1, dtype=np.int64)
    partial[first] = 0
    split = np.full(11, -1, dtype=np.int64)
    split[first] = [0, 0, 1]
    with pytest.raises(PartitionCheckError, match="fewer than the minimum"):
        check_cells(w, partial, split, 0.1, 2)


@pytest.mark.integration
def test_two_regions_need_two_cells():
    data = two_regions()
    one = Solver(time_limit=20).solve(data, 0.9)
    two = Solver(time_limit=20, cells_per_model=2).solve(data, 0.9)
    assert one.strength == 6 and one.cell is None
    assert two.strength == 11 and two.certificate.status == "optimal"
    assert sorted(two.to_dict()["cells"]["A"], key=lambda c: c["size"]) == [
        {"size": 5, "iia": 1.0},
        {"size": 6, "iia": 1.0},
    ]
    # The cells are the planted regions: inputs of one region share a cell.
    w = data.weights[0]
    for i in range(11):
        for j in range(11):
            assert (two.cell[i] == two.cell[j]) == (w[i, j] == 1.0 or i == j)


@pytest.mark.integration
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_enumeration(seed):
    rng = np.random.default_rng(seed)
    n = 6
    w = rng.choice([0.0, 0.5, 1.0], p=[0.25, 0.15, 0.6], size=(2, n, n))
    w = np.triu(w, 1) + np.triu(w, 1).transpose(0, 2, 1)
    data = PairwiseIIA(w, ("p", "q"))
    for floor in (1.0, 0.8):
        got = Solver(time_limit=20, cells_per_model=2).solve(data, floor)
        assert got.strength == brute_force(w, floor, 2)
        assert got.certificate.status == "optimal"


@pytest.mark.integration
def test_frontier_json_and_warm_start():
    data = two_regions(sizes=(12, 10), noise=0.04, seed=3)
    solver = Solver(time_limit=20, cells_per_model=2)
    front = solver.frontier(data, [1.0, 0.95, 0.9])
    assert front.strengths == sorted(front.strengths)
    for point in front.results:
        d = json.loads(json.dumps(point.to_dict()))
        assert len(d["cell"]) == 22 and len(d["assignment"]) == 22
        for label, cell in zip(d["assignment"], d["cell"]):
            assert (label is None) == (cell is None)
        for name, cells in d["cells"].items():
            assert all(c["iia"] >= point.floor - 1e-9 for c in cells)
            assert d["cell_iia"][name] == min(c["iia"] for c in cells)
            assert sum(c["size"] for c in cells) == d["cell_sizes"][name]
    # A partition passed back as a warm start keeps its cells and is not dropped.
    again = solver.solve(data, 0.9, warm_start=front.results[-1])
    assert again.strength >= front.results[-1].strength
    assert "warm start dropped" not in again.certificate.note


@pytest.mark.unit
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(cells_per_model=0), "at least 1"),
        (dict(cells_per_model=1.5), "whole number"),
        (dict(cells_per_model=True), "whole number"),
        (dict(cells_per_model=2, semantics="per-input"), "needs pairwise semantics"),
        (dict(cells_per_model=2, scope="global"), "scope='per-model'"),
    ],
)
def test_refusals(kwargs, match):
    with pytest.raises(SolverConfigError, match=match):
        Solver(**kwargs)
