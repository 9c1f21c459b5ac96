from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
import xarray as xr

from daskpml._files import DataFormatError
from daskpml.datasets import (load_digits, load_graph, load_karate, load_matrix, load_planetoid, load_svmlight,
                              save_graph, save_npz, write_labels, write_netcdf)
from daskpml.results import read_netcdf

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


@pytest.fixture
def graph():
    M = sp.random(30, 30, density=0.1, format="csr", random_state=0)
    return (M + M.T).tocsr()


@pytest.mark.parametrize("suffix", [".npz", ".mtx", ".tsv", ".abc"])
def test_graph_roundtrip(tmp_path, graph, suffix):
    path = tmp_path / f"g{suffix}"
    save_graph(path, graph)
    A, nodes = load_graph(path, chunks=7)
    M = A.to_scipy()
    if suffix in (".tsv", ".abc"):  # edge lists renumber nodes by first appearance
        order = np.asarray(nodes).astype(int)
        np.testing.assert_allclose(M.toarray(), graph[order][:, order].toarray())
    else:
        np.testing.assert_allclose(M.toarray(), graph.toarray())
        assert list(nodes) == list(range(30))


def test_edge_list_with_names_weights_comments(tmp_path):
    path = tmp_path / "g.abc"
    path.write_text("# a comment\nalice\tbob\t2.5\nbob\tcarol\t1\n\nalice\tbob\t0.5\n")
    A, nodes = load_graph(path)
    assert list(nodes) == ["alice", "bob", "carol"]
    expected = np.array([[0, 3.0, 0], [3.0, 0, 1], [0, 1, 0]])  # repeated edges add up, then symmetrized
    np.testing.assert_allclose(A.to_scipy().toarray(), expected)
    directed = load_graph(path, symmetrize=False).adjacency.to_scipy().toarray()
    assert directed[1, 0] == 0 and directed[0, 1] == 3
    ordered = load_graph(path, nodes=["carol", "bob", "alice"])
    assert ordered.adjacency.to_scipy()[2, 1] == 3
    with pytest.raises(ValueError, match="not in the node list.*'carol'"):
        load_graph(path, nodes=["alice", "bob"])


def test_missing_unreadable_and_mislabelled_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz: no such file. Check the path"):
        load_graph(tmp_path / "nope.npz")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        load_graph(tmp_path)
    fake = tmp_path / "graph.npz"
    fake.write_text("1 2\n2 3\n")
    with pytest.raises(DataFormatError, match=r"graph.npz is named like a .npz archive but its contents are text starting with '1 2'"):
        load_graph(fake)
    mtx = tmp_path / "m.mtx"
    np.save(tmp_path / "x.npy", np.ones(3))
    os.replace(tmp_path / "x.npy", mtx)
    with pytest.raises(DataFormatError, match="named like a Matrix Market.*NumPy .npy array"):
        load_graph(mtx)
    edges = tmp_path / "e.tsv"
    save_npz(tmp_path / "s.npz", sp.eye(3))
    os.replace(tmp_path / "s.npz", edges)
    with pytest.raises(DataFormatError, match="named like a text edge list.*zip archive"):
        load_graph(edges)
    bad_weight = tmp_path / "w.tsv"
    bad_weight.write_text("a b 1\nb c nan\n")
    with pytest.raises(DataFormatError, match="weight 'nan' on data line 2 is not a finite number"):
        load_graph(bad_weight)
    if os.geteuid() != 0:  # root reads everything
        locked = tmp_path / "locked.tsv"
        locked.write_text("a b\n")
        locked.chmod(0)
        with pytest.raises(PermissionError, match="cannot be read"):
            load_graph(locked)


def test_non_square_graph_refused(tmp_path):
    scipy.io.mmwrite(tmp_path / "r.mtx", sp.random(3, 4, density=0.5, random_state=0))
    with pytest.raises(ValueError, match="3 x 4 matrix.*square adjacency"):
        load_graph(tmp_path / "r.mtx")


