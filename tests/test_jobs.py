"""Jobs through Ray's job submission API, against a real Ray head started here
(``tests/ray_cluster.py``: its own temp dir and process group, token authentication).

Run inside a loopback-only network namespace (Ray binds to the machine's outward address
otherwise):

    /work/shared/bin/loopback .venv/bin/python -m pytest -q tests/test_jobs.py

Outside one the module skips (set CCM_RAY_TESTS=1 to run anyway); with CI=true it never skips,
and a head that does not come up fails the tests with its log.
"""

from __future__ import annotations

import re
import shutil
import sys
import threading
import time
from pathlib import Path

import pytest
from ray_cluster import (
    Cluster,
    ray_cluster,
    skip_reason,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "arithmetic-small.toml"

if skip_reason():
    pytest.skip(skip_reason(), allow_module_level=True)

import requests  # noqa: E402

from service import jobs  # noqa: E402
from service.cli import main  # noqa: E402
from service.spec import SpecError  # noqa: E402

Head = Cluster


@pytest.fixture(scope="module")
def head():
    with ray_cluster([(2, {})]) as cluster:
        yield cluster


@pytest.fixture
def with_token(head, monkeypatch):
    """The token found as Ray finds it: here through RAY_AUTH_TOKEN_PATH."""
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(head.token_file))
    return head


@pytest.fixture
def no_token(tmp_path, monkeypatch):
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "home" / ".ray" / "auth_token"


