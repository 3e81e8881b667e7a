"""``auto`` for the pairwise semantics: a proven upper bound, a local search from the best
start we hold, and, on instances small enough, column generation (a Lagrangian bound and a
packing of its cells) and the exact program to close the gap.

The local search runs a deterministic budget of annealing moves; the time limit only caps
it (and the bound LP and the exact program), and the certificate says when it did."""

from __future__ import annotations

import time

import numpy as np

from solver.certificate import Certificate, floor_bound
from solver.feasibility import TOL
from solver.pairwise_bounds import (
    conflict_lp_bound,
    pairwise_upper_bound,
    size_bound,
    size_structure,
)
from solver.pairwise_cells import ENUM_MAX_CELLS
from solver.pairwise_cliques import best_responses, clique_caps, shared_input_bound
from solver.pairwise_colgen import COLGEN_MAX_INPUTS, column_generation
from solver.pairwise_enumerate import reduced_cost_proof
from solver.pairwise_exact import solve_pairwise_exact
from solver.pairwise_sdp import SDP_MAX_INPUTS, sdp_model_caps
from solver.pairwise_search import (
    default_moves,
    search_pairwise,
    search_pairwise_starts,
    strength,
)
from solver.verify import screen_start

BOUND_SHARE = 0.2  # of the time limit, at most BOUND_CAP seconds, goes to the upper bound
BOUND_CAP = 10.0
SEARCH_SHARE_WHEN_EXACT = 0.3  # on small instances the search's time cap is this share
# On instances for the exact program the default budget is this many times the size's
# default: a few seconds there, and stronger partitions for the proofs that follow to close
# (bench/RESULTS.md, section 3)
SMALL_BUDGET_FACTOR = 16
COLGEN_SHARE = 0.6  # of what is left after the search, on small instances
# The SDP size caps run on budgets of SCS iterations (solver.pairwise_sdp), bought by a share
# of the limit less the shares the bound and the clique searches had (the same every run, as
# the time the search left is not): on instances for the exact program, and on larger ones
# (the rest: the bound LP). The guard stops them where they would take more than SDP_GUARD of
# the time left.
SDP_SHARE_SMALL = 0.15
SDP_SHARE = 0.8
SDP_GUARD = 0.85
SDP_MIN_SECONDS = 3.0
# At floor 1, of the time limit, for the per-model clique caps and the shared-input bound:
# shares of the limit, not of what the search left, since the searches run on branch budgets
# (solver.pairwise_cliques) and a budget from the time left would differ between runs
CLIQUE_SHARE = 0.4
# past the SDP's size, a clique search given less than this proves little on dense models
# and takes its time from the bound LP (at 20 s per floor on 1000 inputs: 888 against 878)
CLIQUE_MIN_SECONDS = 8.0
# At floor 1, of the time limit, for the exact best responses after the search (a branch
# budget, as the clique caps'): on the authors' graphs they take about 700 branches
RESPONSE_SHARE = 0.05
CAPS_SHARE = 0.5  # of the clique time for the caps; the rest counts shared inputs once
# on instances too large for the exact program the shared-input bound gets at least this
# share of the limit: the bound LP after it, given the caps, mostly ends at their sum
SHARED_SHARE = 0.35
# of what column generation left, for the enumeration proof; the exact program after it
# rarely closes what the proof left open at this size (64 inputs, λ = 0.925: bound 64)
ENUM_SHARE = 0.85
REFINE_MIN_SECONDS = 5.0  # a bound LP given less than this would not beat the first one


def _floor_one_caps(w: np.ndarray, time_limit: float, seed: int, deadline: float):
    """Clique caps (solver.pairwise_cliques) from the search's largest cell of each model
    alone: a large clique at hand lets the exact search prune from its first branch. The
    searches run on their budgets of moves and branches (``time_limit`` buys the branches),
    ``deadline`` stops them regardless; returns the caps and whether it did."""
    M, n = w.shape[0], w.shape[1]
    known = []
    timed_out = False
    for m in range(M):
        alone = search_pairwise(
            w[m : m + 1],
            1.0,
            "per-model",
            time_limit=max(0.05, deadline - time.perf_counter()),
            seed=seed,
            max_moves=default_moves(n, 1),
        )
        timed_out = timed_out or alone.capped
        known.append(np.nonzero(alone.assignment == 0)[0])
    caps = clique_caps(w, known, time_limit, deadline)
    return caps, timed_out or caps.timed_out


def _refine_seconds(bound_seconds: float) -> float:
    """The least time worth giving the bound LP a second time: twice the first one's."""
    return max(REFINE_MIN_SECONDS, 2.0 * bound_seconds)


