"""PCA and truncated SVD of tall row-blocked data (dense dask arrays or CSRMatrix).

PCA centres implicitly: the column means come from one pass, and the decomposition works on
``X - mean`` without forming it (:func:`daskpml.linalg.truncated_svd` with ``center``), so
sparse input stays sparse for the randomized solver. Solvers:

* ``"tsqr"``: exact; a tree of QR factorizations of the (centred, densified) row blocks and
  the SVD of the n x n root. Stable (it never squares the condition number), one pass.
* ``"covariance_eigh"`` (scikit-learn's name): the centred Gram matrix ``X^T X - m c c^T``
  in one pass of matrix products, then its eigendecomposition; exact, fastest for few
  features, but it squares the condition number (tiny components lose relative accuracy).
* ``"randomized"``: Halko et al.'s subspace iteration, ``n_iter + 1`` passes (scikit-learn's
  rule for ``n_iter``), for many features or few components.
* ``"auto"``: covariance_eigh up to ``daskpml.decomposition.gram-features`` features
  (default 1000), randomized above (scikit-learn's choice for tall data).
"""

from __future__ import annotations

from numbers import Integral
from typing import Any, Literal

import dask.array as da
import numpy as np
import xarray as xr
from sklearn.base import BaseEstimator, TransformerMixin

from .. import _config
from ..backend import get_namespace, is_sparse, to_numpy
from .._blocks import delayed_rows, reduce_rows
from ..linalg import centred_gram, gram_block, gram_svd, project_rows, truncated_svd
from ..sparse import CSRMatrix, as_rows
from ..validation import Interval, Options, ParamsValidated, check_is_fitted, check_n_features, overflow_guard

Solver = Literal["auto", "tsqr", "covariance_eigh", "randomized"]
SOLVERS = ("auto", "tsqr", "covariance_eigh", "randomized")

__all__ = ["PCA", "TruncatedSVD"]


def _moments_block(block: Any) -> Any:
    """Column sums and sums of squares of one block (2 x n)."""
    xp, _ = get_namespace(block)
    if is_sparse(block):
        sums = xp.asarray(block.sum(axis=0)).ravel()
        squares = xp.asarray(block.multiply(block).sum(axis=0)).ravel()
    else:
        sums, squares = block.sum(axis=0), (block * block).sum(axis=0)
    return xp.stack([sums, squares])


def _projected_moments(block: Any, V: Any) -> Any:
    return _moments_block(block @ V)


def column_moments(X: Any) -> tuple[Any, Any]:
    """Column means and (n - 1)-normalized variances of row-blocked ``X``, in one pass."""
    blocks, _ = delayed_rows(X)
    m = X.shape[0]
    sums, squares = reduce_rows(blocks, _moments_block).compute()
    mean = sums / m
    var = (squares - m * mean * mean) / (m - 1)
    xp, _ = get_namespace(var)
    return mean, xp.maximum(var, 0)


def _gram_pass(X: Any, k: int, center: bool) -> tuple[Any, Any, Any, Any]:
    """``S``, ``Vt``, the column means and variances from one pass forming ``[X^T X | X^T 1]``."""
    blocks, _ = delayed_rows(X)
    m, n = X.shape
    both = reduce_rows(blocks, gram_block, True).compute()
    G, sums = both[:, :n], both[:, n]
    xp, _ = get_namespace(G)
    mean = sums / m
    var = xp.maximum((xp.diagonal(G) - m * mean * mean) / (m - 1), 0)
    S, V = gram_svd(centred_gram(G, sums, mean, m) if center else G, k)
    return S, V.T, mean, var


def _check_k(n_components: Any, m: int, n: int, cls: str) -> int:
    limit = min(m, n)
    if n_components is None:
        return limit
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) \
            or not 1 <= n_components <= limit:
        raise ValueError(f"{cls}: n_components must be an integer from 1 to min(n_samples, n_features) = "
                         f"{limit}, got {n_components!r}.")
    return int(n_components)


def _flip(Vt: Any) -> Any:
    """scikit-learn's sign convention (``svd_flip`` on ``Vt``): each component's largest
    absolute loading is positive."""
    xp, _ = get_namespace(Vt)
    big = xp.argmax(xp.abs(Vt), axis=1)
    signs = xp.sign(Vt[xp.arange(Vt.shape[0]), big])
    return Vt * xp.where(signs == 0, 1, signs)[:, None]


