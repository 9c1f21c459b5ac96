"""Synchronous mini-batch SGD and model averaging (local SGD, one-shot averaging).

Data never moves: each chunk shuffles its own rows once per epoch (a permutation
drawn from ``[seed, epoch, chunk]``, so results do not depend on the scheduler or
the number of workers) and walks through them.

* :func:`sgd`: every step, each chunk computes the gradient on its share of the
  mini-batch (``batch_size * n_chunk / n`` rows), the shares are summed up the
  reduction tree and one update task applies the averaged gradient. One
  all-reduce per step (latency-bound for small models).
* :func:`local_sgd`: each chunk runs ``local_steps`` (H) SGD steps on its own rows
  from the current average, then the models are averaged (weighted by rows): one
  all-reduce per H steps, the communication traded for model drift.
* :func:`one_shot_average`: each chunk trains to convergence alone, the models
  are averaged once: one round in all.

Steps between two history rows are submitted as one task graph (the chain
step -> reduce -> update -> step ...), so the scheduler, not the client, sequences
them; the materialization point is the end of each history segment, where the
model (O(|W|)) returns to the client and the full objective is evaluated (that
evaluation is not counted as the solver's communication).
"""

from __future__ import annotations

import os
import math
import threading
import time
import warnings
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Callable, Literal

import dask
import numpy as np
import scipy.sparse
from dask import delayed

from .._random import resolve_seed
from .._blocks import tree_sum
from ..backend import get_namespace, is_sparse
from ..validation import validate_params
from ._objective import Objective, Spec, chunk_loss_grad
from ._ranks import RankObjective, on_ranks
from ._run import OptimizeResult, Run

Schedule = Literal["constant", "invscaling", "step"]


@lru_cache(maxsize=64)
def _permutation(seed: int, epoch: int, chunk: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, 7, epoch, chunk]).permutation(n)


def batch_rows(seed: int, chunk: int, n: int, start: int, size: int) -> np.ndarray:
    """Rows ``start`` to ``start + size`` of the chunk's epoch-by-epoch shuffled order.

    Parameters
    ----------
    seed : int
        Seed of the shuffled row order.
    chunk : int
        Index of the chunk.
    n : int
        Rows of the chunk.
    start : int
        Position in the chunk's shuffled order where the first mini-batch starts.
    size : int
        Rows wanted.

    Returns
    -------
    rows : numpy.ndarray
        Row indices within the chunk (int64).

    Examples
    --------
    >>> sorted(batch_rows(0, 0, 5, 0, 5).tolist())      # one epoch: every row once
    [0, 1, 2, 3, 4]
    """
    first, offset = divmod(start, n)
    if offset + size <= n:                       # within one epoch (the usual case): a slice
        return _permutation(seed, first, chunk, n)[offset:offset + size].copy()
    pos = start + np.arange(size)
    epochs, offsets = np.divmod(pos, n)
    out = np.empty(size, dtype=np.int64)
    for e in np.unique(epochs):
        sel = epochs == e
        out[sel] = _permutation(seed, int(e), chunk, n)[offsets[sel]]
    return out


#: keywords the SGD solvers no longer take, and what replaced them
RENAMED = {
    "learning_rate_schedule": "use learning_rate= (scikit-learn's name for the schedule: 'constant', "
                              "'invscaling', 'step'; hogwild also 'optimal').",
    "step_size": "use decay_every= (epochs between two decays of the 'step' schedule).",
    "tau": "use local_steps= (SGD steps a worker runs between two exchanges; EASGD's tau).",
}


def scheduled_rate(schedule: Schedule, eta0: float, t: int, epoch: float, *, power_t: float = 0.25,
                   gamma: float = 0.1, decay_every: int = 10) -> float:
    """The learning rate of step ``t`` (in epoch ``epoch``) under ``schedule``.

    ``constant``: eta0; ``invscaling``: eta0 / (t + 1)^power_t (t counts steps, as
    scikit-learn's SGD); ``step``: eta0 * gamma^floor(epoch / decay_every).

    Parameters
    ----------
    schedule : {"constant", "invscaling", "step"}
        The solvers' ``learning_rate`` parameter.
    eta0 : float
        The initial rate.
    t : int
        Steps taken so far.
    epoch : float
        Epochs done so far (rows processed / n).
    power_t, gamma, decay_every :
        The schedules' constants.

    Returns
    -------
    float

    Examples
    --------
    >>> scheduled_rate("step", 0.1, 0, 25.0, gamma=0.5, decay_every=10)
    0.025
    """
    if schedule == "constant":
        return eta0
    if schedule == "invscaling":
        return eta0 / (t + 1.0) ** power_t
    if schedule == "step":
        return eta0 * gamma ** math.floor(epoch / decay_every)
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; choose 'constant', 'invscaling' or 'step'.")


