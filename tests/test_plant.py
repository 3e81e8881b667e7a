"""A planted combination: a network trained here by IIT to compute one candidate on one region
of the inputs and another elsewhere; the job, which never sees the planted subspace, must
recover the regions (trimmed DAS, partition, refit inside each cell), beside a random-init
control that must recover nothing. Bad plants are refused before any alignment."""

from __future__ import annotations

import json

import numpy as np
import pytest

from intervention.plant import NO_REGION, PlantError, region_of_inputs
from service.planting import recovery
from service.spec import SpecError, parse_spec

A, B = "(X+Y)+Z", "X+(Y+Z)"


def _values():
    x, y, z = np.meshgrid(*(np.arange(1, 6),) * 3, indexing="ij")
    return {"X": x.ravel(), "Y": y.ravel(), "Z": z.ravel()}


def _job(root, **plant) -> dict:
    """A small planted job: X+Y+Z= over 1..5 (125 inputs), A on X <= 2, B on X >= 3."""
    return {
        "name": "planted-small",
        "results": str(root),
        "controls": ["random-init"],
        "task": {
            "custom": {
                "inputs": {v: [1, 2, 3, 4, 5] for v in "XYZ"},
                "template": "{X}+{Y}+{Z}=",
                "output": "X + Y + Z",
            }
        },
        "candidates": {A: {"P": "X + Y", "O": "P + Z"}, B: {"P": "Y + Z", "O": "X + P"}},
        "network": {
            "train": {"seed": 0, "n_embd": 32},
            "plant": {
                "regions": {A: "X <= 2", B: "X >= 3"},
                "pairs_per_region": 64,
                "task_batch": 64,
                **plant,
            },
        },
        "das": {"steps": 200},
        "pairs": {"design": "all"},
        "solve": {"semantics": "pairwise", "floors": [0.95, 0.9], "time_limit": 5},
        "execution": {"mode": "in-process"},
    }


@pytest.mark.unit
def test_regions_label_inputs_and_refuse_overlap_and_unknowns():
    values = _values()
    region = region_of_inputs(values, {A: "X <= 2", B: "X >= 4"})
    assert (region[values["X"] <= 2] == 0).all()
    assert (region[values["X"] >= 4] == 1).all()
    assert (region[values["X"] == 3] == NO_REGION).all()  # in no region: the fallback's
    with pytest.raises(PlantError, match=r"overlap: 25 inputs are in both .* \{X=3"):
        region_of_inputs(values, {A: "X <= 3", B: "X >= 3"})
    with pytest.raises(PlantError, match=r"reads \['W'\]"):
        region_of_inputs(values, {A: "W <= 3"})
    with pytest.raises(PlantError, match="not a condition"):
        region_of_inputs(values, {A: "X + 1"})
    with pytest.raises(PlantError, match="no input lies"):
        region_of_inputs(values, {A: "X > 9"})


@pytest.mark.unit
def test_recovery_counts_precision_and_recall_per_planted_cell():
    region = np.array([0, 0, 0, 1, 1, -1])
    # input 2 goes to B (wrong), input 4 to the fallback (missed), input 5 (no region) to A.
    assignment = np.array([0, 0, 1, 1, -1, 0])
    got = recovery(assignment, [A, B], region, [A, B])
    assert got["recovered"] == pytest.approx(3 / 6, abs=1e-4)
    assert got["cells"][A] == {
        "planted": 3,
        "assigned": 3,
        "correct": 2,
        "precision": 0.6667,
        "recall": 0.6667,
    }
    assert got["cells"][B] == {
        "planted": 2,
        "assigned": 2,
        "correct": 1,
        "precision": 0.5,
        "recall": 0.5,
    }
    # Columns at sites count for their candidate; an unassigned input in no region is right.
    got = recovery(
        np.array([1, -1]), [f"{A} @ block 0", f"{B} @ block 0"], np.array([1, -1]), [A, B]
    )
    assert got["recovered"] == 1.0


