"""deploy/: the image, the Ray cluster launcher config and the KubeRay manifests agree with each
other and with the project. Nothing here builds an image or starts a cluster (no Docker engine,
no Kubernetes where this runs): the files are parsed and cross-checked."""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from packaging.requirements import Requirement

from service.cli import build_parser
from service.spec import load_spec

pytestmark = pytest.mark.unit

DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
YAMLS = sorted(DEPLOY.glob("*.yaml"))
IMAGE = (DEPLOY / "IMAGE").read_text().strip()
PYTHON_TAG = "py311"


# -- parsing helpers ------------------------------------------------------------------------


def _docs(path: Path) -> list:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def _one(name: str) -> dict:
    docs = _docs(DEPLOY / name)
    assert len(docs) == 1, f"{name}: expected one document, found {len(docs)}"
    return docs[0]


def _dockerfile() -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The Dockerfile's ARG defaults and its instructions (continuations joined)."""
    lines, buf = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        if not buf and (not raw.strip() or raw.lstrip().startswith("#")):
            continue
        if raw.rstrip().endswith("\\"):
            buf += raw.rstrip()[:-1] + " "
            continue
        lines.append(buf + raw)
        buf = ""
    assert not buf, "Dockerfile ends inside a continued line"
    args: dict[str, str] = {}
    instructions = []
    for line in lines:
        op, _, rest = line.strip().partition(" ")
        instructions.append((op.upper(), rest.strip()))
        if op.upper() == "ARG" and "=" in rest:
            key, _, value = rest.strip().partition("=")
            args.setdefault(key, value)
    return args, instructions


def _expand(text: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], text)


def _only(instructions, op: str) -> list[str]:
    return [rest for o, rest in instructions if o == op]


def _workdir() -> str:
    _, instructions = _dockerfile()
    (workdir,) = _only(instructions, "WORKDIR")
    return workdir


RESULTS = _workdir() + "/results"  # where jobs write on a cluster: one shared volume


def _walk(node, key=None):
    """Every (key, value) pair of a parsed YAML tree, scalars and containers alike."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield k, v
            yield from _walk(v, k)
    elif isinstance(node, list):
        for v in node:
            yield key, v
            yield from _walk(v, key)


def _strings(node):
    for _, v in _walk(node):
        if isinstance(v, str):
            yield v


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _requirement(name: str) -> Requirement:
    for text in _pyproject()["project"]["dependencies"]:
        req = Requirement(text)
        if req.name == name:
            return req
    raise AssertionError(f"pyproject.toml has no {name} requirement")


def _repo_path(path: str) -> Path:
    """A path as the image sees it (absolute under WORKDIR, or relative to it), in the repo."""
    workdir = _workdir()
    if path.startswith(workdir + "/"):
        path = path[len(workdir) + 1 :]
    assert not path.startswith("/"), f"{path} is outside the image's WORKDIR {workdir}"
    return REPO / path


# -- ccm commands ---------------------------------------------------------------------------


def _shell_commands(text: str) -> list[list[str]]:
    """The simple commands of a shell line (split at ; & && | || outside quotes), as word
    lists, without leading VAR=value assignments and without # comments."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    try:
        tokens = list(lexer)
    except ValueError:  # an unbalanced quote: not a command line
        return []
    out, words = [], []
    for token in [*tokens, ";"]:
        if token and set(token) <= set(";&|"):
            while words and re.match(r"^\w+=", words[0]):
                words = words[1:]
            if words:
                out.append(words)
            words = []
        else:
            words.append(token)
    return out


def _ccm_commands_in_comments(text: str) -> list[list[str]]:
    """Commands written out in comments (`#   ccm submit ... \\` continued on the next line)."""
    joined = re.sub(r"\\\n\s*#?", " ", text)
    found = []
    for line in joined.splitlines():
        m = re.match(r"^\s*#\s+(ccm\s.*)$", line)
        if m:
            found.extend(c for c in _shell_commands(m.group(1)) if c[0] == "ccm")
    return found


def _all_ccm_commands() -> list[tuple[str, list[str]]]:
    found = []
    for path in YAMLS:
        for doc in _docs(path):
            for value in _strings(doc):
                if not re.search(r"\s", value.strip()):
                    continue  # a bare name (cluster_name: ccm), not a command line
                for words in _shell_commands(value):
                    if words[0] == "ccm":
                        found.append((path.name, words))
        found += [
            (path.name + " (comment)", c) for c in _ccm_commands_in_comments(path.read_text())
        ]
    args, instructions = _dockerfile()
    for op, rest in instructions:
        if op == "RUN":
            found += [
                ("Dockerfile", w) for w in _shell_commands(_expand(rest, args)) if w[0] == "ccm"
            ]
        if op == "CMD":
            found.append(("Dockerfile CMD", yaml.safe_load(rest)))
    found += [
        ("Dockerfile (comment)", c) for c in _ccm_commands_in_comments(DOCKERFILE.read_text())
    ]
    found += [("README.md", c) for c in _ccm_commands_in_readme()]
    return found


