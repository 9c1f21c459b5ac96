"""Asynchronous solvers on ``dask.distributed`` futures: a parameter server
(:func:`async_sgd`), elastic averaging (:func:`easgd`) and decentralized gossip
(:func:`gossip_sgd`).

Each row chunk is one *worker* in the algorithm's sense: its tasks take the
chunk's persisted future as an argument, so the scheduler runs them where the
chunk lives and the data never moves; only models and gradients (O(|W|)) travel.
With one chunk per dask worker (what :func:`daskpml.optim.fit_linear` makes for
these solvers) the two meanings coincide.

Where the state lives
---------------------
On a distributed cluster, ``async_sgd``, ``easgd`` and ``gossip_sgd`` run on the ranks of an SPMD
group instead: the server (for gossip: the books, without the models) lives
on rank 0 and the chunks push to it worker to worker; gossip peers fetch each other's models
directly (:mod:`daskpml.optim._async_ranks`); so do ``hogwild``'s rounds. What follows describes
the futures engine, which they use with ``daskpml.optim.on-ranks`` false.

The parameter server and the EASGD centre variable are plain arrays in the
client process (the driver), which applies each push as :class:`as_completed`
delivers it. No dask worker holds server state, so losing any worker loses only
the tasks in flight on it: dask reruns them elsewhere (the chunk is recomputed
from its graph), or the driver resubmits them with the current weights when dask
gives up on them (``KilledWorker``). Either way the work lost is counted in the
history (``lost`` per worker, ``lost_tasks`` in the attributes), read from the
scheduler's ``remove-worker`` events. Dask actors were not used: an actor's state
dies with its worker.

Gossip has no server: each worker's model is a future on that worker, and the
averaging task on worker ``i`` fetches its peer's model straight from worker ``j``
(dask's worker-to-worker transfer). The driver only schedules, and gathers
the models when an objective sample is due (monitoring, not counted).

History
-------
One row per update (one applied push, elastic exchange or gossip step):
``time`` (solver wall time), ``update_worker`` (the chunk), ``version`` (the
server's model version after the update), ``staleness`` (versions applied since
the worker pulled), ``eta`` (the learning rate used), ``batch_loss``, ``rows`` (cumulative rows
processed) and ``objective``/``grad_norm``, sampled every ``eval_every`` updates
(NaN elsewhere). Per worker: ``updates``, ``lost``, ``busy_time`` and the dask
``address``. With ``tol=None`` (the default) the samples are kept as copies and
evaluated after the run in one batched round, so monitoring does not disturb the
timing; with a ``tol`` they are evaluated as the run goes (in the background) and
drive the stopping rule (``n_iter_no_change`` samples without an improvement of
``tol``).

Stopping: ``max_iter`` epochs (rows processed / n), ``max_time`` seconds, the
callback returning True, or ``KeyboardInterrupt``: all return the current model
with the history so far (tasks in flight are cancelled).

Checkpoints
-----------
With ``checkpoint=`` (through :func:`daskpml.optim.fit_linear` or an estimator), the driver
writes a snapshot every ``checkpoint_every`` updates and at the end: the server's model (the
centre and the local models for EASGD, every worker's newest model for gossip), each
worker's place in its row order, the counters, the objective samples not yet evaluated and
the history. ``resume=True`` restarts every worker from the snapshot's models; the updates
that were in flight when the run stopped are lost, as with a lost worker. An asynchronous
run is not reproducible update by update, so a resumed run matches an uninterrupted one in
its total work (epochs) and quality, not bit for bit.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

from .._random import resolve_seed
from ..validation import validate_params
from ._async_engine import Engine, RunOptions, _gossip, _model, sgd_steps
from ._objective import Objective
from ._ranks import on_ranks
from ._run import OptimizeResult
from ._stochastic import RENAMED, Schedule


def _check_sgd(batch_size: int, eta0: float) -> None:
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
    if not eta0 > 0:
        raise ValueError(f"eta0 must be positive, got {eta0}.")


def check_async_sgd(batch_size: int, eta0: float, staleness: str, push_every: int, pull_every: int,
                    max_staleness: int | None, max_iter: float, max_time: float | None,
                    n_servers: int | None = None) -> int | None:
    """Check :func:`async_sgd`'s own options; returns the staleness bound (None: unbounded)."""
    _check_sgd(batch_size, eta0)
    if n_servers is not None and (isinstance(n_servers, bool) or not isinstance(n_servers, numbers.Integral)
                                  or n_servers < 1):
        raise ValueError(f"n_servers must be a positive integer or None (one per daskpml.optim.shard-bytes of "
                         f"model), got {n_servers!r}.")
    if staleness not in ("none", "divide"):
        raise ValueError(f"staleness must be 'none' or 'divide', got {staleness!r}.")
    push_every, pull_every = int(push_every), int(pull_every)
    if push_every < 1 or pull_every < 1 or pull_every % push_every:
        raise ValueError(f"push_every and pull_every must be positive with pull_every a multiple of push_every "
                         f"(got push_every={push_every}, pull_every={pull_every}).")
    if max_staleness is not None and int(max_staleness) < 0:
        raise ValueError(f"max_staleness must be a non-negative integer or None, got {max_staleness}.")
    if not max_iter > 0:
        raise ValueError(f"max_iter (epochs) must be positive, got {max_iter}.")
    if max_time is not None and not max_time > 0:
        raise ValueError(f"max_time must be a positive number of seconds, got {max_time}.")
    return None if max_staleness is None else int(max_staleness)


