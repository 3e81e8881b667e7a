"""The floor-1 clique caps of the authors' graphs, one model at a time, with no time share.

At floor 1 every cell of a model is a clique of its graph of pairs with no deficit, so the
maximum clique ω_m caps model m's cells (solver/pairwise_cliques.py). Per model: the clique
a search of the model alone finds (the hint), then the branch and bound's ω, whether it is
proven, its branches and seconds; then the bound LP of solver/pairwise_bounds.py with those
caps, and the bound that counts the inputs the largest cliques share once
(solver.pairwise_cliques.shared_input_bound, given --time-limit too); the last line
`sum_of_caps=<Σ caps> lp_bound=<bound> shared_input_bound=<bound>`.

    python bench/floor_one_cliques.py [--time-limit 300] [--lp-time 60]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from solver.pairwise_bounds import _prepare, conflict_lp_bound, size_structure  # noqa: E402
from solver.pairwise_cliques import (  # noqa: E402
    CliqueCaps,
    floor_one_graphs,
    max_clique,
    shared_input_bound,
)
from solver.pairwise_search import default_moves, search_pairwise  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "examples" / "data" / "arithmetic_layer7_r256.npz"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=300.0, help="seconds per model")
    ap.add_argument("--lp-time", type=float, default=60.0)
    args = ap.parse_args()
    w = _prepare(np.load(DATA)["twice_w"][:6].astype(float) / 2)
    M, n, _ = w.shape
    caps = np.full(M, n)
    proven = np.zeros(M, dtype=bool)
    cliques = []
    graphs = floor_one_graphs(w)  # no input is its own neighbour: density counts pairs only
    columns = ("model", "density", "hint", "omega", "proven", "branches", "s")
    print(" ".join(f"{c:>8}" for c in columns))
    for m in range(M):
        graph = graphs[m]
        alone = search_pairwise(
            w[m : m + 1], 1.0, "per-model", time_limit=30, seed=0, max_moves=default_moves(n, 1)
        )
        hint = np.nonzero(alone.assignment == 0)[0]
        t0 = time.perf_counter()
        found = max_clique(graph, t0 + args.time_limit, hint)
        caps[m], proven[m] = found.upper, found.proven
        cliques.append(found.clique)
        print(
            f"{m:>8} {graph.mean():>8.3f} {len(hint):>8} {found.upper:>8} {found.proven!s:>8} "
            f"{found.nodes:>8,} {time.perf_counter() - t0:>8.1f}",
            flush=True,
        )
    sizes, fits = size_structure(w, 1.0, caps=caps)
    bound, rounds, _ = conflict_lp_bound(w, 1.0, args.lp_time, sizes=sizes, fits=fits)
    print(f"bound LP with these caps: {bound:.2f} ({rounds} rounds)")
    shared = shared_input_bound(w, CliqueCaps(caps, proven, cliques, 0.0), args.time_limit)
    print(
        f"shared inputs counted once: {shared.bound} with {shared.shared} shared "
        f"({shared.rounds} rounds, {shared.dropped} taken back out, {shared.seconds:.1f} s)"
    )
    print(
        f"sum_of_caps={int(caps.sum())} lp_bound={min(bound, n):.2f} "
        f"shared_input_bound={shared.bound}"
    )


if __name__ == "__main__":
    main()
