"""Every CSRMatrix operation against SciPy on random inputs."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

from daskpml.sparse import CSRMatrix, from_array, spgemm
from _helpers import host, on, random_csr

SHAPES = [(60, 45, 0.1, 13), (100, 100, 0.05, 25), (37, 80, 0.3, (10, 0, 27)), (1, 5, 1.0, 1)]


@pytest.fixture(params=SHAPES, ids=lambda s: f"{s[0]}x{s[1]}-chunks{s[3]}")
def pair(request, backend):
    m, n, density, chunks = request.param
    M = random_csr(m, n, density, seed=m + n)
    return M, from_array(on(backend, M), chunks=chunks)


def test_roundtrip_and_metadata(pair, backend):
    M, A = pair
    assert isinstance(A, CSRMatrix) and A.shape == M.shape and A.dtype == M.dtype
    assert A.backend == backend and sum(A.row_chunks) == M.shape[0]
    np.testing.assert_array_equal(host(A), M.toarray())
    assert A.nnz == M.nnz
    assert int(A.nnz_per_block().sum().compute()) == M.nnz


def test_spmv(pair, backend):
    M, A = pair
    x = np.random.default_rng(0).standard_normal(M.shape[1])
    y = A @ on(backend, x)
    assert isinstance(y, da.Array) and y.chunks[0] == A.row_chunks
    np.testing.assert_allclose(host(y), M @ x, rtol=1e-12, atol=1e-12)


def test_spmm_with_dask_operand(pair, backend):
    M, A = pair
    X = np.random.default_rng(1).standard_normal((M.shape[1], 7))
    Xd = da.from_array(on(backend, X), chunks=(max(1, M.shape[1] // 3), 3))
    np.testing.assert_allclose(host(A @ Xd), M @ X, rtol=1e-12, atol=1e-12)


def test_rmatmul(pair, backend):
    M, A = pair
    rng = np.random.default_rng(2)
    z, Z = rng.standard_normal(M.shape[0]), rng.standard_normal((4, M.shape[0]))
    np.testing.assert_allclose(host(on(backend, z) @ A), z @ M, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(host(on(backend, Z) @ A), Z @ M, rtol=1e-12, atol=1e-12)


def test_transpose(pair):
    M, A = pair
    T = A.T
    assert T.shape == M.T.shape
    np.testing.assert_array_equal(host(T), M.T.toarray())
    np.testing.assert_array_equal(host(A.transpose(row_chunks=max(1, M.shape[1] // 2))), M.T.toarray())
    np.testing.assert_array_equal(host(T.T), M.toarray())


@pytest.mark.parametrize("b_chunks", [7, "auto"])
def test_spgemm(backend, b_chunks):
    M, N = random_csr(50, 40, 0.2, 3), random_csr(40, 30, 0.2, 4)
    A, B = from_array(on(backend, M), chunks=13), from_array(on(backend, N), chunks=b_chunks)
    C = A @ B
    assert isinstance(C, CSRMatrix) and C.row_chunks == A.row_chunks
    np.testing.assert_allclose(host(C), (M @ N).toarray(), rtol=1e-12)
    pruned = host(spgemm(A, B, threshold=0.3))
    expected = (M @ N).toarray()
    expected[np.abs(expected) < 0.3] = 0
    np.testing.assert_allclose(pruned, expected, rtol=1e-12)


def test_spgemm_square_graph(backend):
    M = random_csr(200, 200, 0.02, 5)
    A = from_array(on(backend, M), chunks=40)
    np.testing.assert_allclose(host(A @ A), (M @ M).toarray(), rtol=1e-12)


def test_scaling(pair, backend):
    M, A = pair
    rng = np.random.default_rng(3)
    r, c = rng.random(M.shape[0]), rng.random(M.shape[1])
    np.testing.assert_allclose(host(A.scale_rows(on(backend, r))), (sp.diags(r) @ M).toarray())
    np.testing.assert_allclose(host(A.scale_columns(on(backend, c))), (M @ sp.diags(c)).toarray())
    rd = da.from_array(on(backend, r), chunks=max(1, M.shape[0] // 2))
    np.testing.assert_allclose(host(A.scale_rows(rd)), (sp.diags(r) @ M).toarray())


def test_power_prune_abs_scalar(pair):
    M, A = pair
    np.testing.assert_allclose(host(A.power(2.5)), M.power(2.5).toarray())
    kept = M.toarray()
    kept[np.abs(kept) < 0.5] = 0
    pruned = A.prune(0.5)
    np.testing.assert_array_equal(host(pruned), kept)
    assert pruned.nnz == np.count_nonzero(kept)  # explicit zeros are removed
    np.testing.assert_allclose(host(-(2 * A) / 4), -M.toarray() / 2)
    np.testing.assert_allclose(host(abs(-A)), abs(M).toarray())


def test_reductions_and_diagonal(backend):
    M = random_csr(30, 30, 0.2, 6)
    A = from_array(on(backend, M), chunks=8)
    np.testing.assert_allclose(host(A.sum(axis=0)), M.sum(axis=0).A1)
    np.testing.assert_allclose(host(A.sum(axis=1)), M.sum(axis=1).A1)
    np.testing.assert_allclose(float(A.sum().compute()), M.sum())
    np.testing.assert_allclose(host(A.diagonal()), M.diagonal())
    assert float(A.max_abs().compute()) == pytest.approx(abs(M).max())


def test_add_sub_maximum_with_other_chunks(backend):
    M, N = random_csr(40, 20, 0.2, 7), random_csr(40, 20, 0.2, 8)
    A, B = from_array(on(backend, M), chunks=9), from_array(on(backend, N), chunks=15)
    np.testing.assert_allclose(host(A + B), (M + N).toarray())
    np.testing.assert_allclose(host(A - B), (M - N).toarray())
    np.testing.assert_allclose(host(A.maximum(B)), M.maximum(N).toarray())


def test_symmetry():
    M = random_csr(30, 30, 0.2, 9)
    assert not from_array(M, chunks=7).is_symmetric()
    assert from_array(M + M.T, chunks=7).is_symmetric()
    assert not from_array(random_csr(30, 20, 0.2, 9)).is_symmetric()


def _topk_reference(M: sp.csr_matrix, k: int) -> np.ndarray:
    """Dense reference: per column the k largest values, ties to the smaller row."""
    D = M.toarray()
    out = np.zeros_like(D)
    for j in range(D.shape[1]):
        rows = np.flatnonzero(M[:, j].toarray().ravel() != 0)
        order = sorted(rows, key=lambda r: (-D[r, j], r))[:k]
        out[order, j] = D[order, j]
    return out


@pytest.mark.parametrize("k", [1, 3, 50])
def test_topk_per_column(backend, k):
    M = random_csr(60, 25, 0.3, 10)
    M.data = np.round(M.data * 4) / 4 + 0.25  # many ties, no zeros
    A = from_array(on(backend, M), chunks=11)
    np.testing.assert_array_equal(host(A.topk_per_column(k)), _topk_reference(M, k))


def test_topk_rejects_bad_k():
    A = from_array(random_csr(5, 5, 0.5, 0))
    with pytest.raises(ValueError, match="k must be a positive integer"):
        A.topk_per_column(0)


def test_runs_on_distributed_client(client):
    M = random_csr(500, 500, 0.01, 11)
    A = from_array(M, chunks=100).persist()
    x = np.arange(500.0)
    np.testing.assert_allclose((A @ x).compute(), M @ x)
    np.testing.assert_allclose(host(A @ A.T), (M @ M.T).toarray())
    assert isinstance(A, CSRMatrix)


def test_is_a_dask_collection():
    M = random_csr(20, 20, 0.2, 12)
    A = from_array(M, chunks=5)
    assert dask.is_dask_collection(A)
    (P,) = dask.persist(A)
    assert isinstance(P, CSRMatrix) and P.row_chunks == A.row_chunks
    (C,) = dask.compute(A)
    assert sp.issparse(C) and C.format == "csr"
    np.testing.assert_array_equal(C.toarray(), M.toarray())


def test_graph_does_not_grow_with_repeated_products():
    A = from_array(random_csr(100, 100, 0.05, 13), chunks=25).persist()
    x = da.ones(100, chunks=100)
    sizes = []
    for _ in range(3):
        x = (A @ x).persist()
        sizes.append(len(x.__dask_graph__()))
    assert sizes[0] == sizes[1] == sizes[2]


def test_from_dense_dask_and_dtype():
    D = np.random.default_rng(0).random((20, 10))
    D[D < 0.7] = 0
    X = da.from_array(D.astype(np.float32), chunks=(6, 4))
    A = from_array(X)
    assert A.dtype == np.float32 and A.row_chunks == (6, 6, 6, 2)
    np.testing.assert_array_equal(host(A), D.astype(np.float32))
    assert (A @ np.ones(10, dtype=np.float32)).dtype == np.float32
    assert A.astype(np.float64).dtype == np.float64


def test_bad_shapes_and_types():
    A = from_array(random_csr(10, 8, 0.3, 14))
    with pytest.raises(ValueError, match="needs 8 rows"):
        A @ np.ones(7)
    with pytest.raises(ValueError, match="not aligned"):
        A @ A
    with pytest.raises(ValueError, match="vector of length 10"):
        A.scale_rows(np.ones(3))
    with pytest.raises(ValueError, match="diagonal"):
        A.diagonal()
    with pytest.raises(TypeError, match="must be scipy.sparse or cupyx sparse matrices"):
        CSRMatrix(da.ones((4, 4), chunks=2))
    with pytest.raises(ValueError, match="add up to"):
        from_array(random_csr(10, 8, 0.3, 14), chunks=(3, 3))


def test_large_operand_is_scattered_not_embedded(client):
    n = 200_000  # x is 1.6 MB: scattered once instead of pickled into the graph
    rng = np.random.default_rng(15)
    M = sp.csr_matrix((rng.random(400_000), (rng.integers(0, n, 400_000), rng.integers(0, n, 400_000))), shape=(n, n))
    A = from_array(M, chunks=50_000).persist()
    x = np.random.default_rng(5).random(n)
    y = A @ x
    assert not any(isinstance(v, np.ndarray) and v.nbytes > 1 << 20 for v in dict(y.__dask_graph__()).values())
    np.testing.assert_allclose(y.compute(), M @ x)
    X = np.random.default_rng(6).random((n, 2))
    np.testing.assert_allclose((A @ X).compute(), M @ X)
