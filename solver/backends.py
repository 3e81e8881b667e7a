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


_banner_shown = False


def new_highs():
    """A silent ``highspy.Highs``. HiGHS prints its banner to the C stdout the first time one
    is built in a process, before any option can be set; that first build happens with fd 1
    pointed at /dev/null so that tables printed by ``ccm`` stay clean."""
    global _banner_shown
    import os
    import sys

    import highspy

    if not _banner_shown:
        sys.stdout.flush()
        saved = os.dup(1)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            highs = highspy.Highs()
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)
        _banner_shown = True
    else:
        highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    return highs
