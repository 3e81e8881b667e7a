"""The certificate every partition carries: how it was found and how good it provably is."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

Status = Literal["optimal", "feasible", "infeasible", "heuristic"]
STATUSES: tuple[str, ...] = ("optimal", "feasible", "infeasible", "heuristic")


@dataclass(frozen=True)
class Certificate:
    """Provenance and quality of one solve.

    ``status``: ``optimal`` (the bound meets the objective), ``feasible`` (a verified
    partition, the bound is above it: a time limit or a relaxation stopped short),
    ``infeasible`` (proven: no partition meets the floor; never happens for strength,
    whose empty partition is always feasible), ``heuristic`` (no bound at all).
    ``objective`` is the strength of the returned partition; ``bound`` a proven upper
    bound on the best strength (``None`` when there is none); ``gap`` is
    ``(bound - objective) / max(bound, 1)``.
    """

    method: str
    solver: str
    status: Status
    objective: float
    bound: float | None
    gap: float | None
    seconds: float
    note: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}; expected one of {STATUSES}")

    @classmethod
    def build(
        cls,
        *,
        method: str,
        solver: str,
        objective: float,
        bound: float | None,
        seconds: float,
        note: str = "",
    ) -> Certificate:
        """Derive status and gap from an objective and a bound (strength is an integer,
        so a fractional bound is floored before it is compared)."""
        if bound is None:
            return cls(method, solver, "heuristic", objective, None, None, seconds, note)
        bound = float(math.floor(bound + 1e-6))
        bound = max(bound, float(objective))
        gap = (bound - objective) / max(bound, 1.0)
        status: Status = "optimal" if gap <= 0.0 else "feasible"
        return cls(method, solver, status, float(objective), bound, gap, seconds, note)

    def to_dict(self) -> dict:
        return asdict(self)
