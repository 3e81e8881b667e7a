"""The exact MILP for per-input semantics, built with PuLP (any PuLP solver) or straight
through highspy's array API (fast model build at scale).

Variables x[i, m] in {0, 1} (input i in the cell of model m), optionally y[m] in {0, 1}
(model m has a non-empty cell) when ``max_models`` or ``min_cell`` asks for it.

Two phases, because one lexicographic objective Σ x + ε Σ a x is slow to prove: its bound
is fractional, so a knapsack-like gap of one unit of strength (LP 698.03 against 697 on
the real data at λ = 0.9) keeps branch and bound busy for minutes, while the pure
strength objective has integer costs, which both HiGHS and CBC exploit to close the same
gap at once (0.2 s). Phase 1 maximises Σ x; phase 2 (``min_strength`` given) maximises
Σ a x subject to Σ x >= the phase-1 strength, as a best-effort tie-break.

Every function here returns raw solver output (``MilpResult``); checking and repairing the
partition, and turning the bound into a ``Certificate``, is the caller's job
(``solver.per_input``), because solvers accept constraint violations up to their own
tolerance.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import highspy
import numpy as np
import pulp

from solver.backends import check_solver_name, solve_with_pulp
from solver.feasibility import TOL
from solver.highs_child import MipRequest, run_mip
from solver.memory import check_per_input_memory


@dataclass
class MilpResult:
    """What a MILP run left: the incumbent (``None`` when there is none), a proven upper
    bound on the objective of the phase (strength, or total IIA in phase 2; ``None`` when
    the solver gives none), and the solver's own words on how it stopped."""

    assign: np.ndarray | None
    bound: float | None
    proven_optimal: bool
    status: str
    solver: str
    seconds: float
    timed_out: bool = False  # the time limit, not the work budget, ended the run


def _objective(a: np.ndarray, assign: np.ndarray, min_strength: int | None) -> float:
    rows = np.flatnonzero(assign >= 0)
    return float(len(rows)) if min_strength is None else float(a[rows, assign[rows]].sum())


def _start_mismatch(reported: float, a, assign, min_strength) -> bool:
    """HiGHS 1.16 bug: with a MIP start that presolve improves ("MIP start solution is
    feasible in the reduced space: objective value is 5"), it can stop at once reporting
    the improved objective while handing back the unimproved start (objective 4). Seen
    on a 7 x 2 instance with max_models=1. Detected here; the caller solves again
    without the start."""
    if assign is None or not math.isfinite(reported):
        return False
    return abs(reported - _objective(a, assign, min_strength)) > 1e-6 * max(1.0, abs(reported))


def _needs_y(max_models: int | None, min_cell: int) -> bool:
    return max_models is not None or min_cell > 1


def allowed_models(a: np.ndarray, floor: float, scope: str) -> np.ndarray:
    """Models that can hold a non-empty cell: under the per-model floor a cell's mean is at
    most its largest entry, so a model with no entry reaching the floor (up to the shared
    tolerance) stays empty."""
    if scope == "per-model":
        return (a >= floor - TOL).any(axis=0)
    return np.ones(a.shape[1], dtype=bool)


# ---------------------------------------------------------------------------------------
# PuLP
# ---------------------------------------------------------------------------------------


