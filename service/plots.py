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


def plot_partition(partition, task, path: str | Path) -> Path:
    """Which model explains each input. Tasks with three small input variables (arithmetic)
    get one X-by-Y panel per Z value; others a strip of inputs in index order."""
    from matplotlib.colors import ListedColormap

    names = ["fallback", *partition.models]
    codes = partition.assignment + 1
    cmap = ListedColormap(["#dddddd", *plt.get_cmap("tab10").colors[: len(partition.models)]])
    inputs = list(task.inputs)
    sizes = [len(task.inputs[v]) for v in inputs]
    if len(inputs) == 3 and max(sizes) <= 12:
        nx, ny, nz = sizes
        grid = codes.reshape(nx, ny, nz)
        cols = min(nz, 5)
        rows = -(-nz // cols)
        fig, axes = plt.subplots(
            rows, cols, figsize=(1.9 * cols + 0.6, 2.4 * rows + 1.0), squeeze=False
        )
        for z, ax in enumerate(axes.flat):
            ax.set_xticks([])
            ax.set_yticks([])
            if z >= nz:
                ax.set_visible(False)
                continue
            ax.imshow(grid[:, :, z], cmap=cmap, vmin=0, vmax=len(names) - 1)
            ax.set_title(f"{inputs[2]}={task.inputs[inputs[2]][z]}", fontsize=8)
        axes[0][0].set_ylabel(f"{inputs[0]} (rows) × {inputs[1]} (cols)", fontsize=7)
    else:
        fig, ax = plt.subplots(figsize=(10, 1.6))
        ax.imshow(codes[None, :], cmap=cmap, vmin=0, vmax=len(names) - 1, aspect="auto")
        ax.set_yticks([])
        ax.set_xlabel("input index")
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(k)) for k in range(len(names))]
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 4), fontsize=7)
    fig.suptitle(
        f"partition at floor {partition.floor} (strength {partition.strength})", fontsize=9
    )
    fig.tight_layout(rect=(0, 0.1, 1, 0.94))
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
