"""The two IIA data types every package exchanges, validated on construction.

``PairwiseIIA``: weights w[m, i, j] in [0, 1] over unordered pairs of inputs (the paper's
semantics); symmetric, diagonal absent (stored as 0, never counted).
``PerInputIIA``: a[i, m] in [0, 1], the IIA of input i under candidate m, optionally with
the number of partners each entry was measured on.

Both name their models, and may name a fallback: the model that takes the inputs no
candidate explains. The fallback is never a candidate; ``candidates()`` lists the rest.
"""

from __future__ import annotations

import math
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from solver.sparse_data import SparsePairwiseIIA

# The largest array a data file may declare. Each array's header is read first (through
# the zip member's declared sizes) and checked against these before anything is allocated
# or decompressed, so that a tiny file declaring 10^7 x 10^7 floats, or a zip bomb, is
# refused in microseconds instead of exhausting memory.
MAX_ELEMENTS = 2**31
# dtypes a data file may hold: numbers, booleans, and strings (the model names).
_DATA_KINDS = "biufUS"


class IIADataError(ValueError):
    """IIA data that cannot be used as it is; the message names the problem and the fix."""


def _check_names(models: Sequence[str], count: int, what: str) -> tuple[str, ...]:
    names = tuple(str(m) for m in models)
    if len(names) != count:
        raise IIADataError(
            f"{what} has {count} models but {len(names)} model names were given; "
            "give exactly one name per model, in array order"
        )
    empty = [i for i, m in enumerate(names) if not m.strip()]
    if empty:
        raise IIADataError(f"model names at positions {empty} are empty; name every model")
    seen: set[str] = set()
    dupes = sorted({m for m in names if m in seen or seen.add(m)})
    if dupes:
        raise IIADataError(f"duplicate model names {dupes}; model names must be unique")
    return names


def _check_values(values: np.ndarray, what: str) -> None:
    if not np.issubdtype(values.dtype, np.number):
        raise IIADataError(f"{what} must be numeric, got dtype {values.dtype}")
    bad = ~np.isfinite(values)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise IIADataError(
            f"{what} holds {int(bad.sum())} NaN or infinite values (first at index {where}); "
            "recompute or drop those entries"
        )
    low, high = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    if low < 0.0 or high > 1.0:
        raise IIADataError(
            f"{what} must lie in [0, 1] but spans [{low:g}, {high:g}]; "
            "IIA is an accuracy: pass fractions, not percentages or logits"
        )


def _check_fallback(fallback: str | None, models: tuple[str, ...]) -> str | None:
    if fallback is None:
        return None
    fallback = str(fallback)
    if fallback not in models:
        raise IIADataError(
            f"unknown fallback {fallback!r}; the data holds models {list(models)}: "
            "name one of them, or none"
        )
    return fallback


def _resolve_candidates(
    models: tuple[str, ...], fallback: str | None, candidates: Sequence[str] | None
) -> list[int]:
    if candidates is None:
        return [i for i, m in enumerate(models) if m != fallback]
    unknown = [c for c in candidates if c not in models]
    if unknown:
        raise IIADataError(f"unknown candidate(s) {unknown}; the data holds models {list(models)}")
    if fallback is not None and fallback in candidates:
        raise IIADataError(
            f"{fallback!r} is the fallback and cannot also be a candidate; "
            "drop it from the candidates or choose another fallback"
        )
    if len(set(candidates)) != len(candidates):
        raise IIADataError(f"candidates {list(candidates)} name a model twice")
    return [models.index(c) for c in candidates]


