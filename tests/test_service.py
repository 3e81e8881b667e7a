"""The job spec, the in-process pipeline end to end, resume, and the Ray executor (a real
embedded local Ray; a worker killed mid-scoring must not change the IIA)."""

import hashlib
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
from solver import SparsePairwiseIIA, load_iia
from solver.cells import check_cells

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "arithmetic-small.toml"


@pytest.fixture(scope="module")
def trained(small_network):
    """The session's network trained from the small example's spec, shared by the module's jobs
    (which load it through network.path): the spec and the network's folder."""
    spec, net = small_network
    return spec, net.where


@pytest.fixture(scope="module")
def network_dir(trained):
    return str(trained[1])


@pytest.fixture(scope="module")
def ray_session():
    """One embedded local Ray with 2 CPUs for the module's Ray jobs (which join it rather than
    start their own); shut down, with every worker, when the module ends."""
    ray = pytest.importorskip("ray")
    from service.ray_exec import WORKER_ENV

    ray.init(num_cpus=2, log_to_driver=False, runtime_env={"env_vars": WORKER_ENV})
    yield ray
    ray.shutdown()


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


def _iia(spec) -> np.ndarray:
    return np.load(next(spec.results_dir().glob("iia-*.npz")))["iia"]


@pytest.mark.integration
def test_pipeline_in_process_end_to_end_and_resume(tmp_path, capsys, network_dir):
    spec = _small(tmp_path, network_dir, mode="in-process", shard_size=1000)
    report = run(spec, log=lambda s: None)
    root = spec.results_dir()
    for name in ("report.json", "frontier.png", "partition.png", "manifest.json"):
        assert (root / name).is_file(), name
    assert report["network_accuracy"] >= 0.99
    assert [r["floor"] for r in report["frontier"]] == [1.0, 0.9]
    # The fallback is named but neither aligned nor scored: no report reads its IIA.
    assert [r["candidate"] for r in report["alignment_iia"]] == ["(X+Y)+Z", "X+Y+(Z)"]
    assert report["fallback"] == "(X+Y+Z)" and len(list(root.glob("successes-*"))) == 2
    assert set(report["singles"]) == set(report["models"])
    first = report["frontier"][0]
    assert all(name in first["rules"] for name, size in first["cell_sizes"].items() if size)
    # Beside each alignment's IIA: its rank, and what an intervention that changes nothing
    # scores on the design's pairs.
    for row in report["alignment_iia"]:
        assert row["rank"] == spec.sites[0].rank and 0.0 <= row["baseline"] <= 1.0
    # Each column names the rotation that scored it, by the stored file's SHA-256.
    for col in report["columns"]:
        rotation = root / f"alignment-{col['alignment']}" / "rotation.safetensors"
        assert col["rotation_sha256"] == hashlib.sha256(rotation.read_bytes()).hexdigest()
    # Sampled partners: every cell's Wilson lower bounds, and the note that reads them.
    assert report["intervals"]["confidence"] == 0.95
    assert report["intervals"]["outcomes_per_input"] >= 2 * 4
    for r in report["frontier"]:
        assert set(r["lower_bounds"]) == {n for n, size in r["cell_sizes"].items() if size}
    # Shards are named by their pair range: 8000 pairs per candidate in shards of 1000.
    shards = sorted(root.glob("successes-*/pairs-*.npy"))
    assert len(shards) == 16 and shards[0].name == "pairs-000000-001000.npy"
    # Lose some shards as a killed driver would; a plain re-run refuses, --resume redoes
    # only those, and the IIA comes out the same.
    iia_before = _iia(spec)
    for p in shards[::3]:
        p.unlink()
    with pytest.raises(SpecError, match="pass --resume"):
        run(spec, log=lambda s: None)
    again = run(spec, resume=True, log=lambda s: None)
    assert again["timings"]["shards_computed"] == len(shards[::3])
    assert again["timings"]["shards_total"] == len(shards)
    assert np.array_equal(_iia(spec), iia_before)
    # ccm report prints it.
    assert main(["report", str(root)]) == 0
    printed = capsys.readouterr().out
    assert "alignment IIA" in printed and "Wilson interval" in printed
    # solve.confidence re-solves the same IIA on its lower bounds: another report, nothing
    # rescored, and a frontier no stronger wherever the first was proven optimal.
    strict = spec.model_copy(update={"solve": spec.solve.model_copy(update={"confidence": 0.95})})
    bounded = run(strict, log=lambda s: None)
    assert bounded["spec_digest"] != again["spec_digest"]
    assert bounded["timings"]["shards_computed"] == 0
    assert bounded["intervals"]["solved_on"] == "lower bound"
    for a, b in zip(again["frontier"], bounded["frontier"]):
        if a["certificate"]["status"] == "optimal":
            assert b["strength"] <= a["strength"]


