"""A HiGHS MIP run that keeps its time limit: large models run in a child process that is
killed at the deadline.

HiGHS checks ``time_limit`` only at some points. Its MIP set-up does not look at it: on
20,000 x 64 per-input IIA with ``min_cell`` (1.28 million binaries), a 120 s limit ran past
400 s inside ``HighsCliqueTable`` (the objective's clique partition), with presolve on or
off. A run in its own process can be stopped from outside; a thread cannot. A run the
deadline kills reports a time-limit status with no incumbent and no bound, which is what a
run stopped by the clock before its first node has.

The child is ``python -m solver.highs_child``: a pickled ``MipRequest`` on its stdin, a pickled
``MipRun`` on its stdout. Its start (the imports) takes about 0.4 s.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time
from dataclasses import dataclass

import numpy as np

# Models with at least this many columns run in a child when a time limit is given. Not
# only the largest overrun: 5,000 x 16 per-input IIA (80,000 binaries) under a 10 s limit
# ran 6-77 s past it in process (bench/time_limits.py). Below it the set-up takes well under a
# second, and a child's start (about 0.4 s) would dominate.
CHILD_MIN_COLS = 10_000
# What a child's HiGHS leaves of the limit for the child's start, the transfers and its own
# stop: GRACE_SECONDS plus GRACE_SHARE of the limit.
GRACE_SECONDS = 1.5
GRACE_SHARE = 0.05
KILLED_STATUS = "Time limit reached (the run overran its limit in HiGHS's set-up and was stopped)"


@dataclass
class MipRun:
    """What a HiGHS MIP run left, as plain values (it crosses a process boundary)."""

    status: str  # HiGHS's model status, in its own words
    optimal: bool
    bound: float | None  # HiGHS's proven dual bound where its status vouches for one
    objective: float | None  # the incumbent's objective (None: no incumbent)
    values: np.ndarray | None  # the incumbent's first ``keep`` column values


@dataclass
class MipRequest:
    """A column-wise MIP for highspy: arrays as ``HighsLp`` takes them (maximise when
    ``maximize``), HiGHS options, an optional start, how many column values to return, and
    which columns are integer (None: all)."""

    cost: np.ndarray
    col_lower: np.ndarray
    col_upper: np.ndarray
    row_lower: np.ndarray
    row_upper: np.ndarray
    start: np.ndarray
    index: np.ndarray
    value: np.ndarray
    maximize: bool
    options: dict
    warm: np.ndarray | None
    keep: int
    integer: np.ndarray | None = None


def _solve(req: MipRequest) -> MipRun:
    import highspy

    from solver.backends import highs_mip_bound, new_highs

    lp = highspy.HighsLp()
    n_cols, n_rows = len(req.cost), len(req.row_lower)
    lp.num_col_ = n_cols
    lp.num_row_ = n_rows
    lp.col_cost_ = req.cost
    lp.col_lower_ = req.col_lower
    lp.col_upper_ = req.col_upper
    lp.row_lower_ = req.row_lower
    lp.row_upper_ = req.row_upper
    lp.sense_ = highspy.ObjSense.kMaximize if req.maximize else highspy.ObjSense.kMinimize
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = req.start
    lp.a_matrix_.index_ = req.index
    lp.a_matrix_.value_ = req.value
    lp.a_matrix_.num_col_ = n_cols
    lp.a_matrix_.num_row_ = n_rows
    if req.integer is None:
        lp.integrality_ = [highspy.HighsVarType.kInteger] * n_cols
    else:
        kinds = (highspy.HighsVarType.kContinuous, highspy.HighsVarType.kInteger)
        lp.integrality_ = [kinds[int(flag)] for flag in req.integer]
    h = new_highs()
    for name, value in req.options.items():
        if h.setOptionValue(name, value) != highspy.HighsStatus.kOk:
            raise ValueError(f"HiGHS refused the option {name}={value!r}")
    h.passModel(lp)
    del lp
    if req.warm is not None:
        sol = highspy.HighsSolution()
        sol.col_value = req.warm
        sol.value_valid = True
        h.setSolution(sol)
    h.run()
    status = h.getModelStatus()
    info = h.getInfo()
    has = info.primal_solution_status >= 2
    run = MipRun(
        status=h.modelStatusToString(status),
        optimal=status == highspy.HighsModelStatus.kOptimal,
        bound=highs_mip_bound(h),
        objective=float(info.objective_function_value) if has else None,
        values=np.asarray(h.getSolution().col_value)[: req.keep].copy() if has else None,
    )
    h.clear()
    return run


def highs_limit(time_limit: float) -> float:
    """The limit HiGHS itself gets in a child whose run is killed at ``time_limit``: short
    of it by GRACE_SECONDS plus GRACE_SHARE of it (the child's start, the transfers, HiGHS's
    own stop), so that a run HiGHS stops in time comes back whole; at least half of it."""
    return max(time_limit - GRACE_SECONDS - GRACE_SHARE * time_limit, 0.5 * time_limit)


def run_mip(req: MipRequest, time_limit: float | None) -> MipRun:
    """Solve ``req`` with HiGHS under ``time_limit`` (seconds; None: none). A large model
    with a limit runs in a child process that is killed at the limit (HiGHS gets
    ``highs_limit(time_limit)``); the child then takes ``req``'s arrays (dropped here once
    sent, so that the model is never held twice while HiGHS runs: the memory estimate counts
    one copy)."""
    child = time_limit is not None and len(req.cost) >= CHILD_MIN_COLS
    if time_limit is not None:
        own = highs_limit(time_limit) if child else time_limit
        req.options["time_limit"] = max(float(own), 0.01)
    if not child:
        return _solve(req)
    payload = pickle.dumps(req, protocol=pickle.HIGHEST_PROTOCOL)
    for name in ("cost", "col_lower", "col_upper", "start", "index", "value", "warm", "integer"):
        setattr(req, name, None)
    path = os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")]))
    deadline = time.monotonic() + time_limit
    proc = subprocess.Popen(
        [sys.executable, "-m", "solver.highs_child"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": path},
    )
    try:
        try:
            proc.stdin.write(payload)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # the child died before reading: its exit status and stderr say why
        proc.stdin = None  # sent and closed: communicate() only reads
        del payload
        out, err = proc.communicate(timeout=max(deadline - time.monotonic(), 0.01))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return MipRun(KILLED_STATUS, False, None, None, None)
    if proc.returncode != 0:
        tail = err.decode(errors="replace")[-2000:]
        raise RuntimeError(f"the HiGHS child process exited with {proc.returncode}: {tail}")
    return pickle.loads(out)


_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _child_main() -> None:
    # The result goes to the original stdout, anything printed (HiGHS's banner) to stderr.
    result = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    req = pickle.load(sys.stdin.buffer)
    pickle.dump(_solve(req), result, protocol=pickle.HIGHEST_PROTOCOL)
    result.flush()


if __name__ == "__main__":
    # Run from the module by its own name: what is pickled back must be
    # solver.highs_child.MipRun, not __main__.MipRun.
    from solver.highs_child import _child_main as main

    main()
