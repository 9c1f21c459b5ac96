"""``fit_linear``: prepare the data (row chunks, persisted once) and run a solver."""

from __future__ import annotations

import contextlib
import inspect
import math
from numbers import Integral, Real
from typing import Any, Callable

import dask
import dask.array as da
import numpy as np

from .. import _config
from .._blocks import as_row_chunks, check_row_chunked, is_small
from ..backend import get_namespace, is_sparse, nbytes
from ..runtime import current_client, distribute_rows, total_threads, worker_errors
from ..validation import PROTOCOL, Interval, Options, check_params, validate_params
from ._families import Family, Penalty, get_family, get_penalty
from ._objective import Layout, Objective, pack
from ._registry import checkpointing_solvers, get_solver, needs_cluster
from ._run import OptimizeResult

def prepare(X: Any, y: Any, *, chunks: Any = "auto", persist: bool = True,
            distribute: bool = False) -> tuple[Any, Any]:
    """Row-chunked, persisted ``(X, y)`` for the distributed objective, or the
    in-memory arrays themselves when they are small.

    Rule for ``chunks="auto"``: in-memory input up to ``daskpml.optim.local-bytes`` (16 MiB) stays in memory (no
    scheduler overhead); larger input is split into one row chunk per worker thread.
    Dask input keeps its row chunks (it must have a single feature chunk). Persisting
    happens here, once: the only full pass before the solver's own rounds.
    ``distribute=True`` (the asynchronous solvers) always chunks in-memory input, one
    row chunk per worker of the current client.

    Parameters
    ----------
    X : array, sparse matrix, dask array or CSRMatrix
        Rows (n x d).
    y : array or dask array
        Targets (n,).
    chunks : "auto", int or tuple
        Row chunks for in-memory input ("auto": see :func:`prepare`).
    persist : bool, default True
        Persist the chunks (the one full pass before the solver's rounds).
    distribute : bool, default False
        Always chunk in-memory input, one chunk per worker (the asynchronous solvers).

    Returns
    -------
    X : array, dask array or CSRMatrix
        Row-chunked (and persisted) rows, or the in-memory array when small.
    y : array or dask array
        Targets with the same row chunks.

    Examples
    --------
    >>> import numpy as np
    >>> X, y = prepare(np.ones((10, 2)), np.zeros(10))
    >>> type(X).__name__                  # small: stays in memory
    'ndarray'
    """
    from ..sparse import CSRMatrix, from_array

    if isinstance(X, CSRMatrix):
        y = as_row_chunks(y, X.row_chunks)
    elif isinstance(X, da.Array):
        check_row_chunked(X)
        if is_sparse(X):                   # a dask array of sparse blocks
            X = from_array(X)
        y = as_row_chunks(y, X.chunks[0])
    else:
        n = X.shape[0]
        if chunks == "auto" and distribute:
            chunks = math.ceil(n / max(1, len(current_client().nthreads())))
        elif chunks == "auto":
            if is_small(nbytes(X), "optim.local-bytes"):
                return X, (y.compute() if hasattr(y, "compute") else y)
            chunks = math.ceil(n / total_threads())
        if isinstance(y, da.Array):
            y = y.compute()
        if is_sparse(X):
            X = from_array(X.tocsr(), chunks=chunks)
            y = as_row_chunks(y, X.row_chunks)
        else:
            X = distribute_rows(X, chunks)
            y = as_row_chunks(y, X.chunks[0])
    if persist:                        # on the active scheduler: the default client, or dask's config
        X, y = dask.persist(X, y)
    return X, y


def _blas_limit(objective: Objective) -> Any:
    """Single-threaded BLAS in this process while concurrent chunk tasks may run here."""
    limit = _config.get("optim.blas-threads")
    if limit is None or not objective.distributed or objective.n_chunks < 2:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=int(limit), user_api="blas")


#: the solvers' common options (the rest are each solver's own, checked by it)
SOLVER_OPTIONS = {"max_iter": [Interval(Real, 0, None, closed="neither")], "tol": [None, Interval(Real, 0, None)],
                  "max_time": [None, Interval(Real, 0, None, closed="neither")], **PROTOCOL}


@validate_params({"family": [str, Family], "penalty": [Options("l2", "l1", "elasticnet", "none"), None, Penalty],
                  "lam": [Interval(Real, 0, None)], "l1_ratio": [Interval(Real, 0, 1)], "fit_intercept": ["boolean"],
                  "n_classes": [Interval(Integral, 2, None)], "solver": [str, "callable"],
                  "theta0": [None, "array-like"]})