def slowdown(delay: Mapping[int, float] | None, chunk: int) -> float:
    """The slowdown factor of one chunk under the ``delay`` hook (1.0 = normal speed).

    ``delay`` maps chunk indices to factors >= 1: a task on that chunk sleeps
    ``(factor - 1) x`` its own compute time, so it takes ``factor`` times as long. A
    chunk lives on one worker, so this simulates a straggling worker. It is a hook
    for tests and benchmarks (stragglers on demand), not a tuning knob.

    Parameters
    ----------
    delay : mapping of int to float, optional
        Straggler hook for tests and benchmarks: chunk -> slowdown factor (:func:`slowdown`).
    chunk : int
        Index of the chunk.

    Returns
    -------
    factor : float
        1.0 for a chunk at normal speed.

    Examples
    --------
    >>> slowdown({1: 3.0}, 1), slowdown({1: 3.0}, 0), slowdown(None, 0)
    (3.0, 1.0, 1.0)
    """
    if delay is None:
        return 1.0
    if not isinstance(delay, Mapping):
        raise TypeError(f"delay must map chunk indices to slowdown factors, got {type(delay).__name__}.")
    factor = float(delay.get(chunk, 1.0))
    if not factor >= 1.0:
        raise ValueError(f"delay factors must be >= 1 (1 = normal speed), got {factor} for chunk {chunk}.")
    return factor


def straggle(factor: float, started: float) -> float:
    """Sleep so that work begun at ``started`` takes ``factor`` times as long; returns
    the compute time (before the sleep).

    Parameters
    ----------
    factor : float, default 1.0
        Straggler slowdown of this chunk (:func:`slowdown`).
    started : float
        ``time.perf_counter()`` when the work began.

    Returns
    -------
    seconds : float
        The compute time before the sleep.

    Examples
    --------
    >>> import time
    >>> straggle(1.0, time.perf_counter()) >= 0
    True
    """
    elapsed = time.perf_counter() - started
    if factor > 1.0:
        time.sleep((factor - 1.0) * elapsed)
    return elapsed


class _Buffers(threading.local):
    """Per thread: the buffers the mini-batch gathers reuse, by (shape, dtype)."""

    def __init__(self) -> None:
        self.bufs: dict = {}


_GATHER = _Buffers()


def _take(X: Any, rows: np.ndarray) -> Any:
    """The rows of a chunk: for dense host blocks, gathered into a buffer this thread reuses for
    mini-batches of the same shape. The batch lives only until its gradient is computed (no
    caller keeps it), so the next one may overwrite it.

    Why a buffer: Distributed's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_`` set, and
    then every new temporary above glibc's mmap threshold (128 KB) is a fresh mmap whose pages
    fault in on first touch. On a worker that doubled the cost of the gathers (1M x 50 float64 in
    8 chunks, 2,048 rows per chunk per step: 0.25 s per epoch against 0.12 s in a plain process).
    Device arrays come from CuPy's memory pool, which reuses its blocks already."""
    xp, _ = get_namespace(X)
    if xp is not np or is_sparse(X) or getattr(X, "ndim", 0) != 2:
        return X[rows]
    shape = (len(rows), X.shape[1])
    bufs = _GATHER.bufs
    key = (shape, X.dtype)
    buf = bufs.get(key)
    if buf is None:
        if len(bufs) >= 4:                  # (a few shapes: the batch, an epoch's last one)
            bufs.clear()
        buf = bufs[key] = np.empty(shape, dtype=X.dtype)
    if X.flags.c_contiguous:
        # mode="clip": with the default "raise", NumPy gathers through a temporary when out= is given
        return np.take(X, rows, axis=0, out=buf, mode="clip")
    # (np.take copies a strided block whole, e.g. X of make_classification, a column slice of
    # [X | y]; fancy indexing does not: gather in pieces that stay under the mmap threshold)
    step = max(1, 65536 // max(1, X.shape[1] * X.itemsize))
    for a in range(0, len(rows), step):
        buf[a:a + step] = X[rows[a:a + step]]
    return buf


def _batch_grad(X: Any, y: Any, state: tuple, seed: int, chunk: int, start: int, size: int,
                family: Any, layout: Any, factor: float = 1.0) -> np.ndarray:
    if size == 0:
        return np.zeros(layout.size + 1)
    t0 = time.perf_counter()
    rows = batch_rows(seed, chunk, X.shape[0], start, size)
    out = chunk_loss_grad(_take(X, rows), y[rows], state[0], family, layout)
    straggle(factor, t0)
    return out


def _step(state: tuple, total: np.ndarray, rate: float, momentum: float, batch: int, spec: Spec) -> tuple:
    theta, velocity = state[0], state[1]
    g = total[1:] / batch + spec.smooth_grad(theta)
    if momentum:
        velocity = momentum * velocity + g
        g = velocity
    theta = spec.prox(theta - rate * g, rate)
    return theta, velocity, float(total[0] / batch)


def _check_common(batch_size: int, eta0: float, momentum: float) -> None:
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
    if not eta0 > 0:
        raise ValueError(f"eta0 must be positive, got {eta0}.")
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}.")