@pytest.mark.integration
def test_pairwise_semantics_on_sampled_partners_solves_the_scored_pairs(tmp_path, network_dir):
    spec = _small(tmp_path, network_dir, mode="in-process", shard_size=1000)
    spec = spec.model_copy(
        update={
            "solve": spec.solve.model_copy(update={"semantics": "pairwise", "cells_per_model": 2})
        }
    )
    report = run(spec, log=lambda s: None)
    stored = load_iia(next(spec.results_dir().glob("iia-*.npz")))
    assert isinstance(stored, SparsePairwiseIIA) and stored.models == tuple(report["models"])
    # 1000 inputs, 4 partners each, both directions: at most 4000 unordered pairs.
    assert 0 < stored.n_pairs <= 4000
    for point in report["frontier"]:
        assert len(point["cell"]) == len(point["assignment"]) == 1000
        check = np.array(
            [-1 if m is None else report["models"].index(m) for m in point["assignment"]]
        )
        cell = np.array([-1 if c is None else c for c in point["cell"]])
        check_cells(stored, check, cell, point["floor"], 2)  # every cell over scored pairs
        for bound in point["cell_lower_bounds"].values():
            assert 0 <= bound["lower"] <= bound["iia"] and bound["pairs"] >= 1
    assert report["intervals"]["per_cell"] and "scored pairs" in report["intervals"]["note"]
    assert main(["report", str(spec.results_dir())]) == 0


@pytest.mark.integration
def test_tampered_artifacts_are_recomputed_and_shard_size_changes_are_clean(tmp_path, network_dir):
    spec = _small(tmp_path, network_dir, mode="in-process", shard_size=1000)
    report = run(spec, log=lambda s: None)
    root = spec.results_dir()
    iia_before = _iia(spec)
    shards = sorted(root.glob("successes-*/pairs-*.npy"))
    # A shard rewritten as all successes (a valid array: it once raised strength 0 to 9), a
    # truncated shard, and an alignment.json that claims an IIA of 0.999.
    np.save(shards[0], np.ones(1000, dtype=bool))
    shards[5].write_bytes(shards[5].read_bytes()[:50])
    meta = next(root.glob("alignment-*/alignment.json"))
    tampered = json.loads(meta.read_text())
    tampered["held_out_iia"] = 0.999
    meta.write_text(json.dumps(tampered))
    logs: list[str] = []
    again = run(spec, log=logs.append)  # tampering is not an interrupted run: no --resume
    for path in (shards[0], shards[5], meta):
        assert any(f"{path} is changed" in line and "recomputing" in line for line in logs), path
    assert 0.999 not in [r["held_out_iia"] for r in again["alignment_iia"]]
    assert again["alignment_iia"] == report["alignment_iia"]
    assert np.array_equal(_iia(spec), iia_before)
    assert again["frontier"][0]["strength"] == report["frontier"][0]["strength"]
    # Another shard size: shards of other ranges, all computed afresh (never mixed with the
    # old ones, never a false "interrupted run"), and the same IIA.
    resized = spec.model_copy(
        update={"execution": spec.execution.model_copy(update={"shard_size": 700})}
    )
    third = run(resized, log=lambda s: None)
    assert third["timings"]["shards_computed"] == third["timings"]["shards_total"] == 24
    for path in root.glob("iia-*.npz"):
        assert np.array_equal(np.load(path)["iia"], iia_before)


