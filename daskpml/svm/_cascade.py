"""CascadeSVC: scikit-learn's API over :func:`daskpml.svm.cascade_svm`."""

from __future__ import annotations

import numbers
import os
import warnings
from typing import Any

import dask.array as da
import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import DataConversionWarning
from sklearn.utils.multiclass import check_classification_targets

from .._checkpoint import recorded_seed
from ..backend import backend_name, is_sparse
from .._random import resolve_seed
from ..graph import kmeans
from ..sparse import as_rows
from ._cascade_svm import KERNELS, cascade_svm, decision_values, default_partitions
from ..runtime import total_threads
from ..sparse import CSRMatrix
from ..validation import Interval, Options, ParamsValidated, check_array, check_is_fitted, check_n_features


def _host_rows(X: Any, name: str = "X") -> Any:
    """``X`` validated: a row-chunked dask array of dense or CSR blocks, or, for in-memory
    input, a float NumPy array or CSR matrix."""
    if backend_name(X) == "cupy":
        raise TypeError(f"{name} is a CuPy array, but CascadeSVC's node solver (libsvm) runs on the host; "
                        f"pass {name}.get() (or a dask array of NumPy blocks), or on GPUs use "
                        f"daskpml.linear_model.LinearSVC (a linear SVM) or cuML's SVC (kernel SVMs).")
    if hasattr(X, "__dask_graph__") or isinstance(X, CSRMatrix):
        X = as_rows(X, name=name)
        return X.blocks if isinstance(X, CSRMatrix) else X
    X = check_array(X, accept_sparse=True, name=name, ensure_min_samples=2)
    if is_sparse(X):
        X = _csr32(X)
        return X if X.dtype.kind == "f" else X.astype(np.float64)
    return np.asarray(X, dtype=np.float64 if X.dtype.kind != "f" else X.dtype)


