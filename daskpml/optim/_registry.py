"""Solvers by name (``solver="lbfgs"``) or as callables."""

from __future__ import annotations

from typing import Any, Callable

from ._async import async_sgd, easgd, gossip_sgd
from ._batch import gradient_descent, lbfgs, newton_cg, proximal_gradient
from ._hogwild import hogwild
from ._newton import newton
from ._stochastic import local_sgd, one_shot_average, sgd

SOLVERS: dict[str, Callable[..., Any]] = {
    "gradient_descent": gradient_descent,
    "lbfgs": lbfgs,
    "newton": newton,
    "newton_cg": newton_cg,
    "proximal_gradient": proximal_gradient,
    "sgd": sgd,
    "local_sgd": local_sgd,
    "one_shot_average": one_shot_average,
    "async_sgd": async_sgd,
    "easgd": easgd,
    "hogwild": hogwild,
    "gossip_sgd": gossip_sgd,
}

#: Solvers built on dask.distributed futures: fit_linear connects (starting the embedded
#: cluster if none is running) and gives each worker a row chunk.
ASYNC_SOLVERS = frozenset({"async_sgd", "easgd", "hogwild", "gossip_sgd"})


def register_solver(name: str, solver: Callable[..., Any]) -> None:
    """Make ``solver(objective, theta0, **options)`` selectable as ``solver=name``.

    Parameters
    ----------
    name : str
        The name ``solver=`` selects.
    solver : callable
        ``solver(objective, theta0, **options) -> OptimizeResult``.

    Examples
    --------
    >>> register_solver("my_lbfgs", get_solver("lbfgs"))
    >>> get_solver("my_lbfgs") is get_solver("lbfgs")
    True
    """
    SOLVERS[name] = solver


def needs_cluster(solver: str | Callable[..., Any]) -> bool:
    """Whether a solver runs on distributed futures (and so needs a client).

    Parameters
    ----------
    solver : str or callable
        A solver name (see :data:`SOLVERS`) or a solver function.

    Returns
    -------
    needs : bool
        True for the asynchronous solvers.

    Examples
    --------
    >>> needs_cluster("async_sgd"), needs_cluster("lbfgs")
    (True, False)
    """
    return solver in ASYNC_SOLVERS or any(solver is SOLVERS[name] for name in ASYNC_SOLVERS)


def checkpointing_solvers() -> list[str]:
    """The solvers that accept ``checkpoint=`` (and so can resume).

    Returns
    -------
    names : list of str
        Sorted solver names.

    Examples
    --------
    >>> "lbfgs" in checkpointing_solvers()
    True
    """
    import inspect

    return sorted(name for name, fn in SOLVERS.items() if "checkpoint" in inspect.signature(fn).parameters)


def get_solver(solver: str | Callable[..., Any]) -> Callable[..., Any]:
    """The solver function for a name (or the callable itself).

    Parameters
    ----------
    solver : str or callable
        A solver name (see :data:`SOLVERS`) or a solver function.

    Returns
    -------
    solver : callable
        ``solver(objective, theta0, **options) -> OptimizeResult``.

    Examples
    --------
    >>> get_solver("lbfgs").__name__
    'lbfgs'
    """
    if callable(solver):
        return solver
    try:
        return SOLVERS[solver]
    except (KeyError, TypeError):
        raise ValueError(f"unknown solver {solver!r}; valid solvers are: {', '.join(sorted(SOLVERS))} "
                         "(or pass a callable solver(objective, theta0, **options)).") from None