def test_load_matrix_formats(tmp_path):
    D = np.arange(12.0).reshape(4, 3)
    np.save(tmp_path / "d.npy", D)
    np.testing.assert_array_equal(load_matrix(tmp_path / "d.npy").compute(), D)
    np.savetxt(tmp_path / "d.csv", D, delimiter=",")
    np.testing.assert_array_equal(load_matrix(tmp_path / "d.csv").compute(), D)
    S = sp.random(10, 6, density=0.3, format="csr", random_state=1)
    save_npz(tmp_path / "s.npz", S)
    np.testing.assert_array_equal(load_matrix(tmp_path / "s.npz").to_scipy().toarray(), S.toarray())
    scipy.io.mmwrite(tmp_path / "s.mtx", S)
    np.testing.assert_allclose(load_matrix(tmp_path / "s.mtx").to_scipy().toarray(), S.toarray())
    np.savez(tmp_path / "two.npz", a=D, b=D)
    with pytest.raises(DataFormatError, match="several arrays"):
        load_matrix(tmp_path / "two.npz")


def test_svmlight_plain_and_gz(tmp_path):
    from sklearn.datasets import dump_svmlight_file

    X = sp.random(20, 7, density=0.3, format="csr", random_state=2)
    y = np.arange(20) % 2
    dump_svmlight_file(X, y, str(tmp_path / "d.svm"))
    with open(tmp_path / "d.svm", "rb") as src, gzip.open(tmp_path / "d.svm.gz", "wb") as dst:
        dst.write(src.read())
    for name in ("d.svm", "d.svm.gz"):
        Xd, yd = load_svmlight(tmp_path / name, n_features=7, chunks=6)
        np.testing.assert_allclose(Xd.to_scipy().toarray(), X.toarray())
        np.testing.assert_array_equal(yd.compute(), y)
    (tmp_path / "fake.svm.gz").write_text("1 1:2\n")
    with pytest.raises(DataFormatError, match="named like a gzip"):
        load_svmlight(tmp_path / "fake.svm.gz")
    (tmp_path / "junk.svm").write_text("this is not svmlight\n")
    with pytest.raises(DataFormatError, match="not valid svmlight"):
        load_svmlight(tmp_path / "junk.svm")


@pytest.mark.skipif(not (SHARED / "a9a.svm.gz").exists(), reason="shared/data/a9a.svm.gz is absent")
def test_a9a_from_shared_data():
    X, y = load_svmlight(SHARED / "a9a.svm.gz", n_features=123)
    assert X.shape == (48842, 123) and set(np.unique(y.compute())) == {-1.0, 1.0}


@pytest.mark.skipif(not (SHARED / "cora.npz").exists(), reason="shared/data/cora.npz is absent")
def test_planetoid_cora():
    data = load_planetoid(SHARED / "cora.npz")
    assert data.adjacency.shape == (2708, 2708) and data.adjacency.nnz == 10556
    assert data.adjacency.is_symmetric() and data.features.shape == (2708, 1433)
    assert (len(data.idx_train), len(data.idx_val), len(data.idx_test)) == (140, 500, 1000)
    assert data.labels.max() == 6


def test_planetoid_layout_is_checked(tmp_path):
    np.savez(tmp_path / "p.npz", labels=np.zeros(3))
    with pytest.raises(DataFormatError, match="not in the Planetoid layout.*adj_data"):
        load_planetoid(tmp_path / "p.npz")


def test_karate_and_digits():
    A, clubs = load_karate()
    assert A.shape == (34, 34) and A.nnz == 156 and A.is_symmetric() and np.bincount(clubs).tolist() == [17, 17]
    X, y = load_digits(chunks=500)
    assert X.shape == (1797, 64) and X.numblocks[0] == 4 and int(y.max().compute()) == 9


def test_writers(tmp_path):
    write_labels(tmp_path / "l.tsv", np.array([2, 0, 1]), nodes=["a", "b", "c"])
    assert (tmp_path / "l.tsv").read_text() == "node\tlabel\na\t2\nb\t0\nc\t1\n"
    write_labels(tmp_path / "x.tsv", xr.DataArray([5, 6], dims="node", coords={"node": ["u", "v"]}))
    assert (tmp_path / "x.tsv").read_text().splitlines()[2] == "v\t6"
    write_netcdf(xr.Dataset({"a": ("iteration", [1.0, 2.0])}), tmp_path / "r.nc")
    assert read_netcdf(tmp_path / "r.nc")["a"].values.tolist() == [1.0, 2.0]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_npz(tmp_path / "no" / "dir.npz", sp.eye(2))
    assert not any(p.name.startswith("r.tmp") for p in tmp_path.iterdir())


