"""How sure a per-input IIA measured on sampled partners is: Wilson score intervals.

With sampled partners an input's IIA is the share of successful interventions over the few
pairs it was measured on, an estimate of its IIA over all the task's pairs: an input measured
on 40 outcomes that all succeeded may still fail on a few pairs it was not measured on. The
Wilson interval stays inside [0, 1] and is not degenerate at 0 or 1 (where the normal
approximation gives a zero-width interval), which is where per-input IIA mostly lies.

Outcomes per entry (``outcomes``): with edge ``mean`` each of an input's pairs contributes its
two directed interventions, i←j and j←i, so ``trials = 2 * counts``; with edge ``both`` a pair is
one outcome (both directions succeeded, or not), so ``trials = counts``.

Caveat: the two directions of one pair involve the same two inputs and are not independent
draws, yet the interval counts them as two separate ones. For edge ``mean`` it is therefore
narrower than an interval over the pairs alone would be (by up to about a factor √2, when the
two directions always agree). Edge ``both`` has no such double counting. In either case the
partners are drawn without replacement from the task's finite set of inputs, which makes the
real spread a little smaller than the interval assumes.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from solver.data import IIADataError, PerInputIIA

# Edges and the outcomes one pair contributes under each (see the module's docstring).
OUTCOMES_PER_PAIR = {"mean": 2, "both": 1}


def z_value(confidence: float) -> float:
    """The two-sided normal quantile of ``confidence`` (1.96 for 0.95)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    return NormalDist().inv_cdf((1 + confidence) / 2)


def wilson_interval(
    successes: np.ndarray | float, trials: np.ndarray | float, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval (low, high) of ``successes`` out of ``trials``, elementwise
    over arrays that broadcast together (scalars give 0-d arrays). An entry with no trials
    says nothing: its interval is [0, 1]. 40 of 40 at 0.95 gives [0.9124, 1]."""
    s = np.asarray(successes, dtype=np.float64)
    n = np.asarray(trials, dtype=np.float64)
    if (n < 0).any() or (s < 0).any() or (s > n).any():
        raise ValueError("successes must lie in 0..trials, and trials must be non-negative")
    z2 = z_value(confidence) ** 2
    safe = np.where(n > 0, n, 1.0)  # no division by zero; those entries are replaced below
    p = s / safe
    denom = 1 + z2 / safe
    center = (p + z2 / (2 * safe)) / denom
    half = np.sqrt(z2) / denom * np.sqrt(p * (1 - p) / safe + z2 / (4 * safe**2))
    # Exactly 0 and 1 at the ends (round-off would leave -1e-17 or 0.9999999999999999).
    low = np.where(s == 0, 0.0, np.clip(center - half, 0.0, 1.0))
    high = np.where(s == n, 1.0, np.clip(center + half, 0.0, 1.0))
    empty = n == 0
    return np.where(empty, 0.0, low), np.where(empty, 1.0, high)


def outcomes(data: PerInputIIA, edge: str) -> tuple[np.ndarray, np.ndarray]:
    """(successes, trials) per entry [n, models] of per-input data built with ``edge`` from
    sampled partners (``intervention.iia.per_input_from_successes``): trials from the pair
    counts, successes = round(iia * trials)."""
    if data.counts is None:
        raise IIADataError(
            "per-input IIA without counts has no outcome counts: an interval needs how many "
            "pairs each entry was measured on (the service stores them; give 'counts')"
        )
    if edge not in OUTCOMES_PER_PAIR:
        raise IIADataError(f"unknown edge {edge!r}; choose one of {list(OUTCOMES_PER_PAIR)}")
    trials = data.counts * OUTCOMES_PER_PAIR[edge]
    successes = np.rint(data.iia * trials).astype(np.int64)
    return successes, trials


def lower_bounds(data: PerInputIIA, edge: str, confidence: float) -> np.ndarray:
    """The Wilson lower bound of every entry [n, models] at ``confidence``."""
    successes, trials = outcomes(data, edge)
    return wilson_interval(successes, trials, confidence)[0]


def at_lower_bound(data: PerInputIIA, edge: str, confidence: float) -> PerInputIIA:
    """``data`` with each entry replaced by its Wilson lower bound (counts and fallback kept):
    a floor met on these is met with that confidence per input, not only on the sample."""
    return PerInputIIA(
        lower_bounds(data, edge, confidence), data.models, data.counts, data.fallback
    )
