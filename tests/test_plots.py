"""The pictures: a partition of many models in as many colours, labelled axes, real files;
and a plot file name the plots cannot write is refused before any solving."""

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.image import AxesImage, imread

from intervention.tasks import arithmetic, custom_task
from service.cli import main
from service.plots import (
    PLOT_FORMATS,
    check_plot_path,
    frontier_figure,
    model_colours,
    partition_figure,
    plot_frontier,
    plot_partition,
)
from solver import PerInputIIA, Solver


def _partition(task, n_models: int = 12):
    """A real solve: model m is faithful exactly on the inputs i with i % n_models == m."""
    n = task.n_inputs
    iia = np.zeros((n, n_models + 1))
    iia[np.arange(n), np.arange(n) % n_models] = 1.0
    iia[:, -1] = 0.5  # the fallback's column
    names = tuple(f"M{m}" for m in range(n_models)) + ("fallback",)
    data = PerInputIIA(iia, names, fallback="fallback")
    solver = Solver(semantics="per-input", method="greedy")
    partition = solver.solve(data, 1.0)
    assert partition.strength == n and len(set(partition.assignment.tolist())) == n_models
    return partition, task, solver, data


@pytest.mark.unit
@pytest.mark.parametrize("n", [1, 10, 12, 20, 35])
def test_model_colours_are_distinct_and_never_the_fallback_grey(n):
    colours = model_colours(n)
    assert len(colours) == n and len(set(colours)) == n
    assert all(np.abs(np.subtract(c[:3], (0xDD / 255,) * 3)).max() > 0.05 for c in colours)


@pytest.mark.integration
def test_partition_of_twelve_models_draws_twelve_colours_with_labelled_axes(tmp_path):
    partition, task, _, _ = _partition(arithmetic())
    fig = partition_figure(partition, task)
    try:
        panels = [ax for ax in fig.axes if ax.get_visible() and ax.images]
        assert len(panels) == 10  # one per Z value, in two rows of five
        # The panels share their axes: the bottom row names Y, the first column X.
        assert [ax.get_xlabel() for ax in panels] == [""] * 5 + ["Y"] * 5
        assert [ax.get_ylabel() for ax in panels] == ["X", "", "", "", ""] * 2
        assert all(len(ax.get_xticklabels()) == 10 for ax in panels)
        # The colours actually drawn: 12 models and no fallback (every input is explained).
        drawn = set()
        for ax in panels:
            image: AxesImage = ax.images[0]
            rgba = image.to_rgba(image.get_array(), bytes=True).reshape(-1, 4)
            drawn |= {tuple(px) for px in rgba.tolist()}
        assert len(drawn) == 12
        legend = fig.legends[0]
        patches = [tuple(h.get_facecolor()) for h in legend.legend_handles]
        assert len(set(patches)) == 13  # the fallback and twelve models
        assert [t.get_text() for t in legend.get_texts()][:2] == ["fallback", "M0"]
    finally:
        import matplotlib.pyplot as plt

        plt.close(fig)
    # The saved PNG holds every model's colour (panels are drawn larger than their cells).
    png = plot_partition(partition, task, tmp_path / "partition.png")
    rgb = (imread(png)[..., :3] * 255).round().astype(np.int64).reshape(-1, 3)
    present = set(np.unique(rgb @ np.array([1 << 16, 1 << 8, 1])).tolist())
    for colour in model_colours(12):
        r, g, b = (round(c * 255) for c in colour[:3])
        assert (r << 16) + (g << 8) + b in present, colour


@pytest.mark.integration
def test_frontier_with_many_singles_uses_distinct_colours(tmp_path):
    import matplotlib.pyplot as plt

    _, task, solver, data = _partition(arithmetic())
    combined = solver.frontier(data, [1.0, 0.5])
    singles = {m: solver.frontier(data, [1.0, 0.5], candidates=[m]) for m in combined.models}
    fig = frontier_figure(combined, singles, task.n_inputs)
    try:
        (ax,) = fig.axes
        colours = [to_rgba(line.get_color()) for line in ax.lines]
        assert len(colours) == 13 and len(set(colours)) == 13  # combined + twelve singles
        assert ax.get_xlabel().startswith("faithfulness floor") and "strength" in ax.get_ylabel()
    finally:
        plt.close(fig)
    path = plot_frontier(combined, singles, tmp_path / "frontier.png", task.n_inputs)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.unit
def test_plot_file_names_are_checked_against_the_formats():
    for ext in PLOT_FORMATS:
        assert check_plot_path(f"out.{ext}").suffix == f".{ext}"
    assert check_plot_path("OUT.PNG").name == "OUT.PNG"
    with pytest.raises(ValueError, match="extension .xyz; a plot is written as one of png, pdf"):
        check_plot_path("out.xyz")
    with pytest.raises(ValueError, match="has no extension"):
        check_plot_path("frontier")


@pytest.mark.integration
def test_every_listed_format_really_writes_and_strips_are_labelled(tmp_path):
    import matplotlib.pyplot as plt

    # Two input variables: the partition is a strip of inputs in index order.
    task = custom_task("pair", {"A": range(5), "B": range(4)}, "{A},{B}", "A + B", {})
    partition, *_ = _partition(task, n_models=3)
    fig = partition_figure(partition, task)
    assert (fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()) == ("input index", "model")
    plt.close(fig)
    # The list is a promise made before solving: each entry must be writable here.
    for ext in PLOT_FORMATS:
        path = plot_partition(partition, task, tmp_path / f"p.{ext}")
        assert path.stat().st_size > 1000, ext


@pytest.mark.integration
def test_cli_refuses_an_unwritable_plot_format_before_solving(tmp_path, capsys):
    data = tmp_path / "iia.npz"
    PerInputIIA(np.eye(4, 3), ("a", "b", "c")).save(data)
    code = main(["solve", str(data), "--semantics", "per-input", "--plot", str(tmp_path / "f.xyz")])
    captured = capsys.readouterr()
    assert code == 2
    assert "--plot" in captured.err and "extension .xyz" in captured.err
    assert "strength" not in captured.out  # nothing was solved: the table never started
    assert not (tmp_path / "f.xyz").exists()