class _Decomposition(ParamsValidated, TransformerMixin, BaseEstimator):
    _center = True

    _parameter_constraints = {
        "n_components": [None, Interval(Integral, 1, None)], "svd_solver": [Options(*SOLVERS)],
        "n_oversamples": [Interval(Integral, 0, None)], "n_iter": [Options("auto"), Interval(Integral, 0, None)],
        "random_state": ["random_state"]}

    def __init__(self, n_components: int | None = None, *, svd_solver: Solver = "auto", n_oversamples: int = 10,
                 n_iter: int | str = "auto", random_state: Any = None) -> None:
        self.n_components = n_components
        self.svd_solver = svd_solver
        self.n_oversamples = n_oversamples
        self.n_iter = n_iter
        self.random_state = random_state

    def _solver(self, n: int) -> str:
        if self.svd_solver not in SOLVERS:
            raise ValueError(f"svd_solver must be one of {', '.join(SOLVERS)}, got {self.svd_solver!r}.")
        if self.svd_solver != "auto":
            return self.svd_solver
        return "covariance_eigh" if n <= int(_config.get("decomposition.gram-features")) else "randomized"

    def fit(self, X: Any, y: Any = None, *, feature_names: Any = None) -> _Decomposition:
        """Fit on ``X`` (n_samples x n_features): NumPy / SciPy / CuPy arrays, dask arrays or
        a :class:`~daskpml.sparse.CSRMatrix`. ``feature_names`` label the results (default:
        a DataFrame's columns, else 0 .. n_features - 1)."""
        self._validate_params()
        names = feature_names if feature_names is not None else getattr(X, "columns", None)
        if hasattr(X, "columns") and hasattr(X, "to_numpy"):
            X = X.to_numpy()
        X = as_rows(X)
        m, n = X.shape
        if names is not None and len(names) != n:
            raise ValueError(f"feature_names has {len(names)} names for {n} features.")
        name = type(self).__name__
        k = _check_k(self.n_components, m, n, name)
        solver = self._solver(n)
        with overflow_guard(X, "X") as check:   # values near 1e300: say so, not "did not converge"
            if solver == "covariance_eigh":     # one pass: the Gram matrix with the column sums
                S, Vt, mean, var = _gram_pass(X, k, self._center)
            else:
                mean, var = column_moments(X)
                _, S, Vt = truncated_svd(X, k, method=solver, n_oversamples=self.n_oversamples,
                                         n_iter=self.n_iter, random_state=self.random_state,
                                         center=mean if self._center else None, compute_u=False)
            check(S, var)
        Vt = _flip(Vt)
        xp, _ = get_namespace(Vt)
        total = var.sum()
        if self._center:
            explained = S * S / (m - 1)
        else:                      # scikit-learn's TruncatedSVD: variances of the projections and of
            explained = self._projection_variance(X, Vt, m)     # the features, both with ddof 0
            total = total * (m - 1) / m
        self.components_ = Vt
        self.singular_values_ = S
        self.explained_variance_ = explained
        self.explained_variance_ratio_ = explained / total if float(total) > 0 else xp.zeros_like(explained)
        self.mean_ = mean if self._center else xp.zeros_like(mean)
        self.n_components_ = k
        self.n_samples_ = m
        self.n_features_in_ = n
        self.svd_solver_ = solver
        if self._center:
            rest = float(total) - float(explained.sum())
            self.noise_variance_ = max(rest, 0.0) / (n - k) if k < min(m, n) else 0.0
        self.results_ = self._results(names)
        return self

    @staticmethod
    def _projection_variance(X: Any, Vt: Any, m: int) -> Any:
        blocks, _ = delayed_rows(X)
        sums, squares = reduce_rows(blocks, _projected_moments, Vt.T).compute()
        mean = sums / m
        return (squares - m * mean * mean) / m

    def _results(self, names: Any) -> xr.Dataset:
        comp = np.arange(self.n_components_)
        feature = np.asarray(names) if names is not None else np.arange(self.n_features_in_)
        return xr.Dataset(
            {"components": (("component", "feature"), np.asarray(to_numpy(self.components_))),
             "explained_variance": ("component", np.asarray(to_numpy(self.explained_variance_))),
             "explained_variance_ratio": ("component", np.asarray(to_numpy(self.explained_variance_ratio_))),
             "singular_values": ("component", np.asarray(to_numpy(self.singular_values_))),
             "mean": ("feature", np.asarray(to_numpy(self.mean_)))},
            coords={"component": comp, "feature": feature},
            attrs={"estimator": type(self).__name__, "svd_solver": self.svd_solver_, "n_samples": self.n_samples_})

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True           # sparse input is factored without densifying
        return tags

    def transform(self, X: Any) -> Any:
        """Project ``X`` on the components: a dask array for dask / sparse input (lazy), an
        array of the input's kind otherwise."""
        check_is_fitted(self, "components_")
        in_memory = not isinstance(X, (da.Array, CSRMatrix)) and not is_sparse(X)
        rows = as_rows(X, ensure_min_samples=1)
        check_n_features(self, rows)
        blocks, chunks = delayed_rows(rows)
        center = self.mean_.reshape(1, -1) if self._center else None
        out = project_rows(blocks, chunks, self.components_.T, self.components_.dtype, center)
        return out.compute() if in_memory else out

    def inverse_transform(self, Z: Any) -> Any:
        """Back to feature space: ``Z @ components_ + mean_``."""
        check_is_fitted(self, "components_")
        return Z @ self.components_ + self.mean_

    def fit_transform(self, X: Any, y: Any = None, **kwargs: Any) -> Any:
        return self.fit(X, **kwargs).transform(X)


