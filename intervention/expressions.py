"""Mechanisms written as expressions ("X + Y", "not A if B else C", "P + Z"), parsed and
evaluated by this module over an allow-list of syntax. Spec text is never given to ``eval``.

Allowed: numbers and booleans, names, arithmetic (+ - * // % and unary -), comparisons
(chains too), ``and`` / ``or`` / ``not``, ``a if c else b``, and the functions in FUNCTIONS.
Evaluation is vectorised: names bind to numpy arrays and the result is an array.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np


class ExpressionError(ValueError):
    """An expression that is not allowed or not well formed; the message names the piece."""


FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "min": lambda *xs: np.minimum.reduce(np.broadcast_arrays(*xs)),
    "max": lambda *xs: np.maximum.reduce(np.broadcast_arrays(*xs)),
    "abs": np.abs,
    "xor": np.logical_xor,
}
BINARY = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.FloorDiv: np.floor_divide,
    ast.Mod: np.mod,
}
COMPARE = {
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
}
# Spellings users reach for, mapped to what they mean, so the error can say what to write.
HINTS = {
    ast.Attribute: "attribute access",
    ast.Subscript: "subscripts",
    ast.Lambda: "lambdas",
    ast.ListComp: "comprehensions",
    ast.GeneratorExp: "comprehensions",
    ast.Div: "true division '/' (use '//')",
    ast.Pow: "powers '**'",
    ast.BitAnd: "'&' (use 'and')",
    ast.BitOr: "'|' (use 'or')",
    ast.Invert: "'~' (use 'not')",
    ast.NamedExpr: "assignment ':='",
    ast.Starred: "star arguments",
    ast.JoinedStr: "f-strings",
}


def _refuse(node: ast.AST, text: str, kind: ast.AST | None = None) -> ExpressionError:
    what = HINTS.get(type(kind or node), type(kind or node).__name__)
    piece = ast.get_source_segment(text, node) or what
    return ExpressionError(
        f"not allowed in mechanism {text!r}: {what}, at {piece!r}; use names, numbers, "
        "arithmetic, comparisons, and/or/not, 'a if c else b' and "
        f"{sorted(FUNCTIONS)}"
    )


@dataclass(frozen=True)
class Expression:
    """A parsed, checked mechanism expression."""

    text: str
    tree: ast.Expression
    names: frozenset[str]

    @classmethod
    def parse(cls, text: str) -> Expression:
        if not isinstance(text, str) or not text.strip():
            raise ExpressionError(f"a mechanism expression must be non-empty text, got {text!r}")
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise ExpressionError(
                f"mechanism {text!r} is not a valid expression: {exc.msg}"
            ) from None
        names: set[str] = set()
        _check(tree.body, text.strip(), names)
        return cls(text.strip(), tree, frozenset(names))

    def __call__(self, env: Mapping[str, np.ndarray]) -> np.ndarray:
        missing = sorted(self.names - set(env))
        if missing:
            raise ExpressionError(f"mechanism {self.text!r} reads {missing}, which are not given")
        return np.asarray(_eval(self.tree.body, env))


def _check(node: ast.AST, text: str, names: set[str]) -> None:
    match node:
        case ast.Constant(value=value) if isinstance(value, bool | int | float):
            return
        case ast.Name(id=name):
            if name in FUNCTIONS:
                raise ExpressionError(f"{name!r} is a function in mechanism {text!r}; call it")
            names.add(name)
        case ast.BinOp(left=left, op=op, right=right) if type(op) in BINARY:
            _check(left, text, names)
            _check(right, text, names)
        case ast.BinOp(op=op):
            raise _refuse(node, text, op)
        case ast.UnaryOp(op=ast.USub() | ast.UAdd() | ast.Not(), operand=operand):
            _check(operand, text, names)
        case ast.UnaryOp(op=op):
            raise _refuse(node, text, op)
        case ast.BoolOp(values=values):
            for v in values:
                _check(v, text, names)
        case ast.Compare(left=left, ops=ops, comparators=rest):
            for op in ops:
                if type(op) not in COMPARE:
                    raise ExpressionError(
                        f"comparison {type(op).__name__} is not allowed in mechanism {text!r}; "
                        "use == != < <= > >="
                    )
            for v in [left, *rest]:
                _check(v, text, names)
        case ast.IfExp(test=test, body=body, orelse=orelse):
            for v in (test, body, orelse):
                _check(v, text, names)
        case ast.Call(func=ast.Name(id=fn), args=args, keywords=[]) if fn in FUNCTIONS:
            if not args:
                raise ExpressionError(f"{fn}() needs arguments in mechanism {text!r}")
            for v in args:
                _check(v, text, names)
        case ast.Call(func=func):
            piece = ast.get_source_segment(text, func) or "?"
            raise ExpressionError(
                f"call of {piece!r} is not allowed in mechanism {text!r}; allowed functions: "
                f"{sorted(FUNCTIONS)} (positional arguments only)"
            )
        case ast.Constant(value=value):
            raise ExpressionError(
                f"constant {value!r} is not allowed in mechanism {text!r}; "
                "only numbers and booleans"
            )
        case _:
            raise _refuse(node, text)


def _eval(node: ast.AST, env: Mapping[str, np.ndarray]):
    match node:
        case ast.Constant(value=value):
            return value
        case ast.Name(id=name):
            return env[name]
        case ast.BinOp(left=left, op=op, right=right):
            return BINARY[type(op)](_eval(left, env), _eval(right, env))
        case ast.UnaryOp(op=ast.USub(), operand=x):
            return np.negative(_eval(x, env))
        case ast.UnaryOp(op=ast.UAdd(), operand=x):
            return _eval(x, env)
        case ast.UnaryOp(op=ast.Not(), operand=x):
            return np.logical_not(_eval(x, env))
        case ast.BoolOp(op=ast.And(), values=values):
            return np.logical_and.reduce([np.asarray(_eval(v, env)) for v in values])
        case ast.BoolOp(op=ast.Or(), values=values):
            return np.logical_or.reduce([np.asarray(_eval(v, env)) for v in values])
        case ast.Compare(left=left, ops=ops, comparators=rest):
            values = [_eval(v, env) for v in [left, *rest]]
            out = np.bool_(True)
            for op, a, b in zip(ops, values, values[1:]):
                out = np.logical_and(out, COMPARE[type(op)](a, b))
            return out
        case ast.IfExp(test=test, body=body, orelse=orelse):
            return np.where(_eval(test, env), _eval(body, env), _eval(orelse, env))
        case ast.Call(func=ast.Name(id=fn), args=args):
            return FUNCTIONS[fn](*[_eval(a, env) for a in args])
    raise AssertionError(f"unchecked node {ast.dump(node)}")  # _check admits nothing else
