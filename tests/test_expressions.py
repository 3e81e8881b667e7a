"""The expression language on bad input: text too long or too deep for the parser, numbers
outside 64 bits, strings where numbers are needed, division by zero and integer overflow. Each
is an ExpressionError (or a CausalModelError naming the model) that says what and where."""

import operator
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intervention.causal_model import MAX_INPUTS, CausalModel, CausalModelError
from intervention.expressions import (
    INT_MAX,
    INT_MIN,
    MAX_CHARS,
    MAX_DEPTH,
    Expression,
    ExpressionError,
    kind_of,
)
from intervention.tasks import custom_task


def _run(text: str, **env) -> np.ndarray:
    return Expression.parse(text)({k: np.asarray(v) for k, v in env.items()})


@pytest.mark.unit
@pytest.mark.parametrize(
    "text",
    [
        "(" * 900 + "X" + ")" * 900,  # brackets: Python's parser gives up at 200
        "-" * 1500 + "X",  # unary chains: RecursionError inside ast.parse
        "not " * 400 + "X",
        "abs(" * 150 + "X" + ")" * 150,
        "X + " * 150 + "X",  # a flat sum is a deep tree for the evaluator
    ],
)
def test_deep_nesting_is_refused_with_the_limit(text):
    with pytest.raises(ExpressionError, match=f"at most {MAX_DEPTH} levels.*intermediate"):
        Expression.parse(text)