def milp_pulp(
    a: np.ndarray,
    floor: float,
    scope: str,
    *,
    solver: str,
    time_limit: float | None,
    max_models: int | None,
    min_cell: int,
    warm_start: np.ndarray | None,
    min_strength: int | None = None,
) -> MilpResult:
    """The MILP through PuLP and the named solver; the status and bound come from the
    solver's own report, never from PuLP's (which calls a time-limit stop Optimal).
    ``min_strength`` None: maximise strength (phase 1); else maximise total IIA with at
    least that strength (phase 2)."""
    t0 = time.perf_counter()
    n, n_models = a.shape
    warm = warm_start is not None
    key = solver.lower()
    check_solver_name(solver)

    ok = allowed_models(a, floor, scope)
    # Refuse before PuLP builds a Python object per variable (MemoryEstimateError).
    check_per_input_memory(n, int(ok.sum()), "pulp", itemsize=a.itemsize)
    # PuLP builds a Python object per variable and term (seconds for 10^5 of them): a build
    # that outlasts the limit stops there, as a run the clock stopped before its first node
    deadline = None if time_limit is None else t0 + time_limit

    def on_time() -> None:
        if deadline is not None and time.perf_counter() > deadline:
            raise _BuildStopped

    try:
        prob, x = _build_pulp(
            a, floor, scope, ok, max_models, min_cell, warm_start, min_strength, on_time
        )
    except _BuildStopped:
        return MilpResult(
            None, None, False, BUILD_STOPPED, key, time.perf_counter() - t0, timed_out=True
        )
    try:
        # PuLP's build counts against the limit
        left = None if time_limit is None else max(time_limit - (time.perf_counter() - t0), 0.01)
        verdict = solve_with_pulp(prob, solver, left, warm, gapRel=0.0)
    except pulp.PulpSolverError as exc:
        return MilpResult(None, None, False, f"solver error: {exc}", key, time.perf_counter() - t0)
    assign: np.ndarray | None = np.full(n, -1, dtype=np.int64)
    for (i, m), v in x.items():
        if v.varValue is not None and v.varValue > 0.5:
            assign[i] = m
    if not x:  # nothing to solve: the empty partition is the only one
        return MilpResult(
            assign, 0.0, True, "no model can meet the floor", key, time.perf_counter() - t0
        )
    status, proven, bound = verdict.status, verdict.proven, verdict.bound
    if not verdict.has_incumbent:
        assign = None
    elif (
        key == "highs"
        and warm
        and verdict.objective is not None
        and _start_mismatch(verdict.objective, a, assign, min_strength)
    ):
        # HiGHS 1.16 can report the objective of a presolve-improved start while returning
        # the start itself: solve again without it.
        left = None if time_limit is None else time_limit - (time.perf_counter() - t0)
        if left is None or left > 0.05:
            return milp_pulp(
                a,
                floor,
                scope,
                solver=solver,
                time_limit=left,
                max_models=max_models,
                min_cell=min_cell,
                warm_start=None,
                min_strength=min_strength,
            )
    return MilpResult(
        assign, bound, proven, status, key, time.perf_counter() - t0, _timed_out(status)
    )


class _BuildStopped(Exception):
    """The time limit passed while PuLP built the model."""


BUILD_STOPPED = "Time limit reached (while PuLP built the model, before any solve)"


def _build_pulp(a, floor, scope, ok, max_models, min_cell, warm_start, min_strength, on_time):
    """The MILP as a PuLP problem and its x variables; ``on_time()`` between steps raises
    ``_BuildStopped`` once the limit has passed."""
    n = a.shape[0]
    prob = pulp.LpProblem("per_input", pulp.LpMaximize)
    x: dict[tuple[int, int], pulp.LpVariable] = {}
    for m in np.flatnonzero(ok):
        for i in range(n):
            x[i, int(m)] = prob.add_variable(f"x_{i}_{m}", 0, 1, cat=pulp.LpBinary)
        on_time()
    if min_strength is None:
        prob += pulp.lpSum(x.values())
    else:
        prob += pulp.lpSum(float(a[i, m]) * v for (i, m), v in x.items())
        prob += pulp.lpSum(x.values()) >= min_strength, "strength"
    by_input: dict[int, list] = {}
    by_model: dict[int, list] = {}
    for (i, m), v in x.items():
        by_input.setdefault(i, []).append(v)
        by_model.setdefault(m, []).append((i, v))
    for i, vs in by_input.items():
        if len(vs) > 1:
            prob += pulp.lpSum(vs) <= 1, f"one_{i}"
        if i % 1000 == 0:
            on_time()
    if scope == "per-model":
        for m, ivs in by_model.items():
            prob += pulp.lpSum((float(a[i, m]) - floor) * v for i, v in ivs) >= 0, f"floor_{m}"
            on_time()
    else:
        prob += pulp.lpSum((float(a[i, m]) - floor) * v for (i, m), v in x.items()) >= 0, "floor"
    y: dict[int, pulp.LpVariable] = {}
    if _needs_y(max_models, min_cell):
        for m, ivs in by_model.items():
            y[m] = prob.add_variable(f"y_{m}", 0, 1, cat=pulp.LpBinary)
            count = pulp.lpSum(v for _, v in ivs)
            prob += count <= len(ivs) * y[m], f"link_{m}"
            if min_cell > 1:
                prob += count >= min_cell * y[m], f"mincell_{m}"
            on_time()
        if max_models is not None:
            prob += pulp.lpSum(y.values()) <= max_models, "max_models"
    on_time()
    if warm_start is not None:
        for (i, m), v in x.items():
            v.setInitialValue(1.0 if warm_start[i] == m else 0.0)
        for m, v in y.items():
            v.setInitialValue(1.0 if np.any(warm_start == m) else 0.0)

    return prob, x


