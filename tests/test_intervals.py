"""Wilson intervals of per-input IIA, solve.confidence, the report's intervals block and the
no-intervention baselines."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from intervention.iia import PairDesign, per_input_from_successes
from service.confidence import (
    confidence_problem,
    interval_report,
    no_intervention_baselines,
    solve_data,
)
from service.keys import report_key
from service.spec import SpecError, parse_spec
from solver import PerInputIIA, Solver
from solver.intervals import at_lower_bound, outcomes, wilson_interval, z_value


@pytest.mark.unit
def test_wilson_known_values():
    low, high = wilson_interval(40, 40, 0.95)
    assert float(low) == pytest.approx(0.91238, abs=1e-5) and float(high) == 1.0
    low, high = wilson_interval(0, 10, 0.95)
    assert float(low) == 0.0 and float(high) == pytest.approx(0.27753, abs=1e-5)
    low, high = wilson_interval(5, 10, 0.95)
    assert float(low) == pytest.approx(0.23659, abs=1e-5)
    assert float(low) + float(high) == pytest.approx(1.0)  # symmetric about one half
    assert [float(x) for x in wilson_interval(0, 0)] == [0.0, 1.0]  # no trials: no knowledge
    assert z_value(0.95) == pytest.approx(1.959964, abs=1e-6)
    # Vectorised: arrays broadcast, entry by entry as the scalars give.
    lows, highs = wilson_interval(np.array([[40, 0], [5, 0]]), np.array([[40, 10], [10, 0]]))
    assert lows.shape == (2, 2) and lows[0, 0] == pytest.approx(0.91238, abs=1e-5)
    assert highs[1, 1] == 1.0 and lows[1, 1] == 0.0
    for bad in (0.0, 1.0, -0.5):
        with pytest.raises(ValueError, match="strictly between 0 and 1"):
            z_value(bad)
    with pytest.raises(ValueError, match="0..trials"):
        wilson_interval(11, 10)


trials = st.integers(1, 400)


@pytest.mark.property
@given(trials, st.data(), st.floats(0.5, 0.999))
def test_wilson_contains_the_estimate_and_mirrors(n, data, confidence):
    s = data.draw(st.integers(0, n))
    low, high = (float(x) for x in wilson_interval(s, n, confidence))
    assert 0.0 <= low <= s / n + 1e-12 and s / n - 1e-12 <= high <= 1.0
    # Failures out of n mirror successes out of n.
    mlow, mhigh = (float(x) for x in wilson_interval(n - s, n, confidence))
    assert low == pytest.approx(1 - mhigh, abs=1e-12) and high == pytest.approx(1 - mlow, abs=1e-12)


@pytest.mark.property
@given(trials, st.data(), st.floats(0.5, 0.99), st.floats(0.001, 0.009))
def test_wilson_lower_bound_is_monotone(n, data, confidence, more):
    s = data.draw(st.integers(0, n - 1))
    low = float(wilson_interval(s, n, confidence)[0])
    # More successes of as many trials: a higher bound.
    assert float(wilson_interval(s + 1, n, confidence)[0]) >= low
    # Higher confidence: a lower bound no higher.
    assert float(wilson_interval(s, n, confidence + more)[0]) <= low + 1e-12
    # The same share from twice the trials: a bound no lower.
    assert float(wilson_interval(2 * s, 2 * n, confidence)[0]) >= low - 1e-12


def _sampled(n=12, k=3, models=("a", "b"), seed=0, p=0.8):
    """A sampled design over n inputs and random successes per model."""
    design = PairDesign.sampled(n, k, seed)
    rng = np.random.default_rng(seed)
    successes = [rng.random(len(design)) < p for _ in models]
    return design, successes


@pytest.mark.unit
@pytest.mark.parametrize("edge", ["mean", "both"])
def test_outcomes_count_the_directed_interventions(edge):
    design, successes = _sampled()
    data = per_input_from_successes(design, successes, ["a", "b"], None, edge)
    got_s, got_t = outcomes(data, edge)
    # Brute force: every distinct unordered pair an input belongs to, in both directions.
    half = len(design) // 2
    for m, s in enumerate(successes):
        seen: dict[tuple[int, int], tuple[bool, bool]] = {}
        for t in range(half):
            i, j = int(design.base[t]), int(design.source[t])
            key = (min(i, j), max(i, j))
            seen.setdefault(key, (bool(s[t]), bool(s[t + half])))
        for i in range(design.n_inputs):
            mine = [v for key, v in seen.items() if i in key]
            if edge == "mean":
                want_s, want_t = sum(a + b for a, b in mine), 2 * len(mine)
            else:
                want_s, want_t = sum(a and b for a, b in mine), len(mine)
            assert (got_s[i, m], got_t[i, m]) == (want_s, want_t)


def _tiny(iia, count):
    iia = np.asarray(iia, dtype=float)
    return PerInputIIA(iia, ("a", "b"), np.full(iia.shape, count, dtype=np.int64))


@pytest.mark.unit
def test_confidence_makes_the_solve_stricter():
    # Six inputs that every pair explains under 'a', on 10 outcomes each (5 pairs, both ways).
    data = _tiny([[1.0, 0.5]] * 6, 5)
    solver = Solver(semantics="per-input", method="ilp", time_limit=10)
    assert solver.solve(data, 0.9).strength == 6
    bounded = at_lower_bound(data, "mean", 0.95)
    assert np.allclose(bounded.iia[:, 0], float(wilson_interval(10, 10)[0]))  # ≈ 0.722
    assert np.array_equal(bounded.counts, data.counts)
    assert solver.solve(bounded, 0.9).strength == 0
    assert solver.solve(bounded, 0.7).strength == 6
    # More outcomes of the same estimate: the bound rises and the floor is met again.
    more = at_lower_bound(_tiny([[1.0, 0.5]] * 6, 40), "mean", 0.95)
    assert solver.solve(more, 0.9).strength == 6
    # Edge "both": one outcome per pair, so a wider interval than "mean" at the same counts.
    assert at_lower_bound(data, "both", 0.95).iia[0, 0] < bounded.iia[0, 0]
    # No lower bound ever exceeds its estimate.
    rng = np.random.default_rng(0)
    noisy = _tiny(rng.integers(0, 21, size=(30, 2)) / 20, 10)
    assert (at_lower_bound(noisy, "mean", 0.9).iia <= noisy.iia + 1e-12).all()


def _job(**solve):
    return {
        "name": "t",
        "task": {"builtin": "arithmetic"},
        "network": {"train": {"n_layer": 1}},
        "sites": [{"layer": 0}],
        "solve": solve,
    }


@pytest.mark.unit
def test_confidence_spec_field_refusals_and_digests():
    plain = parse_spec(_job())
    assert "confidence" not in plain.solve.model_dump()  # existing digests stay as they were
    spec = parse_spec(_job(confidence=0.95))
    dumped = spec.solve.model_dump(mode="json")
    assert dumped["confidence"] == 0.95
    assert spec.digest("solve") != plain.digest("solve")
    # The report's key covers it (the pipeline digests spec.solve.model_dump).
    plain_key = report_key("iia", plain.solve.model_dump(mode="json"), 0.99)
    assert report_key("iia", dumped, 0.99) != plain_key
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(SpecError, match="solve.confidence"):
            parse_spec(_job(confidence=bad))
    with pytest.raises(SpecError, match=r"pairs.design = 'all' measures every pair.*set pairs"):
        parse_spec({**_job(confidence=0.9), "pairs": {"design": "all"}})
    with pytest.raises(SpecError, match=r"semantics = 'pairwise'.*remove solve.confidence"):
        parse_spec({**_job(confidence=0.9, semantics="pairwise"), "pairs": {"design": "all"}})
    # A spec built in code without validation stops at the solve with the same message.
    unchecked = plain.model_copy(
        update={
            "solve": plain.solve.model_copy(update={"confidence": 0.9}),
            "pairs": plain.pairs.model_copy(update={"design": "all"}),
        }
    )
    s = unchecked.solve
    with pytest.raises(SpecError, match="pairs.design = 'all'"):
        solve_data(_tiny([[1.0, 0.5]] * 3, 2), s.semantics, "all", s.edge, s.confidence)
    assert confidence_problem("per-input", "sampled", 0.9) is None
    assert confidence_problem("pairwise", "all", None) is None


@pytest.mark.unit
@pytest.mark.parametrize("confidence", [None, 0.9])
def test_interval_report(confidence):
    k = 20
    data = _tiny([[1.0, 0.5]] * 4 + [[0.5, 0.9]] * 4, k)  # 40 outcomes per entry
    frontier = Solver(semantics="per-input", method="ilp").frontier(data, [0.9, 0.5])
    entries = [r.to_dict() for r in frontier.results]
    block = interval_report(entries, frontier, data, "mean", confidence, k)
    level = 0.95 if confidence is None else confidence
    one = float(wilson_interval(40, 40, level)[0])
    assert block["confidence"] == level and block["outcomes_per_input"] == 40
    assert f"[{one:.3f}, 1]" in block["note"] and f"{k} partners" in block["note"]
    assert block["solved_on"] == ("estimate" if confidence is None else "lower bound")
    # Per assigned cell: min and mean of its inputs' lower bounds on the cell's column.
    low = at_lower_bound(data, "mean", level).iia
    for entry, result in zip(entries, frontier.results):
        for m, name in enumerate(result.models):
            members = result.assignment == m
            if members.any():
                col = low[members, data.models.index(name)]
                assert entry["lower_bounds"][name] == {
                    "min": round(float(col.min()), 4),
                    "mean": round(float(col.mean()), 4),
                }
            else:
                assert name not in entry["lower_bounds"]
    # All pairs: exact, no interval, and no per-cell bounds.
    exact = interval_report([{}], frontier, data, "mean", None, None)
    assert exact["confidence"] is None and exact["exact"] and "exact" in exact["note"]


@pytest.mark.unit
@pytest.mark.parametrize("design", ["all", "sampled"])
def test_no_intervention_baseline_matches_a_loop(design, monkeypatch):
    import service.confidence as confidence
    from intervention.tasks import boolean

    task = boolean()
    n = task.n_inputs
    pairs = PairDesign.all_pairs(n) if design == "all" else PairDesign.sampled(n, 5, 3)
    monkeypatch.setattr(confidence, "BASELINE_CHUNK", 97)  # several chunks, one ragged
    got = no_intervention_baselines(task, task.candidates[:3], pairs)
    labels = task.labels()
    for model in task.candidates[:3]:
        same = 0
        for b, s in zip(pairs.base.tolist(), pairs.source.tolist()):
            cf = task.counterfactual_labels(model, np.array([b]), np.array([s]))[0]
            same += int(cf == labels[b])
        assert got[model.name] == pytest.approx(same / len(pairs), abs=1e-6)
    # The alignment table gains it per candidate (every site of a candidate alike).
    table = [{"candidate": m.name} for m in task.candidates[:3]]
    confidence.add_baselines(table, task, task.candidates[:3], pairs)
    assert [row["baseline"] for row in table] == [got[m.name] for m in task.candidates[:3]]
