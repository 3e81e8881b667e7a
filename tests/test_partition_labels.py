"""The partition map names what it shows: the legend names the cells and the fallback model,
and a strip of inputs is drawn under one strip per input variable, named on its axis."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from intervention.tasks import arithmetic, custom_task
from service.plots import partition_figure
from solver import PerInputIIA, Solver


def _partition(task, n_models: int):
    n = task.n_inputs
    iia = np.zeros((n, n_models + 1))
    iia[np.arange(n), np.arange(n) % n_models] = 1.0
    iia[::7, :n_models] = 0.0  # every seventh input to the fallback
    iia[:, -1] = 0.5
    names = tuple(f"M{m}" for m in range(n_models)) + ("base",)
    data = PerInputIIA(iia, names, fallback="base")
    return Solver(semantics="per-input", method="greedy").solve(data, 1.0)


@pytest.mark.integration
def test_a_strip_names_the_variables_and_the_legend_the_cells():
    # Four variables: no grid of panels, a strip.
    domains = {"A": range(5), "B": (False, True), "C": ("x", "y", "z"), "D": (7,)}
    task = custom_task("mixed", domains, "{A},{B},{C},{D}", "A", {})
    fig = partition_figure(_partition(task, 3), task)
    try:
        cells, variables = fig.axes
        assert (cells.get_xlabel(), cells.get_ylabel()) == ("input index", "model")
        labels = [t.get_text() for t in variables.get_yticklabels()]
        assert labels == ["A (0 to 4)", "B (False, True)", "C (3 values)", "D (7 to 7)"]
        # One row per variable, one column per input, values as ranks from 0 to 1.
        drawn = np.asarray(variables.images[0].get_array())
        assert drawn.shape == (4, task.n_inputs)
        assert drawn.min() == 0.0 and drawn.max() == 1.0
        legend = fig.legends[0]
        assert [t.get_text() for t in legend.get_texts()] == ["fallback", "M0", "M1", "M2"]
        assert f"fallback: {task.fallback.name}" in legend.get_title().get_text()
    finally:
        plt.close(fig)


@pytest.mark.integration
def test_the_grid_of_panels_names_its_axes_and_the_fallback():
    task = arithmetic()
    fig = partition_figure(_partition(task, 4), task)
    try:
        panels = [ax for ax in fig.axes if ax.get_visible() and ax.images]
        assert {ax.get_xlabel() for ax in panels} == {"", "Y"}
        assert {ax.get_ylabel() for ax in panels} == {"", "X"}
        assert [ax.get_title() for ax in panels] == [f"Z={z}" for z in range(1, 11)]
        assert "(X+Y+Z)" in fig.legends[0].get_title().get_text()
    finally:
        plt.close(fig)
