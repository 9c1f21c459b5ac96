"""``--checkpoint DIR`` / ``--resume`` on the long-running commands: a snapshot is written and a
resumed run writes the same output as the first."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import xarray as xr
from click.testing import CliRunner
from sklearn.datasets import dump_svmlight_file, make_classification, make_regression

from daskpml.cli import cli
from daskpml.datasets import make_sbm

LOCAL = ["--workers", "1", "--threads", "2"]


def _graph(tmp_path):
    A, _ = make_sbm(300, 3, in_degree=8, out_degree=1, random_state=0)
    path = tmp_path / "g.mtx"
    scipy.io.mmwrite(str(path), A.to_scipy())
    return path


def _train(tmp_path):
    X, y = make_classification(500, 5, random_state=0)
    dump_svmlight_file(X, y, str(tmp_path / "d.svm"))
    return ["train", str(tmp_path / "d.svm"), "--solver", "lbfgs", "--tol", "1e-10", "--quiet"], "checkpoint-every 3"


def _lasso(tmp_path):
    X, y = make_regression(300, 20, n_informative=4, noise=1.0, random_state=0)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    return ["lasso", str(tmp_path / "d.npz"), "--alpha", "0.5", "--tol", "1e-10", "--quiet"], "checkpoint-every 2"


def _svm(tmp_path):
    X, y = make_classification(600, 5, flip_y=0.1, random_state=1)
    dump_svmlight_file(X, y, str(tmp_path / "d.svm"))
    return ["svm", str(tmp_path / "d.svm"), "--partitions", "4", "--passes", "4"], "checkpoint-every 1"


def _eigsh(tmp_path):
    return ["eigsh", str(_graph(tmp_path)), "--k", "4", "--ncv", "10"], "checkpoint-every 2"


def _mcl(tmp_path):
    return ["mcl", str(_graph(tmp_path)), "-I", "2.0"], "checkpoint-every 2"


COMMANDS = {"train": (_train, "model.nc"), "lasso": (_lasso, "model.nc"), "svm": (_svm, "model.nc"),
            "eigsh": (_eigsh, "eig.nc"), "mcl": (_mcl, "clusters.txt")}


def _same(a, b):
    if a.suffix != ".nc":
        assert a.read_text() == b.read_text()
        return
    with xr.open_dataset(a) as x, xr.open_dataset(b) as y:
        for name in x.data_vars:
            if "time" not in name:
                np.testing.assert_array_equal(x[name].values, y[name].values, err_msg=name)


@pytest.mark.parametrize("command", list(COMMANDS))
def test_checkpoint_then_resume_writes_the_same_output(tmp_path, command):
    make, out_name = COMMANDS[command]
    args, every = make(tmp_path)
    every = ["--" + every.split()[0], every.split()[1]]
    first, second, ckpt = tmp_path / ("1-" + out_name), tmp_path / ("2-" + out_name), tmp_path / "ckpt"
    result = CliRunner().invoke(cli, [*LOCAL, *args, "--checkpoint", str(ckpt), *every, "--out", str(first)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (ckpt / "latest").is_file()
    result = CliRunner().invoke(cli, [*LOCAL, *args, "--checkpoint", str(ckpt), *every, "--resume",
                                      "--out", str(second)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    _same(first, second)


def test_resume_without_checkpoint_is_refused(tmp_path):
    args, _ = _lasso(tmp_path)
    result = CliRunner().invoke(cli, [*LOCAL, *args, "--resume", "--out", str(tmp_path / "m.nc")])
    assert result.exit_code == 2 and "--resume needs --checkpoint DIR" in result.output
    assert "Traceback" not in result.output and "resume=True" not in result.output
