"""Blockwise NMF against scikit-learn's NMF, SciPy's NNLS and exact references."""

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
from _helpers import host, on
from scipy.optimize import nnls as scipy_nnls
from sklearn.decomposition import NMF as SKNMF
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils.estimator_checks import check_estimator

from daskpml.decomposition import NMF, nmf, nnls
from daskpml.linalg import truncated_svd
from daskpml.sparse import from_array

RNG = np.random.default_rng(0)
A = RNG.random((240, 7)) @ RNG.random((7, 36)) + 0.05 * RNG.random((240, 36))
W0 = RNG.random((240, 5))
H0 = RNG.random((5, 36))
S = sp.random(260, 40, density=0.15, format="csr", random_state=1) * 3.0
WS0 = RNG.random((260, 4))
HS0 = RNG.random((4, 40))


def sk_fit(X, solver, W, H, max_iter, tol=0.0, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return SKNMF(W.shape[1], solver=solver, init="custom", max_iter=max_iter, tol=tol, **kw).fit(
            X, W=W.copy(), H=H.copy())


def ours(X, solver, W, H, max_iter, tol=0.0, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return nmf(X, W.shape[1], solver=solver, init="custom", W=W, H=H, max_iter=max_iter, tol=tol,
                   progress=False, **kw)


def rel(a, b):
    return float(np.abs(host(a) - b).max() / np.abs(b).max())


@pytest.mark.parametrize(("solver", "sk_solver"), [("hals", "cd"), ("mu", "mu")])
def test_matches_sklearn_per_iteration(backend, solver, sk_solver):
    """Same initialization, same iteration count: the same factors (the same arithmetic)."""
    for it in (1, 4, 15):
        ref = sk_fit(A, sk_solver, W0, H0, it)
        res = ours(on(backend, A), solver, W0, H0, it)
        assert res.n_iter == it
        assert rel(res.H, ref.components_) < 1e-6
        assert rel(res.W, _sk_w(A, sk_solver, W0, H0, it)) < 1e-6
        np.testing.assert_allclose(res.reconstruction_err, ref.reconstruction_err_, rtol=1e-6)


def _sk_w(X, solver, W, H, it):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return SKNMF(W.shape[1], solver=solver, init="custom", max_iter=it, tol=0).fit_transform(
            X, W=W.copy(), H=H.copy())


@pytest.mark.parametrize(("solver", "sk_solver"), [("hals", "cd"), ("mu", "mu")])
def test_regularization_and_stopping_as_sklearn(solver, sk_solver):
    kw = dict(alpha_W=0.01, alpha_H=0.02, l1_ratio=0.3)
    ref = sk_fit(A, sk_solver, W0, H0, 400, tol=1e-3, **kw)
    res = ours(A, solver, W0, H0, 400, tol=1e-3, **kw)
    assert res.n_iter == ref.n_iter_ < 400 and res.converged
    assert rel(res.H, ref.components_) < 1e-6


def test_inner_iterations_are_repeated_sklearn_updates():
    """inner_iter=3: each factor gets three of scikit-learn's coordinate-descent updates per iteration."""
    from sklearn.decomposition._nmf import _update_coordinate_descent as sk_update

    W, Ht = W0.copy(), H0.T.copy()
    for _ in range(4):
        for _ in range(3):
            sk_update(A, W, Ht, 0.0, 0.0, False, None)
        for _ in range(3):
            sk_update(A.T, Ht, W, 0.0, 0.0, False, None)
    for layout in (dict(layout="rows"), dict(layout="grid", col_chunks=10)):
        res = ours(A, "hals", W0, H0, 4, inner_iter=3, **layout)
        assert rel(res.H, Ht.T) < 1e-6 and rel(res.W, W) < 1e-6
    plain = ours(A, "hals", W0, H0, 10)
    fast = ours(A, "hals", W0, H0, 10, inner_iter="auto")
    assert fast.reconstruction_err < plain.reconstruction_err
    assert fast.history.attrs["max_inner_w"] > 1
    with pytest.raises(ValueError, match="inner_iter"):
        nmf(A, 3, inner_iter=0)


@pytest.mark.parametrize("layout", [dict(layout="rows"), dict(layout="grid", col_chunks=10)])
def test_layouts_and_inputs_agree(layout):
    ref = ours(A, "hals", W0, H0, 12)
    for X in (A, da.from_array(A, chunks=(50, 36)), da.from_array(A, chunks=(70, 12))):
        res = ours(X, "hals", W0, H0, 12, **layout)
        assert rel(res.H, host(ref.H)) < 1e-12 and rel(res.W, host(ref.W)) < 1e-12
    grid = ours(da.from_array(A, chunks=(70, 12)), "hals", W0, H0, 3)
    assert grid.H.chunks[1] == (12, 12, 12) and grid.history.attrs["layout"] == "grid"


@pytest.mark.parametrize("layout", [dict(layout="rows"), dict(layout="grid", col_chunks=15)])
def test_sparse_stays_sparse_and_matches_sklearn(layout):
    ref = sk_fit(S, "cd", WS0, HS0, 10)
    for X in (S, from_array(S, chunks=70)):
        res = ours(X, "hals", WS0, HS0, 10, **layout)
        assert rel(res.H, ref.components_) < 1e-6
        np.testing.assert_allclose(res.reconstruction_err, ref.reconstruction_err_, rtol=1e-6)


def test_float32_end_to_end():
    res = ours(A.astype(np.float32), "hals", W0, H0, 30)
    assert res.W.dtype == np.float32 and host(res.H).dtype == np.float32
    ref = ours(A, "hals", W0, H0, 30)
    assert rel(res.H, host(ref.H)) < 1e-3
    assert ours(A, "mu", W0, H0, 5, dtype=np.float32).W.compute().dtype == np.float32


def test_anls_subproblems_are_exact():
    res = ours(A, "anls", W0, H0, 3)
    W, H = host(res.W), host(res.H)
    # The last update was H's: the KKT conditions of min ||A - W H|| over H >= 0.
    grad = W.T @ W @ H - W.T @ A
    scale = np.abs(W.T @ A).max()
    assert H.min() >= 0 and grad.min() > -1e-9 * scale
    assert np.abs(grad * H).max() < 1e-9 * scale * np.abs(H).max()
    full = nmf(A, 5, solver="anls", max_iter=200, tol=1e-6, progress=False, random_state=0)
    hals = nmf(A, 5, solver="hals", max_iter=200, tol=0, progress=False, random_state=0)
    assert full.converged and full.reconstruction_err <= hals.reconstruction_err * 1.01


def test_nnls_equals_scipy():
    rng = np.random.default_rng(4)
    C = rng.standard_normal((30, 8))
    B = rng.standard_normal((30, 50))
    X = nnls(C.T @ C, C.T @ B)
    for j in range(B.shape[1]):
        np.testing.assert_allclose(X[:, j], scipy_nnls(C, B[:, j])[0], atol=1e-10)
    warm = nnls(C.T @ C, C.T @ B, passive=rng.random((8, 50)) > 0.5)
    np.testing.assert_allclose(warm, X, atol=1e-10)


@pytest.mark.parametrize("init", ["nndsvd", "nndsvda", "nndsvdar", "random"])
def test_initializations_as_sklearn(init):
    """Exact SVD (few columns) on a low-rank matrix: the NNDSVD factors are scikit-learn's."""
    low = RNG.random((150, 4)) @ RNG.random((4, 30))
    res = nmf(low, 4, init=init, max_iter=1, tol=0, progress=False, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = SKNMF(4, init=init, max_iter=1, tol=0, random_state=0).fit(low)
    rel_err = float(res.history.relative_error[1])
    ref_err = ref.reconstruction_err_ / np.linalg.norm(low)
    if init in ("nndsvd", "nndsvda"):
        assert rel(res.H, ref.components_) < 1e-6
    else:                   # random streams differ from scikit-learn's by design
        assert rel_err < 2 * ref_err + 0.05


def test_truncated_svd_methods():
    for method in ("gram", "randomized"):
        U, s, Vt = truncated_svd(da.from_array(A, chunks=(60, 36)), 5, method=method, random_state=0)
        ref = np.linalg.svd(A, compute_uv=False)[:5]
        np.testing.assert_allclose(s, ref, rtol=1e-6)
        np.testing.assert_allclose(host(U).T @ host(U), np.eye(5), atol=1e-8)
        np.testing.assert_allclose(A @ Vt.T, host(U) * s, atol=1e-6 * ref[0])


def test_checkpoint_resume_equals_uninterrupted(tmp_path):
    full = ours(A, "hals", W0, H0, 23)

    def interrupt(record):
        if record["iteration"] == 13:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ours(A, "hals", W0, H0, 23, checkpoint=tmp_path, checkpoint_every=5, callback=interrupt)
    assert (tmp_path / "latest").read_text() == "iter-000010"
    resumed = nmf(A, 5, solver="hals", max_iter=23, tol=0, progress=False, checkpoint=tmp_path,
                  checkpoint_every=5, resume=True)
    assert resumed.n_iter == 23 and resumed.history.sizes["iteration"] == 24
    np.testing.assert_array_equal(host(resumed.H), host(full.H))
    np.testing.assert_array_equal(host(resumed.W), host(full.W))
    np.testing.assert_allclose(resumed.history.relative_error[:11], full.history.relative_error[:11])
    with pytest.raises(ValueError, match="written for shape"):
        nmf(A[:, :30], 5, max_iter=5, progress=False, checkpoint=tmp_path, resume=True)
    with pytest.raises(ValueError, match="resume=True needs checkpoint"):
        nmf(A, 5, resume=True)


def test_estimator():
    model = NMF(5, max_iter=100, tol=0, random_state=0, progress=False)
    with pytest.raises(NotFittedError):
        model.transform(A)
    W = model.fit_transform(A)
    assert model.components_.shape == (5, 36) and W.shape == (240, 5)
    assert model.fit(A) is model and model.n_iter_ >= 1 and "relative_error" in model.history_
    # transform: the exact NNLS solution for each row with H fixed
    Wt = model.transform(A[:20])
    for i in range(20):
        np.testing.assert_allclose(Wt[i], scipy_nnls(model.components_.T, A[i])[0], atol=1e-8)
    np.testing.assert_allclose(model.inverse_transform(W), W @ model.components_)
    lazy = model.transform(da.from_array(A, chunks=(60, 36)))
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute()[:20], Wt, atol=1e-10)
    assert isinstance(model.fit_transform(da.from_array(A, chunks=(60, 36))), da.Array)


def test_check_estimator():
    # No check is excluded. Tiny check data can stop at max_iter: that warning is expected there.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        results = check_estimator(NMF(2, max_iter=500, tol=1e-4, progress=False, random_state=0), on_fail=None)
    assert not [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    with pytest.raises(ValueError, match=r"Negative values in data passed to NMF: X has 1 negative"):
        NMF(2, progress=False).fit(np.array([[1.0, -1.0], [2.0, 3.0], [1.0, 1.0]]))


def test_zero_rows_and_columns_are_handled():
    Z = A.copy()
    Z[[3, 50, 51]] = 0
    Z[:, [0, 7]] = 0
    for solver in ("hals", "mu", "anls"):
        res = nmf(Z, 5, solver=solver, max_iter=30, tol=0, progress=False, random_state=0)
        W, H = host(res.W), host(res.H)
        assert np.isfinite(W).all() and np.isfinite(H).all()
        assert np.abs(W[[3, 50, 51]] @ H).max() < 1e-3 * Z.max()
        assert np.abs(W @ H[:, [0, 7]]).max() < 1e-3 * Z.max()


def test_bad_input():
    neg = A.copy()
    neg[130:133, 4] = -1.0
    with pytest.raises(ValueError, match=r"3 negative value\(s\).*chunk"):
        nmf(da.from_array(neg, chunks=(60, 36)), 3)
    nan = A.copy()
    nan[5, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        nmf(nan, 3)
    with pytest.raises(ValueError, match=r"n_components must be an integer in \[1, min"):
        nmf(A, 37)
    with pytest.raises(ValueError, match="solver"):
        nmf(A, 3, solver="cd")
    with pytest.raises(ValueError, match="init='custom' needs both"):
        nmf(A, 5, init="custom", W=W0)
    with pytest.raises(ValueError, match="H must have shape"):
        nmf(A, 5, init="custom", W=W0, H=H0[:, :10])
    with pytest.raises(ValueError, match="negative"):
        nmf(A, 5, init="custom", W=-W0, H=H0)
    with pytest.raises(ValueError, match="dtype must be None or a floating dtype"):
        nmf(A, 5, dtype=np.int32)


def test_distributed_equals_threaded(client):
    """The same graphs on a distributed cluster: identical factors, both layouts, both inits."""
    Ad = da.from_array(A, chunks=(80, 36))    # the same blocks (the random init is drawn per block)
    for kw in (dict(init="nndsvda"), dict(init="random", layout="grid", col_chunks=12)):
        with dask.config.set(scheduler="threads"):
            ref = nmf(Ad, 5, max_iter=6, tol=0, progress=False, random_state=1, **kw)
            ref_H, ref_W = ref.H.compute(), ref.W.compute()
        with dask.config.set({"daskpml.decomposition.local-bytes": 0}):      # no in-process shortcut
            res = nmf(Ad, 5, max_iter=6, tol=0, progress=False, random_state=1, **kw)
        np.testing.assert_allclose(res.H.compute(), ref_H, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(res.W.compute(), ref_W, rtol=1e-12, atol=1e-14)
    # A small matrix persisted on the cluster is gathered and factored in this process.
    with dask.config.set(scheduler="threads"):
        local = nmf(A, 5, max_iter=6, tol=0, progress=False, random_state=1).H.compute()
    small = client.persist(da.from_array(A, chunks=(60, 36)))
    res = nmf(small, 5, max_iter=6, tol=0, progress=False, random_state=1)
    np.testing.assert_allclose(res.H.compute(), local, rtol=1e-12)
