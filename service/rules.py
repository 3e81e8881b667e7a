"""Readable cells: one decision tree over the task's input variables that predicts, for every
input, the cell of a partition it falls in (a candidate's, or the fallback's), printed as one
rule per cell with how well that rule holds.

The tree is scikit-learn's ``DecisionTreeClassifier``; its depth is the smallest among
1..``max_depth`` whose cross-validated accuracy is within one standard error of the best
(short rules first, see ``_choose_depth``), and it is deterministic (fixed seeds). Features
are the input variables themselves: numbers as numbers (so a rule reads ``X <= 5``),
booleans as 0/1 (``A`` / ``not A``), other values one-hot (``W == 'a'``), so that every test
a rule makes names one variable and a value it takes."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.tree import DecisionTreeClassifier

MAX_DEPTH = 6
FOLDS = 5
# Rows used to choose the depth (and to fit the tree): a data task may have 1e5 rows, and a
# deterministic sample of this many gives the same depth at a fraction of the time.
MAX_ROWS = 20_000
# A non-numeric variable is one-hot encoded on its most frequent values only: a free-text
# column with thousands of values would otherwise add thousands of features, none of which
# makes a readable rule.
MAX_ONE_HOT = 32
RANDOM_STATE = 0


@dataclass(frozen=True)
class Rule:
    """The tree's rule for one cell: the disjunction of the paths to the leaves predicting it.

    ``accuracy`` is the share of all inputs whose membership in the cell the rule gets right
    (the cell against the rest); ``precision`` the share of the inputs the rule selects that
    are in the cell (0 when it selects none, scikit-learn's ``zero_division=0``), ``recall``
    the share of the cell the rule selects; ``support`` the cell's size."""

    text: str  # e.g. "X <= 5" or "(X <= 5 and Y > 3) or Z > 8"; "always" / "never"
    accuracy: float
    precision: float
    recall: float
    support: int


@dataclass(frozen=True)
class PartitionRules:
    """The tree for one partition: its depth, its accuracy on all inputs, the cross-validated
    accuracy that chose the depth (None when there are too few inputs to fold), how many
    inputs the choice used, and one rule per non-empty cell."""

    depth: int
    accuracy: float
    cv_accuracy: float | None
    cv_rows: int
    rules: dict[str, Rule] = field(default_factory=dict)

    def tree_dict(self, digits: int = 4) -> dict:
        """The tree's summary as plain JSON-able data (the rules are reported per cell)."""
        cv = None if self.cv_accuracy is None else round(self.cv_accuracy, digits)
        return {
            "depth": self.depth,
            "accuracy": round(self.accuracy, digits),
            "cv_accuracy": cv,
            "cv_rows": self.cv_rows,
        }

    def rule_dict(self, name: str, digits: int = 4) -> dict:
        """One cell's rule as plain JSON-able data: ``rule`` (the text) beside its numbers."""
        r = asdict(self.rules[name])
        return {
            "rule": r.pop("text"),
            **{k: (round(v, digits) if isinstance(v, float) else v) for k, v in r.items()},
        }


@dataclass(frozen=True)
class _Feature:
    """One column of the tree's input: ``kind`` "num" (the variable's value), "bool" (0/1),
    "eq" (1 where the variable equals ``value``) or "pair" (a two-valued variable: 1 where it
    equals ``value``, 0 where it equals ``other``)."""

    variable: str
    kind: str
    value: object = None
    other: object = None


def _literal(v) -> str:
    return repr(v.item() if isinstance(v, np.generic) else v)


def _encode(values: Mapping[str, np.ndarray]) -> tuple[np.ndarray, list[_Feature]]:
    columns, features = [], []
    for name, col in values.items():
        col = np.asarray(col)
        if col.dtype.kind == "b":
            columns.append(col.astype(np.float64))
            features.append(_Feature(name, "bool"))
        elif col.dtype.kind in "iuf":
            columns.append(col.astype(np.float64))
            features.append(_Feature(name, "num"))
        else:
            uniq, counts = np.unique(col, return_counts=True)
            if len(uniq) == 2:
                columns.append((col == uniq[0]).astype(np.float64))
                features.append(_Feature(name, "pair", uniq[0], uniq[1]))
                continue
            # Most frequent first, ties in sorted order (np.unique sorts; the sort is stable).
            for v in uniq[np.argsort(-counts, kind="stable")[:MAX_ONE_HOT]]:
                columns.append((col == v).astype(np.float64))
                features.append(_Feature(name, "eq", v))
    return np.column_stack(columns), features


def _sample(n: int, cap: int) -> np.ndarray:
    """A deterministic sample of at most ``cap`` row indices, in row order."""
    if n <= cap:
        return np.arange(n)
    return np.sort(np.random.default_rng(RANDOM_STATE).choice(n, cap, replace=False))


def _folds(y: np.ndarray, folds: int):
    """Stratified folds when every class has a member in each; plain shuffled folds
    otherwise (a cell of one input is common, and cannot be stratified)."""
    counts = np.bincount(y)
    counts = counts[counts > 0]
    k = min(folds, len(y))
    if counts.min() >= k:
        return StratifiedKFold(k, shuffle=True, random_state=RANDOM_STATE).split(y, y), k
    return KFold(k, shuffle=True, random_state=RANDOM_STATE).split(y), k


def _depth_accuracies(tree: DecisionTreeClassifier, X: np.ndarray, y: np.ndarray, depths):
    """Accuracy on (X, y) of ``tree`` cut at each depth: a node at the cut predicts its own
    majority class. A greedy tree's top levels do not depend on how deep it may grow (up to
    ties between equally good splits), so one fit per fold scores every depth, instead of one
    fit per fold and depth."""
    t = tree.tree_
    path = tree.decision_path(X)  # node ids along each row's path, root first (ids increase)
    start, length = path.indptr[:-1], np.diff(path.indptr)
    node_class = tree.classes_[np.argmax(t.value[:, 0, :], axis=1)]
    return [
        float(np.mean(node_class[path.indices[start + np.minimum(d, length - 1)]] == y))
        for d in depths
    ]


def _choose_depth(X: np.ndarray, y: np.ndarray, max_depth: int, folds: int):
    """The smallest depth whose mean cross-validated accuracy is within one standard error
    of the best depth's (the one-standard-error rule): a shorter rule that is as good as the
    folds can tell is preferred over a longer one that wins by noise."""
    splits, k = _folds(y, folds)
    if k < 2:
        return 1, None
    depths = range(1, max_depth + 1)
    scores = []
    for train, test in splits:
        tree = DecisionTreeClassifier(max_depth=max_depth, random_state=RANDOM_STATE)
        tree.fit(X[train], y[train])
        scores.append(_depth_accuracies(tree, X[test], y[test], depths))
    scores = np.asarray(scores)  # [fold, depth]
    mean = scores.mean(axis=0)
    best = int(np.argmax(mean))
    se = scores[:, best].std(ddof=1) / math.sqrt(k)
    chosen = int(np.flatnonzero(mean >= mean[best] - se - 1e-12)[0])
    return depths[chosen], float(mean[chosen])


def _threshold(sorted_values: np.ndarray, t: float) -> str:
    """The shortest number r with ``x <= r`` true of exactly the variable's values with
    ``x <= t``: any r from the largest value at or below t up to (not including) the next
    value splits the inputs the same way, so an integer variable reads ``X <= 5``, not 5.5."""
    i = int(np.searchsorted(sorted_values, t, side="right"))
    lo = float(sorted_values[i - 1]) if i > 0 else -math.inf
    hi = float(sorted_values[i]) if i < len(sorted_values) else math.inf
    if not math.isfinite(lo):
        return f"{t:g}"
    for d in range(-6, 16):  # coarsest first: hundreds, tens, units, tenths, ...
        # The small slack keeps float error from rounding 0.3 up to 0.4 (0.3 * 10 > 3).
        r = math.ceil(lo * 10.0**d - 1e-9) / 10.0**d
        if lo - 1e-9 * max(1.0, abs(lo)) <= r < hi:
            return str(int(r)) if d <= 0 or r == int(r) else f"{r:.{d}f}"
    return repr(lo)


class _Printer:
    def __init__(self, values: Mapping[str, np.ndarray], features: list[_Feature]):
        self.features = features
        self.order = {name: k for k, name in enumerate(values)}
        self.sorted = {
            f.variable: np.unique(np.asarray(values[f.variable], dtype=np.float64))
            for f in features
            if f.kind == "num"
        }

    def normal(self, path: list[tuple[int, bool, float]]) -> frozenset:
        """A leaf's path, ``(feature, went_left, threshold)`` per split, without the tests
        another on it implies: the looser bound on a number, and the inequalities of a
        variable whose equality to a value it also tests."""
        upper: dict[int, float] = {}
        lower: dict[int, float] = {}
        kept = set()
        equal = {
            self.features[k].variable
            for k, left, _ in path
            if self.features[k].kind == "eq" and not left
        }
        for k, left, t in path:
            f = self.features[k]
            if f.kind == "num":
                bounds = upper if left else lower
                bounds[k] = (min if left else max)(bounds.get(k, t), t)
            elif not (f.kind == "eq" and left and f.variable in equal):
                kept.add((k, left, t))
        kept |= {(k, True, t) for k, t in upper.items()}
        kept |= {(k, False, t) for k, t in lower.items()}
        return frozenset(kept)

    def conjunction(self, tests) -> str:
        """A conjunction of tests ``(feature, went_left, threshold)`` as text: the
        tightest bound per number, one equality per value, in variable order."""
        upper: dict[str, float] = {}
        lower: dict[str, float] = {}
        equal: dict[str, str] = {}
        unequal: dict[str, list[str]] = {}
        truth: dict[str, bool] = {}
        for k, left, t in tests:
            f = self.features[k]
            v = f.variable
            if f.kind == "num":
                if left:
                    upper[v] = min(upper.get(v, math.inf), t)
                else:
                    lower[v] = max(lower.get(v, -math.inf), t)
            elif f.kind == "bool":
                truth[v] = not left  # left is x <= 0.5: False
            elif f.kind == "pair":
                equal[v] = _literal(f.other if left else f.value)
            elif left:
                unequal.setdefault(v, []).append(_literal(f.value))
            else:
                equal[v] = _literal(f.value)
        parts = []
        for v in sorted({*upper, *lower, *equal, *unequal, *truth}, key=self.order.get):
            if v in truth:
                parts.append(v if truth[v] else f"not {v}")
            elif v in equal:  # an equality implies every inequality on the same variable
                parts.append(f"{v} == {equal[v]}")
            elif v in unequal:
                ne = sorted(set(unequal[v]))
                parts.append(f"{v} != {ne[0]}" if len(ne) == 1 else f"{v} not in ({', '.join(ne)})")
            else:
                above = _threshold(self.sorted[v], lower[v]) if v in lower else None
                below = _threshold(self.sorted[v], upper[v]) if v in upper else None
                if above is not None and below is not None:
                    parts.append(f"{above} < {v} <= {below}")
                elif below is not None:
                    parts.append(f"{v} <= {below}")
                else:
                    parts.append(f"{v} > {above}")
        return " and ".join(parts)


def _leaves(tree: DecisionTreeClassifier) -> list[tuple[list[tuple[int, bool, float]], int]]:
    """(path, predicted class index) of each leaf, left to right; a subtree whose leaves all
    predict one class counts as one leaf (the splits inside it change no prediction)."""
    t = tree.tree_
    # Classes as the labels number them: a class the fitted sample lacks has no column.
    predicted = tree.classes_[np.argmax(t.value[:, 0, :], axis=1)]
    uniform: dict[int, int | None] = {}

    def single(node: int) -> int | None:
        if node not in uniform:
            left, right = t.children_left[node], t.children_right[node]
            if left < 0:
                uniform[node] = int(predicted[node])
            else:
                a, b = single(left), single(right)
                uniform[node] = a if a is not None and a == b else None
        return uniform[node]

    out = []

    def walk(node: int, path: list) -> None:
        if single(node) is not None:
            out.append((path, uniform[node]))
            return
        f, thr = int(t.feature[node]), float(t.threshold[node])
        walk(t.children_left[node], [*path, (f, True, thr)])
        walk(t.children_right[node], [*path, (f, False, thr)])

    walk(0, [])
    return out


def _shorten(a: frozenset, b: frozenset) -> frozenset:
    """``b`` without a test that ``a`` makes unneeded in ``a or b``: where ``a`` is
    ``P and x`` and ``b`` holds ``not x`` besides all of ``P``, the inputs ``b`` would gain
    without ``not x`` satisfy ``P and x`` already, so ``X <= 9 or (X > 9 and Y <= 5)`` reads
    ``X <= 9 or Y <= 5``."""
    for k, left, t in a:
        negated = (k, not left, t)
        if negated in b and a - {(k, left, t)} <= b - {negated}:
            return b - {negated}
    return b


def _merge(conjunctions: list[frozenset]) -> list[frozenset]:
    """The same disjunction, shorter: tests another conjunction makes unneeded are dropped
    (``_shorten``; ``(A and x) or (A and not x)``, two sides of a split on which the tree
    predicts the same deeper down, becomes ``A or A``), then a conjunction that contains
    another (``A or (A and B)`` is ``A``)."""
    out = list(dict.fromkeys(conjunctions))
    changed = True
    while changed:
        changed = False
        for i, j in itertools.permutations(range(len(out)), 2):
            a, b = out[i], out[j]
            if a <= b:
                del out[j]
            elif (shorter := _shorten(a, b)) != b:
                out[j] = shorter
            else:
                continue
            out = list(dict.fromkeys(out))
            changed = True
            break
    return out


def partition_rules(
    values: Mapping[str, np.ndarray],
    labels: np.ndarray,
    names: Sequence[str],
    *,
    max_depth: int = MAX_DEPTH,
    folds: int = FOLDS,
    max_rows: int = MAX_ROWS,
) -> PartitionRules:
    """Fit the tree predicting ``labels`` (cell indices into ``names``, one per input) from
    the input variables ``values`` and print a rule for every cell with members.

    The depth is chosen on a deterministic sample of at most ``max_rows`` inputs, and the
    tree of that depth is fitted on the same sample; accuracies, precision and recall are
    measured on all inputs."""
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    present = np.unique(labels)
    if len(present) == 1:  # one cell holds every input: nothing to separate
        rule = Rule("always", 1.0, 1.0, 1.0, n)
        return PartitionRules(0, 1.0, None, 0, {names[int(present[0])]: rule})
    X, features = _encode(values)
    rows = _sample(n, max_rows)
    # Class indices renumbered 0..k-1, so the folds' bincount and the tree see k classes.
    y = np.searchsorted(present, labels)
    depth, cv = _choose_depth(X[rows], y[rows], max_depth, folds)
    tree = DecisionTreeClassifier(max_depth=depth, random_state=RANDOM_STATE)
    tree.fit(X[rows], y[rows])
    predicted = tree.predict(X)
    printer = _Printer(values, features)
    leaves = _leaves(tree)
    rules = {}
    for c, label in enumerate(present.tolist()):
        member, chosen = y == c, predicted == c
        merged = _merge([printer.normal(p) for p, k in leaves if k == c])
        paths = [printer.conjunction(sorted(p)) for p in merged]
        if not paths:
            text = "never"
        elif any(p == "" for p in paths):  # the root itself predicts the cell
            text = "always"
        elif len(paths) == 1:
            text = paths[0]
        else:
            text = " or ".join(f"({p})" if " and " in p else p for p in paths)
        hit = int((member & chosen).sum())
        rules[names[label]] = Rule(
            text,
            accuracy=float((member == chosen).mean()),
            precision=hit / int(chosen.sum()) if chosen.any() else 0.0,
            recall=hit / int(member.sum()),
            support=int(member.sum()),
        )
    return PartitionRules(depth, float((predicted == y).mean()), cv, len(rows), rules)
