"""The data types validate on construction and round-trip through .npz."""

import numpy as np
import pytest
from conftest import random_pairwise

from solver import IIADataError, PairwiseIIA, PerInputIIA, load_iia


def _w(n=5, m=2, seed=0):
    return random_pairwise(np.random.default_rng(seed), m, n)


@pytest.mark.unit
def test_pairwise_round_trip_twice_w_and_float(tmp_path):
    data = PairwiseIIA(_w(), ("a", "b"), fallback="b")
    data.save(tmp_path / "halves.npz")
    assert "twice_w" in np.load(tmp_path / "halves.npz").files
    back = load_iia(tmp_path / "halves.npz")
    assert isinstance(back, PairwiseIIA) and back.models == ("a", "b") and back.fallback == "b"
    assert np.array_equal(back.weights, data.weights)
    w = _w() * 0.3  # not halves: stored as float weights
    PairwiseIIA(w, ("a", "b")).save(tmp_path / "float.npz")
    assert "weights" in np.load(tmp_path / "float.npz").files
    assert np.allclose(PairwiseIIA.load(tmp_path / "float.npz").weights, w)


@pytest.mark.unit
def test_per_input_round_trip_with_counts(tmp_path):
    a = np.random.default_rng(1).random((6, 3))
    counts = np.full((6, 3), 5)
    PerInputIIA(a, ("x", "y", "z"), counts, "z").save(tmp_path / "p.npz")
    back = load_iia(tmp_path / "p.npz")
    assert isinstance(back, PerInputIIA) and back.fallback == "z"
    assert np.allclose(back.iia, a) and np.array_equal(back.counts, counts)


@pytest.mark.unit
def test_diagonal_is_absent_and_row_mean_excludes_it():
    w = _w(n=4, m=1)
    w[0][np.diag_indices(4)] = 1.0  # the authors stored w(i, i) = 1
    data = PairwiseIIA(w, ("a",))
    assert np.all(np.diagonal(data.weights[0]) == 0)
    expected = (w[0].sum(axis=1) - 1.0) / 3
    assert np.allclose(data.to_per_input().iia[:, 0], expected)
    assert np.all(data.to_per_input().counts == 3)


@pytest.mark.unit
@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda w: w.__setitem__((0, 0, 1), np.nan), "NaN or infinite"),
        (lambda w: w.__setitem__((0, 1, 2), np.inf), "NaN or infinite"),
        (lambda w: w.__setitem__((0, 0, 1), 1.5), r"\[0, 1\]"),
        (lambda w: w.__setitem__((0, 0, 1), -0.5), r"\[0, 1\]"),
        (lambda w: w.__setitem__((1, 2, 3), 0.5 if w[1, 3, 2] != 0.5 else 0.0), "symmetric"),
    ],
)
def test_pairwise_rejects_bad_values(mutate, message):
    w = _w()
    mutate(w)
    with pytest.raises(IIADataError, match=message):
        PairwiseIIA(w, ("a", "b"))


@pytest.mark.unit
def test_shape_and_name_errors():
    with pytest.raises(IIADataError, match="shape"):
        PairwiseIIA(np.zeros((2, 4, 5)), ("a", "b"))
    with pytest.raises(IIADataError, match="at least 2 inputs"):
        PairwiseIIA(np.zeros((2, 1, 1)), ("a", "b"))
    with pytest.raises(IIADataError, match="3 model names"):
        PairwiseIIA(_w(), ("a", "b", "c"))
    with pytest.raises(IIADataError, match="duplicate"):
        PairwiseIIA(_w(), ("a", "a"))
    with pytest.raises(IIADataError, match="empty"):
        PairwiseIIA(_w(), ("a", " "))
    with pytest.raises(IIADataError, match="at least 2 inputs"):
        PerInputIIA(np.zeros((1, 2)), ("a", "b"))
    with pytest.raises(IIADataError, match="counts"):
        PerInputIIA(np.zeros((3, 2)), ("a", "b"), counts=np.zeros((3, 3), dtype=int))


@pytest.mark.unit
def test_candidates_and_fallback_selection():
    data = PairwiseIIA(_w(m=3), ("a", "b", "c"), fallback="c")
    assert data.candidates().models == ("a", "b")
    assert data.candidates(["b"]).models == ("b",)
    with pytest.raises(IIADataError, match="unknown candidate"):
        data.candidates(["nope"])
    with pytest.raises(IIADataError, match="fallback and cannot also be a candidate"):
        data.candidates(["a", "c"])
    with pytest.raises(IIADataError, match="unknown fallback"):
        data.with_fallback("zzz")
    assert data.with_fallback("a").candidates().models == ("b", "c")


@pytest.mark.unit
def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(IIADataError, match="no such file"):
        load_iia(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(IIADataError, match="not a readable"):
        load_iia(tmp_path / "junk.npz")
    np.savez(tmp_path / "nomodels.npz", twice_w=np.zeros((1, 3, 3), dtype=np.uint8))
    with pytest.raises(IIADataError, match="no 'models'"):
        load_iia(tmp_path / "nomodels.npz")
    np.savez(tmp_path / "other.npz", foo=np.zeros(3), models=np.array(["a"]))
    with pytest.raises(IIADataError, match="needs 'weights'"):
        load_iia(tmp_path / "other.npz")
