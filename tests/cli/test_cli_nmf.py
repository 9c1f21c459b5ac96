"""``daskpml nmf`` on dense and sparse matrix files."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
from click.testing import CliRunner
from sklearn.decomposition import NMF as SKNMF
from sklearn.exceptions import ConvergenceWarning

from daskpml.cli import cli
from daskpml.results import read_netcdf

LOCAL = ["--workers", "1", "--threads", "2"]


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_nmf_dense_file_matches_sklearn(tmp_path):
    rng = np.random.default_rng(0)
    A = rng.random((300, 4)) @ rng.random((4, 25))
    path, out = tmp_path / "A.npy", tmp_path / "model.nc"
    np.save(path, A)
    result = run(*LOCAL, "nmf", str(path), "--rank", "4", "--max-iter", "40", "--tol", "0", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "40 iterations" in result.output
    model = read_netcdf(out)
    W, H = model["W"].values, model["components"].values
    assert W.shape == (300, 4) and H.shape == (4, 25) and model.sizes["iteration"] == 41
    np.testing.assert_allclose(np.linalg.norm(A - W @ H), model.attrs["reconstruction_err"], rtol=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = SKNMF(4, solver="cd", init="nndsvda", max_iter=40, tol=0).fit(A)
    np.testing.assert_allclose(model.attrs["reconstruction_err"], ref.reconstruction_err_, rtol=1e-5)


def test_nmf_sparse_file_with_checkpoint(tmp_path):
    S = sp.random(400, 60, density=0.1, format="csr", random_state=2)
    path, out, ckpt = tmp_path / "S.npz", tmp_path / "model.nc", tmp_path / "ckpt"
    sp.save_npz(path, S)
    args = [*LOCAL, "nmf", str(path), "--rank", "3", "--solver", "mu", "--max-iter", "20", "--tol", "0",
            "--checkpoint", str(ckpt), "--checkpoint-every", "5", "--no-w", "--out", str(out)]
    assert run(*args).exit_code == 0
    assert (ckpt / "latest").read_text() == "iter-000020"
    first = read_netcdf(out)
    assert "W" not in first and first.attrs["solver"] == "mu"
    again = run(*args, "--resume")                  # already at max_iter: nothing left to do
    assert again.exit_code == 0, again.output
    np.testing.assert_array_equal(read_netcdf(out)["components"].values, first["components"].values)
