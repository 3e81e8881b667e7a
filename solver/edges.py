"""Edge semantics: what a pair of inputs counts for a model.

- ``mean`` (the paper's): w(i, j) = ½(s(i←j) + s(j←i)), so a pair where one direction succeeds
  counts one half;
- ``both`` ("Bucketing the Good Apples", arXiv 2605.02234): an edge only where both directions
  succeed, w(i, j) = s(i←j)·s(j←i) ∈ {0, 1}; a cell then is a γ-quasi-clique of those edges.

``both`` is a transform of the data, applied before any solve, so the exact program, the bounds
and the search all see the same weights. It needs what the pair's two successes were: pairwise
weights in {0, ½, 1} (w = 1 exactly when both succeeded), or the successes themselves
(``intervention.iia``); a per-input matrix has already averaged them away.
"""

from __future__ import annotations

import numpy as np

from solver.data import IIADataError, PairwiseIIA, PerInputIIA
from solver.sparse_data import SparsePairwiseIIA

EDGES = ("mean", "both")
# Weights within this of 0, ½ or 1 count as one success per direction (stored files hold 2w as
# integers, or w as floats that went through one division by 2).
_TOLERANCE = 1e-9


def both_edges(data: PairwiseIIA | PerInputIIA) -> PairwiseIIA:
    """``data`` with an edge only where both directions succeeded: w ← 1 where w = 1, else 0."""
    if isinstance(data, PerInputIIA):
        raise IIADataError(
            "edge 'both' needs each pair's two successes, and a per-input matrix has averaged "
            "them over the pairs: give the pairwise tensor (or run the job with solve.edge = "
            "'both', which builds its data from the successes)"
        )
    w = data.weights
    halves = np.round(w * 2)
    off = np.abs(w * 2 - halves) > 2 * _TOLERANCE
    if off.any():
        m, i, j = (int(x) for x in np.argwhere(off)[0])
        raise IIADataError(
            f"edge 'both' reads w = 1 as 'both directions succeeded', which needs weights in "
            f"{{0, 0.5, 1}} (one success per direction); w[{m}, {i}, {j}] = {w[m, i, j]:g} is "
            "an average over more samples: use edge 'mean'"
        )
    return PairwiseIIA((halves == 2).astype(np.float64), data.models, data.fallback)


def apply_edge(data: PairwiseIIA | PerInputIIA | SparsePairwiseIIA, edge: str):
    """The data as ``edge`` reads it (``mean``: unchanged)."""
    if edge == "mean":
        return data
    if edge == "both":
        return data.both_edges() if isinstance(data, SparsePairwiseIIA) else both_edges(data)
    raise IIADataError(f"unknown edge {edge!r}; choose one of {list(EDGES)}")
