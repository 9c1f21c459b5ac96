"""Newton's method with a (sub-sampled) Hessian formed in the gradient's round.

For single-output families the loss Hessian is ``X1.T diag(c) X1`` (``X1`` = X with a
column of ones for the intercept). Forming it costs ``n p^2`` flops, far more than
the gradient's ``2 n p``; but an estimate from ``m`` rows has relative error of order
``sqrt(p / m)``, so a few thousand rows per parameter give Newton-like steps. Each
round computes the full loss and gradient *and* the Hessian of a fixed random subset
of rows in the same task, so an iteration is one round (plus one per rejected step),
and the ``p x p`` solve happens on the client.

Communication per round: ``P |W|`` broadcast plus a reduction of ``(1 + p + p^2)``
numbers per tree edge, so this suits models with up to a few thousand parameters.

References
----------
Roosta-Khorasani & Mahoney (2019), *Sub-sampled Newton methods*. Byrd, Chin, Neveitt &
Nocedal (2011), *On the use of stochastic Hessian information in optimization methods
for machine learning*.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any, Callable

import numpy as np

from ..backend import get_namespace, to_numpy
from .._random import resolve_seed
from ._batch import _max_abs, _require_smooth_penalty
from ._objective import Objective, _linear, _params_like, _sub_rows, chunk_loss_grad
from ._ranks import on_ranks
from ._run import OptimizeResult, Run


@lru_cache(maxsize=64)
def _subset(seed: int, n: int, m: int) -> np.ndarray:
    if m >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng([seed, 11, n, m]).choice(n, size=m, replace=False))


def chunk_loss_grad_hess(X: Any, y: Any, theta: np.ndarray, family: Any, layout: Any, fraction: float,
                         seed: int) -> np.ndarray:
    """``[loss, gradient, Hessian of the sampled rows scaled to the chunk]`` of one chunk."""
    out = chunk_loss_grad(X, y, theta, family, layout)
    n = X.shape[0]
    m = max(1, int(round(fraction * n))) if n else 0
    p = layout.size
    H = np.zeros((p, p))
    if m:
        rows = _subset(seed, n, m)
        Xs = X[rows] if m < n else X
        ys = y[rows] if m < n else y
        W, b = _params_like(theta, X, layout)
        step = _sub_rows(Xs)
        xp = get_namespace(X)[0]
        d = layout.n_features
        Hd = xp.zeros((d, d), dtype=W.dtype)
        cross = xp.zeros(d, dtype=W.dtype)
        total = 0.0
        for s in range(0, m, step):
            Xb = Xs[s:s + step]
            c = family.curvature(_linear(Xb, W, b), ys[s:s + step])
            XcT = (Xb.T * c) if not hasattr(Xb, "multiply") else Xb.T.multiply(c[None, :]).tocsr()
            Hd += to_dense(XcT @ Xb)
            cross += xp.asarray(XcT.sum(axis=1)).ravel()
            total += float(c.sum())
        H[:d, :d] = to_numpy(Hd)
        if layout.fit_intercept:
            H[:d, d] = H[d, :d] = to_numpy(cross)
            H[d, d] = total
        H *= n / m
    return np.concatenate([out, H.ravel()])


def to_dense(a: Any) -> Any:
    return a.toarray() if hasattr(a, "toarray") else a


def newton_pays(n_samples: int, n_params: int) -> bool:
    """Whether Newton's method is the cheaper default for a single-output smooth loss: its
    Hessian, formed from ``m = min(n, max(10_000, 200 p))`` rows (``hessian_fraction="auto"``),
    costs about what a few passes over the data do (``m p^2 <= 4 n p``: the Hessian is a
    matrix-matrix product, several times faster per flop than a pass over the data), and the
    ``p x p`` solve is small (``p <= 2000``). Newton then needs a handful of iterations where
    L-BFGS needs dozens to hundreds on ill-conditioned data.

    Parameters
    ----------
    n_samples : int
        Rows.
    n_params : int
        Parameters (features plus intercept).

    Returns
    -------
    bool

    Examples
    --------
    >>> newton_pays(2_000_000, 101), newton_pays(32_561, 124)
    (True, False)
    """
    p = int(n_params)
    m = min(int(n_samples), max(10_000, 200 * p))
    return p <= 2000 and m * p <= 4 * int(n_samples)


@on_ranks
def newton(objective: Objective, theta0: np.ndarray, *, hessian_fraction: float | str = "auto",
           max_iter: int = 50, tol: float = 1e-4, random_state: Any = 0, callback: Callable | None = None,
           progress: bool | None = None, checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10, resume: bool = False) -> OptimizeResult:
    """Newton's method with a sub-sampled Hessian and Armijo backtracking.

    Parameters
    ----------
    objective : Objective
        The distributed objective (data, loss family, penalty), see :func:`fit_linear`.
    theta0 : numpy.ndarray
        Initial packed parameters ``[W.ravel(), b]`` (:func:`pack`).
    hessian_fraction : float in (0, 1] or "auto"
        Share of each chunk's rows whose Hessian is formed every round; 1.0 is exact
        Newton. ``"auto"``: ``max(10_000, 200 p)`` rows in all (``p`` parameters), at
        most every row.
    max_iter : int
        Iterations (epochs for the stochastic solvers) at most.
    tol : float
        Stopping tolerance (see the method's description).
    random_state : int
        Seed of the (fixed) row subset.
    callback : callable(record) -> bool, optional
        Called after every history row with the row, ``iteration`` and the current ``theta``; a true return value stops the solver with the model it has.
    progress : bool, optional
        A progress line (default: on a terminal, ``daskpml.progress``).
    checkpoint : str or os.PathLike, optional
        A folder for snapshots of the solver's state and history.
    checkpoint_every : int, default 10
        Iterations (updates for the asynchronous solvers) between snapshots.
    resume : bool, default False
        Continue from the newest snapshot in ``checkpoint``; the result equals an uninterrupted run's.

    Returns
    -------
    result : OptimizeResult
        The packed parameters ``theta``, the history, ``n_iter``, ``converged``, ``message`` and ``status``.

    Examples
    --------
    >>> import numpy as np
    >>> from daskpml.optim import fit_linear
    >>> X = np.random.default_rng(0).standard_normal((300, 3)); y = X @ [1.0, -2.0, 0.5]
    >>> coef, b, res = fit_linear(X, y, family="squared", solver="newton", lam=1e-6)
    >>> np.round(coef, 2).tolist(), res.history.sizes["iteration"] > 0
    ([1.0, -2.0, 0.5], True)
    """
    _require_smooth_penalty(objective, "newton")
    if objective.layout.n_outputs != 1:
        raise ValueError("newton forms the Hessian for single-output losses only; use 'lbfgs' or 'newton_cg' "
                         "for the multinomial loss.")
    p = objective.layout.size
    if hessian_fraction == "auto":
        fraction = min(1.0, max(10_000, 200 * p) / max(objective.n_samples, 1))
    else:
        fraction = float(hessian_fraction)
        if not 0 < fraction <= 1:
            raise ValueError(f"hessian_fraction must be in (0, 1] or 'auto', got {hessian_fraction!r}.")
    seed = resolve_seed(random_state)
    run = Run("newton", objective, max_iter=max_iter, tol=tol, callback=callback, progress=progress,
              checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume, hessian_fraction=fraction, seed=seed)
    if run.snapshot is not None:
        seed = int(run.snapshot.state["seed"])
    reg = np.zeros(p)
    reg[objective.mask] = objective.lam * objective.penalty.l2

    def evaluate(theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        out = objective._reduce(chunk_loss_grad_hess, theta, objective.family, objective.layout, fraction, seed)
        n = objective.n_samples
        w = theta[objective.mask]
        f = out[0] / n + objective.lam * objective.penalty.smooth_value(w)
        g = out[1:p + 1] / n + reg * theta
        H = out[p + 1:].reshape(p, p) / n + np.diag(reg)
        return float(f), g, H

    theta = np.array(theta0 if run.snapshot is None else run.snapshot.arrays["theta"], dtype=np.float64)
    f, g, H = evaluate(theta)
    converged, message, it = _max_abs(g) <= tol, "", (0 if run.snapshot is None else run.snapshot.iteration)
    while not converged and it < max_iter:
        it += 1
        d = _solve(H, g)
        slope = float(g @ d)
        if slope >= 0:
            d, slope = -g, -float(g @ g)
        step, accepted = 1.0, False
        for _ in range(30):
            f_new, g_new, H_new = evaluate(theta + step * d)
            if np.isfinite(f_new) and f_new <= f + 1e-4 * step * slope:
                accepted = True
                break
            step *= 0.5
        if not accepted:
            message = "the line search found no acceptable step"
            converged = _max_abs(g) <= max(tol, 1e-6)
            break
        theta, f, g, H = theta + step * d, f_new, g_new, H_new
        converged = _max_abs(g) <= tol
        if run.record(it, theta, f, _max_abs(g), step=step):
            break
        run.save(it, final=converged, arrays=dict(theta=theta), seed=seed)
    return run.finish(theta, it, converged, message)


def _solve(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``-H^-1 g`` by Cholesky, with a growing diagonal shift if ``H`` is not positive definite."""
    shift = 0.0
    scale = max(float(np.abs(np.diag(H)).max()), 1e-12)
    for _ in range(20):
        try:
            L = np.linalg.cholesky(H + shift * np.eye(len(g)))
            return -np.linalg.solve(L.T, np.linalg.solve(L, g))
        except np.linalg.LinAlgError:
            shift = max(2 * shift, 1e-10 * scale)
    return -g
