"""Jobs on a Ray cluster, through Ray's job submission API (the API behind ``ray job submit``).

``submit`` validates the spec here and resolves what the job would read differently from
another working directory (a relative results folder, a local network folder: both made
absolute), then ships the validated spec as a file, ``spec.json``, in the job's
``working_dir``: Ray's client uploads that folder with the submission and the job starts in
it. (An environment variable cannot carry it: Linux caps one at 128 KiB, and a job whose
environment is over that never leaves PENDING.) Specs over :data:`MAX_SPEC_BYTES` are refused
before anything is sent. The job's entrypoint is this module run as a program
(``python -m service.jobs run spec.json``), which reads the file, runs the pipeline (joining the
job's own cluster with ``address="auto"``) and prints the report as one marker line
(``CCM-REPORT-JSON {...}``) at the end of the job's logs. ``result`` reads that line back
through the API, so it works from any machine that can reach the dashboard, not only from one
that shares the cluster's disk.

A spec with ``execution.mode = "in-process"`` is refused: submitted, it would run the whole job
in the job's driver process on the head, on none of the cluster's workers. Pass
``in_driver=True`` to mean exactly that.

The token is read as Ray reads it (``RAY_AUTH_TOKEN``, else the file at ``RAY_AUTH_TOKEN_PATH``,
else ``~/.ray/auth_token``) and sent on every request as ``Authorization: Bearer <token>``,
which is what Ray's own client sends when ``RAY_AUTH_MODE=token``; here it is sent whatever
``RAY_AUTH_MODE`` says, and a cluster without token authentication ignores it.

Addresses may carry credentials (``http://user:password@host:8265``, for a proxy in front of
the dashboard): every message here prints them as ``***@``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import shlex
import shutil
import socket
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from service.spec import JobSpec, SpecError, load_spec, parse_spec
from service.task import with_data_path

DEFAULT_ADDRESS = "http://127.0.0.1:8265"
MARKER = "CCM-REPORT-JSON "
SPEC_FILE = "spec.json"  # in the job's working_dir
ORIGIN_ENV = "CCM_SPEC_ORIGIN"
# The largest spec submitted, as a file and as the validated JSON shipped. Ray's dashboard takes
# uploads up to 100 MiB and its GCS up to its gRPC message size; a spec is a page of TOML, and
# this leaves room for custom tasks with long domains while refusing a file given by mistake.
MAX_SPEC_BYTES = 16 * 1024 * 1024
# A data task's file travels in the working_dir too; Ray uploads packages up to a few hundred
# MiB, and a job's inputs (1e5 rows of a few variables) take a few MiB.
MAX_DATA_BYTES = 100 * 1024 * 1024
DATA_FILE = "inputs"  # its name there, with the original suffix (.jsonl / .csv)
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")
TOKEN_FIX = (
    "print the head's token with `ray get-auth-token` on the head node, then set RAY_AUTH_TOKEN "
    "to it or save it to ~/.ray/auth_token (or a file named by RAY_AUTH_TOKEN_PATH)"
)


class JobError(RuntimeError):
    """A job request that could not be served; the message says why and what to do. Any
    credentials in an address it quotes are redacted."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


class JobNotFound(JobError):
    """No job with that id on the cluster."""


class JobAuthError(JobError):
    """The cluster wants a token that was not found, or refused the one sent."""


# -- the address ------------------------------------------------------------------------------

# scheme://user:password@ (or scheme://token@): the userinfo, up to the last "@" before the host.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s?#]*@")
# A Ray address may also come without a scheme: user:password@host:6379.
_BARE_USERINFO = re.compile(r"(?<![\w.+-])[^\s/@:'\"]+:[^\s/@'\"]*@(?=[\w\[])")


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced by ``***``."""
    return _BARE_USERINFO.sub("***@", _USERINFO.sub(r"\1***@", text))


def resolve_address(address: str | None = None) -> str:
    """The job server's URL: the argument, else RAY_API_SERVER_ADDRESS or RAY_ADDRESS (as
    ``ray job`` reads them), else http://127.0.0.1:8265."""
    if not address:
        address = (
            os.environ.get("RAY_API_SERVER_ADDRESS")
            or os.environ.get("RAY_ADDRESS")
            or DEFAULT_ADDRESS
        )
    address = address.strip().rstrip("/")
    if address == "auto":
        address = DEFAULT_ADDRESS
    if address.startswith("ray://"):
        raise JobError(
            f"{address} is a Ray Client address; jobs go to the dashboard's job server, "
            "e.g. --address http://HEAD:8265"
        )
    if "://" not in address:
        address = "http://" + address
    parts = urlsplit(address)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise JobError(f"{address} is not a job server address; give http://HEAD:8265")
    return address


