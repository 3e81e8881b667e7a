"""Does a per-input solve keep its time limit? Wall time against the limit, per case.

``solve_per_input(method=--method, time_limit=T)`` ("auto" by default; "ilp" builds the
model in PuLP) on ``bench/per_input_scale.py``'s synthetic
IIA (float32), each size x option x scope in its own subprocess (stopped after
``STOP_AFTER`` x T), twice in the same run: as the solver ships
(HiGHS MIP runs of ``solver.highs_child.CHILD_MIN_COLS`` columns or more in a child process
killed at the limit) and the baseline with every run in process (HiGHS's own time limit
alone, which its MIP set-up does not look at). Prints one row per case (seconds, the
overrun past T, status, gap) and the last line
``max_over_child=<s> max_over_in_process=<s>``.

    OMP_WAIT_POLICY=PASSIVE python bench/time_limits.py [--time-limit 10] [--method ilp]
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from per_input_scale import synthetic32  # noqa: E402

from solver import backends, highs_child  # noqa: E402
from solver.per_input import solve_per_input  # noqa: E402

SIZES = ((2000, 64), (5000, 16), (20000, 16))
OPTIONS = ({}, {"min_cell": 10}, {"max_models": 4})
SCOPES = ("per-model", "global")
# a case still running after this many time limits is stopped (and reported so)
STOP_AFTER = 12


def one(n: int, m: int, opts: dict, scope: str, limit: float, floor: float, method: str) -> None:
    """One case in this process; prints ``seconds status gap``."""
    a = synthetic32(n, m, 0)
    t = time.perf_counter()
    _, cert = solve_per_input(a, floor, scope, method=method, time_limit=limit, **opts)
    gap = "-" if cert.gap is None else f"{cert.gap:.3g}"
    print(f"{time.perf_counter() - t:.1f} {cert.status} {gap}", flush=True)


def run(limit: float, floor: float, method: str, in_process: bool) -> float:
    """Every case once, each in its own subprocess, stopped after ``STOP_AFTER`` limits; the
    largest overrun past ``limit``."""
    worst = 0.0
    for (n, m), opts, scope in itertools.product(SIZES, OPTIONS, SCOPES):
        cmd = [sys.executable, __file__, "--one", f"{n},{m},{json.dumps(opts)},{scope}",
               "--time-limit", str(limit), "--floor", str(floor), "--method", method]  # fmt: skip
        if in_process:
            cmd.append("--in-process")
        stop = STOP_AFTER * limit
        t = time.perf_counter()
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=stop).stdout
            took, status, gap = out.split()[-3:]
            took = float(took)
        except subprocess.TimeoutExpired:
            took, status, gap = time.perf_counter() - t, f"stopped here after {stop:.0f} s", "-"
        worst = max(worst, took - limit)
        label = ", ".join(f"{k}={v}" for k, v in opts.items()) or "no options"
        print(
            f"| {'in process' if in_process else 'as shipped'} | {n:,} x {m} | {label} | "
            f"{scope} | {took:.1f} | {max(took - limit, 0.0):.1f} | {status} | {gap} |",
            flush=True,
        )
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--floor", type=float, default=0.95)
    ap.add_argument("--method", choices=["auto", "ilp"], default="auto")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        n, m, rest = args.one.split(",", 2)
        opts, scope = rest.rsplit(",", 1)
        if args.in_process:
            highs_child.CHILD_MIN_COLS = backends.CHILD_MIN_COLS = 2**62
        one(int(n), int(m), json.loads(opts), scope, args.time_limit, args.floor, args.method)
        return
    print(
        f"method {args.method}, time limit {args.time_limit} s, floor {args.floor}, "
        "float32 synthetic IIA"
    )
    print("| path | n x M | options | scope | seconds | past the limit | status | gap |")
    print("|---|---|---|---|---|---|---|---|")
    child = run(args.time_limit, args.floor, args.method, in_process=False)
    own = run(args.time_limit, args.floor, args.method, in_process=True)
    print(f"max_over_child={max(child, 0.0):.2f} max_over_in_process={max(own, 0.0):.2f}")


if __name__ == "__main__":
    main()
