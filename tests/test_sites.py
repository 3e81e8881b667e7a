"""Sites as columns: every (candidate, site) pair is aligned, scored at its own site and is a
column of the solver's data, so a combination may explain different inputs at different
layers. One job with two sites is run once for the module (after the same job with its first
site alone, on the same folder), and every assertion reads those two runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from service.spec import SiteSpec, load_spec
from service.stages import columns_of, site_labels

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "arithmetic-small.toml"
CANDIDATES = ["(X+Y)+Z", "X+Y+(Z)"]
SHARD = 2500  # 1000 inputs × 5 partners × 2 directions = 10000 pairs: 4 shards per column


def _spec(root: Path, network_dir, sites: list[dict]):
    spec = load_spec(EXAMPLE)
    return spec.model_copy(
        update={
            "results": str(root),
            "network": spec.network.model_copy(update={"train": None, "path": network_dir}),
            "candidates": CANDIDATES,
            "sites": [SiteSpec(**s) for s in sites],
            "das": spec.das.model_copy(update={"steps": 40}),
            "pairs": spec.pairs.model_copy(update={"partners": 5}),
            "solve": spec.solve.model_copy(update={"floors": [1.0, 0.9], "time_limit": 2}),
            "execution": spec.execution.model_copy(
                update={"mode": "in-process", "shard_size": SHARD}
            ),
        }
    )


@pytest.fixture(scope="module")
def runs(small_network, tmp_path_factory):
    """The job at the embeddings alone, then the same job with block 0 added, on one folder:
    (one-site report, two-site report, the second run's log lines, its spec)."""
    from service.pipeline import run

    _, net = small_network
    root = tmp_path_factory.mktemp("sites")
    one = _spec(root, str(net.where), [{"layer": -1, "rank": 4}])
    two = _spec(root, str(net.where), [{"layer": -1, "rank": 4}, {"layer": 0, "rank": 4}])
    first = run(one, log=lambda s: None)
    logs: list[str] = []
    second = run(two, log=logs.append)
    return first, second, logs, two


def _iia_file(spec, models: list[str]):
    """The IIA the job wrote for these columns (a folder holds one per set of columns)."""
    from solver import PerInputIIA

    for path in spec.results_dir().glob("iia-*.npz"):
        data = PerInputIIA.load(path)
        if list(data.models) == models:
            return data
    raise AssertionError(f"no IIA file with columns {models}")


@pytest.mark.unit
def test_site_labels_are_short_and_unique():
    S = SiteSpec
    assert site_labels([S(layer=-1), S(layer=3)]) == ["embeddings", "block 3"]
    # Sites that share a layer are told apart by their positions, then rank, then order.
    assert site_labels([S(layer=1, positions=[0, 1]), S(layer=1), S(layer=2)]) == [
        "block 1 [pos 0,1]",
        "block 1 [all pos]",
        "block 2",
    ]
    assert site_labels([S(layer=1, rank=4), S(layer=1, rank=8)]) == [
        "block 1 [all pos] rank 4",
        "block 1 [all pos] rank 8",
    ]
    same = site_labels([S(layer=0), S(layer=0)])
    assert len(set(same)) == 2 and all(label.startswith("block 0") for label in same)

    class M:
        def __init__(self, name: str) -> None:
            self.name = name

    models = [M("A"), M("B")]
    # One site: the candidates' own names (existing specs and their numbers are unchanged).
    assert [c.name for c in columns_of([S(layer=-1)], models)] == ["A", "B"]
    cols = columns_of([S(layer=-1), S(layer=3)], models)
    assert [c.name for c in cols] == [
        "A @ embeddings",
        "B @ embeddings",
        "A @ block 3",
        "B @ block 3",
    ]
    assert [c.pair for c in cols] == [(0, 0), (0, 1), (1, 0), (1, 1)]


@pytest.mark.integration
def test_columns_are_candidate_site_pairs(runs):
    first, second, _, _ = runs
    assert first["models"] == CANDIDATES
    assert second["models"] == [
        "(X+Y)+Z @ embeddings",
        "X+Y+(Z) @ embeddings",
        "(X+Y)+Z @ block 0",
        "X+Y+(Z) @ block 0",
    ]
    assert [(c["site"], c["candidate"]) for c in second["columns"]] == [
        (0, "(X+Y)+Z"),
        (0, "X+Y+(Z)"),
        (1, "(X+Y)+Z"),
        (1, "X+Y+(Z)"),
    ]
    assert set(second["singles"]) == set(second["models"])
    assert second["fallback"] not in second["models"]  # the fallback stays out of the data
    assert len(second["alignment_iia"]) == 4
    for entry in second["frontier"]:
        assert set(entry["cell_sizes"]) == set(second["models"])


@pytest.mark.integration
def test_a_second_site_is_scored_at_that_site(runs, small_network):
    """The stored successes of a block-0 column are the engine's at block 0 with that column's
    rotation, and not what the same rotation gives at the embeddings."""
    import torch
    from safetensors.torch import load_file

    from intervention.engine import InterchangeEngine, Site
    from intervention.network import load_network
    from service.task import build_task, design_of

    _, second, _, spec = runs
    _, net = small_network
    root = spec.results_dir()
    task, models = build_task(spec)
    design = design_of(spec, task.n_inputs)
    column = next(c for c in second["columns"] if c["site"] == 1 and c["candidate"] == "(X+Y)+Z")
    rotation = load_file(root / f"alignment-{column['alignment']}" / "rotation.safetensors")
    rotation = rotation["rotation"]
    shards = sorted((root / f"successes-{column['successes']}").glob("pairs-*.npy"))
    stored = np.concatenate([np.load(p) for p in shards])
    assert stored.shape == (len(design),)
    pairs = np.random.default_rng(0).choice(len(design), 300, replace=False)
    base, source = design.base[pairs], design.source[pairs]
    model = next(m for m in models if m.name == "(X+Y)+Z")
    labels = task.counterfactual_labels(model, base, source)
    network, _ = load_network(net.where)  # a copy: the engine freezes the model it is given
    with torch.no_grad():
        at_block0 = InterchangeEngine(network, net.ids, Site(0)).successes(
            base, source, rotation, labels
        )
        at_embeddings = InterchangeEngine(network, net.ids, Site(-1)).successes(
            base, source, rotation, labels
        )
    assert np.array_equal(stored[pairs], at_block0)
    assert not np.array_equal(stored[pairs], at_embeddings)


@pytest.mark.integration
def test_per_site_tables(runs):
    from service.report import format_report

    first, second, _, spec = runs
    data = _iia_file(spec, second["models"])
    assert list(second["site_iia"]) == ["embeddings", "block 0"]
    held = {(r["site"], r["candidate"]): r["held_out_iia"] for r in second["alignment_iia"]}
    for k, (label, by_candidate) in enumerate(second["site_iia"].items()):
        assert list(by_candidate) == CANDIDATES
        for cand, row in by_candidate.items():
            assert row["column"] == f"{cand} @ {label}"
            assert row["held_out_iia"] == held[k, cand]
            mean = data.iia[:, data.models.index(row["column"])].mean()
            assert row["mean_iia"] == pytest.approx(mean, abs=1e-6)
    # Each site's own frontier solves its own columns only, and never beats the combination
    # where both are proven optimal (the combination may use both sites' columns).
    sites = second["sites_frontier"]
    assert list(sites) == ["embeddings", "block 0"]
    for k, (label, entry) in enumerate(sites.items()):
        assert entry["site"] == k and entry["description"] == second["sites"][k]
        assert entry["columns"] == [f"{c} @ {label}" for c in CANDIDATES]
        for own, combined in zip(entry["frontier"], second["frontier"]):
            assert own["floor"] == combined["floor"]
            assert set(own["cell_sizes"]) == set(entry["columns"])
            if own["status"] == combined["certificate"]["status"] == "optimal":
                assert own["strength"] <= combined["strength"]
    # One site: its frontier is the combined one, and it is not solved twice.
    (only,) = first["sites_frontier"].values()
    assert [r["strength"] for r in only["frontier"]] == [r["strength"] for r in first["frontier"]]
    assert list(first["site_iia"]) == ["embeddings"]
    # Each alignment row has its own site's rank; each column its own rotation.
    assert {(r["site"], r["rank"]) for r in second["alignment_iia"]} == {
        (k, site.rank) for k, site in enumerate(spec.sites)
    }
    assert len({c["rotation_sha256"] for c in second["columns"]}) == len(second["columns"])
    text = format_report(second)
    assert "IIA per site" in text and "site block 0 alone:" in text
    assert "Wilson interval" in text and "lower bounds at 0.95 per cell" in text
    assert "site embeddings alone:" not in format_report(first)  # the combined one already
    # A report written before sites were columns still prints.
    old = {k: v for k, v in second.items() if k not in ("site_iia", "sites_frontier", "columns")}
    assert "IIA per site" not in format_report(old)
    json.dumps(second)  # plain JSON throughout


@pytest.mark.integration
def test_an_added_site_reuses_the_first_sites_work(runs):
    first, second, logs, spec = runs
    # The first site's alignments and successes shards are reused; only block 0 is new.
    assert "alignments: 2 reused, 2 to train" in logs
    per_column = 10000 // SHARD
    assert first["timings"]["shards_computed"] == 2 * per_column
    assert second["timings"]["shards_total"] == 4 * per_column
    assert second["timings"]["shards_computed"] == 2 * per_column
    old = {c["candidate"]: c for c in first["columns"]}
    for c in second["columns"][:2]:
        assert c["alignment"] == old[c["candidate"]]["alignment"]
        assert c["successes"] == old[c["candidate"]]["successes"]
    alone = _iia_file(spec, first["models"])
    both = _iia_file(spec, second["models"])
    for cand in CANDIDATES:
        np.testing.assert_array_equal(
            both.iia[:, both.models.index(f"{cand} @ embeddings")],
            alone.iia[:, alone.models.index(cand)],
        )
    assert [r for r in second["alignment_iia"] if r["site"] == 0] == first["alignment_iia"]


@pytest.mark.unit
def test_frontier_plot_of_many_columns_keeps_a_short_legend(tmp_path):
    """3 sites × 8 candidates: the legend names the combination, each site, and the columns
    alone once; without sites, at most MAX_SINGLES_SHOWN singles are named."""
    import matplotlib.pyplot as plt

    from service.plots import MAX_SINGLES_SHOWN, frontier_figure, plot_frontier
    from solver import PerInputIIA, Solver

    n, labels, cands = 240, ["embeddings", "block 0", "block 1"], [f"M{m}" for m in range(8)]
    names = [f"{c} @ {s}" for s in labels for c in cands]
    iia = np.full((n, len(names)), 0.5)
    iia[np.arange(n), np.arange(n) % len(names)] = 1.0
    data = PerInputIIA(iia, tuple(names))
    solver = Solver(semantics="per-input", method="greedy")
    floors = [1.0, 0.5]
    combined = solver.frontier(data, floors)
    singles = {m: solver.frontier(data, floors, candidates=[m]) for m in names}
    sites = {
        s: solver.frontier(data, floors, candidates=names[8 * k : 8 * k + 8])
        for k, s in enumerate(labels)
    }
    for kwargs, expected in (
        ({"sites": sites}, ["combined", *(f"{s} only" for s in labels), "a column alone (24)"]),
        ({}, ["combined", *names[:MAX_SINGLES_SHOWN], "4 more alone"]),
    ):
        fig = frontier_figure(combined, singles, n, **kwargs)
        try:
            (ax,) = fig.axes
            shown = [t.get_text() for t in ax.get_legend().get_texts()]
            assert shown == expected
        finally:
            plt.close(fig)
    path = plot_frontier(combined, singles, tmp_path / "frontier.png", n, sites=sites)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