def _probe(url: str, headers: dict[str, str], timeout: float = 5.0) -> None:
    """Fail fast, with the reason, where Ray's client would hang or answer obscurely: it sets no
    timeout, so a dead host, or a port that takes the connection and never answers in HTTP (the
    GCS port, say), would hang it; and a server that is not Ray's gets a JSON error."""
    import requests

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            pass
    except OSError as exc:
        raise JobError(_unreachable(url, exc.strerror or str(exc))) from None
    try:
        r = requests.get(url + "/api/version", headers=headers, timeout=timeout)
    except requests.Timeout:
        raise JobError(_not_a_job_server(url, f"no HTTP answer in {timeout:g} s")) from None
    except requests.RequestException as exc:
        raise JobError(_not_a_job_server(url, f"no HTTP answer: {type(exc).__name__}")) from None
    if r.status_code in (401, 403):
        return  # a job server that wants a token: the client below says which and why
    try:
        body = r.json() if r.status_code == 200 else None
    except ValueError:
        body = None
    version = body.get("ray_version") if isinstance(body, dict) else None
    if not version:
        raise JobError(_not_a_job_server(url, f"GET /api/version answered HTTP {r.status_code}"))


def _not_a_job_server(url: str, why: str) -> str:
    return (
        f"{url} is not a Ray job server ({why}); jobs go to the head's dashboard port (8265 by "
        "default), not to the port that `ray start --address` or ray.init take (6379, or 10001 "
        "for ray://): give --address http://HEAD:8265"
    )


def _unreachable(url: str, why: str) -> str:
    return (
        f"cannot reach a Ray job server at {url} ({why}); check that the head is running "
        "(`ray start --head` serves jobs on dashboard port 8265) and give its address with "
        "--address http://HEAD:8265 or RAY_ADDRESS"
    )


# -- the token --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    """The token found (or None) and where it came from; ``looked`` lists every place read."""

    value: str | None
    source: str | None
    looked: tuple[str, ...] = field(default_factory=tuple)


def find_token() -> Token:
    """Read the token as Ray's AuthenticationTokenLoader does: RAY_AUTH_TOKEN (if not blank),
    else RAY_AUTH_TOKEN_PATH (if set, and then only that file), else ~/.ray/auth_token."""
    looked = []
    env_token = os.environ.get("RAY_AUTH_TOKEN", "").strip()
    if env_token:
        return Token(env_token, "RAY_AUTH_TOKEN")
    looked.append("RAY_AUTH_TOKEN (unset)")
    path_env = os.environ.get("RAY_AUTH_TOKEN_PATH", "").strip()
    if path_env:
        value = _read_token_file(Path(path_env).expanduser())
        if value:
            return Token(value, f"RAY_AUTH_TOKEN_PATH={path_env}")
        # Ray does not fall back to ~/.ray/auth_token when the named file is missing.
        looked.append(f"RAY_AUTH_TOKEN_PATH={path_env} (missing or empty)")
        return Token(None, None, tuple(looked))
    looked.append("RAY_AUTH_TOKEN_PATH (unset)")
    default = Path.home() / ".ray" / "auth_token"
    value = _read_token_file(default)
    if value:
        return Token(value, str(default))
    looked.append(f"{default} (missing or empty)")
    return Token(None, None, tuple(looked))


