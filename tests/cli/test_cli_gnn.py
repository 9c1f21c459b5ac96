"""``daskpml gnn`` on an .npz file: predictions for every node, history, input errors."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from click.testing import CliRunner

from daskpml.cli import cli
from daskpml.datasets import make_sbm
from daskpml.results import read_netcdf

LOCAL = ["--workers", "2", "--threads", "1"]


def write_data(path, *, overlap=False):
    A, y = make_sbm(200, 2, in_degree=6, out_degree=1, shuffle=True, random_state=0)
    A, y = sp.csr_matrix(A.compute()), np.asarray(y.compute()).astype(np.int64)
    rng = np.random.default_rng(0)
    X = (rng.random((200, 10)) < 0.3) * 1.0
    X[np.arange(200), y] = 3.0
    X = sp.csr_matrix(X)
    order = rng.permutation(200)
    test = order[100:]
    if overlap:
        test = np.append(test, order[0])
    np.savez(path, adj_data=A.data, adj_indices=A.indices, adj_indptr=A.indptr, adj_shape=A.shape,
             x_data=X.data, x_indices=X.indices, x_indptr=X.indptr, x_shape=X.shape, labels=y,
             idx_train=order[:40], idx_val=order[40:100], idx_test=test)
    return y, test


def test_gnn_command_predicts_every_node(tmp_path):
    data, out, hist = tmp_path / "d.npz", tmp_path / "pred.tsv", tmp_path / "h.nc"
    y, test = write_data(data)
    result = CliRunner().invoke(cli, [*LOCAL, "gnn", str(data), "--model", "sage", "--parts", "2", "--epochs", "60",
                                      "--row-normalize", "--out", str(out), "--history", str(hist)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "sage on 200 nodes, 2 partition(s)" in result.output and "test" in result.output
    lines = out.read_text().splitlines()
    assert lines[0] == "node\tpredicted\tprobability" and len(lines) == 201
    pred = np.array([int(line.split("\t")[1]) for line in lines[1:]])
    assert (pred[test] == y[test]).mean() > 0.9
    assert read_netcdf(hist).sizes["iteration"] == 60


def test_gnn_command_refuses_bad_files(tmp_path):
    data, out = tmp_path / "d.npz", tmp_path / "pred.tsv"
    write_data(data, overlap=True)
    result = CliRunner().invoke(cli, [*LOCAL, "gnn", str(data), "--epochs", "2", "--out", str(out)])
    assert result.exit_code != 0 and "idx_train and idx_test overlap" in result.output
    np.savez(tmp_path / "bad.npz", labels=np.zeros(3))
    result = CliRunner().invoke(cli, [*LOCAL, "gnn", str(tmp_path / "bad.npz"), "--out", str(out)])
    assert result.exit_code != 0 and "lacks graph" in result.output and "idx_train" in result.output


def test_gnn_help_describes_the_npz_layout():
    from click.testing import CliRunner

    from daskpml.cli import cli

    out = CliRunner().invoke(cli, ["gnn", "--help"]).output
    for key in ("adj_data", "adj_indices", "adj_indptr", "adj_shape", "x_data", "labels", "idx_train", "idx_val"):
        assert key in out