def check_easgd(P: int, batch_size: int, eta0: float, local_steps: int, alpha: float | None, synchronous: bool,
                max_iter: float, max_time: float | None) -> tuple[int, float]:
    """Check :func:`easgd`'s own options; returns ``(local_steps, alpha)``."""
    _check_sgd(batch_size, eta0)
    tau = int(local_steps)                  # the paper's communication period
    if tau < 1:
        raise ValueError(f"local_steps must be a positive integer, got {local_steps}.")
    alpha = 0.9 / P if alpha is None else float(alpha)
    if not 0 < alpha < 1 or (synchronous and alpha * P > 1):
        raise ValueError(f"alpha must be in (0, 1) (and alpha * n_workers <= 1 when synchronous), got {alpha} "
                         f"with {P} workers; the default is 0.9 / n_workers.")
    if not max_iter > 0:
        raise ValueError(f"max_iter (epochs) must be positive, got {max_iter}.")
    if max_time is not None and not max_time > 0:
        raise ValueError(f"max_time must be a positive number of seconds, got {max_time}.")
    return tau, alpha


def check_gossip(P: int, batch_size: int, eta0: float, local_steps: int, max_iter: float,
                 max_time: float | None) -> int:
    """Check :func:`gossip_sgd`'s own options; returns ``local_steps``."""
    _check_sgd(batch_size, eta0)
    H = int(local_steps)
    if H < 1:
        raise ValueError(f"local_steps must be a positive integer, got {local_steps}.")
    if P < 2:
        raise ValueError("gossip_sgd needs at least 2 chunks (workers) to gossip between; "
                         "pass more row chunks or use local_sgd.")
    if not max_iter > 0:
        raise ValueError(f"max_iter (epochs) must be positive, got {max_iter}.")
    if max_time is not None and not max_time > 0:
        raise ValueError(f"max_time must be a positive number of seconds, got {max_time}.")
    return H


def _gossip_ranks(*args: Any, **kwargs: Any) -> Any:
    from ._async_ranks import gossip_sgd_on_ranks

    return gossip_sgd_on_ranks(*args, **kwargs)


def _easgd_ranks(*args: Any, **kwargs: Any) -> Any:
    from ._async_ranks import easgd_on_ranks

    return easgd_on_ranks(*args, **kwargs)


