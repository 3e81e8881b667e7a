"""Solver back-ends by name: "highs" (highspy, the default), "cbc" (bundled with PuLP), or
any PuLP solver name. Unknown or missing solvers fail early, naming what is installed."""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pulp

from solver.highs_child import CHILD_MIN_COLS, run_mip
from solver.pulp_arrays import pulp_request

ALIASES = {"highs": "HiGHS", "cbc": "PULP_CBC_CMD"}


def available_solvers() -> list[str]:
    return sorted(pulp.listSolvers(onlyAvailable=True))


def check_solver_name(name: str) -> str:
    """The PuLP class name for ``name``; ValueError naming the alternatives when unusable."""
    pulp_name = ALIASES.get(name.lower(), name)
    installed = available_solvers()
    if pulp_name not in pulp.listSolvers():
        raise ValueError(
            f"unknown solver {name!r}; installed and available here: {installed} "
            "(name them as 'highs', 'cbc' or by their PuLP class name)"
        )
    if pulp_name not in installed:
        raise ValueError(
            f"solver {name!r} ({pulp_name}) is not installed here; installed: {installed} "
            "('highs' and 'cbc' come with this package)"
        )
    return pulp_name


_banner_shown = False


def new_highs():
    """A silent ``highspy.Highs``. HiGHS prints its banner to the C stdout the first time one
    is built in a process, before any option can be set; that first build happens with fd 1
    pointed at /dev/null so that tables printed by ``ccm`` stay clean."""
    global _banner_shown
    import os
    import sys

    import highspy

    if not _banner_shown:
        sys.stdout.flush()
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            highs = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
        _banner_shown = True
    else:
        highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    return highs


class WarmStartHiGHS(pulp.HiGHS):
    """pulp.HiGHS that hands the variables' initial values to HiGHS as a MIP start (PuLP's
    HiGHS interface ignores warm starts); the Highs object stays on ``lp.solverModel``."""

    warm = False

    def callSolver(self, lp):  # noqa: N802 (PuLP's name)
        import highspy

        if self.warm:
            variables = lp.variables()
            values = np.zeros(len(variables))
            for var in variables:
                values[var.index] = var.varValue or 0.0
            sol = highspy.HighsSolution()
            sol.col_value = values
            sol.value_valid = True
            lp.solverModel.setSolution(sol)
        lp.solverModel.run()


def make_pulp_solver(
    name: str, time_limit: float | None, warm: bool, log_path: str | None = None, **options
):
    """The PuLP solver object for ``name`` ("highs", "cbc" or a PuLP class name)."""
    pulp_name = check_solver_name(name)
    if pulp_name == "HiGHS":
        new_highs()  # takes HiGHS's one-time banner off stdout before PuLP builds its own
        solver = WarmStartHiGHS(msg=False, timeLimit=time_limit, **options)
        solver.warm = warm
        return solver
    if pulp_name == "PULP_CBC_CMD":
        with warnings.catch_warnings():
            # PuLP 3.3 flags its bundled CBC as deprecated for 4.0; it is the CBC every
            # install has.
            warnings.simplefilter("ignore", DeprecationWarning)
            return pulp.PULP_CBC_CMD(
                msg=False, timeLimit=time_limit, warmStart=warm, logPath=log_path, **options
            )
    kwargs: dict = {"msg": False}
    if time_limit is not None:
        kwargs["timeLimit"] = time_limit
    return pulp.getSolver(pulp_name, **kwargs)


@dataclass(frozen=True)
class Verdict:
    """What the solver itself says about a maximisation it ran (never PuLP's reading, which
    calls a stop at the time limit "Optimal")."""

    solver: str  # name and version
    status: str  # the solver's own words
    proven: bool  # optimality proven by the solver
    bound: float | None  # proven upper bound on the objective, None when unknown
    has_incumbent: bool
    objective: float | None  # the incumbent's objective as the solver reports it
    seconds: float


_CBC_RESULT = re.compile(r"^Result - (.*)$", re.M)
_CBC_BOUND = re.compile(r"^Upper bound:\s+(\S+)", re.M)  # printed in the problem's sense
_CBC_OBJECTIVE = re.compile(r"^Objective value:\s+(\S+)", re.M)


