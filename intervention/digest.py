"""The project's one digest: a short, stable SHA-256 of structured data.

Every key of an artifact (a trained network, an alignment, a shard of successes, a job's spec
parts) is ``digest(...)`` of what it depends on. The encoding is explicit and typed, so that
``1`` and ``"1"``, ``[1, 2]`` and ``[[1], 2]``, or a float32 and a float64 array with the same
values never collide, and an object without a defined encoding is an error rather than its
``repr`` (which may hold a memory address and change between runs).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping

LENGTH = 16  # hex characters kept: 64 bits, ample for the artifacts of one results folder


def digest(*parts: object) -> str:
    """The digest of ``parts``: None, bool, int, float, str, bytes, lists/tuples, mappings with
    string keys, numpy arrays and scalars, torch tensors (by dtype, shape and bytes)."""
    h = hashlib.sha256()
    for part in parts:
        _feed(h, part)
    return h.hexdigest()[:LENGTH]


def _frame(h, tag: bytes, payload: bytes) -> None:
    # Tag and length before every payload: concatenations of different values never collide.
    h.update(tag + struct.pack("<Q", len(payload)) + payload)


def _feed(h, x: object) -> None:
    import numpy as np

    if x is None:
        _frame(h, b"N", b"")
    elif isinstance(x, bool | np.bool_):
        _frame(h, b"B", b"1" if x else b"0")
    elif isinstance(x, int | np.integer):
        _frame(h, b"I", str(int(x)).encode())
    elif isinstance(x, float | np.floating):
        _frame(h, b"F", float(x).hex().encode())
    elif isinstance(x, str):
        _frame(h, b"S", x.encode())
    elif isinstance(x, bytes | bytearray | memoryview):
        _frame(h, b"Y", bytes(x))
    elif isinstance(x, Mapping):
        keys = list(x)
        if not all(isinstance(k, str) for k in keys):
            raise TypeError(f"digest: mapping keys must be strings, got {keys!r}")
        _frame(h, b"M", str(len(keys)).encode())
        for k in sorted(keys):
            _frame(h, b"K", k.encode())
            _feed(h, x[k])
    elif isinstance(x, list | tuple):
        _frame(h, b"L", str(len(x)).encode())
        for item in x:
            _feed(h, item)
    elif isinstance(x, np.ndarray):
        if x.dtype == object:  # a Python-object array: its elements, one by one
            _frame(h, b"O", repr(x.shape).encode())
            for item in x.ravel().tolist():
                _feed(h, item)
        else:
            _frame(h, b"A", f"{x.dtype.str}{x.shape}".encode())
            h.update(np.ascontiguousarray(x).tobytes())
    elif hasattr(x, "detach") and hasattr(x, "dtype"):  # a torch tensor (no torch import here)
        t = x.detach().cpu().contiguous()
        _frame(h, b"T", f"{t.dtype}{tuple(t.shape)}".encode())
        # bfloat16 has no numpy dtype: hash its bytes through an int16 view.
        raw = t.view(_int_view(t)) if t.is_floating_point() else t
        h.update(raw.numpy().tobytes())
    else:
        raise TypeError(
            f"digest: no stable encoding for {type(x).__name__}; give its content as plain "
            "data (numbers, text, lists, dicts, arrays)"
        )


def _int_view(t):
    import torch

    return {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()]


def file_sha256(path, chunk: int = 1 << 20) -> str:
    """The full SHA-256 of a file's bytes (artifact checksums keep all 64 hex characters)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
