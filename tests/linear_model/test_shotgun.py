"""Shotgun coordinate descent against scikit-learn's Lasso and ElasticNet (cyclic CD)."""

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_regression
from sklearn.linear_model import ElasticNet as SkElasticNet
from sklearn.linear_model import Lasso as SkLasso

from daskpml.linear_model import ElasticNet, Lasso, Ridge
from daskpml.optim import shotgun
from daskpml.optim._shotgun import column_blocks, spectral_radius


@pytest.fixture(scope="module")
def data():
    X, y = make_regression(1500, 120, n_informative=15, noise=5.0, random_state=0)
    X[:, 1] = X[:, 0] + 0.05 * X[:, 2]          # correlated columns: rho > 1
    return X, y + 3.0


@pytest.mark.parametrize("Est, Sk, kw", [
    (Lasso, SkLasso, dict(alpha=0.8)),
    (ElasticNet, SkElasticNet, dict(alpha=0.8, l1_ratio=0.6)),
    (Lasso, SkLasso, dict(alpha=0.3, fit_intercept=False)),
])
def test_matches_scikit_learn(data, Est, Sk, kw):
    X, y = data
    ref = Sk(tol=1e-12, max_iter=100_000, **kw).fit(X, y)
    model = Est(solver="shotgun", tol=1e-12, random_state=0, **kw).fit(X, y)
    np.testing.assert_allclose(model.coef_, ref.coef_, atol=1e-4 * max(1.0, np.abs(ref.coef_).max()))
    assert np.abs(model.coef_ - ref.coef_).max() < 1e-6
    assert model.intercept_ == pytest.approx(ref.intercept_, abs=1e-6)
    assert 1 < model.n_parallel_ < X.shape[1]
    h = model.history_
    assert h["n_parallel"].values[0] == model.n_parallel_ or h["n_parallel"].values[-1] == model.n_parallel_
    assert np.isfinite(h["duality_gap"].values[-1]) and h["duality_gap"].values[-1] >= -1e-9
    assert np.all(np.diff(h["objective"].values) <= 1e-12 * h["objective"].values[0])


def test_sparse_dask_and_block_counts(data):
    X, y = data
    rng = np.random.default_rng(1)
    Xs = sp.random(2000, 150, density=0.05, random_state=2, format="csr")
    ys = Xs @ rng.standard_normal(150) + 0.5
    ref = SkLasso(alpha=1e-3, tol=1e-12, max_iter=100_000).fit(Xs, ys)
    for blocks in (1, 3):
        m = Lasso(alpha=1e-3, solver="shotgun", tol=1e-12, random_state=0,
                  solver_kwargs={"n_blocks": blocks}).fit(Xs, ys)
        assert np.abs(m.coef_ - ref.coef_).max() < 1e-6
        assert m.intercept_ == pytest.approx(ref.intercept_, abs=1e-6)
    ref = SkLasso(alpha=0.8, tol=1e-12, max_iter=100_000).fit(X, y)
    dX = da.from_array(X, chunks=(500, 40))
    m = Lasso(alpha=0.8, solver="shotgun", tol=1e-12, random_state=0).fit(dX, da.from_array(y, chunks=500))
    assert np.abs(m.coef_ - ref.coef_).max() < 1e-6


def test_too_many_parallel_updates_are_undone():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 40))
    X[:, :18] += 2.0 * rng.standard_normal((400, 1))   # 18 columns sharing a factor: rho is about 15
    y = X[:, :6] @ rng.standard_normal(6) + rng.standard_normal(400)
    ref = SkLasso(alpha=0.5, tol=1e-12, max_iter=100_000).fit(X, y)
    out = shotgun(X, y - y.mean(), l1=0.5 * len(y), fit_intercept=True, n_parallel=X.shape[1], tol=1e-10,
                  random_state=0, max_iter=3000)
    assert out.converged
    assert 1 <= out.n_parallel < X.shape[1]          # halved after an epoch that made things worse
    assert out.history["n_parallel"].values[0] < X.shape[1]
    assert np.abs(out.coef - ref.coef_).max() < 1e-4


def test_spectral_radius_estimate():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3000, 60))
    X[:, :20] += 3 * rng.standard_normal((3000, 1))  # a common factor in 20 columns
    Z = X - X.mean(axis=0)
    Z /= np.linalg.norm(Z, axis=0)
    exact = np.linalg.eigvalsh(Z.T @ Z)[-1]
    blocks = column_blocks(X, True, 2)
    estimate = spectral_radius(blocks, 3000, 60, seed=0)
    assert exact * 0.95 <= estimate <= exact * 1.4    # a sample errs upwards


def test_bad_input(data):
    X, y = data
    with pytest.raises(ValueError, match="not options of solver='shotgun'"):
        Lasso(solver="shotgun", solver_kwargs={"eta0": 1}).fit(X, y)
    with pytest.raises(ValueError, match="fits Lasso and ElasticNet"):
        Ridge(solver="shotgun").fit(X, y)
    with pytest.raises(ValueError, match="n_parallel must be"):
        Lasso(solver="shotgun", solver_kwargs={"n_parallel": 0}).fit(X, y)
    with pytest.raises(ValueError, match="l1_ratio"):
        ElasticNet(solver="shotgun", l1_ratio=1.5).fit(X, y)
    with pytest.raises(ValueError, match="alpha must be a number >= 0"):
        Lasso(solver="shotgun", alpha=-1).fit(X, y)
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Lasso(solver="shotgun").fit(Xn, y)
    with pytest.raises(ValueError):
        Lasso(solver="shotgun").fit(X, y[:-1])


def test_on_a_cluster(data, client):
    X, y = data
    ref = SkLasso(alpha=0.8, tol=1e-12, max_iter=100_000).fit(X, y)
    m = Lasso(alpha=0.8, solver="shotgun", tol=1e-12, random_state=0).fit(da.from_array(X, chunks=(500, 120)), y)
    assert np.abs(m.coef_ - ref.coef_).max() < 1e-6
    local = Lasso(alpha=0.8, solver="shotgun", tol=1e-12, random_state=0)
    import dask
    with dask.config.set(scheduler="threads"):
        local.fit(X, y)
    np.testing.assert_allclose(m.history_["objective"], local.history_["objective"], rtol=1e-12)
