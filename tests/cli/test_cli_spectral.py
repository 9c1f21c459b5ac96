"""``daskpml spectral`` and ``daskpml eigsh`` on points and graph files."""

from __future__ import annotations

import numpy as np
import scipy.io
import scipy.sparse as sp
from click.testing import CliRunner
from scipy.sparse import csgraph
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from daskpml.cli import cli
from daskpml.datasets import make_sbm
from daskpml.results import read_netcdf

LOCAL = ["--workers", "1", "--threads", "2"]


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _labels(path):
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:]]
    return [r[0] for r in rows], np.array([int(r[1]) for r in rows])


def test_spectral_points_and_graph(tmp_path):
    X, y = make_blobs(800, 4, centers=3, random_state=0)
    points, out = tmp_path / "points.npz", tmp_path / "labels.tsv"
    np.savez(points, X=X)
    result = run(*LOCAL, "spectral", str(points), "--clusters", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    _, labels = _labels(out)
    assert adjusted_rand_score(y, labels) > 0.99
    # a graph as an edge list with string node names
    A, truth = make_sbm(600, 3, in_degree=10, out_degree=1, random_state=0)
    coo = sp.triu(A.to_scipy()).tocoo()
    edges = tmp_path / "graph.tsv"
    edges.write_text("".join(f"n{i}\tn{j}\n" for i, j in zip(coo.row, coo.col)))
    result = run(*LOCAL, "spectral", str(edges), "--clusters", "3", "--method", "recursive", "--out", str(out))
    assert result.exit_code == 0, result.output
    names, labels = _labels(out)
    order = [int(name[1:]) for name in names]
    assert adjusted_rand_score(np.asarray(truth.compute())[order], labels) > 0.95


def test_eigsh_writes_netcdf(tmp_path):
    A, _ = make_sbm(500, 4, in_degree=8, out_degree=1, random_state=1)
    W = A.to_scipy()
    graph, out = tmp_path / "g.mtx", tmp_path / "eig.nc"
    scipy.io.mmwrite(str(graph), W)
    result = run(*LOCAL, "eigsh", str(graph), "--k", "5", "--laplacian", "sym", "--out", str(out))
    assert result.exit_code == 0, result.output
    ds = read_netcdf(out)
    ref = np.linalg.eigvalsh(csgraph.laplacian(W, normed=True).toarray())[:5]
    np.testing.assert_allclose(ds["eigenvalues"].values, ref, atol=1e-8)
    assert ds["eigenvectors"].shape == (500, 5) and ds.attrs["matvecs"] > 0


def test_errors(tmp_path):
    bad = tmp_path / "asym.mtx"
    scipy.io.mmwrite(str(bad), sp.random(30, 30, density=0.2, random_state=0))
    result = CliRunner().invoke(cli, [*LOCAL, "eigsh", str(bad), "--k", "3", "--out", str(tmp_path / "e.nc")])
    assert result.exit_code != 0 and "symmetrize" in result.output