@pytest.mark.unit
def test_spec_reads_the_issue_form_and_refuses_bad_plants(tmp_path):
    job = _job(tmp_path)
    spec = parse_spec(job)
    # No [[sites]]: the planted site, at the planted rank; trimmed DAS and refits by default.
    assert [(s.layer, s.positions, s.rank) for s in spec.sites] == [(0, ["last"], 16)]
    assert spec.das_trim() == 0.3 and spec.refit_rounds() == 2
    built_in = {
        "name": "p",
        "task": {"builtin": "arithmetic", "candidates": [A, B]},
        "network": {"train": {}, "plant": {"regions": {A: "X <= 5", B: "X >= 6"}}},
        "pairs": {"design": "all"},
        "solve": {"semantics": "pairwise"},
    }
    assert parse_spec(built_in).candidates == [A, B]  # [task] candidates, as the issue writes
    unknown = json.loads(json.dumps(built_in))
    del unknown["task"]["candidates"]
    unknown["network"]["plant"]["regions"] = {"A+B": "X <= 5"}
    with pytest.raises(SpecError, match=r"plant \['A\+B'\], which are not among"):
        parse_spec(unknown)
    # Per-input IIA cannot see planted regions: a plant defaults to pairwise over all pairs.
    del built_in["pairs"], built_in["solve"]
    defaults = parse_spec(built_in)
    assert (defaults.pairs.design, defaults.solve.semantics) == ("all", "pairwise")
    bad = json.loads(json.dumps(job))
    bad["network"]["plant"]["regions"] = {A: "W <= 2"}
    with pytest.raises(SpecError, match=r"reads \['W'\], which are not among"):
        parse_spec(bad)
    bad["network"]["plant"]["regions"] = {A: "X + 1"}
    with pytest.raises(SpecError, match="not a condition"):
        parse_spec(bad)
    bad["network"]["plant"]["regions"] = {"X+Y+(Z)": "X <= 2"}
    with pytest.raises(SpecError, match=r"plant \['X\+Y\+\(Z\)'\], which are not among"):
        parse_spec(bad)
    bad = json.loads(json.dumps(job))
    bad["pairs"] = {"design": "sampled"}
    bad["solve"]["semantics"] = "per-input"
    with pytest.raises(SpecError, match="das.refit_rounds = 0"):
        parse_spec(bad)
    bad["das"]["refit_rounds"] = 0
    parse_spec(bad)  # a plant scored on sampled partners, without refits, is a valid job


@pytest.mark.integration
def test_overlapping_regions_stop_before_training(tmp_path):
    from service.pipeline import run

    job = _job(tmp_path)
    job["network"]["plant"]["regions"] = {A: "X <= 3", B: "X >= 3"}
    with pytest.raises(SpecError, match="overlap: 25 inputs"):
        run(parse_spec(job), log=lambda s: None)
    assert not list((tmp_path / "planted-small").glob("network-*"))


@pytest.mark.integration
def test_a_plant_that_does_not_take_is_refused_before_alignment(tmp_path):
    from service.pipeline import run

    spec = parse_spec(_job(tmp_path, steps=5))
    with pytest.raises(SpecError, match="no alignment was trained"):
        run(spec, log=lambda s: None)
    folder = tmp_path / "planted-small"
    assert list(folder.glob("network-*"))  # what was trained is kept
    assert not list(folder.glob("alignment-*"))


@pytest.fixture(scope="module")
def planted_job(tmp_path_factory):
    from service.pipeline import run

    root = tmp_path_factory.mktemp("plant")
    logs: list[str] = []
    spec = parse_spec(_job(root))
    return run(spec, log=logs.append), logs, spec.results_dir()


