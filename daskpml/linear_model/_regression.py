"""Least-squares estimators: LinearRegression, Ridge, Lasso, ElasticNet."""

from __future__ import annotations

from numbers import Real
from typing import Any

import numpy as np
from sklearn.base import RegressorMixin

from ..backend import backend_name, get_namespace, to_backend, to_numpy
from ..validation import Interval
from ._base import LinearModelBase, _is_lazy


class _Regressor(RegressorMixin, LinearModelBase):

    def fit(self, X: Any, y: Any, resume: bool = False) -> "_Regressor":
        """Fit on ``X`` (n x d; NumPy, SciPy sparse, dask, CSRMatrix, CuPy) and targets ``y``;
        ``resume=True`` continues from the newest snapshot in ``checkpoint``."""
        X, y = self._validate_fit(X, y)
        if hasattr(y, "astype"):
            y = y.astype(np.float64) if not _is_lazy(y) else y.astype(float)
        self._fit(X, y, resume=resume)
        return self

    def _family(self) -> str:
        return "squared"

    def _store(self, coef, intercept, X) -> None:
        self.coef_ = coef
        self.intercept_ = float(intercept[0]) if intercept is not None else 0.0

    def predict(self, X: Any) -> Any:
        """Predictions ``X @ coef_ + intercept_`` (lazy for dask input)."""
        return self._linear(X)[:, 0]

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Coefficient of determination R^2 (dask input is computed)."""
        import dask
        import dask.array as da

        lazy = _is_lazy(X) or _is_lazy(y)
        if not lazy and get_namespace(X, y)[0] is np:
            return super().score(X, y, sample_weight=sample_weight)
        pred = self.predict(X)
        # lazy or device input: the (weighted) sums where the data is (dask.compute passes arrays through)
        if sample_weight is None:
            w: Any = 1.0
        elif lazy:
            w = to_backend(da.asarray(to_numpy(sample_weight)).rechunk(y.chunks), backend_name(y))
        else:
            w = get_namespace(y)[0].asarray(sample_weight, dtype=np.float64)
        r = y - pred
        sse, total, sq, n = dask.compute((w * r * r).sum(), (w * y).sum(), (w * y * y).sum(),
                                         y.shape[0] if sample_weight is None else w.sum())
        sst = float(sq) - float(total) ** 2 / float(n)
        return 1.0 - float(sse) / sst if sst > 0 else 0.0


_COMMON_DOC = """
    fit_intercept : bool, default True
        Fit an (unpenalized) intercept.
    solver : str or callable, default "auto"
        Any name in ``daskpml.optim.SOLVERS`` ({solvers}); "auto" is {auto}.
    max_iter : int
        Iterations (epochs for the SGD solvers).
    tol : float
        Stopping tolerance (max-norm of the gradient, or of the gradient mapping for FISTA).
    random_state : int, optional
        Seed of the stochastic solvers.
    solver_kwargs : dict, optional
        Further options of the solver (``batch_size``, ``eta0``, ``local_steps``, ``m``...).
    checkpoint : directory, optional
        Snapshots of the solver every ``checkpoint_every`` iterations (atomic writes;
        see :mod:`daskpml._checkpoint`). ``fit(X, y, resume=True)`` continues from the
        newest one and refuses a snapshot of another solver, settings or data.
    checkpoint_every : int

    Attributes
    ----------
    coef_, intercept_, n_iter_, n_features_in_
    history_ : xarray.Dataset
        Objective, gradient norm, time, communication rounds and bytes per iteration.