class _Stopper:
    """sklearn's rule: stop after ``n_iter_no_change`` evaluations without improving
    the best objective by more than ``tol``."""

    def __init__(self, tol: float, n_iter_no_change: int) -> None:
        self.tol, self.patience, self.best, self.bad = tol, n_iter_no_change, np.inf, 0

    def __call__(self, f: float) -> bool:
        if not np.isfinite(f):
            raise FloatingPointError("SGD diverged (the objective is not finite); lower eta0.")
        self.bad = self.bad + 1 if f > self.best - self.tol else 0
        self.best = min(self.best, f)
        return self.bad >= self.patience


@validate_params({}, removed=RENAMED)
@on_ranks
def sgd(objective: Objective, theta0: np.ndarray, *, batch_size: int = 256, learning_rate: Schedule = "invscaling",
        eta0: float = 0.1, power_t: float = 0.25, gamma: float = 0.1, decay_every: int = 10, momentum: float = 0.0,
        max_iter: int = 10, tol: float = 1e-4, n_iter_no_change: int = 3, eval_every: int | None = None,
        delay: Mapping[int, float] | None = None, random_state: Any = None, callback: Callable | None = None,
        progress: bool | None = None, checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10, resume: bool = False) -> OptimizeResult:
    """Synchronous mini-batch SGD with gradient averaging over all chunks.

    ``batch_size`` is the global mini-batch; chunk ``i`` contributes
    ``round(batch_size * n_i / n)`` rows. ``max_iter`` counts epochs; one history row
    per ``eval_every`` steps (default: one epoch). L1 penalties are applied by a
    proximal step after each update. ``delay`` is the straggler hook of
    :func:`slowdown` (tests and benchmarks). The ``time`` column leaves out the
    full-objective evaluations of the history rows.

    Communication: one all-reduce of ``|W| + 8`` bytes per step, ``ceil(n / batch_size)``
    per epoch: ``steps * (2 a ceil(log_s P) + b (2P - 1) |W|)``.

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
    momentum : float, default 0.0
        Heavy-ball momentum.
    max_iter : int
        Iterations (epochs for the stochastic solvers) at most.
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

    Examples
    --------
    >>> import numpy as np
    >>> from daskpml.optim import fit_linear
    >>> X = np.random.default_rng(0).standard_normal((300, 3)); y = X @ [1.0, -2.0, 0.5]
    >>> coef, b, res = fit_linear(X, y, family="squared", solver="sgd", lam=1e-6, max_iter=30, eta0=0.05,
    ...                           learning_rate="constant", random_state=0)
    >>> bool(np.allclose(coef, [1.0, -2.0, 0.5], atol=0.2)), res.history.sizes["iteration"] > 0
    (True, True)
    """
    _check_common(batch_size, eta0, momentum)
    seed = resolve_seed(random_state)
    n = objective.n_samples
    sizes = _chunk_sizes(objective)
    factors = [slowdown(delay, i) for i in range(len(sizes))]
    shares = [max(1, round(batch_size * s / n)) if s else 0 for s in sizes]
    batch = sum(shares)
    steps_per_epoch = max(1, math.ceil(max(s / max(b, 1) for s, b in zip(sizes, shares))))
    eval_every = int(eval_every or steps_per_epoch)
    total_steps = max_iter * steps_per_epoch
    run = Run("sgd", objective, max_iter=math.ceil(total_steps / eval_every), tol=tol, callback=callback,
              progress=progress, checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume, batch_size=batch, learning_rate=learning_rate,
              eta0=eta0, momentum=momentum, seed=seed, steps_per_epoch=steps_per_epoch, eval_every=eval_every)
    state = (np.array(theta0, dtype=np.float64), np.zeros(len(theta0)))
    stopper, t, it, converged = _Stopper(tol, n_iter_no_change), 0, 0, False
    if run.snapshot is not None:
        seed, t, it, state, converged = _restore_sgd(run.snapshot, stopper)
    while t < total_steps and not converged:
        it += 1
        seg = min(eval_every, total_steps - t)
        steps = _sgd_steps_on_ranks if isinstance(objective, RankObjective) else _sgd_steps_graph
        out, batch_losses, rate = steps(objective, state, t, seg, seed, shares, batch, factors, momentum,
                                        dict(schedule=learning_rate, eta0=eta0, power_t=power_t, gamma=gamma,
                                             decay_every=decay_every), steps_per_epoch)
        t += seg
        state = (out[0], out[1])
        with run.paused():
            f, gnorm = objective.monitor(state[0])
        done = stopper(f)
        if run.record(it, state[0], f, gnorm, epoch=t / steps_per_epoch, steps=t,
                      batch_loss=float(np.mean(batch_losses)), learning_rate=rate) or done:
            converged = done
            break
        _save_sgd(run, it, seed, t, state, stopper)
    return run.finish(state[0], it, converged or t >= total_steps,
                      "" if converged else f"ran max_iter={max_iter} epochs")


