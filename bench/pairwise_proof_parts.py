"""The parts of a pairwise optimality proof on the 64-input sub-instance, each timed on its own
at one floor: column generation, its exact pricing (the branch and bound over cells against the
pricing MILP, at the final multipliers), the reduced-cost enumeration, and the packing (the
depth-first search with and without subgradient steps, and the set-packing MILP), and the
top-down proof that solve(method="auto") runs on them.

    OMP_WAIT_POLICY=PASSIVE python bench/pairwise_proof_parts.py [--floor 0.95]
        [--colgen-time 900] [--part-time 300] [--no-milp]

Section 3 of bench/RESULTS.md quotes it; `bench/pairwise_exact_small.py` runs the same parts
inside `solve(method="auto")` under one time limit per floor.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pairwise_exact_small import load  # noqa: E402

from solver.pairwise_bounds import size_bound, size_structure  # noqa: E402
from solver.pairwise_cells import heaviest_cell  # noqa: E402
from solver.pairwise_colgen import _Pricer, column_generation, packing_program  # noqa: E402
from solver.pairwise_enumerate import reduced_cost_cells, reduced_cost_proof  # noqa: E402
from solver.pairwise_pack import LAGRANGE_STEPS, pack_by_search, prepare_cells  # noqa: E402
from solver.pairwise_sdp import sdp_model_caps  # noqa: E402
from solver.pairwise_search import default_moves, search_pairwise  # noqa: E402

CELL_LIMIT = 10_000_000  # counted here beyond the proof's own cap, to say how far it is


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--floor", type=float, default=0.95)
    ap.add_argument("--colgen-time", type=float, default=900.0)
    ap.add_argument("--part-time", type=float, default=300.0, help="seconds per later part")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--no-milp", action="store_true", help="skip the set-packing MILP (minutes to build)"
    )
    args = ap.parse_args()
    w, floor = load(small=True), args.floor
    M, n = w.shape[0], w.shape[1]

    moves = default_moves(n, M) * 16  # what auto gives an instance this small
    found = search_pairwise(
        w, floor, "per-model", start=None, time_limit=600, seed=args.seed, max_moves=moves
    )
    best = found.assignment
    known = np.array([(best == m).sum() for m in range(M)])
    caps = sdp_model_caps(w, floor, known, 60.0).caps
    print(f"floor {floor}: search {int((best >= 0).sum())}, SDP caps {list(map(int, caps))}")

    cg = column_generation(
        w, floor, time_limit=args.colgen_time, start=best, seed=args.seed, size_caps=caps
    )
    if cg.strength > (best >= 0).sum():
        best = cg.assignment
    incumbent = int((best >= 0).sum())
    print(
        f"column generation: bound {cg.bound:.2f}, {cg.exact_rounds} exact rounds, "
        f"{'converged' if cg.converged else 'not converged'}, {cg.seconds:.1f}s; "
        f"best partition {incumbent}"
    )
    pi = np.maximum(cg.multipliers, 0.0)
    sigma = np.maximum(cg.pricing_bounds, 0.0)
    weights = 1.0 - pi
    sizes, fits = size_structure(w, floor, caps=caps)
    _, largest = size_bound(w, floor, sizes)

    print("exact pricing at the final multipliers (model: search s, MILP s, same maximum):")
    for m in range(M):
        delta = 1.0 - w[m]
        np.fill_diagonal(delta, 0.0)
        t = time.perf_counter()
        by_search = heaviest_cell(delta, floor, weights, int(largest[m]), t + args.part_time)
        t_search = time.perf_counter() - t
        t = time.perf_counter()
        bound, _, proven = _Pricer(delta, floor, sizes[m], fits[m]).price(weights, args.part_time)
        t_milp = time.perf_counter() - t
        agree = by_search is not None and proven and abs(by_search[0] - bound) < 1e-4
        print(f"  {m}: {t_search:.2f} {t_milp:.2f} {'yes' if agree else 'unsettled'}")

    dual = float(pi.sum() + sigma.sum())
    target = incumbent + 1
    room = dual - target
    t = time.perf_counter()
    enumerated = reduced_cost_cells(
        w, floor, pi, sigma, room, largest, t + args.part_time, CELL_LIMIT
    )
    if enumerated is None:
        print(f"enumeration: stopped by the time, room {room:.2f}")
        top_down(w, floor, pi, sigma, incumbent, largest, args.part_time)
        return
    cells, reached = enumerated
    seconds = time.perf_counter() - t
    table = prepare_cells(cells, pi, sigma)
    held = sum(a.nbytes for a in (cells.model, cells.rows, cells.length, table.masks, table.rc))
    print(
        f"enumeration: room {room:.2f}, {len(cells):,} cells, {seconds:.1f}s, "
        f"{held / max(1, len(cells)):.0f} bytes per cell with the search's table"
        + ("" if reached >= room else f" (the cap of {CELL_LIMIT:,} left room {reached:.2f})")
    )
    if reached < room:
        top_down(w, floor, pi, sigma, incumbent, largest, args.part_time)
        return

    results = {}
    for steps in (LAGRANGE_STEPS, 0):
        r = pack_by_search(table, pi, sigma, target, time.perf_counter() + args.part_time, steps)
        results[steps] = r
        verdict = (
            "not finished"
            if not r.finished
            else (f"no partition of {target}" if r.assignment is None else "a better partition")
        )
        print(
            f"packing search, {steps} subgradient steps: {r.nodes:,} branches, "
            f"{r.seconds:.1f}s, {verdict}"
        )
    if args.no_milp:
        print("set-packing MILP: skipped (--no-milp)")
    else:
        t = time.perf_counter()
        _, milp_bound, milp_done = packing_program(cells, n, M, args.part_time)
        print(
            f"set-packing MILP: bound {milp_bound:g}, "
            f"{'finished' if milp_done else 'stopped at its time limit'}, "
            f"{time.perf_counter() - t:.1f}s"
        )
    top_down(w, floor, pi, sigma, incumbent, largest, args.part_time)
    main_run = results[LAGRANGE_STEPS]
    print(
        f"floor={floor} proven={main_run.finished and main_run.assignment is None} "
        f"cells={len(cells)} branches={main_run.nodes} branches_without_steps="
        f"{results[0].nodes} pack_seconds={main_run.seconds:.1f} "
        f"peak_rss_gib={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f}"
    )


def top_down(w, floor, pi, sigma, incumbent, largest, seconds) -> None:
    """The proof as solve(method="auto") runs it: cells enumerated once (at most
    ENUM_MAX_CELLS), strengths refuted from the dual bound down."""
    proof = reduced_cost_proof(w, floor, pi, sigma, incumbent, largest, seconds)
    found = "" if proof.assignment is None else f", found {(proof.assignment >= 0).sum()}"
    print(
        f"top-down proof: bound {proof.bound:g} ({'proven' if proof.proven else 'open'}), "
        f"{proof.cells:,} cells of reduced cost <= {proof.room:.2f}, "
        f"{proof.pack_nodes:,} branches, {proof.seconds:.1f}s{found}"
    )


if __name__ == "__main__":
    main()
