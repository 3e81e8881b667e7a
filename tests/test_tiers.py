"""The collection hook of tests/conftest.py, run on real test files by pytest's own pytester:
a test with no tier, or with two, stops the run before any test runs."""

from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CONFTEST = Path(__file__).resolve().parent / "conftest.py"
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


@pytest.fixture
def project(pytester):
    """A scratch project with this repository's markers and tier hook."""
    pytester.makepyprojecttoml(PYPROJECT.read_text())
    pytester.makeconftest(
        "import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('tiers', {str(CONFTEST)!r})\n"
        "tiers = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(tiers)\n"
        "pytest_collection_modifyitems = tiers.pytest_collection_modifyitems\n"
    )
    return pytester


def _run(project, source: str):
    project.makepyfile(test_sample=source)
    return project.runpytest_inprocess("-q", "-p", "no:cacheprovider")


@pytest.mark.integration
def test_one_tier_each_runs(project):
    result = _run(
        project,
        "import pytest\n"
        "@pytest.mark.unit\ndef test_a(): pass\n"
        "@pytest.mark.golden\nclass TestB:\n    def test_b(self): pass\n",
    )
    result.assert_outcomes(passed=2)


@pytest.mark.integration
def test_a_test_without_a_tier_stops_collection(project):
    result = _run(
        project, "import pytest\n@pytest.mark.unit\ndef test_a(): pass\ndef test_b(): pass\n"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*exactly one tier marker*", "*test_sample.py::test_b: no tier"])
    result.assert_outcomes()  # nothing ran, not even test_a


@pytest.mark.integration
def test_a_test_with_two_tiers_stops_collection(project):
    result = _run(
        project,
        "import pytest\n"
        "@pytest.mark.unit\n@pytest.mark.integration\ndef test_a(): pass\n"
        "@pytest.mark.gpu\nclass TestB:\n    @pytest.mark.unit\n    def test_b(self): pass\n",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*test_sample.py::test_a: 2 tiers (unit, integration); keep one",
            "*test_sample.py::TestB::test_b: 2 tiers (unit, gpu); keep one",
        ]
    )
    result.assert_outcomes()
