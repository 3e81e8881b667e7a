"""The library surface: a plain-constructor ``Solver`` with ``solve`` (one floor) and
``frontier`` (a sweep), and the matching functions.

Every partition is checked by ``solver.verify.check_partition`` before it is returned.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from solver.cells import (
    cell_tables,
    check_cells,
    copy_names,
    expand,
    from_copies,
    to_copies,
)
from solver.certificate import Certificate
from solver.data import IIADataError, PairwiseIIA, PerInputIIA
from solver.edges import EDGES, apply_edge
from solver.feasibility import SCOPES, SEMANTICS
from solver.greedy import greedy_partition, greedy_per_input
from solver.memory import check_dense_memory
from solver.result import Frontier, Partition
from solver.sparse_data import SparsePairwiseIIA
from solver.verify import check_partition, screen_start

__all__ = ["METHODS", "SCOPES", "SEMANTICS", "Solver", "SolverConfigError", "frontier", "solve"]

METHODS = ("greedy", "ilp", "auto")
DEFAULT_TIME_LIMIT = 30.0  # seconds per floor for `auto` when none is given
EXACT_MAX_INPUTS = 100  # pairwise instances this small also get the exact program in `auto`
AUTO_RESOLUTION = 1e-3  # floors="auto", per-input: breakpoints located to this
AUTO_MAX_SOLVES = 64  # floors="auto", per-input: at most this many solves
# floors="auto", pairwise: 1.0 down to 0.5 in steps of 0.01
PAIRWISE_AUTO_FLOORS: tuple[float, ...] = tuple(round(1.0 - 0.01 * k, 2) for k in range(51))

IIAData = PairwiseIIA | PerInputIIA | SparsePairwiseIIA


class SolverConfigError(ValueError):
    """A solve that was asked for in a way that cannot work; the message names the fix."""


def _choice(value: str, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise SolverConfigError(f"unknown {what} {value!r}; choose one of {list(allowed)}")
    return value


def check_floor(floor: float) -> float:
    floor = float(floor)
    if not math.isfinite(floor) or not 0.0 < floor <= 1.0:
        raise SolverConfigError(
            f"floor {floor!r} is outside (0, 1]: a faithfulness floor is an IIA such as 0.95"
        )
    return floor


def check_cells_per_model(k, semantics: str, scope: str) -> int:
    """K as a whole number >= 1, for a semantics and scope that can hold it."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise SolverConfigError(
            f"cells_per_model must be a whole number of at least 1, got {k!r}; 1 gives each "
            "model one cell"
        )
    if k > 1 and semantics != "pairwise":
        raise SolverConfigError(
            f"cells_per_model={k} needs pairwise semantics: under per-input semantics a cell's "
            "IIA is a mean of its inputs' scores, so the union of cells that each meet the "
            "floor meets it too and one cell per model already explains as many inputs; "
            "use cells_per_model=1"
        )
    if k > 1 and scope != "per-model":
        raise SolverConfigError(
            f"cells_per_model={k} needs scope='per-model': a global floor pools every cell's "
            "pairs, so a model's cells are not judged on their own; use scope='per-model' or "
            "cells_per_model=1"
        )
    return int(k)