def _ccm_commands_in_readme() -> list[list[str]]:
    """Commands in deploy/README.md's code: fenced blocks and `inline` spans, and the quoted
    command lines inside them (`ray exec CONFIG "cd ... && ccm run ..."`)."""
    text = (DEPLOY / "README.md").read_text()
    lines = re.findall(r"```sh\n(.*?)```", text, re.S)
    lines = [line for block in lines for line in block.splitlines()]
    # inline spans that are whole command lines (`ccm submit` alone in prose is a name)
    lines += [s for s in re.findall(r"`([^`\n]+)`", text) if " --" in s or "ccm run" in s]
    found = []
    for line in lines:
        for words in _shell_commands(line):
            if words[0] == "ccm":
                found.append(words)
            for word in words[1:]:
                if re.search(r"(^|\s)ccm\s", word):
                    found += [c for c in _shell_commands(word) if c[0] == "ccm"]
    return found


# -- the tests ------------------------------------------------------------------------------


def test_every_yaml_parses_and_the_expected_files_are_there():
    names = {p.name for p in YAMLS}
    assert {"cluster.yaml", "raycluster.yaml", "rayjob.yaml", "shared-storage.yaml"} <= names
    for path in YAMLS:
        assert _docs(path), f"{path.name} holds no document"


def test_the_base_image_is_rays_own_for_the_installed_ray_and_python():
    import ray

    args, instructions = _dockerfile()
    (base,) = [_expand(rest, args) for rest in _only(instructions, "FROM")]
    assert base == f"rayproject/ray:{ray.__version__}-{PYTHON_TAG}-gpu"
    assert args["RAY_VERSION"] == ray.__version__ == "2.60.0"
    assert _requirement("ray").specifier.contains(ray.__version__)
    # py311: the Python the project targets (requires-python, ruff's target).
    assert _pyproject()["project"]["requires-python"] == ">=3.11"
    assert _pyproject()["tool"]["ruff"]["target-version"] == PYTHON_TAG


def test_torch_is_pinned_as_the_makefile_pins_it_within_the_projects_range():
    args, _ = _dockerfile()
    makefile = (REPO / "Makefile").read_text()
    (pin,) = re.findall(r"pip install \S* ?torch==([\w.+]+)", makefile)
    assert args["TORCH_VERSION"] == pin
    assert _requirement("torch").specifier.contains(pin)