@dataclass(frozen=True, eq=False)
class PairwiseIIA:
    """Pairwise IIA weights [M, n, n]: w[m, i, j] = ½(success(i←j) + success(j←i)) for model m."""

    weights: np.ndarray
    models: tuple[str, ...]
    fallback: str | None = None

    def __post_init__(self) -> None:
        w = np.asarray(self.weights)
        if w.ndim != 3 or w.shape[1] != w.shape[2]:
            raise IIADataError(
                f"pairwise weights must have shape [models, n, n], got {w.shape}; "
                "a per-input matrix [n, models] belongs in PerInputIIA"
            )
        if w.shape[1] < 2:
            raise IIADataError(f"need at least 2 inputs to form a pair, got {w.shape[1]}")
        _check_values(w, "pairwise weights")
        w = w.astype(np.float64, copy=True)
        off = np.abs(w - w.transpose(0, 2, 1))
        if off.max(initial=0.0) > 1e-9:
            m, i, j = (int(x) for x in np.argwhere(off > 1e-9)[0])
            raise IIADataError(
                f"pairwise weights must be symmetric (w is a mean over both directions) but "
                f"w[{m}, {i}, {j}] = {w[m, i, j]:g} and w[{m}, {j}, {i}] = {w[m, j, i]:g}; "
                "symmetrise with (w + w.transpose(0, 2, 1)) / 2 if you hold per-direction successes"
            )
        for m in range(w.shape[0]):
            np.fill_diagonal(w[m], 0.0)  # w(i, i) does not exist; never count it
        w.setflags(write=False)
        object.__setattr__(self, "weights", w)
        object.__setattr__(
            self, "models", _check_names(self.models, w.shape[0], "pairwise weights")
        )
        object.__setattr__(self, "fallback", _check_fallback(self.fallback, self.models))

    @property
    def n_inputs(self) -> int:
        return int(self.weights.shape[1])

    def candidates(self, names: Sequence[str] | None = None) -> PairwiseIIA:
        """The candidate models only (``names``, or every model but the fallback), in that order;
        the result holds no fallback (the fallback's own data never enters a solve)."""
        idx = _resolve_candidates(self.models, self.fallback, names)
        if not idx:
            raise IIADataError("no candidate models left once the fallback is set aside")
        return PairwiseIIA(self.weights[idx], tuple(self.models[i] for i in idx))

    def with_fallback(self, fallback: str | None) -> PairwiseIIA:
        return PairwiseIIA(self.weights, self.models, fallback)

    def to_per_input(self) -> PerInputIIA:
        """a[i, m] = mean over partners j ≠ i of w[m, i, j] (the row mean without the diagonal)."""
        n = self.n_inputs
        iia = self.weights.sum(axis=2).T / (n - 1)
        counts = np.full(iia.shape, n - 1, dtype=np.int64)
        return PerInputIIA(np.clip(iia, 0.0, 1.0), self.models, counts, self.fallback)

    def save(self, path: str | Path) -> None:
        extra = {} if self.fallback is None else {"fallback": np.array(self.fallback)}
        twice = self.weights * 2
        if np.array_equal(twice, np.round(twice)):
            # The compact published format: 2·w as uint8 (values 0, 1, 2).
            np.savez_compressed(
                path, twice_w=twice.astype(np.uint8), models=np.array(self.models), **extra
            )
        else:
            np.savez_compressed(path, weights=self.weights, models=np.array(self.models), **extra)

    @classmethod
    def load(cls, path: str | Path) -> PairwiseIIA:
        return cls._from_arrays(read_npz(path), path)

    @classmethod
    def _from_arrays(cls, npz: dict[str, np.ndarray], path: str | Path) -> PairwiseIIA:
        if "weights" in npz:
            weights = npz["weights"]
        elif "twice_w" in npz:
            weights = npz["twice_w"]
        else:
            raise IIADataError(
                f"{path} holds {sorted(npz)}: a pairwise file needs 'weights' (float) "
                "or 'twice_w' (uint8, 2·w), plus 'models'"
            )
        models = _read_models(npz, path)
        fallback = _read_fallback(npz, path)
        with _naming(path):
            weights = np.asarray(weights, dtype=np.float64)
            if "weights" not in npz:
                weights = weights / 2.0
            return cls(weights, models, fallback)


