"""Partitions under per-input semantics: each input i has its own IIA a[i, m] under each
candidate model m, and a cell meets the floor λ when its mean IIA is at least λ.

Maximise the strength (number of assigned inputs) subject to the floor, per model
(``scope="per-model"``) or over all assigned inputs together (``scope="global"``);
among maximal partitions prefer the higher total IIA. Options: at most ``max_models``
non-empty cells, every non-empty cell at least ``min_cell`` inputs.

This module is the dispatcher; the parts live beside it:

- ``solver.per_input_repair``: repair and fill heuristics;
- ``solver.per_input_bounds``: the closed form (global scope), the Lagrangian bound and
  rounding (per-model scope), bounds without the options;
- ``solver.per_input_milp``: the exact MILP (PuLP and any solver, or highspy directly);
- ``solver.per_input_priced``: bounds under the options that price the inputs (per-model
  floors with ``max_models``, branched on the model set; the global floor with
  ``max_models`` or ``min_cell``);
- ``solver.per_input_cell_floor``: starts for the global floor with ``min_cell`` (model
  sets whose cells are filled first, and a search over those sets).

Methods:

- ``"ilp"``: the exact MILP through PuLP and a named solver, until proven or the time limit;
- ``"auto"``: structure first.
  * global scope, no options: the closed form, proven optimal;
  * per-model scope: each model's largest lone cell first (``single_cell_sizes``); models
    under ``min_cell`` are dropped (they can only stay empty). The bound is the smaller of
    the lone-cell bound (``conflict_bound``: each floor exact, contested inputs counted
    once, ``max_models`` = K seen) and the Lagrangian (floors relaxed, options ignored;
    skipped when an option-free partition shows it cannot be the smaller). Partitions:
    rounding from the Lagrangian multipliers, repaired to meet the options, filled, each
    cell re-formed as the largest its model can hold from the inputs the others leave;
    with ``max_models`` also the same on the K models with the largest lone cells. With
    ``max_models`` = K below the models left, the bound is then tightened by pricing the
    inputs too, branched on the model set (``solver.per_input_priced``), and each model set
    it settles above the partition gets the same start. Then,
    where affordable (at most ``MILP_MAX_INPUTS`` inputs), the MILP (highspy,
    warm-started, at most ``budget`` branch-and-bound nodes) to close the gap;
  * options with the global scope: the closed form's bound, starts repaired to meet them
    (with ``min_cell``, also the filled model sets of ``solver.per_input_cell_floor``, whose
    search gets ``SEARCH_SHARE`` of the time left); with ``max_models`` = K below the
    models or ``min_cell`` above 1, the priced bound, which counts only K models and makes
    each cell up to ``min_cell`` (``solver.per_input_priced.global_priced_bound``).

Before anything big is built, the memory it needs is estimated
(``solver.memory``) and the solve refused with ``MemoryEstimateError`` (a
ValueError) when it exceeds what the machine has available. The data keeps its float type
(float32 stays float32; other types become float64).

Every partition is checked against the constraints (``solver.verify``) and repaired if a
solver's tolerance let a violation through, before it is returned. Every solver bound is
read only from a status that vouches for it, and is dropped (with a note) if it lies
under a verified partition.
"""

from __future__ import annotations

import time

import numpy as np

from solver.backends import check_solver_name
from solver.certificate import Certificate, floor_bound
from solver.feasibility import SCOPES, TOL
from solver.memory import MemoryEstimateError, check_per_input_memory
from solver.per_input_bounds import (
    closed_form_global,
    conflict_bound,
    lagrangian_dual,
    options_bounds,
    relaxation_bound,
    round_from_duals,
    single_cell_sizes,
    tie_break_eps,
)
from solver.per_input_cell_floor import cell_floor_starts
from solver.per_input_milp import MilpResult, allowed_models, milp_highs, milp_pulp
from solver.per_input_priced import global_priced_bound, model_set_bound
from solver.per_input_repair import better, fill, reoptimize_cells, repair, settle
from solver.verify import partition_problems, screen_start

