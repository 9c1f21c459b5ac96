"""The strict test backend (tests/_strict.py) refuses what CuPy refuses, computes what NumPy computes,
and stands in for CuPy through daskpml.backend.device_standin."""

from __future__ import annotations

import pickle

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
from _strict import StrictArray, StrictSparse, owns, strict, strict_sparse

from daskpml.backend import backend_name, device_standin, get_namespace, is_sparse, to_backend, to_numpy


@pytest.fixture()
def standin():
    with device_standin(strict, strict_sparse, owns):
        yield


def test_implicit_host_conversions_are_refused():
    x = strict.arange(4.0)
    for convert in (np.asarray, np.array, lambda v: v.tolist()):
        with pytest.raises(TypeError, match="strict test backend"):
            convert(x)
    with pytest.raises(TypeError, match="NumPy array mixed"):
        x + np.ones(4)
    with pytest.raises(TypeError, match="NumPy array mixed"):
        np.ones(4) + x
    with pytest.raises(TypeError, match="NumPy array mixed"):
        strict.concatenate([x, np.ones(2)])
    with pytest.raises(TypeError, match="repeat with an array of counts"):
        np.repeat(x, strict.asarray([1, 2, 0, 1]))
    assert isinstance(x.get(), np.ndarray) and x.get().tolist() == [0.0, 1.0, 2.0, 3.0]      # explicit: fine


def test_it_computes_like_numpy_on_the_device():
    a = np.arange(12.0).reshape(3, 4)
    x = strict.asarray(a)
    assert isinstance(x, StrictArray)
    y = np.exp(x) @ x.T + 1.0
    assert isinstance(y, StrictArray)
    np.testing.assert_allclose(y.get(), np.exp(a) @ a.T + 1.0)
    total = x.sum()
    assert isinstance(total, StrictArray) and total.ndim == 0 and float(total) == 66.0     # 0-d, as CuPy
    assert isinstance(x[1, 2], StrictArray) and float(x[1, 2]) == 6.0
    x[0] = a[2]                                   # host values may be written in (CuPy copies them)
    assert x.get()[0].tolist() == [8.0, 9.0, 10.0, 11.0]
    assert pickle.loads(pickle.dumps(x)).get().tolist() == x.get().tolist()
    w, v = np.linalg.eigh(x @ x.T)
    assert isinstance(w, StrictArray) and isinstance(v, StrictArray)


def test_the_sparse_counterpart_refuses_scipy_functions():
    M = strict_sparse.csr_matrix(sp.random(5, 4, density=0.5, format="csr", random_state=0))
    assert isinstance(M, StrictSparse) and isinstance(M.data, StrictArray) and strict_sparse.issparse(M)
    with pytest.raises(TypeError, match="sparse namespace"):
        sp.vstack([M, M])
    with pytest.raises(AttributeError, match="no such format"):
        M.tolil()
    with pytest.raises(TypeError, match="NumPy array mixed"):
        strict_sparse.csr_matrix((np.ones(2), np.array([0, 1]), np.array([0, 1, 2])), shape=(2, 2))
    y = M @ strict.ones(4)
    assert isinstance(y, StrictArray)
    np.testing.assert_allclose(y.get(), M.get() @ np.ones(4))
    assert isinstance(strict_sparse.vstack([M, M]), StrictSparse)
    M.data *= 2.0                                 # the arrays share the matrix's memory
    np.testing.assert_allclose(M.get().toarray(), 2 * (M.get().toarray() / 2))


def test_it_stands_in_for_cupy_in_daskpml_backend(standin):
    x = to_backend(np.arange(6.0), "cupy")
    assert isinstance(x, StrictArray) and backend_name(x) == "cupy"
    assert get_namespace(x) == (strict, strict_sparse)
    assert isinstance(to_numpy(x), np.ndarray)
    S = to_backend(sp.eye(3, format="csr"), "cupy")
    assert is_sparse(S) and isinstance(to_numpy(S), sp.csr_matrix)
    d = to_backend(da.ones((6, 2), chunks=3), "cupy")
    assert backend_name(d) == "cupy"
    assert isinstance(d.sum(axis=0).compute(scheduler="sync"), StrictArray)
    with pytest.raises(TypeError, match="mix NumPy and CuPy"):
        get_namespace(x, np.ones(2))


def test_outside_the_block_numpy_is_numpy():
    with device_standin(strict, strict_sparse, owns):
        pass
    assert backend_name(strict.ones(2)) == "numpy"      # no stand-in: the object is not recognised
    assert get_namespace(np.ones(2))[0] is np