class CascadeSVC(ParamsValidated, ClassifierMixin, BaseEstimator):
    """Kernel SVM trained as a cascade (Graf et al., 2005) over data partitions, in parallel.

    Each partition is solved on a worker by SMO (``solver="auto"``: a numba SMO over the
    node's kernel matrix for binary nodes that fit ``daskpml.svm.kernel-bytes``, else
    :class:`sklearn.svm.SVC`, i.e. libsvm); the support vectors of sibling partitions are merged and solved again up a binary tree;
    the top's support vectors are fed back to every partition until the support-vector
    set stops changing or ``max_passes`` passes ran.

    Parameters
    ----------
    C : float, default 1.0
    kernel : {"rbf", "linear", "poly", "sigmoid"}, default "rbf"
    gamma : "scale", "auto" or float, default "scale"
        As in :class:`sklearn.svm.SVC`, computed once on all the training data, so every
        node solves the same SVM.
    degree, coef0 : kernel parameters (poly, sigmoid) as in SVC.
    n_partitions : int, optional
        Leaves of the cascade. Default: a power of two at least twice the worker threads,
        with at least 500 rows per partition.
    partition : {"random", "kmeans"}, default "random"
        "random" deals the rows out at random in equal shares; "kmeans" partitions by
        k-means on the features (the divide-and-conquer variant: nearby points meet early).
    max_passes : int, default 3
        Passes of the cascade (the first one, then feedback passes).
    solver : {"auto", "smo", "libsvm"}, default "auto"
        The solver at each node. "smo" (binary problems) computes the node's kernel matrix
        once with BLAS and runs libsvm's SMO algorithm (second-order working-set selection)
        on it, compiled with numba, warm-started from the children's dual variables.
        "libsvm" is :class:`sklearn.svm.SVC`, which computes kernel rows on demand
        (with a cache) and starts from zero. "auto": "smo" for binary nodes whose kernel
        matrix fits in the ``daskpml.svm.kernel-bytes`` setting (2 GiB, about 16,000 rows),
        else "libsvm".
    tol : float, default 1e-3
        The stopping tolerance at every node (libsvm's: the maximal violating pair's gap).
    cache_size : float, default 200
        libsvm's kernel cache (MB) at nodes that libsvm solves.
    random_state : int, optional
        Seed of the partitioning.
    checkpoint : path, optional
        A directory for a snapshot after each pass that another pass follows (the support
        vectors fed back); ``fit(X, y, resume=True)`` goes on from the newest one and gives
        the uninterrupted fit's result. With ``random_state=None`` a resume reuses the
        snapshot's partitioning seed.
    checkpoint_every : int, default 1
        Passes between snapshots.

    Attributes
    ----------
    classes_, n_features_in_
    support_ : indices of the support vectors in the training data
    support_vectors_, dual_coef_, intercept_, n_support_ : as in SVC
    objective_ : float
        The final dual objective (binary problems; NaN for more classes).
    n_passes_ : int
    converged_ : bool
        Whether the support-vector set stopped changing.
    estimator_ : sklearn.svm.SVC or None
        libsvm's model of the final top node, when libsvm solved it (multi-class problems,
        ``solver="libsvm"``, or a top node too large for "smo"); multi-class predictions use it.
    history_ : xarray.Dataset
        Per pass and layer: nodes, training rows, support vectors, dual objective, slowest
        node's solve time and wall time.

    Examples
    --------
    >>> from sklearn.datasets import make_classification
    >>> X, y = make_classification(600, 5, random_state=0)
    >>> model = CascadeSVC(n_partitions=4, random_state=0).fit(X, y)
    >>> model.score(X, y) > 0.9
    True
    """

    _parameter_constraints = {
        "C": [Interval(numbers.Real, 0, None, closed="neither")], "kernel": [Options(*KERNELS)],
        "gamma": [Options("scale", "auto"), Interval(numbers.Real, 0, None, closed="neither")],
        "degree": [Interval(numbers.Integral, 0, None)], "coef0": [Interval(numbers.Real, None, None)],
        "n_partitions": [None, Interval(numbers.Integral, 1, None)], "partition": [Options("random", "kmeans")],
        "max_passes": [Interval(numbers.Integral, 1, None)], "solver": [Options("auto", "smo", "libsvm")],
        "tol": [Interval(numbers.Real, 0, None, closed="neither")],
        "cache_size": [Interval(numbers.Real, 0, None, closed="neither")], "random_state": ["random_state"],
        "checkpoint": [None, "checkpoint"], "checkpoint_every": [Interval(numbers.Integral, 1, None)]}

    def __init__(self, C: float = 1.0, *, kernel: str = "rbf", gamma: Any = "scale", degree: int = 3,
                 coef0: float = 0.0, n_partitions: int | None = None, partition: str = "random",
                 max_passes: int = 3, solver: str = "auto", tol: float = 1e-3, cache_size: float = 200.0,
                 random_state: Any = None, checkpoint: str | os.PathLike | None = None,
                 checkpoint_every: int = 1) -> None:
        self.C = C
        self.kernel = kernel
        self.gamma = gamma
        self.degree = degree
        self.coef0 = coef0
        self.n_partitions = n_partitions
        self.partition = partition
        self.max_passes = max_passes
        self.solver = solver
        self.tol = tol
        self.cache_size = cache_size
        self.random_state = random_state
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # -- checks --------------------------------------------------------------------------
    def _check_params(self, n: int) -> int:
        if self.solver not in ("auto", "smo", "libsvm"):
            raise ValueError(f"solver must be 'auto', 'smo' or 'libsvm', got {self.solver!r}.")
        if not (isinstance(self.C, numbers.Real) and self.C > 0):
            raise ValueError(f"C must be a positive number, got {self.C!r}.")
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, got {self.kernel!r}.")
        if self.partition not in ("random", "kmeans"):
            raise ValueError(f"partition must be 'random' or 'kmeans', got {self.partition!r}.")
        if not (isinstance(self.max_passes, numbers.Integral) and self.max_passes >= 1):
            raise ValueError(f"max_passes must be an integer >= 1, got {self.max_passes!r}.")
        if isinstance(self.gamma, str):
            if self.gamma not in ("scale", "auto"):
                raise ValueError(f"gamma must be 'scale', 'auto' or a positive number, got {self.gamma!r}.")
        elif not (isinstance(self.gamma, numbers.Real) and self.gamma > 0):
            raise ValueError(f"gamma must be 'scale', 'auto' or a positive number, got {self.gamma!r}.")
        parts = self.n_partitions
        if parts is None:
            return default_partitions(n, total_threads())
        if not (isinstance(parts, numbers.Integral) and 1 <= parts <= n // 2):
            raise ValueError(f"n_partitions must be an integer in [1, n_samples / 2 = {n // 2}], got {parts!r}.")
        return int(parts)

    def _gamma(self, X: Any) -> float:
        if not isinstance(self.gamma, str):
            return float(self.gamma)
        d = X.shape[1]
        if self.gamma == "auto":
            return 1.0 / d
        if isinstance(X, da.Array):
            sums = _sums_sparse if is_sparse(X._meta) else _sums_dense
            s = X.map_blocks(sums, chunks=((3,) * len(X.chunks[0]),), drop_axis=1, dtype=np.float64,
                             meta=np.empty(0)).reshape(-1, 3).sum(axis=0).compute()
        else:
            s = _sums_sparse(X) if is_sparse(X) else _sums_dense(X)
        size = X.shape[0] * d
        var = s[1] / size - (s[0] / size) ** 2
        return 1.0 / (d * var) if var > 0 else 1.0

    # -- fitting -------------------------------------------------------------------------
    def fit(self, X: Any, y: Any, *, callback: Any = None, resume: bool = False) -> "CascadeSVC":
        """Fit on ``X`` (NumPy, SciPy sparse, dask dense or sparse blocks) and labels ``y``;
        ``callback(record)`` runs after each pass with the top node's history row (``iteration``
        is the pass) and its support-vector set under ``top``; True stops. ``resume=True`` goes
        on from the newest snapshot in ``checkpoint``."""
        self._validate_params()
        if y is None:
            raise ValueError("CascadeSVC requires y to be passed, but the target y is None; pass the class labels.")
        X = _host_rows(X)
        y = check_array(y, ensure_2d=False, allow_1d=True, accept_sparse=False, name="y", dtype=None,
                        ensure_finite=False)
        if len(y.shape) == 2 and y.shape[1] == 1:
            warnings.warn("A column-vector y was passed when a 1d array was expected. Please change the shape of "
                          "y to (n_samples,), for example using ravel().", DataConversionWarning, stacklevel=2)
            y = y.ravel() if not hasattr(y, "compute") else y[:, 0]
        if len(y.shape) != 1:
            raise ValueError(f"y must be 1-D, got shape {tuple(y.shape)}; use y.ravel() for a column vector.")
        y = np.asarray(y.compute() if hasattr(y, "compute") else y)
        if X.shape[0] != y.shape[0]:
            raise ValueError(f"X and y have different numbers of samples: {X.shape[0]} and {y.shape[0]}.")
        if y.dtype.kind == "f" and not np.all(np.isfinite(y)):
            raise ValueError("y contains NaN or infinity; class labels must be finite.")
        check_classification_targets(y)
        classes = np.unique(y)
        if len(classes) < 2:
            raise ValueError(f"y has only one class ({classes[0]!r}) but a classifier needs samples of at "
                             "least 2 classes.")
        n_parts = self._check_params(X.shape[0])
        # a resume partitions as the interrupted fit did
        seed = resolve_seed(recorded_seed(self.checkpoint, "cascade_svm", self.random_state, "state")
                            if resume else self.random_state)
        labels = self._partition(X, n_parts, seed)
        gamma = self._gamma(X)
        result = cascade_svm(X, y, labels, C=self.C, kernel=self.kernel, gamma=gamma, degree=self.degree,
                             coef0=self.coef0, max_passes=self.max_passes, solver=self.solver,
                             svc_options=dict(tol=self.tol, cache_size=self.cache_size), callback=callback,
                             checkpoint=self.checkpoint, checkpoint_every=self.checkpoint_every,
                             resume=resume, random_state=seed)
        top = result.top
        self.estimator_ = result.model
        self.classes_ = classes
        self.n_features_in_ = int(X.shape[1])
        if result.model is not None:           # libsvm's order: grouped by class
            order = np.arange(len(top.idx))
            self.support_vectors_ = result.model.support_vectors_
            self.dual_coef_ = result.model.dual_coef_
            self.intercept_ = result.model.intercept_
            self.n_support_ = result.model.n_support_
        else:
            order = np.argsort(top.y == classes[-1], kind="stable")
            self.support_vectors_ = top.X[order]
            self.dual_coef_ = top.dual_coef[:, order]
            self.intercept_ = np.array([top.intercept])
            self.n_support_ = np.array([np.sum(top.y == c) for c in classes], dtype=np.int32)
        self.support_ = top.idx[order]
        self.gamma_ = gamma
        self.objective_ = result.objective
        self.n_passes_ = result.n_passes
        self.converged_ = result.converged
        self.history_ = result.history
        return self

    def _partition(self, X: da.Array, n_parts: int, seed: int) -> np.ndarray:
        n = X.shape[0]
        if n_parts == 1:
            return np.zeros(n, dtype=np.int64)
        if self.partition == "random":
            return np.random.default_rng(seed).permutation(n) % n_parts
        if isinstance(X, da.Array):
            points = X.map_blocks(lambda b: b.toarray(), dtype=X.dtype, meta=np.empty((0, 0))) \
                if is_sparse(X._meta) else X
        else:
            points = X.toarray() if is_sparse(X) else X
        out = kmeans(points, n_parts, random_state=seed)
        return np.asarray(out["labels"].compute(), dtype=np.int64)

    # -- prediction ----------------------------------------------------------------------
    def _kernel_params(self) -> dict:
        return dict(kernel=self.kernel, gamma=self.gamma_, degree=int(self.degree), coef0=float(self.coef0))

    def _block_decision(self, block: Any) -> np.ndarray:
        if len(self.classes_) == 2:
            return decision_values(block, self.support_vectors_, self.dual_coef_[0], float(self.intercept_[0]),
                                   self._kernel_params())
        return self.estimator_.decision_function(block)

    def decision_function(self, X: Any) -> Any:
        """Signed distances to the separating surface (binary: ``(n,)``; else SVC's one-vs-one/ovr
        shape). Lazy for dask input. Binary problems are evaluated with BLAS in row blocks."""
        check_is_fitted(self, "estimator_")
        X = self._check_predict(X)
        if isinstance(X, da.Array):
            if len(self.classes_) == 2:
                return X.map_blocks(self._block_decision, drop_axis=1, dtype=np.float64, meta=np.empty(0))
            width = self.estimator_.decision_function(self.support_vectors_[:1]).shape[1]
            return X.map_blocks(self._block_decision, chunks=(X.chunks[0], (width,)), dtype=np.float64,
                                meta=np.empty((0, 0)))
        return self._block_decision(X)

    def predict(self, X: Any) -> Any:
        """Class labels (lazy for dask input)."""
        check_is_fitted(self, "estimator_")
        if len(self.classes_) != 2:
            X = self._check_predict(X)
            if isinstance(X, da.Array):
                return X.map_blocks(self.estimator_.predict, drop_axis=1, dtype=self.classes_.dtype,
                                    meta=np.empty(0, dtype=self.classes_.dtype))
            return self.estimator_.predict(X)
        scores = self.decision_function(X)
        classes = self.classes_
        if isinstance(scores, da.Array):
            return scores.map_blocks(lambda s: classes[(s > 0).astype(int)], dtype=classes.dtype,
                                     meta=np.empty(0, dtype=classes.dtype))
        return classes[(scores > 0).astype(int)]

    def _check_predict(self, X: Any) -> Any:
        if backend_name(X) == "cupy":
            raise TypeError("X is a CuPy array, but CascadeSVC predicts on the host; pass X.get().")
        X = check_array(X, accept_sparse=True, name="X")
        check_n_features(self, X)
        if isinstance(X, CSRMatrix):
            X = X.blocks
        if isinstance(X, da.Array):
            if len(X.chunks[1]) > 1:
                X = X.rechunk({1: -1})
            return X
        return _csr32(X) if is_sparse(X) else np.asarray(X, dtype=np.float64)


def _csr32(X: Any) -> sp.csr_matrix:
    """A SciPy CSR matrix with 32-bit indices where they fit (libsvm takes no others)."""
    X = sp.csr_matrix(X)
    if X.indices.dtype != np.int32 and X.nnz < 2**31 and X.shape[1] < 2**31:
        X = sp.csr_matrix((X.data, X.indices.astype(np.int32), X.indptr.astype(np.int32)), shape=X.shape)
    return X


def _sums_dense(b: np.ndarray) -> np.ndarray:
    return np.array([b.sum(), (b * b).sum(), b.size], dtype=np.float64)


def _sums_sparse(b: Any) -> np.ndarray:
    return np.array([b.sum(), b.multiply(b).sum(), b.shape[0] * b.shape[1]], dtype=np.float64)
