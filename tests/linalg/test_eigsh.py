"""eigsh and laplacian_eigsh against SciPy / dense references."""

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
from _helpers import host, on, random_csr
from scipy.sparse import csgraph
from scipy.sparse.linalg import eigsh as scipy_eigsh

from daskpml.datasets import make_sbm
from daskpml.linalg import NoConvergence, eigsh, lanczos, laplacian_eigsh
from daskpml.sparse import from_array


@pytest.fixture(autouse=True)
def distributed_path():
    """Run the multi-block task graphs even for these small matrices (not the in-process shortcut)."""
    with dask.config.set({"daskpml.linalg.local-bytes": 0}):
        yield


def test_small_problems_run_in_process():
    A = _sym(300, 0.03, 11)
    with dask.config.set({"daskpml.linalg.local-bytes": 16 * 2**20}):
        w, V = eigsh(from_array(A, chunks=100), k=3, which="LA")
    np.testing.assert_allclose(w, np.sort(scipy_eigsh(A, k=3, which="LA", return_eigenvectors=False)), atol=1e-8)
    assert V.chunks[0] == (100, 100, 100)


def _sym(n, density, seed):
    A = random_csr(n, n, density, seed)
    return (A + A.T).tocsr()


@pytest.mark.parametrize("which", ["LA", "SA", "LM"])
@pytest.mark.parametrize("chunks", [97, 400])
def test_eigsh_matches_scipy(backend, which, chunks):
    A = _sym(400, 0.03, 1)
    w, V = eigsh(on(backend, from_array(A, chunks=chunks)), k=6, which=which, tol=1e-12, random_state=0)
    ref = np.sort(scipy_eigsh(A, k=6, which=which, tol=1e-14, return_eigenvectors=False))
    np.testing.assert_allclose(w, ref, atol=1e-8, rtol=0)
    V = host(V)
    residual = np.linalg.norm(A @ V - V * w, axis=0)
    assert residual.max() <= 1e-12 * np.abs(ref).max() * 10
    np.testing.assert_allclose(V.T @ V, np.eye(6), atol=1e-10)


def test_eigsh_dense_dask_and_numpy_input():
    rng = np.random.default_rng(0)
    M = rng.normal(size=(150, 150))
    M = M + M.T
    ref = np.linalg.eigvalsh(M)
    w = eigsh(da.from_array(M, chunks=(40, 50)), k=4, which="LA", return_eigenvectors=False)
    np.testing.assert_allclose(w, ref[-4:], atol=1e-8)
    w = eigsh(M, k=3, which="SA", return_eigenvectors=False, ncv=30)
    np.testing.assert_allclose(w, ref[:3], atol=1e-8)


def test_residuals_within_tol_and_history():
    A = _sym(3000, 0.002, 2)
    res = lanczos(from_array(A, chunks=700), k=5, which="LA", tol=1e-6, random_state=3)
    w, V, hist = res.eigenvalues, host(res.eigenvectors), res.history
    residual = np.linalg.norm(A @ V - V * w, axis=0)
    assert (residual <= 1e-6 * np.abs(w) * 1.01).all()
    assert hist.attrs["matvecs"] == int(hist["matvecs"][-1])
    assert hist.attrs["rounds"] < hist.attrs["matvecs"]  # one round trip per cycle, not per product
    assert {"time", "rounds", "bytes"} <= set(hist.data_vars) and hist["bytes"].attrs["source"] == "model"


def test_eigsh_has_scipys_defaults_and_arity():
    import inspect

    from scipy.sparse.linalg import eigsh as scipy_eigsh

    ours, theirs = inspect.signature(eigsh).parameters, inspect.signature(scipy_eigsh).parameters
    for name in ("k", "which", "ncv", "maxiter", "tol", "v0", "return_eigenvectors"):
        assert ours[name].default == theirs[name].default, name
    A = _sym(300, 0.03, 5)
    w = eigsh(A, k=3, return_eigenvectors=False, tol=1e-10)
    np.testing.assert_allclose(w, np.sort(scipy_eigsh(A, k=3, return_eigenvectors=False, tol=1e-12)), atol=1e-8)
    with pytest.raises(TypeError, match="no longer takes return_history=.*daskpml.linalg.lanczos"):
        eigsh(A, k=3, return_history=True)


def test_same_seed_same_result():
    A = from_array(_sym(500, 0.02, 4), chunks=128)
    w1, V1 = eigsh(A, k=4, random_state=7)
    w2, V2 = eigsh(A, k=4, random_state=7)
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(host(V1), host(V2))


