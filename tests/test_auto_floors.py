"""floors="auto": the breakpoints of the per-input frontier, the pairwise grid, and refusals."""

import json

import numpy as np
import pytest
from conftest import random_pairwise

from service.cli import main
from service.spec import SpecError, parse_spec
from solver import PairwiseIIA, PerInputIIA, Solver, SolverConfigError
from solver.api import PAIRWISE_AUTO_FLOORS

RES = 1e-3


def _per_input(seed: int = 0) -> PerInputIIA:
    # 30 inputs x 3 models, IIA in eighths: about twenty steps, well within the cap.
    rng = np.random.default_rng(seed)
    return PerInputIIA(rng.choice(np.arange(9) / 8, size=(30, 3)), ("a", "b", "c"))


@pytest.mark.integration
def test_per_input_auto_floors_are_the_breakpoints_of_the_curve():
    data = _per_input()
    solver = Solver(semantics="per-input", method="ilp")
    front = solver.frontier(data, "auto")
    floors, strengths = front.floors, front.strengths
    assert floors[0] == 1.0 and floors == sorted(floors, reverse=True)
    assert all(a < b for a, b in zip(strengths, strengths[1:]))  # one point per step
    assert strengths[-1] == data.n_inputs  # down to where one candidate explains all
    assert all(r.certificate.status == "optimal" for r in front.results)
    assert len(floors) > 10
    assert "cap" not in front.note and "not optimal" not in front.note
    assert solver.auto_floors(data) == floors

    def strength(floor: float) -> int:
        return solver.solve(data, round(floor, 12)).strength

    for k, (high, low) in enumerate(zip(floors, floors[1:])):
        # Just above a breakpoint's floor the curve is on the step above it ...
        assert strength(low + RES) == strengths[k]
        # ... and so are points between them.
        gap = round((high - low) / RES)
        if gap > 2:
            assert strength(low + RES * (gap // 2)) == strengths[k]
    assert strength(floors[-1] / 2) == strengths[-1]


@pytest.mark.integration
def test_the_cap_on_solves_is_reported():
    rng = np.random.default_rng(0)
    data = PerInputIIA(rng.uniform(0.3, 1.0, size=(30, 3)), ("a", "b", "c"))
    front = Solver(semantics="per-input", method="ilp").frontier(data, "auto", max_solves=5)
    assert "cap of 5 solves" in front.note and front.to_dict()["note"] == front.note
    assert front.floors[0] == 1.0
    assert all(a < b for a, b in zip(front.strengths, front.strengths[1:]))


@pytest.mark.integration
def test_pairwise_auto_floors_are_the_documented_grid():
    w = random_pairwise(np.random.default_rng(1), 2, 8, p_one=0.7)
    data = PairwiseIIA(w, ("a", "b"))
    front = Solver(method="ilp").frontier(data, "auto")
    assert front.floors == list(PAIRWISE_AUTO_FLOORS)
    assert front.floors[:3] == [1.0, 0.99, 0.98] and front.floors[-1] == 0.5
    assert len(front.floors) == 51
    assert all(a <= b for a, b in zip(front.strengths, front.strengths[1:]))


@pytest.mark.unit
def test_auto_floors_with_the_greedy_or_a_bad_word_are_refused():
    data = _per_input()
    with pytest.raises(SolverConfigError, match="use method 'auto' or 'ilp'"):
        Solver(semantics="per-input", method="greedy").frontier(data, "auto")
    with pytest.raises(SolverConfigError, match="numbers or 'auto'"):
        Solver(semantics="per-input", method="ilp").frontier(data, "best")


@pytest.mark.integration
def test_cli_accepts_floors_auto_and_refuses_it_with_the_greedy(tmp_path, capsys):
    path, out = tmp_path / "p.npz", tmp_path / "o.json"
    _per_input().save(path)
    args = ["solve", str(path), "--semantics", "per-input", "--floors", "auto"]
    assert main([*args, "--method", "ilp", "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["results"][0]["floor"] == 1.0 and "floors: auto" in doc["note"]
    assert main([*args, "--method", "greedy"]) == 2
    assert "use --method auto or --method ilp" in capsys.readouterr().err


SPEC = {
    "name": "t",
    "task": {"builtin": "arithmetic"},
    "network": {"train": {"n_layer": 2}},
    "sites": [{"layer": 0}],
}


@pytest.mark.unit
def test_spec_floors_auto_parses_and_other_specs_keep_their_digest():
    spec = parse_spec({**SPEC, "solve": {"floors": "auto"}})
    assert spec.solve.floors == "auto"
    assert parse_spec(spec.model_dump(mode="json")) == spec
    default = parse_spec(SPEC)
    assert default.solve.floors == [1.0, 0.99, 0.975, 0.95, 0.9, 0.8]
    assert default.digest("solve") == "e55c059fc80bb862"  # as before "auto" existed
    assert spec.digest("solve") != default.digest("solve")
    with pytest.raises(SpecError, match="solve.method = 'auto' or 'ilp'"):
        parse_spec({**SPEC, "solve": {"floors": "auto", "method": "greedy"}})
    with pytest.raises(SpecError):
        parse_spec({**SPEC, "solve": {"floors": "best"}})


@pytest.mark.unit
def test_a_bound_proven_at_a_lower_floor_holds_above_it():
    from solver.api import _carry_bounds_up
    from solver.certificate import Certificate
    from solver.result import Partition

    def point(floor, strength, bound):
        cert = Certificate.build(
            method="auto", solver="x", objective=strength, bound=bound, seconds=0.0
        )
        assignment = np.array([0] * strength + [-1] * (12 - strength))
        return Partition(floor, "pairwise", "per-model", ("a",), None, assignment, {}, cert)

    high, mid, low = _carry_bounds_up([point(1.0, 5, 11), point(0.95, 8, None), point(0.9, 8, 8)])
    assert low.certificate.bound == 8 and low.certificate.status == "optimal"
    assert mid.certificate.bound == 8 and mid.certificate.status == "optimal"
    assert "bound carried from floor 0.9" in mid.certificate.note
    assert high.certificate.bound == 8 and high.certificate.gap == pytest.approx(3 / 8)
    # A tighter bound above is kept; a looser one below is not carried up.
    kept = _carry_bounds_up([point(1.0, 5, 6), point(0.9, 8, 12)])
    assert [p.certificate.bound for p in kept] == [6, 12]
