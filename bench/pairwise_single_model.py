"""Single-model pairwise instances (the maximum γ-quasi-clique problem) at 400-500 inputs:
strength, proven upper bound, gap and seconds, for the baseline (size and spectral tests,
conflict LP, local search) and for ``solve(method="auto")`` (which adds the SDP size caps of
``solver.pairwise_sdp``), in the same run.

Instances: each of the six candidate models of the shared graphs restricted to its first
``n`` inputs, and planted-dense-cell instances (a cell of mean weight ~0.97 hidden in a
background of mean ~0.55). Every partition is re-checked by the independent verifier.

    OMP_WAIT_POLICY=PASSIVE python bench/pairwise_single_model.py [--floor 0.9]
        [--sizes 400,500] [--time-limit 60] [--bound-time 10] [--skip-planted]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from solver.api import EXACT_MAX_INPUTS  # noqa: E402
from solver.certificate import floor_bound  # noqa: E402
from solver.pairwise_auto import solve_pairwise_auto  # noqa: E402
from solver.pairwise_bounds import pairwise_upper_bound  # noqa: E402
from solver.pairwise_search import search_pairwise  # noqa: E402
from solver.verify import check_partition  # noqa: E402

# the authors' graphs, as shipped with the examples (the same bytes as shared/data)
DATA = Path(__file__).resolve().parents[1] / "examples" / "data" / "arithmetic_layer7_r256.npz"


def shared_model(m: int, n: int) -> np.ndarray:
    w = np.load(DATA)["twice_w"][m, :n, :n].astype(float) / 2
    np.fill_diagonal(w, 0.0)
    return w[None]


def planted(seed: int, n: int, cell: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.choice([0.0, 0.5, 1.0], p=[0.3, 0.3, 0.4], size=(n, n))
    s = rng.choice(n, size=cell, replace=False)
    w[np.ix_(s, s)] = rng.choice([0.5, 1.0], p=[0.06, 0.94], size=(cell, cell))
    w = np.triu(w, 1)
    return (w + w.T)[None]


def baseline(w: np.ndarray, floor: float, time_limit: float, bound_time: float):
    """The size and spectral tests with the conflict LP, then the local search."""
    t0 = time.perf_counter()
    bound, _ = pairwise_upper_bound(w, floor, "per-model", time_limit=bound_time)
    found = search_pairwise(
        w,
        floor,
        "per-model",
        time_limit=max(1.0, time_limit - (time.perf_counter() - t0)),
        stop_at=int(floor_bound(bound)),
    )
    return found.assignment, bound, time.perf_counter() - t0, ""


def auto(w: np.ndarray, floor: float, time_limit: float):
    """What ``solve(method="auto")`` runs: bound, search, SDP size caps, bound LP."""
    t0 = time.perf_counter()
    a, cert = solve_pairwise_auto(
        w,
        floor,
        "per-model",
        start=None,
        solver="highs",
        time_limit=time_limit,
        seed=0,
        exact_max_inputs=EXACT_MAX_INPUTS,
    )
    return a, cert.bound, time.perf_counter() - t0, cert.note


def run(
    name: str, w: np.ndarray, floor: float, time_limit: float, bound_time: float
) -> tuple[float, float]:
    """Print one instance's row; return the (baseline, auto) gaps."""
    cols, gaps = [], []
    notes = ""
    for a, bound, seconds, note in (
        baseline(w, floor, time_limit, bound_time),
        auto(w, floor, time_limit),
    ):
        check_partition(w, a, floor, "pairwise", "per-model")
        strength = int((a >= 0).sum())
        gap = (bound - strength) / max(bound, 1.0)
        cols.append(f"{strength:>5} {bound:>6.1f} {gap:>6.3f} {seconds:>5.1f}")
        gaps.append(gap)
        notes = note or notes
    sdp = next((p for p in notes.split("; ") if p.startswith("SDP")), "")
    print(f"{name:>14} {w.shape[1]:>5}  {cols[0]}  |  {cols[1]}  {sdp}", flush=True)
    return gaps[0], gaps[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--floor", type=float, default=0.9)
    ap.add_argument("--sizes", default="400,500")
    ap.add_argument("--time-limit", type=float, default=60.0, help="seconds per instance")
    ap.add_argument("--bound-time", type=float, default=10.0, help="of which for the bound")
    ap.add_argument("--skip-planted", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(
        f"floor {args.floor}, {args.time_limit:g} s per instance and method; baseline: size and "
        f"spectral tests with the conflict LP ({args.bound_time:g} s) and the local search; "
        "auto: solve(method='auto') with the SDP size caps"
    )
    print(
        f"{'instance':>14} {'n':>5}  {'base: str':>5} {'bound':>6} {'gap':>6} {'s':>5}  |  "
        f"{'auto: str':>5} {'bound':>6} {'gap':>6} {'s':>5}"
    )
    gaps = []
    for n in sizes:
        for m in range(6):
            w = shared_model(m, n)
            gaps.append(run(f"shared m{m}", w, args.floor, args.time_limit, args.bound_time))
        if not args.skip_planted:
            for seed in range(3):
                w = planted(seed, n, n * 2 // 5)
                gaps.append(
                    run(f"planted s{seed}", w, args.floor, args.time_limit, args.bound_time)
                )
    base, new = np.array(gaps).T
    print(
        f"instances={len(gaps)} max_gap_baseline={base.max():.3f} max_gap_auto={new.max():.3f} "
        f"within_10pct_baseline={(base <= 0.10).sum()} within_10pct_auto={(new <= 0.10).sum()}"
    )


if __name__ == "__main__":
    main()
