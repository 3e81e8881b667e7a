"""Strength reached by ``improve_pairwise`` on the reference data at six floors (per-model scope).

Usage: python bench/pairwise_search_tuning.py [TIME_LIMIT_S] [--floors 1.0,0.99] [--seed N]
Prints floor, strength, seconds and an independent feasibility check for each floor.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solver.pairwise_search import improve_pairwise  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "arithmetic_layer7_r256.npz"
TARGETS = {1.0: 517, 0.99: 714, 0.975: 841, 0.95: 954, 0.925: 1000, 0.9: 1000}


def load_w() -> np.ndarray:
    w = np.load(DATA)["twice_w"][:6].astype(np.float64) / 2
    for m in range(w.shape[0]):
        np.fill_diagonal(w[m], 0.0)
    return w


def check(w: np.ndarray, a: np.ndarray, floor: float) -> bool:
    """Per-model feasibility from the definition, with no code shared with the solver."""
    for m in range(w.shape[0]):
        idx = np.flatnonzero(a == m)
        if idx.size == 0:
            continue
        if idx.size < 2:
            return False
        total = w[m][np.ix_(idx, idx)].sum() / 2  # diagonal is zero
        count = idx.size * (idx.size - 1) / 2
        if total - floor * count < -1e-9 * count:
            return False
    return True


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("time_limit", nargs="?", type=float, default=60.0)
    p.add_argument("--floors", default=",".join(str(f) for f in TARGETS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--moves", type=int, default=None, help="annealing moves (default: 2 cycles)")
    args = p.parse_args()
    w = load_w()
    print(f"{'floor':>6} {'strength':>8} {'target':>6} {'seconds':>8} feasible")
    for floor in (float(f) for f in args.floors.split(",")):
        t0 = time.perf_counter()
        a = improve_pairwise(
            w,
            floor,
            "per-model",
            time_limit=args.time_limit,
            seed=args.seed,
            max_moves=args.moves,
        )
        dt = time.perf_counter() - t0
        print(
            f"{floor:6.3f} {int((a >= 0).sum()):8d} {TARGETS.get(floor, 0):6d} {dt:8.1f} "
            f"{check(w, a, floor)}",
            flush=True,
        )


if __name__ == "__main__":
    main()
