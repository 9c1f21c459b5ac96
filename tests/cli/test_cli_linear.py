"""``daskpml train`` / ``predict`` on svmlight, npz and CSV files, and the demo section."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.datasets import dump_svmlight_file
from sklearn.linear_model import LogisticRegression, Ridge

from daskpml.cli import cli
from daskpml.results import read_netcdf

LOCAL = ["--workers", "1", "--threads", "2"]


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def _data(n=600, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (X @ np.arange(1.0, d + 1) + rng.logistic(size=n) > 0).astype(int)
    return X, y


def test_train_and_predict_svmlight(tmp_path):
    X, y = _data()
    data, model = tmp_path / "train.svm", tmp_path / "model.nc"
    dump_svmlight_file(X, 2 * y - 1, str(data))
    result = run(*LOCAL, "train", str(data), "--model", "logistic", "--solver", "lbfgs", "--C", "1",
                 "--tol", "1e-10", "--out", str(model))
    assert result.exit_code == 0, result.output
    assert "LogisticRegression (lbfgs)" in result.output and "training accuracy" in result.output
    ds = read_netcdf(model)
    ref = LogisticRegression(C=1.0, tol=1e-12, max_iter=10_000).fit(X, 2 * y - 1)
    np.testing.assert_allclose(ds["coef"].values, ref.coef_, rtol=1e-4, atol=1e-6)
    assert "history_objective" in ds and ds.attrs["solver"] == "lbfgs"
    preds = tmp_path / "pred.txt"
    result = run(*LOCAL, "predict", str(model), str(data), "--out", str(preds))
    assert result.exit_code == 0, result.output
    got = np.loadtxt(preds)
    np.testing.assert_array_equal(got, ref.predict(X))
    assert f"accuracy {ref.score(X, 2 * y - 1):.4f}" in result.output


def test_train_ridge_from_csv_and_npz(tmp_path):
    X, _ = _data(seed=1)
    y = X @ [1.0, -2.0, 0.5, 3.0] + 1.0
    csv = tmp_path / "d.csv"
    np.savetxt(csv, np.c_[X, y], delimiter=",", header="a,b,c,d,target", comments="")
    model = tmp_path / "ridge.nc"
    result = run(*LOCAL, "train", str(csv), "--model", "ridge", "--alpha", "10", "--target", "target",
                 "--tol", "1e-10", "--out", str(model))
    assert result.exit_code == 0, result.output
    ref = Ridge(alpha=10.0).fit(X, y)
    np.testing.assert_allclose(read_netcdf(model)["coef"].values[0], ref.coef_, rtol=1e-5)
    npz = tmp_path / "d.npz"
    np.savez(npz, X=X, y=y)
    result = run(*LOCAL, "predict", str(model), str(npz))
    assert result.exit_code == 0
    assert "R^2 " in result.output


def test_train_reports_bad_input(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, features=np.ones((3, 2)))
    result = CliRunner().invoke(cli, [*LOCAL, "train", str(bad), "--out", str(tmp_path / "m.nc")])
    assert result.exit_code != 0 and "must hold arrays named 'X' and 'y'" in result.output
    X, y = _data(n=50)
    one = tmp_path / "one.npz"
    np.savez(one, X=X, y=np.zeros(50))
    result = CliRunner().invoke(cli, [*LOCAL, "train", str(one), "--out", str(tmp_path / "m.nc")])
    assert result.exit_code != 0 and "only one class" in result.output
    not_model = tmp_path / "x.nc"
    from daskpml.results import history, write_netcdf

    write_netcdf(history({"objective": [1.0]}), not_model)
    result = CliRunner().invoke(cli, [*LOCAL, "predict", str(not_model), str(one)])
    assert result.exit_code != 0 and "does not hold a daskpml linear model" in result.output


@pytest.mark.timeout(120)
def test_demo_linear_section():
    result = run(*LOCAL, "demo", "--quick", "--only", "linear")
    assert result.exit_code == 0, result.output
    assert "logistic newton" in result.output and "one_shot_average" in result.output