class PCA(_Decomposition):
    """Principal component analysis of tall data, dense or sparse, on Dask.

    Parameters
    ----------
    n_components : int, optional
        Components to keep (default ``min(n_samples, n_features)``).
    svd_solver : {"auto", "tsqr", "covariance_eigh", "randomized"}
        See the module documentation; "auto" is covariance_eigh up to 1000 features.
    n_oversamples : int, default 10
        Extra directions of the randomized solver.
    n_iter : int or "auto", default "auto"
        Power iterations of the randomized solver (scikit-learn's rule for "auto").
    random_state : None, int or numpy.random.Generator
        Seed of the randomized solver.

    Attributes
    ----------
    components_ : (k, n_features), scikit-learn's signs
    explained_variance_, explained_variance_ratio_, singular_values_, mean_, noise_variance_
    results_ : xarray Dataset: ``components`` (component x feature, labelled by feature
        names), ``explained_variance``, ``explained_variance_ratio``, ``singular_values``,
        ``mean``.

    Examples
    --------
    >>> import numpy as np
    >>> from daskpml.decomposition import PCA
    >>> X = np.random.default_rng(0).normal(size=(1000, 6))
    >>> PCA(2).fit(X).components_.shape
    (2, 6)
    """


class TruncatedSVD(_Decomposition):
    """Truncated SVD (latent semantic analysis) of tall data, dense or sparse, without centring.

        scikit-learn's ``TruncatedSVD`` attributes, and ``results_`` as :class:`PCA`.

        Parameters
        ----------
        n_components : int, default 2
            Components to keep (scikit-learn's default).
        svd_solver : {"auto", "tsqr", "covariance_eigh", "randomized"}, default "auto"
            See :class:`PCA`.
        n_oversamples : int, default 10
            Extra directions of the randomized solver.
        n_iter : int or "auto", default "auto"
            Power iterations of the randomized solver.
        random_state : None, int or numpy.random.Generator
            Seed of the randomized solver.

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> X = sp.random(500, 40, density=0.1, format="csr", random_state=0)
        >>> TruncatedSVD(3).fit(X).components_.shape
        (3, 40)
    """

    _center = False

    def __init__(self, n_components: int | None = 2, *, svd_solver: Solver = "auto", n_oversamples: int = 10,
                 n_iter: int | str = "auto", random_state: Any = None) -> None:
        super().__init__(n_components, svd_solver=svd_solver, n_oversamples=n_oversamples, n_iter=n_iter,
                         random_state=random_state)