@pytest.mark.unit
def test_long_text_is_refused_before_parsing_and_the_limits_leave_room():
    with pytest.raises(ExpressionError, match=f"{MAX_CHARS + 2} characters long; at most"):
        Expression.parse("X+" * (MAX_CHARS // 2) + "XX")
    # Just inside both limits still parses and evaluates.
    ok = "(" * (MAX_DEPTH - 2) + "X + 1" + ")" * (MAX_DEPTH - 2)
    assert _run(ok, X=[1, 2]).tolist() == [2, 3]
    assert _run("X + " * (MAX_DEPTH - 2) + "X", X=[1]).tolist() == [MAX_DEPTH - 1]


@pytest.mark.unit
@pytest.mark.parametrize(
    "text, message",
    [
        ("X * 99999999999999999999999", "integer 99999999999999999999999 .* outside the 64-bit"),
        (f"X + {INT_MAX + 1}", "outside the 64-bit range"),
        ("X * 1e999", "'1e999' .* not finite"),
        ("xor(A, B, C)", "takes 2 arguments.*got 3"),  # a third would be numpy's out=
        ("abs(A, B)", "takes 1 argument"),
    ],
)
def test_literals_and_arities_outside_the_language_are_refused(text, message):
    with pytest.raises(ExpressionError, match=message):
        Expression.parse(text)


@pytest.mark.unit
def test_division_by_zero_names_the_expression_and_the_inputs():
    with pytest.raises(ExpressionError, match=r"'X // Y' divides by zero .* X=7, Y=0"):
        _run("X // Y", X=[1, 7, 3], Y=[1, 0, 2])
    with pytest.raises(ExpressionError, match=r"divides by zero at 'X % \(Y - 2\)' .*X=4, Y=2"):
        _run("1 + X % (Y - 2)", X=[3, 4], Y=[1, 2])
    # A guarded divisor is fine: the zero branch is computed but its divisor is not zero.
    assert _run("X // Y if Y != 0 else 0", X=[4, 4], Y=[2, 1]).tolist() == [2, 4]


@pytest.mark.unit
@pytest.mark.parametrize(
    "text, env",
    [
        ("X + Y", {"X": [1, 2**62], "Y": [1, 2**62]}),
        ("X - Y", {"X": [0, -(2**62)], "Y": [0, 2**62 + 1]}),
        ("X * Y", {"X": [3, 2**40], "Y": [3, 2**30]}),
        ("X * Y", {"X": [3, -(2**32)], "Y": [3, 2**31 + 1]}),
        ("-X", {"X": [1, INT_MIN]}),
        ("abs(X)", {"X": [1, INT_MIN]}),
        ("X // Y", {"X": [1, INT_MIN], "Y": [1, -1]}),
    ],
)
def test_integer_overflow_is_an_error_not_a_wrapped_number(text, env):
    # Today's numpy wraps each of these to a wrong number (often negative) without a word.
    second = {k: v[1] for k, v in env.items()}
    where = ", ".join(f"{k}={v}" for k, v in second.items())
    with pytest.raises(ExpressionError, match=f"overflows 64-bit integers .* {re.escape(where)}"):
        _run(text, **env)


@pytest.mark.unit
def test_float_overflow_is_an_error():
    with pytest.raises(ExpressionError, match="range of floats .*X=1e\\+300"):
        _run("X * X", X=[1.0, 1e300])


@pytest.mark.property
@settings(max_examples=300, deadline=None)
@given(
    st.integers(INT_MIN, INT_MAX),
    st.integers(INT_MIN, INT_MAX) | st.integers(-3, 3),
    st.sampled_from(["+", "-", "*", "//", "%"]),
)
def test_integer_arithmetic_is_exact_or_refused(a, b, symbol):
    exact = {
        "+": operator.add,
        "-": operator.sub,
        "*": operator.mul,
        "//": operator.floordiv,
        "%": operator.mod,
    }[symbol]
    if symbol in ("//", "%") and b == 0:
        with pytest.raises(ExpressionError, match="divides by zero"):
            _run(f"X {symbol} Y", X=[a], Y=[b])
        return
    want = exact(a, b)
    if INT_MIN <= want <= INT_MAX:
        assert _run(f"X {symbol} Y", X=[a], Y=[b]).tolist() == [want]
    else:
        with pytest.raises(ExpressionError, match="overflows 64-bit"):
            _run(f"X {symbol} Y", X=[a], Y=[b])


@pytest.mark.unit
def test_booleans_count_as_zero_and_one_in_arithmetic():
    # numpy alone would make A + B an 'or' and refuse A - B.
    a, b = [True, True, False], [True, False, False]
    assert _run("A + B", A=a, B=b).tolist() == [2, 1, 0]
    assert _run("A - B", A=a, B=b).tolist() == [0, 1, 0]
    assert _run("-A", A=a).tolist() == [-1, -1, 0]


@pytest.mark.unit
def test_strings_compare_equal_and_are_chosen_but_never_computed_with():
    ops = ["plus", "minus", "plus"]
    assert _run("A == 'plus'", A=ops).tolist() == [True, False, True]
    assert _run("A != B", A=ops, B=["plus", "plus", "minus"]).tolist() == [False, True, True]
    assert _run("'yes' if X > 1 else 'no'", X=[1, 2]).tolist() == ["no", "yes"]
    expr = Expression.parse("X + 1 if A == 'plus' else X - 1")
    assert expr.kind({"A": "str", "X": "int"}) == "int"
    for text, message in [
        ("A + 1", "applies '\\+' to strings at 'A \\+ 1' \\(A holds strings\\)"),
        ("A < B", "applies '<' to strings .*\\(A, B hold strings\\)"),
        ("A == 1", "compares a string with a number at 'A == 1'"),
        ("max(A, 2)", "applies max\\(\\) to strings"),
        ("not A", "applies 'not' to strings"),
        ("A if B else 1", "chooses between a string and a number"),
        ("1 if A else 2", "uses the string 'A' as the test .* A == 'value'"),
    ]:
        with pytest.raises(ExpressionError, match=message):
            Expression.parse(text).kind({"A": "str", "B": "str" if "<" in text else "int"})
    # Values the kinds did not foresee (a callable's output) are still refused when run.
    with pytest.raises(ExpressionError, match="applies '\\+' to values of type <U"):
        _run("A + 1", A=["x"])
    with pytest.raises(ExpressionError, match="compares values of types <U1 and int64"):
        _run("A == 1", A=["x"])


@pytest.mark.unit
def test_models_refuse_strings_in_arithmetic_and_mixed_domains_on_construction():
    ops = {"OP": ("plus", "minus"), "X": (1, 2)}
    with pytest.raises(CausalModelError, match="m: the mechanism of 'P': .* applies '\\+'.*OP"):
        CausalModel("m", ops, {"P": "OP + X", "O": "P"})
    # A string intermediate is checked where it is used, too.
    with pytest.raises(CausalModelError, match="the mechanism of 'O': .*applies '\\*'.*P holds"):
        CausalModel("m", ops, {"P": "OP", "O": "P * 2"})
    with pytest.raises(CausalModelError, match="domain of 'X': values mix \\['int', 'str'\\]"):
        CausalModel("m", {"X": (1, "1")}, {"O": "X"})
    with pytest.raises(CausalModelError, match="domain of 'X' repeats 1; list each value once"):
        CausalModel("m", {"X": (1, 2, 1)}, {"O": "X"})
    assert kind_of((1, 2.5)) == "float" and kind_of((True, False)) == "bool"
    model = CausalModel("m", ops, {"P": "X if OP == 'plus' else -X", "O": "P * 2"})
    out = model.run({"OP": np.array(["plus", "minus"]), "X": np.array([2, 2])})
    assert out["O"].tolist() == [4, -4]


@pytest.mark.unit
def test_input_spaces_beyond_the_limit_are_refused_before_they_are_built():
    big = {f"V{i}": range(20) for i in range(8)}  # 20**8 inputs: a MemoryError once built
    with pytest.raises(
        ValueError, match=f"25,600,000,000 inputs, more than the limit of {MAX_INPUTS:,}"
    ):
        custom_task("big", big, "{V0}", "V0", {})
    model = CausalModel("m", big, {"O": "V0 + V1"})  # a model may be larger than enumerable
    assert model.run({v: np.array([1]) for v in big})["O"].tolist() == [2]
    with pytest.raises(CausalModelError, match="more than the limit"):
        model.input_space()
    with pytest.raises(ValueError, match="1 input; interchange pairs need at least 2"):
        custom_task("one", {"A": [1]}, "{A}", "A", {})


@pytest.mark.unit
def test_custom_tasks_check_every_counterfactual_before_any_training():
    # Without an intervention A // (P + A) is A // B; with P from another input it can divide
    # by zero, which would otherwise surface in the middle of scoring.
    with pytest.raises(
        ValueError, match="'c', with P set to its value on another input.*zero.*A=1, P=-1"
    ):
        custom_task(
            "div",
            {"A": (1, 2), "B": (1, 2)},
            "{A}/{B}",
            "A // B",
            {"c": {"P": "B - A", "O": "A // (P + A)"}},
        )
    # B + max(A - B, 0) is max(A, B), but with A - B = 2 from another input it reaches 3.
    with pytest.raises(
        ValueError, match="with P set to 2 .* input '0 1' is 3, which is not one of"
    ):
        custom_task(
            "max",
            {"A": (0, 1, 2), "B": (0, 1, 2)},
            "{A} {B}",
            "max(A, B)",
            {"c": {"P": "A - B", "O": "B + max(P, 0)"}},
        )
    with pytest.raises(ValueError, match="output 2 is not one of its classes \\[0, 1\\]"):
        custom_task("sum", {"A": (0, 1), "B": (0, 1)}, "{A} {B}", "A + B", {}, classes=[0, 1])
    with pytest.raises(ValueError, match="classes \\[0, 1, 1\\] repeat a value"):
        custom_task("sum", {"A": (0, 1), "B": (0, 1)}, "{A} {B}", "A", {}, classes=[0, 1, 1])
