"""A PuLP model as the arrays of a ``solver.highs_child.MipRequest``, so that a PuLP model
solved by HiGHS can run in a child process that is killed at the time limit (PuLP's own
HiGHS interface runs HiGHS in process, where its MIP set-up does not look at the clock).

The columns, rows and bounds are the ones ``pulp.HiGHS`` builds (its ``buildSolverModel``):
the variables in ``prob.variables()`` order, one row per constraint with the bounds PuLP
gives it, integer where PuLP's category says so; the objective is maximised as written
(PuLP's interface negates it and minimises), its constant added back by the caller.
"""

from __future__ import annotations

import numpy as np
import pulp

from solver.highs_child import MipRequest

# the PuLP HiGHS options that have a HiGHS name
_OPTION_NAMES = {"gapRel": "mip_rel_gap", "gapAbs": "mip_abs_gap", "threads": "threads"}


def pulp_request(
    prob: pulp.LpProblem, warm: bool, options: dict
) -> tuple[MipRequest, list[pulp.LpVariable], float]:
    """(the request, its columns' variables in order, the objective's constant) for the
    maximisation ``prob``; ``warm``: pass the variables' values as a MIP start;
    ``options``: PuLP's HiGHS keywords (gapRel, gapAbs, threads), ValueError on others."""
    unknown = sorted(set(options) - set(_OPTION_NAMES))
    if unknown:
        raise ValueError(f"no HiGHS option for the PuLP keyword(s) {unknown}")
    if prob.sense != pulp.LpMaximize:
        raise ValueError("pulp_request builds maximisation problems only")
    variables = prob.variables()
    col = {v.name: j for j, v in enumerate(variables)}
    n_cols = len(variables)
    cost = np.zeros(n_cols)
    for v, c in prob.objective.items():
        cost[col[v.name]] = float(c)
    lower = np.array([-np.inf if v.lowBound is None else v.lowBound for v in variables], float)
    upper = np.array([np.inf if v.upBound is None else v.upBound for v in variables], float)
    rows, cols, vals, row_lower, row_upper = [], [], [], [], []
    for r, constraint in enumerate(prob.constraints()):  # PuLP 4 style: a list
        for v, c in constraint.items():
            if c != 0:
                rows.append(r)
                cols.append(col[v.name])
                vals.append(float(c))
        lb, ub = constraint.getLb(), constraint.getUb()
        row_lower.append(-np.inf if lb is None else lb)
        row_upper.append(np.inf if ub is None else ub)
    rows_a = np.asarray(rows, dtype=np.int64)
    cols_a = np.asarray(cols, dtype=np.int64)
    order = np.lexsort((rows_a, cols_a))  # column-wise, rows ascending within a column
    start = np.concatenate([[0], np.cumsum(np.bincount(cols_a, minlength=n_cols))])
    warm_values = None
    if warm:
        warm_values = np.array([v.varValue or 0.0 for v in variables], dtype=float)
    req = MipRequest(
        cost=cost,
        col_lower=lower,
        col_upper=upper,
        row_lower=np.asarray(row_lower, dtype=float),
        row_upper=np.asarray(row_upper, dtype=float),
        start=start.astype(np.int64),
        index=rows_a[order],
        value=np.asarray(vals, dtype=float)[order],
        maximize=True,
        options={_OPTION_NAMES[k]: v for k, v in options.items() if v is not None},
        warm=warm_values,
        keep=n_cols,
        integer=np.array([v.cat == pulp.LpInteger for v in variables], dtype=bool),
    )
    return req, variables, float(prob.objective.constant)
