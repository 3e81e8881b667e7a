"""An exact integer program for the pairwise partition problem (small instances).

Per-model scope, a size-indexed *deficit* formulation (δ = 1 − w):

    x[v,m] ∈ {0,1}   input v in model m's cell       (only where v can sit in some cell
                                                       of m, by the size test of
                                                       solver.pairwise_bounds)
    u[m,k] ∈ {0,1}   model m's cell has exactly k inputs (only sizes passing the test)
    y[i,j,m] >= 0    pair i, j both in m's cell       (only pairs with δ > 0)

    Σ_m x[v,m] <= 1;  Σ_k u[m,k] <= 1;  Σ_v x[v,m] = Σ_k k·u[m,k]
    x[v,m] <= Σ_{k: v fits a size-k cell of m} u[m,k]
    y[i,j,m] >= x[i,m] + x[j,m] − 1
    Σ_{i<j} δ_ij·y[i,j,m] <= Σ_k (1 − λ)·C(k,2)·u[m,k]          (the floor, exactly)
    y[i,j,m] <= Σ_{k: the pair fits the budget of a size-k cell} u[m,k]
    x[i,m] + x[j,m] <= 1  where no size admits the pair (at λ = 1: every pair with δ > 0)
    Σ_{v∈I} x[v,m] <= Σ_k min(|I|, t_θ(k))·u[m,k]   conflict-set cuts from the bound LP
    Σ x <= ⌊upper bound⌋

Knowing the size makes the right-hand side of the floor row linear, so only the pairs
that *cost* something need a product variable, and each needs just its lower side.
Global scope (below floor 1): the textbook linearisation — z_m, x <= z, Σ x >= 2z, y on the
side the sign of (w − λ) needs, one pooled floor row. At floor 1 the global floor means
every cell is a clique, so the per-model model is used.

PuLP builds the model, so any PuLP solver runs it; the certificate says "optimal" only
when the solver itself proved it (HiGHS: model status and mip_dual_bound read from the
highspy object; CBC: its status line and the "best possible" of its log).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pulp

from solver.backends import check_solver_name, solve_with_pulp
from solver.certificate import Certificate, floor_bound
from solver.feasibility import MIN_PAIRWISE_CELL, SCOPES, TOL
from solver.pairwise_bounds import (
    _prepare,
    conflict_capacity,
    conflict_lp_bound,
    deficit_budget,
    pairwise_upper_bound,
    size_structure,
)
from solver.verify import is_feasible, screen_start

METHOD = "pairwise-exact-mip"

# formulation switches (kept for benchmarking): which conflict cuts of the bound LP enter
# the integer program ("all", "tight": only those binding at the last LP point, "none"),
# and whether the bound LP's value becomes a constraint on the objective.
# "formulation": "deficit" (size-indexed, module docstring), "textbook", or "auto" (deficit
# at floor 1, where it needs no product variables at all; textbook below, where on the
# 64-input benchmark HiGHS found better incumbents with it in the same time).
OPTIONS = {"cuts": "tight", "objective_cut": True, "formulation": "auto"}


# ----------------------------------------------------------------------------- checking


def partition_strength(assignment: np.ndarray) -> int:
    return int((np.asarray(assignment) >= 0).sum())


def _feasible(w: np.ndarray, assignment: np.ndarray, floor: float, scope: str) -> bool:
    # The shared verifier's verdict (cells of >= 2 inputs meeting the floor), as a bool.
    return is_feasible(_prepare(w), np.asarray(assignment), floor, "pairwise", scope)


def _repair(w: np.ndarray, a: np.ndarray, floor: float, scope: str) -> np.ndarray:
    """Drop inputs (worst first) until the partition meets the definition; only used when
    solver tolerances let a marginally infeasible point through."""
    a = a.copy()
    M = w.shape[0]
    for _ in range(a.size + 1):
        if _feasible(w, a, floor, scope):
            return a
        worst, worst_m = None, -1
        for m in range(M):
            s = np.nonzero(a == m)[0]
            if len(s) == 1:
                a[s] = -1
                continue
            if len(s) == 0:
                continue
            sub = w[m][np.ix_(s, s)]
            t = sub.sum() / 2
            c = len(s) * (len(s) - 1) / 2
            slack = t - floor * c
            if worst is None or slack < worst:
                worst, worst_m = slack, m
        if worst_m < 0:
            continue
        s = np.nonzero(a == worst_m)[0]
        rows = w[worst_m][np.ix_(s, s)].sum(axis=1)
        a[s[int(np.argmin(rows))]] = -1
        if (a == worst_m).sum() < MIN_PAIRWISE_CELL:
            a[a == worst_m] = -1
    return a


# ----------------------------------------------------------------------------- solvers


# ----------------------------------------------------------------------------- models


def _select_cuts(lp) -> list:
    mode = OPTIONS.get("cuts", "tight")
    if mode == "none" or not lp.cuts:
        return []
    if mode == "all":
        return list(lp.cuts)
    sol = lp.h.getSolution()
    if not sol.value_valid:
        return []
    act = np.asarray(sol.row_value)
    hi = np.concatenate(lp._hi)
    first = lp.nrow - len(lp.cuts)
    keep = []
    for r, cut in enumerate(lp.cuts):
        row = first + r
        if row < len(act) and act[row] >= hi[row] - 1e-3 * max(1.0, abs(hi[row])):
            keep.append(cut)
    return keep


class _Model:
    def __init__(self):
        self.prob = pulp.LpProblem("pairwise_partition", pulp.LpMaximize)
        self.x: dict[tuple[int, int], pulp.LpVariable] = {}
        self.aux: list[tuple[pulp.LpVariable, callable]] = []  # (var, value from assignment)


def _build_per_model(w, floor, sizes, fits, cuts, ub) -> _Model:
    M, n, _ = w.shape
    delta = 1.0 - w
    idx = np.arange(n)
    delta[:, idx, idx] = 0.0
    mod = _Model()
    prob = mod.prob
    for m in range(M):
        for v in range(n):
            if fits[m, v].any():
                mod.x[v, m] = prob.add_variable(f"x_{v}_{m}", 0, 1, cat=pulp.LpBinary)
    prob += pulp.lpSum(mod.x.values())
    for v in range(n):
        xs = [mod.x[v, m] for m in range(M) if (v, m) in mod.x]
        if len(xs) > 1:
            prob += pulp.lpSum(xs) <= 1, f"one_{v}"
    for m in range(M):
        ks = np.nonzero(sizes[m])[0]
        members = [v for v in range(n) if (v, m) in mod.x]
        if len(ks) == 0 or len(members) < 2:
            for v in members:
                prob += mod.x[v, m] == 0, f"off_{v}_{m}"
            continue
        u = {int(k): prob.add_variable(f"u_{m}_{k}", 0, 1, cat=pulp.LpBinary) for k in ks}
        mod.aux += [(u[k], (lambda a, m=m, k=k: float((a == m).sum() == k))) for k in u]
        prob += pulp.lpSum(u.values()) <= 1, f"onesize_{m}"
        prob += (
            (pulp.lpSum(mod.x[v, m] for v in members) == pulp.lpSum(k * u[k] for k in u)),
            f"size_{m}",
        )
        for v in members:
            ok = [k for k in u if fits[m, v, k]]
            if len(ok) < len(u):
                prob += mod.x[v, m] <= pulp.lpSum(u[k] for k in ok), f"fit_{v}_{m}"
        kk = np.array(sorted(u))
        bud = deficit_budget(kk, floor)
        terms = []
        for a_i, i in enumerate(members):
            for j in members[a_i + 1 :]:
                d = float(delta[m, i, j])
                if d <= TOL:
                    continue
                ok = [int(k) for k, b in zip(kk, bud) if b >= d and fits[m, i, k] and fits[m, j, k]]
                if not ok:
                    prob += mod.x[i, m] + mod.x[j, m] <= 1, f"apart_{i}_{j}_{m}"
                    continue
                y = prob.add_variable(f"y_{i}_{j}_{m}", 0, 1)
                mod.aux.append((y, (lambda a, i=i, j=j, m=m: float(a[i] == m and a[j] == m))))
                prob += y >= mod.x[i, m] + mod.x[j, m] - 1, f"ylo_{i}_{j}_{m}"
                if len(ok) < len(u):
                    prob += y <= pulp.lpSum(u[k] for k in ok), f"yk_{i}_{j}_{m}"
                terms.append(d * y)
        if terms:
            prob += (
                (pulp.lpSum(terms) <= pulp.lpSum(float(b) * u[int(k)] for k, b in zip(kk, bud))),
                f"floor_{m}",
            )
        for c_no, (cm, members_i, theta) in enumerate(cuts):
            if cm != m:
                continue
            c = np.minimum(len(members_i), conflict_capacity(theta, kk, floor))
            prob += (
                (
                    pulp.lpSum(mod.x[v, m] for v in members_i)
                    <= pulp.lpSum(int(ci) * u[int(k)] for k, ci in zip(kk, c))
                ),
                f"cut_{c_no}",
            )
    if OPTIONS.get("objective_cut", True) and ub is not None and ub < len(mod.x):
        prob += pulp.lpSum(mod.x.values()) <= math.floor(ub + 1e-6), "upper_bound"
    return mod


def _build_textbook(w, floor, ub, pooled: bool) -> _Model:
    M, n, _ = w.shape
    mod = _Model()
    prob = mod.prob
    for m in range(M):
        for v in range(n):
            mod.x[v, m] = prob.add_variable(f"x_{v}_{m}", 0, 1, cat=pulp.LpBinary)
    prob += pulp.lpSum(mod.x.values())
    for v in range(n):
        prob += pulp.lpSum(mod.x[v, m] for m in range(M)) <= 1, f"one_{v}"
    terms = []
    for m in range(M):
        z = prob.add_variable(f"z_{m}", 0, 1, cat=pulp.LpBinary)
        mod.aux.append((z, (lambda a, m=m: float((a == m).any()))))
        for v in range(n):
            prob += mod.x[v, m] <= z, f"open_{v}_{m}"
        prob += pulp.lpSum(mod.x[v, m] for v in range(n)) >= MIN_PAIRWISE_CELL * z, f"two_{m}"
        for i in range(n):
            for j in range(i + 1, n):
                c = float(w[m, i, j]) - floor
                if c == 0.0:
                    continue
                y = prob.add_variable(f"y_{i}_{j}_{m}", 0, 1)
                mod.aux.append((y, (lambda a, i=i, j=j, m=m: float(a[i] == m and a[j] == m))))
                if c > 0:
                    prob += y <= mod.x[i, m], f"ya_{i}_{j}_{m}"
                    prob += y <= mod.x[j, m], f"yb_{i}_{j}_{m}"
                else:
                    prob += y >= mod.x[i, m] + mod.x[j, m] - 1, f"ylo_{i}_{j}_{m}"
                terms.append(c * y)
        if not pooled and terms:
            prob += pulp.lpSum(terms) >= -TOL, f"floor_{m}"
            terms = []
    if pooled and terms:
        prob += pulp.lpSum(terms) >= -TOL, "floor_pooled"
    if OPTIONS.get("objective_cut", True) and ub is not None and ub < n:
        prob += pulp.lpSum(mod.x.values()) <= math.floor(ub + 1e-6), "upper_bound"
    return mod


# ----------------------------------------------------------------------------- entry point


def solve_pairwise_exact(
    w: np.ndarray,
    floor: float,
    scope: str = "per-model",
    *,
    solver: str = "highs",
    time_limit: float | None = None,
    warm_start: np.ndarray | None = None,
    known_bound: float | None = None,
    size_caps: np.ndarray | None = None,
) -> tuple[np.ndarray, Certificate]:
    """Maximise strength exactly (up to the time limit); returns (assignment, certificate).

    ``assignment[i]`` is the model of input i or −1. The certificate's bound is the best of
    the solver's proven dual bound, the bound LP of solver.pairwise_bounds and
    ``known_bound`` (a bound proven elsewhere, e.g. by column generation: it also enters
    the program as a cap on the objective). ``size_caps``: proven per-model cell-size caps
    (``solver.pairwise_sdp``; they hold where each cell meets the floor on its own, so a
    global scope below floor 1 ignores them)."""
    t0 = time.perf_counter()
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; expected one of {SCOPES}")
    if not 0.0 < floor <= 1.0:
        raise ValueError(f"floor must lie in (0, 1]; got {floor}")
    w = _prepare(w)
    M, n, _ = w.shape
    notes: list[str] = []
    # A bad start (wrong shape, indices, or infeasible here) is dropped with a note.
    warm, dropped = screen_start(w, warm_start, floor, "pairwise", scope)
    if dropped:
        notes.append(dropped)
    check_solver_name(solver)  # before any work: a ValueError naming the alternatives

    per_model = scope == "per-model" or floor >= 1.0 - TOL
    # -- bounds and cuts
    lp_budget = 5.0 if time_limit is None else max(0.2, min(5.0, 0.1 * time_limit))
    sizes, fits = size_structure(w, floor, caps=size_caps if per_model else None)
    cuts: list = []
    if per_model:
        ub, rounds, lp = conflict_lp_bound(w, floor, lp_budget, sizes=sizes, fits=fits)
        cuts = _select_cuts(lp)
        ub = float(min(ub, n))
        notes.append(f"bound LP {ub:.2f} ({rounds} rounds, {len(cuts)} conflict cuts)")
    else:
        ub, _ = pairwise_upper_bound(w, floor, scope, time_limit=lp_budget)
    if known_bound is not None and known_bound < ub:
        ub = float(known_bound)
        notes.append(f"given bound {ub:.2f}")
    if warm is not None and ub < partition_strength(warm) - 1e-6:
        raise AssertionError("bound below a verified partition: bug in the bound")
    if not per_model:
        mod = _build_textbook(w, floor, ub, pooled=True)
    elif OPTIONS.get("formulation", "auto") == "textbook" or (
        OPTIONS.get("formulation", "auto") == "auto" and floor < 1.0 - TOL
    ):
        mod = _build_textbook(w, floor, ub, pooled=False)
    else:
        mod = _build_per_model(w, floor, sizes, fits, cuts, ub)
    if warm is not None:
        for (v, m), var in mod.x.items():
            var.setInitialValue(float(warm[v] == m))
        for var, f in mod.aux:
            var.setInitialValue(f(warm))
        if any(warm[v] >= 0 and (v, int(warm[v])) not in mod.x for v in range(n)):
            notes.append("warm start not passed: it uses an input the model excludes")
            warm = None
    remaining = None
    if time_limit is not None:
        remaining = max(1.0, time_limit - (time.perf_counter() - t0))
    verdict = solve_with_pulp(mod.prob, solver, remaining, warm is not None, gapAbs=0.999)
    proven, dual, have_point = verdict.proven, verdict.bound, verdict.has_incumbent
    notes.append(f"{verdict.status}, {verdict.seconds:.1f}s")

    a = -np.ones(n, dtype=int)
    if have_point:
        for (v, m), var in mod.x.items():
            if var.varValue is not None and var.varValue > 0.5:
                a[v] = m
    if not _feasible(w, a, floor, scope):
        fixed = _repair(w, a, floor, scope)
        notes.append(
            f"solver point repaired ({partition_strength(a)} -> {partition_strength(fixed)} inputs)"
        )
        a = fixed
        proven = False
    if warm is not None and partition_strength(warm) > partition_strength(a):
        a = warm
        notes.append("returned the warm start (solver found nothing better)")
    if not have_point and warm is None:
        notes.append("time limit hit with no incumbent: empty partition")
    obj = partition_strength(a)
    bound = float(ub)
    if dual is not None and floor_bound(dual) < obj:
        # Not a bound if a verified partition beats it: dropped, never clamped.
        notes.append(f"solver's bound {dual:g} is below a verified partition of {obj}: discarded")
    elif dual is not None:
        bound = min(bound, dual)
    if proven:
        bound = min(bound, float(obj))
    capped = "time" in verdict.status.lower()
    if capped:
        notes.append("the time limit cut the program short (result depends on machine speed)")
    assert _feasible(w, a, floor, scope)
    cert = Certificate.build(
        method=METHOD,
        solver=verdict.solver,
        objective=float(obj),
        bound=bound,
        seconds=time.perf_counter() - t0,
        note="; ".join(notes),
        time_limit=time_limit,
        capped=capped,
    )
    return a, cert