def test_no_convergence_carries_converged_pairs():
    A = _sym(2000, 0.003, 6)
    with pytest.raises(NoConvergence, match="raise maxiter") as err:
        eigsh(from_array(A, chunks=500), k=8, which="SA", ncv=10, maxiter=1, tol=1e-12)
    assert len(err.value.eigenvalues) < 8


@pytest.mark.parametrize("kind,normed", [("sym", True), ("unnormalized", False), ("rw", True)])
def test_laplacian_eigsh_smallest(kind, normed):
    W = _sym(500, 0.02, 7)
    W[3, :] = 0
    W[:, 3] = 0
    W.eliminate_zeros()
    w, V = laplacian_eigsh(from_array(W, chunks=120), k=5, kind=kind, tol=1e-10, random_state=0)
    L = csgraph.laplacian(W, normed=normed).toarray()
    ref = np.linalg.eigvalsh(L)[:5] if kind != "rw" else np.linalg.eigvalsh(csgraph.laplacian(W, normed=True).toarray())[:5]
    np.testing.assert_allclose(w, ref, atol=1e-8)
    V = host(V)
    if kind == "rw":
        A = W.toarray()
        np.fill_diagonal(A, 0)  # self loops are ignored
        d = A.sum(axis=1)
        Lrw = np.eye(500) - np.diag(np.where(d > 0, 1 / np.where(d > 0, d, 1), 0)) @ A
        Lrw[d == 0] = 0
        assert np.abs(Lrw @ V - V * w).max() < 1e-7
    else:
        assert np.linalg.norm(L @ V - V * w, axis=0).max() < 1e-8


def test_connected_components_give_zero_eigenvalues():
    # three SBM graphs side by side: three components of different sizes
    parts = [make_sbm(n, 2, in_degree=6, out_degree=1, random_state=s)[0].to_scipy() for n, s in
             [(300, 1), (400, 2), (250, 3)]]
    W = sp.block_diag(parts, format="csr")
    n_comp = csgraph.connected_components(W)[0]
    w = laplacian_eigsh(from_array(W, chunks=240), k=n_comp + 2, kind="sym", tol=1e-10,
                        return_eigenvectors=False, random_state=1)
    assert n_comp >= 3
    assert (np.abs(w[:n_comp]) < 1e-8).all()
    assert w[n_comp] > 1e-3


def test_bad_input():
    A = _sym(50, 0.1, 8)
    with pytest.raises(ValueError, match="0 < k < n"):
        eigsh(A, k=50)
    with pytest.raises(ValueError, match="square"):
        eigsh(sp.random(5, 6, density=0.5, format="csr"), k=2)
    with pytest.raises(ValueError, match="which"):
        eigsh(A, k=2, which="SM")
    bad = A.toarray()
    bad[4, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        eigsh(bad, k=2)
    with pytest.raises(ValueError, match="ncv"):
        eigsh(A, k=5, ncv=5)
    asym = random_csr(50, 50, 0.1, 9)
    with pytest.raises(ValueError, match="symmetrize"):
        laplacian_eigsh(asym, k=2)
    with pytest.raises(ValueError, match="negative"):
        laplacian_eigsh(-A, k=2)


# last in the module: the module-scoped client stays the default scheduler afterwards
def test_v0_and_distributed_client(client):
    A = _sym(300, 0.03, 5)
    v0 = np.ones(300)
    w = eigsh(from_array(A, chunks=150), k=3, which="LA", v0=v0, return_eigenvectors=False)
    np.testing.assert_allclose(w, np.sort(scipy_eigsh(A, k=3, which="LA", return_eigenvectors=False)), atol=1e-8)


def test_runs_with_other_options_never_share_task_names(client):
    """Two runs on one operator with the same basis size and seed but other options (k, which,
    tol) take other paths (restarts, random refills): their tasks must not share names. They did,
    and on a cluster that still held the first run's blocks the second read them (the demo's
    spectral section failed with a shape error)."""
    A = _sym(200, 0.04, 5)
    X = from_array(A, chunks=100)
    w1, V1 = eigsh(X, k=3, which="LA", ncv=12, random_state=0)
    w2, V2 = eigsh(X, k=4, which="SA", ncv=12, tol=1e-6, random_state=0)
    assert V1.name != V2.name
    np.testing.assert_allclose(w1, np.sort(scipy_eigsh(A, k=3, which="LA", return_eigenvectors=False)), atol=1e-8)
    np.testing.assert_allclose(w2, np.sort(scipy_eigsh(A, k=4, which="SA", return_eigenvectors=False)), atol=1e-5)
    assert V1.shape == (200, 3) and V2.shape == (200, 4)
    w3, V3 = eigsh(X, k=3, which="LA", ncv=12, random_state=0)      # the same call: the same names
    assert V3.name == V1.name
    np.testing.assert_array_equal(w3, w1)
