"""Property-based tests (hypothesis) of the row-blocked sparse operations and of validation,
against SciPy, on random shapes, chunkings (empty chunks and single rows included) and
densities."""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from daskpml.sparse import from_array
from daskpml.validation import check_array, check_graph

# DASKPML_HYPOTHESIS_EXAMPLES=500 for a longer search than CI's.
SETTINGS = settings(max_examples=int(os.environ.get("DASKPML_HYPOTHESIS_EXAMPLES", 40)), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@st.composite
def blocked(draw, square=False):
    """A random sparse matrix and a row chunking of it (chunks of 0 rows allowed)."""
    n = draw(st.integers(1, 30))
    m = n if square else draw(st.integers(1, 25))
    density = draw(st.sampled_from([0.0, 0.05, 0.2, 0.6, 1.0]))
    seed = draw(st.integers(0, 2**31 - 1))
    M = sp.random(n, m, density=density, format="csr", random_state=seed, dtype=np.float64)
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=5)))
    bounds = [0, *cuts, n]
    chunks = tuple(b - a for a, b in zip(bounds[:-1], bounds[1:]))
    return M, chunks


@SETTINGS
@given(blocked(), st.integers(0, 2**31 - 1))
@example((sp.csr_matrix((1, 1)), (0, 1)), 0)        # a leading empty chunk (dask's chunk alignment merged it)
@example((sp.random(5, 3, density=0.5, format="csr", random_state=1), (0, 2, 0, 3)), 1)
def test_products_match_scipy(case, seed):
    M, chunks = case
    A = from_array(M, chunks=chunks)
    assert A.row_chunks == chunks and A.shape == M.shape
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(M.shape[1])
    B = rng.standard_normal((M.shape[1], 3))
    np.testing.assert_allclose(np.asarray((A @ x).compute()), M @ x, atol=1e-12)
    np.testing.assert_allclose(np.asarray((A @ B).compute()), M @ B, atol=1e-12)
    y = rng.standard_normal(M.shape[0])
    np.testing.assert_allclose(np.asarray((y @ A).compute()), M.T @ y, atol=1e-12)
    np.testing.assert_allclose(np.asarray((y[None] @ A).compute()), y[None] @ M, atol=1e-12)
    C = A @ from_array(M.T.tocsr(), chunks="auto")
    np.testing.assert_allclose(C.to_scipy().toarray(), (M @ M.T).toarray(), atol=1e-12)
    np.testing.assert_allclose(A.T.to_scipy().toarray(), M.T.toarray())
    assert A.nnz == M.nnz


@SETTINGS
@given(blocked(), st.floats(0.0, 1.0), st.integers(0, 2**31 - 1))
def test_scaling_pruning_sums_match_scipy(case, threshold, seed):
    M, chunks = case
    A = from_array(M, chunks=chunks)
    rng = np.random.default_rng(seed)
    r, c = rng.random(M.shape[0]) + 0.5, rng.random(M.shape[1]) + 0.5
    np.testing.assert_allclose(A.scale_rows(r).to_scipy().toarray(), (sp.diags(r) @ M).toarray())
    np.testing.assert_allclose(A.scale_columns(c).to_scipy().toarray(), (M @ sp.diags(c)).toarray())
    kept = M.toarray()
    kept[np.abs(kept) < threshold] = 0
    np.testing.assert_allclose(A.prune(threshold).to_scipy().toarray(), kept)
    np.testing.assert_allclose(np.asarray(A.sum(axis=0).compute()).ravel(), np.asarray(M.sum(axis=0)).ravel(),
                               atol=1e-12)
    np.testing.assert_allclose(np.asarray(A.sum(axis=1).compute()).ravel(), np.asarray(M.sum(axis=1)).ravel(),
                               atol=1e-12)


@SETTINGS
@given(blocked(square=True))
def test_graph_properties_and_validation(case):
    M, chunks = case
    S = (M + M.T).tocsr()
    A = from_array(S, chunks=chunks)
    np.testing.assert_allclose(np.asarray(A.diagonal().compute()), S.diagonal())
    assert A.is_symmetric()
    check_graph(A, symmetric=True)
    asym = M - M.T
    if abs(asym).max() > 1e-9:                       # a truly asymmetric graph is refused
        with pytest.raises(ValueError, match="symmetric"):
            check_graph(from_array(abs(M).tocsr() + sp.triu(abs(M) + 1e-3 * (M != 0), 1).tocsr(),
                                   chunks=chunks), symmetric=True)


@SETTINGS
@given(blocked(), st.sampled_from([np.nan, np.inf, -np.inf]), st.integers(0, 10**6))
def test_nonfinite_entries_are_found_in_any_chunk(case, bad, where):
    M, chunks = case
    D = M.toarray()
    i, j = divmod(where % D.size, D.shape[1])
    D[i, j] = bad
    import dask.array as da

    for X in (from_array(sp.csr_matrix(D), chunks=chunks), da.from_array(D, chunks=(chunks, D.shape[1]))):
        with pytest.raises(ValueError, match="NaN|inf"):
            out = check_array(X, accept_sparse=True)
            getattr(out, "compute", lambda: out)()