def _async_sgd_ranks(*args: Any, **kwargs: Any) -> Any:
    from ._async_ranks import async_sgd_on_ranks

    return async_sgd_on_ranks(*args, **kwargs)


@validate_params({}, removed=RENAMED)
@on_ranks(rank_fn=_async_sgd_ranks, collective=False)
def async_sgd(objective: Objective, theta0: np.ndarray, *, batch_size: int = 256,
              learning_rate: Schedule = "invscaling", eta0: float = 0.1, power_t: float = 0.25,
              gamma: float = 0.1, decay_every: int = 10, staleness: str = "none", max_staleness: int | None = None,
              push_every: int = 1, pull_every: int = 1, max_iter: float = 10, max_time: float | None = None,
              tol: float | None = None, n_iter_no_change: int = 3, eval_every: int | None = None,
              delay: Mapping[int, float] | None = None, random_state: Any = None,
              callback: Callable | None = None, progress: bool | None = None,
              checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10, resume: bool = False,
              n_servers: int | None = None) -> OptimizeResult:
    """Asynchronous SGD with a parameter server.

    Every chunk (worker) loops on its own: pull the server's weights (version ``v``),
    compute the gradient of a mini-batch of ``batch_size`` of its rows, push it. The
    server applies each push as it arrives, ``theta <- prox(theta - eta * g)``, and the
    version goes up by one; the gradient's *staleness* is the number of versions applied
    between its pull and its push.

    Parameters
    ----------
    objective : Objective
        The distributed objective (data, loss family, penalty), see :func:`fit_linear`.
    theta0 : numpy.ndarray
        Initial packed parameters ``[W.ravel(), b]`` (:func:`pack`).
    batch_size : int
        Rows of a mini-batch.
    learning_rate : {"constant", "invscaling", "step"}
        The schedule of the step size (:func:`scheduled_rate`; scikit-learn's name).
    eta0 : float
        Initial step size.
    power_t : float
        Exponent of the invscaling schedule.
    gamma : float
        Factor of the step schedule.
    decay_every : int
        Epochs between two decays of the step schedule.
    staleness : ``"none"`` or ``"divide"``
        ``"divide"`` uses ``eta / max(staleness, 1)`` (staleness-aware step, Zhang et al.
        2016); ``"none"`` applies every push with ``eta``.
    max_staleness : int, optional
        Bounded staleness: no push is ever applied more than ``max_staleness`` versions
        after its pull. The server holds back a worker (it waits for new weights) while
        the pushes already in flight could take a gradient past the bound; ``0`` makes the
        method serial. The history's ``staleness`` column never exceeds it.
    push_every, pull_every : int
        Downpour-style local accumulation: a worker takes ``push_every`` local steps on its
        own copy and pushes the sum of their gradients; it refreshes its copy from the
        server every ``pull_every`` steps (a multiple of ``push_every``).
    max_iter : float
        Epochs: the run ends when the workers together have processed ``max_iter * n`` rows.
    max_time : float, optional
        Seconds of wall time, after which the current model is returned.
    tol : float
        Stopping tolerance (see the method's description).
    n_iter_no_change : int
        Evaluations without improvement by ``tol`` before stopping (scikit-learn's rule).
    eval_every : int, optional
        Steps between two history rows with the full objective (default: one epoch).
    delay : mapping, optional
        The straggler hook (tests and benchmarks): ``{chunk: factor}`` makes that chunk's
        tasks ``factor`` times slower (see :func:`daskpml.optim.slowdown`).
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
    n_servers : int, optional
        On the ranks of a distributed cluster (``daskpml.optim.on-ranks``), the server is split
        by key range over this many ranks (at most one per rank): shard ``s`` on rank ``s``
        keeps its slice of the parameters and applies its part of every push, with its own
        version and staleness count, so that a large model's pushes and pulls spread over
        several workers' links instead of all going through rank 0. Rank 0 keeps the books
        (history, snapshots, stopping rules) and gathers the slices when it needs the whole
        model (samples, snapshots, the result); the callback then gets ``theta=None``.
        ``max_staleness`` is enforced by rank 0's shard, whose versions the history records
        (two shards holding workers back on their own could wait on each other); the other
        shards apply each push as it comes, and their slice of a worker's pull is refreshed
        when the worker asks for one (a pull forced by the bound refreshes rank 0's). Default: one
        server, or with ``daskpml.optim.shard-bytes`` set, one shard per that many bytes of
        float64 model. Sharding moves the same bytes, spread over more links: on this
        project's 2-core test machine it made an 8 MB model's updates 0.74-0.82x as fast with 2
        and 4 workers; it pays where rank 0's link or core is what limits many workers. The
        client-driven engine (no distributed cluster) keeps the model whole in the client and
        refuses ``n_servers > 1``.

    Returns
    -------
    result : OptimizeResult
        The packed parameters ``theta``, the history, ``n_iter``, ``converged``, ``message`` and ``status``.

    References
    ----------
    Dean et al. (2012), *Large scale distributed deep networks* (Downpour SGD). Zhang,
    Gupta, Lian, Liu (2016), *Staleness-aware async-SGD for distributed deep learning*.
    Ho et al. (2013), *More effective distributed ML via a stale synchronous parallel
    parameter server*.

    Examples
    --------
    >>> import numpy as np
    >>> from distributed import Client, LocalCluster
    >>> from daskpml.optim import fit_linear
    >>> X = np.random.default_rng(0).standard_normal((2000, 3)); y = X @ [1.0, -2.0, 0.5]
    >>> with LocalCluster(n_workers=2, processes=False, dashboard_address=None) as cluster, Client(cluster):
    ...     coef, b, res = fit_linear(X, y, family="squared", solver="async_sgd", lam=1e-6, max_iter=3, random_state=0)
    >>> coef.shape
    (3,)
    """
    options = RunOptions.of(locals())     # the stopping, monitoring, checkpoint and schedule options
    bound = check_async_sgd(batch_size, eta0, staleness, push_every, pull_every, max_staleness, max_iter, max_time,
                            n_servers)
    if n_servers is not None and n_servers > 1:
        raise ValueError(f"n_servers={n_servers} splits the server over the ranks of a distributed cluster; this "
                         f"run is driven from the client, which keeps the whole model. Connect a distributed client "
                         f"(daskpml.connect()) with daskpml.optim.on-ranks true, or leave n_servers at None.")
    push_every, pull_every = int(push_every), int(pull_every)
    seed = resolve_seed(random_state)
    batch = int(batch_size)
    eng = Engine("async_sgd", objective, options, rows_per_update=batch * push_every, batch_size=batch,
                 staleness=staleness, max_staleness=-1 if bound is None else bound, push_every=push_every,
                 pull_every=pull_every, seed=seed)
    spec, P, msg = objective.spec, eng.P, 8 * len(theta0)
    theta = np.array(theta0, dtype=np.float64)
    position = [0] * P                      # steps taken by each chunk (its place in its row order)
    if eng.resumed is not None:             # every worker pulls the snapshot's weights
        theta, position = np.array(eng.resumed.arrays["theta"]), list(eng.resumed.state["position"])
        seed = int(eng.resumed.state["seed"])
    eng.solver_state = lambda: ({"theta": theta}, {"position": list(position), "seed": seed})
    pulled = [0] * P                        # version each chunk last pulled
    since_pull = [pull_every] * P           # steps since that pull (forces the first pull)
    local: list[np.ndarray | None] = [None] * P
    waiting: list[int] = []

    rate = eng.schedule()

    def allowed(version: int) -> bool:
        if bound is None:
            return True
        flying = eng.inflight_versions()
        k = len(flying)
        return all(eng.version - v + k <= bound for v in flying + [version])

    def dispatch(i: int) -> bool:
        pull = local[i] is None or since_pull[i] >= pull_every
        if not allowed(eng.version if pull else pulled[i]):
            if pull or not allowed(eng.version):
                return False
            pull = True
        if pull:
            start, pulled[i], since_pull[i] = theta, eng.version, 0
        else:
            start = local[i]
        sent = msg if pull else 0
        eng.submit(sgd_steps, i, *eng.blocks[i], start, seed, i, position[i] * batch, push_every, batch,
                   rate(), spec, eng.factors[i], meta={"version": pulled[i], "sent": sent})
        position[i] += push_every
        since_pull[i] += push_every
        return True

    def wake() -> None:
        for i in list(waiting):
            if eng.done:
                return
            if dispatch(i):
                waiting.remove(i)

    def on_result(i: int, meta: dict, value: tuple) -> bool:
        nonlocal theta
        new_local, acc, loss, where, elapsed = value
        eng.addresses[i] = where or eng.addresses[i]
        tau = eng.version - meta["version"]
        eta = rate() / (max(tau, 1) if staleness == "divide" else 1.0)
        theta = spec.prox(theta - eta * acc, eta * push_every)
        eng.version += 1
        keep = since_pull[i] < pull_every
        local[i] = new_local if keep else None
        eng.busy[i] += elapsed
        objective.comm.add(meta["sent"] + msg + (msg if keep else 0))
        stop = eng.record(i, theta, staleness=tau, rows=batch * push_every, eta=eta,
                          batch_loss=loss)
        if stop or eng.done:
            return True
        if not dispatch(i):
            waiting.append(i)
        wake()
        return False

    def on_lost(i: int, meta: dict) -> None:
        local[i] = None                          # restart from the server's weights
        if not dispatch(i):
            waiting.append(i)

    for i in range(P if not eng.done else 0):
        if not dispatch(i):
            waiting.append(i)
    eng.loop(on_result, on_lost)
    return eng.finish(theta)


