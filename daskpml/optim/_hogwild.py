"""Hogwild!: lock-free multithreaded SGD inside each worker, averaged across workers.

Inside a dask task, ``n_threads`` Python threads each run a compiled ``nogil``
numba kernel over their share of the chunk's shuffled rows, all reading and
writing one shared weight vector without locks. On sparse rows two threads rarely
touch the same coordinate, which is why the races cost little (Niu et al. 2011).
Every ``epochs_per_round`` epochs the workers' models are averaged (weighted by
rows) and the next round starts from the average: one exchange of ``|W|`` per
worker per round. On a distributed cluster the rounds run on the ranks of an SPMD
group (:mod:`daskpml.comm`): rank 0 averages the models its peers push; elsewhere
(``daskpml.optim.on-ranks`` false) the driver does, one task per worker per round.

On sparse rows the L2 penalty touches only the row's non-zeros, scaled by the
inverse frequency of each feature (Niu et al.'s rule), so a row costs O(its
non-zeros) and no thread sweeps the whole vector; the decay per row equals
``eta lam w`` on average.
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

from ..backend import get_namespace, is_sparse
from .._random import resolve_seed
from ._objective import Objective
from ._ranks import on_ranks
from ._run import OptimizeResult
from ..validation import validate_params
from ._stochastic import RENAMED, _permutation, straggle

#: Intercept steps on sparse data are scaled by this (as scikit-learn's SGD does).
SPARSE_INTERCEPT_DECAY = 0.01
#: Loss kinds of the kernel.
_KINDS = {"squared": 0, "logistic": 1, "hinge": 2, "squared_hinge": 3}
#: Learning-rate schedules of the kernel.
_SCHEDULES = {"constant": 0, "invscaling": 1, "optimal": 2}

def _compile() -> Any:
    """The numba kernels (imported, hence compiled or loaded from numba's cache, on first use)."""
    from . import _hogwild_kernels

    return _hogwild_kernels


def optimal_t0(kind: int, lam: float) -> float:
    """scikit-learn's ``learning_rate="optimal"`` offset: ``eta_t = 1 / (lam (t0 + t))``
    with ``eta_0`` set by the loss's slope at a typical weight (Bottou's heuristic)."""
    typw = math.sqrt(1.0 / math.sqrt(lam))
    slope = {0: 1.0 + typw, 1: 1.0 / (math.exp(-typw) + 1.0), 2: 1.0, 3: 2.0 * (1.0 + typw)}[kind]
    eta_init = typw / max(1.0, slope)
    return 1.0 / (eta_init * lam)


def hogwild_epochs(X: Any, y: Any, theta: np.ndarray, *, seed: int, chunk: int, first_epoch: int, epochs: int,
                   n_threads: int, kind: int, schedule: int, eta0: float, power_t: float, lam: float,
                   fit_intercept: bool, factor: float = 1.0) -> tuple:
    """``epochs`` epochs of Hogwild over one chunk, from ``theta``.

    Each epoch shuffles the rows (permutation from ``[seed, epoch, chunk]``) and deals
    them round-robin to ``n_threads`` threads that update one shared vector without
    locks. Returns ``(theta, mean loss during the sweep, updates, compute seconds)``.

    Parameters
    ----------
    X : dask array, CSRMatrix or array
        Rows (n x d).
    y : dask array or array
        Targets (n,), with the row chunks of ``X``.
    theta : numpy.ndarray
        Packed parameters ``[W.ravel(), b]``.
    seed : int
        Seed of the shuffled row order.
    chunk : int
        Index of the chunk.
    first_epoch : int
        Epoch number of the first epoch run (for the row order).
    epochs : int
        Epochs run.
    n_threads : int
        Threads per worker sharing one weight vector without locks.
    kind : int
        Loss code of the compiled kernel.
    schedule : int
        Learning-rate schedule code of the compiled kernel.
    eta0 : float
        Initial step size.
    power_t : float
        Exponent of the invscaling schedule.
    lam : float
        Strength of the penalty.
    fit_intercept : bool, default True
        Fit an unpenalized intercept.
    factor : float, default 1.0
        Straggler slowdown of this chunk (:func:`slowdown`).

    Returns
    -------
    result : tuple
        ``(theta, mean loss during the sweep, updates, compute seconds)``.

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((50, 2)); y = X @ [1.0, -1.0]
    >>> theta, loss, updates, seconds = hogwild_epochs(X, y, np.zeros(3), seed=0, chunk=0, first_epoch=0, epochs=2,
    ...                                                n_threads=1, kind=0, schedule=1, eta0=0.05, power_t=0.5,
    ...                                                lam=0.0, fit_intercept=True)
    >>> updates
    100
    """
    started = time.perf_counter()
    kernels = _compile()
    sparse = is_sparse(X)
    _check_host(X)
    n, d = X.shape
    w = np.array(theta, dtype=np.float64)
    yv = np.ascontiguousarray(y, dtype=np.float64)
    if sparse:
        X = X.tocsr()
        data = np.ascontiguousarray(X.data, dtype=np.float64)
        indices, indptr = X.indices, X.indptr          # int32 or int64: numba specializes
        counts = np.bincount(indices, minlength=d).astype(np.float64)
        inv_freq = np.where(counts > 0, n / np.maximum(counts, 1.0), 0.0)
    else:
        Xd = np.ascontiguousarray(X, dtype=np.float64)
    t0 = optimal_t0(kind, lam) if schedule == _SCHEDULES["optimal"] else 0.0
    total = 0.0
    threads = max(1, int(n_threads))
    for e in range(first_epoch, first_epoch + epochs):
        order = _permutation(seed, e, chunk, n)
        outs = [np.zeros(1) for _ in range(threads)]
        t_base = e * n + 1                              # samples seen before this epoch (1-based, as sklearn)

        def work(k: int) -> None:
            rows = order[k::threads]
            if sparse:
                kernels.sweep_csr(data, indices, indptr, yv, rows, w, inv_freq, d, fit_intercept, kind, schedule, eta0,
                                  power_t, lam, t0, t_base + k, threads, SPARSE_INTERCEPT_DECAY, outs[k])
            else:
                kernels.sweep_dense(Xd, yv, rows, w, d, fit_intercept, kind, schedule, eta0, power_t, lam, t0,
                                       t_base + k, threads, outs[k])

        if threads == 1:
            work(0)
        else:
            pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
            for th in pool:
                th.start()
            for th in pool:
                th.join()
        total += sum(o[0] for o in outs)
    elapsed = straggle(factor, started)
    return w, total / max(n * epochs, 1), n * epochs, elapsed


def check_hogwild(objective: Objective, n_threads: int, learning_rate: str, eta0: float, power_t: float,
                  epochs_per_round: int, seed: int) -> dict:
    """Check :func:`hogwild`'s options against the objective; the kernel's options."""
    family = objective.family.name
    if family not in _KINDS:
        raise ValueError(f"hogwild supports the {', '.join(_KINDS)} losses, not {family!r}; use async_sgd.")
    if objective.penalty.l1 and objective.lam:
        raise ValueError("hogwild supports L2 penalties only; use async_sgd or proximal_gradient for L1.")
    if learning_rate not in _SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {learning_rate!r}; choose "
                         f"{', '.join(map(repr, _SCHEDULES))}.")
    lam = objective.lam * objective.penalty.l2
    if learning_rate == "optimal" and lam <= 0:
        raise ValueError("learning_rate='optimal' needs an L2 penalty (lam > 0); "
                         "use 'invscaling' or 'constant' without one.")
    if int(n_threads) < 1 or int(epochs_per_round) < 1:
        raise ValueError(f"n_threads and epochs_per_round must be positive integers, got {n_threads} and "
                         f"{epochs_per_round}.")
    if not eta0 > 0:
        raise ValueError(f"eta0 must be positive, got {eta0}.")
    return dict(seed=seed, n_threads=int(n_threads), kind=_KINDS[family], schedule=_SCHEDULES[learning_rate],
                eta0=float(eta0), power_t=float(power_t), lam=float(lam), fit_intercept=objective.layout.fit_intercept)