"""


class LinearRegression(_Regressor):
    __doc__ = """Ordinary least squares, ``min (1/2n) ||y - X w - b||^2``.

    Parameters
    ----------""" + _COMMON_DOC.format(solvers="lbfgs, newton_cg, ...", auto="lbfgs") + """
    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((10, 2)); y = X @ [1.0, -2.0] + 3
    >>> LinearRegression(tol=1e-10).fit(X, y).coef_.round(4).tolist()
    [1.0, -2.0]
    """

    def __init__(self, *, fit_intercept: bool = True, solver: Any = "auto", max_iter: int = 500,
                 tol: float = 1e-6, random_state: Any = None, solver_kwargs: dict | None = None,
                 checkpoint: Any = None, checkpoint_every: int = 10) -> None:
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.solver_kwargs = solver_kwargs
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every

    def _penalty(self):
        return None, 0.0

    def _lam(self, strength, n):
        return 0.0


class Ridge(_Regressor):
    __doc__ = """L2-penalized least squares, ``min ||y - X w - b||^2 + alpha ||w||^2`` (scikit-learn's objective).

    Parameters
    ----------
    alpha : float, default 1.0""" + _COMMON_DOC.format(solvers="lbfgs, newton_cg, ...", auto="lbfgs") + """
    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((200, 3)); y = X @ [1.0, 0.0, -2.0] + 1
    >>> Ridge(alpha=1e-3).fit(X, y).coef_.round(2).tolist()
    [1.0, 0.0, -2.0]
    """

    _parameter_constraints = {"alpha": [Interval(Real, 0, None)]}

    def __init__(self, alpha: float = 1.0, *, fit_intercept: bool = True, solver: Any = "auto",
                 max_iter: int = 500, tol: float = 1e-6, random_state: Any = None,
                 solver_kwargs: dict | None = None,
                 checkpoint: Any = None, checkpoint_every: int = 10) -> None:
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.solver_kwargs = solver_kwargs
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every

    def _penalty(self):
        if not self.alpha >= 0:
            raise ValueError(f"alpha must be non-negative, got {self.alpha}.")
        return "l2", float(self.alpha)

    def _lam(self, strength, n):
        return strength / n          # (1/2n)||r||^2 + (alpha/2n)||w||^2 = scikit-learn's / 2n


_SHOTGUN_DOC = """
    Notes
    -----
    ``solver="shotgun"`` is parallel coordinate descent (Bradley et al., 2011) over column
    blocks of ``X``: each round updates P coordinates at once from the same residual, one
    task per block; P is chosen from the spectral radius of the normalized ``X^T X``
    (``solver_kwargs={"n_parallel": P}`` overrides it, ``"n_blocks"`` sets the column
    blocks). It stops on scikit-learn's duality-gap rule, with ``tol`` relative to
    ``||y - mean(y)||^2`` (scikit-learn's default is 1e-4), and converges to scikit-learn's
    coordinate-descent solution. ``n_parallel_`` holds the P used. See
    :func:`daskpml.optim.shotgun`.
"""


class ElasticNet(_Regressor):
    __doc__ = """``min (1/2n) ||y - X w - b||^2 + alpha l1_ratio ||w||_1 + alpha (1 - l1_ratio)/2 ||w||^2``.

    Parameters
    ----------
    alpha : float, default 1.0
    l1_ratio : float in [0, 1], default 0.5""" + _COMMON_DOC.format(
        solvers="shotgun, proximal_gradient, sgd, local_sgd, one_shot_average",
        auto="proximal_gradient (FISTA)") + _SHOTGUN_DOC + """
    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((200, 3)); y = X @ [1.0, 0.0, -2.0] + 1
    >>> ElasticNet(alpha=0.01).fit(X, y).coef_.round(1).tolist()
    [1.0, 0.0, -2.0]
    """

    _default_solver = "proximal_gradient"
    _shotgun = True

    _parameter_constraints = {"alpha": [Interval(Real, 0, None)], "l1_ratio": [Interval(Real, 0, 1)]}

    def __init__(self, alpha: float = 1.0, *, l1_ratio: float = 0.5, fit_intercept: bool = True,
                 solver: Any = "auto", max_iter: int = 5000, tol: float = 1e-6, random_state: Any = None,
                 solver_kwargs: dict | None = None,
                 checkpoint: Any = None, checkpoint_every: int = 10) -> None:
        self.alpha = alpha
        self.l1_ratio = l1_ratio
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.solver_kwargs = solver_kwargs
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every

    def _penalty(self):
        if not self.alpha >= 0:
            raise ValueError(f"alpha must be non-negative, got {self.alpha}.")
        return "elasticnet", float(self.alpha)

    def _l1_ratio(self):
        return self.l1_ratio

    def _lam(self, strength, n):
        return strength


class Lasso(ElasticNet):
    __doc__ = """``min (1/2n) ||y - X w - b||^2 + alpha ||w||_1`` (scikit-learn's objective).

    Parameters
    ----------
    alpha : float, default 1.0""" + _COMMON_DOC.format(
        solvers="shotgun, proximal_gradient, sgd, local_sgd, one_shot_average",
        auto="proximal_gradient (FISTA)") + _SHOTGUN_DOC + """
    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((200, 3)); y = X @ [1.0, 0.0, -2.0] + 1
    >>> (Lasso(alpha=0.1).fit(X, y).coef_.round(1) + 0.0).tolist()
    [0.9, 0.0, -1.9]
    """

    _parameter_constraints = {"alpha": [Interval(Real, 0, None)]}

    def __init__(self, alpha: float = 1.0, *, fit_intercept: bool = True, solver: Any = "auto",
                 max_iter: int = 5000, tol: float = 1e-6, random_state: Any = None,
                 solver_kwargs: dict | None = None,
                 checkpoint: Any = None, checkpoint_every: int = 10) -> None:
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.solver_kwargs = solver_kwargs
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every

    def _penalty(self):
        return "l1", super()._penalty()[1]

    def _l1_ratio(self):
        return 1.0
