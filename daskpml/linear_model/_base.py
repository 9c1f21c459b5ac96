"""Shared machinery of the linear-model estimators.

In-memory input (NumPy, SciPy sparse, lists, DataFrames) is validated by
scikit-learn's ``validate_data`` (feature names, dtypes, messages users know);
dask arrays, :class:`daskpml.sparse.CSRMatrix` and CuPy arrays by
:mod:`daskpml.validation`, with the NaN/inf check fused into the single pass that
persists the data. Predictions on dask input are lazy dask arrays.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import validate_data

from ..backend import get_namespace
from ..optim import ASYNC_SOLVERS, SOLVERS, fit_linear, shotgun
from ..sparse import CSRMatrix
from ..validation import Interval, ParamsValidated, check_array, check_is_fitted, check_X_y

SMOOTH_ONLY = ("lbfgs", "newton", "newton_cg")


def _is_lazy(X: Any) -> bool:
    return hasattr(X, "__dask_graph__")


def _in_memory_numpy(X: Any) -> bool:
    if _is_lazy(X):
        return False
    try:
        xp, _ = get_namespace(X)
    except Exception:
        return True
    return xp is np


#: a solver: a name from daskpml.optim.SOLVERS (checked with its own message) or a callable
SOLVER = [str, "callable"]
#: what every linear model's constructor takes, besides its penalty
COMMON_CONSTRAINTS = {
    # max_iter counts epochs for the stochastic and asynchronous solvers: a fraction is allowed
    "fit_intercept": ["boolean"], "solver": SOLVER, "max_iter": [Interval(Real, 0, None, closed="neither")],
    "tol": [None, Interval(Real, 0, None)], "random_state": ["random_state"], "solver_kwargs": [None, "dict"],
    "checkpoint": [None, "path"], "checkpoint_every": [Interval(Integral, 1, None)],
}


class LinearModelBase(ParamsValidated, BaseEstimator):
    """Base class: subclasses set ``_family()``, ``_penalty()``, ``_lam(n)``."""

    _default_solver = "lbfgs"
    _shotgun = False
    _parameter_constraints = COMMON_CONSTRAINTS

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # -- validation ----------------------------------------------------------------------
    def _validate_fit(self, X: Any, y: Any) -> tuple[Any, Any]:
        self._validate_params()
        y_numeric = not self._is_classifier()
        if _in_memory_numpy(X) and not _is_lazy(y):
            X, y = validate_data(self, X, y, accept_sparse=["csr", "csc", "coo"], y_numeric=y_numeric,
                                 dtype=[np.float64, np.float32])
            if hasattr(X, "tocsr"):
                X = X.tocsr()
            return X, y
        X, y = check_X_y(X, y, accept_sparse=True, y_numeric=y_numeric, ensure_finite="lazy",
                         ensure_min_samples=1)
        self.n_features_in_ = int(X.shape[1])
        return X, y

    def _validate_predict(self, X: Any) -> Any:
        check_is_fitted(self, "coef_")
        if _in_memory_numpy(X):
            X = validate_data(self, X, reset=False, accept_sparse=["csr", "csc", "coo"],
                              dtype=[np.float64, np.float32])
            return X.tocsr() if hasattr(X, "tocsr") else X
        X = check_array(X, accept_sparse=True, ensure_finite="lazy")
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input.")
        chunks = getattr(X, "chunks", None)
        if isinstance(X, da.Array) and len(chunks[1]) > 1:
            X = X.rechunk({1: X.shape[1]})
        return X

    def _is_classifier(self) -> bool:
        return False

    def _auto_solver(self, shape: tuple | None) -> str:
        """What ``solver="auto"`` means for data of ``shape`` (rows, features)."""
        return self._default_solver

    def _solver_name(self, shape: tuple | None = None) -> Any:
        solver = self._auto_solver(shape) if self.solver == "auto" else self.solver
        if solver == "shotgun":
            if not self._shotgun:
                raise ValueError(f"solver='shotgun' (parallel coordinate descent) fits Lasso and ElasticNet, "
                                 f"not {type(self).__name__}; use 'auto'.")
            return solver
        if isinstance(solver, str) and solver not in SOLVERS:
            raise ValueError(f"unknown solver {solver!r}; valid solvers are: "
                             f"{', '.join(['auto'] + sorted(SOLVERS))}.")
        family = self._family()
        if solver in SMOOTH_ONLY + ("proximal_gradient",) and not _smooth(family):
            raise ValueError(f"solver={solver!r} needs a differentiable loss, but {family!r} is not; use "
                             "'sgd', 'local_sgd', 'one_shot_average' or 'gradient_descent'.")
        penalty, lam = self._penalty()
        if solver in SMOOTH_ONLY + ("gradient_descent",) and penalty not in (None, "l2", "none") and lam:
            raise ValueError(f"solver={solver!r} cannot handle the {penalty} penalty; use "
                             "'proximal_gradient' (FISTA), 'sgd', 'local_sgd' or 'one_shot_average'.")
        return solver

    # -- fitting -------------------------------------------------------------------------
    def _checkpoint(self, resume: bool) -> dict:
        """The checkpoint protocol's three options (path, every, resume), when a path is set or a
        resume asked for."""
        path = getattr(self, "checkpoint", None)
        if path is None and not resume:
            return {}
        return {"checkpoint": path, "checkpoint_every": getattr(self, "checkpoint_every", 10), "resume": resume}

    def _fit(self, X: Any, y: Any, *, n_classes: int = 2, resume: bool = False) -> None:
        solver = self._solver_name(tuple(X.shape))
        checkpoint = self._checkpoint(resume)
        if solver == "shotgun":
            return self._fit_shotgun(X, y, checkpoint)
        options = dict(self.solver_kwargs or {})
        options.update(checkpoint)
        options.setdefault("max_iter", self.max_iter)
        options.setdefault("tol", self.tol)
        if solver in ("sgd", "local_sgd") or solver in ASYNC_SOLVERS:
            options.setdefault("random_state", self.random_state)
        penalty, strength = self._penalty()
        family = self._family()
        lam = self._lam(strength, X.shape[0])
        coef, intercept, result = fit_linear(
            X, y, family=family, penalty=penalty, lam=lam, l1_ratio=self._l1_ratio(),
            fit_intercept=self.fit_intercept, n_classes=n_classes, solver=solver, **options)
        self._store(coef, intercept, X)
        self.n_iter_ = int(result.n_iter)
        self.history_ = result.history
        self.solver_ = solver if isinstance(solver, str) else getattr(solver, "__name__", str(solver))

    def _l1_ratio(self) -> float:
        return 0.5

    def _fit_shotgun(self, X: Any, y: Any, checkpoint: dict) -> None:
        options = dict(self.solver_kwargs or {})
        unknown = set(options) - {"n_parallel", "n_blocks", "callback", "progress"}
        if unknown:
            raise ValueError(f"solver_kwargs {sorted(unknown)} are not options of solver='shotgun'; it takes "
                             "n_parallel, n_blocks, callback and progress.")
        penalty, strength = self._penalty()
        ratio = float(self._l1_ratio())
        if not 0.0 <= ratio <= 1.0:
            raise ValueError(f"l1_ratio must be in [0, 1], got {ratio}.")
        n = X.shape[0]
        if isinstance(X, CSRMatrix):
            X = X.blocks
        result = shotgun(X, y, l1=n * strength * ratio, l2=n * strength * (1.0 - ratio),
                         fit_intercept=self.fit_intercept, max_iter=self.max_iter, tol=self.tol,
                         random_state=self.random_state, **checkpoint, **options)
        self.coef_ = result.coef
        self.intercept_ = result.intercept if self.fit_intercept else 0.0
        self.n_iter_ = int(result.n_iter)
        self.n_parallel_ = int(result.n_parallel)
        self.history_ = result.history
        self.solver_ = "shotgun"

    def _store(self, coef: np.ndarray, intercept: np.ndarray | None, X: Any) -> None:
        raise NotImplementedError

    # -- prediction ----------------------------------------------------------------------
    def _linear(self, X: Any) -> Any:
        """``X @ coef_.T + intercept_`` with 2-D output (n, n_outputs)."""
        X = self._validate_predict(X)
        W = np.atleast_2d(self.coef_).T
        b = np.atleast_1d(self.intercept_)
        if _is_lazy(X):
            xp, _ = get_namespace(X)
            W, b = xp.asarray(W, dtype=np.result_type(X.dtype, np.float32)), xp.asarray(b)
            return (X @ W) + b
        xp, _ = get_namespace(X)
        Z = X @ xp.asarray(W)
        return xp.asarray(Z) + xp.asarray(b)


def _smooth(family: str) -> bool:
    from ..optim import get_family

    return get_family(family).smooth