@pytest.mark.integration
def test_accuracy_floor_is_checked_against_the_network_and_never_retrains(trained):
    from service.pipeline import JobContext, build_task, network_stage, prepare_results

    spec, where = trained
    logs: list[str] = []
    lower = spec.model_copy(
        update={"network": spec.network.model_copy(update={"accuracy_floor": 0.5})}
    )
    ctx = JobContext(lower, prepare_results(lower), log=logs.append)
    net = network_stage(ctx, build_task(lower)[0])
    assert net.where == where and f"network: reused {where}" in logs
    assert not any("training" in line for line in logs)
    assert net.accuracy >= 0.99  # measured on the task now


@pytest.mark.integration
def test_results_folder_errors(tmp_path, network_dir):
    spec = _small(tmp_path, network_dir, mode="in-process")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    bad = spec.model_copy(update={"results": str(blocker)})
    with pytest.raises(SpecError, match="not writable"):
        run(bad, log=lambda s: None)


@pytest.mark.integration
@pytest.mark.parametrize("planted", ["report.json", "network-0123", ".write-test"])
def test_a_job_never_writes_through_a_planted_link(tmp_path, network_dir, planted):
    from service.artifacts import ArtifactError

    spec = _small(tmp_path, network_dir, mode="in-process")
    outside = tmp_path / "outside"
    outside.mkdir()
    root = spec.results_dir()
    root.mkdir(parents=True)
    (root / planted).symlink_to(outside / planted)
    with pytest.raises(ArtifactError, match=f"{root / planted} is a symbolic link"):
        run(spec, log=lambda s: None)
    assert list(outside.iterdir()) == []


@pytest.mark.integration
def test_a_second_job_on_a_locked_folder_stops_naming_the_holder(tmp_path, network_dir):
    from service.artifacts import ArtifactError, ResultsFolder

    spec = _small(tmp_path, network_dir, mode="in-process")
    root = spec.results_dir()
    root.mkdir(parents=True)
    holder = ResultsFolder(root, lambda s: None)
    holder.lock()  # the first job, still running
    try:
        with pytest.raises(
            ArtifactError, match=rf"{root} is in use by another job \(pid {os.getpid()}"
        ):
            run(spec, log=lambda s: None)
    finally:
        holder.unlock()
    assert not list(root.glob("successes-*"))


@pytest.mark.integration
def test_a_worker_that_loads_another_network_refuses(network_dir):
    from intervention.network import NetworkError
    from service.worker import Worker

    spec = _small(Path("/nonexistent"), network_dir, mode="in-process")
    with pytest.raises(NetworkError, match="the driver keyed this job on 0000"):
        Worker(spec.model_dump_json(), network_dir, 1, "0" * 16)


