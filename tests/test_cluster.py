"""The ``cluster`` mode on a real two-node Ray cluster: a head (``ray start --head``) and a second
node (``ray start --address``), one CPU each and a custom resource each, on this machine, with
their own temp dirs and process groups (``tests/ray_cluster.py``). A job submitted with
``ccm submit`` must place its workers on both nodes and give the same IIA and frontier as the
same spec run in-process. The nodes share this machine's disk, so the results folder is shared
as a cluster's must be (``deploy/README.md``).

    /work/shared/bin/loopback .venv/bin/python -m pytest -q tests/test_cluster.py
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ray_cluster import ray_cluster, skip_reason

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "arithmetic-small.toml"

if skip_reason():
    pytest.skip(skip_reason(), allow_module_level=True)

from service import jobs  # noqa: E402
from service.cli import main  # noqa: E402
from service.spec import load_spec  # noqa: E402


@pytest.fixture(scope="module")
def two_nodes():
    # One CPU per node and one worker of one CPU each: the workers can only fit one per node.
    with ray_cluster([(1, {"ccm_head": 1}), (1, {"ccm_second": 1})]) as cluster:
        yield cluster


def _spec(path: Path, results: Path, mode: str, network: Path | None = None) -> Path:
    """arithmetic-small, tiny: a 1-layer network trained 60 epochs (or the folder ``network``),
    two candidates and the fallback, DAS 30 steps, 4 partners, shards of 1000 pairs (12 in
    all), two floors."""
    text = EXAMPLE.read_text()
    edits = {
        r"^results = .*$": f'results = "{results}"',
        r"^\[task\]$": 'candidates = ["(X+Y)+Z", "X+Y+(Z)"]\n\n[task]',
        r"^\[network.train\]$": "[network]\naccuracy_floor = 0.5\n\n[network.train]\nepochs = 60",
        r"^n_layer = .*$": "n_layer = 1",
        r"^n_embd = .*$": "n_embd = 32",
        r"^steps = .*$": "steps = 30",
        r"^partners = .*$": "partners = 4",
        r"^floors = .*$": "floors = [1.0, 0.9]",
        r"^mode = .*$": f'mode = "{mode}"\nworkers = 2\ncpus_per_worker = 1\nshard_size = 1000',
    }
    for pattern, line in edits.items():
        text, n = re.subn(pattern, line, text, count=1, flags=re.M)
        assert n == 1, f"{EXAMPLE} changed: no line matches {pattern}"
    if network is not None:
        text = re.sub(r"(?m)^\[network.train\]\n(\w+ = .*\n)*", f'path = "{network}"\n', text)
    path.write_text(text)
    return path


def _rows(url: str, token: str, resource: str) -> list[dict]:
    """Ray's state API (what `ray list actors --detail` reads), with the cluster's token."""
    from ray.util.state.api import StateApiClient
    from ray.util.state.common import ListApiOptions, StateResource

    client = StateApiClient(url, headers={"Authorization": f"Bearer {token}"})
    options = ListApiOptions(detail=True, limit=10_000)
    rows = client.list(StateResource(resource), options, raise_on_missing_output=True)
    return [row if isinstance(row, dict) else row.__dict__ for row in rows]


def test_cluster_job_uses_both_nodes_and_matches_in_process(
    two_nodes, tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(two_nodes.token_file))
    url = two_nodes.url
    nodes = {row["node_id"] for row in _rows(url, two_nodes.token, "nodes")}
    assert len(nodes) == 2

    spec = _spec(tmp_path / "cluster.toml", tmp_path / "cluster", "cluster")
    started = time.monotonic()
    assert main(["submit", str(spec), "--address", url]) == 0
    job_id = capsys.readouterr().out.strip()
    state = jobs.wait(job_id, url, timeout=480)
    seconds = time.monotonic() - started
    logs = "".join(jobs.logs(job_id, url))
    assert state == "SUCCEEDED", logs[-4000:]
    report = jobs.result(job_id, url)

    # Where the job's workers ran: every node of the cluster holds one.
    workers = [a for a in _rows(url, two_nodes.token, "actors") if a["class_name"] == "Worker"]
    placed = {a["node_id"] for a in workers}
    assert placed == nodes, f"workers on {placed}, nodes {nodes}; log:\n{logs[-3000:]}"
    assert "ray: 2 workers" in logs, logs[-3000:]

    # The same spec in-process, on the network the job trained (read from the shared folder).
    found = sorted((tmp_path / "cluster").rglob("config.json"))
    assert len(found) == 1, f"expected one network folder, found {found}"
    reference_spec = load_spec(
        _spec(tmp_path / "ref.toml", tmp_path / "ref", "in-process", network=found[0].parent)
    )
    from service.pipeline import run

    mark = time.monotonic()
    reference = run(reference_spec, log=lambda line: None)
    in_process = time.monotonic() - mark

    def iia(root: Path) -> np.ndarray:
        files = sorted(root.rglob("iia-*.npz"))
        assert len(files) == 1, f"expected one IIA file under {root}, found {files}"
        return np.load(files[0])["iia"]

    assert np.array_equal(iia(tmp_path / "cluster"), iia(tmp_path / "ref"))
    assert [(row["floor"], row["strength"], row["assignment"]) for row in report["frontier"]] == [
        (row["floor"], row["strength"], row["assignment"]) for row in reference["frontier"]
    ]
    print(
        f"two-node job {job_id}: submitted to SUCCEEDED in {seconds:.1f} s; in-process "
        f"reference {in_process:.1f} s",
        file=sys.stderr,
    )