@validate_params({}, removed=RENAMED)
@on_ranks(rank_fn=_easgd_ranks, collective=False)
def easgd(objective: Objective, theta0: np.ndarray, *, local_steps: int = 10, alpha: float | None = None,
          synchronous: bool = False, batch_size: int = 32, learning_rate: Schedule = "invscaling",
          eta0: float = 0.1, power_t: float = 0.25, gamma: float = 0.1, decay_every: int = 10,
          max_iter: float = 10, max_time: float | None = None, tol: float | None = None,
          n_iter_no_change: int = 3, eval_every: int | None = None, delay: Mapping[int, float] | None = None,
          random_state: Any = None, callback: Callable | None = None,
          progress: bool | None = None, checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10, resume: bool = False) -> OptimizeResult:
    """Elastic averaging SGD (EASGD), asynchronous or synchronous.

    Each worker ``i`` keeps its own model ``x_i`` and runs ``local_steps`` (the paper's tau) SGD steps on
    mini-batches of its rows; then it meets the centre variable ``c`` held by the server:
    ``d = alpha (x_i - c)``, ``x_i <- x_i - d``, ``c <- c + d``. Asynchronous: each worker
    meets the centre as soon as its ``local_steps`` steps are done. Synchronous: all workers meet
    the same centre together, ``c <- c + alpha sum_i (x_i - c)`` (``beta = P alpha``).
    The result is the centre variable.

    ``alpha`` defaults to ``0.9 / P`` (the paper's ``beta = 0.9``). The local models live in
    the driver between exchanges (each exchange sends ``x_i`` and returns it), the centre
    in the driver: both survive the loss of any worker.

    Communication: ``|W|`` each way per exchange, one exchange per ``local_steps`` steps.

    Parameters
    ----------
    objective : Objective
        The distributed objective (data, loss family, penalty), see :func:`fit_linear`.
    theta0 : numpy.ndarray
        Initial packed parameters ``[W.ravel(), b]`` (:func:`pack`).
    local_steps : int
        SGD steps a worker runs between two exchanges (EASGD's tau, local SGD's H).
    alpha : float, optional
        EASGD's moving rate (default ``0.9 / P``).
    synchronous : bool, default False
        All workers meet the centre together.
    batch_size : int
        Rows of a mini-batch.
    learning_rate : {"constant", "invscaling", "step"}
        The schedule of the step size (:func:`scheduled_rate`; scikit-learn's name).
    eta0 : float
        Initial step size.
    power_t : float
        Exponent of the invscaling schedule.
    gamma : float
        Factor of the step schedule.
    decay_every : int
        Epochs between two decays of the step schedule.
    max_iter : int
        Iterations (epochs for the stochastic solvers) at most.
    max_time : float, optional
        Seconds of work after which the solver stops with its current model.
    tol : float
        Stopping tolerance (see the method's description).
    n_iter_no_change : int
        Evaluations without improvement by ``tol`` before stopping (scikit-learn's rule).
    eval_every : int, optional
        Steps between two history rows with the full objective (default: one epoch).
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
    Zhang, Choromanska, LeCun (2015), *Deep learning with elastic averaging SGD*.

    Examples
    --------
    >>> import numpy as np
    >>> from distributed import Client, LocalCluster
    >>> from daskpml.optim import fit_linear
    >>> X = np.random.default_rng(0).standard_normal((2000, 3)); y = X @ [1.0, -2.0, 0.5]
    >>> with LocalCluster(n_workers=2, processes=False, dashboard_address=None) as cluster, Client(cluster):
    ...     coef, b, res = fit_linear(X, y, family="squared", solver="easgd", lam=1e-6, max_iter=3, local_steps=4, random_state=0)
    >>> coef.shape
    (3,)
    """
    options = RunOptions.of(locals())     # the stopping, monitoring, checkpoint and schedule options
    P = objective.n_chunks
    tau, alpha = check_easgd(P, batch_size, eta0, local_steps, alpha, synchronous, max_iter, max_time)
    seed = resolve_seed(random_state)
    batch = int(batch_size)
    name = "easgd"
    eng = Engine(name, objective, options, rows_per_update=batch * tau, local_steps=tau, alpha=alpha,
                 synchronous=int(bool(synchronous)), batch_size=batch, seed=seed)
    spec, msg = objective.spec, 8 * len(theta0)
    centre = np.array(theta0, dtype=np.float64)
    models = [centre.copy() for _ in range(P)]
    position = [0] * P
    if eng.resumed is not None:             # the centre and the local models of the snapshot
        centre, position = np.array(eng.resumed.arrays["centre"]), list(eng.resumed.state["position"])
        models = [np.array(m) for m in eng.resumed.arrays["models"]]
        seed = int(eng.resumed.state["seed"])
    eng.solver_state = lambda: ({"centre": centre, "models": np.stack(models)},
                                {"position": list(position), "seed": seed})
    arrived: dict[int, tuple] = {}

    rate = eng.schedule()

    def dispatch(i: int) -> None:
        eng.submit(sgd_steps, i, *eng.blocks[i], models[i], seed, i, position[i] * batch, tau, batch, rate(),
                   spec, eng.factors[i], meta={"version": eng.version})
        position[i] += tau

    def exchange(i: int, value: tuple, base: np.ndarray) -> tuple[np.ndarray, float]:
        x, _, loss, _, elapsed = value
        d = alpha * (x - base)
        models[i] = x - d
        eng.busy[i] += elapsed
        objective.comm.add(2 * msg)
        return d, loss

    def on_result(i: int, meta: dict, value: tuple) -> bool:
        nonlocal centre
        if not synchronous:
            d, loss = exchange(i, value, centre)
            centre = centre + d
            tau_ = eng.version - meta["version"]
            eng.version += 1
            if eng.record(i, centre, staleness=tau_, rows=batch * tau, eta=rate(), batch_loss=loss) \
                    or eng.done:
                return True
            dispatch(i)
            return False
        arrived[i] = value
        if len(arrived) < P:
            return False
        moves = {j: exchange(j, v, centre) for j, v in sorted(arrived.items())}
        centre = centre + sum(d for d, _ in moves.values())
        eng.version += 1
        arrived.clear()
        stop = False
        for j, (_, loss) in moves.items():
            stop = eng.record(j, centre, staleness=0, rows=batch * tau, eta=rate(), batch_loss=loss,
                              save_point=j == max(moves)) or stop
        if stop or eng.done:
            return True
        for j in range(P):
            dispatch(j)
        return False

    def on_lost(i: int, meta: dict) -> None:
        dispatch(i)                               # x_i is still in the driver: redo the round

    for i in range(P if not eng.done else 0):
        dispatch(i)
    eng.loop(on_result, on_lost)
    return eng.finish(centre)


