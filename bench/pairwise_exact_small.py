"""Pairwise solve on the 64-input sub-instance (X, Y, Z in 1..4) over a floor sweep, plus
the bound of pairwise_upper_bound on the full 1000-input data at each floor.

    OMP_WAIT_POLICY=PASSIVE python bench/pairwise_exact_small.py [--time-limit 120]
        [--method auto|exact] [--bound-time 10] [--solver highs] [--no-chain] [--skip-full]

--method auto: what `solve(method="auto")` runs on an instance this small (bound LP, local
search, column generation, then the exact program with the remaining time); exact: the
exact program alone. Each floor is warm-started with the previous floor's partition (a
partition meeting a floor meets every lower one) unless --no-chain.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from solver.api import EXACT_MAX_INPUTS  # noqa: E402
from solver.pairwise_auto import solve_pairwise_auto  # noqa: E402
from solver.pairwise_bounds import pairwise_upper_bound  # noqa: E402
from solver.pairwise_exact import solve_pairwise_exact  # noqa: E402

# the authors' graphs, as shipped with the examples (the same bytes as shared/data)
DATA = Path(__file__).resolve().parents[1] / "examples" / "data" / "arithmetic_layer7_r256.npz"
FLOORS = (1.0, 0.99, 0.975, 0.95, 0.925, 0.9)


def load(small: bool) -> np.ndarray:
    d = np.load(DATA)
    w = d["twice_w"][:6].astype(float) / 2
    for m in range(w.shape[0]):
        np.fill_diagonal(w[m], 0.0)
    if small:
        idx = sorted(
            (X - 1) * 100 + (Y - 1) * 10 + (Z - 1)
            for X in range(1, 5)
            for Y in range(1, 5)
            for Z in range(1, 5)
        )
        w = w[:, idx][:, :, idx]
    return w


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=120.0, help="seconds per floor")
    ap.add_argument("--bound-time", type=float, default=10.0, help="seconds per full-data bound")
    ap.add_argument("--solver", default="highs")
    ap.add_argument("--method", default="auto", choices=["auto", "exact"])
    ap.add_argument("--scope", default="per-model", choices=["per-model", "global"])
    ap.add_argument("--floors", type=float, nargs="*", default=list(FLOORS))
    ap.add_argument("--no-chain", action="store_true", help="no warm start between floors")
    ap.add_argument("--skip-full", action="store_true", help="skip the 1000-input bounds")
    args = ap.parse_args()

    w = load(small=True)
    print(
        f"64-input instance, method {args.method}, scope {args.scope}, solver {args.solver}, "
        f"time limit {args.time_limit:g}s per floor"
    )
    print(
        f"{'floor':>6} {'strength':>8} {'bound':>6} {'gap':>6} {'status':>9} {'seconds':>8}  note"
    )
    prev = None
    for f in args.floors:
        start = None if args.no_chain else prev
        if args.method == "auto":
            a, c = solve_pairwise_auto(
                w,
                f,
                args.scope,
                start=start,
                solver=args.solver,
                time_limit=args.time_limit,
                seed=0,
                exact_max_inputs=EXACT_MAX_INPUTS,
            )
        else:
            a, c = solve_pairwise_exact(
                w, f, args.scope, solver=args.solver, time_limit=args.time_limit, warm_start=start
            )
        prev = a
        print(
            f"{f:6.3f} {c.objective:8.0f} {c.bound:6.0f} {c.gap:6.3f} {c.status:>9} "
            f"{c.seconds:8.1f}  {c.note}",
            flush=True,
        )
    if args.skip_full:
        return
    wf = load(small=False)
    print(f"\n1000-input data: pairwise_upper_bound ({args.scope}, {args.bound_time:g}s each)")
    for f in args.floors:
        t = time.perf_counter()
        b, how = pairwise_upper_bound(wf, f, args.scope, time_limit=args.bound_time)
        print(f"{f:6.3f} {b:9.2f} {time.perf_counter() - t:6.1f}s  {how}", flush=True)


if __name__ == "__main__":
    main()
