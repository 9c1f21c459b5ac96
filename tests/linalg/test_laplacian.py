"""laplacian() against scipy.sparse.csgraph.laplacian."""

import numpy as np
import pytest
import scipy.sparse as sp
from _helpers import host, on, random_csr
from scipy.sparse import csgraph

from daskpml.linalg import laplacian
from daskpml.sparse import from_array


def _graph(seed, isolated=(7, 19)):
    W = random_csr(120, 120, 0.05, seed)
    W = (W + W.T).tolil()
    W.setdiag(0.3)  # self loops are ignored, as in SciPy
    for i in isolated:
        W[i, :] = 0
        W[:, i] = 0
    return W.tocsr()


@pytest.mark.parametrize("chunks", [30, 120])
@pytest.mark.parametrize("kind,normed", [("unnormalized", False), ("sym", True)])
def test_matches_csgraph(backend, chunks, kind, normed):
    W = _graph(1)
    L, diag = laplacian(on(backend, from_array(W, chunks=chunks)), kind, return_diag=True)
    ref, ref_diag = csgraph.laplacian(W, normed=normed, return_diag=True)
    np.testing.assert_allclose(host(L), ref.toarray(), atol=1e-14)
    np.testing.assert_allclose(host(diag), ref_diag, atol=1e-14)


def test_random_walk_and_isolated_nodes():
    W = _graph(2)
    L = host(laplacian(from_array(W, chunks=50), "rw"))
    A = W.toarray()
    np.fill_diagonal(A, 0)
    d = A.sum(axis=1)
    ref = np.eye(120) - A / np.where(d > 0, d, 1)[:, None]
    ref[d == 0] = 0
    np.testing.assert_allclose(L, ref, atol=1e-14)
    assert not L[7].any() and not L[:, 19].any()  # isolated: zero row and column


def test_bad_input():
    with pytest.raises(ValueError, match="symmetrize"):
        laplacian(random_csr(30, 30, 0.2, 3))
    with pytest.raises(ValueError, match="negative"):
        laplacian(-_graph(4))
    with pytest.raises(ValueError, match="square"):
        laplacian(sp.random(4, 5, density=0.5, format="csr"))
    with pytest.raises(ValueError, match="kind"):
        laplacian(_graph(5), "normalized")
    bad = _graph(6).toarray()
    bad[1, 2] = bad[2, 1] = np.inf
    with pytest.raises(ValueError, match="inf"):
        laplacian(bad)
