"""The results folder and artifact keys: the one digest, content keys, the manifest, links,
the lock, and the per-node placement arithmetic of the Ray pool."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest

from intervention.digest import digest
from service.artifacts import ArtifactError, ResultsFolder, prepare_results
from service.keys import alignment_key, iia_key, network_key, successes_key
from service.ray_exec import placeable, plan_workers
from service.spec import SpecError, parse_spec
from service.worker import network_ref


def _spec(tmp_path, **extra):
    return parse_spec(
        {
            "name": "job",
            "results": str(tmp_path / "results"),
            "task": {"builtin": "arithmetic"},
            "network": {"train": {"n_layer": 1}},
            "sites": [{"layer": 0}],
            **extra,
        }
    )


@pytest.mark.unit
def test_one_digest_typed_and_strict():
    assert digest(1) != digest("1") != digest(1.0)
    assert digest([1, 2]) != digest([[1], 2])
    assert digest(np.arange(3, dtype=np.int32)) != digest(np.arange(3, dtype=np.int64))
    assert digest({"a": 1, "b": 2}) == digest({"b": 2, "a": 1})
    # An object without a defined encoding is an error, never its repr (which may hold an
    # address and change between runs).
    with pytest.raises(TypeError, match="no stable encoding for object"):
        digest(object())
    # The spec's digest is the same function.
    spec = parse_spec(
        {
            "name": "t",
            "task": {"builtin": "arithmetic"},
            "network": {"train": {}},
            "sites": [{"layer": 0}],
        }
    )
    assert spec.digest("solve") == digest({"solve": spec.solve.model_dump(mode="json")})


@pytest.mark.unit
def test_keys_cover_task_content_not_its_name():
    from intervention.causal_model import CausalModel
    from intervention.tasks import arithmetic

    task = arithmetic()
    train = {"n_layer": 1}
    # Other prompts for the same built-in task: another network.
    reworded = dataclasses.replace(task, render=lambda v: f"{v['X']}+{v['Y']}+{v['Z']}==")
    assert network_key(task, train) != network_key(reworded, train)
    assert network_key(task, train) == network_key(arithmetic(), train)
    # A candidate of the same name with another mechanism: another alignment.
    first = task.candidates[0]
    changed = CausalModel(first.name, task.inputs, {"P": "X + Z", "O": "P + Y"}, "O")
    site, das = {"layer": 0, "positions": None, "rank": 8}, {"steps": 10}
    assert alignment_key("net", task, first, site, das) != alignment_key(
        "net", task, changed, site, das
    )
    assert alignment_key("net", task, first, site, das) == alignment_key(
        "net", arithmetic(), arithmetic().candidates[0], site, das
    )
    # Another candidate subset: other IIA data; another shard size: other shards.
    assert iia_key(["a", "b"], ["(X+Y)+Z", "X+Y+(Z)"], {}) != iia_key(["a"], ["(X+Y)+Z"], {})
    rotation = np.eye(4, 2)
    assert successes_key("k", rotation, {}, 1000) != successes_key("k", rotation, {}, 500)
    assert successes_key("k", rotation, {}, 1000) != successes_key("k", rotation * -1, {}, 1000)


@pytest.mark.unit
def test_manifest_catches_changed_and_truncated_artifacts(tmp_path):
    logs: list[str] = []
    store = ResultsFolder(tmp_path, logs.append)
    store.save_array("successes-k/pairs-000000-000010.npy", np.zeros(10, dtype=bool))
    store.flush()
    again = ResultsFolder(tmp_path, logs.append)  # a later run reads the saved manifest
    assert again.problem("successes-k/pairs-000000-000010.npy") is None
    assert again.load_array("successes-k/pairs-000000-000010.npy", 10, bool).sum() == 0
    # A wrong length or dtype names the file.
    with pytest.raises(ArtifactError, match=r"pairs-000000-000010.npy holds bool\[10\], expected"):
        again.load_array("successes-k/pairs-000000-000010.npy", 12, bool)
    # Overwritten with a valid array of the same shape (all successes): caught by checksum.
    path = tmp_path / "successes-k/pairs-000000-000010.npy"
    np.save(path, np.ones(10, dtype=bool))
    assert "changed since it was written" in again.problem("successes-k/pairs-000000-000010.npy")
    with pytest.raises(ArtifactError, match="pairs-000000-000010.npy does not match the manifest"):
        again.load_array("successes-k/pairs-000000-000010.npy", 10, bool)
    assert not again.reusable("successes-k/pairs-000000-000010.npy")
    assert not path.exists() and "pairs-000000-000010.npy is changed" in logs[-1]
    # Truncated: named, and recomputed rather than read.
    again.save_array("x.npy", np.zeros(100, dtype=bool))
    data = (tmp_path / "x.npy").read_bytes()
    (tmp_path / "x.npy").write_bytes(data[:40])
    assert "40 bytes" in again.problem("x.npy")
    # An unrecorded file (an interrupted run, or by hand) is not vouched for.
    (tmp_path / "stray.npy").write_bytes(data)
    assert again.problem("stray.npy").startswith("not in the manifest")


@pytest.mark.unit
def test_folder_artifacts_checked_file_by_file(tmp_path):
    store = ResultsFolder(tmp_path, lambda s: None)

    def write(d: Path) -> None:
        (d / "config.json").write_text("{}")
        (d / "model.safetensors").write_bytes(b"weights")

    store.write_dir("network-k", write)
    assert store.dir_problem("network-k") is None
    (tmp_path / "network-k" / "extra.bin").write_bytes(b"x")
    assert "extra ['extra.bin']" in store.dir_problem("network-k")
    (tmp_path / "network-k" / "extra.bin").unlink()
    (tmp_path / "network-k" / "model.safetensors").write_bytes(b"other!!")
    assert "model.safetensors: changed since it was written" in store.dir_problem("network-k")
    assert not store.reusable("network-k", folder=True)
    assert not (tmp_path / "network-k").exists()


@pytest.mark.unit
@pytest.mark.parametrize(
    "planted",
    ["report.json", "frontier.png", ".write-test", ".lock", "network-abc", "manifest.json"],
)
def test_links_in_the_job_folder_are_refused(tmp_path, planted):
    spec = _spec(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_text("keep")
    job = tmp_path / "results" / "job"
    job.mkdir(parents=True)
    (job / planted).symlink_to(outside / "victim")
    with pytest.raises(ArtifactError, match=f"{planted} is a symbolic link"):
        prepare_results(spec)
    assert (outside / "victim").read_text() == "keep" and os.listdir(outside) == ["victim"]


@pytest.mark.unit
def test_writes_never_go_through_links(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "job"
    root.mkdir()
    store = ResultsFolder(root, lambda s: None)
    # A link planted after the job's first scan: every read and write refuses it by name.
    (root / "report.json").symlink_to(outside / "victim")
    with pytest.raises(ArtifactError, match="report.json is a symbolic link"):
        store.write_text("report.json", "{}")
    (root / "successes-k").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ArtifactError, match="successes-k is a symbolic link"):
        store.save_array("successes-k/pairs-000000-000001.npy", np.zeros(1, dtype=bool))
    with pytest.raises(ArtifactError, match="successes-k is a symbolic link"):
        store.directory("successes-k")
    assert os.listdir(outside) == []
    # The job folder itself as a link out of the results folder.
    spec = _spec(tmp_path)
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "job").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ArtifactError, match="job is a symbolic link"):
        prepare_results(spec)


@pytest.mark.unit
def test_a_second_job_on_a_locked_folder_is_told_who_holds_it(tmp_path):
    first = ResultsFolder(tmp_path, lambda s: None)
    first.lock()
    try:
        with pytest.raises(
            ArtifactError, match=rf"{tmp_path} is in use by another job \(pid {os.getpid()} on"
        ):
            ResultsFolder(tmp_path, lambda s: None).lock()
    finally:
        first.unlock()
    # Free once the first job ends; the next job clears the temp files a killed one left.
    (tmp_path / ".pairs-000000-000010.npy.x1y2.tmp").write_bytes(b"half a shard")
    (tmp_path / ".network-k.abc.tmp").mkdir()
    second = ResultsFolder(tmp_path, lambda s: None)
    second.lock()
    second.unlock()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]


NODE = {"Alive": True, "NodeManagerAddress": "10.0.0.1"}


@pytest.mark.unit
def test_workers_must_fit_on_one_node_not_the_cluster_total():
    two_gpu_nodes = [
        {**NODE, "Resources": {"CPU": 8.0, "GPU": 1.0}},
        {**NODE, "NodeManagerAddress": "10.0.0.2", "Resources": {"CPU": 8.0, "GPU": 1.0}},
        {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}},  # a dead node holds nothing
    ]
    # The cluster has 2 GPUs in total, but no node has 2: a 2-GPU worker cannot be placed.
    with pytest.raises(SpecError, match="asks for 2 GPU and 1 CPU per worker, but no node"):
        plan_workers(two_gpu_nodes, 1, 1.0, 2.0)
    assert placeable(two_gpu_nodes, 1.0, 1.0) == 2
    assert placeable(two_gpu_nodes, 1.0, 0.25) == 8  # fractional GPUs share a device
    assert placeable(two_gpu_nodes, 3.0, 0.25) == 4  # CPUs bind first: 2 per node
    assert placeable([{**NODE, "Resources": {"CPU": 0.3}}], 0.1, 0.0) == 3
    assert plan_workers(two_gpu_nodes, 3, 1.0, 1.0) == 2  # capped, not left waiting
    assert plan_workers(two_gpu_nodes, 1, 1.0, 1.0) == 1


@pytest.mark.unit
def test_network_ref_passes_hub_names_through(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net").mkdir()
    assert network_ref("net") == str(tmp_path / "net")
    assert network_ref("openai-community/gpt2") == "openai-community/gpt2"


@pytest.mark.unit
def test_network_identity_follows_weights_and_code_version(random_net, task_ids, monkeypatch):
    import copy

    import torch

    from intervention.network import network_digest
    from service import artifacts
    from service.keys import network_identity

    _, _, ids = task_ids
    same = copy.deepcopy(random_net)
    assert network_digest(same) == network_digest(random_net)
    with torch.no_grad():
        next(same.parameters())[0, 0] += 1e-3  # one weight of a network.path folder changed
    assert network_digest(same) != network_digest(random_net)
    weights = network_digest(random_net)
    assert network_identity(weights, ids) != network_identity(weights, ids.flip(1))
    # A new artifact format or meaning: every key changes.
    before = artifacts.key("alignment", x=1)
    monkeypatch.setattr(artifacts, "ARTIFACT_VERSION", artifacts.ARTIFACT_VERSION + 1)
    assert artifacts.key("alignment", x=1) != before
