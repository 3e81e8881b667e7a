"""Scale benchmark for per-input partitions (``solver.per_input.solve_per_input``).

Builds a synthetic IIA matrix with planted structure (each input has a true model with high
IIA, a runner-up with middling IIA, low IIA elsewhere, per-model quality shifts, noise),
solves it with ``method="auto"`` and prints n, M, floor, strength, bound, gap, seconds and
peak RSS; the last line is ``gap=<gap> seconds=<s> peak_rss_gib=<x>`` (worst gap, total
seconds of the scale solves, peak RSS of the process).

A baseline at a size the plain MILP can handle compares PuLP + HiGHS ``method="ilp"``
(time-limited) with ``"auto"`` (which there runs the MILP too, warm-started) and with
``"auto"`` as it runs at scale (Lagrangian and rounding only), and prints the time ratios.
Run:

    OMP_WAIT_POLICY=PASSIVE python bench/per_input_scale.py [--n 100000 --m 32]

``--scale-options`` instead solves float32 data (``synthetic32``, built block by block)
at ``--n`` x ``--m`` (default there 10^6 x 64) and floor ``--option-floor`` (0.98) three
times, each in its own subprocess so that peak RSS is per case: no options,
``max_models=--max-models`` (16), ``min_cell=--min-cell`` (1000). Each row gives strength,
bound, gap, seconds of the solve, the case's peak RSS and whether ``solver.verify``
accepted the partition; the last line ``worst_gap=... max_seconds=... max_peak_rss_gib=...``.
``--scope global`` solves those cases under the global floor instead; ``--case NAME`` runs
one of them (none, max_models, min_cell) in this process.

    OMP_WAIT_POLICY=PASSIVE python bench/per_input_scale.py --scale-options
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solver import per_input  # noqa: E402
from solver.per_input import solve_per_input  # noqa: E402


def synthetic(n: int, n_models: int, seed: int) -> np.ndarray:
    """a[i, m] in [0, 1]: true model ~ Beta(10, 2.5) shifted by the model's quality, a
    runner-up ~ Beta(7, 3), the rest ~ Beta(2, 5), plus N(0, 0.02) noise."""
    rng = np.random.default_rng(seed)
    a = rng.beta(2.0, 5.0, size=(n, n_models))
    rows = np.arange(n)
    true = rng.integers(0, n_models, size=n)
    second = (true + rng.integers(1, n_models, size=n)) % n_models
    quality = rng.uniform(-0.05, 0.05, size=n_models)
    a[rows, second] = rng.beta(7.0, 3.0, size=n)
    a[rows, true] = rng.beta(10.0, 2.5, size=n) + quality[true]
    a += rng.normal(0.0, 0.02, size=a.shape)
    np.clip(a, 0.0, 1.0, out=a)
    return a


def synthetic32(n: int, n_models: int, seed: int, block: int = 65_536) -> np.ndarray:
    """``synthetic``'s distribution as float32, drawn block by block (so building it never
    holds a float64 [n, M] matrix; the random stream differs from ``synthetic``'s)."""
    rng = np.random.default_rng(seed)
    quality = rng.uniform(-0.05, 0.05, size=n_models)
    out = np.empty((n, n_models), dtype=np.float32)
    for start in range(0, n, block):
        b = min(block, n - start)
        blk = rng.beta(2.0, 5.0, size=(b, n_models))
        rows = np.arange(b)
        true = rng.integers(0, n_models, size=b)
        second = (true + rng.integers(1, n_models, size=b)) % n_models
        blk[rows, second] = rng.beta(7.0, 3.0, size=b)
        blk[rows, true] = rng.beta(10.0, 2.5, size=b) + quality[true]
        blk += rng.normal(0.0, 0.02, size=blk.shape)
        np.clip(blk, 0.0, 1.0, out=blk)
        out[start : start + b] = blk
    return out


def peak_rss_gib() -> float:
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


CASES = ("none", "max_models", "min_cell")


def run_case(args: argparse.Namespace) -> None:
    """One ``--scale-options`` case, in this (sub)process: one result line, prefixed CASE."""
    from solver.verify import check_partition

    n = args.n or 1_000_000
    m = args.m or 64
    a = synthetic32(n, m, args.seed)
    opts: dict = {}
    if args.case == "max_models":
        opts["max_models"] = args.max_models
    elif args.case == "min_cell":
        opts["min_cell"] = args.min_cell
    t = time.perf_counter()
    assign, cert = solve_per_input(
        a, args.option_floor, args.scope, method="auto", time_limit=args.time_limit, **opts
    )
    seconds = time.perf_counter() - t
    check_partition(a, assign, args.option_floor, "per-input", args.scope, **opts)
    gap = cert.gap if cert.gap is not None else float("inf")
    label = "no options" if not opts else ", ".join(f"{k}={v}" for k, v in opts.items())
    print(
        f"CASE n={n} M={m} dtype={a.dtype} floor={args.option_floor} scope={args.scope} {label}: "
        f"strength={cert.objective:.0f} bound={cert.bound} gap={gap:.3g} "
        f"status={cert.status} verified=yes seconds={seconds:.2f} "
        f"peak_rss_gib={peak_rss_gib():.3f}",
        flush=True,
    )
    print(f"  note: {cert.note}", flush=True)


