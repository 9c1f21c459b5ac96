from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

from daskpml.backend import backend_name, get_namespace, is_sparse, sparse_meta, to_backend, zeros_like
from daskpml.sparse import from_array


def test_numpy_namespace_for_every_cpu_container():
    M = sp.random(5, 5, density=0.5, format="csr", random_state=0)
    for x in (np.ones(3), M, da.ones(4, chunks=2), from_array(M)):
        xp, xsp = get_namespace(x)
        assert xp is np and xsp is sp
        assert backend_name(x) == "numpy"


def test_is_sparse_looks_at_meta():
    M = sp.random(5, 5, density=0.5, format="csr", random_state=0)
    assert is_sparse(M) and is_sparse(from_array(M)) and not is_sparse(da.ones(3))


def test_roundtrip_through_backend(backend):
    x = da.arange(10.0, chunks=3)
    y = to_backend(x, backend)
    assert backend_name(y) == backend
    np.testing.assert_array_equal(np.asarray(to_backend(y, "numpy").compute()), np.arange(10.0))
    M = sp.random(9, 4, density=0.5, format="csr", random_state=1)
    A = to_backend(from_array(M, chunks=4), backend)
    assert A.backend == backend
    np.testing.assert_array_equal(A.to_scipy().toarray(), M.toarray())


def test_constructors_follow_meta():
    meta = da.ones((3, 3), dtype=np.float32)._meta
    z = zeros_like(meta, shape=(2,))
    assert isinstance(z, np.ndarray) and z.dtype == np.float32
    assert sp.issparse(sparse_meta(meta)) and sparse_meta(meta).dtype == np.float32


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="'numpy' or 'cupy'"):
        to_backend(np.ones(2), "jax")


def test_cupy_request_without_cupy_says_how_to_install():
    pytest.importorskip("numpy")
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"daskpml\[gpu\]"):
            to_backend(np.ones(2), "cupy")
    else:  # pragma: no cover - GPU machines
        pytest.skip("CuPy is installed")
