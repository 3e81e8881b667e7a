"""The job client's checks that need no cluster: what ``submit`` refuses or resolves before it
sends anything, credentials in addresses, an unreachable address, the token lookup, and what
the Ray test modules do when their cluster cannot start (skip, or in CI fail)."""

from __future__ import annotations

import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from ray_cluster import cannot_start, free_ports, ray_cluster, skip_reason

from service import jobs
from service.cli import main
from service.spec import load_spec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "arithmetic-small.toml"


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"  # closed once the socket is


def _spec(tmp_path: Path, mode: str = "cluster", **lines: str) -> Path:
    text = re.sub(r"(?m)^mode = .*$", f'mode = "{mode}"', EXAMPLE.read_text())
    for key, value in lines.items():
        text = re.sub(rf"(?m)^{key} = .*$", f"{key} = {value}", text)
    path = tmp_path / "spec.toml"
    path.write_text(text)
    return path


@pytest.mark.unit
@pytest.mark.parametrize(
    "text, expected",
    [
        ("http://alice:s3cret@head:8265", "http://***@head:8265"),
        ("at https://tok@head:8265/api/jobs/ (x)", "at https://***@head:8265/api/jobs/ (x)"),
        ("ray://u:p@ss@head:10001 and http://h:1/", "ray://***@head:10001 and http://h:1/"),
        ("http://head:8265/a?b=c@d", "http://head:8265/a?b=c@d"),
        ("mail me at a@b.org", "mail me at a@b.org"),
        # Ray (GCS) addresses come without a scheme too.
        ("cannot reach 'alice:s3cret@10.0.0.1:6379'", "cannot reach '***@10.0.0.1:6379'"),
        ("head:6379 at 12:30", "head:6379 at 12:30"),
    ],
)
def test_redact_hides_the_userinfo_of_every_url(text, expected):
    assert jobs.redact(text) == expected


@pytest.mark.unit
def test_unreachable_address_is_clear_fast_and_redacted(tmp_path, capsys):
    url = _closed_port_url()
    started = time.monotonic()
    with pytest.raises(jobs.JobError, match=f"cannot reach a Ray job server at {url}"):
        jobs.status("ccm-x", url)
    assert main(["status", "ccm-x", "--address", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ccm status: error: ") and url in err and "--address" in err
    secret_url = url.replace("http://", "http://alice:s3cret@")
    for command in (["status", "ccm-x"], ["cancel", "ccm-x"], ["submit", str(_spec(tmp_path))]):
        assert main([*command, "--address", secret_url]) == 2
        err = capsys.readouterr().err
        assert "s3cret" not in err and "http://***@127.0.0.1" in err, err
    with pytest.raises(jobs.JobError) as caught:
        jobs.resolve_address("ray://alice:s3cret@head:10001")
    assert "s3cret" not in str(caught.value) and "ray://***@head:10001" in str(caught.value)
    assert time.monotonic() - started < 10


@pytest.mark.unit
def test_a_server_that_is_not_a_job_server_is_named_fast(capsys):
    # An HTTP server that is not Ray's dashboard (404 on /api/version), and a port that takes
    # the connection and never answers (as Ray's GCS port does to HTTP): Ray's client, which
    # sets no timeout, would fail obscurely or hang on them.
    class NotRay(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_error(404)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), NotRay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # the kernel completes the handshake; nobody ever reads
    try:
        started = time.monotonic()
        url = f"http://127.0.0.1:{server.server_port}"
        assert main(["status", "ccm-x", "--address", url]) == 2
        err = capsys.readouterr().err
        assert f"{url} is not a Ray job server (GET /api/version answered HTTP 404)" in err
        assert "--address http://HEAD:8265" in err
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(jobs.JobError, match="is not a Ray job server .no HTTP answer in 5 s"):
            jobs.status("ccm-x", url)
        assert time.monotonic() - started < 15
    finally:
        server.shutdown()
        server.server_close()
        silent.close()


@pytest.mark.unit
def test_spec_over_the_limit_is_refused_before_it_is_read_or_sent(tmp_path):
    spec = tmp_path / "huge.toml"
    spec.write_text(EXAMPLE.read_text())
    with spec.open("a") as f:
        f.write(("#" + "." * 1023 + "\n") * (jobs.MAX_SPEC_BYTES // 1024 + 1))
    # An unreachable address: the size is checked first, so the error is about the size.
    with pytest.raises(jobs.JobError, match=r"huge.toml is 16.0 MiB, over the 16 MiB"):
        jobs.submit(spec, _closed_port_url())


@pytest.mark.unit
def test_in_process_spec_is_refused_before_anything_is_sent(tmp_path, capsys):
    spec = _spec(tmp_path, mode="in-process")
    with pytest.raises(jobs.JobError, match=r'execution.mode = "in-process"'):
        jobs.submit(spec, _closed_port_url())
    assert main(["submit", str(spec), "--address", _closed_port_url()]) == 2
    err = capsys.readouterr().err
    assert 'Set execution.mode = "cluster"' in err and f"ccm run {spec}" in err
    # Asked for, it goes on to the cluster (here: none, so the address is what fails).
    with pytest.raises(jobs.JobError, match="cannot reach a Ray job server"):
        jobs.submit(spec, _closed_port_url(), in_driver=True)


@pytest.mark.unit
def test_paths_are_resolved_where_the_spec_is_submitted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "nets" / "small").mkdir(parents=True)
    spec = load_spec(EXAMPLE)
    assert spec.results == "results"
    resolved = jobs.resolve_paths(spec)
    assert resolved.results == str(tmp_path / "results") and resolved.network.path is None
    assert jobs.resolve_paths(spec, "elsewhere").results == str(tmp_path / "elsewhere")
    assert jobs.resolve_paths(spec, "/abs/out").results == "/abs/out"

    def with_path(path: str):
        network = spec.network.model_copy(update={"train": None, "path": path})
        return jobs.resolve_paths(spec.model_copy(update={"network": network})).network.path

    assert with_path("nets/small") == str(tmp_path / "nets" / "small")  # exists here
    assert with_path("./nets/small/") == str(tmp_path / "nets" / "small")
    assert with_path("gpt2") == "gpt2"  # a hub name stays a name
    assert with_path("openai-community/gpt2") == "openai-community/gpt2"
    assert with_path("/models/on/the/cluster") == "/models/on/the/cluster"


@pytest.mark.unit
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


@pytest.mark.unit
def test_ray_modules_never_skip_in_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.delenv("CCM_RAY_TESTS", raising=False)
    assert skip_reason() is None
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="the reason"):
        cannot_start("the reason")  # outside CI, a cluster that cannot start skips


@pytest.mark.unit
def test_ports_for_a_node_are_distinct_and_never_handed_out_twice():
    # Ray refuses a node whose components share a port (a CI run failed on one such draw).
    taken = {*free_ports(3)}
    first = set(taken)
    ports = free_ports(200, taken)
    assert len(set(ports)) == 200 and not first & set(ports)
    assert taken == first | set(ports)


@pytest.mark.integration
def test_a_head_that_cannot_start_fails_in_ci_with_its_log(monkeypatch):
    # A real `ray start --head` that refuses its arguments (CPU given as a custom resource).
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception) as caught:
        with ray_cluster([(1, {"CPU": 1})]):
            pass
    message = str(caught.value)
    assert message.startswith("CI=true and the Ray tests cannot run: could not start a Ray")
    assert "`CPU` cannot be a custom resource" in message  # from the head's own log
