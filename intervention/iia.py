"""From successes to the solver's data types.

A pair design lists ordered (base, source) pairs; the engine scores them in shards (lists of
pair indices) whose results depend only on their pairs, so any worker may run any shard and a
retried shard gives the same bytes. Successes then fold into:
- the pairwise tensor: w[m, i, j] = ½(s(i, j) + s(j, i)) over all ordered pairs;
- the per-input matrix: a[i, m] = mean of w over k sampled partners of i, with the counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from solver import PairwiseIIA, PerInputIIA


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
        base, source = np.divmod(np.arange(n * n, dtype=np.int64), n)
        keep = base != source  # w(i, i) does not exist
        return cls(n, base[keep], source[keep])

    @classmethod
    def sampled(cls, n: int, k: int, seed: int) -> PairDesign:
        """k distinct partners j ≠ i per input i, each pair scored in both directions."""
        if not 1 <= k <= n - 1:
            raise ValueError(f"partners per input must be in 1..{n - 1}, got {k}")
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


def per_input_from_successes(
    design: PairDesign, successes: Sequence[np.ndarray], models: Sequence[str], fallback: str | None
) -> PerInputIIA:
    """a[i, m] = mean over i's partners j of ½(s(i, j) + s(j, i)), with the partner counts."""
    n = design.n_inputs
    if design.partners is None:  # all pairs: the row means of the tensor
        return pairwise_from_successes(design, successes, models, fallback).to_per_input()
    k = design.partners
    half = n * k  # first half: (i, j); second half: (j, i) in the same order
    iia = np.zeros((n, len(models)))
    for m, s in enumerate(successes):
        w = (s[:half].astype(float) + s[half:]) / 2
        iia[:, m] = w.reshape(n, k).mean(axis=1)
    counts = np.full(iia.shape, k, dtype=np.int64)
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