class Solver:
    """Finds the input-to-model partition that explains the most inputs at a faithfulness floor.

    Parameters
    ----------
    semantics : "pairwise" (the paper's: mean over pairs inside a cell) or "per-input"
        (the mean of each input's IIA inside a cell; linear in the assignment).
    scope : "per-model" (every non-empty cell meets the floor) or "global" (the pooled IIA
        of all candidate cells meets it).
    method : "greedy" (the authors' algorithm), "ilp" (an integer program through the named
        solver) or "auto" (the best this package can do within the time limit).
    solver : "highs" (default, via highspy), "cbc" (bundled with PuLP) or any PuLP solver name.
    time_limit : seconds per floor, a cap; None means no limit for "ilp" and 30 s for "auto".
    max_models, min_cell : per-input only: at most K models used, at least c inputs per cell.
    seed : seeds the randomised searches, so a run can be repeated.
    edge : "mean" (the paper's: a pair counts ½(s(i←j) + s(j←i))) or "both" (an edge only
        where both directions succeed, as "Bucketing the Good Apples"); "both" needs the
        pairwise tensor with weights in {0, ½, 1} and is applied to the data before any solve.
    budget : the deterministic work limit of "auto" per floor: annealing moves of the local
        search from each of its starts (pairwise: the greedy partition, the empty one, and in
        a sweep the previous floor's), branch-and-bound nodes of each MILP phase (per-input).
        None: a default from the instance's size (pairwise: two annealing cycles, 2000·n·(M + 1)
        moves each, and 16 times that on instances small enough for the exact program;
        per-input: 5000 nodes), never from the clock. The same seed and budget
        give the same partition on any machine unless the time limit cuts the work short,
        which the certificate reports (``capped``, and the note says where).
    cells_per_model : K, pairwise semantics with per-model floors only: a model may hold up
        to K disjoint cells, each meeting the floor on its own (a model faithful on two
        regions need not be on their union). Solved exactly as the one-cell problem over K
        copies of each model (``solver.cells``); results carry ``Partition.cell``.
    """

    def __init__(
        self,
        semantics: str = "pairwise",
        scope: str = "per-model",
        method: str = "auto",
        solver: str = "highs",
        time_limit: float | None = None,
        max_models: int | None = None,
        min_cell: int = 1,
        seed: int = 0,
        budget: int | None = None,
        edge: str = "mean",
        cells_per_model: int = 1,
    ) -> None:
        self.semantics = _choice(semantics, SEMANTICS, "semantics")
        self.edge = _choice(edge, EDGES, "edge")
        self.scope = _choice(scope, SCOPES, "floor scope")
        self.method = _choice(method, METHODS, "method")
        self.solver = solver
        if time_limit is not None and not time_limit > 0:
            raise SolverConfigError(f"time limit must be positive seconds, got {time_limit!r}")
        self.time_limit = time_limit
        if max_models is not None and max_models < 1:
            raise SolverConfigError(f"max_models must be at least 1, got {max_models}")
        if min_cell < 1:
            raise SolverConfigError(f"min_cell must be at least 1, got {min_cell}")
        if semantics == "pairwise" and (max_models is not None or min_cell > 1):
            raise SolverConfigError(
                "max_models and min_cell are supported for per-input semantics only; "
                "drop them or use semantics='per-input'"
            )
        self.max_models = max_models
        self.min_cell = min_cell
        self.seed = seed
        if budget is not None and (isinstance(budget, bool) or int(budget) != budget or budget < 1):
            raise SolverConfigError(
                f"budget must be a positive whole number (annealing moves for pairwise "
                f"semantics, MILP nodes for per-input), got {budget!r}; or None for the default"
            )
        self.budget = None if budget is None else int(budget)
        self.cells_per_model = check_cells_per_model(cells_per_model, self.semantics, self.scope)
        if method != "greedy":
            from solver.backends import check_solver_name

            check_solver_name(solver)

    # -- data -------------------------------------------------------------------------------

    def prepare(
        self, data: IIAData, candidates: Sequence[str] | None = None, fallback: str | None = None
    ) -> tuple[np.ndarray, tuple[str, ...], str | None]:
        """The candidates' values in the layout the semantics needs, their names, the fallback."""
        if fallback is not None:
            data = data.with_fallback(fallback)
        chosen = apply_edge(data.candidates(candidates), self.edge)
        if isinstance(chosen, SparsePairwiseIIA):
            # Only the scored pairs: the values stay the sparse tensor (pairwise) or become
            # each input's mean over its scored pairs (per-input).
            if self.semantics == "pairwise":
                if self.method == "ilp":
                    raise SolverConfigError(
                        "method 'ilp' has no exact program over a sparse pair tensor; use "
                        "method 'auto' (the local search and a proven bound) or 'greedy'"
                    )
                return chosen, chosen.models, data.fallback
            chosen = chosen.to_per_input()
            return chosen.iia, chosen.models, data.fallback
        if self.semantics == "pairwise":
            if not isinstance(chosen, PairwiseIIA):
                raise IIADataError(
                    "pairwise semantics needs the pairwise tensor [models, n, n]; a per-input "
                    "matrix supports semantics 'per-input' only"
                )
            # Refused before the solver builds its working copies of w [M·K, n, n].
            check_dense_memory(chosen.n_inputs, len(chosen.models) * self.cells_per_model)
            return chosen.weights, chosen.models, data.fallback
        if isinstance(chosen, PairwiseIIA):
            chosen = chosen.to_per_input()
        return chosen.iia, chosen.models, data.fallback

    # -- solving ----------------------------------------------------------------------------

    def solve(
        self,
        data: IIAData,
        floor: float,
        *,
        candidates: Sequence[str] | None = None,
        fallback: str | None = None,
        warm_start: np.ndarray | Partition | None = None,
    ) -> Partition:
        """One floor. ``warm_start``: model indices per input (-1: the fallback), or a
        Partition (its cells too, with several cells per model); one that is infeasible here
        is dropped, with the reason in the certificate's note."""
        values, models, fallback = self.prepare(data, candidates, fallback)
        warm_cell = None
        if isinstance(warm_start, Partition):
            warm_start, warm_cell = warm_start.assignment, warm_start.cell
        return self._solve_prepared(
            values, models, fallback, check_floor(floor), warm_start, warm_cell
        )

    def frontier(
        self,
        data: IIAData,
        floors: Sequence[float] | str,
        *,
        candidates: Sequence[str] | None = None,
        fallback: str | None = None,
        progress=None,
        resolution: float = AUTO_RESOLUTION,
        max_solves: int = AUTO_MAX_SOLVES,
    ) -> Frontier:
        """Solve every floor, highest first, each warm-started from the one above it: a
        partition that meets λ meets every λ' < λ, so strength never drops as λ falls.

        ``floors="auto"`` chooses the floors (method "ilp" or "auto" only: the greedy gives
        no bound, so it cannot tell a breakpoint from a miss):

        - per-input semantics: the breakpoints of the strength-faithfulness curve. Strength
          is piecewise constant in λ; its change points are located by bisection on a grid
          of step ``resolution`` from 1.0 down to the highest mean IIA of one candidate over
          all inputs (at and below it, that candidate alone explains every input, so the
          curve is flat); a partition found at one floor also stands up to its weakest
          cell's IIA (per-model scope), which places most breakpoints with a solve or two.
          The frontier holds 1.0 and, for each step of the curve, the highest grid floor
          found on it (the stronger partition still holds there; one ``resolution`` above,
          strength is lower). A breakpoint is located exactly only where the solves around
          it were optimal: every point keeps its certificate, and ``Frontier.note`` counts
          the solves that were not. At most ``max_solves`` solves; when the cap stops the
          bisection, the note says so.
        - pairwise semantics: the fixed grid ``PAIRWISE_AUTO_FLOORS`` (1.0 down to 0.5 in
          steps of 0.01). Breakpoints are not searched for, since a pairwise solve is often
          not optimal and bisection would then place them wrongly.
        """
        if isinstance(floors, str):
            if floors != "auto":
                raise SolverConfigError(f"floors must be numbers or 'auto', got {floors!r}")
            self._check_auto()
            values, models, fallback = self.prepare(data, candidates, fallback)
            if self.semantics == "pairwise":
                return self._sweep(
                    values,
                    models,
                    fallback,
                    list(PAIRWISE_AUTO_FLOORS),
                    progress,
                    note="floors: auto, the fixed grid 1.0 down to 0.5 in steps of 0.01",
                )
            return self._auto_per_input(
                values, models, fallback, float(resolution), int(max_solves), progress
            )
        floors = sorted({check_floor(f) for f in floors}, reverse=True)
        if not floors:
            raise SolverConfigError("give at least one floor")
        values, models, fallback = self.prepare(data, candidates, fallback)
        return self._sweep(values, models, fallback, floors, progress)

    def auto_floors(
        self,
        data: IIAData,
        *,
        candidates: Sequence[str] | None = None,
        fallback: str | None = None,
        resolution: float = AUTO_RESOLUTION,
        max_solves: int = AUTO_MAX_SOLVES,
    ) -> list[float]:
        """The floors ``frontier(data, "auto")`` chooses, highest first (see ``frontier``)."""
        return self.frontier(
            data,
            "auto",
            candidates=candidates,
            fallback=fallback,
            resolution=resolution,
            max_solves=max_solves,
        ).floors

    def _check_auto(self) -> None:
        if self.method == "greedy":
            raise SolverConfigError(
                "floors 'auto' needs a method that gives a bound: the greedy cannot tell a "
                "breakpoint of the frontier from a miss; use method 'auto' or 'ilp', or give "
                "the floors as a list"
            )

    def _sweep(self, values, models, fallback, floors, progress, note: str = "") -> Frontier:
        results: list[Partition] = []
        previous: Partition | None = None
        for floor in floors:
            warm = None if previous is None else previous.assignment
            warm_cell = None if previous is None else previous.cell
            result = self._solve_prepared(values, models, fallback, floor, warm, warm_cell)
            if previous is not None and result.strength < previous.strength:
                result = self._keep_previous(values, models, fallback, floor, previous, result)
            results.append(result)
            previous = result
            if progress is not None:
                progress(result)
        return Frontier(
            self.semantics,
            self.scope,
            models,
            fallback,
            tuple(_carry_bounds_up(results)),
            self.edge,
            note,
        )

    def _auto_per_input(
        self, values, models, fallback, resolution, max_solves, progress
    ) -> Frontier:
        # Bisection on the grid 1 - k·resolution, k = 0..K. The curve is flat at and below
        # the highest mean IIA of one candidate over all inputs (that candidate alone
        # explains every input), so K is the first grid floor at or below it: a lower floor
        # could only repeat strength n. A still lower choice (0.5, or the lowest mean) would
        # spend solves on that flat stretch.
        if not 0 < resolution < 1:
            raise SolverConfigError(f"resolution must be in (0, 1), got {resolution!r}")
        if max_solves < 2:
            raise SolverConfigError(f"max_solves must be at least 2, got {max_solves!r}")
        n = values.shape[0]
        means = values.mean(axis=0) if values.shape[1] else np.zeros(1)
        best = int(np.argmax(means))
        limit = math.ceil(1 / resolution - 1e-9) - 1  # the last k whose floor is above 0
        last = min(limit, max(0, math.ceil((1.0 - float(means[best])) / resolution - 1e-9)))

        def grid(k: int) -> float:
            return 1.0 if k == 0 else round(1.0 - k * resolution, 12)

        solved: dict[int, Partition] = {}
        lifted: set[int] = set()
        count = {"solves": 0, "weak": 0}

        def lift(k: int, result: Partition) -> None:
            # A partition is feasible up to its weakest cell's IIA (per-model scope), so it
            # also stands at the highest grid floor at or below that: no solve needed, and
            # its bound stays valid there (the best strength only falls as the floor rises).
            if self.scope != "per-model" or not result.cell_iia:
                return
            low = min(result.cell_iia.values())
            up = max(0, math.ceil((1.0 - low) / resolution - 1e-9))
            while up < k and grid(up) > low:
                up += 1
            if up >= k or up in solved:
                return
            cert = result.certificate.with_note(
                f"carried from floor {grid(k)}: every cell's IIA is at least {grid(up)}"
            )
            solved[up] = self._finish(values, models, fallback, grid(up), result.assignment, cert)
            lifted.add(up)

        def at(k: int) -> None:
            above = [solved[j] for j in solved if j < k]
            held = max(above, key=lambda p: p.strength) if above else None
            warm = None if held is None else held.assignment
            if k == last and len(models):
                warm = np.full(n, best, dtype=np.int64)  # feasible here: the flat stretch
            result = self._solve_prepared(values, models, fallback, grid(k), warm)
            count["solves"] += 1
            count["weak"] += result.certificate.status != "optimal"
            if held is not None and result.strength < held.strength:
                result = self._keep_previous(values, models, fallback, grid(k), held, result)
            solved[k] = result
            lift(k, result)

        at(0)
        if last > 0:
            at(last)
        open_steps = 0
        while True:
            keys = sorted(solved)
            gaps = [
                (i, j)
                for i, j in zip(keys, keys[1:])
                if j - i > 1 and solved[i].strength < solved[j].strength
            ]
            if not gaps:
                break
            if count["solves"] >= max_solves:
                open_steps = len(gaps)
                break
            i, j = gaps[0]  # the highest first: its warm starts
            # Just above a lifted point first (that is the breakpoint when no other partition
            # of its strength has stronger cells), else halfway.
            probe = j - 1 if j in lifted else (i + j) // 2
            lifted.discard(j)
            at(probe)
        # Strength never drops as the floor falls: a partition held above is feasible below.
        chosen: list[Partition] = []
        previous: Partition | None = None
        for k in sorted(solved):
            result = solved[k]
            if previous is not None and result.strength < previous.strength:
                result = self._keep_previous(values, models, fallback, grid(k), previous, result)
            if previous is None or result.strength > previous.strength:
                chosen.append(result)  # the highest floor found on this step
            previous = result
        for result in chosen:
            if progress is not None:
                progress(result)
        solves, weak = count["solves"], count["weak"]
        notes = [f"floors: auto, breakpoints to {resolution:g} from {solves} solves"]
        if weak:
            notes.append(
                f"{weak} of {solves} solves were not optimal: a breakpoint next to one "
                "may be misplaced"
            )
        if open_steps:
            notes.append(
                f"stopped at the cap of {max_solves} solves: {open_steps} intervals between "
                f"these floors still hold change points not located to {resolution:g}"
            )
        return Frontier(
            self.semantics,
            self.scope,
            models,
            fallback,
            tuple(chosen),
            self.edge,
            "; ".join(notes),
        )

    def _keep_previous(self, values, models, fallback, floor, previous, weaker) -> Partition:
        # A search can end below a partition we already hold (the greedy never sees the
        # warm start). The held one is feasible here: a cell that meets a floor meets every
        # lower one. So a valid bound at this floor is at least its strength, and
        # Certificate.build refuses (raises) rather than clamps a bound that is not.
        cert = weaker.certificate
        kept = Certificate.build(
            method=cert.method,
            solver=cert.solver,
            objective=previous.strength,
            bound=cert.bound,
            seconds=cert.seconds,
            note="; ".join(
                x
                for x in (
                    cert.note,
                    f"kept the partition of floor {previous.floor}, stronger than this floor's",
                )
                if x
            ),
            budget=cert.budget,
            time_limit=cert.time_limit,
            capped=cert.capped,
        )
        return self._finish(
            values, models, fallback, floor, previous.assignment, kept, previous.cell
        )

    def _solve_prepared(
        self, values, models, fallback, floor, warm_start, warm_cell=None
    ) -> Partition:
        if self.cells_per_model > 1:
            return self._solve_cells(values, models, fallback, floor, warm_start, warm_cell)
        started = time.perf_counter()
        # Every start is checked before a solver sees it: a bad one is dropped, with the
        # reason in the certificate's note, never an internal error later.
        warm_start, dropped = screen_start(
            values,
            warm_start,
            floor,
            self.semantics,
            self.scope,
            max_models=self.max_models,
            min_cell=self.min_cell,
        )
        if isinstance(values, SparsePairwiseIIA):
            assignment, cert = self._sparse(values, floor, warm_start)
        elif self.semantics == "pairwise":
            assignment, cert = self._pairwise(values, floor, warm_start)
        else:
            assignment, cert = self._per_input(values, floor, warm_start)
        if cert.seconds <= 0:
            cert = cert.replace(seconds=time.perf_counter() - started)
        if dropped and dropped not in cert.note:
            cert = cert.with_note(dropped)
        return self._finish(values, models, fallback, floor, assignment, cert)

    def _solve_cells(self, values, models, fallback, floor, warm_start, warm_cell) -> Partition:
        # K cells per model is the one-cell problem over K copies of each model
        # (solver.cells): the same search, bounds and exact program, then mapped back.
        k = self.cells_per_model
        start = warm_start
        if warm_start is not None:
            try:
                start = to_copies(np.asarray(warm_start).astype(np.int64), warm_cell, k)
            except (TypeError, ValueError):
                pass  # left as given: the screen drops it and says why
        one_cell = copy.copy(self)
        one_cell.cells_per_model = 1
        copies = expand(values, k)
        found = one_cell._solve_prepared(
            copies, copy_names(models, k), fallback, floor, start, None
        )
        del copies
        assignment, cell = from_copies(found.assignment, k)
        cert = found.certificate.with_note(
            f"cells per model: up to {k}, solved as {k} copies of each model"
        )
        return self._finish(values, models, fallback, floor, assignment, cert, cell)

    def _finish(self, values, models, fallback, floor, assignment, cert, cell=None) -> Partition:
        assignment = np.asarray(assignment, dtype=np.int64)
        if self.cells_per_model > 1:
            if cell is None:  # a one-cell partition: each model's inputs are its cell 0
                cell = np.where(assignment >= 0, 0, -1)
            _, cell = from_copies(
                to_copies(assignment, cell, self.cells_per_model), self.cells_per_model
            )
            iia = check_cells(values, assignment, cell, floor, self.cells_per_model)
            weakest, cells_iia = cell_tables(iia, models)
            return Partition(
                floor,
                self.semantics,
                self.scope,
                models,
                fallback,
                assignment,
                weakest,
                cert,
                cell=cell,
                cells_iia=cells_iia,
            )
        iia = check_partition(
            values,
            assignment,
            floor,
            self.semantics,
            self.scope,
            max_models=self.max_models,
            min_cell=self.min_cell,
        )
        cell_iia = {models[m]: v for m, v in sorted(iia.items())}
        return Partition(
            floor, self.semantics, self.scope, models, fallback, assignment, cell_iia, cert
        )

    def _greedy(self, values, floor) -> tuple[np.ndarray, Certificate]:
        started = time.perf_counter()
        if self.semantics == "pairwise":
            # The authors' greedy meets the floor in every cell, so it also meets a global one.
            assignment = greedy_partition(values, floor)
        else:
            assignment = greedy_per_input(values, floor)
        cert = Certificate.build(
            method="greedy",
            solver="authors-greedy",
            objective=int((assignment >= 0).sum()),
            bound=None,
            seconds=time.perf_counter() - started,
            time_limit=self.time_limit,
        )
        return assignment, cert

    def _sparse(self, data, floor, warm_start) -> tuple[np.ndarray, Certificate]:
        from solver.sparse_search import greedy_pairwise_sparse, solve_pairwise_sparse

        if self.method == "greedy":
            # The authors' greedy reads every pair; over the scored pairs alone the greedy is
            # each input in its best model, repaired (solver.sparse_search).
            started = time.perf_counter()
            assignment = greedy_pairwise_sparse(data, floor, self.scope)
            return assignment, Certificate.build(
                method="greedy",
                solver="sparse-greedy",
                objective=int((assignment >= 0).sum()),
                bound=None,
                seconds=time.perf_counter() - started,
                time_limit=self.time_limit,
            )
        return solve_pairwise_sparse(
            data,
            floor,
            scope=self.scope,
            seed=self.seed,
            budget=self.budget,
            time_limit=self.time_limit or DEFAULT_TIME_LIMIT,
            start=warm_start,
        )

    def _pairwise(self, w, floor, warm_start) -> tuple[np.ndarray, Certificate]:
        greedy, greedy_cert = self._greedy(w, floor)
        if self.method == "greedy":
            return greedy, greedy_cert
        start = _stronger(greedy, warm_start)
        if self.method == "ilp":
            from solver.pairwise_exact import solve_pairwise_exact

            return solve_pairwise_exact(
                w,
                floor,
                self.scope,
                solver=self.solver,
                time_limit=self.time_limit,
                warm_start=start,
            )
        from solver.pairwise_auto import solve_pairwise_auto

        return solve_pairwise_auto(
            w,
            floor,
            self.scope,
            start=start,
            solver=self.solver,
            time_limit=self.time_limit or DEFAULT_TIME_LIMIT,
            seed=self.seed,
            exact_max_inputs=EXACT_MAX_INPUTS,
            budget=self.budget,
            # a sweep's previous partition is a good start but may hold the search in its
            # basin (tests/test_api.py: 93 from it, 94 alone): the search also runs from the
            # start a lone solve of this floor uses (once, where that is the start already),
            # so a sweep's search is never below a lone one
            also_from=greedy,
        )

    def _per_input(self, a, floor, warm_start) -> tuple[np.ndarray, Certificate]:
        if self.method == "greedy":
            return self._greedy(a, floor)
        from solver.per_input import solve_per_input

        limit = self.time_limit
        if self.method == "auto" and limit is None:
            limit = DEFAULT_TIME_LIMIT
        return solve_per_input(
            a,
            floor,
            self.scope,
            method=self.method,
            solver=self.solver,
            time_limit=limit,
            max_models=self.max_models,
            min_cell=self.min_cell,
            warm_start=warm_start,
            budget=self.budget if self.method == "auto" else None,
        )


