"""Scale benchmark for pairwise partitions from a sampled design (``solve_pairwise_sparse``).

A sampled design scores each input against a few partners only, so the pairwise data is a
sparse pair tensor. This builds one with planted structure: every input has a true model;
each input draws 1..10 random partners (both directions of a pair are one scored pair, so
an input has ~11 scored partners on average, 2..20 typically); a pair of two inputs of the
same true model m scores high under m (1 − Exp(0.03)) and fairly high under m's "sibling"
model m ^ 1 (0.8 − Exp(0.05)), every other (pair, model) is noise ~ Beta(2, 3). Per floor
(per-model scope) it runs the full solve (memory check, bound, local search) and, as the
baseline in the same run, the greedy alone, and prints n, M, pairs, floor, strength, bound,
gap, seconds, peak RSS and the ratio search / greedy. The last line is
``gap=<worst gap> seconds=<total> peak_rss_gib=<x> ratio_vs_greedy=<worst> n=<n> m=<M>``.

It also prints the memory estimates of the sparse path and of the dense path
(``dense_pairwise_bytes``) at this size. Run:

    OMP_WAIT_POLICY=PASSIVE NUMBA_NUM_THREADS=1 python bench/pairwise_sparse_scale.py \
        [--n 5000 --m 8 --floors 0.95 0.9 --time-limit 120]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from solver.memory import dense_pairwise_bytes, sparse_pairwise_bytes  # noqa: E402
from solver.sparse_data import SparsePairwiseIIA  # noqa: E402
from solver.sparse_search import (  # noqa: E402
    _lagrangian,
    _node_gains,
    greedy_pairwise_sparse,
    solve_pairwise_sparse,
    sparse_arrays,
)
from solver.sparse_verify import check_partition_sparse  # noqa: E402


def sampled_design(n: int, n_models: int, seed: int, max_partners: int = 10):
    """(SparsePairwiseIIA, true model per input) with the planted structure above."""
    rng = np.random.default_rng(seed)
    true = rng.integers(0, n_models, size=n)
    draws = rng.integers(1, max_partners + 1, size=n)
    src = np.repeat(np.arange(n), draws)
    dst = (src + rng.integers(1, n, size=src.size)) % n  # never the input itself
    pairs = np.unique(np.sort(np.stack((src, dst), axis=1), axis=1), axis=0)
    i, j = pairs[:, 0], pairs[:, 1]
    w = rng.beta(2.0, 3.0, size=(n_models, len(pairs)))
    same = np.flatnonzero(true[i] == true[j])
    m = true[i[same]]
    w[m, same] = 1.0 - np.minimum(rng.exponential(0.03, size=same.size), 1.0)
    sib = m ^ 1
    ok = sib < n_models
    w[sib[ok], same[ok]] = np.clip(0.8 - rng.exponential(0.05, size=ok.sum()), 0.0, 1.0)
    names = tuple(f"model{k}" for k in range(n_models))
    return SparsePairwiseIIA(pairs, w.astype(np.float32), names, n), true


def relaxation_profile(data, floor: float) -> str:
    """Where the bound's pair-deficit relaxation stands: the inputs negative under every model
    (each needs surplus from elsewhere), and its value L(μ) with one μ for every model."""
    pairs, weights, n = sparse_arrays(data)
    g = _node_gains(pairs, weights, n, floor)
    negative = int((g < 0).all(axis=0).sum())
    values = ", ".join(
        f"{mu:g}: {_lagrangian(g, np.full(g.shape[0], float(mu))):,.0f}" for mu in (0, 1, 3, 10)
    )
    return f"relaxation: {negative:,} inputs negative under every model; L at μ = {values}"


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--m", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--floors", type=float, nargs="+", default=[0.95, 0.9])
    parser.add_argument("--time-limit", type=float, default=120.0)
    parser.add_argument("--budget", type=int, default=None, help="annealing moves (None: default)")
    args = parser.parse_args()

    t0 = time.perf_counter()
    data, true = sampled_design(args.n, args.m, args.seed)
    deg = data.degrees()
    print(
        f"instance: n={data.n_inputs} M={len(data.models)} pairs={data.n_pairs:,} "
        f"partners/input min={deg.min()} mean={deg.mean():.1f} max={deg.max()} "
        f"built in {time.perf_counter() - t0:.1f}s"
    )
    sparse_est = sparse_pairwise_bytes(data.n_inputs, data.n_pairs, len(data.models))
    dense_est = dense_pairwise_bytes(data.n_inputs, len(data.models))
    print(
        f"memory estimate: sparse {sparse_est / 2**30:.3f} GiB, "
        f"dense [M, n, n] float64 path {dense_est / 2**30:.2f} GiB"
    )
    # Warm the numba cache outside the timed solves (a first run compiles the kernels).
    tiny, _ = sampled_design(60, args.m, args.seed + 1)
    solve_pairwise_sparse(tiny, 0.9, budget=1000, time_limit=30.0)

    worst_gap, total_s, worst_ratio = 0.0, 0.0, float("inf")
    header = (
        f"{'floor':>6} {'strength':>9} {'bound':>8} {'gap':>7} {'seconds':>8} "
        f"{'greedy':>7} {'greedy_s':>8} {'ratio':>6} {'moves':>12} {'capped':>6} {'rss_gib':>7}"
    )
    print(header)
    for floor in args.floors:
        t = time.perf_counter()
        greedy = greedy_pairwise_sparse(data, floor)
        greedy_s = time.perf_counter() - t
        check_partition_sparse(data, greedy, floor)
        g_strength = int((greedy >= 0).sum())
        assignment, cert = solve_pairwise_sparse(
            data, floor, seed=args.seed, budget=args.budget, time_limit=args.time_limit
        )
        check_partition_sparse(data, assignment, floor)
        strength = int((assignment >= 0).sum())
        ratio = strength / max(g_strength, 1)
        moves = cert.note.split("local search: ")[-1].split(" of")[0]
        print(
            f"{floor:>6.3f} {strength:>9d} {cert.bound:>8.0f} {cert.gap:>7.4f} "
            f"{cert.seconds:>8.1f} {g_strength:>7d} {greedy_s:>8.2f} {ratio:>6.3f} "
            f"{moves:>12} {cert.capped!s:>6} {peak_rss_gib():>7.3f}"
        )
        recovered = float(np.mean(assignment[assignment >= 0] == true[assignment >= 0]))
        print(f"  {cert.note}; assigned to their true model: {recovered:.3f}")
        print(f"  {relaxation_profile(data, floor)}")
        worst_gap = max(worst_gap, cert.gap)
        total_s += cert.seconds
        worst_ratio = min(worst_ratio, ratio)
    print(
        f"gap={worst_gap:.4f} seconds={total_s:.1f} peak_rss_gib={peak_rss_gib():.3f} "
        f"ratio_vs_greedy={worst_ratio:.3f} n={args.n} m={args.m}"
    )


if __name__ == "__main__":
    main()
