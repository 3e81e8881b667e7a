"""`ccm solve`: the output contract, the plot, and errors that name the fix."""

import json

import numpy as np
import pytest
from conftest import BUNDLED_DATA, random_pairwise

from service.cli import main
from solver import PairwiseIIA


@pytest.fixture
def small_file(tmp_path):
    path = tmp_path / "small.npz"
    w = random_pairwise(np.random.default_rng(7), 3, 12, p_one=0.7)
    PairwiseIIA(w, ("a", "b", "fb"), fallback="fb").save(path)
    return path


@pytest.mark.integration
def test_solve_greedy_writes_the_json_contract_and_plot(tmp_path, capsys):
    out, png = tmp_path / "out.json", tmp_path / "front.png"
    code = main(
        [
            "solve",
            str(BUNDLED_DATA),
            "--method",
            "greedy",
            "--floors",
            "0.9,1.0",
            "--json",
            str(out),
            "--plot",
            str(png),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "floor" in printed and "(X+Y)+Z 815" in printed
    doc = json.loads(out.read_text())
    assert doc["semantics"] == "pairwise" and doc["floor_scope"] == "per-model"
    assert doc["fallback"] == "(X+Y+Z)" and "(X+Y+Z)" not in doc["models"]
    assert [r["floor"] for r in doc["results"]] == [1.0, 0.9]
    assert [r["strength"] for r in doc["results"]] == [387, 903]
    first = doc["results"][1]
    assert len(first["assignment"]) == 1000
    assert sum(x is not None for x in first["assignment"]) == first["strength"]
    assert set(first["certificate"]) >= {
        "method",
        "solver",
        "status",
        "objective",
        "bound",
        "gap",
        "seconds",
    }
    assert doc["complete"] is True and set(doc["singles"]) == set(doc["models"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.integration
def test_candidates_and_fallback_flags(small_file, tmp_path):
    out = tmp_path / "o.json"
    assert (
        main(
            [
                "solve",
                str(small_file),
                "--method",
                "greedy",
                "--floors",
                "0.8",
                "--candidates",
                "a",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["models"] == ["a"]
    assert (
        main(
            [
                "solve",
                str(small_file),
                "--method",
                "greedy",
                "--floors",
                "0.8",
                "--fallback",
                "a",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    doc = json.loads(out.read_text())
    assert doc["models"] == ["b", "fb"] and doc["fallback"] == "a"


@pytest.mark.integration
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--floors", "1.5"], r"outside \(0, 1\]"),
        (["--floors", "0.9,x"], "comma-separated numbers"),
        (["--candidates", "nope"], "unknown candidate"),
        (["--candidates", "a,fb"], "fallback and cannot also be a candidate"),
        (["--fallback", "nope"], "unknown fallback"),
        (["--method", "ilp", "--solver", "nosuch"], "unknown solver 'nosuch'"),
        (["--json", "/nonexistent-dir/x.json"], "does not exist"),
        (["--semantics", "pairwise", "--max-models", "1"], "per-input semantics only"),
        (["--cells-per-model", "0"], "cells_per_model must be a whole number of at least 1"),
        (["--cells-per-model", "2", "--scope", "global"], "needs scope='per-model'"),
    ],
)
def test_bad_requests_exit_2_with_a_named_problem(small_file, capsys, extra, message):
    args = ["solve", str(small_file), "--method", "greedy", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "error:" in err
    assert __import__("re").search(message, err), err


@pytest.mark.integration
def test_bad_file_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    w = np.zeros((1, 3, 3))
    w[0, 0, 1] = np.nan
    np.savez(bad, weights=w, models=np.array(["a"]))
    assert main(["solve", str(bad), "--method", "greedy"]) == 2
    assert "NaN" in capsys.readouterr().err


@pytest.mark.integration
def test_solve_budget_repeats_exactly_under_any_time_limit(tmp_path):
    # The search stops at its move budget, not at the clock: two very different time limits
    # (both above what the budget needs) give the same partition, and the certificate says so.
    docs = []
    for limit in ("30", "300"):
        out = tmp_path / f"out{limit}.json"
        args = ["solve", str(BUNDLED_DATA), "--candidates", "(X+Y)+Z,X+(Y+Z)"]
        args += ["--floors", "0.95", "--budget", "300000", "--time-limit", limit]
        assert main([*args, "--seed", "3", "--json", str(out)]) == 0
        docs.append(json.loads(out.read_text())["results"][0])
    assert docs[0]["assignment"] == docs[1]["assignment"]
    for doc in docs:
        assert doc["certificate"]["budget"] == 300000 and doc["certificate"]["capped"] is False
    assert [d["certificate"]["time_limit"] for d in docs] == [30.0, 300.0]


@pytest.mark.unit
def test_solve_refuses_a_budget_below_one(small_file, capsys):
    code = main(["solve", str(small_file), "--budget", "0"])
    assert code != 0
    assert "budget" in capsys.readouterr().err


@pytest.mark.integration
def test_cells_per_model_in_the_json_and_the_table(tmp_path, capsys):
    # Model "a" is faithful on two interleaved regions and fails across them.
    region = np.arange(10) % 2
    a = (region[:, None] == region[None, :]).astype(float)
    w = np.stack([a, np.full((10, 10), 0.3)])
    for m in range(2):
        np.fill_diagonal(w[m], 0.0)
    path = tmp_path / "two.npz"
    PairwiseIIA(w, ("a", "b")).save(path)
    out = tmp_path / "two.json"
    args = ["solve", str(path), "--floors", "0.9", "--cells-per-model", "2", "--json", str(out)]
    assert main(args) == 0
    assert "a 5+5 (1.000)" in capsys.readouterr().out
    point = json.loads(out.read_text())["results"][0]
    assert point["strength"] == 10 and point["cell"] == region.tolist()
    assert point["cells"] == {"a": [{"size": 5, "iia": 1.0}, {"size": 5, "iia": 1.0}]}
