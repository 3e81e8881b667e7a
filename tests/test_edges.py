"""Edge semantics: the paper's mean over both directions, or an edge only where both directions
succeed ("Bucketing the Good Apples"), in the data, the exact program and the search."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from intervention.iia import PairDesign, per_input_from_successes
from service.cli import main
from service.spec import parse_spec
from solver import PairwiseIIA, PerInputIIA, Solver, SolverConfigError
from solver.data import IIADataError
from solver.edges import apply_edge, both_edges
from solver.verify import is_feasible


def _halves(rng, m: int, n: int) -> np.ndarray:
    """Symmetric weights ½(s(i←j) + s(j←i)) from random per-direction successes."""
    s = rng.random((m, n, n)) < 0.7
    w = (s + s.transpose(0, 2, 1)) / 2
    for k in range(m):
        np.fill_diagonal(w[k], 0)
    return w


def _best(w: np.ndarray, floor: float) -> int:
    """The most inputs any assignment explains at ``floor`` (per-model scope), by enumerating
    every assignment of every input to a model or the fallback."""
    m, n, _ = w.shape
    best = 0
    for labels in itertools.product(range(-1, m), repeat=n):
        a = np.asarray(labels)
        if (a >= 0).sum() > best and is_feasible(w, a, floor, "pairwise", "per-model"):
            best = int((a >= 0).sum())
    return best


@pytest.mark.unit
def test_both_keeps_an_edge_only_where_both_directions_succeeded():
    w = np.array([[[0, 1, 0.5], [1, 0, 0], [0.5, 0, 0]]], dtype=float)
    both = both_edges(PairwiseIIA(w, ("m",)))
    assert both.weights.tolist() == [[[0, 1, 0], [1, 0, 0], [0, 0, 0]]]
    assert apply_edge(PairwiseIIA(w, ("m",)), "mean").weights.tolist() == w.tolist()
    with pytest.raises(IIADataError, match="average over more samples"):
        both_edges(PairwiseIIA(np.full((1, 3, 3), 0.3), ("m",)))
    with pytest.raises(IIADataError, match="per-input matrix has averaged"):
        both_edges(PerInputIIA(np.full((3, 1), 0.5), ("m",)))
    with pytest.raises(SolverConfigError, match="unknown edge"):
        Solver(edge="max")


@pytest.mark.integration
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_solver_reads_both_edges_in_the_exact_program_and_the_search(seed):
    rng = np.random.default_rng(seed)
    w = _halves(rng, 2, 7)
    data = PairwiseIIA(w, ("a", "b"))
    strict = both_edges(data).weights
    for floor in (1.0, 0.8):
        for method in ("ilp", "auto"):
            p = Solver(method=method, edge="both", time_limit=20, seed=seed).solve(data, floor)
            # Feasible under the both-edge weights, and (both methods prove small instances)
            # as strong as the best assignment under them.
            assert is_feasible(strict, p.assignment, floor, "pairwise", "per-model")
            assert p.strength == _best(strict, floor), (floor, method)
    # At λ = 1 a cell needs every pair at 1 under either edge: the two problems are the same.
    mean = Solver(method="ilp", time_limit=20).solve(data, 1.0)
    both = Solver(method="ilp", edge="both", time_limit=20).solve(data, 1.0)
    assert mean.strength == both.strength


@pytest.mark.unit
def test_per_input_from_sampled_successes_with_both_edges():
    n, k = 6, 2
    design = PairDesign.sampled(n, k, seed=0)
    rng = np.random.default_rng(3)
    s = rng.random(len(design)) < 0.6
    got = per_input_from_successes(design, [s], ["m"], None, edge="both")
    mean = per_input_from_successes(design, [s], ["m"], None)
    half = n * k
    i, j = design.base[:half], design.source[:half]
    for x in range(n):
        pairs = {}
        for p in range(half):
            if x in (i[p], j[p]):
                pairs.setdefault(frozenset((i[p], j[p])), (s[p], s[p + half]))
        want_both = np.mean([a and b for a, b in pairs.values()])
        want_mean = np.mean([(int(a) + int(b)) / 2 for a, b in pairs.values()])
        assert got.iia[x, 0] == pytest.approx(want_both)
        assert mean.iia[x, 0] == pytest.approx(want_mean)
    assert (got.iia <= mean.iia + 1e-12).all()


@pytest.mark.unit
def test_cli_and_spec_take_the_edge(tmp_path, capsys):
    rng = np.random.default_rng(0)
    path = tmp_path / "w.npz"
    PairwiseIIA(_halves(rng, 2, 6), ("a", "b")).save(path)
    out = tmp_path / "out.json"
    code = main(["solve", str(path), "--edge", "both", "--floors", "1.0,0.8", "--json", str(out)])
    assert code == 0 and "both edges" in capsys.readouterr().out
    assert json.loads(out.read_text())["edge"] == "both"
    per_input = tmp_path / "a.npz"
    PerInputIIA(rng.random((6, 2)), ("a", "b")).save(per_input)
    assert main(["solve", str(per_input), "--semantics", "per-input", "--edge", "both"]) == 2
    assert "per-input matrix has averaged" in capsys.readouterr().err
    base = {
        "name": "t",
        "task": {"builtin": "arithmetic"},
        "network": {"train": {"n_layer": 1}},
        "sites": [{"layer": 0}],
    }
    assert "edge" not in parse_spec(base).solve.model_dump()  # the digests stay as they were
    spec = parse_spec({**base, "solve": {"edge": "both"}})
    assert spec.solve.edge == "both" and spec.solve.model_dump()["edge"] == "both"
