"""Every family on every backend: a small fit on NumPy, on the strict stand-in for CuPy (the CuPy
code paths, run here) and on CuPy (with a GPU), against scikit-learn or a known answer; results
stay on the input's device. The families that run CPU kernels only refuse device input with a
message naming what to use instead."""

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


def _cos(a, b):
    return float(np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.parametrize("solver", ["lbfgs", "newton", "sgd"])
def test_logistic_regression(backend, solver):
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    from daskpml.linear_model import LogisticRegression

    X, y, _ = _data()
    ref = SkLogisticRegression(C=1.0, tol=1e-12, max_iter=10_000).fit(X, y)
    kw = dict(solver=solver, C=1.0) | (dict(tol=1e-10, max_iter=200) if solver != "sgd" else
                                       dict(max_iter=20, random_state=0))
    Xd = on(backend, da.from_array(X, chunks=100))
    est = LogisticRegression(**kw).fit(Xd, on(backend, da.from_array(y, chunks=100)))
    if solver == "sgd":
        assert _cos(host(est.coef_).ravel(), ref.coef_.ravel()) > 0.99
        return
    np.testing.assert_allclose(host(est.coef_), ref.coef_, rtol=1e-5, atol=1e-6)
    proba = est.predict_proba(Xd)
    assert backend_name(proba) == backend and backend_name(est.predict(Xd)) == backend
    np.testing.assert_allclose(host(proba), ref.predict_proba(X), atol=1e-6)
    np.testing.assert_array_equal(host(est.predict(Xd)), ref.predict(X))


def test_lasso_shotgun(backend):
    from sklearn.linear_model import Lasso as SkLasso

    from daskpml.linear_model import Lasso

    X, _, y = _data()
    ref = SkLasso(alpha=0.01, tol=1e-12, max_iter=100_000).fit(X, y)
    est = Lasso(alpha=0.01, tol=1e-10, max_iter=10_000, random_state=0).fit(
        on(backend, da.from_array(X, chunks=100)), on(backend, da.from_array(y, chunks=100)))
    np.testing.assert_allclose(host(est.coef_), ref.coef_, atol=1e-5)


def test_kmeans_and_spectral_clustering(backend):
    from sklearn.cluster import KMeans as SkKMeans

    from daskpml.cluster import KMeans, SpectralClustering
    from daskpml.datasets import make_blobs

    X, labels = make_blobs(300, 3, centers=3, cluster_std=0.5, chunks=100, random_state=0)
    X, labels = X.compute(), np.asarray(labels.compute())
    init = X[[0, 100, 200]]
    ref = SkKMeans(3, init=init, n_init=1, tol=0.0).fit(X)
    est = KMeans(3, init=init, tol=0.0).fit(on(backend, da.from_array(X, chunks=100)))
    np.testing.assert_allclose(host(est.cluster_centers_), ref.cluster_centers_, atol=1e-8)
    sc = SpectralClustering(3, random_state=0).fit(on(backend, da.from_array(X, chunks=100)))
    assert _same_partition(host(sc.labels_), labels)        # the planted blobs, well separated


def _same_partition(a, b):
    pairs = {(int(i), int(j)) for i, j in zip(a, b)}
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_pca(backend):
    from sklearn.decomposition import PCA as SkPCA

    from daskpml.decomposition import PCA

    X, _, _ = _data(n=300, d=8)
    ref = SkPCA(3, svd_solver="full").fit(X)
    est = PCA(3, svd_solver="tsqr").fit(on(backend, da.from_array(X, chunks=100)))
    np.testing.assert_allclose(host(est.explained_variance_), ref.explained_variance_, rtol=1e-8)
    np.testing.assert_allclose(np.abs(host(est.components_)), np.abs(ref.components_), atol=1e-8)


def test_gnn_training(backend):
    """A planted two-block graph whose features carry the block: the trained GCN recovers it."""
    from daskpml.datasets import make_sbm
    from daskpml.graph import train_gnn

    W, labels = make_sbm(200, 2, in_degree=6, out_degree=1, random_state=0, chunks=100)
    A, y = W.compute(), np.asarray(labels.compute())
    rng = np.random.default_rng(0)
    F = (np.eye(2)[y] + 0.5 * rng.standard_normal((200, 2))).astype(np.float32)
    train = rng.choice(200, 40, replace=False)
    res = train_gnn(on(backend, A), on(backend, F), y, train, epochs=60, lr=0.05, n_parts=2, random_state=0,
                    progress=False)
    assert backend_name(res.proba) == backend
    test = np.setdiff1d(np.arange(200), train)
    assert (host(res.proba).argmax(axis=1)[test] == y[test]).mean() > 0.9


def test_the_cpu_kernel_families_refuse_device_input_naming_the_alternative(backend):
    from daskpml.optim import fit_linear
    from daskpml.runtime import current_client
    from daskpml.svm import CascadeSVC

    if backend == "numpy":
        pytest.skip("device input only")
    X, y, _ = _data()
    Xd, yd = on(backend, da.from_array(X, chunks=100)), on(backend, da.from_array(y, chunks=100))
    with pytest.raises(TypeError, match="async_sgd or local_sgd"):
        fit_linear(Xd, yd, family="logistic", solver="hogwild", max_iter=1)
    assert current_client() is None               # refused before starting the embedded cluster
    with pytest.raises(TypeError, match="LinearSVC"):
        CascadeSVC().fit(on(backend, X), on(backend, y))


def test_sparse_input_on_the_device(backend):
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    from daskpml.linear_model import LogisticRegression
    from daskpml.sparse import from_array

    X, y, _ = _data()
    S = sp.csr_matrix(np.where(np.abs(X) > 0.5, X, 0.0))
    ref = SkLogisticRegression(C=1.0, tol=1e-12, max_iter=10_000).fit(S, y)
    est = LogisticRegression(C=1.0, tol=1e-10, max_iter=200).fit(from_array(on(backend, S), chunks=100),
                                                                 on(backend, da.from_array(y, chunks=100)))
    np.testing.assert_allclose(host(est.coef_), ref.coef_, rtol=1e-5, atol=1e-6)


RANK_SOLVERS = ["async_sgd", "easgd", "gossip_sgd", "local_sgd", "sgd", "lbfgs", "newton"]


def test_solvers_on_the_ranks(backend):
    """The loops that run on the workers (one rank per worker) take device blocks. The cluster
    (thread workers: the stand-in holds in this process) is made and closed inside the test, so
    that its client's settings do not outlive it."""
    from distributed import Client, LocalCluster
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    from daskpml.optim import fit_linear

    X, y, _ = _data(n=600)
    # lam = 1e-3 of the mean loss is scikit-learn's C = 1 / (n lam)
    ref = SkLogisticRegression(C=1 / (600 * 1e-3), tol=1e-12, max_iter=10_000).fit(X, y).coef_.ravel()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster):
        Xd, yd = dask.persist(on(backend, da.from_array(X, chunks=150)), on(backend, da.from_array(y, chunks=150)))
        for solver in RANK_SOLVERS:
            kw = dict(family="logistic", lam=1e-3, solver=solver)
            kw.update(max_iter=100, tol=1e-10) if solver in ("lbfgs", "newton") else \
                kw.update(max_iter=10, batch_size=64, random_state=0)
            coef, b, res = fit_linear(Xd, yd, **kw)
            assert res.history.attrs["n_ranks"] == 2, solver          # it ran on the ranks, one per worker
            if solver in ("lbfgs", "newton"):
                np.testing.assert_allclose(host(coef), ref, rtol=1e-4, atol=1e-5, err_msg=solver)
            else:
                assert _cos(host(coef), ref) > 0.98, solver


def test_scores_match_scikit_learn_with_and_without_weights(backend):
    """R^2 and accuracy of dask and in-memory device input, weighted too (the dask path ignored
    the weights before)."""
    from sklearn.metrics import accuracy_score, r2_score

    from daskpml.linear_model import LogisticRegression, Ridge

    X, yc, yr = _data()
    w = np.random.default_rng(1).random(len(yr))
    reg, clf = Ridge().fit(X, yr), LogisticRegression().fit(X, yc)
    pr, pc = reg.predict(X), clf.predict(X)
    for Xb, yrb, ycb in ((on(backend, da.from_array(X, chunks=100)), on(backend, da.from_array(yr, chunks=100)),
                          on(backend, da.from_array(yc, chunks=100))), (on(backend, X), on(backend, yr), on(backend, yc))):
        assert reg.score(Xb, yrb) == pytest.approx(r2_score(yr, pr), rel=1e-12)
        assert reg.score(Xb, yrb, sample_weight=w) == pytest.approx(r2_score(yr, pr, sample_weight=w), rel=1e-12)
        assert clf.score(Xb, ycb) == pytest.approx(accuracy_score(yc, pc))
