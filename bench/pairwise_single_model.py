"""Single-model pairwise instances (the maximum γ-quasi-clique problem) at 400-500 inputs:
strength found by the local search, the proven upper bound, the gap and the seconds.

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

from solver.certificate import floor_bound  # noqa: E402
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


def run(name: str, w: np.ndarray, floor: float, time_limit: float, bound_time: float) -> None:
    t0 = time.perf_counter()
    bound, how = pairwise_upper_bound(w, floor, "per-model", time_limit=bound_time)
    tb = time.perf_counter() - t0
    found = search_pairwise(
        w,
        floor,
        "per-model",
        time_limit=max(1.0, time_limit - tb),
        stop_at=int(floor_bound(bound)),
    )
    check_partition(w, found.assignment, floor, "pairwise", "per-model")
    strength = int((found.assignment >= 0).sum())
    gap = (bound - strength) / max(bound, 1.0)
    print(
        f"{name:>14} {w.shape[1]:>5} {strength:>8} {bound:>8.1f} {gap:>6.3f} "
        f"{tb:>6.1f} {time.perf_counter() - t0:>6.1f}  {how}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--floor", type=float, default=0.9)
    ap.add_argument("--sizes", default="400,500")
    ap.add_argument("--time-limit", type=float, default=60.0, help="seconds per instance")
    ap.add_argument("--bound-time", type=float, default=10.0, help="of which for the bound")
    ap.add_argument("--skip-planted", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"floor {args.floor}, {args.time_limit:g} s per instance ({args.bound_time:g} s bound)")
    print(
        f"{'instance':>14} {'n':>5} {'strength':>8} {'bound':>8} {'gap':>6} "
        f"{'bnd_s':>6} {'s':>6}  how"
    )
    for n in sizes:
        for m in range(6):
            run(f"shared m{m}", shared_model(m, n), args.floor, args.time_limit, args.bound_time)
        if not args.skip_planted:
            for seed in range(3):
                w = planted(seed, n, n * 2 // 5)
                run(f"planted s{seed}", w, args.floor, args.time_limit, args.bound_time)


if __name__ == "__main__":
    main()