def fit_linear(X: Any, y: Any, *, family: str | Family = "squared", penalty: str | Penalty | None = "l2",
               lam: float = 0.0, l1_ratio: float = 0.5, fit_intercept: bool = True, n_classes: int = 2,
               solver: str | Callable = "lbfgs", theta0: np.ndarray | None = None, chunks: Any = "auto",
               **options: Any) -> tuple[np.ndarray, np.ndarray | None, OptimizeResult]:
    """Minimize ``(1/n) sum loss(x_i W + b, y_i) + lam * penalty(W)`` over row-chunked data.

    Parameters
    ----------
    X : (n, d) array, sparse matrix, dask array (row chunks) or CSRMatrix
    y : (n,) targets: floats for ``"squared"``, class indices ``0..K-1`` otherwise
    family : ``"squared"``, ``"logistic"``, ``"multinomial"``, ``"hinge"``, ``"squared_hinge"``
    penalty, l1_ratio : ``"l2"``, ``"l1"``, ``"elasticnet"`` or None
    lam : strength of the penalty
    fit_intercept : bool, default True
        Fit unpenalized intercepts.
    n_classes : number of classes for the multinomial family
    chunks : "auto", int or tuple
        Row chunks of in-memory input (see :func:`prepare`).
    theta0 : array, optional
        Initial packed parameters (default zeros).
    solver : a name from :data:`daskpml.optim.SOLVERS` or a callable. The asynchronous
        solvers (``async_sgd``, ``easgd``, ``hogwild``, ``gossip_sgd``) run on the current
        dask.distributed client, or start the embedded local cluster.
    **options : passed to the solver (``max_iter``, ``tol``, ``batch_size``, ...);
        ``checkpoint=path``, ``checkpoint_every=k`` and ``resume=True`` snapshot and resume
        the solvers that support it (:func:`~daskpml.optim.checkpointing_solvers`)

    Returns
    -------
    coef : numpy.ndarray
        (d,) or (d, K).
    intercept : numpy.ndarray or None
        The intercepts (None without ``fit_intercept``).
    result : OptimizeResult
        The solver's result with its history.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((200, 3)); y = X @ [1., 2., 3.] + 0.5
    >>> coef, b, res = fit_linear(X, y, family="squared", solver="lbfgs", tol=1e-8)
    >>> np.round(coef, 3).tolist(), round(float(b[0]), 3)
    ([1.0, 2.0, 3.0], 0.5)
    """
    check_params("fit_linear", SOLVER_OPTIONS, options)
    fam = get_family(family)
    pen = get_penalty(penalty, l1_ratio)
    if not lam >= 0:
        raise ValueError(f"lam must be non-negative, got {lam}.")
    solve = get_solver(solver)
    if (options.get("checkpoint") is not None or options.get("resume")) \
            and "checkpoint" not in inspect.signature(solve).parameters:
        raise ValueError(f"solver {solver!r} does not write checkpoints; use one that does "
                         f"({', '.join(checkpointing_solvers())}) or leave checkpoint unset.")
    if "checkpoint" not in inspect.signature(solve).parameters:
        for key in ("checkpoint", "checkpoint_every", "resume"):       # unset or default: nothing to pass
            options.pop(key, None)
    get_namespace(X)
    check_input = getattr(solve, "check_input", None)      # a solver's own input rule (CPU-only kernels)
    if check_input is not None:
        check_input(X)
    layout = Layout(int(X.shape[1]), fam.n_outputs(n_classes), bool(fit_intercept))
    distribute = needs_cluster(solver)
    if distribute and current_client() is None:
        from ..runtime import connect

        connect()                                   # the embedded cluster, when none is named
    Xp, yp = prepare(X, y, chunks=chunks, distribute=distribute)
    objective = Objective(Xp, yp, fam, pen, lam, layout)
    theta = np.zeros(layout.size) if theta0 is None else np.asarray(theta0, dtype=np.float64)
    if theta.shape != (layout.size,):
        raise ValueError(f"theta0 must have shape ({layout.size},), got {theta.shape}.")
    with worker_errors(f"fit_linear (solver={solver!r})"), _blas_limit(objective):
        result = solve(objective, theta, **options)
    W, b = layout.unpack(result.theta)
    coef = W[:, 0].copy() if layout.n_outputs == 1 else W.copy()
    return coef, (None if b is None else b.copy()), result


__all__ = ["fit_linear", "prepare", "pack"]
