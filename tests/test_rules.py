"""Readable cells: the tree's rules name the regions that define a partition, read as the
tree predicts (each printed rule, evaluated on the inputs, selects exactly the inputs the
tree gives its cell, so its reported precision and recall are the rule's own), and the
report carries them with the tree's depth and accuracies."""

import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intervention.tasks import arithmetic
from service.report import build_report, format_report
from service.rules import MAX_ROWS, _threshold, partition_rules
from solver import PerInputIIA, Solver

GRID = np.array(list(itertools.product(range(1, 11), repeat=3)))
XYZ = {"X": GRID[:, 0], "Y": GRID[:, 1], "Z": GRID[:, 2]}


def _selects(text: str, values: dict) -> np.ndarray:
    """Which inputs a printed rule selects: rules are Python expressions over the variables
    (``3 < X <= 5``, ``W not in ('a', 'b')``, ``not B``), or "always" / "never"."""
    if text in ("always", "never"):
        return np.full(len(next(iter(values.values()))), text == "always")
    code = compile(text, "<rule>", "eval")
    columns = {name: np.asarray(col).tolist() for name, col in values.items()}
    rows = (dict(zip(columns, row)) for row in zip(*columns.values()))
    return np.array([bool(eval(code, {"__builtins__": {}}, row)) for row in rows])


def _check_rules_read_as_reported(result, values, labels, names) -> None:
    """Every rule, evaluated on the inputs, has the accuracy, precision and recall reported;
    the rules' selections are disjoint and cover every input (one class per leaf)."""
    covered = np.zeros(len(labels), dtype=int)
    for name, rule in result.rules.items():
        member = labels == names.index(name)
        chosen = _selects(rule.text, values)
        covered += chosen
        assert rule.support == member.sum()
        assert rule.accuracy == pytest.approx((member == chosen).mean())
        assert rule.recall == pytest.approx((member & chosen).sum() / member.sum())
        if chosen.any():
            assert rule.precision == pytest.approx((member & chosen).sum() / chosen.sum())
    # Cells with members each have a rule; only empty classes could take the rest, and the
    # tree never predicts a class it never saw.
    assert set(result.rules) == {names[k] for k in np.unique(labels)}
    assert (covered == 1).all()
    predicted_right = sum(
        (_selects(r.text, values) & (labels == names.index(n))).sum()
        for n, r in result.rules.items()
    )
    assert result.accuracy == pytest.approx(predicted_right / len(labels))


@pytest.mark.unit
def test_one_threshold_is_one_integer_test_at_depth_one():
    labels = np.where(XYZ["X"] <= 5, 0, 1)
    result = partition_rules(XYZ, labels, ["low", "fallback"])
    assert result.rules["low"].text == "X <= 5"
    assert result.rules["fallback"].text == "X > 5"
    for rule in result.rules.values():
        assert (rule.accuracy, rule.precision, rule.recall) == (1.0, 1.0, 1.0)
    assert (result.depth, result.accuracy, result.cv_accuracy) == (1, 1.0, 1.0)
    assert result.rules["low"].support == 500 and result.cv_rows == 1000
    _check_rules_read_as_reported(result, XYZ, labels, ["low", "fallback"])


@pytest.mark.unit
def test_a_two_variable_region_and_a_third_cell():
    x, y, z = XYZ["X"], XYZ["Y"], XYZ["Z"]
    region = (x <= 5) & (y > 3)
    labels = np.where(region, 0, np.where(z > 8, 1, 2))
    names = ["A", "B", "fallback"]
    result = partition_rules(XYZ, labels, names)
    assert result.rules["A"].text == "X <= 5 and Y > 3"
    assert result.accuracy == 1.0 and result.cv_accuracy == 1.0
    assert all(r.accuracy == 1.0 for r in result.rules.values())
    assert 2 <= result.depth <= 3
    _check_rules_read_as_reported(result, XYZ, labels, names)


@pytest.mark.unit
def test_a_union_drops_the_tests_its_other_paths_make_unneeded():
    # Beside the path X <= 5, a path under X > 5 need not say X > 5: the rule reads as the
    # union it was written as.
    x, y, z = XYZ["X"], XYZ["Y"], XYZ["Z"]
    labels = np.where((x <= 5) | ((y <= 3) & (z <= 3)), 0, 1)
    result = partition_rules(XYZ, labels, ["A", "fallback"])
    assert result.rules["A"].text == "X <= 5 or (Y <= 3 and Z <= 3)"
    assert result.rules["fallback"].text == "(X > 5 and Y > 3) or (X > 5 and Z > 3)"
    assert result.accuracy == 1.0
    _check_rules_read_as_reported(result, XYZ, labels, ["A", "fallback"])


