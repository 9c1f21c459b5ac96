"""Every family on every backend: a small fit on NumPy, on the strict stand-in for CuPy (the CuPy
code paths, run here) and on CuPy (with a GPU), with the same result. The families that run CPU
kernels only refuse device input with a message naming what to use instead."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
from _helpers import host, on

from daskpml.backend import backend_name


@pytest.fixture(autouse=True)
def _in_process():
    with dask.config.set(scheduler="sync"):
        yield


def _data(n=400, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = np.linspace(-1.0, 1.0, d)
    return X, (X @ w + 0.3 * rng.standard_normal(n) > 0).astype(float), X @ w + 0.1 * rng.standard_normal(n)


@pytest.mark.parametrize("solver", ["lbfgs", "newton", "sgd"])
def test_logistic_regression(backend, solver):
    from daskpml.linear_model import LogisticRegression

    X, y, _ = _data()
    kw = dict(solver=solver, C=1.0, max_iter=30 if solver != "sgd" else 5, random_state=0)
    ref = LogisticRegression(**kw).fit(da.from_array(X, chunks=100), da.from_array(y, chunks=100))
    est = LogisticRegression(**kw).fit(on(backend, da.from_array(X, chunks=100)), on(backend, da.from_array(y, chunks=100)))
    np.testing.assert_allclose(host(est.coef_), host(ref.coef_), rtol=1e-6, atol=1e-8)
    proba = est.predict_proba(on(backend, da.from_array(X, chunks=100)))
    assert backend_name(proba) == backend
    np.testing.assert_allclose(host(proba), host(ref.predict_proba(da.from_array(X, chunks=100))), atol=1e-8)


def test_lasso_shotgun(backend):
    from daskpml.linear_model import Lasso

    X, _, y = _data()
    ref = Lasso(alpha=0.01, random_state=0).fit(da.from_array(X, chunks=100), da.from_array(y, chunks=100))
    est = Lasso(alpha=0.01, random_state=0).fit(on(backend, da.from_array(X, chunks=100)),
                                                on(backend, da.from_array(y, chunks=100)))
    np.testing.assert_allclose(host(est.coef_), host(ref.coef_), atol=1e-6)


def test_kmeans_and_spectral_clustering(backend):
    from daskpml.cluster import KMeans, SpectralClustering
    from daskpml.datasets import make_blobs

    X, labels = make_blobs(300, 3, centers=3, cluster_std=0.5, chunks=100, random_state=0)
    X, labels = X.compute(), np.asarray(labels.compute())
    ref = KMeans(3, random_state=0).fit(da.from_array(X, chunks=100))
    est = KMeans(3, random_state=0).fit(on(backend, da.from_array(X, chunks=100)))
    np.testing.assert_allclose(host(est.cluster_centers_), host(ref.cluster_centers_), atol=1e-8)
    sc = SpectralClustering(3, random_state=0).fit(on(backend, da.from_array(X, chunks=100)))
    assert _same_partition(host(sc.labels_), labels)


def _same_partition(a, b):
    pairs = {(int(i), int(j)) for i, j in zip(a, b)}
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_pca(backend):
    from daskpml.decomposition import PCA

    X, _, _ = _data(n=300, d=8)
    ref = PCA(3, svd_solver="tsqr").fit(da.from_array(X, chunks=100))
    est = PCA(3, svd_solver="tsqr").fit(on(backend, da.from_array(X, chunks=100)))
    np.testing.assert_allclose(host(est.explained_variance_), host(ref.explained_variance_), rtol=1e-8)
    np.testing.assert_allclose(np.abs(host(est.components_)), np.abs(host(ref.components_)), atol=1e-8)


def test_gnn_training(backend):
    from daskpml.datasets import make_sbm
    from daskpml.graph import train_gnn

    W, labels = make_sbm(200, 2, in_degree=6, out_degree=1, random_state=0, chunks=100)
    A, y = W.compute(), np.asarray(labels.compute())
    rng = np.random.default_rng(0)
    F = (np.eye(2)[y] + 0.5 * rng.standard_normal((200, 2))).astype(np.float32)
    train = rng.choice(200, 40, replace=False)
    ref = train_gnn(A, F, y, train, epochs=15, n_parts=2, random_state=0, progress=False)
    res = train_gnn(on(backend, A), on(backend, F), y, train, epochs=15, n_parts=2, random_state=0, progress=False)
    np.testing.assert_allclose(host(res.proba), host(ref.proba), rtol=1e-4, atol=1e-5)


def test_the_cpu_kernel_families_refuse_device_input_naming_the_alternative(backend):
    from daskpml.optim import fit_linear
    from daskpml.svm import CascadeSVC

    if backend == "numpy":
        pytest.skip("device input only")
    X, y, _ = _data()
    Xd, yd = on(backend, da.from_array(X, chunks=100)), on(backend, da.from_array(y, chunks=100))
    with pytest.raises(TypeError, match="async_sgd or local_sgd"):
        fit_linear(Xd, yd, family="logistic", solver="hogwild", max_iter=1)
    with pytest.raises(TypeError, match="LinearSVC"):
        CascadeSVC().fit(on(backend, X), on(backend, y))


def test_sparse_input_on_the_device(backend):
    from daskpml.linear_model import LogisticRegression
    from daskpml.sparse import from_array

    X, y, _ = _data()
    S = sp.csr_matrix(np.where(np.abs(X) > 0.5, X, 0.0))
    ref = LogisticRegression(max_iter=30).fit(from_array(S, chunks=100), da.from_array(y, chunks=100))
    est = LogisticRegression(max_iter=30).fit(from_array(on(backend, S), chunks=100),
                                              on(backend, da.from_array(y, chunks=100)))
    np.testing.assert_allclose(host(est.coef_), host(ref.coef_), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("solver", ["async_sgd", "easgd", "gossip_sgd", "local_sgd", "sgd", "lbfgs", "newton"])
def test_solvers_on_the_ranks(backend, solver, client):
    """The loops that run on the workers (one rank per worker, thread workers here) take device blocks."""
    from daskpml.optim import fit_linear

    X, y, _ = _data(n=600)
    Xd, yd = on(backend, da.from_array(X, chunks=150)), on(backend, da.from_array(y, chunks=150))
    with dask.config.set(scheduler=client.get):
        Xd, yd = dask.persist(Xd, yd)
        kw = dict(family="logistic", lam=1e-3, solver=solver)
        kw.update(max_iter=20) if solver in ("lbfgs", "newton") else kw.update(max_iter=3, batch_size=64, random_state=0)
        coef, b, res = fit_linear(Xd, yd, **kw)
    assert res.history.attrs["n_ranks"] == 2                  # it ran on the ranks, one per worker
    ref, _, _ = fit_linear(X, y, family="logistic", lam=1e-3, solver="lbfgs", max_iter=200, tol=1e-10)
    assert np.corrcoef(host(coef), ref)[0, 1] > 0.95