@validate_params({}, removed=RENAMED)
@on_ranks(rank_fn=_gossip_ranks, collective=False)
def gossip_sgd(objective: Objective, theta0: np.ndarray, *, local_steps: int = 10, batch_size: int = 32,
               learning_rate: Schedule = "invscaling", eta0: float = 0.1, power_t: float = 0.25,
               gamma: float = 0.1, decay_every: int = 10, max_iter: float = 10, max_time: float | None = None,
               tol: float | None = None, n_iter_no_change: int = 3, eval_every: int | None = None,
               delay: Mapping[int, float] | None = None, random_state: Any = None,
               callback: Callable | None = None, progress: bool | None = None,
               checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10, resume: bool = False) -> OptimizeResult:
    """Decentralized gossip SGD: no server.

    Each worker repeats, at its own pace: average its model with the latest model of a
    peer drawn at random, then ``local_steps`` SGD steps on its rows. The result is the
    models' average (weighted by rows) at the end. ``staleness`` in the history is the
    number of updates (all workers) since the peer's model was made.

    On a distributed cluster the loop runs on the workers
    (:mod:`daskpml.comm`): each chunk asks the peer's rank for its newest model directly
    (ahead of time, while its own push is answered) and reports each update to rank 0,
    which keeps the books (history, counters, stopping rules) but not the models. A model
    goes to rank 0 only where a history sample or a snapshot needs it, so a sample is
    the exact average of the models at that update. The callback's ``theta`` is None
    there (the average model is nowhere while the run goes on). Otherwise each averaging
    step is a task on the worker's own dask worker that fetches the peer's model from
    the peer's worker, and the driver gathers the models for objective samples.

    Communication: one ``|W|`` point-to-point transfer per gossip step; no global
    synchronization.

    Parameters
    ----------
    objective : Objective
        The distributed objective (data, loss family, penalty), see :func:`fit_linear`.
    theta0 : numpy.ndarray
        Initial packed parameters ``[W.ravel(), b]`` (:func:`pack`).
    local_steps : int
        SGD steps a worker runs between two exchanges (EASGD's tau, local SGD's H).
    batch_size : int
        Rows of a mini-batch.
    learning_rate : {"constant", "invscaling", "step"}
        The schedule of the step size (:func:`scheduled_rate`; scikit-learn's name).
    eta0 : float
        Initial step size.
    power_t : float
        Exponent of the invscaling schedule.
    gamma : float
        Factor of the step schedule.
    decay_every : int
        Epochs between two decays of the step schedule.
    max_iter : int
        Iterations (epochs for the stochastic solvers) at most.
    max_time : float, optional
        Seconds of work after which the solver stops with its current model.
    tol : float
        Stopping tolerance (see the method's description).
    n_iter_no_change : int
        Evaluations without improvement by ``tol`` before stopping (scikit-learn's rule).
    eval_every : int, optional
        Steps between two history rows with the full objective (default: one epoch).
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
    Boyd et al. (2006), *Randomized gossip algorithms*. Lian et al. (2018),
    *Asynchronous decentralized parallel stochastic gradient descent*.

    Examples
    --------
    >>> import numpy as np
    >>> from distributed import Client, LocalCluster
    >>> from daskpml.optim import fit_linear
    >>> X = np.random.default_rng(0).standard_normal((2000, 3)); y = X @ [1.0, -2.0, 0.5]
    >>> with LocalCluster(n_workers=2, processes=False, dashboard_address=None) as cluster, Client(cluster):
    ...     coef, b, res = fit_linear(X, y, family="squared", solver="gossip_sgd", lam=1e-6, max_iter=3, random_state=0)
    >>> coef.shape
    (3,)
    """
    options = RunOptions.of(locals())     # the stopping, monitoring, checkpoint and schedule options
    P = objective.n_chunks
    H = check_gossip(P, batch_size, eta0, local_steps, max_iter, max_time)
    seed = resolve_seed(random_state)
    batch = int(batch_size)
    eng = Engine("gossip_sgd", objective, options, rows_per_update=batch * H, local_steps=H, batch_size=batch,
                 seed=seed)
    spec, msg = objective.spec, 8 * len(theta0)
    weights = np.asarray(eng.sizes, dtype=float) / eng.n
    rng = np.random.default_rng([seed, 11])
    start = np.array(theta0, dtype=np.float64)
    latest: list[Any] = [start] * P            # each worker's newest finished model (future or array)
    made_at = [0] * P                           # update count when it was made
    position = [0] * P
    if eng.resumed is not None:                 # every worker's newest model, from the snapshot
        st = eng.resumed.state
        latest = [np.array(m) for m in eng.resumed.arrays["models"]]
        made_at, position, seed = list(st["made_at"]), list(st["position"]), int(st["seed"])
        rng.bit_generator.state = st["rng"]

    def gossip_state() -> tuple[dict, dict]:
        gathered = eng.client.gather([m for m in latest if not isinstance(m, np.ndarray)])
        it = iter(gathered)
        models = np.stack([m if isinstance(m, np.ndarray) else _model(next(it)) for m in latest])
        return {"models": models}, {"made_at": list(made_at), "position": list(position), "seed": seed,
                                    "rng": rng.bit_generator.state}

    eng.solver_state = gossip_state

    rate = eng.schedule()

    def dispatch(i: int) -> None:
        j = int(rng.integers(P - 1))
        j += j >= i
        eng.submit(_gossip, i, *eng.blocks[i], latest[i], latest[j], seed, i, position[i] * batch, H, batch,
                   rate(), spec, eng.factors[i], meta={"peer": j, "peer_made": made_at[j]})
        position[i] += H

    def average() -> np.ndarray:
        models = eng.client.gather([m for m in latest if not isinstance(m, np.ndarray)])
        it = iter(models)
        arrays = [m if isinstance(m, np.ndarray) else _model(next(it)) for m in latest]
        return sum(w * a for w, a in zip(weights, arrays))

    def on_result(i: int, meta: dict, future: Any) -> bool:
        latest[i] = future
        eng.version += 1
        made_at[i] = eng.version
        objective.comm.add(msg)
        stop = eng.record(i, average, staleness=eng.version - 1 - meta["peer_made"], rows=batch * H,
                          eta=rate(), peer=meta["peer"])
        if stop or eng.done:
            return True
        dispatch(i)
        return False

    def on_lost(i: int, meta: dict) -> None:
        dispatch(i)                               # from the last model it finished (recomputed if lost)

    for i in range(P if not eng.done else 0):
        dispatch(i)
    eng.loop(on_result, on_lost, fetch=False)
    return eng.finish(average())

