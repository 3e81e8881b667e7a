"""Results as plain dataclasses: one floor's partition, and a sweep of them (the frontier)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from solver.certificate import Certificate


@dataclass(frozen=True, eq=False)
class Partition:
    """A verified input-to-model partition at one faithfulness floor.

    ``assignment[i]`` is the index into ``models`` of the candidate that explains input i,
    or -1 when the fallback takes it. ``cell_iia`` holds the IIA of every model's cell.

    With several cells per model (``Solver(cells_per_model=K)``, K > 1), ``cell[i]`` is the
    number of input i's cell within its model (0 is the largest; -1 for the fallback),
    ``cells_iia[name]`` the IIA of each of the model's cells in that order, and
    ``cell_iia[name]`` the IIA of its weakest cell (every cell meets at least that; the
    union of a model's cells need not meet the floor). ``cell`` is None when every model
    holds one cell.
    """

    floor: float
    semantics: str
    floor_scope: str
    models: tuple[str, ...]
    fallback: str | None
    assignment: np.ndarray
    cell_iia: dict[str, float]
    certificate: Certificate
    cell: np.ndarray | None = None
    cells_iia: dict[str, tuple[float, ...]] | None = None

    @property
    def strength(self) -> int:
        """Inputs explained by candidates (the fallback's do not count)."""
        return int((self.assignment >= 0).sum())

    @property
    def cell_sizes(self) -> dict[str, int]:
        counts = np.bincount(self.assignment[self.assignment >= 0], minlength=len(self.models))
        return {name: int(c) for name, c in zip(self.models, counts)}

    def labels(self) -> list[str | None]:
        """The model name per input, in input order; None for the fallback."""
        return [self.models[m] if m >= 0 else None for m in self.assignment.tolist()]

    def to_dict(self) -> dict:
        return {
            "floor": self.floor,
            "strength": self.strength,
            "assignment": self.labels(),
            "cell_sizes": self.cell_sizes,
            "cell_iia": {k: round(v, 6) for k, v in self.cell_iia.items()},
            **(self._cells_dict() if self.cell is not None else {}),
            "certificate": self.certificate.to_dict(),
        }

    def _cells_dict(self) -> dict:
        sizes = {
            name: np.bincount(self.cell[self.assignment == m], minlength=1).tolist()
            for m, name in enumerate(self.models)
            if (self.assignment == m).any()
        }
        return {
            "cell": [int(c) if c >= 0 else None for c in self.cell.tolist()],
            "cells": {
                name: [
                    {"size": size, "iia": round(iia, 6)}
                    for size, iia in zip(sizes[name], (self.cells_iia or {}).get(name, ()))
                ]
                for name in sizes
            },
        }


@dataclass(frozen=True, eq=False)
class Frontier:
    """Partitions over a sweep of floors, highest floor first; strength never drops as λ falls."""

    semantics: str
    floor_scope: str
    models: tuple[str, ...]
    fallback: str | None
    results: tuple[Partition, ...]
    edge: str = "mean"  # what a pair counts: ½(s(i←j) + s(j←i)), or 1 only where both succeed
    note: str = ""  # how the floors were chosen (floors="auto"), and what held them back

    @property
    def floors(self) -> list[float]:
        return [r.floor for r in self.results]

    @property
    def strengths(self) -> list[int]:
        return [r.strength for r in self.results]

    def to_dict(self) -> dict:
        return {
            "semantics": self.semantics,
            "floor_scope": self.floor_scope,
            "edge": self.edge,
            "models": list(self.models),
            "fallback": self.fallback,
            "results": [r.to_dict() for r in self.results],
            **({"note": self.note} if self.note else {}),
        }
