"""The scikit-learn estimator over :func:`daskpml.decomposition.nmf`."""

from __future__ import annotations

import os
from numbers import Integral
from typing import Any, Literal

import dask.array as da
import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
)
from sklearn.utils.validation import validate_data

from ..backend import get_namespace, is_sparse
from ..sparse import CSRMatrix
from ..validation import Interval, ParamsValidated, check_array, check_is_fitted
from . import _nmf_kernels as K
from ._nmf import NMF_CONSTRAINTS, NMFOptions, _factor, check_matrix, regularization


def _transform_block(A: Any, H: Any, G: Any, l1: float, l2: float) -> Any:
    """``W`` of a row block with ``H`` fixed: the exact non-negative least-squares solution."""
    xp, _ = get_namespace(H)
    R = K.data_term(H, A)
    M = K.nnls(G + l2 * xp.eye(G.shape[0], dtype=G.dtype) if l2 else G, R - l1 if l1 else R)
    return M.T


def _lazy(X: Any) -> bool:
    return isinstance(X, (da.Array, CSRMatrix))


class NMF(ParamsValidated, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Non-negative matrix factorization ``X ~ W H`` computed blockwise (``X`` never moves).

    Parameters
    ----------
    n_components : int
    solver : {"hals", "mu", "anls"}
        See :func:`daskpml.decomposition.nmf`.
    init : {"nndsvda", "nndsvd", "nndsvdar", "random", "custom"}
    max_iter, tol, alpha_W, alpha_H, l1_ratio, dtype, random_state
        As scikit-learn's ``NMF`` (``solver="hals"`` is its ``"cd"``).
    inner_iter : int or "auto"
        Updates of each factor per iteration (1: scikit-learn's algorithm; more or
        "auto": Gillis & Glineur's acceleration). See :func:`daskpml.decomposition.nmf`.
    checkpoint : path, optional
        Directory for snapshots every ``checkpoint_every`` iterations;
        ``fit(X, resume=True)`` continues from the newest one.
    checkpoint_every : int
    layout : {"auto", "rows", "grid"}
    col_chunks : int, optional
        Columns per block of H in the grid layout.
    progress : bool, optional

    Attributes
    ----------
    components_ : array (k, n)
        ``H``: NumPy/CuPy in the row layout, a dask array in the grid layout (an ``H``
        too large to replicate is not gathered).
    n_components_ : int
    reconstruction_err_ : float
        ``||X - W H||_F`` at the end.
    n_iter_ : int
    history_ : xarray.Dataset
        Relative error, error, violation, time and bytes per iteration.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from daskpml.decomposition import NMF
    >>> X = np.random.default_rng(0).random((200, 30))
    >>> model = NMF(4, max_iter=50, tol=0, progress=False, random_state=0)
    >>> W = model.fit_transform(X)
    >>> W.shape, model.components_.shape
    ((200, 4), (4, 30))
    """

    _parameter_constraints = {**NMF_CONSTRAINTS, "n_components": [None, Interval(Integral, 1, None)]}

    def __init__(self, n_components: int | None = None, *, solver: Literal["hals", "mu", "anls"] = "hals",
                 init: str = "nndsvda", max_iter: int = 200, tol: float = 1e-4, inner_iter: int | str = 1,
                 alpha_W: float = 0.0,
                 alpha_H: float | str = 0.0, l1_ratio: float = 0.0, dtype: Any = None, random_state: Any = None,
                 checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10,
                 layout: Literal["auto", "rows", "grid"] = "auto", col_chunks: int | None = None,
                 progress: bool | None = None) -> None:
        self.n_components = n_components
        self.solver = solver
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.inner_iter = inner_iter
        self.alpha_W = alpha_W
        self.alpha_H = alpha_H
        self.l1_ratio = l1_ratio
        self.dtype = dtype
        self.random_state = random_state
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every
        self.layout = layout
        self.col_chunks = col_chunks
        self.progress = progress

    def _validate(self, X: Any, reset: bool) -> Any:
        """scikit-learn's ``validate_data`` for in-memory NumPy/SciPy input (its messages, feature
        names, ``n_features_in_``); shape checks only for dask, CSRMatrix and CuPy, whose values
        are checked (finite, non-negative) by :func:`nmf` or :meth:`transform` in one place."""
        if _lazy(X) or get_namespace(X)[0] is not np:
            X = check_array(X, ensure_finite=False, name="X")
            if not reset and X.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {X.shape[1]} features, but NMF is expecting {self.n_features_in_} "
                                 "features as input.")
            if reset:
                self.n_features_in_ = int(X.shape[1])
            return X
        X = validate_data(self, X, reset=reset, accept_sparse=["csr", "csc", "coo"],
                          dtype=[np.float64, np.float32])
        return X.tocsr() if is_sparse(X) else X

    def _fit(self, X: Any, W: Any, H: Any, resume: bool) -> Any:
        self._validate_params()
        X = self._validate(X, reset=True)
        k = self.n_components if self.n_components is not None else min(X.shape)
        options = NMFOptions.of({**self.get_params(), "W": W, "H": H, "resume": resume})
        result = _factor(check_matrix(X, name="X"), k, options)
        self.n_components_ = k
        self.components_ = result.H.compute() if result.history.attrs["layout"] == "rows" else result.H
        self.reconstruction_err_ = result.reconstruction_err
        self.n_iter_ = result.n_iter
        self.history_ = result.history
        self._fit_shape = X.shape
        return result.W if _lazy(X) else result.W.compute()

    def fit(self, X: Any, y: Any = None, W: Any = None, H: Any = None, resume: bool = False) -> NMF:
        """Learn ``H`` (``components_``) from ``X``; ``W``/``H`` for ``init="custom"``."""
        self._fit(X, W, H, resume)
        return self

    def fit_transform(self, X: Any, y: Any = None, W: Any = None, H: Any = None, resume: bool = False) -> Any:
        """Fit and return ``W`` for ``X`` (a dask array for dask input).

        ``W`` is solved once more against the final ``H`` (:meth:`transform`: one pass over
        ``X``), so that ``fit_transform(X)`` equals ``fit(X).transform(X)`` also when the fit
        stopped at ``max_iter`` before converging."""
        self._fit(X, W, H, resume)
        return self.transform(X)

    def _regularization(self) -> tuple:
        m, n = self._fit_shape
        return regularization(self.alpha_W, self.alpha_H, self.l1_ratio, m, n)

    def transform(self, X: Any) -> Any:
        """``W`` for the rows of ``X`` with ``H`` fixed: the exact non-negative least-squares
        solution of each row (with the fit's regularization on ``W``), block by block."""
        check_is_fitted(self, "components_")
        X = check_matrix(self._validate(X, reset=False), name="X")
        H = self.components_
        if isinstance(H, da.Array):
            H = H.compute()
        xp, _ = get_namespace(H)
        H = H.astype(X.dtype) if np.dtype(X.dtype).kind == "f" else H
        G = H @ H.T
        l1, l2, _, _ = self._regularization()
        k = H.shape[0]
        if isinstance(X, CSRMatrix):
            X = X.blocks
        if isinstance(X, da.Array):
            if len(X.chunks[1]) != 1:
                X = X.rechunk({1: -1})
            return X.map_blocks(_transform_block, H, G, l1, l2, chunks=(X.chunks[0], (k,)),
                                dtype=H.dtype, meta=xp.empty((0, 0), dtype=H.dtype))
        if not is_sparse(X):
            X = xp.asarray(X, dtype=H.dtype)
        return _transform_block(X, H, G, l1, l2)

    def inverse_transform(self, W: Any) -> Any:
        """``W @ components_`` (dask for dask ``W``)."""
        check_is_fitted(self, "components_")
        H = self.components_
        if isinstance(W, da.Array) or isinstance(H, da.Array):
            return da.asarray(W) @ H
        return W @ H

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = True
        return tags
