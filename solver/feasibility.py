"""One definition of "a cell meets the floor", shared by every solver and by the verifier,
and the names of the semantics and floor scopes every layer accepts.

A cell S of model m meets floor λ when its mean pairwise weight over unordered pairs
i < j in S is at least λ (pairwise semantics), or its mean per-input IIA is at least λ
(per-input semantics). Sums are compared as ``total >= λ·count − tol·count`` so that
floating-point noise in incrementally maintained sums never flips a verdict.
"""

from __future__ import annotations

import numpy as np

SEMANTICS: tuple[str, ...] = ("pairwise", "per-input")
SCOPES: tuple[str, ...] = ("per-model", "global")

TOL = 1e-9
# Searches and repairs decide with half the verifier's tolerance, so that sums recomputed
# in another order by the final check can never flip a verdict taken inside a solver.
SEARCH_TOL = 0.5 * TOL
MIN_PAIRWISE_CELL = 2  # a cell of one input has no pair, so no IIA


def meets_floor(total, count, floor, tol=TOL):
    """``total / count >= floor`` up to ``tol`` on the mean; an empty sum (count 0) is
    vacuous. Works on scalars and elementwise on numpy arrays, and compiles under numba
    (the annealing kernels use this very function)."""
    return np.logical_or(count <= 0, total - floor * count >= -tol * count)