@pytest.mark.integration
def test_the_job_recovers_the_planted_regions(planted_job):
    report, logs, _ = planted_job
    plant = report["plant"]
    assert all(r["iit_accuracy"] >= 0.95 for r in plant["regions"]), plant
    at = {p["floor"]: p for p in report["frontier"]}[0.95]
    rec = at["recovery"]
    assert rec["recovered"] >= 0.9, rec
    for cell in rec["cells"].values():
        assert cell["precision"] >= 0.9 and cell["recall"] >= 0.9, rec
    # Every round is reported, with its partition and recovery; refits name their held-out
    # check and whether they were kept.
    rounds = report["rounds"]
    assert rounds[0]["round"] == 0 and "recovery" in rounds[0]
    last = rounds[-1]["assignment"]  # each round's partition, one column (or None) per input
    assert len(last) == report["n_inputs"]
    assert last == {p["floor"]: p for p in report["frontier"]}[0.95]["assignment"]
    assert all("refits" in r for r in rounds[:-1])
    for r in rounds[:-1]:
        for refit in r["refits"].values():
            assert refit["kept"] == (not refit["held_out_iia_after"] < refit["held_out_iia_before"])


@pytest.mark.integration
def test_the_random_init_control_recovers_nothing(planted_job):
    report, _, _ = planted_job
    control = report["controls"]["random-init"]
    main = report["frontier"]
    assert [p["floor"] for p in control["frontier"]] == [p["floor"] for p in main]
    assert control["network_accuracy"] < 0.5  # random weights do not solve the task
    for c, m in zip(control["frontier"], main):
        # The same shape as the main frontier; chance pairs only (a few inputs at most).
        assert set(c) >= {"floor", "strength", "assignment", "cell_sizes", "certificate"}
        assert c["strength"] <= 0.1 * report["n_inputs"] < m["strength"], (c, m)
        assert c["recovery"]["recovered"] < 0.5


@pytest.mark.integration
def test_the_terminal_report_shows_recovery_rounds_and_control(planted_job):
    from service.report import format_report

    report, _, _ = planted_job
    text = format_report(report)
    at = {p["floor"]: p for p in report["frontier"]}[0.95]["recovery"]["recovered"]
    assert f"floor 0.95: recovered {at:.3f}" in text
    assert "  round 0: cells" in text
    strengths = " ".join(str(p["strength"]) for p in report["controls"]["random-init"]["frontier"])
    assert "control random-init (network accuracy" in text and f"strength {strengths}" in text


@pytest.fixture(scope="module")
def ray_session():
    """An embedded local Ray with 2 CPUs for this module's Ray job; shut down at its end."""
    ray = pytest.importorskip("ray")
    from service.ray_exec import WORKER_ENV

    ray.init(num_cpus=2, log_to_driver=False, runtime_env={"env_vars": WORKER_ENV})
    yield ray
    ray.shutdown()


@pytest.mark.integration
def test_refits_on_ray_actors_match_in_process(planted_job, tmp_path, ray_session):
    """The planted network brought as a folder, with the plant's procedure asked for in the
    spec (trimmed DAS, refit rounds), on two Ray actors: the refit jobs (a cell and a start
    rotation each) cross to the actors and give the in-process job's rounds and frontier."""
    from service.pipeline import run

    report, _, results = planted_job
    folder = next(results.glob("network-[0-9a-f]*"))
    job = _job(tmp_path)
    del job["network"]["plant"], job["controls"]
    job["network"] = {"path": str(folder)}
    job["sites"] = [{"layer": 0, "positions": ["last"], "rank": 16}]
    job["das"].update(trim=0.3, refit_rounds=2)
    job["execution"] = {"mode": "local-ray", "workers": 2}
    on_ray = run(parse_spec(job), log=lambda s: None)
    assert on_ray["alignment_iia"] == report["alignment_iia"]
    strip = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in on_ray["rounds"]] == [
        {k: v for k, v in r.items() if k not in strip and k != "recovery"} for r in report["rounds"]
    ]
    assert [p["assignment"] for p in on_ray["frontier"]] == [
        p["assignment"] for p in report["frontier"]
    ]
