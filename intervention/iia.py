"""From successes to the solver's data types.

A pair design lists ordered (base, source) pairs; the engine scores them in shards (lists of
pair indices) whose results depend only on their pairs, so any worker may run any shard and a
retried shard gives the same bytes. Successes then fold into:
- the pairwise tensor: w[m, i, j] = ½(s(i, j) + s(j, i)) over all ordered pairs;
- the per-input matrix: a[i, m] = mean of w over the sampled pairs that hold i, at either end,
  with the counts (how many such pairs each input has).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from solver import PairwiseIIA, PerInputIIA

# The all-pairs design keeps an n x n grid per model (and scores n(n-1) pairs): beyond this many
# inputs that is gigabytes, so larger tasks sample partners instead.
MAX_ALL_PAIRS_INPUTS = 4096
# Ordered pairs scored per model; the design's index arrays alone take 16 bytes a pair.
MAX_PAIRS = 50_000_000


class DesignError(ValueError):
    """A pair design too large to hold or not possible for the task; the message says which."""


def all_pairs_problem(n: int) -> str | None:
    """Why the all-pairs design cannot serve ``n`` inputs, or None when it can."""
    if n > MAX_ALL_PAIRS_INPUTS:
        return (
            f"the all-pairs design scores n(n-1) = {n * (n - 1):,} pairs and keeps an n x n grid "
            f"per model; {n:,} inputs is more than its limit of {MAX_ALL_PAIRS_INPUTS:,}: "
            "sample partners instead (pairs.design = 'sampled', pairs.partners = k)"
        )
    return None


def sampled_problem(n: int, k: int) -> str | None:
    """Why ``k`` sampled partners per input cannot serve ``n`` inputs, or None when they can."""
    if not 1 <= k <= n - 1:
        return f"partners per input must be in 1..{n - 1} for {n:,} inputs, got {k}"
    if 2 * n * k > MAX_PAIRS:
        return (
            f"{k} partners for each of {n:,} inputs are {2 * n * k:,} ordered pairs, more than "
            f"the limit of {MAX_PAIRS:,} per model: use at most {MAX_PAIRS // (2 * n)} partners"
        )
    return None


@dataclass(frozen=True)
class PairDesign:
    """Ordered (base, source) pairs to score; ``partners`` is None for all pairs, else k."""

    n_inputs: int
    base: np.ndarray
    source: np.ndarray
    partners: int | None = None
    seed: int | None = None

    @classmethod
    def all_pairs(cls, n: int) -> PairDesign:
        problem = all_pairs_problem(n)
        if problem:
            raise DesignError(problem)
        base, source = np.divmod(np.arange(n * n, dtype=np.int64), n)
        keep = base != source  # w(i, i) does not exist
        return cls(n, base[keep], source[keep])

    @classmethod
    def sampled(cls, n: int, k: int, seed: int) -> PairDesign:
        """k distinct partners j ≠ i per input i, each pair scored in both directions."""
        problem = sampled_problem(n, k)
        if problem:
            raise DesignError(problem)
        rng = np.random.default_rng(seed)
        # Draw from 0..n-2 and skip i itself: uniform over the other inputs, no repeats.
        draws = np.stack([rng.choice(n - 1, size=k, replace=False) for _ in range(n)])
        partners = draws + (draws >= np.arange(n)[:, None])
        i = np.repeat(np.arange(n, dtype=np.int64), k)
        j = partners.ravel().astype(np.int64)
        return cls(n, np.concatenate([i, j]), np.concatenate([j, i]), k, seed)

    def __len__(self) -> int:
        return len(self.base)

    def shards(self, size: int) -> list[np.ndarray]:
        """Pair indices in consecutive shards of at most ``size`` pairs."""
        return [
            np.arange(s, min(s + size, len(self)), dtype=np.int64)
            for s in range(0, len(self), size)
        ]


def pairwise_from_successes(
    design: PairDesign, successes: Sequence[np.ndarray], models: Sequence[str], fallback: str | None
) -> PairwiseIIA:
    """The pairwise tensor from successes over ``PairDesign.all_pairs`` (one array per model)."""
    if design.partners is not None:
        raise ValueError("the pairwise tensor needs the all-pairs design")
    n = design.n_inputs
    w = np.zeros((len(models), n, n))
    for m, s in enumerate(successes):
        grid = np.zeros((n, n))
        grid[design.base, design.source] = s
        w[m] = (grid + grid.T) / 2
    return PairwiseIIA(w, tuple(models), fallback)


def sparse_from_successes(
    design: PairDesign, successes: Sequence[np.ndarray], models: Sequence[str], fallback: str | None
):
    """The sparse pair tensor (``solver.SparsePairwiseIIA``) from successes over a sampled
    design: one entry per unordered pair {i, j} the design scored, however many times and from
    which end it was drawn, w = ½(s(i←j) + s(j←i)) (each pair is scored in both directions).
    Pairs the design did not score are absent, never zero."""
    from solver.sparse_data import SparsePairwiseIIA

    if design.partners is None:
        raise ValueError("the sparse pair tensor is for sampled designs; all pairs give the dense")
    n, half = design.n_inputs, design.n_inputs * design.partners
    i, j = design.base[:half], design.source[:half]
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    _, first = np.unique(lo * n + hi, return_index=True)
    pairs = np.stack([lo[first], hi[first]], axis=1)
    weights = np.stack([(s[:half].astype(float) + s[half:])[first] / 2 for s in successes])
    return SparsePairwiseIIA(pairs, weights, tuple(models), n, fallback)


def per_input_from_successes(
    design: PairDesign,
    successes: Sequence[np.ndarray],
    models: Sequence[str],
    fallback: str | None,
    edge: str = "mean",
) -> PerInputIIA:
    """a[i, m] = mean of w(i, j) = ½(s(i, j) + s(j, i)) over the distinct partners j that i is
    paired with in the design, at either end: the pairs i drew and the pairs that drew i. So an
    input drawn often as a partner is measured on more pairs, not fewer; ``counts[i, m]`` holds
    how many (at least k). A pair drawn from both ends counts once. ``edge = "both"``: a pair
    counts 1 only where both directions succeed (``solver.edges``), else 0."""
    from solver.edges import apply_edge

    n = design.n_inputs
    if design.partners is None:  # all pairs: the row means of the tensor
        data = pairwise_from_successes(design, successes, models, fallback)
        return apply_edge(data, edge).to_per_input()
    k = design.partners
    half = n * k  # first half: (i, j); second half: (j, i) in the same order
    i, j = design.base[:half], design.source[:half]
    # One row per unordered pair {i, j}, however many times (and from which end) it was drawn.
    lo, hi = np.minimum(i, j), np.maximum(i, j)
    _, first = np.unique(lo * n + hi, return_index=True)
    a, b = lo[first], hi[first]
    counts = np.bincount(a, minlength=n) + np.bincount(b, minlength=n)
    iia = np.zeros((n, len(models)))
    for m, s in enumerate(successes):
        if edge == "both":
            w = (s[:half] & s[half:])[first].astype(float)
        elif edge == "mean":
            w = (s[:half].astype(float) + s[half:])[first] / 2
        else:
            raise ValueError(f"unknown edge {edge!r}; choose mean or both")
        iia[:, m] = (np.bincount(a, w, minlength=n) + np.bincount(b, w, minlength=n)) / counts
    counts = np.repeat(counts[:, None], len(models), axis=1).astype(np.int64)
    return PerInputIIA(iia, tuple(models), counts, fallback)


def score_shard(engine, task, model, rotation, design: PairDesign, shard: np.ndarray) -> np.ndarray:
    """Successes of one candidate on one shard of the design."""
    base, source = design.base[shard], design.source[shard]
    labels = task.counterfactual_labels(model, base, source)
    return engine.successes(base, source, rotation, labels)


def score_design(
    engine, task, alignments, design: PairDesign, shard_size: int = 65536, progress=None
):
    """Successes of every aligned candidate over the whole design, in process (the service
    spreads the same shards over Ray actors). ``alignments`` maps candidate models to rotations."""
    out = []
    for model, rotation in alignments:
        parts = []
        for shard in design.shards(shard_size):
            parts.append(score_shard(engine, task, model, rotation, design, shard))
            if progress is not None:
                progress(model.name, len(shard))
        out.append(np.concatenate(parts) if parts else np.zeros(0, dtype=bool))
    return out
