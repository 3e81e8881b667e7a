"""The job spec, the in-process pipeline end to end, resume, and the Ray executor (a real
embedded local Ray; a worker killed mid-scoring must not change the IIA)."""

import json
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from service.cli import main
from service.pipeline import run
from service.spec import SpecError, load_spec, parse_spec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "arithmetic-small.toml"


@pytest.fixture(scope="module")
def network_dir(tmp_path_factory):
    """One trained network for the module's jobs (loaded through network.path)."""
    spec = load_spec(EXAMPLE)
    spec = spec.model_copy(update={"results": str(tmp_path_factory.mktemp("net"))})
    from service.pipeline import JobContext, build_task, network_stage, prepare_results

    ctx = JobContext(spec, prepare_results(spec), log=lambda s: None)
    *_, where = network_stage(ctx, build_task(spec)[0])
    return str(where)


def _small(tmp_path, network_dir, **execution):
    spec = load_spec(EXAMPLE)
    return spec.model_copy(
        update={
            "results": str(tmp_path / "results"),
            "network": spec.network.model_copy(update={"train": None, "path": network_dir}),
            "candidates": ["(X+Y)+Z", "X+Y+(Z)"],
            "das": spec.das.model_copy(update={"steps": 60}),
            "pairs": spec.pairs.model_copy(update={"partners": 4}),
            "solve": spec.solve.model_copy(update={"floors": [1.0, 0.9], "time_limit": 3}),
            "execution": spec.execution.model_copy(update=execution),
        }
    )


def _base():
    return {
        "name": "t",
        "task": {"builtin": "arithmetic"},
        "network": {"train": {"n_layer": 1}},
        "sites": [{"layer": 0}],
    }


@pytest.mark.unit
@pytest.mark.parametrize(
    "change, message",
    [
        ({"colour": "red"}, "colour: unknown field"),
        ({"sites": [{"layer": "zero"}]}, "sites.0.layer"),
        ({"sites": []}, "sites"),
        ({"name": "../escape"}, "plain folder name"),
        (
            {
                "task": {
                    "builtin": "arithmetic",
                    "custom": {"inputs": {}, "template": "", "output": ""},
                }
            },
            "exactly one of task.builtin",
        ),
        ({"network": {}}, "exactly one of network.train"),
        ({"solve": {"floors": [1.5]}}, r"in \(0, 1\]"),
        ({"candidates": {"a": {"P": "X", "O": "P+Y+Z"}}}, "built-in task brings its candidates"),
    ],
)
def test_spec_errors_name_the_field(change, message):
    with pytest.raises(SpecError, match=message):
        parse_spec({**_base(), **change})


@pytest.mark.unit
def test_examples_parse_and_digests_follow_dependencies():
    for path in EXAMPLE.parent.glob("*.toml"):
        load_spec(path)
    spec = parse_spec(_base())
    other_solve = spec.model_copy(update={"solve": spec.solve.model_copy(update={"time_limit": 1})})
    assert spec.digest("task", "network") == other_solve.digest("task", "network")
    assert spec.digest("solve") != other_solve.digest("solve")


@pytest.mark.integration
def test_pipeline_in_process_end_to_end_and_resume(tmp_path, capsys, network_dir):
    spec = _small(tmp_path, network_dir, mode="in-process", shard_size=1000)
    report = run(spec, log=lambda s: None)
    root = spec.results_dir()
    for name in ("report.json", "frontier.png", "partition.png"):
        assert (root / name).is_file(), name
    assert report["network_accuracy"] >= 0.99
    assert [r["floor"] for r in report["frontier"]] == [1.0, 0.9]
    assert len(report["alignment_iia"]) == 3 and set(report["singles"]) == set(report["models"])
    first = report["frontier"][0]
    assert all(name in first["rules"] for name, size in first["cell_sizes"].items() if size)
    # Lose some shards as a killed driver would; a plain re-run refuses, --resume redoes
    # only those, and the IIA comes out the same.
    shards = sorted(root.glob("successes-*/model*/shard*.npy"))
    iia_before = np.load(next(root.glob("iia-*.npz")))["iia"]
    for p in shards[::3]:
        p.unlink()
    with pytest.raises(SpecError, match="pass --resume"):
        run(spec, log=lambda s: None)
    again = run(spec, resume=True, log=lambda s: None)
    assert again["timings"]["shards_computed"] == len(shards[::3])
    assert again["timings"]["shards_total"] == len(shards)
    assert np.array_equal(np.load(next(root.glob("iia-*.npz")))["iia"], iia_before)
    # ccm report prints it.
    assert main(["report", str(root)]) == 0
    assert "alignment IIA" in capsys.readouterr().out


@pytest.mark.integration
def test_results_folder_errors(tmp_path, network_dir):
    spec = _small(tmp_path, network_dir, mode="in-process")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    bad = spec.model_copy(update={"results": str(blocker)})
    with pytest.raises(SpecError, match="not writable"):
        run(bad, log=lambda s: None)


@pytest.mark.integration
def test_ray_workers_killed_mid_scoring_change_nothing(tmp_path, network_dir):
    ray = pytest.importorskip("ray")
    reference = _small(tmp_path / "ref", network_dir, mode="in-process", shard_size=500)
    expected = run(reference, log=lambda s: None)
    spec = _small(tmp_path / "ray", network_dir, mode="local-ray", workers=2, shard_size=500)
    from service import ray_exec

    killed = []
    original = ray_exec.RayExecutor.score

    def score_and_kill(self, jobs, design, dirs):
        def killer():
            # Kill one actor process once scoring is under way; Ray restarts it and retries.
            deadline = time.time() + 60
            while time.time() < deadline and not self.actors:
                time.sleep(0.2)
            time.sleep(1.0)
            pid = ray.get(self.actors[0].pid.remote())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        original(self, jobs, design, dirs)
        thread.join(timeout=5)

    ray_exec.RayExecutor.score = score_and_kill
    try:
        got = run(spec, log=lambda s: None)
    finally:
        ray_exec.RayExecutor.score = original
        if ray.is_initialized():
            ray.shutdown()
    assert killed, "no worker was killed"
    a = np.load(next(spec.results_dir().glob("iia-*.npz")))["iia"]
    b = np.load(next(reference.results_dir().glob("iia-*.npz")))["iia"]
    assert np.array_equal(a, b)
    assert json.dumps(got["frontier"][0]["assignment"]) == json.dumps(
        expected["frontier"][0]["assignment"]
    )


@pytest.mark.integration
def test_more_gpus_than_the_cluster_has_is_an_error_not_a_hang(tmp_path, network_dir):
    ray = pytest.importorskip("ray")
    spec = _small(tmp_path, network_dir, mode="local-ray", gpus_per_worker=1)
    started = time.time()
    try:
        with pytest.raises(SpecError, match="asks for 1 GPU per worker but the cluster has 0"):
            run(spec, log=lambda s: None)
    finally:
        if ray.is_initialized():
            ray.shutdown()
    assert time.time() - started < 120