METHODS = ("auto", "ilp")
# Above this many x variables "auto" trusts the Lagrangian bound and rounding alone: the
# plain MILP no longer finishes in reasonable time (3.2 million binaries did not).
MILP_MAX_VARS = 200_000
# Above this many inputs "auto" runs no MILP phase at all (nor the tie-break): HiGHS's set-up
# before its first node (after presolve) does not look at the time limit, and grows about
# quadratically with the inputs: with a 3 s limit, 100,000 x 2 of a data task's IIA ran
# 334 s and 50,000 x 2 about 60 s before stopping, 20,000 x 2 a few seconds over. (Large
# models now run in a child process killed at the limit, solver/highs_child.py, so an
# overrun no longer outlasts the limit; but a MILP that never reaches its first node is
# time lost.)
MILP_MAX_INPUTS = 20_000
# Without a time limit "auto" still caps its MILP phase: proving the last unit of a
# knapsack-like gap can take hours (10,000 x 8 synthetic at λ = 0.85: open after 60 s),
# and the Lagrangian answer is already within a few units.
AUTO_MILP_SECONDS = 60.0
# model sets the model-set bound settled above the partition known that get a top-K start
# of their own (each costs about what the first one did)
PRICED_SETS_TRIED = 2
# the share of the time left that the model-set bound may take where a MILP phase follows
MODEL_SET_SHARE = 0.5
# the share of the time limit that method "ilp" keeps for what follows its MILP: a heuristic
# partition where none came back, the bound, the checks (about 1 s on 20,000 x 16)
ILP_TAIL_SHARE = 0.1
# the share of the time left that the global min_cell start's model-set search may take
# (the priced bound and the MILP phase follow)
SEARCH_SHARE = 0.25
# The tie-break phase (max total IIA at maximal strength) is best-effort: its knapsack-like
# bound can take minutes to close, so it gets at most this long on top of its node budget. A
# tie-break the clock stops is not used; the cap is generous so that a loaded machine still
# finishes the ones that take a second (1000 x 6: under 1 s), and the answer stays the same.
TIE_BREAK_SECONDS = 10.0
# The deterministic work budget of "auto"'s MILP phases when none is given: branch-and-
# bound nodes (HiGHS's mip_max_nodes). The time limit stays a cap on top of it.
DEFAULT_NODE_BUDGET = 5_000
# Bundle iterations for the multipliers of a quick rounding (a start, not the bound).
START_BUNDLE_ITER = 60


def problems(a, assign, floor, scope, max_models=None, min_cell=1) -> list[str]:
    """What breaks the per-input constraints, in words (``solver.verify``)."""
    return partition_problems(
        a, assign, floor, "per-input", scope, max_models=max_models, min_cell=min_cell
    )