@pytest.mark.integration
def test_ray_workers_killed_mid_scoring_change_nothing(tmp_path, network_dir, ray_session):
    ray = ray_session
    reference = _small(tmp_path / "ref", network_dir, mode="in-process", shard_size=500)
    expected = run(reference, log=lambda s: None)
    spec = _small(tmp_path / "ray", network_dir, mode="local-ray", workers=2, shard_size=500)
    from service import ray_exec

    killed = []
    original = ray_exec.RayExecutor.score

    def score_and_kill(self, jobs, design, rotations):
        def killer():
            # Kill one actor process once scoring is under way; Ray restarts it and retries.
            time.sleep(1.0)
            pid = ray.get(self.actors[0].pid.remote())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        yield from original(self, jobs, design, rotations)
        thread.join(timeout=5)

    ray_exec.RayExecutor.score = score_and_kill
    try:
        got = run(spec, log=lambda s: None)
    finally:
        ray_exec.RayExecutor.score = original
    assert killed, "no worker was killed"
    assert np.array_equal(_iia(spec), _iia(reference))
    # The actors that scored also aligned: the same alignments as in-process.
    assert got["alignment_iia"] == expected["alignment_iia"]
    assert json.dumps(got["frontier"][0]["assignment"]) == json.dumps(
        expected["frontier"][0]["assignment"]
    )
    # More workers than the CPUs: capped to what the cluster can place, never a hang.
    logs: list[str] = []
    crowded = spec.model_copy(
        update={"execution": spec.execution.model_copy(update={"workers": 3, "shard_size": 900})}
    )
    started = time.time()
    run(crowded, log=logs.append)
    assert any("can place 2 of the 3 workers" in line for line in logs), logs
    assert time.time() - started < 180
    assert np.array_equal(_iia(crowded), _iia(reference))


@pytest.mark.integration
def test_more_gpus_than_a_node_has_is_an_error_not_a_hang(tmp_path, network_dir, ray_session):
    spec = _small(tmp_path, network_dir, mode="local-ray", gpus_per_worker=1)
    started = time.time()
    with pytest.raises(SpecError, match="asks for 1 GPU and 1 CPU per worker, but no node"):
        run(spec, log=lambda s: None)
    assert time.time() - started < 60


@pytest.mark.integration
def test_a_brought_causal_lm_on_a_data_file_scores_the_same_on_ray(
    tmp_path, monkeypatch, ray_session
):
    # A network brought as a folder (a Llama causal LM: padded prompts, answers read as tokens)
    # and a task read from a file named relative to where the job starts: Ray actors start in
    # another folder, and must read the same rows and give the same IIA as in-process.
    import torch
    import transformers as tf

    from intervention.tokenizer import build_tokenizer

    monkeypatch.chdir(tmp_path)
    rows = [{"X": x, "Y": y} for x in (1, 2, 10, 11, 12) for y in (3, 4, 20, 21)]
    with open("inputs.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps({**row, "prompt": f"{row['X']} + {row['Y']} ="}) + "\n")
    sums = sorted({r["X"] + r["Y"] for r in rows})
    tokenizer = build_tokenizer(
        [f"{r['X']} + {r['Y']} =" for r in rows], extra=[f"<{s}>" for s in sums], level="char"
    )
    config = tf.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=16,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
        eos_token_id=None,
    )
    torch.manual_seed(0)
    tf.LlamaForCausalLM(config).save_pretrained("net")
    tokenizer.save_pretrained("net")

    def spec(mode: str, results: str):
        return parse_spec(
            {
                "name": "byo",
                "results": results,
                "task": {
                    "data": {
                        "path": "inputs.jsonl",
                        "output": "X + Y",
                        "template": "{X} + {Y} =",
                        "answer": "<{O}>",
                    }
                },
                "candidates": {"sum": {"P": "X + Y", "O": "P"}, "x": {"P": "X", "O": "P + Y"}},
                "network": {"path": "net", "accuracy_floor": 1e-6},
                "sites": [{"layer": 0, "positions": ["X:last", "last"], "rank": 4}],
                "das": {"steps": 10, "batch_size": 16},
                "pairs": {"design": "sampled", "partners": 3},
                "solve": {"floors": [0.5], "time_limit": 3},
                "execution": {"mode": mode, "workers": 2, "shard_size": 20},
            }
        )

    local = spec("in-process", "here")
    report = run(local, log=lambda s: None)
    assert report["network_head"] == "causal-lm" and report["n_inputs"] == len(rows)
    assert 0 <= report["network_correct"] <= len(rows)
    on_ray = spec("local-ray", "ray")
    assert run(on_ray, log=lambda s: None)["alignment_iia"] == report["alignment_iia"]
    assert np.array_equal(_iia(on_ray), _iia(local))
