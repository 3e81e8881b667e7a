"""The authors' greedy reproduces PAPER.md's expected numbers to the input."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import BUNDLED_DATA, SHARED_DATA

from solver import Solver
from solver.greedy import greedy_partition

GOLDEN = json.loads((Path(__file__).parent / "golden" / "paper_greedy.json").read_text())


def _strengths(data, candidates, floors):
    w = data.candidates(candidates).weights
    return [int((greedy_partition(w, f) >= 0).sum()) for f in floors]


@pytest.mark.golden
def test_bundled_copy_is_the_shared_reference():
    if not SHARED_DATA.exists():
        pytest.skip(f"shared reference data not found at {SHARED_DATA}")
    shared, bundled = np.load(SHARED_DATA), np.load(BUNDLED_DATA)
    assert sorted(shared.files) == sorted(bundled.files)
    for key in shared.files:
        assert np.array_equal(shared[key], bundled[key]), key


@pytest.mark.golden
def test_greedy_table_all_six_and_singles(authors_graphs):
    floors = GOLDEN["floors"]
    for name, expected in GOLDEN["table"].items():
        candidates = None if name == "all" else [name]
        assert _strengths(authors_graphs, candidates, floors) == expected, name


@pytest.mark.golden
def test_greedy_listed_pairs(authors_graphs):
    for pair in GOLDEN["pairs"]:
        got = _strengths(authors_graphs, pair["candidates"], pair["floors"])
        assert got == pair["strengths"], pair["candidates"]


@pytest.mark.golden
@pytest.mark.parametrize("floor", ["0.9", "1.0"])
def test_greedy_cells(authors_graphs, floor):
    expected = GOLDEN["cells"][floor]
    result = Solver(method="greedy").solve(authors_graphs, float(floor))
    sizes = result.cell_sizes
    assert {k: v for k, v in sizes.items() if k in expected} == expected
    # Models the reference leaves out got nothing (at 0.9 X+Y+(Z) hits the failing 2-prefix).
    assert all(v == 0 for k, v in sizes.items() if k not in expected)
    assert result.certificate.status == "heuristic" and result.certificate.bound is None