def _sgd_steps_graph(objective: Any, state: tuple, t: int, seg: int, seed: int, shares: list, batch: int,
                     factors: list, momentum: float, schedule: dict, steps_per_epoch: int) -> tuple:
    """``seg`` synchronous SGD steps as one task graph (the scheduler sequences step -> reduce ->
    update), computed once: the state, the mini-batch losses and the last rate."""
    node: Any = state
    losses = []
    msg_bytes = 8 * (len(state[0]) + 1)
    for k in range(t, t + seg):
        rate = _rate(schedule, k, steps_per_epoch)
        parts = [delayed(_batch_grad, pure=False)(Xb, yb, node, seed, i, k * b, b, objective.family,
                                                  objective.layout, factors[i])
                 for i, ((Xb, yb), b) in enumerate(zip(objective._blocks, shares))]
        root, edges = tree_sum(parts, objective.split_every)
        node = delayed(_step, pure=False, nout=3)(node, root, rate, momentum, batch, objective.spec)
        losses.append(node[2])
        objective.comm.add(len(parts) * msg_bytes * (2 if momentum else 1) + edges * msg_bytes)
    out, batch_losses = dask.compute(node, losses, optimize_graph=False) if objective.distributed \
        else _run_local(node, losses)
    return out, batch_losses, rate


def _sgd_steps_on_ranks(objective: Any, state: tuple, t: int, seg: int, seed: int, shares: list, batch: int,
                        factors: list, momentum: float, schedule: dict, steps_per_epoch: int) -> tuple:
    """``seg`` synchronous SGD steps on the ranks: each step the local blocks' mini-batch
    gradients, one allreduce, the same update on every rank."""
    losses = []
    for k in range(t, t + seg):
        rate = _rate(schedule, k, steps_per_epoch)
        node = state
        total = objective.reduce_blocks(
            lambda i, Xb, yb: _batch_grad(Xb, yb, node, seed, i, k * shares[i], shares[i], objective.family,
                                          objective.layout, factors[i]))
        state = _step(state, total, rate, momentum, batch, objective.spec)
        losses.append(state[2])
    return state, losses, rate


def _rate(schedule: dict, k: int, steps_per_epoch: int) -> float:
    return scheduled_rate(schedule["schedule"], schedule["eta0"], k, k / steps_per_epoch,
                          power_t=schedule["power_t"], gamma=schedule["gamma"], decay_every=schedule["decay_every"])


def _save_sgd(run: Run, it: int, seed: int, position: int, state: tuple, stopper: _Stopper) -> None:
    """Snapshot of the synchronous stochastic solvers: model, momentum, position, seed, stopper."""
    run.save(it, arrays=dict(theta=state[0], velocity=state[1]), seed=seed, position=position,
             best=float(stopper.best), bad=stopper.bad)


