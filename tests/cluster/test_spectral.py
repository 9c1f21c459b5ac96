"""Spectral embedding and clustering: known answers and scikit-learn's figures."""

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import load_digits, make_blobs
from sklearn.metrics import adjusted_rand_score

from daskpml.cluster import SpectralClustering, SpectralEmbedding
from daskpml.datasets import make_sbm


@pytest.mark.parametrize("laplacian", ["sym", "rw"])
@pytest.mark.parametrize("method", ["kmeans", "recursive"])
def test_blobs(laplacian, method):
    X, y = make_blobs(1500, 6, centers=4, cluster_std=1.0, random_state=0)
    sc = SpectralClustering(4, laplacian=laplacian, method=method, random_state=0).fit(X)
    assert adjusted_rand_score(y, sc.labels_) > 0.99


def test_digits_ari():
    d = load_digits()
    labels = SpectralClustering(10, random_state=0).fit_predict(d.data)
    assert adjusted_rand_score(d.target, labels) >= 0.75  # scikit-learn: 0.756


def test_precomputed_sbm_graph_and_recursion():
    A, truth = make_sbm(1200, 4, in_degree=12, out_degree=1, random_state=0)
    sc = SpectralClustering(4, affinity="precomputed", method="recursive", random_state=0).fit(A)
    assert adjusted_rand_score(np.asarray(truth), sc.labels_) > 0.95
    assert len(sc.splits_) == 3


def test_embedding_dask_in_dask_out():
    X, _ = make_blobs(600, 3, centers=3, random_state=1)
    emb = SpectralEmbedding(3, random_state=0).fit(da.from_array(X, chunks=(200, -1)))
    assert isinstance(emb.embedding_, da.Array) and emb.embedding_.shape == (600, 3)
    assert abs(emb.eigenvalues_[0]) < 1e-8


def test_bad_input():
    X, _ = make_blobs(200, 3, centers=3, random_state=2)
    asym = sp.random(50, 50, density=0.2, format="csr", random_state=0)
    with pytest.raises(ValueError, match="symmetrize"):
        SpectralClustering(2, affinity="precomputed").fit(asym)
    with pytest.raises(ValueError, match="negative"):
        SpectralClustering(2, affinity="precomputed").fit(-(asym + asym.T))
    with pytest.raises(ValueError, match="n_clusters"):
        SpectralClustering(200).fit(X)
    with pytest.raises(ValueError, match="method"):
        SpectralClustering(2, method="ncut").fit(X)
    with pytest.raises(ValueError, match="affinity"):
        SpectralClustering(2, affinity="cosine").fit(X)