class _Log:
    """The story of one solve: its notes, and where the time cap cut work short."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.capped: list[str] = []

    def note(self, text: str) -> None:
        if text:
            self.notes.append(text)

    def tighten(self, bound: float | None, candidate: float | None, strength: int, who: str):
        """``bound`` tightened by a solver's ``candidate`` bound, unless that candidate lies
        under a verified partition of ``strength`` (then it is not a bound: dropped)."""
        if candidate is None:
            return bound
        if floor_bound(candidate) < strength:
            self.note(
                f"{who}'s bound {candidate:g} is below a verified partition of {strength} "
                "inputs: discarded"
            )
            return bound
        return candidate if bound is None else min(bound, candidate)


# ---------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------


def _validate(
    a: np.ndarray,
    floor: float,
    scope: str,
    method: str,
    solver: str,
    max_models: int | None,
    min_cell: int,
    budget: int | None,
) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 2 and method in METHODS:
        # Refuse before converting or building anything (MemoryEstimateError). "ilp" builds
        # the PuLP model; "auto" at least the Lagrangian oracle (its MILP phase is checked
        # again where it would start, and skipped, not refused, when it does not fit).
        check_per_input_memory(
            a.shape[0],
            a.shape[1],
            "pulp" if method == "ilp" else "lagrangian",
            itemsize=a.itemsize if a.dtype in (np.float32, np.float64) else 8,
            converted=a.dtype not in (np.float32, np.float64),
        )
    if a.dtype not in (np.float32, np.float64):
        # float32 stays float32 (no float64 copy of a big matrix); the sums that decide
        # the floor are taken in float64 on the few entries they need.
        a = a.astype(np.float64)
    if a.ndim != 2:
        raise ValueError(f"a must be a 2-D array [n inputs, M models], got shape {a.shape}")
    if not np.all(np.isfinite(a)) or (a.size and (a.min() < 0.0 or a.max() > 1.0)):
        raise ValueError("a must hold finite IIA values in [0, 1]")
    if not (0.0 < floor <= 1.0):
        raise ValueError(f"floor must lie in (0, 1], got {floor}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if max_models is not None and max_models < 0:
        raise ValueError(f"max_models must be >= 0 or None, got {max_models}")
    if min_cell < 1:
        raise ValueError(f"min_cell must be >= 1, got {min_cell}")
    if budget is not None and budget < 1:
        raise ValueError(f"budget must be a positive number of nodes or None, got {budget}")
    if method == "ilp":
        check_solver_name(solver)  # a ValueError naming the alternatives
    return a


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(deadline - time.perf_counter(), 0.0)


def _strength(assign: np.ndarray) -> int:
    return int((assign >= 0).sum())


# ---------------------------------------------------------------------------------------
# Starts
# ---------------------------------------------------------------------------------------


def top_models_start(
    a: np.ndarray,
    floor: float,
    scope: str,
    max_models: int,
    min_cell: int,
    sizes: np.ndarray | None = None,
    cols: np.ndarray | None = None,
) -> np.ndarray | None:
    """With ``max_models`` = K: the option-free answer on the K models with the largest
    single cells, repaired to meet ``min_cell`` and filled. Cutting a partition over all
    models down to its K biggest cells loses the inputs the other cells held; this start
    spreads the inputs over the K strongest models from the beginning. ``sizes``: the lone
    cell sizes of the models ``cols`` (None: computed here, over all models)."""
    if cols is None:
        cols = np.arange(a.shape[1])
    if sizes is None:
        sizes = single_cell_sizes(a, floor, cols)
    order = np.argsort(-sizes, kind="stable")[:max_models]
    keep = np.sort(cols[order[sizes[order] > 0]])
    if len(keep) == 0:
        return None
    if scope == "global":
        base = closed_form_global(np.ascontiguousarray(a[:, keep]), floor)
        base = np.where(base >= 0, keep[np.maximum(base, 0)], -1).astype(np.int64)
    else:
        eps = tie_break_eps(a.shape[0])
        _, mu, _ = lagrangian_dual(
            a, floor, eps, deadline=None, max_iter=START_BUNDLE_ITER, cols=keep
        )
        base = round_from_duals(a, keep, floor, eps, mu)
    fixed = repair(a, base, floor, scope, max_models, min_cell)
    return polish(
        a, fill(a, fixed, floor, scope, max_models, min_cell), floor, scope, max_models, min_cell
    )


def polish(
    a: np.ndarray,
    assign: np.ndarray,
    floor: float,
    scope: str,
    max_models: int | None,
    min_cell: int,
) -> np.ndarray:
    """Per-model floor: re-form each cell as the largest its model can hold from the inputs
    the others leave (``reoptimize_cells``; never smaller, so still feasible). Without the
    options every model that can reach the floor may open a cell; with them only the open
    cells are re-formed (a new cell could break ``max_models`` or ``min_cell``)."""
    if scope != "per-model":
        return assign
    if max_models is None and min_cell <= 1:
        models = np.flatnonzero(allowed_models(a, floor, scope))
    else:
        models = np.unique(assign[assign >= 0])
    return reoptimize_cells(a, assign, floor, models)


def _heuristic(
    a: np.ndarray,
    floor: float,
    scope: str,
    max_models: int | None,
    min_cell: int,
    warm_start: np.ndarray | None,
    mu: np.ndarray | None = None,
    cols: np.ndarray | None = None,
    sizes: np.ndarray | None = None,
    top: bool = True,
    deadline: float | None = None,
) -> np.ndarray:
    """A quick feasible partition meeting the options: the best of the option-free
    structured answer (closed form or Lagrangian rounding, on the models ``cols`` with
    the multipliers ``mu`` when given) repaired and refilled, the top-K-models start
    (with ``max_models``; ``sizes``: the lone cell sizes of ``cols``), the global
    ``min_cell`` starts (``solver.per_input_cell_floor``, its model-set search until
    ``deadline``), and the (screened, feasible) warm start refilled."""
    if scope == "global":
        base = closed_form_global(a, floor)
    else:
        if cols is None:
            # ``mu``, when given, belongs to these columns (``relaxation_bound``'s).
            cols = np.flatnonzero(allowed_models(a, floor, scope))
        if len(cols) == 0:
            base = np.full(a.shape[0], -1, dtype=np.int64)
        else:
            if mu is None:
                _, mu, _ = lagrangian_dual(
                    a,
                    floor,
                    tie_break_eps(a.shape[0]),
                    deadline=None,
                    max_iter=START_BUNDLE_ITER,
                    cols=cols,
                )
            base = round_from_duals(a, cols, floor, tie_break_eps(a.shape[0]), mu)
    cand = fill(
        a, repair(a, base, floor, scope, max_models, min_cell), floor, scope, max_models, min_cell
    )
    cand = polish(a, cand, floor, scope, max_models, min_cell)
    # The top-K start differs from the one above only when more than K models are in play.
    # ``top`` False: the caller has it already.
    if (
        top
        and max_models is not None
        and max_models > 0
        and (sizes is None or len(sizes) > max_models)
    ):
        start_k = top_models_start(a, floor, scope, max_models, min_cell, sizes, cols)
        cand = better(a, cand, start_k)
    # (with max_models alone the top-K start above already spreads the inputs over K models)
    if scope == "global" and min_cell > 1:
        start = cell_floor_starts(a, floor, max_models, min_cell, deadline=deadline).best
        if start is not None:
            start = fill(a, start, floor, scope, max_models, min_cell)
            cand = better(a, cand, polish(a, start, floor, scope, max_models, min_cell))
    if warm_start is not None:
        cand = better(a, cand, fill(a, warm_start, floor, scope, max_models, min_cell))
    return cand


# ---------------------------------------------------------------------------------------
# Phases
# ---------------------------------------------------------------------------------------


def _tie_break(
    a: np.ndarray,
    assign: np.ndarray,
    floor: float,
    scope: str,
    max_models: int | None,
    min_cell: int,
    *,
    solver: str | None,
    deadline: float | None,
    node_limit: int | None,
    log: _Log,
) -> np.ndarray:
    """Phase 2: the highest total IIA at the proven maximal strength (best effort, at most
    ``node_limit`` nodes and ``TIE_BREAK_SECONDS``). Its partition is used only when the
    node limit or a proof ended it, never when the clock did."""
    left = _remaining(deadline)
    cap = TIE_BREAK_SECONDS if left is None else min(left, TIE_BREAK_SECONDS)
    strength = _strength(assign)
    if strength == 0:
        return assign
    if cap < 0.05:
        log.note("tie-break skipped (no time left)")
        return assign
    kwargs = dict(
        time_limit=cap,
        max_models=max_models,
        min_cell=min_cell,
        warm_start=assign,
        min_strength=strength,
    )
    try:
        if solver is None:
            res = milp_highs(a, floor, scope, node_limit=node_limit, **kwargs)
        else:
            res = milp_pulp(a, floor, scope, solver=solver, **kwargs)
    except MemoryEstimateError as exc:
        log.note(f"tie-break skipped: {exc}")
        return assign
    if res.timed_out:
        # A partition the clock picked would differ between machines: keep the phase-1
        # partition (which the budget determines) instead.
        log.note(
            f"tie-break stopped by its {cap:.1f} s time cap: not used, so that the "
            "answer stays reproducible"
        )
        return assign
    if res.assign is None:
        log.note(f"tie-break: no incumbent ({res.status})")
        return assign
    cand = res.assign
    if problems(a, cand, floor, scope, max_models, min_cell):
        cand = repair(a, cand, floor, scope, max_models, min_cell)
    word = "proven" if res.proven_optimal else f"best effort, {res.status}"
    log.note(f"tie-break {word}")
    return better(a, assign, cand)


def _finish(
    a: np.ndarray,
    assign: np.ndarray,
    floor: float,
    scope: str,
    max_models: int | None,
    min_cell: int,
    *,
    method: str,
    solver: str,
    bound: float | None,
    t0: float,
    log: _Log,
    budget: int | None,
    time_limit: float | None,
) -> tuple[np.ndarray, Certificate]:
    # On float32 data the verifier sums cells in float32, the searches in float64: drop the
    # few inputs that a float32 sum would put under the floor (no-op on float64 data).
    settled = settle(a, assign, floor, scope, min_cell)
    if _strength(settled) < _strength(assign):
        log.note(
            f"settled: {_strength(assign) - _strength(settled)} inputs dropped so that the "
            "verifier's own sums meet the floor"
        )
        assign = settled
    found = problems(a, assign, floor, scope, max_models, min_cell)
    if found:
        # A solver's tolerance let a violation through: repair rather than return it.
        assign = settle(
            a, repair(a, assign, floor, scope, max_models, min_cell), floor, scope, min_cell
        )
        log.note("repaired: " + "; ".join(found[:3]))
        found = problems(a, assign, floor, scope, max_models, min_cell)
        if found:  # pragma: no cover - repair always ends feasible
            raise RuntimeError(f"per-input partition still infeasible: {found}")
    if log.capped:
        where = ", ".join(dict.fromkeys(log.capped))
        log.note(f"the time limit cut short: {where} (this result depends on the machine's speed)")
    cert = Certificate.build(
        method=method,
        solver=solver,
        objective=float(_strength(assign)),
        bound=bound,
        seconds=time.perf_counter() - t0,
        note="; ".join(log.notes),
        budget=budget,
        time_limit=time_limit,
        capped=bool(log.capped),
    )
    return assign, cert


def _solve_ilp(a, floor, scope, solver, deadline, max_models, min_cell, warm, log):
    left = _remaining(deadline)
    res: MilpResult = milp_pulp(
        a,
        floor,
        scope,
        solver=solver,
        time_limit=None if left is None else (1.0 - ILP_TAIL_SHARE) * left,
        max_models=max_models,
        min_cell=min_cell,
        warm_start=warm,
    )
    log.note(f"{res.solver}: {res.status}")
    if res.timed_out:
        log.capped.append("MILP")
    assign = res.assign
    if assign is not None and problems(a, assign, floor, scope, max_models, min_cell):
        assign = repair(a, assign, floor, scope, max_models, min_cell)
    if assign is None:
        log.note(
            "no incumbent within the time limit, returning "
            + ("the warm start" if warm is not None else "a heuristic partition")
        )
        assign = (
            warm
            if warm is not None
            else _heuristic(a, floor, scope, max_models, min_cell, None, deadline=deadline)
        )
    else:
        assign = better(a, assign, warm)
    strength = _strength(assign)
    bound = log.tighten(None, res.bound, strength, res.solver)
    if bound is None or floor_bound(bound) > strength:
        # The solver's bound is missing or open: the relaxation's is valid regardless.
        relax, _, _ = relaxation_bound(a, floor, scope, None)
        bound = relax if bound is None else min(bound, relax)
    if floor_bound(bound) <= strength:
        assign = _tie_break(
            a,
            assign,
            floor,
            scope,
            max_models,
            min_cell,
            solver=solver,
            deadline=deadline,
            node_limit=None,
            log=log,
        )
    return assign, bound, solver


def _per_model_start(
    a: np.ndarray,
    floor: float,
    cols: np.ndarray,
    deadline: float | None,
    max_models: int | None,
    min_cell: int,
    warm: np.ndarray | None,
    log: _Log,
) -> tuple[float, np.ndarray]:
    """Per-model floor: (a proven bound, a feasible partition) without any MILP.

    The bound is the smaller of the lone-cell bound (``conflict_bound``: each model's floor
    exact, contested inputs counted once, ``max_models`` seen) and the Lagrangian (floors
    relaxed, options ignored), both on the models that can hold ``min_cell`` inputs alone
    (the others can only stay empty). With ``max_models`` = K below the models left, the
    top-K start comes first; spreading the other models' lone cells over the inputs it
    leaves gives an option-free partition, whose strength no Lagrangian value can be under
    (each bounds the option-free optimum): once that reaches the lone-cell bound, the
    Lagrangian over all models cannot lower the bound and is skipped."""
    n = a.shape[0]
    empty = np.full(n, -1, dtype=np.int64)
    if len(cols) == 0:
        return 0.0, empty
    sizes = single_cell_sizes(a, floor, cols)
    keep, _ = options_bounds(sizes, max_models, min_cell)
    if len(keep) < len(cols):
        log.note(
            f"{len(cols) - len(keep)} of {len(cols)} models cannot hold {min_cell} "
            "inputs alone: left empty"
        )
    cols, sizes = cols[keep], sizes[keep]
    if len(cols) == 0:
        return 0.0, empty
    bound, priced = conflict_bound(a, floor, cols, max_models, deadline=deadline)
    log.note(f"lone-cell bound {bound:.0f} ({priced} contested inputs counted once)")
    assign = None
    run_lagrangian = True
    if max_models is not None and max_models < len(cols):
        assign = top_models_start(a, floor, "per-model", max_models, min_cell, sizes, cols)
        if assign is not None:
            free_part = reoptimize_cells(a, assign, floor, cols, sweeps=1)
            if _strength(free_part) >= floor_bound(bound):
                run_lagrangian = False
                log.note(
                    f"lagrangian skipped: an option-free partition of {_strength(free_part)} "
                    "inputs shows it cannot be below the lone-cell bound"
                )
    if run_lagrangian:
        lag, mu, stats = lagrangian_dual(a, floor, tie_break_eps(n), deadline=deadline, cols=cols)
        log.note(
            f"lagrangian: {stats.get('iterations', 0)} bundle iterations ({stats['stop']}), "
            f"bound {lag:.4f}"
        )
        if stats["stop"] == "time":
            log.capped.append("Lagrangian bound")
        bound = min(bound, lag)
        cand = _heuristic(
            a, floor, "per-model", max_models, min_cell, warm, mu, cols, sizes, top=assign is None
        )
        assign = better(a, assign, cand)
    elif warm is not None:
        assign = better(a, assign, fill(a, warm, floor, "per-model", max_models, min_cell))
    if max_models is not None and 0 < max_models < len(cols) and assign is not None:
        bound, assign = _priced_step(
            a, floor, cols, sizes, max_models, min_cell, bound, assign, deadline, log
        )
    return bound, assign


def _priced_step(a, floor, cols, sizes, max_models, min_cell, bound, assign, deadline, log):
    """With ``max_models`` = K below the models left: the priced bound branched on the
    model set (``solver.per_input_priced``), and the top-K start on each model set it
    settled above the partition known, where that set is not the K largest lone cells."""
    known = _strength(assign)
    if floor_bound(bound) <= known:
        return bound, assign
    left = _remaining(deadline)
    if left is not None and a.shape[0] <= MILP_MAX_INPUTS:
        # the MILP phase comes next at this size and may do better with the time: leave it
        # at least what this one takes
        deadline = time.perf_counter() + MODEL_SET_SHARE * left
    found = model_set_bound(a, floor, cols, max_models, known, deadline=deadline)
    how = "every branch settled" if found.closed else "open branches counted at their bounds"
    log.note(
        f"model-set bound {found.bound:.1f} (priced bound {found.root:.1f}, "
        f"{found.nodes} bounds, {how})"
    )
    bound = min(bound, found.bound)
    lone_top = np.sort(cols[np.argsort(-sizes, kind="stable")[:max_models]])
    for models in found.sets[:PRICED_SETS_TRIED]:
        if np.array_equal(models, lone_top):
            continue
        pick = np.searchsorted(cols, models)
        cand = top_models_start(a, floor, "per-model", max_models, min_cell, sizes[pick], models)
        assign = better(a, assign, cand)
    return bound, assign


def _global_priced_step(a, floor, max_models, min_cell, bound, assign, deadline, log) -> float:
    """Global floor with the options: the closed form's bound ignores them; the priced
    bound (``solver.per_input_priced.global_priced_bound``) counts only ``max_models``
    models (None: all) and makes every counted cell up to ``min_cell``, with the pooled
    floor's multiplier read from the closed form on the models the partition uses."""
    known = _strength(assign)
    if floor_bound(bound) <= known:
        return bound
    hint = np.unique(assign[assign >= 0])
    if len(hint) == 0:
        # no partition to read the multiplier from: the option-free closed form's models
        hint = np.arange(a.shape[1])
    found = global_priced_bound(
        a, floor, max_models, hint, known, min_cell=min_cell, deadline=deadline
    )
    log.note(f"priced bound {found.bound:.1f} ({found.steps} subgradient steps, {found.stop})")
    return min(bound, found.bound)


