"""Solver back-ends by name: "highs" (highspy, the default), "cbc" (bundled with PuLP), or
any PuLP solver name. Unknown or missing solvers fail early, naming what is installed."""

from __future__ import annotations

import pulp

ALIASES = {"highs": "HiGHS", "cbc": "PULP_CBC_CMD"}


def available_solvers() -> list[str]:
    return sorted(pulp.listSolvers(onlyAvailable=True))


def check_solver_name(name: str) -> str:
    """The PuLP class name for ``name``; ValueError naming the alternatives when unusable."""
    pulp_name = ALIASES.get(name.lower(), name)
    installed = available_solvers()
    if pulp_name not in pulp.listSolvers():
        raise ValueError(
            f"unknown solver {name!r}; use 'highs', 'cbc' or one of the installed PuLP solvers "
            f"{installed}"
        )
    if pulp_name not in installed:
        raise ValueError(
            f"solver {name!r} ({pulp_name}) is not installed here; installed: {installed} "
            "('highs' and 'cbc' come with this package)"
        )
    return pulp_name