@dataclass(frozen=True, eq=False)
class PerInputIIA:
    """Per-input IIA [n, M]: iia[i, m] = mean success of input i with its partners under model m."""

    iia: np.ndarray
    models: tuple[str, ...]
    counts: np.ndarray | None = None
    fallback: str | None = None

    def __post_init__(self) -> None:
        a = np.asarray(self.iia)
        if a.ndim != 2:
            raise IIADataError(f"per-input IIA must have shape [n, models], got {a.shape}")
        if a.shape[0] < 2:
            raise IIADataError(f"need at least 2 inputs, got {a.shape[0]}")
        _check_values(a, "per-input IIA")
        # float32 stays float32: at 10⁶ inputs × 64 models a float64 copy is 0.5 GiB more,
        # and the solvers and the verifier sum in float64 where it matters.
        a = a.astype(np.float32 if a.dtype == np.float32 else np.float64, copy=True)
        a.setflags(write=False)
        object.__setattr__(self, "iia", a)
        object.__setattr__(self, "models", _check_names(self.models, a.shape[1], "per-input IIA"))
        if self.counts is not None:
            c = np.asarray(self.counts)
            if c.shape != a.shape:
                raise IIADataError(
                    f"counts have shape {c.shape} but the IIA matrix has {a.shape}; "
                    "give one count per entry"
                )
            if not np.issubdtype(c.dtype, np.integer) or (c < 0).any():
                raise IIADataError("counts must be non-negative integers (partners per entry)")
            c = c.astype(np.int64, copy=True)
            c.setflags(write=False)
            object.__setattr__(self, "counts", c)
        object.__setattr__(self, "fallback", _check_fallback(self.fallback, self.models))

    @property
    def n_inputs(self) -> int:
        return int(self.iia.shape[0])

    def candidates(self, names: Sequence[str] | None = None) -> PerInputIIA:
        idx = _resolve_candidates(self.models, self.fallback, names)
        if not idx:
            raise IIADataError("no candidate models left once the fallback is set aside")
        counts = None if self.counts is None else self.counts[:, idx]
        return PerInputIIA(self.iia[:, idx], tuple(self.models[i] for i in idx), counts)

    def with_fallback(self, fallback: str | None) -> PerInputIIA:
        return PerInputIIA(self.iia, self.models, self.counts, fallback)

    def save(self, path: str | Path) -> None:
        extra: dict[str, np.ndarray] = {}
        if self.counts is not None:
            extra["counts"] = self.counts
        if self.fallback is not None:
            extra["fallback"] = np.array(self.fallback)
        np.savez_compressed(path, iia=self.iia, models=np.array(self.models), **extra)

    @classmethod
    def load(cls, path: str | Path) -> PerInputIIA:
        return cls._from_arrays(read_npz(path), path)

    @classmethod
    def _from_arrays(cls, npz: dict[str, np.ndarray], path: str | Path) -> PerInputIIA:
        if "iia" not in npz:
            raise IIADataError(
                f"{path} holds {sorted(npz)}: a per-input file needs 'iia' [n, models] "
                "and 'models' (and optionally 'counts')"
            )
        models = _read_models(npz, path)
        fallback = _read_fallback(npz, path)
        with _naming(path):
            return cls(npz["iia"], models, npz.get("counts"), fallback)


def load_iia(path: str | Path) -> PairwiseIIA | PerInputIIA | SparsePairwiseIIA:
    """Load any data type, by the arrays the file holds: 'iia' (per-input), 'pairs' or
    'pair_weights' (sparse pairwise, a sampled design's scored pairs), else dense pairwise."""
    npz = read_npz(path)
    if "iia" in npz:
        return PerInputIIA._from_arrays(npz, path)
    if "pairs" in npz or "pair_weights" in npz:
        # Imported here: solver.sparse_data builds on this module.
        from solver.sparse_data import SparsePairwiseIIA

        return SparsePairwiseIIA._from_arrays(npz, path)
    return PairwiseIIA._from_arrays(npz, path)