def _solve_auto(a, floor, scope, deadline, max_models, min_cell, warm, budget, log):
    n = a.shape[0]
    options = max_models is not None or min_cell > 1
    if scope == "global" and not options:
        assign = closed_form_global(a, floor)
        log.note("sorted best IIA, longest prefix meeting the floor")
        return assign, float(_strength(assign)), "closed-form"
    cols = np.flatnonzero(allowed_models(a, floor, scope))
    n_vars = n * len(cols)
    if scope == "per-model":
        bound, assign = _per_model_start(a, floor, cols, deadline, max_models, min_cell, warm, log)
    else:
        bound, mu, _ = relaxation_bound(a, floor, scope, deadline)
        log.note("bound: closed form without options")
        left = _remaining(deadline)
        search_until = None if left is None else time.perf_counter() + SEARCH_SHARE * left
        assign = _heuristic(a, floor, scope, max_models, min_cell, warm, mu, deadline=search_until)
        limited = max_models is not None and 0 < max_models < len(cols)
        if limited or min_cell > 1:
            k = max_models if limited else None
            bound = _global_priced_step(a, floor, k, min_cell, bound, assign, deadline, log)
    solver = "lagrangian" if scope == "per-model" else "closed-form"
    # The exact MILP where it is affordable; at scale only with options (which the
    # Lagrangian does not see) and only under a time limit.
    gap_open = floor_bound(bound) > _strength(assign)
    affordable = n <= MILP_MAX_INPUTS
    if gap_open and not affordable:
        log.note(
            f"milp: not run for {n:,} inputs (over {MILP_MAX_INPUTS:,}: its set-up alone "
            "takes minutes)"
        )
    if gap_open and affordable and (n_vars <= MILP_MAX_VARS or (options and deadline is not None)):
        remaining = _remaining(deadline)
        if remaining is None:
            remaining = AUTO_MILP_SECONDS
        res = None
        if remaining > 0.05:
            try:
                res = milp_highs(
                    a,
                    floor,
                    scope,
                    time_limit=remaining,
                    max_models=max_models,
                    min_cell=min_cell,
                    warm_start=assign,
                    node_limit=budget,
                )
            except MemoryEstimateError as exc:
                # "auto" chooses: without room for the MILP, the Lagrangian answer stands.
                log.note(f"milp: skipped, {exc}")
        if res is not None:
            solver = "highs"
            log.note(f"milp: {res.status}")
            if res.timed_out:
                log.capped.append("MILP")
            if res.assign is not None:
                cand = res.assign
                if problems(a, cand, floor, scope, max_models, min_cell):
                    cand = repair(a, cand, floor, scope, max_models, min_cell)
                assign = better(a, assign, cand)
            bound = log.tighten(bound, res.bound, _strength(assign), "highs")
        elif remaining <= 0.05:
            log.capped.append("MILP (no time left)")
    if floor_bound(bound) <= _strength(assign) and n_vars <= MILP_MAX_VARS and affordable:
        assign = _tie_break(
            a,
            assign,
            floor,
            scope,
            max_models,
            min_cell,
            solver=None,
            deadline=deadline,
            node_limit=budget,
            log=log,
        )
    return assign, bound, solver