def scale_options(args: argparse.Namespace) -> None:
    """Each case in its own subprocess (peak RSS per case), then the worst figures."""
    worst_gap, max_seconds, max_rss = 0.0, 0.0, 0.0
    for case in CASES:
        cmd = [sys.executable, __file__, "--case", case]
        for flag in (
            "n",
            "m",
            "seed",
            "option_floor",
            "max_models",
            "min_cell",
            "time_limit",
            "scope",
        ):
            value = getattr(args, flag)
            if value is not None:
                cmd += [f"--{flag.replace('_', '-')}", str(value)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        out = proc.stdout.strip()
        print(out, flush=True)
        if proc.returncode != 0:
            print(f"case {case} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
            worst_gap = float("inf")
            continue
        line = next(x for x in out.splitlines() if x.startswith("CASE"))
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        worst_gap = max(worst_gap, float(fields["gap"].rstrip(":")))
        max_seconds = max(max_seconds, float(fields["seconds"]))
        max_rss = max(max_rss, float(fields["peak_rss_gib"]))
    print(f"worst_gap={worst_gap:.3g} max_seconds={max_seconds:.2f} max_peak_rss_gib={max_rss:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None, help="default 100,000 (10^6 options)")
    parser.add_argument("--m", type=int, default=None, help="default 32 (64 options)")
    parser.add_argument("--scale-options", action="store_true")
    parser.add_argument("--case", choices=CASES, help="one --scale-options case (internal)")
    parser.add_argument("--option-floor", type=float, default=0.98)
    parser.add_argument(
        "--scope", choices=["per-model", "global"], default="per-model", help="options cases"
    )
    parser.add_argument("--max-models", type=int, default=16)
    parser.add_argument("--min-cell", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--floors", type=float, nargs="+", default=[0.85, 0.9])
    parser.add_argument("--time-limit", type=float, default=120.0)
    parser.add_argument("--baseline-n", type=int, default=10_000)
    parser.add_argument("--baseline-m", type=int, default=8)
    parser.add_argument("--baseline-limit", type=float, default=60.0)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    if args.case is not None:
        run_case(args)
        return
    if args.scale_options:
        scale_options(args)
        return
    args.n = args.n or 100_000
    args.m = args.m or 32

    if not args.skip_baseline:
        b = synthetic(args.baseline_n, args.baseline_m, args.seed + 1)
        for floor in args.floors:
            t = time.perf_counter()
            _, c_ilp = solve_per_input(
                b, floor, method="ilp", solver="highs", time_limit=args.baseline_limit
            )
            t_ilp = time.perf_counter() - t
            t = time.perf_counter()
            _, c_auto = solve_per_input(b, floor, method="auto", time_limit=args.baseline_limit)
            t_auto = time.perf_counter() - t
            # "auto" as it runs at scale: Lagrangian bound and rounding, no MILP phase.
            saved = per_input.MILP_MAX_VARS
            per_input.MILP_MAX_VARS = 0
            t = time.perf_counter()
            _, c_lag = solve_per_input(b, floor, method="auto", time_limit=args.baseline_limit)
            t_lag = time.perf_counter() - t
            per_input.MILP_MAX_VARS = saved
            print(
                f"baseline n={args.baseline_n} M={args.baseline_m} floor={floor}:\n"
                f"  ilp/highs    {c_ilp.status:8s} strength={c_ilp.objective:.0f} "
                f"bound={c_ilp.bound} gap={c_ilp.gap:.3g} {t_ilp:.2f}s\n"
                f"  auto         {c_auto.status:8s} strength={c_auto.objective:.0f} "
                f"bound={c_auto.bound} gap={c_auto.gap:.3g} {t_auto:.2f}s\n"
                f"  auto, no MILP phase {c_lag.status:8s} strength={c_lag.objective:.0f} "
                f"bound={c_lag.bound} gap={c_lag.gap:.3g} {t_lag:.2f}s\n"
                f"  time ratio ilp/auto={t_ilp / max(t_auto, 1e-9):.2f} "
                f"ilp/(auto, no MILP phase)={t_ilp / max(t_lag, 1e-9):.1f}",
                flush=True,
            )

    a = synthetic(args.n, args.m, args.seed)
    worst_gap = 0.0
    total_seconds = 0.0
    for floor in args.floors:
        t = time.perf_counter()
        assign, cert = solve_per_input(a, floor, method="auto", time_limit=args.time_limit)
        seconds = time.perf_counter() - t
        total_seconds += seconds
        gap = cert.gap if cert.gap is not None else float("inf")
        worst_gap = max(worst_gap, gap)
        print(
            f"n={args.n} M={args.m} floor={floor} strength={cert.objective:.0f} "
            f"bound={cert.bound} gap={gap:.3g} status={cert.status} seconds={seconds:.2f} "
            f"peak_rss_gib={peak_rss_gib():.3f}",
            flush=True,
        )
        print(f"  note: {cert.note}", flush=True)
    print(f"gap={worst_gap:.3g} seconds={total_seconds:.2f} peak_rss_gib={peak_rss_gib():.3f}")


if __name__ == "__main__":
    main()