def _read_token_file(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


# -- the client -------------------------------------------------------------------------------


@dataclass
class _Conn:
    client: object  # ray.job_submission.JobSubmissionClient
    url: str
    token: Token


def _auth_message(url: str, token: Token, status: int | None, body: str) -> str:
    if token.value is None:
        # status None: Ray's own client (RAY_AUTH_MODE=token here) refused to send no token.
        need = f"requires a token (HTTP {status}: {body.strip()})" if status else "needs a token"
        return (
            f"the cluster at {url} {need} and none was found; looked at "
            f"{', '.join(token.looked)}; {TOKEN_FIX}"
        )
    said = f"HTTP {status}: {body.strip()}" if status else body.strip()
    return (
        f"the cluster refused the token from {token.source} ({said}); it is not the token of "
        f"the cluster at {url}: {TOKEN_FIX}"
    )


@contextmanager
def _translated(conn_url: str, token: Token, job_id: str | None = None):
    """Ray's errors, as JobErrors with the fix."""
    import requests
    from ray.exceptions import AuthenticationError

    try:
        yield
    except AuthenticationError as exc:
        # Ray's client formats 401 as "Authentication required: <body>" and 403 as
        # "Authentication failed: <body>"; a client in token mode with no token raises its own.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        status = {"Authentication required": 401, "Authentication failed": 403}.get(
            first.split(": ", 1)[0]
        )
        body = first.split(": ", 1)[-1] if status else first
        raise JobAuthError(_auth_message(conn_url, token, status, body)) from None
    except (requests.exceptions.ConnectionError, ConnectionError) as exc:
        raise JobError(_unreachable(conn_url, type(exc).__name__)) from None
    except requests.exceptions.RequestException as exc:
        raise JobError(f"the job server at {conn_url} did not answer: {exc}") from None
    except ValueError as exc:
        # Ray's client: an answer that is not JSON, or a runtime environment it cannot send.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JobError(f"the request to the job server at {conn_url} failed: {first}") from None
    except RuntimeError as exc:
        if isinstance(exc, JobError):
            raise
        text = str(exc)
        if "status code 404" in text and job_id is not None:
            raise JobNotFound(_not_found(conn_url, job_id)) from None
        for status in (401, 403):
            if f"status code {status}" in text:
                raise JobAuthError(_auth_message(conn_url, token, status, text)) from None
        raise JobError(f"the job server at {conn_url} answered: {text.splitlines()[0]}") from None


def _not_found(url: str, job_id: str) -> str:
    return (
        f"no job {job_id!r} on the cluster at {url}; list its jobs with "
        f"`ray job list --address {url}` (ids look like ccm-NAME-1a2b3c4d or raysubmit_...)"
    )


def connect(address: str | None = None, token: str | None = None) -> _Conn:
    """A client for the job server at ``address``, sending the token (``token`` if given,
    else the one :func:`find_token` finds)."""
    from ray.job_submission import JobSubmissionClient

    url = resolve_address(address)
    tok = Token(token, "the token given") if token else find_token()
    headers = {"Authorization": f"Bearer {tok.value}"} if tok.value else {}
    _probe(url, headers)
    with _translated(url, tok):
        # The constructor asks the server its version: an auth or connection error shows here.
        client = JobSubmissionClient(url, headers=headers)
    return _Conn(client, url, tok)


def _info(conn: _Conn, job_id: str):
    with _translated(conn.url, conn.token, job_id):
        return conn.client.get_job_info(job_id)


# -- the job API ------------------------------------------------------------------------------


def submit(
    spec_path: str | Path,
    address: str | None = None,
    *,
    token: str | None = None,
    results: str | None = None,
    python: str | None = None,
    entrypoint: str | None = None,
    submission_id: str | None = None,
    in_driver: bool = False,
) -> str:
    """Validate the spec here, submit it, return the job id.

    The validated spec travels as ``spec.json`` in the job's working_dir, with its paths
    resolved here (:func:`resolve_paths`); ``results`` overrides its results folder. A spec with
    ``execution.mode = "in-process"`` is refused unless ``in_driver`` (then the whole job runs
    in the job's driver on the head). ``python`` is the interpreter that runs the job on the
    cluster: by default this one (right for a local cluster on this venv; give ``python`` for a
    cluster whose nodes install the project elsewhere). ``entrypoint`` replaces the command
    altogether (tests use it); it runs in the folder that holds ``spec.json``."""
    spec_path = Path(spec_path)
    _check_size(spec_path, spec_path.stat().st_size if spec_path.is_file() else 0)
    spec = load_spec(spec_path)  # SpecError before anything reaches the cluster
    spec = resolve_paths(spec, results)
    if spec.execution.mode == "in-process" and not in_driver:
        raise JobError(
            f'{spec_path} has execution.mode = "in-process": submitted, the whole job would run '
            "in the job's driver process on the head node, on none of the cluster's workers. "
            'Set execution.mode = "cluster" to spread it over the cluster, or run it here with '
            f"`ccm run {spec_path}`"
        )
    data = _data_file(spec)
    if data is not None:  # travels beside the spec; the job reads its copy
        spec = with_data_path(spec, DATA_FILE + data.suffix)
    payload = spec.model_dump_json(indent=1)
    _check_size(spec_path, len(payload.encode()))
    conn = connect(address, token)
    command = entrypoint or (
        f"{shlex.quote(python or sys.executable)} -m service.jobs run {SPEC_FILE}"
    )
    job_id = submission_id or f"ccm-{spec.name}-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="ccm-submit-") as folder:
        (Path(folder) / SPEC_FILE).write_text(payload)
        if data is not None:
            shutil.copyfile(data, Path(folder) / (DATA_FILE + data.suffix))
        runtime_env = {
            # Ray's client zips the folder and uploads it with the submission; the job starts in
            # its copy. Removing the folder after submit_job returns is safe.
            "working_dir": folder,
            "env_vars": {ORIGIN_ENV: str(spec_path), "PYTHONUNBUFFERED": "1"},
        }
        # Ray's client logs the package's temporary folder and upload at INFO: not news here.
        with _translated(conn.url, conn.token), _quiet(*_UPLOAD_LOGGERS):
            return conn.client.submit_job(
                entrypoint=command,
                submission_id=job_id,
                runtime_env=runtime_env,
                metadata={"ccm_spec": spec.name},
            )


