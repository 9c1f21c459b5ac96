"""Distributed KMeans against scikit-learn and known answers."""

import dask.array as da
import numpy as np
import pytest
from _helpers import host
from sklearn.cluster import KMeans as SKKMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from daskpml.cluster import KMeans

X, y = make_blobs(3000, 5, centers=6, cluster_std=1.5, random_state=0)


@pytest.mark.parametrize("init", ["k-means||", "k-means++"])
def test_recovers_blobs_and_matches_sklearn_inertia(init):
    km = KMeans(6, init=init, n_init=3, random_state=0).fit(da.from_array(X, chunks=(700, -1)))
    assert adjusted_rand_score(y, host(km.labels_)) > 0.99
    ref = SKKMeans(6, n_init=10, random_state=0).fit(X)
    assert km.inertia_ <= ref.inertia_ * (1 + 1e-6)
    assert km.history_.sizes["iteration"] == km.n_iter_


def test_given_centers_match_sklearn_lloyd():
    init = X[:6]
    km = KMeans(6, init=init, tol=0, max_iter=50).fit(X)
    ref = SKKMeans(6, init=init, n_init=1, tol=0, max_iter=50, algorithm="lloyd").fit(X)
    np.testing.assert_allclose(km.cluster_centers_, ref.cluster_centers_, rtol=1e-9)
    np.testing.assert_array_equal(km.labels_, ref.labels_)
    np.testing.assert_allclose(km.inertia_, ref.inertia_, rtol=1e-9)
    np.testing.assert_array_equal(km.predict(X[:50]), ref.predict(X[:50]))
    np.testing.assert_allclose(km.transform(X[:5]), ref.transform(X[:5]), rtol=1e-9)
    np.testing.assert_allclose(km.score(X), ref.score(X), rtol=1e-9)


def test_same_seed_same_result():
    Xd = da.from_array(X, chunks=(1000, -1))
    a = KMeans(6, init="random", random_state=3).fit(Xd)
    b = KMeans(6, init="random", random_state=3).fit(Xd)
    np.testing.assert_array_equal(a.cluster_centers_, b.cluster_centers_)
    assert isinstance(b.labels_, da.Array)
    np.testing.assert_array_equal(host(a.labels_), host(b.labels_))


def test_bad_input():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(ValueError, match="n_clusters"):
        KMeans(0).fit(X)
    with pytest.raises(NotFittedError):
        KMeans(3).predict(X)
    with pytest.raises(ValueError, match="features"):
        KMeans(3).fit(X).predict(X[:, :2])
    bad = X.copy()
    bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="inf"):
        KMeans(3).fit(bad)