def solve_per_input(
    a: np.ndarray,
    floor: float,
    scope: str = "per-model",
    *,
    method: str = "auto",
    solver: str = "highs",
    time_limit: float | None = None,
    max_models: int | None = None,
    min_cell: int = 1,
    warm_start: np.ndarray | None = None,
    budget: int | None = None,
) -> tuple[np.ndarray, Certificate]:
    """Return (assignment int64 [n] with -1 = fallback, certificate).

    ``a``: per-input IIA, [n inputs, M models], values in [0, 1]. ``floor``: λ in (0, 1].
    ``scope``: "per-model" (every cell's mean >= λ) or "global" (the mean over all
    assigned inputs >= λ). ``method``: "ilp" (PuLP MILP with ``solver``: "highs", "cbc"
    or any PuLP solver name) or "auto" (structured, see the module docstring).
    ``time_limit``: seconds for the whole call, a cap (None: no limit for "ilp"; "auto"
    then gives its MILP phase at most ``AUTO_MILP_SECONDS``). ``budget``: "auto"'s
    deterministic work limit, branch-and-bound nodes per MILP phase (None:
    ``DEFAULT_NODE_BUDGET``); "ilp" has none and runs until proven or capped.
    ``max_models``: at most this many non-empty cells. ``min_cell``: every non-empty
    cell holds at least this many inputs. ``warm_start``: a partition to start from;
    checked first (shape, indices, feasibility here), and dropped with a note when bad.

    The certificate's objective is the strength; its bound a proven upper bound on the
    best strength; status "optimal" when they meet; ``capped`` when the time limit, not
    the budget, ended some phase.
    """
    t0 = time.perf_counter()
    a = _validate(a, floor, scope, method, solver, max_models, min_cell, budget)
    if method == "auto" and budget is None:
        budget = DEFAULT_NODE_BUDGET
    if method == "ilp":
        budget = None
    deadline = None if time_limit is None else t0 + float(time_limit)
    n = a.shape[0]
    log = _Log()
    warm, dropped = screen_start(
        a, warm_start, floor, "per-input", scope, max_models=max_models, min_cell=min_cell
    )
    log.note(dropped)
    common = dict(log=log, budget=budget, time_limit=time_limit, t0=t0)
    # Nothing can be assigned when no entry reaches the floor (a non-empty cell's mean is
    # at most its largest entry), when no model may be used, or when cells must be bigger
    # than the input set: the empty partition is optimal without a solver.
    if n == 0 or max_models == 0 or min_cell > n or not np.any(a >= floor - TOL):
        log.note("no input can be assigned: the empty partition is optimal")
        assign = np.full(n, -1, dtype=np.int64)
        return _finish(
            a,
            assign,
            floor,
            scope,
            max_models,
            min_cell,
            method=method,
            solver="presolve",
            bound=0.0,
            **common,
        )
    if method == "ilp":
        assign, bound, name = _solve_ilp(
            a, floor, scope, solver, deadline, max_models, min_cell, warm, log
        )
    else:
        assign, bound, name = _solve_auto(
            a, floor, scope, deadline, max_models, min_cell, warm, budget, log
        )
    return _finish(
        a,
        assign,
        floor,
        scope,
        max_models,
        min_cell,
        method=method,
        solver=name,
        bound=bound,
        **common,
    )
