from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

from daskpml.sparse import from_array
from daskpml.validation import NotFittedError, check_array, check_graph, check_is_fitted, check_X_y


def test_nan_in_numpy_and_sparse():
    X = np.ones((4, 3))
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"X contains 1 NaN or infinite value\(s\).*impute"):
        check_array(X)
    S = sp.csr_matrix(np.eye(3))
    S.data[0] = np.inf
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        check_array(S)


def test_nan_deep_inside_a_dask_array_is_found_and_located():
    X = np.ones((1000, 5))
    X[987, 3] = np.inf
    Xd = da.from_array(X, chunks=(100, 5))
    with pytest.raises(ValueError, match=r"1 NaN or infinite value\(s\) \(first in chunk \(9, 0\), rows 900-999\)"):
        check_array(Xd)


def test_lazy_check_fires_when_the_data_is_read():
    X = np.ones((100, 2))
    X[55, 0] = np.nan
    checked = check_array(da.from_array(X, chunks=(10, 2)), ensure_finite="lazy", name="features")
    assert dask.is_dask_collection(checked)
    with pytest.raises(ValueError, match=r"features contains 1 NaN or infinite value\(s\) in chunk \(5, 0\) \(rows 50-59\)"):
        checked.sum().compute()


def test_nan_in_distributed_sparse_matrix():
    M = sp.random(50, 50, density=0.1, format="csr", random_state=0)
    M.data[-1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_array(from_array(M, chunks=10))


def test_shapes_empty_and_dtype():
    with pytest.raises(ValueError, match="must be 2-D, got 1-D.*reshape"):
        check_array(np.ones(3))
    assert check_array(np.ones(3), allow_1d=True).shape == (3,)
    with pytest.raises(ValueError, match="0 sample.*empty"):
        check_array(np.ones((0, 3)))
    with pytest.raises(TypeError, match="not numeric"):
        check_array(np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="sparse.*toarray"):
        check_array(sp.eye(3), accept_sparse=False)
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        x = da.ones(10, chunks=5)
        check_array(x[x > 0].reshape(-1, 1) if False else x[x > 0][:, None])


def test_negative_values_counted_with_chunk():
    X = np.ones((30, 2))
    X[25, 1] = -1
    X[26, 0] = -2
    with pytest.raises(ValueError, match=r"2 negative value\(s\) \(first in chunk \(2, 0\), rows 20-29\)"):
        check_array(da.from_array(X, chunks=(10, 2)), ensure_non_negative=True)


def test_graph_checks():
    with pytest.raises(ValueError, match=r"square adjacency matrix.*\(3, 4\)"):
        check_graph(np.ones((3, 4)))
    with pytest.raises(ValueError, match="not symmetric.*Symmetrize"):
        check_graph(np.triu(np.ones((3, 3))), symmetric=True)
    with pytest.raises(ValueError, match="negative"):
        check_graph(-np.eye(3))
    M = sp.random(40, 40, density=0.1, format="csr", random_state=1)
    with pytest.raises(ValueError, match="not symmetric"):
        check_graph(from_array(M, chunks=9), symmetric=True)
    A = from_array(M + M.T, chunks=9)
    assert check_graph(A, symmetric=True) is A
    check_graph(da.from_array((M + M.T).toarray(), chunks=10), symmetric=True)


def test_check_X_y():
    with pytest.raises(ValueError, match="different numbers of samples: 3 and 2"):
        check_X_y(np.ones((3, 2)), np.ones(2))
    with pytest.raises(ValueError, match="y must be 1-D"):
        check_X_y(np.ones((3, 2)), np.ones((3, 2)))


def test_check_is_fitted():
    class Est:
        def __init__(self):
            self.alpha = 1.0

    est = Est()
    with pytest.raises(NotFittedError, match="Est instance is not fitted yet"):
        check_is_fitted(est)
    est.coef_ = np.ones(2)
    check_is_fitted(est)
    with pytest.raises(NotFittedError):
        check_is_fitted(est, ["coef_", "intercept_"])
