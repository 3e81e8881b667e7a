"""Jobs through Ray's job submission API, against a real Ray head started here.

Run inside a loopback-only network namespace (Ray binds to the machine's outward address
otherwise):

    /work/shared/bin/loopback .venv/bin/python -m pytest -q tests/test_jobs.py

Outside one the module skips (set CCM_RAY_TESTS=1 to run anyway); if the head does not come up
the tests that need it skip with its log. The head runs with ``--block`` in its own process
group, with its own temp dir and a marker in its environment; teardown stops that process
group and then any process that still carries the marker, by pid. It does not run
``ray stop --force``: that kills every Ray process on the machine, other people's included.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).parent / "ray"
EXAMPLE = REPO / "examples" / "arithmetic-small.toml"
MARKER_ENV = "CCM_TEST_RAY_HEAD"


def _loopback_only() -> bool:
    try:
        return [name for _, name in socket.if_nameindex()] == ["lo"]
    except OSError:
        return False


if not _loopback_only() and not os.environ.get("CCM_RAY_TESTS"):
    pytest.skip(
        "needs a loopback-only network namespace to start a Ray head (run under "
        "/work/shared/bin/loopback, or set CCM_RAY_TESTS=1)",
        allow_module_level=True,
    )

import requests  # noqa: E402

from service import jobs  # noqa: E402
from service.cli import main  # noqa: E402
from service.spec import SpecError  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Head:
    url: str
    token: str
    token_file: Path


def _marked(marker: str):
    import psutil

    mine = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get(MARKER_ENV) == marker:
                mine.append(proc)
        except (psutil.Error, OSError):
            pass
    return mine


def _stop_head(proc: subprocess.Popen, marker: str) -> None:
    import psutil

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
    # Anything of this head's that outlived it (workers, a job driver): by pid, not by name.
    left = _marked(marker)
    for p in left:
        try:
            p.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(left, timeout=10)


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
    while str(client.get_job_status(job)) not in jobs.TERMINAL:
        if time.monotonic() > deadline:
            raise TimeoutError("the warm-up job did not finish")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def head():
    from ray.job_submission import JobSubmissionClient

    base = Path(tempfile.mkdtemp(prefix="ccmh", dir="/tmp"))  # short: Ray's socket paths
    token = secrets.token_hex(32)
    token_file = base / "token"
    token_file.write_text(token)
    token_file.chmod(0o600)
    marker = secrets.token_hex(8)
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token_file),
        MARKER_ENV: marker,
    }
    for name in ("RAY_AUTH_TOKEN", "RAY_ADDRESS", "RAY_API_SERVER_ADDRESS"):
        env.pop(name, None)
    port, dashboard_port = _free_port(), _free_port()
    log_path = base / "head.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                str(RAY), "start", "--head", f"--port={port}",
                f"--dashboard-port={dashboard_port}", "--num-cpus=2",
                "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                f"--temp-dir={base / 'ray'}", "--disable-usage-stats", "--block",
            ],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO,
        )  # fmt: skip
    url = f"http://127.0.0.1:{dashboard_port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {proc.returncode}")
            try:
                r = requests.get(
                    url + "/api/version", headers={"Authorization": f"Bearer {token}"}, timeout=2
                )
                if r.status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"no dashboard at {url} after 120 s")
            time.sleep(0.5)
        client = JobSubmissionClient(url, headers={"Authorization": f"Bearer {token}"})
        _warm_up(client, deadline)
    except Exception as exc:
        _stop_head(proc, marker)
        tail = log_path.read_text()[-1500:] if log_path.exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip(f"could not start a Ray head ({exc}); its log ends:\n{tail}")
    try:
        yield Head(url, token, token_file)
    finally:
        try:
            for job in client.list_jobs():
                if not job.status.is_terminal():
                    client.stop_job(job.submission_id)
        except Exception:
            pass
        _stop_head(proc, marker)
        shutil.rmtree(base, ignore_errors=True)
        assert not _marked(marker), "processes of the test's Ray head outlived its teardown"


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
    """The small example, smaller: results under tmp_path, DAS 50 steps, 5 partners, one
    floor, in-process (the job needs no Ray workers of its own)."""
    text = EXAMPLE.read_text()
    edits = {
        r"^results = .*$": f'results = "{tmp_path / "results"}"',
        r"^steps = .*$": f"steps = {changes.get('steps', '50')}",
        r"^partners = .*$": "partners = 5",
        r"^floors = .*$": "floors = [0.9]",
        r"^mode = .*$": 'mode = "in-process"',
    }
    for pattern, line in edits.items():
        text, n = re.subn(pattern, line, text, count=1, flags=re.M)
        assert n == 1, f"{EXAMPLE} changed: no line matches {pattern}"
    path = tmp_path / "spec.toml"
    path.write_text(text + changes.get("extra", ""))
    return path


def _job_ids(head: Head) -> set[str]:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(head.url, headers={"Authorization": f"Bearer {head.token}"})
    return {j.submission_id for j in client.list_jobs()}


def _one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ccm {command}: error: ") and "\n" not in err, err
    return err


def test_submit_follow_and_result(with_token, tmp_path, capsys):
    spec = small_spec(tmp_path)
    started = time.monotonic()
    job_id = jobs.submit(spec, with_token.url)
    assert job_id.startswith("ccm-arithmetic-small-")
    chunks: list[str] = []
    follower = threading.Thread(
        target=lambda: chunks.extend(jobs.logs(job_id, with_token.url, follow=True)), daemon=True
    )
    follower.start()
    follower.join(timeout=240)
    if follower.is_alive():
        jobs.cancel(job_id, with_token.url)
        pytest.fail(f"job {job_id} did not finish in 240 s; logs so far:\n{''.join(chunks)}")
    seconds = time.monotonic() - started
    logs = "".join(chunks)
    assert jobs.status(job_id, with_token.url) == "SUCCEEDED", logs[-3000:]
    assert jobs.MARKER in logs
    report = jobs.result(job_id, with_token.url)
    assert [row["floor"] for row in report["frontier"]] == [0.9]
    assert report["task"] == "arithmetic"
    assert (tmp_path / "results" / "arithmetic-small" / "report.json").is_file()

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


def test_request_without_token_is_refused(head, no_token, tmp_path, monkeypatch, capsys):
    spec = small_spec(tmp_path)
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


def test_cancel_stops_a_running_job_within_10_s(with_token, tmp_path, capsys):
    # A DAS of a million steps: the job runs until it is stopped.
    spec = small_spec(tmp_path, steps="1000000")
    assert main(["submit", str(spec), "--address", with_token.url]) == 0
    job_id = capsys.readouterr().out.strip()
    deadline = time.monotonic() + 60
    while "ccm job:" not in "".join(jobs.logs(job_id, with_token.url)):
        assert jobs.status(job_id, with_token.url) in ("PENDING", "RUNNING")
        assert time.monotonic() < deadline, "the job's driver did not start in 60 s"
        time.sleep(0.5)
    assert jobs.status(job_id, with_token.url) == "RUNNING"
    with pytest.raises(jobs.JobError, match="it is RUNNING"):
        jobs.result(job_id, with_token.url)

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
    spec = small_spec(tmp_path)
    # Valid here, fails on the cluster: the network folder does not exist there.
    text = spec.read_text().replace("[network.train]", "[network]\npath = '/nonexistent/net'\n#")
    text = re.sub(r"(?m)^(n_layer|n_embd) = .*$", "", text)
    spec.write_text(text)
    job_id = jobs.submit(spec, with_token.url)
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


def test_unreachable_address(capsys):
    url = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(jobs.JobError, match=f"cannot reach a Ray job server at {url}"):
        jobs.status("ccm-x", url)
    assert main(["status", "ccm-x", "--address", url]) == 2
    err = _one_line_error(capsys, "status")
    assert url in err and "--address http://HEAD:8265" in err


def test_token_is_found_as_ray_finds_it(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("from-home\n")
    named = tmp_path / "named"
    named.write_text("  from-path \n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(named))
    assert jobs.find_token().value == "from-env"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "  ")  # blank: Ray skips it
    assert jobs.find_token().value == "from-path"
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(tmp_path / "missing"))
    found = jobs.find_token()  # a named file that is missing: Ray does not fall back
    assert found.value is None and any("missing" in place for place in found.looked)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH")
    assert jobs.find_token().value == "from-home"
