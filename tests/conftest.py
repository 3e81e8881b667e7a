"""Test tiers: every test carries exactly one of the tier markers below, or collection fails
(tests/test_tiers.py holds the hook to that)."""

from __future__ import annotations

import os
from pathlib import Path

# Before torch or numba start their thread pools: on a shared 2-core machine OpenMP's
# spin-waiting made torch 10-20x slower; one thread per process, waiting passively.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")


import numpy as np
import pytest


def _has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " avx2" in line for line in f)
    except OSError:
        return False


# torch picks its CPU kernels by the vector extensions it finds, and its AVX-512 kernels round
# differently from the AVX2 ones; a network trained for hundreds of epochs amplifies that, so
# the golden demo tables repeat only on one kernel set. AVX2 is the one every x86-64 machine
# of the last decade has (the Makefile selects it too); elsewhere torch's default stays.
if _has_avx2():
    os.environ.setdefault("ATEN_CPU_CAPABILITY", "avx2")

TIERS = ("unit", "property", "integration", "golden", "gpu")
REPO = Path(__file__).resolve().parents[1]
# The authors' published graphs: the copy shipped with the examples, and the shared original.
BUNDLED_DATA = REPO / "examples" / "data" / "arithmetic_layer7_r256.npz"
SHARED_DATA = Path(
    os.environ.get(
        "CCM_SHARED_DATA", REPO.parent / "shared" / "data" / "arithmetic_layer7_r256.npz"
    )
)


def pytest_configure(config):
    # Under CI the property tests draw the same examples every run (a fixed seed derived from
    # each test), so a red CI names a failure anyone can rerun, never a draw that came once.
    # Elsewhere they keep exploring new examples.
    try:
        from hypothesis import settings

        settings.register_profile("ci", derandomize=True, print_blob=True)
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            settings.load_profile("ci")
    except ImportError:
        pass
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(1)


def tier_problems(items) -> list[str]:
    """One line per test without exactly one tier: a test with none runs in no tier's budget,
    one with two is counted (and selected with -m) twice."""
    problems = []
    for item in items:
        tiers = [t for t in TIERS if item.get_closest_marker(t)]
        if not tiers:
            problems.append(f"{item.nodeid}: no tier")
        elif len(tiers) > 1:
            problems.append(f"{item.nodeid}: {len(tiers)} tiers ({', '.join(tiers)}); keep one")
    return problems


def pytest_collection_modifyitems(config, items):
    problems = tier_problems(items)
    if problems:
        raise pytest.UsageError(
            "every test needs exactly one tier marker ("
            + ", ".join(TIERS)
            + "):\n  "
            + "\n  ".join(problems)
        )
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="gpu tier: no CUDA device on this machine")
        for item in items:
            if item.get_closest_marker("gpu"):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def authors_graphs():
    """The authors' pairwise IIA graphs (arithmetic, layer 7, rank 256) as PairwiseIIA."""
    from solver import PairwiseIIA

    return PairwiseIIA.load(BUNDLED_DATA)


def random_pairwise(rng: np.random.Generator, n_models: int, n: int, p_one: float = 0.6):
    """Symmetric weights in {0, .5, 1} with a zero diagonal, like the real graphs."""
    w = rng.choice(
        [0.0, 0.5, 1.0], size=(n_models, n, n), p=[(1 - p_one) / 2, (1 - p_one) / 2, p_one]
    )
    w = np.triu(w, 1)
    return w + w.transpose(0, 2, 1)


@pytest.fixture(scope="session")
def task_ids():
    """The arithmetic task, its local tokenizer and the token ids of all 1000 prompts."""
    from intervention.tasks import arithmetic
    from intervention.tokenizer import build_tokenizer, encode_fixed_length

    task = arithmetic()
    prompts = task.prompts()
    tokenizer = build_tokenizer(prompts)
    return task, tokenizer, encode_fixed_length(tokenizer, prompts)


@pytest.fixture(scope="session")
def random_net(task_ids):
    """A small untrained GPT-2 classifier for the task (3 blocks, 32 wide): oracle tests."""
    from intervention.network import TrainSettings, build_network

    task, tok, ids = task_ids
    settings = TrainSettings(n_layer=3, n_embd=32, n_head=4, seed=1)
    return build_network(settings, len(tok), ids.shape[1], len(task.classes), tok.pad_token_id)


@pytest.fixture(scope="session")
def small_network(tmp_path_factory):
    """The network of examples/arithmetic-small.toml (2 blocks × 64 on arithmetic, seed 0),
    trained once per session by the pipeline's own network stage: (spec, NetworkStage). Its
    folder is what jobs load through network.path; training it again per module cost minutes."""
    from service.pipeline import JobContext, build_task, network_stage, prepare_results
    from service.spec import load_spec

    spec = load_spec(REPO / "examples" / "arithmetic-small.toml")
    spec = spec.model_copy(update={"results": str(tmp_path_factory.mktemp("net"))})
    ctx = JobContext(spec, prepare_results(spec), log=lambda s: None)
    return spec, network_stage(ctx, build_task(spec)[0])