def test_the_dockerfile_copies_what_exists_and_the_dockerignore_keeps_it():
    _, instructions = _dockerfile()
    ignore = [
        line.strip()
        for line in (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = _only(instructions, "COPY")
    assert copies
    sources = []
    for rest in copies:
        words = [w for w in rest.split() if not w.startswith("--")]
        sources += words[:-1]
    for src in sources:
        assert (REPO / src).exists(), f"COPY {src}: not in the repository"
        hit = [p for p in ignore if fnmatch.fnmatch(src, p) or fnmatch.fnmatch(src, p + "/*")]
        assert not hit, f"COPY {src} is excluded by the dockerignore ({hit})"
    # pip install . needs the packages setuptools finds and the readme pyproject names.
    for pkg in _pyproject()["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert pkg.rstrip("*") in sources
    assert _pyproject()["project"]["readme"] in sources
    assert ".venv" in ignore and ".git" in ignore
    assert yaml.safe_load(_only(instructions, "CMD")[0]) == ["ccm", "--help"]


def test_the_image_tag_is_defined_once_and_every_manifest_names_it():
    import ray

    version = _pyproject()["project"]["version"]
    assert IMAGE.rsplit(":", 1)[1] == f"{version}-ray{ray.__version__}-{PYTHON_TAG}-gpu"
    named = []
    for path in YAMLS:
        for doc in _docs(path):
            named += [
                (path.name, k, v)
                for k, v in _walk(doc)
                if k in ("image", "head_image", "worker_image") and isinstance(v, str)
            ]
    assert {p for p, _, _ in named} >= {"cluster.yaml", "raycluster.yaml", "rayjob.yaml"}
    wrong = [(p, k, v) for p, k, v in named if v != IMAGE]
    assert not wrong, f"images other than deploy/IMAGE ({IMAGE}): {wrong}"
    assert (
        IMAGE in (DEPLOY / "README.md").read_text()
        or "deploy/IMAGE" in (DEPLOY / "README.md").read_text()
    )


def test_kuberay_manifests_ray_version_gpu_workers_and_token_auth():
    import ray

    cluster, job = _one("raycluster.yaml"), _one("rayjob.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    assert job["spec"]["rayClusterSpec"] == cluster["spec"], "rayjob.yaml's copy has drifted"
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    spec = cluster["spec"]
    assert spec["rayVersion"] == "2.60.0" == ray.__version__
    assert spec["authOptions"] == {"mode": "token"}
    head = spec["headGroupSpec"]
    groups = spec["workerGroupSpecs"]
    assert groups
    for group in [head, *groups]:
        assert all(isinstance(v, str) for v in group["rayStartParams"].values()), (
            "rayStartParams values must be strings"
        )
    head_res = head["template"]["spec"]["containers"][0]["resources"]
    assert "nvidia.com/gpu" not in head_res.get("limits", {})
    for group in groups:
        assert group["minReplicas"] >= 1, "a job checks the cluster's resources when it starts"
        assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
        res = group["template"]["spec"]["containers"][0]["resources"]
        assert int(res["limits"]["nvidia.com/gpu"]) == 1
        assert int(res["requests"]["nvidia.com/gpu"]) == 1


def test_every_ray_pod_mounts_the_shared_results_claim():
    claims = {d["metadata"]["name"]: d for d in _docs(DEPLOY / "shared-storage.yaml")}
    for name, claim in claims.items():
        assert claim["kind"] == "PersistentVolumeClaim"
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"], name
    spec = _one("raycluster.yaml")["spec"]
    for group in [spec["headGroupSpec"], *spec["workerGroupSpecs"]]:
        pod = group["template"]["spec"]
        volumes = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
        assert set(volumes.values()) <= set(claims)
        for container in pod["containers"]:
            mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
            assert RESULTS in mounts, f"{container['name']} does not mount {RESULTS}"


def test_the_cluster_launcher_config_passes_rays_own_validation():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = _one("cluster.yaml")
    validate_config(prepare_config(config))
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    assert workers and all(t["resources"] == {"CPU": 4, "GPU": 1} for t in workers)
    assert all(1 <= t["min_workers"] <= t["max_workers"] <= config["max_workers"] for t in workers)
    # Token auth on every node, with the token file synced to each.
    assert "-e RAY_AUTH_MODE=token" in config["docker"]["run_options"]
    for command in config["head_start_ray_commands"] + config["worker_start_ray_commands"]:
        if "ray start" in command:
            assert "RAY_AUTH_MODE=token" in command
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"
    # The shared results folder is mounted at the path the jobs write to.
    targets = [o.split(":")[1] for o in config["docker"]["run_options"] if o.startswith("-v ")]
    assert RESULTS in targets


def test_every_path_the_deploy_files_name_exists():
    config = _one("cluster.yaml")
    for remote, local in config["file_mounts"].items():
        if local.startswith("~"):
            continue  # on the machine that runs `ray up` (the token)
        assert (REPO / local).exists(), f"file_mounts source {local}"
        assert _repo_path(remote).exists(), f"file_mounts target {remote} maps to nothing"
    texts = [p.read_text() for p in [*YAMLS, DOCKERFILE, DEPLOY / "README.md"]]
    named = set()
    for text in texts:
        named |= set(re.findall(r"(?<![\w/])((?:deploy|examples|tests)/[\w./-]*\w)", text))
    named = {n for n in named if "*" not in n}
    assert "examples/arithmetic.toml" in named and "deploy/Dockerfile" in named
    missing = sorted(n for n in named if not (REPO / n).exists())
    assert not missing, f"named in deploy/ but not in the repository: {missing}"


def test_every_ccm_command_is_real_and_its_spec_loads():
    commands = _all_ccm_commands()
    subcommands = {c[1] for _, c in commands if len(c) > 1}
    assert {"run", "submit"} <= subcommands
    assert any(where == "rayjob.yaml" and c[1] == "run" for where, c in commands)
    parser = build_parser()
    for where, words in commands:
        try:
            args = parser.parse_args(words[1:])
        except SystemExit as exc:
            assert exc.code == 0 and "--help" in words, (
                f"{where}: `{shlex.join(words)}` is no ccm command"
            )
            continue
        if args.command in ("run", "submit"):
            spec = load_spec(_repo_path(args.spec))
            assert spec.name
            assert args.results == RESULTS, f"{where}: results must go to the shared {RESULTS}"
        if args.command == "run":
            assert args.address == "auto", f"{where}: on a cluster, join it (--address auto)"
        if args.command == "submit":
            assert args.address and args.address.startswith("http")
            # The job runs on the cluster's Python, not the submitting machine's interpreter.
            assert args.python == "python", f"{where}: give --python python"
            # `ccm submit` refuses an in-process spec: it would run in the job's driver alone.
            assert spec.execution.mode != "in-process", f"{where}: submits an in-process spec"
