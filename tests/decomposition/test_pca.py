"""PCA and TruncatedSVD against scikit-learn (dense, sparse, dask), labelled results, bad input."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.decomposition import PCA as SkPCA
from sklearn.decomposition import TruncatedSVD as SkSVD

from daskpml.decomposition import PCA, TruncatedSVD
from daskpml.linalg import truncated_svd
from daskpml.sparse import from_array


def low_rank(m=3000, n=25, rank=6, seed=0):
    rng = np.random.default_rng(seed)
    scales = np.geomspace(20, 2, rank)
    return (rng.normal(size=(m, rank)) * scales) @ rng.normal(size=(rank, n)) + 0.1 * rng.normal(size=(m, n)) + 5


def assert_same_up_to_sign(a, b, tol):
    signs = np.sign((a * b).sum(axis=1))
    np.testing.assert_allclose(a * signs[:, None], b, atol=tol)


@pytest.mark.parametrize("kind", ["numpy", "dask", "sparse", "csrmatrix"])
def test_tsqr_pca_matches_scikit_learn(kind):
    X = low_rank()
    if kind in ("sparse", "csrmatrix"):
        X = np.where(np.abs(X - 5) > 3, X, 0)
    ref = SkPCA(4, svd_solver="full").fit(X)
    data = {"numpy": X, "dask": da.from_array(X, chunks=(700, 25)), "sparse": sp.csr_matrix(X),
            "csrmatrix": from_array(sp.csr_matrix(X), chunks=500)}[kind]
    model = PCA(4, svd_solver="tsqr").fit(data)
    assert_same_up_to_sign(model.components_, ref.components_, 1e-9)
    np.testing.assert_allclose(model.explained_variance_, ref.explained_variance_, rtol=1e-10)
    np.testing.assert_allclose(model.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-10)
    np.testing.assert_allclose(model.singular_values_, ref.singular_values_, rtol=1e-10)
    np.testing.assert_allclose(model.noise_variance_, ref.noise_variance_, rtol=1e-8)
    np.testing.assert_allclose(model.mean_, ref.mean_, rtol=1e-12)
    Z = model.transform(data)
    Z = Z.compute() if hasattr(Z, "compute") else Z
    signs = np.sign((model.components_ * ref.components_).sum(axis=1))
    np.testing.assert_allclose(Z * signs, ref.transform(X), atol=1e-8)
    np.testing.assert_allclose(model.inverse_transform(Z), ref.inverse_transform(ref.transform(X)), atol=1e-8)


def test_randomized_pca_and_auto():
    X = low_rank(4000, 60)
    ref = SkPCA(5, svd_solver="full").fit(X)
    model = PCA(5, svd_solver="randomized", random_state=0).fit(sp.csr_matrix(X))   # implicit centring, sparse
    assert_same_up_to_sign(model.components_, ref.components_, 1e-6)
    np.testing.assert_allclose(model.explained_variance_, ref.explained_variance_, rtol=1e-8)
    assert PCA(3).fit(X).svd_solver_ == "covariance_eigh"
    gram = PCA(5, svd_solver="covariance_eigh").fit(da.from_array(X, chunks=(900, 60)))
    assert_same_up_to_sign(gram.components_, ref.components_, 1e-8)
    np.testing.assert_allclose(gram.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-9)
    assert PCA(3, svd_solver="randomized").fit(X).svd_solver_ == "randomized"


@pytest.mark.parametrize("solver", ["tsqr", "covariance_eigh", "randomized"])
def test_truncated_svd_matches_scikit_learn(solver):
    X = sp.csr_matrix(np.where(np.abs(low_rank(2000, 30) - 5) > 2, low_rank(2000, 30), 0))
    ref = SkSVD(3, algorithm="arpack").fit(X)
    model = TruncatedSVD(3, svd_solver=solver, random_state=0).fit(X)
    assert_same_up_to_sign(model.components_, ref.components_, 1e-6)
    np.testing.assert_allclose(model.singular_values_, ref.singular_values_, rtol=1e-8)
    np.testing.assert_allclose(model.explained_variance_, ref.explained_variance_, rtol=1e-6)
    np.testing.assert_allclose(model.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=1e-6)
    assert model.transform(X).shape == (2000, 3)


def test_tsqr_and_centred_gram_in_linalg():
    X = low_rank(1500, 12)
    mean = X.mean(axis=0)
    _, S_ref, Vt_ref = np.linalg.svd(X - mean, full_matrices=False)
    A = da.from_array(X, chunks=(200, 12))
    for method in ("tsqr", "gram"):
        U, S, Vt = truncated_svd(A, 4, method=method, center=mean)
        np.testing.assert_allclose(S, S_ref[:4], rtol=1e-9)
        assert_same_up_to_sign(Vt, Vt_ref[:4], 1e-7)
        np.testing.assert_allclose(np.abs(U.compute().T @ (X - mean) @ Vt.T), np.diag(S), atol=1e-6)
    assert truncated_svd(A, 2, method="tsqr", compute_u=False)[0] is None


def test_results_are_labelled_by_feature():
    X = low_rank(500, 5)
    frame = pd.DataFrame(X, columns=list("abcde"))
    model = PCA(2).fit(frame)
    res = model.results_
    assert list(res.feature.values) == list("abcde") and res.components.dims == ("component", "feature")
    np.testing.assert_allclose(res.explained_variance_ratio.values, model.explained_variance_ratio_)
    assert PCA(2).fit(X, feature_names=["v", "w", "x", "y", "z"]).results_.feature.values[-1] == "z"


def test_bad_input():
    X = low_rank(100, 5)
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN|finite"):
        PCA(2).fit(bad)
    with pytest.raises(ValueError, match="n_components"):
        PCA(6).fit(X)
    with pytest.raises(ValueError, match="n_components"):
        TruncatedSVD(0).fit(X)
    with pytest.raises(ValueError, match="svd_solver"):
        PCA(2, svd_solver="arpack").fit(X)
    with pytest.raises(ValueError):
        PCA(1).fit(X[:1])
    with pytest.raises(ValueError, match="feature_names"):
        PCA(2).fit(X, feature_names=["a"])
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        PCA(2).transform(X)
    with pytest.raises(ValueError, match="features"):
        PCA(2).fit(X).transform(X[:, :4])


@pytest.mark.parametrize("solver", ["covariance_eigh", "tsqr", "randomized"])
def test_values_whose_squares_overflow_are_named(solver):
    """Finite values near 1e300: 'Eigenvalues did not converge' before; now the cause and the fix."""
    from daskpml.decomposition import NMF

    X = np.abs(np.random.default_rng(0).standard_normal((200, 8))) * 1e300
    with pytest.raises(ValueError, match=r"X holds values as large as .*e\+300: their squares and products "
                                         r"overflow float64 .* Scale it first"):
        PCA(2, svd_solver=solver).fit(X)
    if solver == "tsqr":
        with pytest.raises(ValueError, match="A holds values as large as"):
            NMF(2, max_iter=10, tol=0, progress=False).fit(X)
    PCA(2, svd_solver=solver).fit(X / 1e300)                 # the fix the message gives works
