"""Memory a solve needs, estimated from the shapes before anything big is built, and the
refusal when the machine does not have it: "killed by the kernel after minutes" becomes a
ValueError that names the estimate, what is available, and what to change.

Each estimate counts what its path allocates, calibrated by measuring peak RSS growth; it is
an estimate, not an exact account, and errs toward refusing a little early.
"""

from __future__ import annotations

from solver import data


class MemoryEstimateError(ValueError):
    """The estimated memory need of a solve exceeds what is available: refused before any
    big allocation."""


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.2f} GiB"


def refuse_if_short(needed: int, what: str, fix: str, available: int | None = None) -> None:
    """Raise MemoryEstimateError when ``needed`` bytes exceed ``available`` (default: the
    memory available now, ``solver.data.available_memory``)."""
    have = data.available_memory() if available is None else int(available)
    if needed > have:
        raise MemoryEstimateError(
            f"{what} needs an estimated {_gib(needed)} ({needed:,} bytes), more than the "
            f"{_gib(have)} available here; {fix}"
        )


# -- per-input semantics -------------------------------------------------------------------

# Bytes per x variable of the MILP, measured as peak RSS growth while building and solving
# for 2 s (5,000 and 20,000 inputs x 8 models, floor 0.9, with max_models and min_cell):
# PuLP 2,830 and 1,830 bytes (Python objects per variable and per term, then HiGHS's
# copies), highspy 1,840 and 1,690 (numpy columns of ~5 nonzeros, then HiGHS's presolved
# copies and search). Rounded up: an estimate that refuses a little early beats a kill.
PULP_BYTES_PER_VAR = 3_000
HIGHS_BYTES_PER_VAR = 2_000
# Per input, whatever the path: index vectors, assignments, scores, sort keys (int64 /
# float64, about 16 of them alive at once in the rounding and repair steps).
BYTES_PER_INPUT = 16 * 8
# A fixed allowance for the interpreter's working set around the solve (solver libraries,
# bundle cut models, blocks of rows evaluated in float64).
BASE_BYTES = 256 * 2**20


def per_input_memory_need(
    n: int, n_models: int, path: str, *, itemsize: int = 8, converted: bool = False
) -> int:
    """Estimated peak bytes a per-input solve allocates besides the [n, n_models] input.

    ``path``: ``"lagrangian"`` ("auto" without a MILP phase: the bundle oracle's two
    [n, M] arrays in the data's float type, ``itemsize`` bytes per entry, plus one byte per
    entry for boolean scans), ``"highs"`` ("auto" with its MILP phase: that plus
    ``HIGHS_BYTES_PER_VAR`` per variable), or ``"pulp"`` (method "ilp":
    ``PULP_BYTES_PER_VAR`` per variable plus the Lagrangian fallback bound). Every path
    adds ``BYTES_PER_INPUT`` per input and ``BASE_BYTES``; ``converted``: the input is not
    float32/float64 and gets a float64 copy (8 bytes per entry more)."""
    if path not in ("lagrangian", "highs", "pulp"):
        raise ValueError(f"path must be 'lagrangian', 'highs' or 'pulp', got {path!r}")
    entries = int(n) * int(n_models)
    need = BASE_BYTES + BYTES_PER_INPUT * int(n) + entries * (2 * itemsize + 1)
    if converted:
        need += entries * 8
    if path == "highs":
        need += entries * HIGHS_BYTES_PER_VAR
    elif path == "pulp":
        need += entries * PULP_BYTES_PER_VAR
    return need


def check_per_input_memory(
    n: int, n_models: int, path: str, *, itemsize: int = 8, converted: bool = False
) -> int:
    """Raise ``MemoryEstimateError`` when ``per_input_memory_need`` exceeds the memory
    available; return the estimate otherwise."""
    need = per_input_memory_need(n, n_models, path, itemsize=itemsize, converted=converted)
    if path == "lagrangian":
        fix = "try fewer candidate models or fewer inputs (a sample), or a larger machine"
    else:
        fix = (
            "try method='auto' (a Lagrangian bound and rounding, no MILP at this size), "
            "or fewer candidate models, or a larger machine"
        )
    refuse_if_short(need, f"a per-input solve of {n:,} inputs x {n_models:,} models ({path})", fix)
    return need


# -- pairwise semantics --------------------------------------------------------------------

# The dense pairwise path holds w [M, n, n] float64 several times over at its peak: the
# caller's array, PairwiseIIA's validated copy and its symmetry check's temporaries (w − wᵀ
# and its abs), the candidates' copy, the search's and the bound's working copies. Measured
# (peak RSS of Solver(semantics="pairwise").solve, M = 8, random w): 10.1 copies' worth at
# n = 1000 and 7.6 at n = 2000, i.e. 6.8 copies per extra 8·M·n² bytes plus a fixed ~0.4 GiB
# of libraries; 7 copies.
DENSE_COPIES = 7
# Bytes per (input, model) entry of the sparse path's per-input state (sums s and partner
# counts d, each held for the walk, the repaired copy and spares) and of the bound's LP
# (HiGHS holds a column, two nonzeros and its factor per entry; 512 is generous).
_SPARSE_STATE_BYTES = 6 * 16
_LP_BYTES = 512


def dense_pairwise_bytes(n_inputs: int, n_models: int) -> int:
    """Estimated peak bytes of the dense pairwise path (``PairwiseIIA`` [M, n, n] float64 and
    the search and bound on it): ``DENSE_COPIES`` · 8 · M · n²."""
    return DENSE_COPIES * 8 * int(n_models) * int(n_inputs) ** 2


def sparse_pairwise_bytes(n_inputs: int, n_pairs: int, n_models: int) -> int:
    """Estimated peak bytes of ``solve_pairwise_sparse``: the pairs and weights (validated
    copy and float64 working copy), the CSR adjacency (both directions: indices and M
    weights per entry), the search state, and the bound's LP."""
    n, p, m = int(n_inputs), int(n_pairs), int(n_models)
    data = p * 2 * 8 + 2 * m * p * 8
    csr = (n + 1) * 8 + 2 * p * 8 + 2 * m * p * 8
    state = m * n * _SPARSE_STATE_BYTES + 16 * n * 8 + 4 * p * 8
    bound = m * n * _LP_BYTES + 4 * m * p * 8
    return data + csr + state + bound


def check_dense_memory(n_inputs: int, n_models: int, available: int | None = None) -> int:
    """The dense pairwise path's estimate in bytes; MemoryEstimateError when it does not fit."""
    needed = dense_pairwise_bytes(n_inputs, n_models)
    refuse_if_short(
        needed,
        f"the dense pairwise path at n = {n_inputs:,} inputs and M = {n_models} models "
        f"(w [M, n, n] float64, {DENSE_COPIES} copies at its peak)",
        "give the scored pairs as a sparse tensor (SparsePairwiseIIA: only the pairs your "
        "design scored), or solve fewer inputs",
        available,
    )
    return needed


def check_sparse_memory(
    n_inputs: int, n_pairs: int, n_models: int, available: int | None = None
) -> int:
    """The sparse path's estimate in bytes; MemoryEstimateError when it does not fit."""
    needed = sparse_pairwise_bytes(n_inputs, n_pairs, n_models)
    refuse_if_short(
        needed,
        f"the sparse pairwise solve at n = {n_inputs:,} inputs, P = {n_pairs:,} scored pairs "
        f"and M = {n_models} models",
        "score fewer pairs per input, solve fewer inputs or models, or use a larger machine",
        available,
    )
    return needed
