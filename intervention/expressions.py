"""Mechanisms written as expressions ("X + Y", "not A if B else C", "P + Z"), parsed and
evaluated by this module over an allow-list of syntax. Spec text is never given to ``eval``.

Allowed: numbers, booleans and strings, names, arithmetic (+ - * // % and unary -), comparisons
(chains too), ``and`` / ``or`` / ``not``, ``a if c else b``, and the functions in FUNCTIONS.
Evaluation is vectorised: names bind to numpy arrays and the result is an array.

Values have one of four kinds: bool, int (64-bit), float, str. The rules, checked on the
expression before it runs (``Expression.kind``) and again on the arrays it runs on:
- arithmetic, ``abs``, ``min`` and ``max`` take numbers; booleans count as 0 and 1 (as in Python,
  so ``A + B`` on booleans is a count, not an ``or``); strings are refused;
- ``==`` and ``!=`` compare numbers with numbers or strings with strings; ``< <= > >=`` take
  numbers only; a string is never compared with a number (it would always be unequal);
- ``and``, ``or``, ``not``, ``xor`` and the test of ``a if c else b`` take booleans or numbers
  (non-zero is true); the two branches of a conditional are both strings or both not;
- ``//`` and ``%`` by zero, and integer results outside 64 bits, are errors that name the
  expression and the inputs where they happen; numpy would silently give 0 or wrap around.
Text longer than MAX_CHARS or nested deeper than MAX_DEPTH is refused before it is parsed, so
hostile input meets a clear error instead of Python's recursion limit.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np


class ExpressionError(ValueError):
    """An expression that is not allowed or not well formed, or that cannot be evaluated on the
    values given; the message names the piece and the fix."""


MAX_CHARS = 2000  # a mechanism is a formula, not a program; longer text is refused unparsed
MAX_DEPTH = 100  # nesting of brackets and of the expression tree; both parser and evaluator recurse
INT_MIN, INT_MAX = int(np.iinfo(np.int64).min), int(np.iinfo(np.int64).max)
KINDS = ("bool", "int", "float", "str")

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
# The same operations on Python ints (exact, floor semantics like numpy's): the overflow check.
EXACT = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
SYMBOL = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//", ast.Mod: "%"}
COMPARE = {
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
}
COMPARE_SYMBOL = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
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


def _too_deep(text: str, depth: int | None) -> ExpressionError:
    seen = "" if depth is None else f" (nested {depth} deep)"
    shown = text if len(text) <= 80 else text[:60] + "..."
    return ExpressionError(
        f"mechanism {shown!r} is nested too deeply{seen}: at most {MAX_DEPTH} levels are "
        "allowed; split it into intermediate variables, each with its own mechanism"
    )


def _bracket_depth(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    return deepest


def _tree_depth(tree: ast.AST) -> int:
    # Iterative, so that measuring a deep tree cannot itself exhaust the stack.
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


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
        text = text.strip()
        if len(text) > MAX_CHARS:
            raise ExpressionError(
                f"mechanism {text[:60] + '...'!r} is {len(text)} characters long; at most "
                f"{MAX_CHARS} are allowed: split it into intermediate variables"
            )
        # Checked before parsing: Python's parser recurses on brackets too.
        if _bracket_depth(text) > MAX_DEPTH:
            raise _too_deep(text, _bracket_depth(text))
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError as exc:
            raise ExpressionError(
                f"mechanism {text!r} is not a valid expression: {exc.msg}"
            ) from None
        except (RecursionError, MemoryError):  # long chains of unary operators, say
            raise _too_deep(text, None) from None
        # Counted without the Expression wrapper: the depth the checker and evaluator recurse.
        depth = _tree_depth(tree.body)
        if depth > MAX_DEPTH:
            raise _too_deep(text, depth)
        names: set[str] = set()
        _check(tree.body, text, names)
        return cls(text, tree, frozenset(names))

    def kind(self, kinds: Mapping[str, str | None]) -> str | None:
        """The kind of the result ("bool", "int", "float" or "str") given the kinds of the names
        it reads (None where unknown, e.g. a callable's output); an operation the kinds do not
        support (arithmetic on strings, a string compared with a number) is an ExpressionError
        naming the operator and the variables."""
        missing = sorted(self.names - set(kinds))
        if missing:
            raise ExpressionError(f"mechanism {self.text!r} reads {missing}, which are not given")
        return _kind(self.tree.body, kinds, self.text)

    def __call__(self, env: Mapping[str, np.ndarray]) -> np.ndarray:
        missing = sorted(self.names - set(env))
        if missing:
            raise ExpressionError(f"mechanism {self.text!r} reads {missing}, which are not given")
        return np.asarray(_eval(self.tree.body, env, self.text))


def kind_of(values) -> str:
    """The kind of a domain's values; a mix of kinds (which numpy would quietly turn into
    strings or numbers) is an ExpressionError."""
    kinds = set()
    for v in np.asarray(values, dtype=object).ravel().tolist():
        if isinstance(v, bool | np.bool_):
            kinds.add("bool")
        elif isinstance(v, int | np.integer):
            kinds.add("int")
        elif isinstance(v, float | np.floating):
            kinds.add("float")
        elif isinstance(v, str):
            kinds.add("str")
        else:
            raise ExpressionError(
                f"value {v!r} of type {type(v).__name__} is not a bool, number or string"
            )
    if kinds == {"int", "float"}:
        return "float"
    if len(kinds) != 1:
        raise ExpressionError(
            f"values mix {sorted(kinds)}: give values of one kind (all booleans, all numbers "
            "or all strings)"
        )
    return kinds.pop()


def _check(node: ast.AST, text: str, names: set[str]) -> None:
    match node:
        case ast.Constant(value=bool()):
            return
        case ast.Constant(value=int(value)):
            if not INT_MIN <= value <= INT_MAX:
                raise ExpressionError(
                    f"integer {value} in mechanism {text!r} is outside the 64-bit range "
                    f"{INT_MIN}..{INT_MAX} that mechanisms compute in; use a smaller number"
                )
        case ast.Constant(value=float(value)):
            if not np.isfinite(value):
                raise ExpressionError(
                    f"number {ast.get_source_segment(text, node)!r} in mechanism {text!r} is "
                    "not finite; use a finite number"
                )
        case ast.Constant(value=str()):
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
            # abs takes one value; xor two (a third would be numpy's output argument).
            arity = {"abs": 1, "xor": 2}.get(fn)
            if arity is not None and len(args) != arity:
                raise ExpressionError(
                    f"{fn}() takes {arity} argument{'s' * (arity > 1)} in mechanism {text!r}, "
                    f"got {len(args)}"
                )
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
                "only numbers, booleans and strings"
            )
        case _:
            raise _refuse(node, text)


# -- kinds ------------------------------------------------------------------------------------


def _join(kinds: list[str | None]) -> str | None:
    """The kind numpy gives when numbers of these kinds meet: bool < int < float."""
    if any(k is None for k in kinds):
        return None
    return max(kinds, key=("bool", "int", "float").index)


def _kind(node: ast.AST, kinds: Mapping[str, str | None], text: str) -> str | None:
    # Each child's kind is computed once, so the walk stays linear in the size of the tree.
    def of(*operands: ast.AST) -> list[str | None]:
        return [_kind(v, kinds, text) for v in operands]

    def no_strings(what: str, operands: list[ast.AST], found: list[str | None]) -> None:
        if "str" in found:
            strings = sorted(
                {n.id for v in operands for n in ast.walk(v) if _is_str_name(n, kinds)}
            )
            holding = (
                f" ({', '.join(strings)} hold{'s' * (len(strings) == 1)} strings)"
                if strings
                else ""
            )
            piece = ast.get_source_segment(text, node) or what
            raise ExpressionError(
                f"mechanism {text!r} applies {what} to strings at {piece!r}{holding}; strings "
                "support only == and != with other strings and being chosen by 'a if c else b'"
            )

    match node:
        case ast.Constant(value=bool()):
            return "bool"
        case ast.Constant(value=int()):
            return "int"
        case ast.Constant(value=float()):
            return "float"
        case ast.Constant(value=str()):
            return "str"
        case ast.Name(id=name):
            return kinds[name]
        case ast.BinOp(left=left, op=op, right=right):
            found = of(left, right)
            no_strings(f"'{SYMBOL[type(op)]}'", [left, right], found)
            joined = _join(found)
            return None if joined is None else ("float" if joined == "float" else "int")
        case ast.UnaryOp(op=ast.Not(), operand=x):
            no_strings("'not'", [x], of(x))
            return "bool"
        case ast.UnaryOp(op=op, operand=x):
            found = of(x)
            no_strings("unary '-'" if isinstance(op, ast.USub) else "unary '+'", [x], found)
            return None if found[0] is None else ("float" if found[0] == "float" else "int")
        case ast.BoolOp(op=op, values=values):
            no_strings("'and'" if isinstance(op, ast.And) else "'or'", values, of(*values))
            return "bool"
        case ast.Compare(left=left, ops=ops, comparators=rest):
            operands = [left, *rest]
            found = of(*operands)
            for k, op in enumerate(ops):
                pair, ka, kb = operands[k : k + 2], found[k], found[k + 1]
                if "str" not in (ka, kb) or None in (ka, kb):
                    continue
                symbol = COMPARE_SYMBOL[type(op)]
                if type(op) not in (ast.Eq, ast.NotEq):
                    no_strings(f"'{symbol}'", pair, [ka, kb])
                if ka != kb:
                    piece = ast.get_source_segment(text, node) or symbol
                    raise ExpressionError(
                        f"mechanism {text!r} compares a string with a number at {piece!r} "
                        f"('{symbol}'), which is never equal; compare strings with strings "
                        "(in quotes: A == 'plus') and numbers with numbers"
                    )
            return "bool"
        case ast.IfExp(test=test, body=body, orelse=orelse):
            if of(test) == ["str"]:
                piece = ast.get_source_segment(text, test) or "the test"
                raise ExpressionError(
                    f"mechanism {text!r} uses the string {piece!r} as the test of 'a if c else "
                    f"b'; compare it instead, e.g. {piece} == 'value'"
                )
            kb, ko = of(body, orelse)
            if None in (kb, ko):
                return None
            if (kb == "str") != (ko == "str"):
                piece = ast.get_source_segment(text, node) or "a if c else b"
                raise ExpressionError(
                    f"mechanism {text!r} chooses between a string and a number at {piece!r}; "
                    "give both branches the same kind"
                )
            return "str" if kb == "str" else _join([kb, ko])
        case ast.Call(func=ast.Name(id=fn), args=args):
            found = of(*args)
            no_strings(f"{fn}()", args, found)
            if fn == "xor":
                return "bool"
            joined = _join(found)
            return "int" if fn == "abs" and joined == "bool" else joined
    raise AssertionError(f"unchecked node {ast.dump(node)}")  # _check admits nothing else


def _is_str_name(node: ast.AST, kinds: Mapping[str, str | None]) -> bool:
    return isinstance(node, ast.Name) and kinds.get(node.id) == "str"


# -- evaluation -------------------------------------------------------------------------------


def _at(env: Mapping[str, np.ndarray], mask: np.ndarray) -> str:
    """The inputs at the first place ``mask`` is true, e.g. "X=3, Y=0"."""
    arrays = {k: np.asarray(v) for k, v in env.items()}
    try:
        shape = np.broadcast_shapes(np.shape(mask), *(a.shape for a in arrays.values()))
        index = tuple(np.argwhere(np.broadcast_to(mask, shape))[0])
    except (ValueError, IndexError):
        return "some inputs"
    return ", ".join(f"{k}={np.broadcast_to(a, shape)[index].item()!r}" for k, a in arrays.items())


def _number(x, node: ast.AST, what: str, text: str) -> np.ndarray:
    """An operand of arithmetic: booleans count as 0 and 1, strings are refused."""
    a = np.asarray(x)
    if a.dtype == bool:
        return a.astype(np.int64)
    if a.dtype.kind not in "iuf":
        piece = ast.get_source_segment(text, node) or what
        raise ExpressionError(
            f"mechanism {text!r} applies {what} to values of type {a.dtype} at {piece!r}; "
            "arithmetic takes numbers and booleans"
        )
    return a


def _checked(node: ast.AST, text: str, env, fn, exact, *args: np.ndarray) -> np.ndarray:
    """``fn(*args)``, refusing a result numpy would wrap around (integers) or make infinite."""
    with np.errstate(all="ignore"):
        out = np.asarray(fn(*args))
    piece = ast.get_source_segment(text, node) or text
    if out.dtype.kind in "iu":
        info = np.iinfo(out.dtype)
        with np.errstate(all="ignore"):
            estimate = np.asarray(fn(*(a.astype(np.float64) for a in args)))
        low = info.min / 2 if info.min < 0 else -0.5
        # The float estimate is exact enough far from the bounds; near them, Python ints decide.
        near = ~((estimate <= info.max / 2) & (estimate >= low))
        if near.any():
            picked = [np.broadcast_to(a, out.shape)[near].tolist() for a in args]
            values = [exact(*xs) for xs in zip(*picked)]
            outside = np.zeros(out.shape, dtype=bool)
            outside[near] = [not info.min <= v <= info.max for v in values]
            if outside.any():
                raise ExpressionError(
                    f"mechanism {text!r} overflows {info.bits}-bit integers at {piece!r} for "
                    f"{_at(env, outside)} (the result leaves {info.min}..{info.max}); keep the "
                    "values smaller"
                )
    elif out.dtype.kind == "f":
        finite_in = np.logical_and.reduce([np.isfinite(a) for a in np.broadcast_arrays(*args)])
        blown = ~np.isfinite(out) & finite_in
        if blown.any():
            raise ExpressionError(
                f"mechanism {text!r} leaves the range of floats at {piece!r} for "
                f"{_at(env, blown)}; keep the values smaller"
            )
    return out


def _eval(node: ast.AST, env: Mapping[str, np.ndarray], text: str):
    match node:
        case ast.Constant(value=value):
            return value
        case ast.Name(id=name):
            return env[name]
        case ast.BinOp(left=left, op=op, right=right):
            what = f"'{SYMBOL[type(op)]}'"
            a = _number(_eval(left, env, text), node, what, text)
            b = _number(_eval(right, env, text), node, what, text)
            if isinstance(op, ast.FloorDiv | ast.Mod):
                zero = b == 0
                if np.any(zero):
                    piece = ast.get_source_segment(text, node) or text
                    raise ExpressionError(
                        f"mechanism {text!r} divides by zero at {piece!r} for {_at(env, zero)}; "
                        "guard the divisor, e.g. 'X // Y if Y != 0 else 0', or leave zero out "
                        "of its domain"
                    )
            return _checked(node, text, env, BINARY[type(op)], EXACT[type(op)], a, b)
        case ast.UnaryOp(op=ast.USub(), operand=x):
            a = _number(_eval(x, env, text), node, "unary '-'", text)
            return _checked(node, text, env, np.negative, operator.neg, a)
        case ast.UnaryOp(op=ast.UAdd(), operand=x):
            return _number(_eval(x, env, text), node, "unary '+'", text)
        case ast.UnaryOp(op=ast.Not(), operand=x):
            return _logical(np.logical_not, node, text, "'not'", _eval(x, env, text))
        case ast.BoolOp(op=op, values=values):
            fn = np.logical_and if isinstance(op, ast.And) else np.logical_or
            name = "'and'" if isinstance(op, ast.And) else "'or'"
            parts = [np.asarray(_eval(v, env, text)) for v in values]
            return _logical(
                lambda *xs: fn.reduce(np.broadcast_arrays(*xs)), node, text, name, *parts
            )
        case ast.Compare(left=left, ops=ops, comparators=rest):
            values = [_eval(v, env, text) for v in [left, *rest]]
            out = np.bool_(True)
            for op, a, b in zip(ops, values, values[1:]):
                try:
                    out = np.logical_and(out, COMPARE[type(op)](a, b))
                except TypeError:  # a string against a number: numpy has no loop for it
                    piece = ast.get_source_segment(text, node) or text
                    raise ExpressionError(
                        f"mechanism {text!r} compares values of types "
                        f"{np.asarray(a).dtype} and {np.asarray(b).dtype} at {piece!r} "
                        f"('{COMPARE_SYMBOL[type(op)]}'); compare strings with strings and "
                        "numbers with numbers"
                    ) from None
            return out
        case ast.IfExp(test=test, body=body, orelse=orelse):
            cond = _logical(
                np.asarray, node, text, "the test of 'a if c else b'", _eval(test, env, text)
            )
            return np.where(cond, _eval(body, env, text), _eval(orelse, env, text))
        case ast.Call(func=ast.Name(id="abs"), args=[arg]):
            a = _number(_eval(arg, env, text), node, "abs()", text)
            return _checked(node, text, env, np.abs, abs, a)
        case ast.Call(func=ast.Name(id="xor"), args=args):
            parts = [_eval(a, env, text) for a in args]
            return _logical(np.logical_xor, node, text, "xor()", *parts)
        case ast.Call(func=ast.Name(id=fn), args=args):  # min, max
            parts = [np.asarray(_eval(a, env, text)) for a in args]
            if any(p.dtype.kind not in "biuf" for p in parts):
                _number(next(p for p in parts if p.dtype.kind not in "biuf"), node, f"{fn}()", text)
            return FUNCTIONS[fn](*parts)
    raise AssertionError(f"unchecked node {ast.dump(node)}")  # _check admits nothing else


def _logical(fn, node: ast.AST, text: str, what: str, *xs) -> np.ndarray:
    """A logical operation: booleans and numbers (non-zero is true), never strings."""
    arrays = [np.asarray(x) for x in xs]
    for a in arrays:
        if a.dtype.kind not in "biuf":
            piece = ast.get_source_segment(text, node) or what
            raise ExpressionError(
                f"mechanism {text!r} applies {what} to values of type {a.dtype} at {piece!r}; "
                "logic takes booleans and numbers"
            )
    if fn is np.asarray:
        return arrays[0].astype(bool)
    return fn(*arrays)
