"""``daskpml svm`` and ``daskpml lasso`` against scikit-learn."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner
from sklearn.datasets import dump_svmlight_file, make_classification, make_regression
from sklearn.linear_model import Lasso as SkLasso
from sklearn.svm import SVC

from daskpml.cli import cli
from daskpml.results import read_netcdf

LOCAL = ["--workers", "1", "--threads", "2"]


def test_svm_command(tmp_path):
    X, y = make_classification(500, 5, random_state=0)
    dump_svmlight_file(X[:350], y[:350], str(tmp_path / "tr.svm"))
    dump_svmlight_file(X[350:], y[350:], str(tmp_path / "te.svm"))
    out, pred = tmp_path / "svm.nc", tmp_path / "pred.txt"
    result = CliRunner().invoke(cli, [*LOCAL, "svm", str(tmp_path / "tr.svm"), "--test", str(tmp_path / "te.svm"),
                                      "--partitions", "2", "--passes", "10", "--predictions", str(pred),
                                      "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    ref = SVC().fit(X[:350], y[:350])
    assert f"test accuracy {ref.score(X[350:], y[350:]):.4f}" in result.output
    ds = read_netcdf(out)
    assert sorted(ds.support_index.values) == sorted(ref.support_)
    assert np.loadtxt(pred).shape == (150,)
    bad = CliRunner().invoke(cli, [*LOCAL, "svm", str(tmp_path / "tr.svm"), "--gamma", "wide", "--out", str(out)])
    assert bad.exit_code != 0 and "--gamma" in bad.output


def test_lasso_command_and_predict(tmp_path):
    X, y = make_regression(400, 30, n_informative=5, noise=1.0, random_state=0)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    out = tmp_path / "lasso.nc"
    result = CliRunner().invoke(cli, [*LOCAL, "lasso", str(tmp_path / "d.npz"), "--alpha", "0.5", "--tol", "1e-10",
                                      "--quiet", "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Lasso (shotgun, P = " in result.output
    ref = SkLasso(alpha=0.5, tol=1e-10).fit(X, y)
    np.testing.assert_allclose(read_netcdf(out).coef.values[0], ref.coef_, atol=1e-6)
    result = CliRunner().invoke(cli, ["predict", str(out), str(tmp_path / "d.npz"), "--out", str(tmp_path / "p.txt")])
    assert result.exit_code == 0 and f"R^2 {ref.score(X, y):.4f}" in result.output
    bad = CliRunner().invoke(cli, [*LOCAL, "lasso", str(tmp_path / "d.npz"), "-P", "zero", "--out", str(out)])
    assert bad.exit_code != 0 and "--parallel" in bad.output
