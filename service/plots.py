"""Pictures of results: the strength-faithfulness frontier and the partition of the inputs."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import ListedColormap, to_rgba  # noqa: E402

from solver import Frontier  # noqa: E402

# What the figures can be saved as here: raster through Agg and Pillow, vector through
# matplotlib's own backends (pgf is left out: it needs a LaTeX installation).
PLOT_FORMATS = ("png", "pdf", "svg", "svgz", "eps", "ps", "jpg", "jpeg", "tif", "tiff", "webp")
FALLBACK_COLOUR = "#dddddd"


def check_plot_path(path: str | Path) -> Path:
    """Refuse a file name whose extension is not a format the plots can be written in, so a
    long solve never ends in a plot it cannot save."""
    p = Path(path)
    ext = p.suffix.lower().lstrip(".")
    if ext not in PLOT_FORMATS:
        what = f"extension .{ext}" if ext else "no extension"
        raise ValueError(
            f"{path} has {what}; a plot is written as one of {', '.join(PLOT_FORMATS)}: give a "
            "file name such as frontier.png"
        )
    return p


def model_colours(n: int) -> list[tuple[float, float, float, float]]:
    """``n`` distinct colours, one per model: tab10 up to 10, tab20 up to 20, then evenly
    spaced along a continuous map, so that no two models share a colour however many."""
    if n <= 10:
        colours = plt.get_cmap("tab10").colors[:n]
    elif n <= 20:
        colours = plt.get_cmap("tab20").colors[:n]
    else:
        colours = plt.get_cmap("turbo")(np.linspace(0.05, 0.95, n))
    return [to_rgba(c) for c in colours]


# The most single-column lines drawn in colour with a legend entry each: as many as tab20 keeps
# distinct. More (many candidates × sites) would make a legend taller than the plot; the rest
# are drawn in grey under one entry.
MAX_SINGLES_SHOWN = 20
OTHER_COLOUR = "#b0b0b0"


def frontier_figure(
    combined: Frontier,
    singles: Mapping[str, Frontier],
    n_inputs: int,
    sites: Mapping[str, Frontier] | None = None,
    controls: Mapping[str, Frontier] | None = None,
) -> plt.Figure:
    """The figure ``plot_frontier`` saves: strength against floor for the combination (black)
    and for each candidate alone (one distinct colour each). With ``sites`` of more than one
    site (columns are candidates at sites), each site's own frontier is drawn in colour
    instead, and the columns alone in grey under one legend entry, so the legend grows with
    the sites, not with candidates × sites."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(combined.floors, combined.strengths, "o-", lw=2.5, color="black", label="combined")
    if sites is not None and len(sites) > 1:
        for (label, site), colour in zip(sites.items(), model_colours(len(sites))):
            ax.plot(site.floors, site.strengths, "s-", lw=1.5, color=colour, label=f"{label} only")
        _grey_singles(ax, list(singles.values()), f"a column alone ({len(singles)})")
    else:
        # The strongest singles (by strength summed over the floors) get colours and names.
        ranked = sorted(singles, key=lambda n: -sum(singles[n].strengths))
        shown = set(ranked[:MAX_SINGLES_SHOWN])
        named = [n for n in singles if n in shown]  # the callers' order, for stable colours
        for name, colour in zip(named, model_colours(len(named))):
            single = singles[name]
            ax.plot(single.floors, single.strengths, ".--", lw=1, color=colour, label=name)
        rest = [singles[n] for n in singles if n not in shown]
        if rest:
            _grey_singles(ax, rest, f"{len(rest)} more alone")
    for name, control in (controls or {}).items():  # the same job on a control network
        ax.plot(
            control.floors,
            control.strengths,
            "x-",
            lw=1.5,
            color="tab:red",
            label=f"combined on {name} control",
        )
    ax.set_xlabel("faithfulness floor λ (IIA)")
    ax.set_ylabel(f"strength (inputs explained, of {n_inputs})")
    ax.set_title(f"strength-faithfulness frontier ({combined.semantics}, {combined.floor_scope})")
    ax.invert_xaxis()  # stricter floors on the left, as the sweep runs
    ax.set_ylim(0, n_inputs * 1.03)
    ax.grid(alpha=0.3)
    entries = len(ax.get_legend_handles_labels()[0])
    ax.legend(fontsize=8 if entries <= 10 else 6, loc="lower right", ncol=1 + (entries > 10))
    fig.tight_layout()
    return fig


def _grey_singles(ax, frontiers: list[Frontier], label: str) -> None:
    """Thin grey lines, one legend entry for all of them."""
    for k, single in enumerate(frontiers):
        ax.plot(
            single.floors,
            single.strengths,
            ":",
            lw=0.8,
            color=OTHER_COLOUR,
            label=label if k == 0 else None,
        )