def _carry_bounds_up(results: list[Partition]) -> list[Partition]:
    """``results`` (highest floor first) with each bound lowered to the least bound proven at
    any floor at or below it: a partition that meets λ meets every λ' < λ, so the best strength
    only falls as the floor rises, and a bound at a lower floor holds at a higher one."""
    out = list(results)
    least: tuple[float, float] | None = None  # (bound, the floor it was proven at)
    for i in range(len(out) - 1, -1, -1):
        cert = out[i].certificate
        if cert.bound is not None and (least is None or cert.bound <= least[0]):
            least = (cert.bound, out[i].floor)
        elif least is not None:
            carried = Certificate.build(
                method=cert.method,
                solver=cert.solver,
                objective=cert.objective,
                bound=least[0],
                seconds=cert.seconds,
                note=cert.note,
                budget=cert.budget,
                time_limit=cert.time_limit,
                capped=cert.capped,
            ).with_note(f"bound carried from floor {least[1]:g}")
            out[i] = replace(out[i], certificate=carried)
    return out


def _stronger(a: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    # Both are feasible here: the greedy by construction, the warm start by screen_start.
    if b is None:
        return a
    return b if (b >= 0).sum() > (a >= 0).sum() else a


def solve(data: IIAData, floor: float, **kwargs) -> Partition:
    """One floor; keyword arguments are Solver's, plus ``candidates`` and ``fallback``."""
    select = {k: kwargs.pop(k) for k in ("candidates", "fallback", "warm_start") if k in kwargs}
    return Solver(**kwargs).solve(data, floor, **select)


def frontier(data: IIAData, floors: Sequence[float] | str, **kwargs) -> Frontier:
    """A sweep of floors (or "auto"); keyword arguments are Solver's, plus ``candidates``,
    ``fallback``, ``progress``, ``resolution`` and ``max_solves``."""
    keys = ("candidates", "fallback", "progress", "resolution", "max_solves")
    select = {k: kwargs.pop(k) for k in keys if k in kwargs}
    return Solver(**kwargs).frontier(data, floors, **select)