def small_spec(tmp_path: Path, **changes: str) -> Path:
    """The small example, smaller: results under tmp_path, one candidate and the fallback,
    DAS 10 steps, 4 partners, one floor, in-process (submitted with ``in_driver``: no Ray
    workers of its own). The network: the folder ``network`` if given, else a 1-layer network
    trained for 60 epochs (the jobs test the plumbing, not the network: accuracy floor 0.5).
    ``pad`` appends that many bytes of comment."""
    text = EXAMPLE.read_text()
    edits = {
        r"^results = .*$": f'results = "{changes.get("results", tmp_path / "results")}"',
        r"^\[task\]$": 'candidates = ["(X+Y)+Z"]\n\n[task]',
        r"^\[network.train\]$": "[network]\naccuracy_floor = 0.5\n\n[network.train]\nepochs = 60",
        r"^n_layer = .*$": "n_layer = 1",
        r"^n_embd = .*$": "n_embd = 32",
        r"^steps = .*$": f"steps = {changes.get('steps', '10')}",
        r"^partners = .*$": "partners = 4",
        r"^floors = .*$": "floors = [0.9]",
        r"^mode = .*$": f'mode = "{changes.get("mode", "in-process")}"',
    }
    for pattern, line in edits.items():
        text, n = re.subn(pattern, line, text, count=1, flags=re.M)
        assert n == 1, f"{EXAMPLE} changed: no line matches {pattern}"
    if "network" in changes:
        text, n = re.subn(
            r"(?m)^\[network.train\]\n(\w+ = .*\n)*", f'path = "{changes["network"]}"\n', text
        )
        assert n == 1
    pad = int(changes.get("pad", "0"))
    text += "".join(f"# padding {k:06d} {'.' * 80}\n" for k in range(pad // 97 + 1)) if pad else ""
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def network_dir(tmp_path_factory) -> Path:
    """The network of small_spec, trained once for the module by a plain in-process run (no
    Ray), so that the jobs below only load it."""
    from service.pipeline import run
    from service.spec import load_spec

    base = tmp_path_factory.mktemp("net")
    run(load_spec(small_spec(base, steps="1")), log=lambda line: None)
    found = sorted(base.rglob("config.json"))
    assert len(found) == 1, f"expected one network folder, found {found}"
    return found[0].parent


def _job_ids(head: Head) -> set[str]:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(head.url, headers={"Authorization": f"Bearer {head.token}"})
    return {j.submission_id for j in client.list_jobs()}


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ccm {command}: error: ") and "\n" not in err, err
    return err


def test_big_spec_with_relative_paths_submits_follows_and_reports(
    with_token, tmp_path, capsys, monkeypatch, network_dir
):
    # Over 128 KiB: carried in one environment variable, such a spec left its job PENDING.
    # And the job runs in another working directory: the relative network folder and results
    # folder given here must reach it as the same folders.
    here = tmp_path / "here"
    shutil.copytree(network_dir, here / "nets" / "small")
    monkeypatch.chdir(here)
    spec = small_spec(here, pad=str(300 * 1024), results="out", network="nets/small")
    assert spec.stat().st_size > 300 * 1024
    started = time.monotonic()
    job_id = jobs.submit("spec.toml", with_token.url, in_driver=True)
    assert job_id.startswith("ccm-arithmetic-small-")
    chunks: list[str] = []
    follower = threading.Thread(
        target=lambda: chunks.extend(jobs.logs(job_id, with_token.url, follow=True)), daemon=True
    )
    follower.start()
    follower.join(timeout=300)
    if follower.is_alive():
        state = jobs.status(job_id, with_token.url)
        jobs.cancel(job_id, with_token.url)
        pytest.fail(f"job {job_id} still {state} after 300 s; logs so far:\n{''.join(chunks)}")
    seconds = time.monotonic() - started
    logs = "".join(chunks)
    assert jobs.status(job_id, with_token.url) == "SUCCEEDED", logs[-3000:]
    assert jobs.MARKER in logs
    assert f"results {here / 'out' / 'arithmetic-small'}" in logs
    assert (here / "out" / "arithmetic-small" / "report.json").is_file()
    report = jobs.result(job_id, with_token.url)
    assert [row["floor"] for row in report["frontier"]] == [0.9]
    assert report["task"] == "arithmetic"

    capsys.readouterr()
    assert main(["status", job_id, "--address", with_token.url]) == 0
    assert capsys.readouterr().out.startswith(f"{job_id} SUCCEEDED")
    assert main(["result", job_id, "--address", with_token.url]) == 0
    assert "floor" in capsys.readouterr().out
    assert main(["result", job_id, "--json", "--address", with_token.url]) == 0
    assert '"frontier"' in capsys.readouterr().out
    assert main(["logs", job_id, "--address", with_token.url]) == 0
    assert jobs.MARKER in capsys.readouterr().out
    print(f"job {job_id}: submitted to SUCCEEDED in {seconds:.1f} s", file=sys.stderr)


def test_in_process_spec_is_refused_unless_in_driver(with_token, tmp_path, capsys):
    spec = small_spec(tmp_path)
    before = _job_ids(with_token)
    with pytest.raises(jobs.JobError, match='execution.mode = "in-process"'):
        jobs.submit(spec, with_token.url)
    assert main(["submit", str(spec), "--address", with_token.url]) == 2
    err = _one_line_error(capsys, "submit")
    assert 'set execution.mode = "cluster"' in err.lower() and f"ccm run {spec}" in err
    assert _job_ids(with_token) == before, "a refused spec was submitted"


def test_request_without_token_is_refused(head, no_token, tmp_path, monkeypatch, capsys):
    spec = small_spec(tmp_path, mode="cluster")
    # What the job server itself answers a request without a token.
    r = requests.get(head.url + "/api/jobs/", timeout=10)
    assert r.status_code == 401, r.text
    before = _job_ids(head)

    with pytest.raises(jobs.JobAuthError) as err:
        jobs.submit(spec, head.url)
    message = str(err.value)
    # "requires a token (HTTP 401 ...)", or "needs a token" where RAY_AUTH_MODE=token was set
    # before Ray was imported (then Ray's client itself refuses to send no token).
    assert "a token" in message and "none was found" in message
    assert "RAY_AUTH_TOKEN (unset)" in message and str(no_token) in message
    assert "ray get-auth-token" in message
    assert main(["submit", str(spec), "--address", head.url]) == 2
    assert "none was found" in _one_line_error(capsys, "submit")

    monkeypatch.setenv("RAY_AUTH_TOKEN", "not-the-token")
    with pytest.raises(
        jobs.JobAuthError, match="the cluster refused the token from RAY_AUTH_TOKEN"
    ):
        jobs.status("anything", head.url)
    assert main(["submit", str(spec), "--address", head.url]) == 2
    assert "the cluster refused the token" in _one_line_error(capsys, "submit")
    assert _job_ids(head) == before, "a refused request submitted a job"


def test_credentials_in_the_address_are_never_printed(with_token, tmp_path, capsys):
    # user:password@ in the URL: requests sends them as Basic auth in place of the token, so the
    # head refuses; every message about it names the head without the password.
    host = with_token.url.removeprefix("http://")
    secret = "s3cret-" + with_token.token[:8]
    url = f"http://alice:{secret}@{host}"
    spec = small_spec(tmp_path, mode="cluster")
    for call in (
        lambda: jobs.submit(spec, url),
        lambda: jobs.status("ccm-none-00000000", url),
        lambda: jobs.result("ccm-none-00000000", url),
    ):
        with pytest.raises(jobs.JobError) as err:
            call()
        assert secret not in str(err.value) and f"http://***@{host}" in str(err.value)
    for argv in (["submit", str(spec)], ["status", "x"], ["logs", "x"], ["cancel", "x"]):
        assert main([*argv, "--address", url]) == 2
        out = capsys.readouterr()
        assert secret not in out.err + out.out and "***@" in out.err


def test_gcs_port_is_not_a_job_server(head, capsys):
    # The address `ray start --address` takes, given where the dashboard's is wanted: a clear
    # error within seconds, not a hang in Ray's client (which sets no timeout).
    started = time.monotonic()
    assert main(["status", "ccm-x", "--address", f"http://{head.gcs}"]) == 2
    err = _one_line_error(capsys, "status")
    assert "is not a Ray job server" in err and "8265" in err
    assert time.monotonic() - started < 15


def test_cancel_stops_a_running_job_within_10_s(with_token, tmp_path, capsys):
    # A DAS of a million steps: the job runs until it is stopped.
    spec = small_spec(tmp_path, steps="1000000")
    job_id = jobs.submit(spec, with_token.url, in_driver=True)
    deadline = time.monotonic() + 60
    while "ccm job:" not in "".join(jobs.logs(job_id, with_token.url)):
        assert jobs.status(job_id, with_token.url) in ("PENDING", "RUNNING")
        assert time.monotonic() < deadline, "the job's driver did not start in 60 s"
        time.sleep(0.5)
    assert jobs.status(job_id, with_token.url) == "RUNNING"
    with pytest.raises(jobs.JobError, match="it is RUNNING"):
        jobs.result(job_id, with_token.url)

    capsys.readouterr()
    started = time.monotonic()
    assert main(["cancel", job_id, "--address", with_token.url]) == 0
    seconds = time.monotonic() - started
    assert capsys.readouterr().out.strip() == f"{job_id} STOPPED"
    assert jobs.status(job_id, with_token.url) == "STOPPED"
    assert seconds < 10, f"cancel took {seconds:.1f} s"
    print(f"job {job_id}: RUNNING to STOPPED in {seconds:.1f} s", file=sys.stderr)
    with pytest.raises(jobs.JobError, match="it is STOPPED"):
        jobs.result(job_id, with_token.url)


def test_failed_job_result_shows_status_and_last_lines(with_token, tmp_path):
    # Valid here, fails on the cluster: the network folder does not exist there.
    spec = small_spec(tmp_path, network="/nonexistent/net")
    job_id = jobs.submit(spec, with_token.url, in_driver=True)
    assert jobs.wait(job_id, with_token.url, timeout=120) == "FAILED"
    with pytest.raises(jobs.JobError, match="it is FAILED") as err:
        jobs.result(job_id, with_token.url)
    assert "last log lines:" in str(err.value) and "\n" not in str(err.value)


def test_bad_spec_is_refused_before_submitting(with_token, tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text(EXAMPLE.read_text().replace("[das]", "[das]\nstepz = 3"))
    before = _job_ids(with_token)
    with pytest.raises(SpecError, match="das.stepz"):
        jobs.submit(spec, with_token.url)
    assert _job_ids(with_token) == before


def test_unknown_job_id(with_token, capsys):
    with pytest.raises(jobs.JobNotFound, match="no job 'ccm-none-00000000' on the cluster"):
        jobs.status("ccm-none-00000000", with_token.url)
    with pytest.raises(jobs.JobNotFound):
        jobs.result("ccm-none-00000000", with_token.url)
    for command in ("status", "logs", "result", "cancel"):
        assert main([command, "ccm-none-00000000", "--address", with_token.url]) == 2
        assert "no job 'ccm-none-00000000'" in _one_line_error(capsys, command)