def plot_frontier(
    combined: Frontier,
    singles: Mapping[str, Frontier],
    path: str | Path,
    n_inputs: int,
    sites: Mapping[str, Frontier] | None = None,
    controls: Mapping[str, Frontier] | None = None,
) -> Path:
    """Draw ``frontier_figure`` to ``path``."""
    fig = frontier_figure(combined, singles, n_inputs, sites, controls)
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _product_order(task, inputs: list[str], sizes: list[int]) -> bool:
    """Whether the task's inputs are every combination of its variables' values in product
    order (the first slowest), as a custom task enumerates them: only then is input i the grid
    cell a reshape puts it in. A data task's rows may be a sample, or in another order."""
    n = int(np.prod(sizes))
    if task.n_inputs != n:
        return False
    cells = np.indices(sizes).reshape(len(sizes), n)
    return all(
        np.array_equal(np.asarray(task.values[v]), np.asarray(task.inputs[v])[cells[k]])
        for k, v in enumerate(inputs)
    )


# The most input variables drawn as strips above a partition strip: a data task may have many.
MAX_STRIP_VARIABLES = 8


def _value_strip(name: str, column) -> tuple[np.ndarray, str]:
    """A variable's values as ranks in [0, 1] (strings in sorted order), and its label:
    the name with its range, or its number of values where they are not numbers."""
    col = np.asarray(column)
    uniq, index = np.unique(col, return_inverse=True)
    ranks = index / max(len(uniq) - 1, 1)
    if col.dtype.kind in "iuf":
        return ranks, f"{name} ({uniq[0].item():g} to {uniq[-1].item():g})"
    if col.dtype.kind == "b":
        return ranks, f"{name} (False, True)"
    return ranks, f"{name} ({len(uniq)} values)"


def partition_figure(partition, task) -> plt.Figure:
    """The figure ``plot_partition`` saves: which model explains each input, one colour per
    model and grey for the fallback. Tasks with three small input variables (arithmetic) get
    one panel per value of the third, rows and columns the first two; others a strip of inputs
    in index order, under one strip per input variable (its values, named on the axis). The
    legend names every cell and the fallback model."""
    names = ["fallback", *partition.models]
    codes = partition.assignment + 1
    cmap = ListedColormap([to_rgba(FALLBACK_COLOUR), *model_colours(len(partition.models))])
    inputs = list(task.inputs)
    sizes = [len(task.inputs[v]) for v in inputs]
    legend_rows = -(-len(names) // 4)
    legend_in = 0.4 + 0.17 * legend_rows  # inches below the panels for the legend and its title
    if len(inputs) == 3 and max(sizes) <= 12 and _product_order(task, inputs, sizes):
        nx, ny, nz = sizes
        grid = codes.reshape(nx, ny, nz)
        cols = min(nz, 5)
        rows = -(-nz // cols)
        height = 2.6 * rows + 0.6 + legend_in
        fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols + 0.6, height), squeeze=False)
        for z, ax in enumerate(axes.flat):
            if z >= nz:
                ax.set_visible(False)
                continue
            ax.imshow(grid[:, :, z], cmap=cmap, vmin=0, vmax=len(names) - 1)
            ax.set_title(f"{inputs[2]}={task.inputs[inputs[2]][z]}", fontsize=8)
            # Tick labels are the variables' values, so each cell reads as one input; the
            # variables name the outer axes, as the panels share them.
            ax.set_xticks(range(ny), [str(v) for v in task.inputs[inputs[1]]], fontsize=5)
            ax.set_yticks(range(nx), [str(v) for v in task.inputs[inputs[0]]], fontsize=5)
            if z + cols >= nz:
                ax.set_xlabel(inputs[1], fontsize=7)
            if z % cols == 0:
                ax.set_ylabel(inputs[0], fontsize=7)
    else:
        shown = inputs[:MAX_STRIP_VARIABLES]
        top_in = 0.3 + 0.22 * len(shown)  # inches for the variables' strips
        height = 1.9 + top_in + legend_in
        fig = plt.figure(figsize=(10, height))
        grid = fig.add_gridspec(2, 1, height_ratios=(top_in, 1.2))
        # The cells' strip is the figure's first axes; the variables' strips above it share
        # its inputs, so a cell's inputs can be read off against the variables' values.
        ax = fig.add_subplot(grid[1])
        ax.imshow(codes[None, :], cmap=cmap, vmin=0, vmax=len(names) - 1, aspect="auto")
        ax.set_yticks([])
        ax.set_xlabel("input index")
        ax.set_ylabel("model", fontsize=7)
        top = fig.add_subplot(grid[0], sharex=ax)
        ranks, labels = zip(*(_value_strip(v, task.values[v]) for v in shown))
        top.imshow(np.stack(ranks), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        top.set_yticks(range(len(shown)), labels, fontsize=6)
        top.tick_params(axis="x", labelbottom=False)
        top.set_title("input variables (dark: low, light: high)", fontsize=7)
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(k)) for k in range(len(names))]
    fig.legend(
        handles,
        names,
        loc="lower center",
        ncol=min(len(names), 4),
        fontsize=7,
        title=f"cell: the model that explains the input (fallback: {task.fallback.name})",
        title_fontsize=7,
    )
    fig.suptitle(
        f"partition at floor {partition.floor} (strength {partition.strength})", fontsize=9
    )
    fig.tight_layout(rect=(0, legend_in / height, 1, 1 - 0.35 / height))
    return fig


def plot_partition(partition, task, path: str | Path) -> Path:
    """Draw ``partition_figure`` to ``path``."""
    fig = partition_figure(partition, task)
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