_UPLOAD_LOGGERS = ("ray.dashboard.modules.dashboard_sdk", "ray._private.runtime_env.packaging")


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Ray's loggers ``names`` at WARNING while inside."""
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _data_file(spec: JobSpec) -> Path | None:
    """A data task's file, which is sent with the job (the cluster need not share this disk);
    refused when larger than Ray uploads with a submission."""
    if spec.task.data is None:
        return None
    path = Path(spec.task.data.path).expanduser()
    size = path.stat().st_size
    if size > MAX_DATA_BYTES:
        raise JobError(
            f"task.data.path {path} is {size / 2**20:.0f} MiB, over the "
            f"{MAX_DATA_BYTES // 2**20} MiB sent with a submission: split the inputs into "
            "smaller jobs, or run the job on the cluster with `ccm run --address` from a "
            "machine that mounts the file"
        )
    return path


def _check_size(spec_path: Path, size: int) -> None:
    if size > MAX_SPEC_BYTES:
        raise JobError(
            f"{spec_path} is {size / 2**20:.1f} MiB, over the {MAX_SPEC_BYTES // 2**20} MiB a "
            "submitted spec may be; a spec describes the task, it does not carry data: point "
            "network.path at a folder the cluster can read instead of inlining anything large"
        )


def resolve_paths(spec: JobSpec, results: str | None = None) -> JobSpec:
    """The spec as the job must see it from another working directory.

    ``results`` (the argument, else the spec's) is made absolute against this process's
    working directory, as ``ccm run`` here would use it: right for a cluster on this machine or
    one that mounts the same shared folder at the same path; for any other, give an absolute
    path as the cluster sees it. ``network.path`` is made absolute only where it names a folder
    that exists here; otherwise it stays as written (a hub name, or a path on the cluster)."""
    results_dir = Path(results if results is not None else spec.results).expanduser()
    update: dict = {"results": str(results_dir.absolute())}
    path = spec.network.path
    if path is not None and Path(path).expanduser().exists():
        absolute = str(Path(path).expanduser().resolve())
        update["network"] = spec.network.model_copy(update={"path": absolute})
    return spec.model_copy(update=update)


def info(job_id: str, address: str | None = None, *, token: str | None = None) -> dict:
    """The job's status, message, entrypoint and times."""
    i = _info(connect(address, token), job_id)
    return {
        "job_id": job_id,
        "status": str(i.status),
        "message": i.message or "",
        "entrypoint": i.entrypoint,
        "start_time": i.start_time,
        "end_time": i.end_time,
        "metadata": i.metadata or {},
    }


def status(job_id: str, address: str | None = None, *, token: str | None = None) -> str:
    """PENDING, RUNNING, SUCCEEDED, FAILED or STOPPED."""
    return str(_info(connect(address, token), job_id).status)


def logs(
    job_id: str, address: str | None = None, *, follow: bool = False, token: str | None = None
) -> Iterator[str]:
    """The job's logs: all of them so far in one piece, or with ``follow`` chunk by chunk as
    they are written, until the job ends."""
    conn = connect(address, token)
    _info(conn, job_id)  # a clear error for an unknown id, before any stream opens
    if not follow:
        with _translated(conn.url, conn.token, job_id):
            text = conn.client.get_job_logs(job_id)
        yield text
        return
    loop = asyncio.new_event_loop()
    stream = conn.client.tail_job_logs(job_id)
    # Ray's client logs "WebSocket closed ..." at INFO when the job ends; not news here.
    with _quiet("ray.dashboard.modules.job.sdk"):
        try:
            while True:
                with _translated(conn.url, conn.token, job_id), warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)  # aiohttp, ssl=None
                    try:
                        chunk = loop.run_until_complete(stream.__anext__())
                    except StopAsyncIteration:
                        return
                yield chunk
        finally:
            loop.run_until_complete(stream.aclose())
            loop.close()


