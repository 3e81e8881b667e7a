"""Real Ray clusters for the tests: a head (``ray start --head``) and, where a test asks, more
nodes (``ray start --address``) on this machine, each with its own temp dir and process group,
all with token authentication. Not a test module: test_jobs.py and test_cluster.py use it.

Run the modules that use it inside a loopback-only network namespace (Ray binds to the
machine's outward address otherwise):

    /work/shared/bin/loopback .venv/bin/python -m pytest -q tests/test_jobs.py

Outside one they skip (set CCM_RAY_TESTS=1 to run anyway). In CI (``CI=true``) they never
skip: a head that does not come up fails the test with its log, so that CI cannot pass with the
job API or the cluster mode untested.

Every node runs ``ray start --block`` in its own process group with a marker in its
environment; teardown stops the nodes (workers first), then their process groups, then any
process that still carries the marker, by pid. Nothing here runs ``ray stop --force``: that
kills every Ray process on the machine, other people's included.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).parent / "ray"
MARKER_ENV = "CCM_TEST_RAY_HEAD"
START_SECONDS = 120


def in_ci() -> bool:
    """CI sets CI=true (GitHub Actions, GitLab, most others)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def loopback_only() -> bool:
    try:
        return [name for _, name in socket.if_nameindex()] == ["lo"]
    except OSError:
        return False


def skip_reason() -> str | None:
    """Why a module of Ray tests should skip here, or None to run it. Never skips in CI."""
    if in_ci() or loopback_only() or os.environ.get("CCM_RAY_TESTS"):
        return None
    return (
        "needs a loopback-only network namespace to start a Ray head (run under "
        "/work/shared/bin/loopback, or set CCM_RAY_TESTS=1)"
    )


def cannot_start(reason: str) -> NoReturn:
    """A cluster the tests need did not come up: in CI a failure, elsewhere a skip."""
    if in_ci():
        pytest.fail(f"CI=true and the Ray tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


def free_ports(k: int, taken: set[int] | None = None) -> list[int]:
    """``k`` distinct ports free now and not in ``taken`` (which they join). The sockets stay
    open until all ``k`` are chosen: closing each before asking for the next lets the kernel
    hand out the same port twice, and Ray refuses to start when two of its components share
    one (a CI run failed that way)."""
    taken = set() if taken is None else taken
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < k:
            s = socket.socket()
            held.append(s)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if port not in taken:
                ports.append(port)
                taken.add(port)
    finally:
        for s in held:
            s.close()
    return ports


@dataclass
class Node:
    proc: subprocess.Popen
    log_path: Path
    resources: dict[str, float]


@dataclass
class Cluster:
    url: str  # the job server (dashboard)
    gcs: str  # host:port, for `ray start --address` and ray.init
    token: str
    token_file: Path
    base: Path
    marker: str
    ray: Path = RAY  # the `ray` command that starts the nodes
    nodes: list[Node] = field(default_factory=list)
    ports: set[int] = field(default_factory=set)  # every port handed to a node: never twice


def marked(marker: str) -> list:
    """Processes (other than this one) whose environment carries the cluster's marker."""
    import psutil

    mine = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get(MARKER_ENV) == marker:
                mine.append(proc)
        except (psutil.Error, OSError):
            pass
    return mine


def _stop_node(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        # SIGTERM to `ray start --block` alone: it drains its node and stops its processes
        # (about 2 s). Signalling the whole group instead kills the GCS under the drain, which
        # then waits out its 30 s limit.
        proc.terminate()
        try:
            proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # whatever is left of its process group
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=10)


def stop(cluster: Cluster) -> None:
    """Stop every node (the head last), then anything of the cluster's that outlived them."""
    import psutil

    for node in reversed(cluster.nodes):
        _stop_node(node.proc)
    left = marked(cluster.marker)  # workers, a job's driver: by pid, never by name
    for p in left:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(left, timeout=10)


def _node_env(cluster: Cluster) -> dict[str, str]:
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(cluster.token_file),
        MARKER_ENV: cluster.marker,
    }
    for name in ("RAY_AUTH_TOKEN", "RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
        env.pop(name, None)
    return env


def _start_node(cluster: Cluster, args: list[str], cpus: int, resources: dict) -> Node:
    k = len(cluster.nodes)
    log_path = cluster.base / f"node{k}.log"
    # Every port chosen here: two nodes on one address must not both take Ray's defaults.
    flags = ("node-manager", "object-manager", "metrics-export", "dashboard-agent-listen",
             "dashboard-agent-grpc", "runtime-env-agent")  # fmt: skip
    chosen = free_ports(len(flags), cluster.ports)
    ports = [f"--{flag}-port={port}" for flag, port in zip(flags, chosen, strict=True)]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [str(cluster.ray), "start", *args, *ports, f"--num-cpus={cpus}",
             f"--resources={json.dumps(resources)}", f"--temp-dir={cluster.base / f'ray{k}'}",
             "--disable-usage-stats", "--block"],
            env=_node_env(cluster), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=REPO,
        )  # fmt: skip
    node = Node(proc, log_path, {"CPU": cpus, **resources})
    cluster.nodes.append(node)
    return node