# -- files read by the workers themselves (so that dask can read a lost block again) ------------

@pytest.fixture
def workers_read_everything():
    import dask

    with dask.config.set({"daskpml.datasets.worker-read-bytes": 1}):
        yield


def _keys(collection):
    return {k[0] if isinstance(k, tuple) else k for k in dict(collection.__dask_graph__())}


def test_npy_and_npz_members_are_read_by_the_workers(client, tmp_path, workers_read_everything):
    from daskpml.datasets import read_array

    rng = np.random.default_rng(0)
    A = rng.standard_normal((1003, 7)).astype(np.float32)
    np.save(tmp_path / "a.npy", A)
    np.savez(tmp_path / "xy.npz", X=A, y=np.arange(1003.0))
    np.savez_compressed(tmp_path / "c.npz", X=A)
    M = load_matrix(tmp_path / "a.npy")
    assert all(k.startswith("read-npy-") for k in _keys(M)) and M.dtype == np.float32
    np.testing.assert_array_equal(M.compute(), A)
    for path in ("xy.npz", "c.npz"):
        X = read_array(tmp_path / path, "X")
        np.testing.assert_array_equal(X.compute(), A)
    y = read_array(tmp_path / "xy.npz", "y", like=X)
    assert y.chunks[0] == X.chunks[0] and np.array_equal(y.compute(), np.arange(1003.0))
    with open(tmp_path / "a.npy", "r+b") as f:                # cut off the last rows
        f.truncate(os.path.getsize(tmp_path / "a.npy") - 50)
    with pytest.raises(DataFormatError, match="damaged .npy array"):
        load_matrix(tmp_path / "a.npy")


def test_svmlight_and_csv_are_parsed_by_the_workers_in_byte_ranges(client, tmp_path, workers_read_everything):
    from sklearn.datasets import dump_svmlight_file

    from daskpml.datasets import load_csv

    rng = np.random.default_rng(1)
    X = np.round(rng.standard_normal((997, 6)) * (rng.random((997, 6)) < 0.4), 3)
    y = rng.integers(0, 3, 997).astype(float)
    for zero_based in (False, True):
        dump_svmlight_file(X, y, str(tmp_path / "d.svm"), zero_based=zero_based, comment="a comment line")
        Xd, yd = load_svmlight(tmp_path / "d.svm")
        assert any(k.startswith("read-svmlight-") for k in _keys(Xd.blocks))
        np.testing.assert_allclose(Xd.to_scipy().toarray(), X)
        np.testing.assert_array_equal(yd.compute(), y)
    with open(tmp_path / "d.csv", "w") as f:
        f.write("a,b,c,d,e,f,label\n")
        np.savetxt(f, np.column_stack([X, y]), delimiter=",", fmt="%.3f")
    Xc, yc = load_csv(tmp_path / "d.csv", target="label")
    assert any(k.startswith("read-csv-") for k in _keys(Xc)) and Xc.shape == (997, 6)
    np.testing.assert_allclose(Xc.compute(), X)
    np.testing.assert_array_equal(yc.compute(), y)
    Xc, yc = load_csv(tmp_path / "d.csv", target=0)
    np.testing.assert_allclose(yc.compute(), X[:, 0])


def test_small_files_and_unseen_files_are_read_here(client, tmp_path, monkeypatch):
    from daskpml.datasets import _chunked

    np.save(tmp_path / "a.npy", np.ones((10, 3)))
    assert not any(k.startswith("read-npy-") for k in _keys(load_matrix(tmp_path / "a.npy")))
    monkeypatch.setattr(_chunked, "workers_see", lambda path: False)
    import dask

    with dask.config.set({"daskpml.datasets.worker-read-bytes": 1}):
        assert not any(k.startswith("read-npy-") for k in _keys(load_matrix(tmp_path / "a.npy")))
