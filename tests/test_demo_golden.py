"""The demo table that README.md and bench/RESULTS.md show is what a fresh run of the demo job
prints: the job is rerun here from nothing (in-process, into a temporary folder) and its table
compared with the documents' blocks, which only ``bench/demo_table.py --update`` writes."""

import importlib.util
from pathlib import Path

import pytest

from service.pipeline import run
from service.spec import load_spec

REPO = Path(__file__).resolve().parents[1]


def _demo_table():
    spec = importlib.util.spec_from_file_location("demo_table", REPO / "bench" / "demo_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.golden
def test_fresh_demo_reproduces_the_documented_table(tmp_path):
    demo_table = _demo_table()
    spec = load_spec(REPO / "examples" / "arithmetic.toml")
    # In-process rather than on the embedded Ray: the service tests show both give the same
    # IIA, and this keeps the run to one process.
    spec = spec.model_copy(
        update={
            "results": str(tmp_path),
            "execution": spec.execution.model_copy(update={"mode": "in-process"}),
        }
    )
    report = run(spec, log=lambda line: None)
    table = demo_table.render(report)
    for doc in demo_table.DOCUMENTS:
        shown = demo_table.block(doc.read_text(), spec.name)
        assert shown is not None, f"{doc.name} has no <!-- demo:{spec.name} --> block"
        assert shown == table, (
            f"{doc.name}'s demo table is stale: make demo-arithmetic, then "
            f"python bench/demo_table.py results/{spec.name}/report.json --update"
        )


@pytest.mark.unit
def test_torch_runs_the_kernels_the_tables_were_made_with():
    """conftest selects torch's AVX2 kernels where the CPU has AVX2 (the golden tables were
    made with them); this fails if something imported torch before conftest could."""
    import os

    import torch
    from conftest import _has_avx2

    if not _has_avx2():
        pytest.skip("no AVX2 on this CPU: torch keeps its default kernels")
    wanted = os.environ["ATEN_CPU_CAPABILITY"].upper()
    assert torch.backends.cpu.get_cpu_capability() == wanted
