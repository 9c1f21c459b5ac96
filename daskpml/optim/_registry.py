"""Solvers by name (``solver="lbfgs"``) or as callables."""

from __future__ import annotations

from typing import Any, Callable

from ._batch import gradient_descent, lbfgs, newton_cg, proximal_gradient
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
}


def register_solver(name: str, solver: Callable[..., Any]) -> None:
    """Make ``solver(objective, theta0, **options)`` selectable as ``solver=name``."""
    SOLVERS[name] = solver


def get_solver(solver: str | Callable[..., Any]) -> Callable[..., Any]:
    """The solver function for a name (or the callable itself)."""
    if callable(solver):
        return solver
    try:
        return SOLVERS[solver]
    except (KeyError, TypeError):
        raise ValueError(f"unknown solver {solver!r}; valid solvers are: {', '.join(sorted(SOLVERS))} "
                         "(or pass a callable solver(objective, theta0, **options)).") from None
