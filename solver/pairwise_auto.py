"""``auto`` for the pairwise semantics: a proven upper bound, a local search from the best
start we hold, and, on instances small enough, the exact program to close the gap."""

from __future__ import annotations

import math
import time

import numpy as np

from solver.certificate import Certificate
from solver.pairwise_bounds import pairwise_upper_bound
from solver.pairwise_exact import solve_pairwise_exact
from solver.pairwise_search import improve_pairwise

BOUND_SHARE = 0.2  # of the time limit, at most BOUND_CAP seconds, goes to the upper bound
BOUND_CAP = 10.0
SEARCH_SHARE_WHEN_EXACT = 0.3  # on small instances the exact program gets the rest


def _strength(assignment: np.ndarray) -> int:
    return int((assignment >= 0).sum())


def solve_pairwise_auto(
    w: np.ndarray,
    floor: float,
    scope: str,
    *,
    start: np.ndarray,
    solver: str,
    time_limit: float,
    seed: int,
    exact_max_inputs: int,
) -> tuple[np.ndarray, Certificate]:
    started = time.perf_counter()
    n = w.shape[1]
    small = n <= exact_max_inputs

    def left() -> float:
        return time_limit - (time.perf_counter() - started)

    bound, how = pairwise_upper_bound(
        w, floor, scope, time_limit=min(BOUND_CAP, BOUND_SHARE * time_limit)
    )
    best, parts = start, ["start"]
    # Strength is an integer: a start that reaches the floored bound is already optimal.
    if _strength(best) < math.floor(bound + 1e-6) and left() > 0:
        budget = left() * (SEARCH_SHARE_WHEN_EXACT if small else 1.0)
        best = improve_pairwise(
            w,
            floor,
            scope,
            start=best,
            time_limit=budget,
            seed=seed,
            stop_at=math.floor(bound + 1e-6),
        )
        parts = ["local search"]
    if small and _strength(best) < math.floor(bound + 1e-6) and left() > 1.0:
        exact, cert = solve_pairwise_exact(
            w, floor, scope, solver=solver, time_limit=left(), warm_start=best
        )
        if _strength(exact) >= _strength(best):
            best = exact
        if cert.bound is not None and cert.bound < bound:
            bound, how = cert.bound, f"exact program ({cert.solver}, {cert.status})"
        parts.append(f"exact program ({cert.solver})")
    return best, Certificate.build(
        method="auto",
        solver=" + ".join(parts),
        objective=_strength(best),
        bound=bound,
        seconds=time.perf_counter() - started,
        note=f"bound: {how}",
    )
