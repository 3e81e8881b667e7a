"""Pictures of results: the strength-faithfulness frontier."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server or in CI
import matplotlib.pyplot as plt  # noqa: E402

from solver import Frontier  # noqa: E402


def plot_frontier(
    combined: Frontier, singles: Mapping[str, Frontier], path: str | Path, n_inputs: int
) -> Path:
    """Strength against floor for the combination and for each candidate alone."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(combined.floors, combined.strengths, "o-", lw=2.5, color="black", label="combined")
    for name, single in singles.items():
        ax.plot(single.floors, single.strengths, ".--", lw=1, label=name)
    ax.set_xlabel("faithfulness floor λ (IIA)")
    ax.set_ylabel(f"strength (inputs explained, of {n_inputs})")
    ax.set_title(f"strength-faithfulness frontier ({combined.semantics}, {combined.floor_scope})")
    ax.invert_xaxis()  # stricter floors on the left, as the sweep runs
    ax.set_ylim(0, n_inputs * 1.03)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
