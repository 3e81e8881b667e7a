"""HiGHS MIP runs that keep their time limit (solver/highs_child.py): a large model runs in a
child process, killed at its deadline; the answer is the same as the in-process run's, for
the arrays of milp_highs and for PuLP models (solver/pulp_arrays.py, method "ilp")."""

import sys
import time
from pathlib import Path

import numpy as np
import pulp
import pytest

from solver import backends, highs_child
from solver.certificate import floor_bound
from solver.per_input import solve_per_input
from solver.per_input_milp import BUILD_STOPPED, milp_highs, milp_pulp
from solver.pulp_arrays import pulp_request
from solver.verify import check_partition

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
# bench/per_input_scale.py's synthetic IIA (a true model per input shifted by the model's
# quality, a runner-up, noise): with the global floor at 0.98 and min_cell, HiGHS's set-up
# alone outlasts a short limit.
from per_input_scale import synthetic32  # noqa: E402


def every_run_in_a_child(monkeypatch) -> list:
    """Send every HiGHS run (arrays or PuLP) to a child process; the list fills with each
    child's command line."""
    monkeypatch.setattr(highs_child, "CHILD_MIN_COLS", 0)
    monkeypatch.setattr(backends, "CHILD_MIN_COLS", 0)
    spawned: list = []
    real_popen = highs_child.subprocess.Popen
    monkeypatch.setattr(
        highs_child.subprocess,
        "Popen",
        lambda *args, **kw: spawned.append(args) or real_popen(*args, **kw),
    )
    return spawned


@pytest.mark.integration
def test_a_set_up_that_overruns_is_stopped_at_the_deadline():
    # In process, HiGHS ran this model (128,000 binaries) for 26 s under an 8 s limit (12-16 s
    # under 3 s), most of it in its MIP set-up (the objective's clique partition), which never
    # looks at the clock; the child's HiGHS gets highs_limit(10) = 8 s and is killed at 10 s.
    a = synthetic32(2000, 64, 0)
    limit = 10.0
    t = time.perf_counter()
    res = milp_highs(
        a, 0.98, "global", time_limit=limit, max_models=None, min_cell=5, warm_start=None
    )
    took = time.perf_counter() - t
    assert res.timed_out and not res.proven_optimal
    # the kill comes at the limit; 3 s more for building and sending the model
    assert took <= limit + 3.0, took
    if res.assign is None:  # killed: nothing that was not proven is claimed
        assert res.bound is None and "stopped" in res.status


@pytest.mark.unit
@pytest.mark.parametrize("options", [{}, {"min_cell": 8}, {"max_models": 2}])
def test_the_child_gives_the_in_process_answer(monkeypatch, options):
    rng = np.random.default_rng(3)
    a = rng.uniform(0.6, 1.0, size=(60, 4))
    kwargs = dict(time_limit=30.0, max_models=None, min_cell=1, warm_start=None) | options
    here = milp_highs(a, 0.9, "per-model", **kwargs)
    spawned = every_run_in_a_child(monkeypatch)
    child = milp_highs(a, 0.9, "per-model", **kwargs)
    assert spawned, "the run did not go to a child process"
    assert here.proven_optimal and child.proven_optimal
    assert child.status == here.status == "Optimal"
    assert child.bound == pytest.approx(here.bound)
    assert (child.assign >= 0).sum() == (here.assign >= 0).sum() == round(here.bound)


@pytest.mark.unit
def test_a_child_that_fails_names_its_error(monkeypatch):
    monkeypatch.setattr(highs_child, "CHILD_MIN_COLS", 0)
    req = highs_child.MipRequest(
        cost=np.ones(2), col_lower=np.zeros(2), col_upper=np.ones(2),
        row_lower=np.zeros(1), row_upper=np.ones(1), start=np.array([0, 1, 2]),
        index=np.array([0, 0]), value=np.ones(2), maximize=True,
        options={"no_such_option": 1}, warm=None, keep=2,
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="HiGHS child process exited"):
        highs_child.run_mip(req, time_limit=10.0)


def _mixed_model() -> pulp.LpProblem:
    """Binaries, a bounded integer and a free-ish continuous column; <=, >= and = rows; an
    objective constant: every kind of piece that ``pulp_request`` converts."""
    prob = pulp.LpProblem("mixed", pulp.LpMaximize)
    x = [prob.add_variable(f"x{i}", 0, 1, cat=pulp.LpBinary) for i in range(6)]
    k = prob.add_variable("k", 0, 3, cat=pulp.LpInteger)
    z = prob.add_variable("z", -2, 5)
    weights = [3, 5, 4, 6, 2, 7]
    prob += pulp.lpSum(w * v for w, v in zip(weights, x)) + 2 * k + 0.5 * z + 1.25
    prob += pulp.lpSum(x) <= 3, "pick"
    prob += x[0] + x[1] >= 1, "cover"
    prob += k + z == 3.5, "tie"
    prob += pulp.lpSum(v for v in x[3:]) + k <= 3, "share"
    return prob


@pytest.mark.unit
def test_a_pulp_model_in_a_child_gives_the_in_process_answer(monkeypatch):
    prob = _mixed_model()
    here = backends.solve_with_pulp(prob, "highs", None, False)
    values = {v.name: v.varValue for v in prob.variables()}
    spawned = every_run_in_a_child(monkeypatch)
    prob = _mixed_model()
    child = backends.solve_with_pulp(prob, "highs", 30.0, False, gapRel=0.0)
    assert spawned, "the run did not go to a child process"
    assert here.proven and child.proven and child.status == here.status == "Optimal"
    assert child.objective == pytest.approx(here.objective)
    assert child.bound == pytest.approx(here.bound)
    assert child.objective == pytest.approx(pulp.value(prob.objective))  # with the constant
    assert {v.name: v.varValue for v in prob.variables()} == pytest.approx(values)


@pytest.mark.unit
def test_a_pulp_keyword_without_a_highs_name_is_refused():
    with pytest.raises(ValueError, match="no HiGHS option for the PuLP keyword"):
        pulp_request(_mixed_model(), False, {"keepFiles": True})


@pytest.mark.integration
def test_the_ilp_method_keeps_its_time_limit():
    # method="ilp" builds its model in PuLP; PuLP's HiGHS runs in process, where this model
    # (128,000 binaries) ran 41 s under a 10 s limit. In a child it ends at the limit, and
    # the partition returned (here the heuristic's: no incumbent came back) is verified.
    a = synthetic32(2000, 64, 0)
    t = time.perf_counter()
    assign, cert = solve_per_input(a, 0.98, "global", method="ilp", time_limit=10, min_cell=5)
    took = time.perf_counter() - t
    assert took <= 10.0 + 3.0, took
    check_partition(a, assign, 0.98, "per-input", "global", min_cell=5)
    assert cert.objective <= floor_bound(cert.bound)


@pytest.mark.unit
def test_a_pulp_build_past_the_limit_stops_and_claims_nothing():
    # 2,000 x 16 is 32,000 PuLP variables (about a second to build here): with a 1 ms limit
    # the build stops at its first check, with no partition and no bound
    a = synthetic32(2000, 16, 0)
    t = time.perf_counter()
    res = milp_pulp(
        a, 0.95, "per-model", solver="highs", time_limit=0.001, max_models=None,
        min_cell=1, warm_start=None,
    )  # fmt: skip
    assert time.perf_counter() - t < 5.0
    assert res.status == BUILD_STOPPED and res.timed_out
    assert res.assign is None and res.bound is None and not res.proven_optimal