@pytest.mark.unit
def test_a_bounded_interval_reads_as_one_chained_comparison():
    labels = np.where((XYZ["Z"] > 3) & (XYZ["Z"] <= 7), 0, 1)
    result = partition_rules(XYZ, labels, ["mid", "fallback"])
    assert result.rules["mid"].text == "3 < Z <= 7" and result.accuracy == 1.0
    _check_rules_read_as_reported(result, XYZ, labels, ["mid", "fallback"])


@pytest.mark.unit
def test_strings_and_booleans_read_as_equalities_and_truth():
    rng = np.random.default_rng(0)
    n = 2000
    values = {
        "W": rng.choice(["red", "green", "blue", "cyan"], n),
        "S": rng.choice(["left", "right"], n),
        "B": rng.random(n) < 0.5,
    }
    labels = np.where(values["W"] == "red", 0, np.where(values["B"], 1, 2))
    names = ["A", "B", "fallback"]
    result = partition_rules(values, labels, names)
    assert result.rules["A"].text == "W == 'red'"
    assert result.rules["B"].text == "W != 'red' and B"
    assert result.rules["fallback"].text == "W != 'red' and not B"
    assert result.accuracy == 1.0
    _check_rules_read_as_reported(result, values, labels, names)
    # A two-valued string names its other value rather than negating the first.
    labels = np.where(values["S"] == "right", 0, 1)
    result = partition_rules(values, labels, ["R", "fallback"])
    assert result.rules["R"].text == "S == 'right'"
    assert result.rules["fallback"].text == "S == 'left'"
    # Two string values in one cell: two equalities, never an equality beside an inequality.
    labels = np.where(np.isin(values["W"], ["red", "blue"]), 0, 1)
    result = partition_rules(values, labels, ["RB", "fallback"])
    assert result.rules["RB"].text == "W == 'red' or W == 'blue'"
    assert result.rules["fallback"].text == "W not in ('blue', 'red')"
    _check_rules_read_as_reported(result, values, labels, ["RB", "fallback"])


@pytest.mark.unit
def test_thresholds_are_the_shortest_number_that_splits_the_same():
    values = np.array([1.0, 2.0, 5.0, 6.0, 40.0])
    assert _threshold(values, 5.5) == "5"
    assert _threshold(values, 23.0) == "10"  # any r in [6, 40) splits alike
    assert _threshold(np.array([0.1, 0.25, 0.3, 0.7]), 0.5) == "0.3"
    assert _threshold(np.array([0.12, 0.125]), 0.1225) == "0.12"
    assert _threshold(np.array([-3.0, -2.0]), -2.5) == "-3"


@pytest.mark.unit
def test_one_cell_and_a_single_input_cell():
    result = partition_rules(XYZ, np.zeros(1000, dtype=int), ["all", "fallback"])
    assert result.rules == {"all": result.rules["all"]} and result.rules["all"].text == "always"
    assert result.depth == 0 and result.cv_accuracy is None
    # One input alone in its cell: folds cannot be stratified, and the cell is too small for
    # the chosen tree to single out, so its rule says so (never) with recall 0.
    labels = np.ones(1000, dtype=int)
    labels[17] = 0
    result = partition_rules(XYZ, labels, ["one", "fallback"])
    assert result.rules["one"].text == "never" and result.rules["one"].recall == 0.0
    assert result.rules["fallback"].text == "always" and result.accuracy == 0.999
    _check_rules_read_as_reported(result, XYZ, labels, ["one", "fallback"])


@pytest.mark.unit
def test_noise_gets_a_shallow_tree_and_the_same_answer_twice():
    labels = np.random.default_rng(3).integers(0, 3, 1000)
    first = partition_rules(XYZ, labels, ["a", "b", "c"])
    assert first == partition_rules(XYZ, labels, ["a", "b", "c"])
    assert first.cv_accuracy < 0.45  # nothing to learn: chance is about a third
    _check_rules_read_as_reported(first, XYZ, labels, ["a", "b", "c"])


