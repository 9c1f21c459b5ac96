"""``daskpml pca``: components and explained variance as scikit-learn's, projected rows."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from click.testing import CliRunner
from sklearn.decomposition import PCA as SkPCA

from daskpml.cli import cli
from daskpml.results import read_netcdf

LOCAL = ["--workers", "1", "--threads", "2"]


def test_pca_command(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3)) @ rng.normal(size=(3, 8)) + 0.05 * rng.normal(size=(400, 8))
    np.save(tmp_path / "x.npy", X)
    out, proj = tmp_path / "pca.nc", tmp_path / "z.npy"
    result = CliRunner().invoke(cli, [*LOCAL, "pca", str(tmp_path / "x.npy"), "-k", "3", "--solver", "tsqr",
                                      "--out", str(out), "--transform", str(proj)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "PCA of 400 x 8 (tsqr)" in result.output
    ref = SkPCA(3).fit(X)
    res = read_netcdf(out)
    np.testing.assert_allclose(res.explained_variance_ratio.values, ref.explained_variance_ratio_, rtol=1e-8)
    np.testing.assert_allclose(np.abs(np.load(proj)), np.abs(ref.transform(X)), atol=1e-8)
    sp.save_npz(tmp_path / "s.npz", sp.csr_matrix(np.where(X > 0.5, X, 0)))
    result = CliRunner().invoke(cli, [*LOCAL, "pca", str(tmp_path / "s.npz"), "-k", "2", "--no-center",
                                      "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0 and "TruncatedSVD of 400 x 8" in result.output


def test_pca_command_refuses_too_many_components(tmp_path):
    np.save(tmp_path / "x.npy", np.ones((10, 3)))
    result = CliRunner().invoke(cli, [*LOCAL, "pca", str(tmp_path / "x.npy"), "-k", "5", "--out",
                                      str(tmp_path / "o.nc")])
    assert result.exit_code != 0 and "n_components" in result.output


def test_file_input_is_not_pickled_into_the_graph(tmp_path):
    """nmf and pca on a file used to embed the matrix in the task graph ("Sending large graph of
    size 11.45 MiB"): it is now scattered (or read by the workers themselves)."""
    import numpy as np
    from click.testing import CliRunner

    from daskpml.cli import cli

    np.save(tmp_path / "a.npy", np.abs(np.random.default_rng(0).standard_normal((60_000, 25))))   # 12 MB
    for args in (["pca", "-k", "3"], ["nmf", "-k", "3", "--max-iter", "3", "--tol", "0"]):
        result = CliRunner().invoke(cli, ["--workers", "1", "--threads", "2", args[0], str(tmp_path / "a.npy"),
                                          *args[1:], "--out", str(tmp_path / f"{args[0]}.nc")])
        assert result.exit_code == 0, result.output
        assert "large graph" not in result.output