def _timed_out(status: str) -> bool:
    # HiGHS says "Time limit reached", CBC "Stopped on time".
    return "time" in status.lower()


# ---------------------------------------------------------------------------------------
# highspy directly
# ---------------------------------------------------------------------------------------


def milp_highs(
    a: np.ndarray,
    floor: float,
    scope: str,
    *,
    time_limit: float | None,
    max_models: int | None,
    min_cell: int,
    warm_start: np.ndarray | None,
    min_strength: int | None = None,
    node_limit: int | None = None,
) -> MilpResult:
    """The same MILP built column-wise with numpy arrays and solved by highspy: the model
    build is linear-time and vectorised, where PuLP's is ~30x slower at scale.
    ``min_strength`` as in ``milp_pulp``. ``node_limit``: branch-and-bound nodes at most
    (HiGHS's mip_max_nodes), a work budget that ends the run the same way on any machine."""
    t0 = time.perf_counter()
    n, n_models = a.shape
    ok = allowed_models(a, floor, scope)
    cols = np.flatnonzero(ok)  # the models that get x columns
    k = len(cols)
    inf = highspy.kHighsInf
    # Refuse before the column arrays and HiGHS's copies exist (MemoryEstimateError).
    check_per_input_memory(n, k, "highs", itemsize=a.itemsize)
    if k == 0:
        return MilpResult(
            np.full(n, -1, dtype=np.int64),
            0.0,
            True,
            "no model can meet the floor",
            "highs",
            time.perf_counter() - t0,
        )
    use_y = _needs_y(max_models, min_cell)
    n_floor = k if scope == "per-model" else 1
    nx = n * k
    # Row layout: [0, n) one-model-per-input, then the floor rows, then (with y) the
    # count rows (Σ_i x_im − n·y_m <= 0, Σ_i x_im − c·y_m >= 0), the max_models row and
    # the phase-2 strength row.
    use_min = use_y and min_cell > 1
    use_k = use_y and max_models is not None
    use_s = min_strength is not None
    r_floor = n
    r_link = n + n_floor
    r_min = r_link + (k if use_y else 0)
    r_k = r_min + (k if use_min else 0)
    r_s = r_k + (1 if use_k else 0)
    n_rows = r_s + (1 if use_s else 0)

    sub = a[:, cols]
    per_col = 2 + int(use_y) + int(use_min) + int(use_s)
    index = np.empty((n, k, per_col), dtype=np.int32)
    value = np.empty((n, k, per_col), dtype=np.float64)
    index[:, :, 0] = np.arange(n, dtype=np.int32)[:, None]
    value[:, :, 0] = 1.0
    if scope == "per-model":
        index[:, :, 1] = r_floor + np.arange(k, dtype=np.int32)[None, :]
    else:
        index[:, :, 1] = r_floor
    np.subtract(sub, floor, out=value[:, :, 1])
    slot = 2
    if use_y:
        index[:, :, slot] = r_link + np.arange(k, dtype=np.int32)[None, :]
        value[:, :, slot] = 1.0
        slot += 1
    if use_min:
        index[:, :, slot] = r_min + np.arange(k, dtype=np.int32)[None, :]
        value[:, :, slot] = 1.0
        slot += 1
    if use_s:
        index[:, :, slot] = r_s
        value[:, :, slot] = 1.0
    index = index.reshape(-1)
    value = value.reshape(-1)
    start = np.arange(0, nx * per_col + 1, per_col, dtype=np.int32)
    # Integer costs in phase 1 let HiGHS round its dual bound down (objective integrality).
    cost = np.ones(nx) if min_strength is None else sub.reshape(-1).copy()
    del sub
    if use_y:
        y_index, y_value, y_start = [], [], [int(start[-1])]
        for j in range(k):
            ent_i = [r_link + j]
            ent_v = [-float(n)]
            if use_min:
                ent_i.append(r_min + j)
                ent_v.append(-float(min_cell))
            if use_k:
                ent_i.append(r_k)
                ent_v.append(1.0)
            y_index += ent_i
            y_value += ent_v
            y_start.append(y_start[-1] + len(ent_i))
        index = np.concatenate([index, np.asarray(y_index, dtype=np.int32)])
        value = np.concatenate([value, np.asarray(y_value)])
        start = np.concatenate([start, np.asarray(y_start[1:], dtype=np.int32)])
        cost = np.concatenate([cost, np.zeros(k)])
    n_cols = len(cost)

    row_lower = np.full(n_rows, -inf)
    row_upper = np.full(n_rows, inf)
    row_upper[:n] = 1.0
    row_lower[r_floor : r_floor + n_floor] = 0.0
    if use_y:
        row_upper[r_link : r_link + k] = 0.0
    if use_min:
        row_lower[r_min : r_min + k] = 0.0
    if use_k:
        row_upper[r_k] = float(max_models)
    if use_s:
        row_lower[r_s] = float(min_strength)

    options: dict = {"mip_rel_gap": 0.0}
    # Never set "threads": after pulp.HiGHS has run in this process, a Highs with
    # threads=1 silently does nothing (model status "Not Set").
    if node_limit is not None:
        options["mip_max_nodes"] = max(int(node_limit), 1)
    warm_col = None
    if warm_start is not None:
        warm_col = np.zeros(n_cols)
        pos = np.full(n_models, -1, dtype=np.int64)
        pos[cols] = np.arange(k)
        rows = np.flatnonzero(warm_start >= 0)
        mapped = pos[warm_start[rows]]
        good = mapped >= 0
        warm_col[rows[good] * k + mapped[good]] = 1.0
        if use_y:
            used = np.zeros(k)
            used[np.unique(mapped[good])] = 1.0
            warm_col[nx:] = used
    req = MipRequest(
        cost=cost,
        col_lower=np.zeros(n_cols),
        col_upper=np.ones(n_cols),
        row_lower=row_lower,
        row_upper=row_upper,
        start=start,
        index=index,
        value=value,
        maximize=True,
        options=options,
        warm=warm_col,
        keep=nx,
    )
    del index, value, start, cost, warm_col
    run = run_mip(req, time_limit)
    del req
    proven, bound, status = run.optimal, run.bound, run.status
    assign = None
    if run.values is not None:
        pick = run.values.reshape(n, k) > 0.5
        assign = np.where(pick.any(axis=1), cols[np.argmax(pick, axis=1)], -1).astype(np.int64)
        if warm_start is not None and _start_mismatch(run.objective, a, assign, min_strength):
            left = None if time_limit is None else time_limit - (time.perf_counter() - t0)
            if left is None or left > 0.05:
                return milp_highs(
                    a,
                    floor,
                    scope,
                    time_limit=left,
                    max_models=max_models,
                    min_cell=min_cell,
                    warm_start=None,
                    min_strength=min_strength,
                    node_limit=node_limit,
                )
    return MilpResult(
        assign, bound, proven, status, "highs", time.perf_counter() - t0, _timed_out(status)
    )