def _restore_sgd(snap: Any, stopper: _Stopper) -> tuple:
    stopper.best, stopper.bad = float(snap.state["best"]), int(snap.state["bad"])
    state = (np.array(snap.arrays["theta"]), np.array(snap.arrays["velocity"]))
    return int(snap.state["seed"]), int(snap.state["position"]), snap.iteration, state, False


def _run_local(node: Any, losses: list) -> tuple:
    return dask.compute(node, losses, scheduler="sync", optimize_graph=False)


def _chunk_sizes(objective: Objective) -> list[int]:
    if objective.distributed:
        return list(objective.row_chunks)
    return [objective.n_samples]


def _local_round(X: Any, y: Any, avg: tuple, seed: int, chunk: int, start_step: int, steps: int, batch: int,
                 schedule: Schedule, eta0: float, opts: dict, momentum: float, spec: Spec,
                 steps_per_epoch: int, factor: float = 1.0) -> tuple:
    t0 = time.perf_counter()
    theta, velocity = avg[0].copy(), avg[1].copy()
    n = X.shape[0]
    losses = 0.0
    for k in range(start_step, start_step + steps):
        rows = batch_rows(seed, chunk, n, k * batch, batch)
        total = chunk_loss_grad(_take(X, rows), y[rows], theta, spec.family, spec.layout)
        rate = scheduled_rate(schedule, eta0, k, k / steps_per_epoch, **opts)
        theta, velocity, loss = _step((theta, velocity), total, rate, momentum, batch, spec)
        losses += loss
    straggle(factor, t0)
    return theta, velocity, losses / max(steps, 1)


def _weighted_average(weights: list, *states: tuple) -> tuple:
    theta = sum(w * s[0] for w, s in zip(weights, states))
    velocity = sum(w * s[1] for w, s in zip(weights, states))
    return theta, velocity


def _average_tree(states: list, weights: list, split_every: int | None) -> tuple[Any, int]:
    """Weighted average up a tree (partial averages carry their weight)."""
    split_every = max(2, int(split_every or 8))
    items = list(zip(states, weights))
    edges = 0
    while len(items) > 1:
        edges += len(items)
        nxt = []
        for i in range(0, len(items), split_every):
            group = items[i:i + split_every]
            total = sum(w for _, w in group)
            node = delayed(_weighted_average, pure=False)([w / total for _, w in group], *[s for s, _ in group])
            nxt.append((node, total))
        items = nxt
    return items[0][0], edges


def _divergence(avg: tuple, *states: tuple) -> np.ndarray:
    return np.array([float(np.linalg.norm(s[0] - avg[0])) for s in states])


