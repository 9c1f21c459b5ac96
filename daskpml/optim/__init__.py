"""Optimization for linear models on row-chunked data: losses, penalties,
synchronous distributed solvers (gradient descent, L-BFGS, Newton-CG, FISTA,
mini-batch SGD, local SGD, one-shot averaging) and asynchronous ones on
dask.distributed futures (parameter-server SGD, EASGD, Hogwild!, gossip SGD)."""

from ._api import fit_linear, prepare
from ._async import Engine, async_sgd, easgd, gossip_sgd, sgd_steps
from ._shotgun import ShotgunResult, shotgun
from ._batch import gradient_descent, lbfgs, newton_cg, proximal_gradient, wolfe_line_search
from ._families import (FAMILIES, PENALTIES, Family, Hinge, Logistic, Multinomial, Penalty, SquaredHinge,
                        SquaredLoss, get_family, get_penalty)
from ._hogwild import hogwild, hogwild_epochs
from ._newton import newton, newton_pays
from .._blocks import tree_sum
from ._objective import Layout, Objective, chunk_loss_grad, pack
from ._registry import ASYNC_SOLVERS, SOLVERS, checkpointing_solvers, get_solver, needs_cluster, register_solver
from ._run import OptimizeResult
from ._stochastic import batch_rows, critical_batch_size, local_sgd, scheduled_rate, one_shot_average, sgd, slowdown, straggle

__all__ = [
    "ASYNC_SOLVERS", "Engine", "ShotgunResult", "shotgun", "async_sgd", "easgd", "gossip_sgd", "hogwild", "hogwild_epochs", "sgd_steps",
    "needs_cluster", "slowdown", "straggle",
    "FAMILIES", "PENALTIES", "SOLVERS", "Family", "Hinge", "Layout", "Logistic", "Multinomial", "Objective",
    "OptimizeResult", "Penalty", "SquaredHinge", "SquaredLoss", "batch_rows",
    "checkpointing_solvers", "chunk_loss_grad", "critical_batch_size", "fit_linear", "get_family", "get_penalty", "get_solver", "gradient_descent",
    "lbfgs", "local_sgd", "newton", "newton_cg", "newton_pays", "one_shot_average", "pack", "prepare",
    "proximal_gradient", "register_solver", "scheduled_rate", "sgd", "tree_sum", "wolfe_line_search",
]

#: Names that moved, and where to: asking for one is an error that names the new place.
MOVED = {"cascade_svm": "daskpml.svm.cascade_svm", "CascadeResult": "daskpml.svm.CascadeResult",
         "allreduce_cost": "daskpml.perf.allreduce_time",
         "learning_rate": "daskpml.optim.scheduled_rate (learning_rate is the solvers' schedule parameter, "
                          "as in scikit-learn)",
         "local_steps": "daskpml.optim.sgd_steps (local_steps is the solvers' parameter: SGD steps between "
                        "exchanges)"}


def __getattr__(name: str):
    if name in MOVED:
        raise AttributeError(f"daskpml.optim.{name} is now {MOVED[name]}; import it from there.")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
