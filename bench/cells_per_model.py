"""Several cells per model: strength with up to K cells per model, against one cell per model
in the same run.

Two parts:

1. a planted instance: model A faithful on two separate regions (pairs inside either succeed
   with probability 0.95, pairs across them 0.3), model B on a third; with one cell per model
   A can explain only one region, with two it explains both. Prints strength and how many of
   A's planted regions come back as its cells (a region is recovered when one cell holds at
   least 90% of it and nothing else beyond 10% of its size);
2. the authors' graphs (``../shared/data``, six candidates): strength at K = 1, 2, 3 over
   four floors, with the proven bound.

A ``*`` marks a point where the time cap cut a phase short (the search or a bound's search;
the certificate's note says which), so that point depends on the machine's speed.

Last line: ``planted_gain=<strength K=2 / K=1> shared_gain_at_1.0=<K=2 / K=1 at λ = 1>``.

    OMP_WAIT_POLICY=PASSIVE python bench/cells_per_model.py [--time-limit 60]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from solver import PairwiseIIA, Solver  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "arithmetic_layer7_r256.npz"


def planted(n_region: int = 100, seed: int = 0) -> tuple[PairwiseIIA, np.ndarray]:
    """300 inputs in three interleaved regions; A is faithful on regions 0 and 1 apart, B on
    region 2. Returns the data and each input's region."""
    rng = np.random.default_rng(seed)
    n = 3 * n_region
    region = rng.permutation(np.repeat([0, 1, 2], n_region))
    same = region[:, None] == region[None, :]
    w = np.empty((2, n, n))
    for m, inside in enumerate((same & (region[:, None] < 2), same & (region[:, None] == 2))):
        s = (rng.random((n, n)) < np.where(inside, 0.95, 0.3)).astype(float)
        w[m] = (s + s.T) / 2  # the mean of the two directions, as scored
        np.fill_diagonal(w[m], 0.0)
    return PairwiseIIA(w, ("A", "B")), region


def recovered_regions(assignment, cell, region, model: int, regions: list[int]) -> int:
    found = 0
    for r in regions:
        members = region == r
        for c in np.unique(cell[assignment == model]) if cell is not None else [None]:
            held = assignment == model if c is None else (assignment == model) & (cell == c)
            inside = (held & members).sum()
            outside = (held & ~members).sum()
            if inside >= 0.9 * members.sum() and outside <= 0.1 * members.sum():
                found += 1
                break
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-limit", type=float, default=60.0)
    args = parser.parse_args()

    data, region = planted()
    print("planted: A faithful on regions 0 and 1 apart (100 inputs each), B on region 2")
    print(f"{'K':>2} {'strength':>8} {'bound':>6} {'A regions recovered':>20} {'seconds':>8}")
    strengths = {}
    for k in (1, 2):
        started = time.perf_counter()
        p = Solver(time_limit=args.time_limit, cells_per_model=k).solve(data, 0.9)
        found = recovered_regions(p.assignment, p.cell, region, 0, [0, 1])
        strengths[k] = p.strength
        print(
            f"{k:>2} {p.strength:>8} {p.certificate.bound:>6.0f} {found:>18}/2 "
            f"{time.perf_counter() - started:>8.1f}"
        )

    w = np.load(DATA)["twice_w"][:6].astype(np.float64) / 2
    shared = PairwiseIIA(w, tuple(f"m{i}" for i in range(6)))
    floors = [1.0, 0.99, 0.975, 0.95]
    print("\nthe authors' graphs, six candidates, per-model floors: strength (bound)")
    print(f"{'K':>2} " + " ".join(f"{f:>13g}" for f in floors) + f" {'seconds':>8}")
    at_one = {}
    for k in (1, 2, 3):
        started = time.perf_counter()
        front = Solver(time_limit=args.time_limit, cells_per_model=k).frontier(shared, floors)
        at_one[k] = front.results[0].strength
        # "*": the time cap cut a phase short (machine-dependent)
        cells = " ".join(
            f"{r.strength:>5}{'*' if r.certificate.capped else ' '} ({r.certificate.bound:>4.0f})"
            for r in front.results
        )
        print(f"{k:>2} {cells} {time.perf_counter() - started:>8.1f}")
    print(
        f"planted_gain={strengths[2] / strengths[1]:.3f} "
        f"shared_gain_at_1.0={at_one[2] / at_one[1]:.3f}"
    )


if __name__ == "__main__":
    main()