@validate_params({}, removed=RENAMED)
@on_ranks
def local_sgd(objective: Objective, theta0: np.ndarray, *, local_steps: int = 10, batch_size: int = 32,
              learning_rate: Schedule = "invscaling", eta0: float = 0.1, power_t: float = 0.25,
              gamma: float = 0.1, decay_every: int = 10, momentum: float = 0.0, max_iter: int = 10,
              tol: float = 1e-4, n_iter_no_change: int = 3, eval_every: int | None = None,
              delay: Mapping[int, float] | None = None, random_state: Any = None,
              callback: Callable | None = None, progress: bool | None = None,
              checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10, resume: bool = False) -> OptimizeResult:
    """Local SGD (periodic model averaging).

    Each round every chunk starts from the averaged model, runs ``local_steps`` SGD
    steps on mini-batches of ``batch_size`` of its own rows, and the models (and
    momentum buffers) are averaged, weighted by chunk size. ``max_iter`` counts epochs
    of the largest chunk; one history row per ``eval_every`` rounds (default: an epoch),
    with per-worker columns: the mean local mini-batch loss, the distance of the local
    model from the average, and the bytes each chunk sent. ``delay``: the straggler
    hook of :func:`slowdown`. The ``time`` column leaves out the history's
    full-objective evaluations.

    Communication: one all-reduce of ``|W|`` (twice with momentum) per ``H`` local
    steps: ``rounds = steps / H``.

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
    momentum : float, default 0.0
        Heavy-ball momentum.
    max_iter : int
        Iterations (epochs for the stochastic solvers) at most.
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
    Stich (2019), *Local SGD converges fast and communicates little*. Lin et al.
    (2020), *Don't use large mini-batches, use local SGD*.

    Examples
    --------
    >>> import numpy as np
    >>> from daskpml.optim import fit_linear
    >>> X = np.random.default_rng(0).standard_normal((300, 3)); y = X @ [1.0, -2.0, 0.5]
    >>> coef, b, res = fit_linear(X, y, family="squared", solver="local_sgd", lam=1e-6, max_iter=30, eta0=0.02, learning_rate='constant', random_state=0)
    >>> np.round(coef, 1).tolist(), res.history.sizes["iteration"] > 0
    ([1.0, -2.0, 0.5], True)
    """
    _check_common(batch_size, eta0, momentum)
    H = int(local_steps)
    if H < 1:
        raise ValueError(f"local_steps must be a positive integer, got {local_steps}.")
    seed = resolve_seed(random_state)
    sizes = _chunk_sizes(objective)
    factors = [slowdown(delay, i) for i in range(len(sizes))]
    weights = [s / objective.n_samples for s in sizes]
    steps_per_epoch = max(1, math.ceil(max(sizes) / batch_size))
    rounds_per_epoch = max(1, math.ceil(steps_per_epoch / H))
    eval_every = int(eval_every or rounds_per_epoch)
    total_rounds = max_iter * rounds_per_epoch
    run = Run("local_sgd", objective, max_iter=math.ceil(total_rounds / eval_every), tol=tol, callback=callback,
              progress=progress, checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume, local_steps=H, batch_size=batch_size,
              learning_rate=learning_rate, eta0=eta0, momentum=momentum, seed=seed, eval_every=eval_every)
    run.workers = list(range(len(sizes)))
    opts = dict(power_t=power_t, gamma=gamma, decay_every=decay_every)
    state = (np.array(theta0, dtype=np.float64), np.zeros(len(theta0)))
    msg = 8 * len(theta0) * (2 if momentum else 1)
    stopper, r, it, converged = _Stopper(tol, n_iter_no_change), 0, 0, False
    if run.snapshot is not None:
        seed, r, it, state, converged = _restore_sgd(run.snapshot, stopper)
    while r < total_rounds:
        it += 1
        seg = min(eval_every, total_rounds - r)
        rounds = _local_rounds_on_ranks if isinstance(objective, RankObjective) else _local_rounds_graph
        state, last, div = rounds(objective, state, r, seg, seed, H, batch_size, learning_rate, eta0, opts,
                                  momentum, steps_per_epoch, factors, weights)
        r += seg
        with run.paused():
            f, gnorm = objective.monitor(state[0])
        done = stopper(f)
        if run.record(it, state[0], f, gnorm, epoch=r / rounds_per_epoch, local_steps_done=r * H,
                      per_worker={"local_loss": np.asarray(last), "drift": div,
                                  "worker_bytes": np.full(len(sizes), 2 * msg * seg)}) or done:
            converged = done
            break
        _save_sgd(run, it, seed, r, state, stopper)
    return run.finish(state[0], it, converged or r >= total_rounds,
                      "" if converged else f"ran max_iter={max_iter} epochs")


def _local_rounds_graph(objective: Any, state: tuple, r: int, seg: int, seed: int, H: int, batch_size: int,
                        learning_rate: Schedule, eta0: float, opts: dict, momentum: float,
                        steps_per_epoch: int, factors: list, weights: list) -> tuple:
    """``seg`` rounds of local SGD as one task graph (each chunk's rounds chained through the
    averages), computed once: the averaged state, each chunk's last mean loss and drift."""
    node: Any = state
    msg = 8 * len(state[0]) * (2 if momentum else 1)
    for k in range(r, r + seg):
        local = [delayed(_local_round, pure=False, nout=3)(Xb, yb, node, seed, i, k * H, H, batch_size,
                                                           learning_rate, eta0, opts, momentum,
                                                           objective.spec, steps_per_epoch, factors[i])
                 for i, (Xb, yb) in enumerate(objective._blocks)]
        node, edges = _average_tree(local, weights, objective.split_every)
        objective.comm.add(2 * len(local) * msg + edges * msg)
    drift = delayed(_divergence, pure=False)(node, *local)
    scheduler = None if objective.distributed else "sync"
    out, last, div = dask.compute(node, [loc[2] for loc in local], drift, optimize_graph=False,
                                  scheduler=scheduler)
    return out, np.asarray(last), div


