"""Each model's largest lone cell on the authors' graphs: how far per-model caps can go.

Any bound that caps each model's cell on its own (the size and spectral tests, the SDP of
solver/pairwise_sdp.py, the clique caps at floor 1) is at least the largest cell that model
holds alone, so it is at least the sum of the cells found here: each is a model alone, the
default deterministic search (seed 0), and re-verified. Where that sum exceeds n, no
per-model cap can bound the strength below n, and a bound has to count the inputs the models'
cells share once (as the floor-1 shared-input bound does). Per floor: the cells found, their
sum, and n; the last line `lone_cell_sums=<floor>:<sum>,...`.

    OMP_WAIT_POLICY=PASSIVE python bench/lone_cells.py [--floors 1.0 0.99 0.975]
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

from solver import PairwiseIIA  # noqa: E402
from solver.pairwise_search import search_pairwise  # noqa: E402
from solver.verify import check_partition  # noqa: E402

# the authors' graphs, as shipped with the examples (the same bytes as shared/data)
DATA = Path(__file__).resolve().parents[1] / "examples" / "data" / "arithmetic_layer7_r256.npz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--floors", type=float, nargs="*", default=[1.0, 0.99, 0.975])
    args = ap.parse_args()
    data = PairwiseIIA.load(DATA).candidates()  # the fallback is no candidate
    w = np.asarray(data.weights, dtype=float)
    M, n, _ = w.shape
    sums = []
    print(
        f"{M} candidates ({', '.join(data.models)}), {n} inputs: the largest cell each holds "
        "alone (the search's)"
    )
    for floor in args.floors:
        t0 = time.perf_counter()
        sizes = []
        for m in range(M):
            found = search_pairwise(w[m : m + 1], floor, "per-model", time_limit=600.0, seed=0)
            check_partition(w[m : m + 1], found.assignment, floor, "pairwise", "per-model")
            sizes.append(int((found.assignment == 0).sum()))
        sums.append(sum(sizes))
        print(
            f"λ = {floor}: cells {sizes}, sum {sum(sizes)} "
            f"({'above' if sum(sizes) > n else 'within'} n = {n}), "
            f"{time.perf_counter() - t0:.1f}s",
            flush=True,
        )
    print("lone_cell_sums=" + ",".join(f"{f}:{s}" for f, s in zip(args.floors, sums)))


if __name__ == "__main__":
    main()