def _float(found: list[str]) -> float | None:
    try:
        value = float(found[-1]) if found else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def solve_with_pulp(
    prob: pulp.LpProblem, name: str, time_limit: float | None, warm: bool, **options
) -> Verdict:
    """Solve the maximisation ``prob`` with the named solver and read its own verdict;
    ``options`` go to the PuLP solver (gapRel, gapAbs, ...)."""
    if prob.sense != pulp.LpMaximize:
        raise ValueError("solve_with_pulp reads bounds for maximisation problems only")
    pulp_name = check_solver_name(name)
    log_path = None
    if pulp_name == "PULP_CBC_CMD":
        # The log is the only place CBC says whether it stopped on time, and its bound.
        fd, log_path = tempfile.mkstemp(prefix="ccm_cbc_", suffix=".log")
        os.close(fd)
    started = time.perf_counter()
    if pulp_name == "HiGHS" and time_limit is not None and prob.numVariables() >= CHILD_MIN_COLS:
        return _highs_in_child(prob, time_limit, warm, options, started)
    try:
        prob.solve(make_pulp_solver(name, time_limit, warm, log_path, **options))
        seconds = time.perf_counter() - started
        if pulp_name == "HiGHS":
            return _highs_verdict(prob.solverModel, seconds, float(prob.objective.constant))
        if pulp_name == "PULP_CBC_CMD":
            with open(log_path, errors="replace") as fh:
                text = fh.read()
            result = _CBC_RESULT.findall(text)
            status = result[-1].strip() if result else "unknown"
            proven = status.startswith("Optimal solution found")
            objective = _float(_CBC_OBJECTIVE.findall(text))
            # CBC's bound line is trusted only after a proof or a limit stop ("Stopped on
            # time", "... on iterations", "... on nodes", ...), never after an error.
            bound = objective if proven else None
            if status.startswith("Stopped on"):
                bound = _float(_CBC_BOUND.findall(text))
            has = objective is not None and "no feasible" not in text.lower()
            return Verdict(
                f"CBC (bundled with PuLP {pulp.__version__})",
                status,
                proven,
                bound,
                has,
                objective,
                seconds,
            )
    finally:
        if log_path is not None and os.path.exists(log_path):
            os.unlink(log_path)
    # Any other PuLP solver: its Optimal is trusted only when no time limit could stop it.
    status = pulp.LpStatus[prob.status]
    proven = prob.status == pulp.LpStatusOptimal and time_limit is None
    objective = pulp.value(prob.objective)
    has = any(v.varValue is not None for v in prob.variables())
    return Verdict(
        pulp_name,
        status,
        proven,
        objective if proven else None,
        has,
        None if objective is None else float(objective),
        seconds,
    )


# HiGHS statuses after which its MIP dual bound is the bound of a normally running branch
# and bound. Any other stop (memory limit, solve/presolve/postsolve errors, unknown) leaves
# mip_dual_bound at whatever it held, often 0: a 10^5 x 64 run that hit "Memory limit
# reached" reported 0, which once turned its incumbent into a false "optimal".
_HIGHS_BOUND_STATUSES = (
    "kOptimal",
    "kTimeLimit",
    "kIterationLimit",
    "kSolutionLimit",
    "kInterrupt",
    "kHighsInterrupt",
    "kObjectiveBound",
    "kObjectiveTarget",
)


def highs_mip_bound(highs, sign: float = 1.0) -> float | None:
    """HiGHS's proven MIP dual bound (times ``sign``; -1 when HiGHS minimised the negated
    objective), or None when the status does not vouch for it or it is not finite."""
    import highspy

    status = highs.getModelStatus()
    trusted = {
        getattr(highspy.HighsModelStatus, name)
        for name in _HIGHS_BOUND_STATUSES
        if hasattr(highspy.HighsModelStatus, name)
    }
    if status not in trusted:
        return None
    dual = float(highs.getInfo().mip_dual_bound)
    if not math.isfinite(dual) or abs(dual) >= 1e300:
        return None
    return sign * dual


def _highs_verdict(highs, seconds: float, constant: float) -> Verdict:
    import highspy

    status = highs.getModelStatus()
    info = highs.getInfo()
    has = info.primal_solution_status >= 2
    # pulp.HiGHS minimises the negated objective, so bound and objective flip sign; it
    # leaves the objective's constant out, which goes back in here.
    objective = constant - float(info.objective_function_value) if has else None
    bound = highs_mip_bound(highs, -1.0)
    return Verdict(
        f"HiGHS (highspy {_highs_version()})",
        highs.modelStatusToString(status),
        status == highspy.HighsModelStatus.kOptimal,
        None if bound is None else bound + constant,
        has,
        objective,
        seconds,
    )


def _highs_in_child(
    prob: pulp.LpProblem, time_limit: float, warm: bool, options: dict, started: float
) -> Verdict:
    """HiGHS on ``prob`` in a child process killed at ``time_limit``
    (``solver.highs_child.run_mip``; in process its MIP set-up can run far past the limit):
    the incumbent's values go back onto the variables, as PuLP's own solve leaves them."""
    req, variables, constant = pulp_request(prob, warm, options)
    # the arrays' build counts against the limit
    run = run_mip(req, max(time_limit - (time.perf_counter() - started), 0.01))
    if run.values is not None:
        for var, value in zip(variables, run.values.tolist(), strict=True):
            var.varValue = value
    return Verdict(
        f"HiGHS (highspy {_highs_version()})",
        run.status,
        run.optimal,
        None if run.bound is None else run.bound + constant,
        run.objective is not None,
        None if run.objective is None else run.objective + constant,
        time.perf_counter() - started,
    )


def _highs_version() -> str:
    from importlib.metadata import version

    return version("highspy")