def _local_rounds_on_ranks(objective: Any, state: tuple, r: int, seg: int, seed: int, H: int, batch_size: int,
                           learning_rate: Schedule, eta0: float, opts: dict, momentum: float,
                           steps_per_epoch: int, factors: list, weights: list) -> tuple:
    """``seg`` rounds of local SGD on the ranks: each block's ``H`` local steps, then the weighted
    average of ``[theta, velocity]`` in one allreduce. Returns the averaged state and, for the last
    round, every chunk's mean local loss and distance from the average (gathered once)."""
    d = len(state[0])
    spec = objective.spec
    for k in range(r, r + seg):
        avg = state
        local = objective.map_blocks(
            lambda i, Xb, yb: _local_round(Xb, yb, avg, seed, i, k * H, H, batch_size, learning_rate, eta0, opts,
                                           momentum, spec, steps_per_epoch, factors[i]))
        mine = np.zeros(2 * d)
        for i, (theta_i, velocity_i, _) in zip(objective.block_index, local):
            mine[:d] += weights[i] * theta_i
            mine[d:] += weights[i] * velocity_i
        total = objective.allreduce(mine)
        state = (total[:d].copy(), total[d:].copy())
    mine_stats = [(i, loss, float(np.linalg.norm(theta_i - state[0])))
                  for i, (theta_i, _, loss) in zip(objective.block_index, local)]
    stats = sorted(s for part in objective.group.allgather(mine_stats) for s in part)
    return state, np.array([s[1] for s in stats]), np.array([s[2] for s in stats])


