"""Causal models, the expression language, the built-in tasks and the local tokenizer."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intervention.causal_model import CausalModel, CausalModelError
from intervention.expressions import Expression, ExpressionError
from intervention.tasks import arithmetic, boolean
from intervention.tokenizer import build_tokenizer, encode_fixed_length

DIGITS = range(1, 11)
XYZ = {"X": DIGITS, "Y": DIGITS, "Z": DIGITS}


@pytest.mark.unit
@pytest.mark.parametrize(
    "text, env, expected",
    [
        ("X + Y * 2", {"X": [1, 2], "Y": [3, 4]}, [7, 10]),
        (
            "not A if B else C",
            {"A": [True, False], "B": [True, False], "C": [True, True]},
            [False, True],
        ),
        ("1 <= X < 3", {"X": [0, 1, 2, 3]}, [False, True, True, False]),
        ("min(X, Y) + abs(-X) - X // 2 % 3", {"X": [4], "Y": [1]}, [1 + 4 - 2]),
        ("xor(A, B) or (A and B)", {"A": [True, False], "B": [False, False]}, [True, False]),
    ],
)
def test_expressions_evaluate_vectorised(text, env, expected):
    out = Expression.parse(text)({k: np.array(v) for k, v in env.items()})
    assert out.tolist() == expected


@pytest.mark.unit
@pytest.mark.parametrize(
    "text, piece",
    [
        ("X.real", "attribute access"),
        ("X[0]", "subscripts"),
        ("__import__('os').system('x')", "__import__"),
        ("(lambda: 1)()", "call of"),
        ("lambda: 1", "lambdas"),
        ("X / Y", "true division"),
        ("X ** 2", "powers"),
        ("None", "constant None"),
        ("b'bytes'", "constant b'bytes'"),
        ("eval('1')", "call of 'eval'"),
        ("[x for x in X]", "comprehensions"),
        ("X +", "not a valid expression"),
        ("X in Y", "comparison In"),
    ],
)
def test_disallowed_syntax_is_named(text, piece):
    with pytest.raises(ExpressionError, match=__import__("re").escape(piece)):
        Expression.parse(text)


@pytest.mark.unit
def test_model_validation_says_what_is_wrong():
    with pytest.raises(CausalModelError, match="cycle"):
        CausalModel("m", XYZ, {"P": "O + X", "O": "P + Z"})
    with pytest.raises(CausalModelError, match="several sinks"):
        CausalModel("m", XYZ, {"P": "X", "O": "Y + Z"})
    with pytest.raises(CausalModelError, match="no variable is computed"):
        CausalModel("m", XYZ, {})
    with pytest.raises(CausalModelError, match="unknown variables"):
        CausalModel("m", XYZ, {"P": "X + W", "O": "P"})
    with pytest.raises(CausalModelError, match="not among its parents"):
        CausalModel("m", XYZ, {"P": "X + Y", "O": "P + Z"}, parents={"P": ["X"]})
    with pytest.raises(CausalModelError, match="outside its domain"):
        CausalModel("m", XYZ, {"P": "X + Y", "O": "P + Z"}, domains={"P": range(2, 15)})
    with pytest.raises(CausalModelError, match="is an input"):
        CausalModel("m", XYZ, {"P": "X", "O": "P"}, output="X")
    with pytest.raises(CausalModelError, match="needs its parents"):
        CausalModel("m", XYZ, {"P": lambda X: X, "O": "P + Y + Z"})


@pytest.mark.unit
def test_callable_mechanisms_and_graph():
    m = CausalModel("m", XYZ, {"P": lambda X, Y: X + Y, "O": "P + Z"}, parents={"P": ["X", "Y"]})
    assert m.output == "O" and m.parents("P") == ["X", "Y"] and m.parents("O") == ["P", "Z"]
    assert m.graph.nodes["X"]["kind"] == "input" and m.graph.nodes["O"]["kind"] == "output"
    out = m.run({"X": np.array([1]), "Y": np.array([2]), "Z": np.array([3])})
    assert out["P"].tolist() == [3] and out["O"].tolist() == [6]


# The six arithmetic candidates written out in Python, independent of the expression evaluator:
# P from the source's digits, then O from P and the base's digits.
ARITHMETIC_BY_HAND = {
    "(X+Y)+Z": (lambda x, y, z: x + y, lambda p, x, y, z: p + z),
    "(X+Z)+Y": (lambda x, y, z: x + z, lambda p, x, y, z: p + y),
    "X+(Y+Z)": (lambda x, y, z: y + z, lambda p, x, y, z: p + x),
    "(X)+Y+Z": (lambda x, y, z: x, lambda p, x, y, z: p + y + z),
    "X+(Y)+Z": (lambda x, y, z: y, lambda p, x, y, z: x + p + z),
    "X+Y+(Z)": (lambda x, y, z: z, lambda p, x, y, z: x + y + p),
}


def _digits(i: int) -> tuple[int, int, int]:
    return i // 100 + 1, i // 10 % 10 + 1, i % 10 + 1  # the authors' indexing


@pytest.mark.property
@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 999), st.integers(0, 999)), min_size=1, max_size=50))
def test_interchange_matches_the_candidates_written_by_hand(pairs):
    task = arithmetic()
    base, source = (np.array(x) for x in zip(*pairs))
    assert [m.name for m in task.candidates] == list(ARITHMETIC_BY_HAND)
    for model in task.candidates:
        p_of, o_of = ARITHMETIC_BY_HAND[model.name]
        got = task.counterfactual_labels(model, base, source)
        expected = [o_of(p_of(*_digits(s)), *_digits(b)) - 3 for b, s in pairs]
        assert got.tolist() == expected, model.name


@pytest.mark.unit
def test_arithmetic_task_matches_the_reference_indexing():
    task = arithmetic()
    assert task.n_inputs == 1000 and len(task.classes) == 28 and len(task.candidates) == 6
    x, y, z = 4, 7, 2
    i = (x - 1) * 100 + (y - 1) * 10 + (z - 1)
    assert task.prompts()[i] == "4+7+2=" and task.labels()[i] == x + y + z - 3
    # (X+Y)+Z on base 4+7+2 with P from source 1+1+9: P = 2, so O = 2 + 2.
    s = 0 * 100 + 0 * 10 + 8
    model = task.candidates[0]
    assert model.name == "(X+Y)+Z"
    assert task.counterfactual_labels(model, np.array([i]), np.array([s])).tolist() == [4 - 3]


@pytest.mark.unit
def test_boolean_task_candidates_agree_with_the_task_without_intervention():
    task = boolean()
    assert task.n_inputs == 64 and len(task.candidates) == 12 and task.fallback.name == "O"
    labels = task.labels()
    for model in task.candidates:
        assert np.array_equal(task.label_index(model.run(task.values)["O"]), labels), model.name
    # De Morgan: Not(True And False) is True.
    prompts = task.prompts()
    k = prompts.index("Not(I(True) And I(False))=")
    assert labels[k] == 1


@pytest.mark.unit
def test_tokenizer_gives_fixed_length_and_refuses_ragged_prompts():
    for task, length in ((arithmetic(), 6), (boolean(), 13)):
        prompts = task.prompts()
        ids = encode_fixed_length(build_tokenizer(prompts), prompts)
        assert tuple(ids.shape) == (task.n_inputs, length)
    tok = build_tokenizer(["1+1=", "10+10+10="])
    with pytest.raises(ValueError, match="different lengths"):
        encode_fixed_length(tok, ["1+1=", "10+10+10="])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        encode_fixed_length(tok, ["7+1="])


@pytest.mark.unit
def test_custom_task_from_spec_parts():
    from intervention.tasks import custom_task

    parts = dict(
        name="max2",
        inputs={"A": range(4), "B": range(4)},
        template="{A} vs {B} =",
        output="max(A, B)",
        candidates={"left": {"P": "A", "O": "max(P, B)"}, "right": {"P": "B", "O": "max(A, P)"}},
    )
    task = custom_task(**parts)
    assert task.n_inputs == 16 and task.classes == (0, 1, 2, 3)
    assert task.prompts()[6] == "1 vs 2 =" and task.labels()[6] == 2
    assert [m.name for m in task.candidates] == ["left", "right"]
    for bad, message in [
        (dict(template="{A.__class__}"), "no input"),
        (dict(template="{C} and {A}"), "not input variables"),
        (dict(candidates={"bad": {"P": "A", "O": "P + B"}}), "disagrees with the task"),
        (dict(candidates={"bad": {"P": "A"}}), "missing \\['O'\\]"),
        (dict(candidates={"bad": {"P": "A + C", "O": "max(P, B)"}}), "unknown variables"),
    ]:
        with pytest.raises(ValueError, match=message):
            custom_task(**{**parts, **bad})