def _check_host(X: Any) -> None:
    if get_namespace(X)[0] is not np:
        raise TypeError("hogwild runs compiled CPU kernels: it needs NumPy or SciPy blocks, not GPU arrays; "
                        "use async_sgd or local_sgd on GPUs.")


def _hogwild_ranks(*args: Any, **kwargs: Any) -> Any:
    from ._async_ranks import hogwild_on_ranks

    return hogwild_on_ranks(*args, **kwargs)


def _host_only(solver: Callable) -> Callable:
    """Refuse device input before the ranks start (the kernels are CPU-only)."""
    @functools.wraps(solver)
    def checked(objective: Objective, theta0: np.ndarray, **options: Any) -> Any:
        if objective.data.get("X") is not None:
            _check_host(objective.data["X"])
        return solver(objective, theta0, **options)

    checked.check_input = _check_host        # fit_linear asks before it starts a cluster
    return checked


@validate_params({}, removed=RENAMED)
@_host_only
@on_ranks(rank_fn=_hogwild_ranks, collective=False)
def hogwild(objective: Objective, theta0: np.ndarray, *, n_threads: int = 2,
            learning_rate: str = "optimal", eta0: float = 0.01, power_t: float = 0.5,
            epochs_per_round: int = 1, max_iter: int = 5, max_time: float | None = None, tol: float | None = None,
            n_iter_no_change: int = 3, delay: Mapping[int, float] | None = None, random_state: Any = None,
            callback: Callable | None = None, progress: bool | None = None,
            checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10,
            resume: bool = False) -> OptimizeResult:
    """Hogwild! SGD: lock-free threads inside each worker, model averaging across workers.

    Parameters
    ----------
    objective : Objective
        The distributed objective (data, loss family, penalty), see :func:`fit_linear`.
    theta0 : numpy.ndarray
        Initial packed parameters ``[W.ravel(), b]`` (:func:`pack`).
    n_threads : threads per worker sharing one weight vector (lock-free).
    learning_rate : ``"optimal"`` (scikit-learn's ``1 / (lam (t0 + t))``, needs an
        L2 penalty), ``"invscaling"`` (``eta0 / t^power_t``) or ``"constant"``.
    eta0 : float
        Initial step size.
    power_t : float
        Exponent of the invscaling schedule.
    epochs_per_round : epochs each worker runs between averages.
    max_iter : epochs in all.
    max_time : float, optional
        Seconds of work after which the solver stops with its current model.
    tol : float
        Stopping tolerance (see the method's description).
    n_iter_no_change : int
        Evaluations without improvement by ``tol`` before stopping (scikit-learn's rule).
    delay : mapping of int to float, optional
        Straggler hook for tests and benchmarks: chunk -> slowdown factor (:func:`slowdown`).
    random_state : None, int or numpy.random.Generator
        Seed of the mini-batches (and of any other random draw).
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

    References
    ----------
    Niu, Recht, Re, Wright (2011), *Hogwild!: A lock-free approach to parallelizing
    stochastic gradient descent*.

    Examples
    --------
    >>> import numpy as np
    >>> from distributed import Client, LocalCluster
    >>> from daskpml.optim import fit_linear
    >>> X = np.random.default_rng(0).standard_normal((2000, 3)); y = X @ [1.0, -2.0, 0.5]
    >>> with LocalCluster(n_workers=2, processes=False, dashboard_address=None) as cluster, Client(cluster):
    ...     coef, b, res = fit_linear(X, y, family="squared", solver="hogwild", lam=1e-6, max_iter=3, random_state=0)
    >>> coef.shape
    (3,)
    """
    from ._async_engine import Engine, RunOptions

    seed = resolve_seed(random_state)
    options = check_hogwild(objective, n_threads, learning_rate, eta0, power_t, epochs_per_round, seed)
    E = int(epochs_per_round)
    P = objective.n_chunks
    run_options = RunOptions.of({**locals(), "eval_every": P})      # one history row per round of P workers
    eng = Engine("hogwild", objective, run_options, rows_per_update=math.ceil(objective.n_samples / P) * E,
                 n_threads=int(n_threads), epochs_per_round=E, seed=seed)
    weights = np.asarray(eng.sizes, dtype=float) / eng.n
    msg = 8 * len(theta0)
    theta = np.array(theta0, dtype=np.float64)
    epoch = 0
    arrived: dict[int, tuple] = {}
    n_updates = np.zeros(P)
    if eng.resumed is not None:              # the averaged model after the snapshot's round
        theta, epoch = np.array(eng.resumed.arrays["theta"]), int(eng.resumed.state["epoch"])
        n_updates = np.array(eng.resumed.arrays["sgd_updates"], dtype=float)
        options["seed"] = int(eng.resumed.state["seed"])
    eng.solver_state = lambda: ({"theta": theta, "sgd_updates": n_updates}, {"epoch": epoch, "seed": options["seed"]})

    def dispatch(i: int) -> None:
        eng.submit(hogwild_epochs, i, *eng.blocks[i], theta, chunk=i, first_epoch=epoch, epochs=E,
                   factor=eng.factors[i], **options)

    def on_result(i: int, meta: dict, value: tuple) -> bool:
        nonlocal theta, epoch
        arrived[i] = value
        if len(arrived) < P:
            return False
        theta = sum(w * arrived[j][0] for j, w in enumerate(weights))
        epoch += E
        eng.version += 1
        stop = False
        for j in range(P):
            _, loss, updates, elapsed = arrived[j]
            eng.busy[j] += elapsed
            n_updates[j] += updates
            objective.comm.add(2 * msg)
            stop = eng.record(j, theta, staleness=0, rows=updates, batch_loss=loss, save_point=j == P - 1,
                              updates_per_second=updates / max(elapsed, 1e-12)) or stop
        arrived.clear()
        if stop or eng.done:
            return True
        for j in range(P):
            dispatch(j)
        return False

    def on_lost(i: int, meta: dict) -> None:
        dispatch(i)

    for i in range(P if not eng.done else 0):
        dispatch(i)
    eng.loop(on_result, on_lost)
    return eng.finish(theta, sgd_updates=n_updates, updates_per_second=n_updates / np.maximum(eng.busy, 1e-12))