def _warm_up(client, deadline: float) -> None:
    # The job server answers before the head's job agent is ready; one trivial job proves it.
    while True:
        try:
            job = client.submit_job(entrypoint="echo ready")
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)
    while not client.get_job_status(job).is_terminal():
        if time.monotonic() > deadline:
            raise TimeoutError("the warm-up job did not finish")
        time.sleep(0.5)


def _wait_for(cluster: Cluster, deadline: float) -> None:
    import requests

    headers = {"Authorization": f"Bearer {cluster.token}"}
    want = len(cluster.nodes)
    while True:
        for k, node in enumerate(cluster.nodes):
            if node.proc.poll() is not None:
                raise RuntimeError(f"`ray start` of node {k} exited with {node.proc.returncode}")
        try:
            # The state API's node list: every node started here must be ALIVE.
            r = requests.get(cluster.url + "/api/v0/nodes", headers=headers, timeout=2)
            if r.status_code == 200:
                rows = r.json()["data"]["result"]["result"]
                if sum(row["state"] == "ALIVE" for row in rows) >= want:
                    return
        except (requests.RequestException, KeyError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{want} node(s) not all up at {cluster.url} after "
                               f"{START_SECONDS} s")  # fmt: skip
        time.sleep(0.5)


def _log_tails(cluster: Cluster) -> str:
    tails = []
    for k, node in enumerate(cluster.nodes):
        text = node.log_path.read_text()[-1500:] if node.log_path.exists() else ""
        tails.append(f"--- node {k} log ends:\n{text}")
    return "\n".join(tails)


START_TRIES = 3  # a port taken by another process between choosing and binding: try afresh


def _new_cluster(ray_executable: Path) -> Cluster:
    base = Path(tempfile.mkdtemp(prefix="ccmh", dir="/tmp"))  # short: Ray's socket paths
    token = secrets.token_hex(32)
    token_file = base / "token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    taken: set[int] = set()
    port, dashboard_port = free_ports(2, taken)
    return Cluster(
        url=f"http://127.0.0.1:{dashboard_port}",
        gcs=f"127.0.0.1:{port}",
        token=token,
        token_file=token_file,
        base=base,
        marker=secrets.token_hex(8),
        ray=ray_executable,
        ports=taken,
    )


def _start(cluster: Cluster, nodes: list[tuple[int, dict[str, float]]]):
    """Start ``nodes`` (the first the head) and warm up the job server; its client."""
    from ray.job_submission import JobSubmissionClient

    started = time.monotonic()
    deadline = started + START_SECONDS
    (head_cpus, head_resources), *others = nodes
    gcs_port, dashboard_port = cluster.gcs.rsplit(":", 1)[1], cluster.url.rsplit(":", 1)[1]
    (client_port,) = free_ports(1, cluster.ports)
    _start_node(
        cluster,
        ["--head", f"--port={gcs_port}", f"--dashboard-port={dashboard_port}",
         "--include-dashboard=true", "--dashboard-host=127.0.0.1",
         f"--ray-client-server-port={client_port}"],
        head_cpus, head_resources,
    )  # fmt: skip
    _wait_for(cluster, deadline)
    for cpus, resources in others:
        _start_node(cluster, [f"--address={cluster.gcs}"], cpus, resources)
    _wait_for(cluster, deadline)
    client = JobSubmissionClient(cluster.url, headers={"Authorization": f"Bearer {cluster.token}"})
    _warm_up(client, deadline)
    print(
        f"ray cluster: {len(nodes)} node(s) up in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    return client


@contextmanager
def ray_cluster(
    nodes: list[tuple[int, dict[str, float]]] = ((2, {}),),
    *,
    ray_executable: Path = RAY,
) -> Iterator[Cluster]:
    """A running cluster of ``nodes`` (CPUs, custom resources), the first one the head; its
    job server warmed up with one trivial job. Stops every node on exit, whatever happened.
    A start that fails is tried afresh (new ports, new temp dir) up to ``START_TRIES`` times;
    a cluster that never comes up is :func:`cannot_start` (a skip, or in CI a failure)."""
    failures = []
    for _ in range(START_TRIES):
        cluster = _new_cluster(ray_executable)
        try:
            client = _start(cluster, list(nodes))
            break
        except Exception as exc:
            stop(cluster)
            failures.append(f"{exc}; {_log_tails(cluster)}")
            shutil.rmtree(cluster.base, ignore_errors=True)
    else:
        cannot_start(
            f"could not start a Ray cluster in {START_TRIES} tries (the last: {failures[-1]})"
        )
    try:
        try:
            yield cluster
        finally:
            try:
                for job in client.list_jobs():
                    if not job.status.is_terminal():
                        client.stop_job(job.submission_id)
            except Exception:
                pass
            stop(cluster)
            left = marked(cluster.marker)
            assert not left, f"processes of the test's Ray cluster outlived it: {left}"
    finally:
        shutil.rmtree(cluster.base, ignore_errors=True)
