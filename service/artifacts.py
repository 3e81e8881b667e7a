"""A job's results folder: where its artifacts live, how they are written, checked and locked.

- Every artifact is keyed by a digest of everything its stage reads (``service.keys``) and of
  ``ARTIFACT_VERSION``, the version of the code's artifact formats and meanings.
- Every artifact is written whole: a temp file in the same directory, then ``os.replace``
  (which replaces a symbolic link instead of writing through it). Its SHA-256 and size go into
  ``manifest.json``; a reuse re-hashes the file, and one that is absent from the manifest or
  differs from it is recomputed, with a log line naming it.
- Nothing is read or written through a symbolic link: a link anywhere inside the job's folder
  stops the job with an error naming it.
- One job per folder: ``.lock`` is held (``fcntl.flock``) for the job's life; a second job
  gets an error naming the folder and the first job's pid.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import io
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import numpy as np

from service.spec import JobSpec, SpecError

# Bump when an artifact's format or meaning changes: every key changes with it, so artifacts
# written by older code are never reused. 2: content keys, range-named shards, manifest.
ARTIFACT_VERSION = 2
MANIFEST = "manifest.json"
LOCK = ".lock"
Log = Callable[[str], None]


class ArtifactError(SpecError):
    """An artifact or results folder that cannot be used; the message names the file and fix."""


def key(stage: str, **parts: object) -> str:
    """The key of a stage's artifact: a digest of what the stage reads and of the code's
    artifact version (``intervention.digest`` is the project's one digest)."""
    from intervention.digest import digest

    return digest({"artifact_version": ARTIFACT_VERSION, "stage": stage, **parts})


def link_error(path: Path) -> ArtifactError:
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return ArtifactError(
        f"{path} is a symbolic link (to {target}); a job never reads or writes through a link "
        "in its results folder: remove the link, or choose another results folder"
    )


def prepare_results(spec: JobSpec) -> Path:
    """The job's folder, created if needed: inside the results folder, not a link, writable,
    holding no links."""
    base = Path(spec.results).resolve()
    folder = base / spec.name  # a name is a plain folder name (spec validation)
    if folder.is_symlink():
        raise link_error(folder)
    root = folder.resolve()
    if base not in root.parents:
        raise SpecError(f"results for {spec.name!r} would be written outside {base}")
    try:
        root.mkdir(parents=True, exist_ok=True)
        # mkstemp creates a new file (O_EXCL): a planted link cannot redirect the probe.
        fd, probe = tempfile.mkstemp(dir=root, prefix=".write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise SpecError(
            f"results folder {root} is not writable ({exc.strerror}); choose another with "
            'results = "..." in the spec'
        ) from None
    if root.is_symlink():  # created by someone else between the check and mkdir
        raise link_error(folder)
    ResultsFolder(root, log=lambda s: None).refuse_links()
    return root


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ResultsFolder:
    """Safe, checksummed reads and writes of artifacts under one job's folder. Paths are given
    relative to the folder, with forward slashes."""

    def __init__(self, root: Path, log: Log = print) -> None:
        self.root = Path(root)
        self.log = log
        self._lock_fd: int | None = None
        self._dirty = False
        self._saved_at = time.monotonic()
        self.entries: dict[str, dict] = self._read_manifest()

    # -- links and paths -----------------------------------------------------------------

    def refuse_links(self) -> None:
        """Stop on any symbolic link inside the folder, before a job writes anything."""
        if self.root.is_symlink():
            raise link_error(self.root)
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            for name in sorted(dirnames + filenames):
                path = Path(dirpath) / name
                if path.is_symlink():
                    raise link_error(path)

    def path(self, rel: str) -> Path:
        """The absolute path of ``rel``; refuses a link at any step of the way."""
        parts = PurePosixPath(rel).parts
        if not parts or PurePosixPath(rel).is_absolute() or any(p in ("..", ".") for p in parts):
            raise ValueError(f"artifact path {rel!r} must be relative, inside the job folder")
        path = self.root
        for part in parts:
            path = path / part
            if path.is_symlink():
                raise link_error(path)
        return path

    def directory(self, rel: str) -> Path:
        """A directory under the folder, created if needed, never a link."""
        path = self.root
        for part in PurePosixPath(rel).parts:
            path = path / part
            if path.is_symlink():
                raise link_error(path)
            try:
                path.mkdir()
            except FileExistsError:
                pass
            if path.is_symlink():
                raise link_error(path)
            if not path.is_dir():
                raise ArtifactError(
                    f"{path} should be a folder of this job's artifacts but is not one: "
                    "remove it and run the job again"
                )
        return path

    # -- the lock ------------------------------------------------------------------------

    def lock(self) -> None:
        """Hold the folder for this job: a second job on it gets a clear error, not a race."""
        path = self.root / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise link_error(path) from None
            raise ArtifactError(
                f"cannot create the lock file {path} ({exc.strerror}); choose a writable "
                "results folder"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown pid"
            os.close(fd)
            raise ArtifactError(
                f"results folder {self.root} is in use by another job ({holder}); wait for it "
                "to finish, or give this job another name or results folder"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self._lock_fd = fd
        self._drop_temp_files()
        # Read again under the lock: a job that held the folder until now may have added to it.
        self.entries = self._read_manifest()

    def _drop_temp_files(self) -> None:
        """Temp files a killed job left behind (never renamed into place). Only under the
        lock: no other job is writing one now."""
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=False):
            for name in dirnames + filenames:
                if (name.startswith(".") and name.endswith(".tmp")) or name.startswith(".tmp-"):
                    path = Path(dirpath) / name
                    if path.is_dir() and not path.is_symlink():
                        shutil.rmtree(path)
                        dirnames.remove(name)
                    else:
                        path.unlink(missing_ok=True)

    def unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- the manifest --------------------------------------------------------------------

    def _read_manifest(self) -> dict[str, dict]:
        path = self.root / MANIFEST
        if path.is_symlink():
            raise link_error(path)
        if not path.exists():
            return {}
        try:
            data = json.loads(path.read_text())
            entries = data["artifacts"]
            if data.get("version") != ARTIFACT_VERSION or not isinstance(entries, dict):
                raise ValueError(f"artifact version {data.get('version')}")
        except (ValueError, KeyError, TypeError) as exc:
            self.log(
                f"artifacts: {path} is unreadable or from other code ({exc}); its artifacts "
                "will be recomputed"
            )
            return {}
        return entries

    def record(self, rel: str, checksum: str, size: int) -> None:
        self.entries[rel] = {"sha256": checksum, "bytes": size}
        self._dirty = True
        # Saved at most once a second while a stage streams artifacts in; a crash loses at
        # most that second's entries, and those artifacts are recomputed on the next run.
        if time.monotonic() - self._saved_at > 1.0:
            self.flush()

    def flush(self) -> None:
        if not self._dirty:
            return
        text = json.dumps({"version": ARTIFACT_VERSION, "artifacts": self.entries}, indent=0)
        self._replace(self.path(MANIFEST), (text + "\n").encode())
        self._dirty = False
        self._saved_at = time.monotonic()

    # -- writing -------------------------------------------------------------------------

    def _replace(self, target: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def write_bytes(self, rel: str, data: bytes) -> Path:
        """Write an artifact whole and record its checksum."""
        parent = PurePosixPath(rel).parent
        if str(parent) != ".":
            self.directory(str(parent))
        target = self.path(rel)
        self._replace(target, data)
        self.record(rel, sha256(data), len(data))
        return target

    def write_text(self, rel: str, text: str) -> Path:
        return self.write_bytes(rel, text.encode())

    def save_array(self, rel: str, array: np.ndarray) -> Path:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        return self.write_bytes(rel, buffer.getvalue())

    def write_with(self, rel: str, writer: Callable[[Path], object]) -> Path:
        """An artifact that a library writes to a path (a plot, an npz): it writes a temp file
        with the same suffix, which then replaces the target."""
        parent = PurePosixPath(rel).parent
        if str(parent) != ".":
            self.directory(str(parent))
        target = self.path(rel)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=target.suffix)
        os.close(fd)
        try:
            writer(Path(tmp))
            data = Path(tmp).read_bytes()
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.record(rel, sha256(data), len(data))
        return target

    def write_dir(self, rel: str, writer: Callable[[Path], object]) -> Path:
        """A folder artifact (a saved network): written into a temp folder beside it, then
        renamed into place; every file in it is recorded."""
        target = self.path(rel)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
        try:
            writer(tmp)
            files = {}
            for path in sorted(p for p in tmp.rglob("*") if not p.is_dir()):
                if path.is_symlink():
                    raise link_error(path)
                data = path.read_bytes()
                files[path.relative_to(tmp).as_posix()] = (sha256(data), len(data))
            if target.exists():
                self.remove(rel)
            os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        for name, (checksum, size) in files.items():
            self.record(f"{rel}/{name}", checksum, size)
        return target

    def remove(self, rel: str) -> None:
        """Delete an artifact (a file or a folder) and its manifest entries."""
        path = self.path(rel)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        prefix = rel.rstrip("/") + "/"
        for name in [n for n in self.entries if n == rel or n.startswith(prefix)]:
            del self.entries[name]
            self._dirty = True

    # -- reading and checking ------------------------------------------------------------

    def problem(self, rel: str) -> str | None:
        """None when the artifact is present and matches the manifest; else what is wrong."""
        path = self.path(rel)
        if not path.exists():
            return "absent"
        entry = self.entries.get(rel)
        if entry is None:
            return "not in the manifest (written by an interrupted run, or by hand)"
        data = path.read_bytes()
        if len(data) != entry["bytes"] or sha256(data) != entry["sha256"]:
            return (
                f"changed since it was written ({len(data)} bytes, sha256 {sha256(data)[:12]}; "
                f"the manifest has {entry['bytes']} bytes, sha256 {entry['sha256'][:12]})"
            )
        return None

    def dir_problem(self, rel: str) -> str | None:
        """As ``problem``, for a folder artifact: every file recorded and unchanged, no other."""
        found = self._dir_check(rel)
        return None if found is None else f"{found[0]}: {found[1]}"

    def _dir_check(self, rel: str) -> tuple[str, str] | None:
        """(the file at fault, what is wrong with it), or None when the folder checks out."""
        path = self.path(rel)
        if not path.is_dir():
            return rel, "absent"
        prefix = rel.rstrip("/") + "/"
        recorded = {n[len(prefix) :] for n in self.entries if n.startswith(prefix)}
        present = set()
        for p in path.rglob("*"):
            if p.is_symlink():
                raise link_error(p)
            if not p.is_dir():
                present.add(p.relative_to(path).as_posix())
        if not recorded:
            return rel, "not in the manifest (written by an interrupted run, or by hand)"
        if present != recorded:
            extra, missing = sorted(present - recorded), sorted(recorded - present)
            return rel, f"different from the manifest's files (extra {extra}, missing {missing})"
        for name in sorted(recorded):
            why = self.problem(f"{prefix}{name}")
            if why is not None:
                return f"{prefix}{name}", why
        return None

    def reusable(self, rel: str, *, folder: bool = False) -> bool:
        """Whether a stage may reuse the artifact. One that is there but fails its check is
        removed, with a log line naming the file at fault, so that the stage recomputes it."""
        found = self._dir_check(rel) if folder else self._file_check(rel)
        if found is None:
            return True
        culprit, why = found
        if why != "absent":
            self.log(f"artifacts: {self.path(culprit)} is {why}; recomputing {self.path(rel)}")
            self.remove(rel)
        return False

    def _file_check(self, rel: str) -> tuple[str, str] | None:
        why = self.problem(rel)
        return None if why is None else (rel, why)

    def read_bytes(self, rel: str) -> bytes:
        """An artifact's bytes, checked against the manifest (the bytes read are the bytes
        hashed: a file swapped after the check is still caught)."""
        path = self.path(rel)
        data = path.read_bytes()
        entry = self.entries.get(rel)
        if entry is None or sha256(data) != entry["sha256"]:
            raise ArtifactError(
                f"{path} does not match the manifest {self.root / MANIFEST}; delete it and run "
                "the job again to recompute it"
            )
        return data

    def load_array(self, rel: str, length: int, dtype: np.dtype | type) -> np.ndarray:
        """A checked ``.npy`` artifact of ``length`` elements of ``dtype``."""
        path = self.path(rel)
        try:
            array = np.load(io.BytesIO(self.read_bytes(rel)), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ArtifactError(
                f"{path} is not a readable array ({exc}); delete it and run the job again"
            ) from None
        if array.shape != (length,) or array.dtype != np.dtype(dtype):
            raise ArtifactError(
                f"{path} holds {array.dtype}{list(array.shape)}, expected {np.dtype(dtype)}"
                f"[{length}]; delete it and run the job again"
            )
        return array