@pytest.mark.unit
def test_a_hundred_thousand_rows_are_sampled_for_the_depth_and_read_exactly():
    rng = np.random.default_rng(1)
    n = 100_000
    values = {
        "W": rng.choice(["red", "green", "blue", "cyan"], n),
        "X": rng.integers(0, 1000, n),
        "B": rng.random(n) < 0.5,
        "F": rng.random(n) * 10,
    }
    labels = np.where(values["W"] == "red", 0, np.where((values["X"] > 500) & values["B"], 1, 2))
    result = partition_rules(values, labels, ["A", "B", "fallback"])
    assert result.cv_rows == MAX_ROWS
    assert result.rules["A"].text == "W == 'red'"
    assert result.rules["B"].text == "W != 'red' and X > 500 and B"
    assert result.accuracy == 1.0 and all(r.accuracy == 1.0 for r in result.rules.values())
    assert result.rules["fallback"].support == (labels == 2).sum()


@pytest.mark.unit
def test_a_cell_missing_from_the_sample_is_never_predicted_but_still_reported():
    labels = np.where(XYZ["X"] <= 5, 0, 1)
    labels[999] = 2  # the last input alone: outside a sample of 50 of the 1000
    names = ["low", "fallback", "lone"]
    result = partition_rules(XYZ, labels, names, max_rows=50)
    assert result.cv_rows == 50
    assert result.rules["low"].text == "X <= 5"
    assert result.rules["lone"] == partition_rules(XYZ, labels, names, max_rows=50).rules["lone"]
    assert result.rules["lone"].text == "never" and result.rules["lone"].support == 1
    _check_rules_read_as_reported(result, XYZ, labels, names)


@pytest.mark.property
@settings(max_examples=25, deadline=None)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(2, 4),
    st.sampled_from(["int", "float", "str", "bool"]),
)
def test_every_printed_rule_selects_what_the_tree_predicts(seed, k, kind):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(8, 300))
    values = {"X": rng.integers(-20, 20, n), "Y": np.round(rng.random(n) * 3, 2)}
    values["V"] = {
        "int": rng.integers(0, 5, n),
        "float": rng.normal(size=n),
        "str": rng.choice(["a", "b", "c", "d", "e"], n),
        "bool": rng.random(n) < 0.3,
    }[kind]
    labels = rng.integers(0, k, n)
    names = [f"M{m}" for m in range(k)]
    result = partition_rules(values, labels, names)
    _check_rules_read_as_reported(result, values, labels, names)


@pytest.mark.integration
def test_the_report_carries_one_rule_per_cell_the_fallback_and_the_tree():
    task = arithmetic()
    x, y = task.values["X"], task.values["Y"]
    # Column 0 is faithful where X <= 5, column 1 where X > 5 and Y > 3; the rest falls to
    # the fallback, whose inputs are a class of the tree named by the fallback model.
    iia = np.zeros((task.n_inputs, 3))
    iia[x <= 5, 0] = 1.0
    iia[(x > 5) & (y > 3), 1] = 1.0
    iia[:, 2] = 0.5
    data = PerInputIIA(iia, ("low", "high", "base"), fallback="base")
    combined = Solver(semantics="per-input", method="greedy").frontier(data, [1.0])
    report = build_report("digest", 1.0, [], combined, {}, task, ["embeddings"])
    (entry,) = report["frontier"]
    fallback = task.fallback.name
    assert entry["rules"]["low"] == {
        "rule": "X <= 5",
        "accuracy": 1.0,
        "precision": 1.0,
        "recall": 1.0,
        "support": 500,
    }
    assert entry["rules"]["high"]["rule"] == "X > 5 and Y > 3"
    assert entry["rules"][fallback]["rule"] == "X > 5 and Y <= 3"
    assert entry["rules"][fallback]["support"] == 150
    assert entry["tree"] == {"depth": 2, "accuracy": 1.0, "cv_accuracy": 1.0, "cv_rows": 1000}
    json.dumps(report)
    text = format_report({**report, "network_accuracy": 1.0})
    assert "low 500 [X <= 5; precision 1.00, recall 1.00]" in text
    assert "tree depth 2, accuracy 1.000, cross-validated 1.000" in text
    assert "fallback 150 [X > 5 and Y <= 3; precision 1.00, recall 1.00]" in text
    # A report written before the rules came from one tree still prints, as it did.
    for row in report["frontier"]:
        del row["tree"]
        row["rules"] = {
            k: {"rule": v["rule"], "accuracy": v["accuracy"]} for k, v in row["rules"].items()
        }
    old = format_report(report)
    assert "low 500 [X <= 5]" in old and "tree depth" not in old
