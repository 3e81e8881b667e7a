"""The certificate every partition carries: how it was found and how good it provably is."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Literal

Status = Literal["optimal", "feasible", "infeasible", "heuristic"]
STATUSES: tuple[str, ...] = ("optimal", "feasible", "infeasible", "heuristic")
# Strength is an integer, so a fractional bound is floored; a bound a hair under an integer
# (solver round-off: 6.9999999) still counts as that integer.
BOUND_ROUNDING = 1e-6


class CertificateError(ValueError):
    """A certificate that would claim what is not proven (a bound below the objective)."""


def floor_bound(bound: float) -> float:
    """The best strength a fractional upper bound allows."""
    return float(math.floor(bound + BOUND_ROUNDING))


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

    ``budget``: the deterministic work limit the search ran under (annealing moves for
    pairwise ``auto``, branch-and-bound nodes for per-input ``auto``; None when the method
    has none); ``time_limit``: the wall-clock cap in seconds (None: uncapped);
    ``capped``: True when the time cap cut the work short, so that the result depends on
    the machine's speed (the note says where).
    """

    method: str
    solver: str
    status: Status
    objective: float
    bound: float | None
    gap: float | None
    seconds: float
    note: str = ""
    budget: int | None = None
    time_limit: float | None = None
    capped: bool = False

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
        budget: int | None = None,
        time_limit: float | None = None,
        capped: bool = False,
    ) -> Certificate:
        """Derive status and gap from an objective and a bound (strength is an integer,
        so a fractional bound is floored before it is compared).

        A bound below the objective is never clamped: a proven upper bound cannot lie
        under a verified partition, so such a bound is a bug in whatever produced it."""
        extra = dict(budget=budget, time_limit=time_limit, capped=capped)
        if bound is None:
            return cls(method, solver, "heuristic", objective, None, None, seconds, note, **extra)
        floored = floor_bound(bound)
        if floored < objective:
            raise CertificateError(
                f"bound {bound!r} (floored to {floored:.0f}) is below the objective "
                f"{objective!r} of a verified partition ({method}, {solver}): that bound is "
                "not valid; find the step that produced it instead of using it"
            )
        gap = (floored - objective) / max(floored, 1.0)
        status: Status = "optimal" if gap <= 0.0 else "feasible"
        return cls(method, solver, status, float(objective), floored, gap, seconds, note, **extra)

    def with_note(self, extra: str) -> Certificate:
        """The same certificate with ``extra`` appended to its note."""
        if not extra:
            return self
        return replace(self, note=f"{self.note}; {extra}" if self.note else extra)

    def replace(self, **changes) -> Certificate:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)