def solve_pairwise_auto(
    w: np.ndarray,
    floor: float,
    scope: str,
    *,
    start: np.ndarray | None,
    solver: str,
    time_limit: float,
    seed: int,
    exact_max_inputs: int,
    budget: int | None = None,
    also_from: np.ndarray | None = None,
) -> tuple[np.ndarray, Certificate]:
    """Return (assignment, certificate). ``start``: a partition to improve (checked first:
    a bad one is dropped with a note); ``also_from``: a second start the local search runs
    from as well (a sweep passes the start a lone solve of this floor uses, so that the
    previous floor's partition never steers the search below it); the search also runs from
    the empty partition, each start with the same seed and budget, the strongest result kept
    (``search_pairwise_starts``); ``budget``: annealing moves of the local search per start
    (None: ``default_moves``, ``SMALL_BUDGET_FACTOR`` times that on instances of at most
    ``exact_max_inputs``); ``time_limit``: seconds, a cap on all of it."""
    started = time.perf_counter()
    M, n = w.shape[0], w.shape[1]
    small = n <= exact_max_inputs
    if budget is None:
        budget = default_moves(n, M) * (SMALL_BUDGET_FACTOR if small else 1)
    budget = int(budget)
    notes: list[str] = []
    capped: list[str] = []

    def left() -> float:
        return time_limit - (time.perf_counter() - started)

    best, dropped = screen_start(w, start, floor, "pairwise", scope)
    if best is None:
        best = np.full(n, -1, dtype=np.int64)
    if dropped:
        notes.append(dropped)
    also_from, dropped = screen_start(w, also_from, floor, "pairwise", scope)
    if dropped:
        notes.append(dropped.replace("warm start", "second start"))
    bound_started = time.perf_counter()
    budgeted = min(BOUND_CAP, BOUND_SHARE * time_limit)  # the shares earlier phases were given
    bound, how = pairwise_upper_bound(w, floor, scope, time_limit=budgeted)
    bound_seconds = time.perf_counter() - bound_started
    parts = ["start"]
    # Strength is an integer: a start that reaches the floored bound is already optimal.
    if strength(best) < floor_bound(bound):
        cap = max(left(), 0.0) * (SEARCH_SHARE_WHEN_EXACT if small else 1.0)
        found = search_pairwise_starts(
            w,
            floor,
            scope,
            [best, also_from],
            time_limit=cap,
            seed=seed,
            max_moves=budget,
            stop_at=int(floor_bound(bound)),
        )
        best = found.assignment
        parts = ["local search"]
        notes.append(f"local search: {found.describe()}")
        if found.capped:
            capped.append("local search")
    # Column generation prices cells per model, and the bound LP bounds them, so both need
    # each cell to meet the floor on its own: per-model floors, or any scope at floor 1.
    priced = scope == "per-model" or floor >= 1.0 - TOL
    size_caps = None
    exact_caps = False  # every model's cap is its largest cell: the SDP cannot lower them
    clique_time = CLIQUE_SHARE * time_limit

    def clique_deadline() -> float:
        # a guard, not a budget: the phases after it keep half of what is left, or on large
        # instances the bound LP's least time where that is less (where the search took most
        # of the limit, as with several cells per model, the guard stops the searches and the
        # certificate says the time cut them short)
        keep = 0.5 * max(left(), 0.0)
        if not small:
            keep = min(keep, _refine_seconds(bound_seconds))
        return time.perf_counter() + max(left() - keep, 0.0)

    cliques_wanted = priced and floor >= 1.0 - TOL and strength(best) < floor_bound(bound)
    # past the SDP's size, only where both the budget and half of the time left come to
    # CLIQUE_MIN_SECONDS: the guard would stop searches that the time left cannot hold
    cliques_fit = left() > 1.0 and (
        n <= SDP_MAX_INPUTS or min(clique_time, 0.5 * left()) >= CLIQUE_MIN_SECONDS
    )
    if cliques_wanted and not cliques_fit:
        # said, not silent: the bound then stays where the phases before left it
        if n > SDP_MAX_INPUTS and clique_time < CLIQUE_MIN_SECONDS:
            why = (
                f"the time limit buys them {clique_time:.1f}s, they need "
                f"{CLIQUE_MIN_SECONDS:.0f}s (a time limit of at least "
                f"{CLIQUE_MIN_SECONDS / CLIQUE_SHARE:.0f}s runs them)"
            )
        else:
            need = 1.0 if n <= SDP_MAX_INPUTS else 2 * CLIQUE_MIN_SECONDS
            why = (
                f"{max(left(), 0.0):.1f}s left after the search, they need {need:.0f}s "
                "(a longer time limit runs them)"
            )
        notes.append(f"clique caps skipped: {why}")
    if cliques_wanted and cliques_fit:
        # at floor 1 every cell is a clique: each model's maximum clique caps its cells
        budgeted += clique_time
        caps, late = _floor_one_caps(w, CAPS_SHARE * clique_time, seed, clique_deadline())
        size_caps = caps.caps
        exact_caps = bool(caps.proven.all())
        notes.append(
            f"clique caps {list(map(int, caps.caps))} ({int(caps.proven.sum())} of {M} "
            f"exact, {caps.seconds:.1f}s)"
        )
        if min(n, int(caps.caps.sum())) < bound:
            bound = float(min(n, int(caps.caps.sum())))
            how = f"sum of per-model maximum-clique caps = {int(caps.caps.sum())}"
        if late:
            capped.append("clique caps")
        if strength(best) < floor_bound(bound):
            # the models' largest cliques share inputs: count those once
            shared_time = (1.0 - CAPS_SHARE) * clique_time
            if not small:
                shared_time = max(shared_time, SHARED_SHARE * time_limit)
            shared = shared_input_bound(w, caps, shared_time, clique_deadline())
            notes.append(
                f"shared inputs counted once: {shared.bound} with {shared.shared} shared "
                f"({shared.rounds} rounds, {shared.dropped} taken back out, {shared.seconds:.1f}s)"
            )
            if shared.timed_out:
                capped.append("shared-input bound")
            if shared.bound < bound:
                bound = float(shared.bound)
                how = (
                    f"{shared.shared} inputs counted once plus each model's maximum clique "
                    f"without them = {shared.bound}"
                )
    if floor >= 1.0 - TOL and strength(best) < floor_bound(bound) and left() > 1.0:
        # at floor 1 a model's best cell, the others held, is a maximum clique: exactly (after
        # the clique bounds, whose searches the guards above would otherwise cut shorter)
        budgeted += RESPONSE_SHARE * time_limit
        responses = best_responses(
            w, best, RESPONSE_SHARE * time_limit, time.perf_counter() + 0.5 * left()
        )
        best = responses.assignment
        notes.append(
            f"best responses: {responses.gained} inputs added, {responses.replaced} cells "
            f"replaced by a larger clique ({responses.branches:,} branches)"
        )
        if responses.gained:
            parts.append("best responses")
        if responses.timed_out:
            capped.append("best responses")
    if priced and n <= SDP_MAX_INPUTS and not exact_caps and strength(best) < floor_bound(bound):
        # per-model cell-size caps from the SDP: the bound itself for one model, and
        # smaller size tables for column generation, the exact program and the bound LP
        share = (SDP_SHARE_SMALL if small else SDP_SHARE) * max(time_limit - budgeted, 0.0)
        # a small instance's SDPs take a fraction of a second each: a short limit still
        # leaves them a few seconds
        if small:
            share = max(share, min(SDP_MIN_SECONDS, 0.5 * max(left(), 0.0)))
        if share > 0.5 and left() > 0.5:
            known = np.array([(best == m).sum() for m in range(M)])
            sizes = None if size_caps is None else size_structure(w, floor, caps=size_caps)[0]
            guard = time.perf_counter() + SDP_GUARD * max(left(), 0.0)
            caps = sdp_model_caps(w, floor, known, share, sizes=sizes, deadline=guard)
            size_caps = caps.caps if size_caps is None else np.minimum(size_caps, caps.caps)
            solves = sum(len(t) for t in caps.tests)
            iterations = sum(c.iterations for t in caps.tests for c in t)
            ended = ", budget spent" if not (caps.finished or caps.timed_out) else ""
            notes.append(
                f"SDP size caps {list(map(int, caps.caps))} (size tests "
                f"{list(map(int, caps.size_test_caps))}, {solves} SDP solves, "
                f"{iterations:,} iterations{ended}, {caps.seconds:.1f}s)"
            )
            if min(n, caps.bound) < bound:
                bound = float(min(n, caps.bound))
                how = f"sum of per-model cell-size caps (doubly non-negative SDP) = {caps.bound}"
            if caps.timed_out:
                capped.append("SDP size caps")
    if small and priced and n <= COLGEN_MAX_INPUTS and strength(best) < floor_bound(bound):
        if left() > 1.0:
            cg = column_generation(
                w,
                floor,
                time_limit=COLGEN_SHARE * left(),
                start=best,
                seed=seed,
                size_caps=size_caps,
            )
            if cg.strength > strength(best):
                best = cg.assignment
            notes.append(
                f"column generation: bound {cg.bound:.2f}, a partition of {cg.strength} "
                f"({cg.iterations} LPs, {cg.exact_rounds} exact pricing rounds, {cg.columns} "
                f"cells{', converged' if cg.converged else ''}, {cg.seconds:.1f}s)"
            )
            if cg.bound < bound:
                bound, how = cg.bound, "column generation (Lagrangian, exact pricing)"
            if cg.capped:
                capped.append("column generation")
            parts.append("column generation")
            if cg.multipliers is not None and strength(best) < floor_bound(bound):
                # the column-generation multipliers leave few cells that could beat the best
                # partition: enumerate them, and pack them exactly
                sizes, _ = size_structure(w, floor, caps=size_caps)
                _, largest = size_bound(w, floor, sizes)
                proof = reduced_cost_proof(
                    w,
                    floor,
                    cg.multipliers,
                    cg.pricing_bounds,
                    strength(best),
                    largest,
                    ENUM_SHARE * left(),
                )
                if proof.assignment is not None:
                    best = proof.assignment
                if proof.bound < bound:
                    bound, how = proof.bound, "reduced-cost enumeration of cells, packed exactly"
                if proof.finished:
                    if proof.pack_finished:
                        packer = f"packed by search ({proof.pack_nodes:,} branches)"
                    elif proof.milp:
                        packer = (
                            f"the search stopped at its share of the time "
                            f"({proof.pack_nodes:,} branches), the MILP took the rest"
                        )
                    elif proof.pack_nodes:
                        packer = (
                            f"the search stopped at its share of the time "
                            f"({proof.pack_nodes:,} branches; too many cells for the MILP)"
                        )
                    else:
                        packer = "none to pack (the multipliers' bound alone)"
                    verdict = "proven" if proof.proven else "not closed"
                    if proof.probe:
                        packer = f"{proof.probe}, then {packer}"
                    if proof.room < 0:  # degenerate multipliers (the LP covers every input)
                        state = (
                            f"more than {ENUM_MAX_CELLS:,} cells tie at the least reduced cost, "
                            "so none was kept; not closed"
                        )
                    else:
                        state = (
                            f"{proof.cells:,} cells of reduced cost <= {proof.room:.2f}, "
                            f"{packer}, {verdict}"
                        )
                    if not proof.pack_finished:
                        capped.append("packing search")
                else:
                    state = "stopped by the time"
                    capped.append("cell enumeration")
                notes.append(f"cell enumeration: {state}, {proof.seconds:.1f}s")
        else:
            capped.append("column generation (no time left)")
    if small and strength(best) < floor_bound(bound):
        if left() > 1.0:
            exact, cert = solve_pairwise_exact(
                w,
                floor,
                scope,
                solver=solver,
                time_limit=left(),
                warm_start=best,
                known_bound=bound,
                size_caps=size_caps,
            )
            # Only a strictly stronger partition replaces the search's: ties keep the
            # search's answer, which the seed and budget alone determine.
            if strength(exact) > strength(best):
                best = exact
            if cert.bound is not None and cert.bound < bound:
                bound, how = cert.bound, f"exact program ({cert.solver}, {cert.status})"
            if cert.capped:
                capped.append("exact program")
            parts.append(f"exact program ({cert.solver})")
        else:
            capped.append("exact program (no time left)")
    # On instances too large for the exact program, the time the search left goes to the
    # bound LP, where its first share already proved something below n (it keeps falling
    # with more rounds); below floor 1 it mostly proves nothing, and is not run again.
    if (
        not small
        and bound < n - 0.5
        and strength(best) < floor_bound(bound)
        and left() > _refine_seconds(bound_seconds)
        and priced
    ):
        sizes = fits = None
        if size_caps is not None:
            sizes, fits = size_structure(w, floor, caps=size_caps)
        more, rounds, _ = conflict_lp_bound(w, floor, left(), sizes=sizes, fits=fits)
        if more < bound:
            bound, how = more, f"conflict-set LP given the time the search left ({rounds} rounds)"
        if left() < 1.0:
            capped.append("bound LP")
    notes.insert(0, f"bound: {how}")
    if capped:
        notes.append(
            "the time limit cut short: "
            + ", ".join(capped)
            + " (this result depends on the machine's speed)"
        )
    return best, Certificate.build(
        method="auto",
        solver=" + ".join(parts),
        objective=strength(best),
        bound=bound,
        seconds=time.perf_counter() - started,
        note="; ".join(notes),
        budget=budget,
        time_limit=time_limit,
        capped=bool(capped),
    )
