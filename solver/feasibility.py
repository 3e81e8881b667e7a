"""One definition of "a cell meets the floor", shared by every solver and by the verifier.

A cell S of model m meets floor λ when its mean pairwise weight over unordered pairs
i < j in S is at least λ (pairwise semantics), or its mean per-input IIA is at least λ
(per-input semantics). Sums are compared as ``total >= λ·count − TOL·count`` so that
floating-point noise in incrementally maintained sums never flips a verdict.
"""

from __future__ import annotations

TOL = 1e-9
MIN_PAIRWISE_CELL = 2  # a cell of one input has no pair, so no IIA


def meets_floor(total: float, count: float, floor: float) -> bool:
    """``total / count >= floor`` up to TOL on the mean; an empty sum (count 0) is vacuous."""
    if count <= 0:
        return True
    return total - floor * count >= -TOL * count