def wait(
    job_id: str,
    address: str | None = None,
    *,
    timeout: float | None = None,
    token: str | None = None,
    poll: float = 0.5,
) -> str:
    """Block until the job ends; its final status."""
    conn = connect(address, token)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        state = str(_info(conn, job_id).status)
        if state in TERMINAL:
            return state
        if deadline is not None and time.monotonic() > deadline:
            raise JobError(f"job {job_id} is still {state} after {timeout:g} s")
        time.sleep(poll)


def result(job_id: str, address: str | None = None, *, token: str | None = None) -> dict:
    """The report of a job that SUCCEEDED, read from the marker line its driver printed."""
    conn = connect(address, token)
    i = _info(conn, job_id)
    state = str(i.status)
    with _translated(conn.url, conn.token, job_id):
        text = conn.client.get_job_logs(job_id)
    if state != "SUCCEEDED":
        hint = {
            "PENDING": "it has not started; wait, or follow it with `ccm logs ID --follow`",
            "RUNNING": "it is still running; follow it with `ccm logs ID --follow`",
            "FAILED": "it failed; see `ccm logs ID` for the whole log",
            "STOPPED": "it was stopped; submit it again",
        }.get(state, "")
        message = (i.message or "").strip().splitlines()
        last = [line.strip() for line in text.splitlines() if line.strip()][-5:]
        raise JobError(
            f"job {job_id} has no report: it is {state}"
            + (f" ({message[0]})" if message else "")
            + f"; {hint}"
            + ("; last log lines: " + " | ".join(last) if last else "; no log lines yet")
        )
    report = parse_report(text)
    if report is None:
        raise JobError(
            f"job {job_id} SUCCEEDED but its logs carry no {MARKER.strip()} line; was it "
            "submitted with `ccm submit`? (`ccm report RESULTS_DIR` reads a report.json on disk)"
        )
    return report


def parse_report(log_text: str) -> dict | None:
    """The report from the last marker line of a job's logs, or None."""
    for line in reversed(log_text.splitlines()):
        if line.startswith(MARKER):
            return json.loads(line[len(MARKER) :])
    return None


def cancel(
    job_id: str, address: str | None = None, *, timeout: float = 30.0, token: str | None = None
) -> str:
    """Stop the job and return once it has ended (its final status: STOPPED, or SUCCEEDED /
    FAILED when it had already ended)."""
    conn = connect(address, token)
    state = str(_info(conn, job_id).status)
    if state in TERMINAL:
        return state
    with _translated(conn.url, conn.token, job_id):
        conn.client.stop_job(job_id)
    deadline = time.monotonic() + timeout
    while True:
        state = str(_info(conn, job_id).status)
        if state in TERMINAL:
            return state
        if time.monotonic() > deadline:
            raise JobError(
                f"job {job_id} is still {state} {timeout:g} s after it was asked to stop; "
                "its driver may be stuck: see `ccm logs ID`"
            )
        time.sleep(0.2)


# -- inside the job ---------------------------------------------------------------------------


def _job_main(argv: list[str]) -> int:
    """The job's driver: the spec from the file submitted with it, the pipeline, the marker."""
    if len(argv) != 2 or argv[0] != "run":
        print(f"usage: python -m service.jobs run {SPEC_FILE}   (a submitted job's entrypoint)")
        return 2
    from service.pipeline import run
    from service.report import format_report

    path = Path(argv[1])
    origin = os.environ.get(ORIGIN_ENV, str(path))
    try:
        try:
            data = json.loads(path.read_text())
        except OSError as exc:
            raise SpecError(
                f"cannot read the submitted spec {path} ({exc.strerror}); submit jobs with "
                "`ccm submit SPEC`"
            ) from None
        except ValueError as exc:
            raise SpecError(f"the submitted spec {path} is not JSON: {exc}") from None
        spec = parse_spec(data, origin)
        # In-process (submitted with in_driver) runs in this driver; any other mode joins the
        # cluster the job runs on.
        address = None if spec.execution.mode == "in-process" else "auto"
        print(f"ccm job: {spec.name}, mode {spec.execution.mode}, results {spec.results_dir()}")
        report = run(spec, address=address)
    except SpecError as exc:
        print(f"ccm job: error: {exc}", file=sys.stderr, flush=True)
        return 2
    print(format_report(report))
    print(f"report: {spec.results_dir() / 'report.json'}")
    print(MARKER + json.dumps(report, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_job_main(sys.argv[1:]))