def _train_alone(X: Any, y: Any, theta0: np.ndarray, spec: Spec, local_solver: str, options: dict) -> tuple:
    from ._registry import get_solver

    local = Objective(X, y, spec.family, spec.penalty, spec.lam, spec.layout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = get_solver(local_solver)(local, theta0, progress=False, **options)
    f, _ = local.monitor(res.theta)
    return res.theta, np.zeros_like(res.theta), f, res.n_iter, int(res.converged)


def one_shot_average(objective: Objective, theta0: np.ndarray, *, local_solver: str = "auto",
                     max_iter: int = 200, tol: float = 1e-6, random_state: Any = None,
                     callback: Callable | None = None, progress: bool | None = None,
                     **local_options: Any) -> OptimizeResult:
    """One-shot model averaging: each chunk minimizes the same regularized objective on
    its own rows (``local_solver``: ``"auto"`` is lbfgs for smooth problems,
    proximal_gradient with an L1 penalty, sgd for the hinge loss), then the models are
    averaged once, weighted by chunk size. One round in all (``|W|`` per chunk).

    Parameters
    ----------
    objective : Objective
        The distributed objective (data, loss family, penalty), see :func:`fit_linear`.
    theta0 : numpy.ndarray
        Initial packed parameters ``[W.ravel(), b]`` (:func:`pack`).
    local_solver : str
        The solver each chunk runs (``"auto"``: lbfgs for smooth problems, proximal_gradient with L1, sgd for the hinge loss).
    max_iter : int
        Iterations (epochs for the stochastic solvers) at most.
    tol : float
        Stopping tolerance (see the method's description).
    random_state : None, int or numpy.random.Generator
        Seed of the mini-batches (and of any other random draw).
    callback : callable(record) -> bool, optional
        Called after every history row with the row, ``iteration`` and the current ``theta``; a true return value stops the solver with the model it has.
    progress : bool, optional
        A progress line (default: on a terminal, ``daskpml.progress``).
    **local_options
        Further options of the local solver.

    Returns
    -------
    result : OptimizeResult
        The packed parameters ``theta``, the history, ``n_iter``, ``converged``, ``message`` and ``status``.

    References
    ----------
    Zhang, Duchi & Wainwright (2013), *Communication-efficient algorithms for
    statistical optimization*.

    Examples
    --------
    >>> import numpy as np
    >>> from daskpml.optim import fit_linear
    >>> X = np.random.default_rng(0).standard_normal((300, 3)); y = X @ [1.0, -2.0, 0.5]
    >>> coef, b, res = fit_linear(X, y, family="squared", solver="one_shot_average", lam=1e-6)
    >>> np.round(coef, 2).tolist(), res.history.sizes["iteration"] > 0
    ([1.0, -2.0, 0.5], True)
    """
    if local_solver == "auto":
        local_solver = ("sgd" if not objective.family.smooth
                        else "proximal_gradient" if objective.penalty.l1 and objective.lam else "lbfgs")
    if local_solver in ("one_shot_average", "local_sgd"):
        raise ValueError(f"local_solver must be a single-machine solver, not {local_solver!r}.")
    run = Run("one_shot_average", objective, max_iter=1, tol=tol, callback=callback, progress=progress,
              local_solver=local_solver)
    sizes = _chunk_sizes(objective)
    run.workers = list(range(len(sizes)))
    weights = [s / objective.n_samples for s in sizes]
    options = dict(max_iter=max_iter, tol=tol, **local_options)
    if local_solver in ("sgd", "newton"):
        options["random_state"] = random_state if local_solver == "sgd" or random_state is not None else 0
    theta0 = np.array(theta0, dtype=np.float64)
    local = [delayed(_train_alone, pure=False, nout=5)(Xb, yb, theta0, objective.spec, local_solver, options)
             for Xb, yb in objective._blocks]
    node, edges = _average_tree(local, weights, objective.split_every)
    scheduler = None if objective.distributed else "sync"
    out, stats = dask.compute(node, [(loc[2], loc[3], loc[4]) for loc in local], optimize_graph=False,
                              scheduler=scheduler)
    objective.comm.add(len(local) * 8 * len(theta0) * 2 + edges * 8 * len(theta0) * 2)
    theta = out[0]
    f, gnorm = objective.monitor(theta)
    stats = np.asarray(stats, dtype=float)
    run.record(1, theta, f, gnorm, per_worker={"local_objective": stats[:, 0], "local_iterations": stats[:, 1],
                                                "local_converged": stats[:, 2],
                                                "worker_bytes": np.full(len(local), 8 * len(theta0))})
    return run.finish(theta, 1, bool(stats[:, 2].all()),
                      "" if stats[:, 2].all() else "some chunks did not converge locally")


def critical_batch_size(X: Any, *, max_iter: int = 500, tol: float = 1e-7, random_state: Any = 0) -> float:
    """The critical mini-batch size of least squares on ``X``: ``E||x||^2 / lambda_max``,
    with ``lambda_max`` the largest eigenvalue of the second-moment matrix ``X'X / n``.

    For least squares that a linear model fits exactly, mini-batch SGD with the best
    step for batch ``B`` needs ``B`` times fewer serial steps than batch 1 while ``B``
    stays below this size, and gains little beyond it (Ma, Bassily & Belkin, 2018, with
    the mean squared row norm in place of the largest). It tells how many rows per step
    a synchronous data-parallel SGD can use before more workers stop shortening the run.

    Parameters
    ----------
    X : (n, d) NumPy, CuPy, SciPy sparse or dask array, or CSRMatrix
    max_iter, tol, random_state
        Power iteration for ``lambda_max`` when ``d > 2048`` or ``X`` is a CSRMatrix
        (the Gram matrix is formed otherwise); it stops when the estimate changes by
        less than ``tol`` relative.

    Returns
    -------
     : : float

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((1000, 10))
    >>> 5 < critical_batch_size(X) < 20          # about d for isotropic rows
    True
    """
    from ..backend import asarray_like, to_numpy
    from ..sparse import CSRMatrix
    from ..validation import check_array

    X = check_array(X, name="X")
    n, d = X.shape
    squares = X.power(2).sum() if hasattr(X, "power") else (X * X).sum()
    mean_sq = float(dask.compute(squares)[0]) / n
    if mean_sq == 0:
        raise ValueError("X is all zeros: least squares on it has no curvature and no critical batch size.")
    if d <= 2048 and not isinstance(X, CSRMatrix):
        gram = X.T @ X
        gram = to_numpy(dask.compute(gram)[0])
        gram = gram.toarray() if scipy.sparse.issparse(gram) else gram
        lam_max = float(np.linalg.eigvalsh(np.asarray(gram, dtype=float) / n)[-1])
    else:
        rng = np.random.default_rng(resolve_seed(random_state))
        v = rng.standard_normal(d)
        v /= np.linalg.norm(v)
        lam_max = 0.0
        for _ in range(max_iter):
            g = dask.compute((X @ asarray_like(v, X)) @ X)[0]      # v on X's backend (CuPy on GPU)
            g = np.asarray(to_numpy(g), dtype=float).ravel() / n
            new = float(np.linalg.norm(g))
            v = g / new
            if abs(new - lam_max) <= tol * new:
                lam_max = new
                break
            lam_max = new
    return mean_sq / lam_max
