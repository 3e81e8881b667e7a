"""A short readable rule per cell: a depth-2 decision tree over the input variables that
separates the cell's inputs from the rest, with its accuracy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Rule:
    text: str  # e.g. "X <= 3 and Y >= 7"; "always" / "never" for trivial cells
    accuracy: float  # share of all inputs whose membership the rule predicts correctly


# Tests tried per variable. A data task's column may hold thousands of values (1e5 rows): an
# equality test per value, each over every row, would take minutes for a rule of two tests.
MAX_EQUALITY_TESTS = 32
MAX_THRESHOLDS = 64


def _conditions(values: Mapping[str, np.ndarray]):
    """Candidate tests (text, negated text, mask): thresholds for numbers (at most
    MAX_THRESHOLDS, at quantiles), equality otherwise (none past MAX_EQUALITY_TESTS values)."""
    for name, col in values.items():
        col = np.asarray(col)
        uniq = np.unique(col)
        if len(uniq) == 2:  # two values: the negation names the other one
            yield f"{name} == {uniq[0].item()!r}", f"{name} == {uniq[1].item()!r}", col == uniq[0]
        elif col.dtype.kind not in "iuf":
            if len(uniq) > MAX_EQUALITY_TESTS:
                continue
            for v in uniq:
                yield f"{name} == {v.item()!r}", f"{name} != {v.item()!r}", col == v
        else:
            cuts = uniq[:-1]
            if len(cuts) > MAX_THRESHOLDS:
                at = np.linspace(0, 1, MAX_THRESHOLDS)
                cuts = np.unique(np.quantile(cuts, at, method="lower"))
            for t in cuts:
                above = uniq[uniq > t][0].item()
                yield f"{name} <= {t.item()}", f"{name} >= {above}", col <= t


def _gini(labels: np.ndarray) -> float:
    p = labels.mean()
    return 2 * p * (1 - p)


def _best_split(values, target, mask):
    best = None
    for text, negated, test in _conditions(values):
        a, b = mask & test, mask & ~test
        if not a.any() or not b.any():
            continue
        # Gini impurity, weighted by size: unlike the error count it rewards a split that
        # purifies one side even when both sides keep the same majority.
        err = _gini(target[a]) * a.sum() + _gini(target[b]) * b.sum()
        if best is None or err < best[0]:
            best = (err, text, negated, test)
    return best


def _grow(values, member, mask, depth) -> list[tuple[list[str], np.ndarray]]:
    """(tests, mask) of the positive leaves below ``mask``; a split whose two sides predict
    the same is not made, so the rule stays as short as the tree allows."""
    positive = member[mask].mean() > 0.5
    pure = member[mask].all() or not member[mask].any()
    split = None if depth == 0 or pure else _best_split(values, member, mask)
    if split is None:
        return [([], mask)] if positive else []
    _, text, negated, test = split
    left = _grow(values, member, mask & test, depth - 1)
    right = _grow(values, member, mask & ~test, depth - 1)
    if [p for p, _ in left] == [[]] and [p for p, _ in right] == [[]]:
        return [([], mask)]  # both sides positive: the split says nothing
    return [([text, *p], m) for p, m in left] + [([negated, *p], m) for p, m in right]


def cell_rule(values: Mapping[str, np.ndarray], member: np.ndarray, depth: int = 2) -> Rule:
    """The depth-limited tree's positive leaves, as a disjunction of conjunctions."""
    member = np.asarray(member, dtype=bool)
    if member.all() or not member.any():
        return Rule("always" if member.all() else "never", 1.0)
    leaves = _grow(values, member, np.ones_like(member), depth)
    predicted = np.zeros_like(member)
    for _, mask in leaves:
        predicted |= mask
    texts = [" and ".join(p) or "always" for p, _ in leaves]
    text = " or ".join(f"({t})" if " and " in t and len(texts) > 1 else t for t in texts)
    return Rule(text or "never", float((predicted == member).mean()))
