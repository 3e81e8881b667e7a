"""Pairwise IIA from a sampled design: only the scored pairs, as a sparse pair tensor.

In a sampled design each input is scored against a few partners, so the pairwise data is a
list of unordered pairs (i, j), i < j, with a weight per model, w[m, p] in [0, 1]
(½(s(i←j) + s(j←i)) for pair p). ``SparsePairwiseIIA`` holds it in O(M·P) memory, where the
dense tensor [M, n, n] needs O(M·n²) (8 GiB at n = 10,000 and M = 10 in float64).

Rules for a cell S of model m (the sparse counterpart of solver/feasibility.py):

* **Cell IIA** is the mean of w[m] over the *scored* pairs with both ends in S; unscored
  pairs are unknown, never guessed (neither 0 nor 1).
* **Unmeasured cell**: no scored pair inside S. Its IIA does not exist, so it cannot be
  claimed to meet any floor: such a cell is infeasible, and the verifier says "unmeasured"
  rather than printing a number.
* **Each member measured**: every input of S has at least one scored partner inside S.
  Without this rule an input with no scored pair inside the cell would add nothing to the
  sum nor to the count, and could ride along in any good cell for free: strength would then
  count inputs about which the data says nothing. The rule implies the previous one and a
  cell of at least two inputs (``MIN_PAIRWISE_CELL``); a cell of two inputs whose one pair is
  scored is fine (its IIA is that pair's weight, by the mean definition).
* **Floor**: per-model, each cell's mean meets λ under ``meets_floor`` (tolerance ``TOL``);
  global, the pooled mean over every scored pair inside every cell does.

This module holds the data type; ``solver.sparse_verify`` the cell IIA and the checks by these
rules; ``solver.sparse_search`` the local search, the bound and ``solve_pairwise_sparse``;
``solver.sparse_pair_lp`` the LP bound over the pairs that the solve adds after its search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from solver.data import (
    IIADataError,
    PairwiseIIA,
    PerInputIIA,
    _check_fallback,
    _check_names,
    _check_values,
    _naming,
    _read_fallback,
    _read_models,
    _resolve_candidates,
    read_npz,
)

MIN_SCORED_PAIRS = 1  # a cell needs at least this many scored pairs inside to have an IIA
MIN_PARTNERS_INSIDE = 1  # ...and every member at least this many scored partners inside


# ----------------------------------------------------------------------------------------------
# The data type.


def _check_pairs(pairs: np.ndarray, n: int) -> np.ndarray:
    """Pairs as int64 [P, 2] with i < j; IIADataError naming the first bad pair otherwise."""
    p = np.asarray(pairs)
    if p.size == 0:
        p = p.reshape(0, 2)
    if p.ndim != 2 or p.shape[1] != 2:
        raise IIADataError(
            f"pairs must have shape [P, 2] (one row per scored pair of inputs), got {p.shape}"
        )
    if p.dtype == bool or not np.issubdtype(p.dtype, np.integer):
        raise IIADataError(
            f"pairs must be integer input indices, got dtype {p.dtype}; "
            "convert with pairs.astype(np.int64) if they are whole numbers"
        )
    p = p.astype(np.int64)
    bad = (p < 0) | (p >= n)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise IIADataError(
            f"pair {row} = ({p[row, 0]}, {p[row, 1]}) names an input outside 0..{n - 1} "
            f"(n_inputs = {n}); fix the index or raise n_inputs"
        )
    self_pairs = np.flatnonzero(p[:, 0] == p[:, 1])
    if self_pairs.size:
        row = int(self_pairs[0])
        raise IIADataError(
            f"{self_pairs.size} self-pairs (first: pair {row} = ({p[row, 0]}, {p[row, 0]})); "
            "an input is no pair with itself: drop those rows"
        )
    # Pairs are unordered: store i < j, so that (3, 5) and (5, 3) are recognised as one pair.
    p = np.sort(p, axis=1)
    key = p[:, 0] * n + p[:, 1]
    order = np.argsort(key, kind="stable")
    dup = np.flatnonzero(key[order][1:] == key[order][:-1])
    if dup.size:
        first, second = int(order[dup[0]]), int(order[dup[0] + 1])
        raise IIADataError(
            f"{dup.size} duplicate pairs (first: rows {first} and {second} are both "
            f"({p[first, 0]}, {p[first, 1]}); pairs are unordered); merge each pair's scores "
            "into one row, e.g. average the two directions into ½(s(i←j) + s(j←i))"
        )
    p.setflags(write=False)
    return p


@dataclass(frozen=True, eq=False)
class SparsePairwiseIIA:
    """Pairwise IIA on scored pairs only: ``pairs`` int64 [P, 2] (i < j, unique, stored as
    given but each row sorted), ``weights`` [M, P] (w[m, p] for pair p under model m; float32
    stays float32, any other dtype becomes float64), ``models`` (one name per row of
    ``weights``), ``n_inputs`` (inputs may have no scored pair at all, so n is given, not
    inferred) and an optional ``fallback`` model, as in ``PairwiseIIA``."""

    pairs: np.ndarray
    weights: np.ndarray
    models: tuple[str, ...]
    n_inputs: int
    fallback: str | None = None

    def __post_init__(self) -> None:
        n = self.n_inputs
        if isinstance(n, bool) or not isinstance(n, int | np.integer):
            raise IIADataError(f"n_inputs must be a whole number of inputs, got {n!r}")
        n = int(n)
        if n < 2:
            raise IIADataError(f"need at least 2 inputs to form a pair, got n_inputs = {n}")
        pairs = _check_pairs(self.pairs, n)
        w = np.asarray(self.weights)
        if w.ndim == 1:
            w = w[None]  # one model's weights [P]
        if w.ndim != 2 or w.shape[1] != pairs.shape[0]:
            raise IIADataError(
                f"pair weights must have shape [models, P] = [models, {pairs.shape[0]}] "
                f"(one column per row of pairs), got {w.shape}; a dense [models, n, n] tensor "
                "belongs in PairwiseIIA"
            )
        if w.shape[0] < 1:
            raise IIADataError("pair weights hold no model; give at least one row")
        _check_values(w, "pair weights")
        dtype = np.float32 if w.dtype == np.float32 else np.float64
        w = w.astype(dtype, copy=True)
        w.setflags(write=False)
        object.__setattr__(self, "n_inputs", n)
        object.__setattr__(self, "pairs", pairs)
        object.__setattr__(self, "weights", w)
        object.__setattr__(self, "models", _check_names(self.models, w.shape[0], "pair weights"))
        object.__setattr__(self, "fallback", _check_fallback(self.fallback, self.models))

    @property
    def n_pairs(self) -> int:
        return int(self.pairs.shape[0])

    def candidates(self, names: Sequence[str] | None = None) -> SparsePairwiseIIA:
        """The candidate models only (``names``, or every model but the fallback), in that
        order, with no fallback (as ``PairwiseIIA.candidates``)."""
        idx = _resolve_candidates(self.models, self.fallback, names)
        if not idx:
            raise IIADataError("no candidate models left once the fallback is set aside")
        return SparsePairwiseIIA(
            self.pairs, self.weights[idx], tuple(self.models[i] for i in idx), self.n_inputs
        )

    def with_fallback(self, fallback: str | None) -> SparsePairwiseIIA:
        return SparsePairwiseIIA(self.pairs, self.weights, self.models, self.n_inputs, fallback)

    def both_edges(self) -> SparsePairwiseIIA:
        """Edge semantics ``both`` (solver/edges.py) on the scored pairs: w ← 1 where both
        directions succeeded (w = 1), else 0; needs weights in {0, ½, 1}."""
        twice = np.asarray(self.weights, dtype=np.float64) * 2
        halves = np.round(twice)
        off = np.abs(twice - halves) > 2e-9
        if off.any():
            m, p = (int(x) for x in np.argwhere(off)[0])
            raise IIADataError(
                f"edge 'both' reads w = 1 as 'both directions succeeded', which needs weights "
                f"in {{0, 0.5, 1}}; pair {p} under model {m} has w = {self.weights[m, p]:g}, an "
                "average over more samples: use edge 'mean'"
            )
        w = (halves == 2).astype(self.weights.dtype)
        return SparsePairwiseIIA(self.pairs, w, self.models, self.n_inputs, self.fallback)

    def degrees(self) -> np.ndarray:
        """Scored partners per input, int64 [n]."""
        return np.bincount(self.pairs.ravel(), minlength=self.n_inputs).astype(np.int64)

    def to_per_input(self) -> PerInputIIA:
        """a[i, m] = mean of w[m] over input i's scored pairs, counts = its number of scored
        partners. An input with no scored pair gets a = 0 with count 0: unmeasured, which
        the count says (PerInputIIA holds no NaN)."""
        n, M = self.n_inputs, self.weights.shape[0]
        deg = self.degrees()
        sums = np.zeros((n, M))
        for m in range(M):
            w = self.weights[m].astype(np.float64)
            sums[:, m] = np.bincount(self.pairs[:, 0], w, n) + np.bincount(self.pairs[:, 1], w, n)
        iia = np.divide(sums, deg[:, None], out=np.zeros_like(sums), where=deg[:, None] > 0)
        counts = np.repeat(deg[:, None], M, axis=1)
        return PerInputIIA(np.clip(iia, 0.0, 1.0), self.models, counts, self.fallback)

    @classmethod
    def from_dense(cls, data: PairwiseIIA, pairs: np.ndarray | None = None) -> SparsePairwiseIIA:
        """The scored pairs ``pairs`` [P, 2] of a dense ``PairwiseIIA`` (None: every pair
        i < j, for tests against the dense path)."""
        n = data.n_inputs
        if pairs is None:
            i, j = np.triu_indices(n, 1)
            pairs = np.stack((i, j), axis=1)
        p = _check_pairs(pairs, n)
        w = data.weights[:, p[:, 0], p[:, 1]]
        return cls(p, w, data.models, n, data.fallback)

    def save(self, path: str | Path) -> None:
        """Write the .npz layout ``load_iia`` recognises: ``pairs`` [P, 2] (int32 when n
        allows), ``pair_weights`` [M, P], ``models``, ``n_inputs`` and optional ``fallback``."""
        extra = {} if self.fallback is None else {"fallback": np.array(self.fallback)}
        idx_type = np.int32 if self.n_inputs < 2**31 else np.int64
        np.savez_compressed(
            path,
            pairs=self.pairs.astype(idx_type),
            pair_weights=self.weights,
            models=np.array(self.models),
            n_inputs=np.array(self.n_inputs, dtype=np.int64),
            **extra,
        )

    @classmethod
    def load(cls, path: str | Path) -> SparsePairwiseIIA:
        return cls._from_arrays(read_npz(path), path)

    @classmethod
    def _from_arrays(cls, npz: dict[str, np.ndarray], path: str | Path) -> SparsePairwiseIIA:
        missing = [k for k in ("pairs", "pair_weights", "n_inputs") if k not in npz]
        if missing:
            raise IIADataError(
                f"{path} holds {sorted(npz)}: a sparse pairwise file needs 'pairs' [P, 2], "
                f"'pair_weights' [models, P], 'n_inputs' and 'models'; missing {missing}"
            )
        models = _read_models(npz, path)
        fallback = _read_fallback(npz, path)
        n = np.atleast_1d(npz["n_inputs"])
        with _naming(path):
            if n.size != 1 or not np.issubdtype(n.dtype, np.integer):
                raise IIADataError(f"'n_inputs' must be one whole number, got {n!r}")
            return cls(npz["pairs"], npz["pair_weights"], models, int(n[0]), fallback)


def as_sparse(data) -> SparsePairwiseIIA:
    """A SparsePairwiseIIA as it is, or a tuple (pairs, weights[, n_inputs]) validated into
    one (models named "0", "1", ...; without n_inputs, n is the largest index + 1)."""
    if isinstance(data, SparsePairwiseIIA):
        return data
    if not isinstance(data, tuple) or len(data) not in (2, 3):
        raise TypeError(
            "sparse data must be a SparsePairwiseIIA or a tuple (pairs, weights[, n_inputs])"
        )
    pairs, weights = np.asarray(data[0]), np.asarray(data[1])
    if weights.ndim == 1:
        weights = weights[None]
    n = data[2] if len(data) == 3 else int(pairs.max(initial=-1)) + 1
    return SparsePairwiseIIA(pairs, weights, tuple(str(m) for m in range(len(weights))), n)


def sparse_arrays(data) -> tuple[np.ndarray, np.ndarray, int]:
    """(pairs int64 [P, 2], weights [M, P], n) of sparse data (see ``as_sparse``)."""
    data = as_sparse(data)
    return data.pairs, data.weights, data.n_inputs
