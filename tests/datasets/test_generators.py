from __future__ import annotations

import pickle

import numpy as np
import pytest

from daskpml.datasets import make_blobs, make_classification, make_low_rank, make_regression
from daskpml.sparse import CSRMatrix


def test_blobs_deterministic_and_clustered(client):
    X1, y1, centers = make_blobs(3000, 4, centers=3, cluster_std=0.5, chunks=700, random_state=3, return_centers=True)
    X2, y2 = make_blobs(3000, 4, centers=3, cluster_std=0.5, chunks=700, random_state=3)
    X1, y1 = X1.compute(), y1.compute()
    np.testing.assert_array_equal(X1, X2.compute(scheduler="sync"))  # same on any scheduler
    np.testing.assert_array_equal(y1, y2.compute())
    for c in range(3):  # each label sits around its centre with the given spread
        np.testing.assert_allclose(X1[y1 == c].mean(0), centers[c], atol=0.1)
        np.testing.assert_allclose(X1[y1 == c].std(0), 0.5, rtol=0.15)
    assert not np.array_equal(X1, make_blobs(3000, 4, centers=3, chunks=700, random_state=4)[0].compute())


def test_regression_follows_its_model():
    X, y, w = make_regression(2000, 20, n_informative=5, noise=0.1, coef=True, chunks=500, random_state=0)
    X, y = X.compute(), y.compute()
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    np.testing.assert_allclose(coef, w, atol=0.02)
    assert np.count_nonzero(w) == 5


def test_classification_is_generated_blockwise_and_learnable():
    X, y = make_classification(2_000_000, 100, random_state=0)
    assert X.shape == (2_000_000, 100) and X.numblocks[0] > 1
    assert len(pickle.dumps(dict(X.__dask_graph__()))) < 100_000  # nothing big is embedded
    Xs, ys, W, b = make_classification(4000, 5, n_classes=3, class_sep=3, coef=True, chunks=1000, random_state=1)
    from sklearn.linear_model import LogisticRegression

    Xs, ys = Xs.compute(), ys.compute()
    assert set(np.unique(ys)) == {0, 1, 2}
    model = LogisticRegression(C=100, max_iter=1000).fit(Xs, ys)
    logits = Xs @ W + b
    assert model.score(Xs, ys) > 0.85
    assert np.mean(np.argmax(logits, 1) == ys) > 0.85


def test_low_rank_dense_and_sparse():
    A, W, H = make_low_rank(200, 60, 4, return_factors=True, chunks=50, random_state=0)
    np.testing.assert_allclose(A.compute(), W.compute() @ H)
    assert np.linalg.matrix_rank(A.compute()) == 4
    S = make_low_rank(300, 80, 3, density=0.2, noise=0.01, chunks=100, random_state=0)
    assert isinstance(S, CSRMatrix)
    M = S.to_scipy()
    assert M.nnz == pytest.approx(0.2 * 300 * 80, rel=0.1) and (M.data >= 0).all()


@pytest.mark.parametrize("bad", [dict(n_samples=0), dict(n_features=-1)])
def test_generators_refuse_bad_sizes(bad):
    with pytest.raises(ValueError, match="must be an integer >= 1"):
        make_blobs(**{"n_samples": 10, "n_features": 2, **bad})


def test_low_rank_refuses_negative_noise():
    with pytest.raises(ValueError, match="noise must be a number >= 0"):
        make_low_rank(10, 10, 2, noise=-1)
