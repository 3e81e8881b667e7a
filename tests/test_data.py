"""The data types validate on construction and round-trip through .npz."""

import io
import time
import zipfile

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
    with pytest.raises(IIADataError, match=r"junk\.npz is not a zip archive; expected a \.npz"):
        load_iia(tmp_path / "junk.npz")
    np.savez(tmp_path / "nomodels.npz", twice_w=np.zeros((1, 3, 3), dtype=np.uint8))
    with pytest.raises(IIADataError, match="no 'models'"):
        load_iia(tmp_path / "nomodels.npz")
    np.savez(tmp_path / "other.npz", foo=np.zeros(3), models=np.array(["a"]))
    with pytest.raises(IIADataError, match="needs 'weights'"):
        load_iia(tmp_path / "other.npz")


# ---------------------------------------------------------------------------------------
# hostile and mistaken files: refused from their headers, before any allocation
# ---------------------------------------------------------------------------------------


def _npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    buf = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue()


def _forged_npz(path, members: dict[str, bytes], compress: bool = False) -> None:
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", mode) as zf:
        for name, data in members.items():
            zf.writestr(name + ".npy", data)


def _models_npy(names) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.array(names))
    return buf.getvalue()


@pytest.mark.unit
def test_tiny_file_declaring_a_huge_array_is_refused_before_allocating(tmp_path):
    # 10^7 x 10^7 floats (800 TB) declared by a file of a few hundred bytes.
    path = tmp_path / "huge.npz"
    _forged_npz(path, {"iia": _npy_header((10**7, 10**7)), "models": _models_npy(["a"])})
    assert path.stat().st_size < 1000
    started = time.perf_counter()
    with pytest.raises(IIADataError, match=r"huge\.npz.*MAX_ELEMENTS = 2,147,483,648"):
        load_iia(path)
    assert time.perf_counter() - started < 1.0


@pytest.mark.unit
def test_zip_bomb_is_refused_without_decompressing(tmp_path):
    # A deflated member whose header declares 50,000 x 50,000 floats (20 GB) and whose
    # payload is a run of zeros: small on disk, refused from the header alone.
    path = tmp_path / "bomb.npz"
    payload = _npy_header((50_000, 50_000)) + bytes(4 * 2**20)
    _forged_npz(path, {"twice_w": payload, "models": _models_npy(["a"])}, compress=True)
    assert path.stat().st_size < 100_000
    with pytest.raises(IIADataError, match=r"bomb\.npz.*2,500,000,000 elements.*limit"):
        load_iia(path)


@pytest.mark.unit
def test_array_beyond_available_memory_is_refused(tmp_path):
    # Few elements, many bytes: 10^5 strings of 10^6 characters (400 GB).
    path = tmp_path / "wide.npz"
    _forged_npz(path, {"models": _npy_header((100_000,), "<U1000000")})
    with pytest.raises(IIADataError, match=r"wide\.npz.*bytes of memory available"):
        load_iia(path)


@pytest.mark.unit
def test_member_size_must_match_its_header(tmp_path):
    # The header says 1000 x 1000 floats (8 MB) but the member holds 1 kB.
    path = tmp_path / "short.npz"
    _forged_npz(
        path, {"iia": _npy_header((1000, 1000)) + bytes(1024), "models": _models_npy(["a"])}
    )
    with pytest.raises(IIADataError, match=r"short\.npz.*holds .* bytes uncompressed.*declares"):
        load_iia(path)
    # A header claiming fewer bytes than the member holds is refused too.
    long = tmp_path / "long.npz"
    _forged_npz(long, {"iia": _npy_header((2, 2)) + bytes(10_000), "models": _models_npy(["a"])})
    with pytest.raises(IIADataError, match=r"long\.npz.*declares"):
        load_iia(long)


@pytest.mark.unit
def test_plain_npy_is_refused_with_what_is_expected(tmp_path):
    path = tmp_path / "matrix.npy"
    np.save(path, np.random.default_rng(0).random((4, 2)))
    with pytest.raises(IIADataError, match=r"matrix\.npy is a plain \.npy array; expected a \.npz"):
        load_iia(path)
    with pytest.raises(IIADataError, match=r"matrix\.npy"):
        PerInputIIA.load(path)


@pytest.mark.unit
def test_object_arrays_and_bad_values_name_the_file(tmp_path):
    path = tmp_path / "objects.npz"
    _forged_npz(path, {"iia": _npy_header((2, 2), "|O"), "models": _models_npy(["a", "b"])})
    with pytest.raises(IIADataError, match=r"objects\.npz.*dtype object"):
        load_iia(path)
    bad = tmp_path / "range.npz"
    np.savez(bad, iia=np.full((3, 2), 2.0), models=np.array(["a", "b"]))
    with pytest.raises(IIADataError, match=r"range\.npz: per-input IIA must lie in \[0, 1\]"):
        load_iia(bad)


@pytest.mark.unit
def test_fortran_order_and_big_endian_arrays_load_exactly(tmp_path):
    a = np.asfortranarray(np.random.default_rng(1).random((5, 3)))
    path = tmp_path / "fortran.npz"
    np.savez_compressed(path, iia=a.astype(">f8"), models=np.array(["a", "b", "c"]))
    data = load_iia(path)
    np.testing.assert_array_equal(data.iia, a)