class _naming:
    """Re-raise an IIADataError with the file's name in front (every load error names it)."""

    def __init__(self, path: str | Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if isinstance(exc, IIADataError) and str(self.path) not in str(exc):
            raise IIADataError(f"{self.path}: {exc}") from exc
        return False


def available_memory() -> int:
    """Bytes of memory available to a new allocation (MemAvailable; else physical pages)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2**40  # unknown: the element limit still applies


def _member_header(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo):
    """(dtype, shape, fortran order, header length) of one .npy member, read from its first
    bytes only; IIADataError when it is not a .npy array this package can hold."""
    name = info.filename
    with archive.open(info) as fp:
        try:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except ValueError as exc:
            raise IIADataError(
                f"{path}: member {name!r} is not a readable .npy array ({exc}); "
                "write the file with numpy.savez or numpy.savez_compressed"
            ) from exc
        header_len = fp.tell()
    return dtype, shape, fortran, header_len


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, each checked before it is read: its header's shape
    and dtype (at most ``MAX_ELEMENTS`` elements, and no more bytes than the machine has
    available), and the zip member's declared uncompressed size against what the header
    says the array needs. Every error names the file and what is expected."""
    path = Path(path)
    if not path.is_file():
        raise IIADataError(f"no such file: {path}")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as fh:
            head = fh.read(6)
        what = "a plain .npy array" if head == b"\x93NUMPY" else "not a zip archive"
        raise IIADataError(
            f"{path} is {what}; expected a .npz archive of named arrays (numpy.savez or "
            "numpy.savez_compressed), e.g. 'iia' [n, models] and 'models' for per-input "
            "data, or 'weights' / 'twice_w' [models, n, n] and 'models' for pairwise data"
        )
    limit_bytes = available_memory()
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
            plan = []
            total = 0
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise IIADataError(
                        f"{path}: member {info.filename!r} is not a .npy array; an .npz "
                        "holds only arrays written by numpy.savez"
                    )
                dtype, shape, fortran, header_len = _member_header(path, archive, info)
                if dtype.hasobject or dtype.kind not in _DATA_KINDS:
                    raise IIADataError(
                        f"{path}: array {info.filename[:-4]!r} has dtype {dtype}; data files "
                        "hold numbers and strings only (no objects, no records)"
                    )
                elements = math.prod(shape)
                nbytes = elements * dtype.itemsize
                if elements > MAX_ELEMENTS:
                    raise IIADataError(
                        f"{path}: array {info.filename[:-4]!r} declares shape {shape} "
                        f"({elements:,} elements), over the limit of MAX_ELEMENTS = "
                        f"{MAX_ELEMENTS:,} elements; split the data or sample fewer inputs"
                    )
                total += nbytes
                if total > limit_bytes:
                    raise IIADataError(
                        f"{path}: array {info.filename[:-4]!r} declares shape {shape} of "
                        f"{dtype} ({nbytes:,} bytes), beyond the {limit_bytes:,} bytes of "
                        "memory available here; use a machine with more memory or less data"
                    )
                if info.file_size != header_len + nbytes:
                    raise IIADataError(
                        f"{path}: member {info.filename!r} holds {info.file_size:,} bytes "
                        f"uncompressed, but its header declares {header_len + nbytes:,} "
                        f"(shape {shape} of {dtype}); the file is corrupt or forged: "
                        "write it again with numpy.savez"
                    )
                plan.append((info, dtype, shape, fortran, header_len))
            for info, dtype, shape, fortran, header_len in plan:
                with archive.open(info) as fp:
                    fp.read(header_len)
                    data = fp.read(int(math.prod(shape)) * dtype.itemsize)
                array = np.frombuffer(data, dtype=dtype)  # read-only; the types copy it
                if fortran:
                    array = array.reshape(shape[::-1]).transpose()
                else:
                    array = array.reshape(shape)
                out[info.filename[:-4]] = array
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        if isinstance(exc, IIADataError):
            raise
        raise IIADataError(f"{path} is not a readable .npz archive ({exc})") from exc
    return out


def _read_models(npz: dict[str, np.ndarray], path) -> tuple[str, ...]:
    if "models" not in npz:
        raise IIADataError(f"{path} has no 'models' array; add the model names, one per model")
    return tuple(str(m) for m in np.atleast_1d(npz["models"]))


def _read_fallback(npz: dict[str, np.ndarray], path) -> str | None:
    if "fallback" not in npz:
        return None
    value = np.atleast_1d(npz["fallback"])
    if value.size != 1:
        raise IIADataError(f"{path}: 'fallback' must be one model name, got {value.size} values")
    return str(value[0])
