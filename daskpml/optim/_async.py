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

import os
import math
import time
import uuid
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
from distributed import as_completed, futures_of, get_worker, wait

from .._random import resolve_seed
from ..runtime import current_client
from .._blocks import add
from ..validation import validate_params
from ._objective import Objective, Spec, chunk_loss_grad, chunk_losses
from ._run import OptimizeResult, Run
from ._stochastic import RENAMED, Schedule, _Stopper, _take, batch_rows, scheduled_rate, slowdown, straggle

#: Errors that mean "the worker went away", not "the task is wrong".
_LOSS_ERRORS: tuple[type[BaseException], ...]


def _loss_errors() -> tuple[type[BaseException], ...]:
    from asyncio import CancelledError

    from distributed.comm.core import CommClosedError
    from distributed.scheduler import KilledWorker

    errors: list[type[BaseException]] = [KilledWorker, CommClosedError, CancelledError]
    try:
        from distributed.client import FutureCancelledError

        errors.append(FutureCancelledError)
    except ImportError:  # pragma: no cover - older distributed
        pass
    return tuple(errors)


_LOSS_ERRORS = _loss_errors()


def _where() -> str:
    try:
        return get_worker().address
    except ValueError:
        return ""


def _model(x: Any) -> np.ndarray:
    """A model argument: an array, or the tuple a previous task returned."""
    return x[0] if isinstance(x, tuple) else x


def sgd_steps(X: Any, y: Any, theta: np.ndarray, seed: int, chunk: int, start: int, steps: int, batch: int,
                rate: float, spec: Spec, factor: float = 1.0) -> tuple:
    """``steps`` SGD steps on mini-batches of one chunk's rows, from ``theta``.

    Returns ``(theta after, sum of the mini-batch gradients, mean batch loss,
    dask address, compute seconds)``. Mini-batches are the rows
    ``start .. start + steps * batch`` of the chunk's shuffled order (see
    :func:`batch_rows`), so a rerun after a worker loss repeats the same work.

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
    start : int
        Position in the chunk's shuffled order where the first mini-batch starts.
    steps : int
        SGD steps.
    batch : int
        Rows per mini-batch.
    rate : float
        Step size.
    spec : Spec
        The loss family and penalty.
    factor : float, default 1.0
        Straggler slowdown of this chunk (:func:`slowdown`).

    Returns
    -------
    result : tuple
        ``(theta after, sum of the mini-batch gradients, mean batch loss, dask address, compute seconds)``.

    Examples
    --------
    >>> from daskpml.optim import Layout, Objective, get_family, get_penalty
    >>> X = np.eye(4); y = np.ones(4)
    >>> spec = Objective(X, y, get_family("squared"), get_penalty("none"), 0.0, Layout(4, 1, True)).spec
    >>> theta, g, loss, where, seconds = sgd_steps(X, y, np.zeros(5), 0, 0, 0, 4, 1, 0.1, spec)
    >>> theta.shape
    (5,)
    """
    t0 = time.perf_counter()
    theta = np.array(_model(theta), dtype=np.float64)
    acc = np.zeros_like(theta)
    loss = 0.0
    n = X.shape[0]
    for k in range(steps):
        rows = batch_rows(seed, chunk, n, start + k * batch, batch)
        out = chunk_loss_grad(_take(X, rows), y[rows], theta, spec.family, spec.layout)
        g = out[1:] / batch + spec.smooth_grad(theta)
        acc += g
        loss += out[0] / batch
        theta = spec.prox(theta - rate * g, rate)
    elapsed = straggle(factor, t0)
    return theta, acc, loss / max(steps, 1), _where(), elapsed


def _gossip(X: Any, y: Any, own: Any, peer: Any, seed: int, chunk: int, start: int, steps: int, batch: int,
            rate: float, spec: Spec, factor: float) -> tuple:
    """Average with the peer's model, then local steps (runs on the chunk's worker)."""
    mixed = 0.5 * (_model(own) + _model(peer))
    return sgd_steps(X, y, mixed, seed, chunk, start, steps, batch, rate, spec, factor)


class Engine:
    """The driver side shared by the asynchronous solvers: block futures, task
    submission with unique keys, the ``as_completed`` loop, stopping rules, lost-work
    accounting, objective samples and the history.

    Parameters
    ----------
    solver : str
        The solver's name.
    objective : Objective
        The distributed objective (data, loss family, penalty), see :func:`fit_linear`.
    rows_per_update : int
        Rows one update consumes (for the epoch count).
    max_iter : float
        Epochs at most.
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
    **attrs
        Settings recorded in the history's attrs.

    Examples
    --------
    >>> Engine.__name__                    # built by async_sgd, easgd and gossip_sgd, not by users
    'Engine'
    """

    def __init__(self, solver: str, objective: Objective, *, rows_per_update: int, max_iter: float,
                 max_time: float | None, tol: float | None, n_iter_no_change: int, eval_every: int | None,
                 delay: Mapping[int, float] | None, callback: Callable | None, progress: bool | None,
                 checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10, resume: bool = False, **attrs: Any) -> None:
        client = current_client()
        if client is None or not objective.distributed:
            raise RuntimeError(
                f"{solver} runs on dask.distributed futures: connect first (daskpml.connect() or "
                "distributed.Client(...)) and fit through fit_linear or an estimator, which spreads the rows "
                "over the workers in row chunks.")
        if not max_iter > 0:
            raise ValueError(f"max_iter (epochs) must be positive, got {max_iter}.")
        if max_time is not None and not max_time > 0:
            raise ValueError(f"max_time must be a positive number of seconds, got {max_time}.")
        self.client, self.objective = client, objective
        self.n = objective.n_samples
        futures = {f.key: f for f in futures_of(objective.collections)}
        self.blocks = [tuple(futures[b.key] if b.key in futures else client.compute(b) for b in pair)
                       for pair in objective._blocks]
        self.P = len(self.blocks)
        self.sizes = list(objective.row_chunks)
        self.factors = [slowdown(delay, i) for i in range(self.P)]
        wait([x for x, _ in self.blocks])              # persist returns before the chunks exist
        who = client.who_has([x for x, _ in self.blocks])
        self.addresses = [(list(who.get(x.key, [])) or [""])[0] for x, _ in self.blocks]
        self.rows_needed = float(max_iter) * self.n
        self.max_time = max_time
        self.online = tol is not None
        self.stopper = _Stopper(float(tol), int(n_iter_no_change)) if self.online else None
        updates_per_epoch = max(1, math.ceil(self.n / max(rows_per_update, 1)))
        self.eval_every = int(eval_every or max(1, updates_per_epoch // (1 if self.online else 8)))
        if self.eval_every < 1:
            raise ValueError(f"eval_every must be a positive integer, got {eval_every}.")
        self.run = Run(solver, objective, max_iter=math.ceil(max_iter * updates_per_epoch),
                       tol=0.0 if tol is None else tol, callback=callback, progress=progress,
                       eval_every=self.eval_every, max_time=-1.0 if max_time is None else float(max_time),
                       monitor="online" if self.online else "after", checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume, **attrs)
        self.run.workers = list(range(self.P))
        self.ac = as_completed()
        self.inflight: dict[Any, tuple[int, dict]] = {}
        self.monitors: dict[Any, tuple[int, np.ndarray]] = {}
        self.key_slot: dict[str, int] = {}
        self.prefix = f"{solver}-{uuid.uuid4().hex[:10]}"
        self.count = 0
        self.version = 0
        self.rows_done = 0
        self.updates = np.zeros(self.P, dtype=np.int64)
        self.failed = np.zeros(self.P, dtype=np.int64)
        self.busy = np.zeros(self.P)
        self.snapshots: list[tuple[int, np.ndarray]] = []
        self.reason = ""
        self.converged = False
        self.solver_state: Callable[[], tuple[dict, dict]] | None = None
        self.resumed = self.run.snapshot
        if self.resumed is not None:
            self._restore(self.resumed)

    # -- checkpoints ------------------------------------------------------------------------
    def _restore(self, snap: Any) -> None:
        """The driver's counters, the pending objective samples and the stopping rule's
        state from a snapshot (the solver restores its models from ``snap`` itself)."""
        st = snap.state
        self.version, self.rows_done = int(st["version"]), int(st["rows_done"])
        self.updates = np.array(snap.arrays["updates"], dtype=np.int64)
        self.busy = np.array(snap.arrays["busy"], dtype=float)
        self.failed = np.array(snap.arrays["failed"], dtype=np.int64)
        if "sample_index" in snap.arrays:
            self.snapshots = list(zip(snap.arrays["sample_index"].tolist(), np.array(snap.arrays["sample_theta"])))
        if self.stopper is not None:
            self.stopper.best, self.stopper.bad = float(st["best"]), int(st["bad"])
        self.converged = bool(st.get("converged", False))

    def _save(self, final: bool = False) -> None:
        """A snapshot every ``checkpoint_every`` updates (and at the end): the solver's
        ``solver_state()`` (arrays, JSON state) with the driver's counters."""
        cp = self.run.checkpoint
        total = int(self.updates.sum())
        if cp is None or self.solver_state is None or not cp.due(total, final):
            return
        arrays, state = self.solver_state()
        pending = self.snapshots + list(self.monitors.values())
        if pending:
            arrays["sample_index"] = np.array([i for i, _ in pending], dtype=np.int64)
            arrays["sample_theta"] = np.stack([t for _, t in pending])
        arrays.update(updates=self.updates, busy=self.busy, failed=self.failed)
        state.update(version=self.version, rows_done=self.rows_done, converged=self.converged,
                     best=float(self.stopper.best) if self.stopper else 0.0,
                     bad=int(self.stopper.bad) if self.stopper else 0)
        self.run.save(total, final=True, arrays=arrays, **state)

    def schedule(self, schedule: Schedule, eta0: float, **options: Any) -> Callable[[], float]:
        """The current learning rate: steps counted in server versions, epochs in rows processed."""
        return lambda: scheduled_rate(schedule, eta0, self.version, self.rows_done / self.n, **options)

    # -- tasks ----------------------------------------------------------------------------
    def submit(self, fn: Callable, slot: int, *args: Any, meta: dict | None = None, **kwargs: Any) -> Any:
        key = f"{self.prefix}-{self.count}"
        self.count += 1
        future = self.client.submit(fn, *args, key=key, pure=False, **kwargs)
        self.key_slot[key] = slot
        self.inflight[future] = (slot, dict(meta or {}))
        self.ac.add(future)
        return future

    def inflight_versions(self) -> list[int]:
        return [meta["version"] for _, meta in self.inflight.values() if "version" in meta]

    # -- the loop -------------------------------------------------------------------------
    def loop(self, on_result: Callable[[int, dict, Any], bool], on_lost: Callable[[int, dict], None], *,
             fetch: bool = True) -> None:
        """Hand each finished task to ``on_result(slot, meta, value)`` (the future itself
        with ``fetch=False``) until it returns True or a stopping rule fires; tasks lost
        with their worker go to ``on_lost(slot, meta)``."""
        try:
            for future in self.ac:
                if future in self.monitors:
                    self._monitored(future)
                    if self.converged:
                        break
                    continue
                if future not in self.inflight:          # cancelled by a previous stop
                    continue
                slot, meta = self.inflight.pop(future)
                if future.status != "finished":
                    exc = future.exception() if future.status == "error" else None
                    if exc is not None and not isinstance(exc, _LOSS_ERRORS):
                        raise exc
                    self.failed[slot] += 1
                    on_lost(slot, meta)
                    continue
                value = future.result() if fetch else future
                if on_result(slot, meta, value) or self._should_stop():
                    break
        except KeyboardInterrupt:
            self.reason = "interrupted (KeyboardInterrupt); returning the current model"
            self.run.stopped = True
        finally:
            pending = list(self.inflight)
            self.inflight.clear()
            if pending:
                self.client.cancel(pending)

    def _should_stop(self) -> bool:
        if self.run.stopped:
            return True
        if self.rows_done >= self.rows_needed:
            return True
        if self.max_time is not None and self.run.elapsed() >= self.max_time:
            self.reason = f"reached max_time={self.max_time:g} s; returning the current model"
            self.run.stopped = True
            return True
        return False

    @property
    def done(self) -> bool:
        return self.run.stopped or self.converged or self.rows_done >= self.rows_needed

    # -- history ----------------------------------------------------------------------------
    def record(self, slot: int, theta: np.ndarray | Callable[[], np.ndarray], *, staleness: int, rows: int,
               save_point: bool = True, **extra: Any) -> bool:
        """One update row; takes an objective sample every ``eval_every`` updates.
        ``theta`` may be a function that makes the model, called only for a sample (the
        callback then sees the model; otherwise None). ``save_point=False``: the solver's
        state is between two consistent points (a round half recorded); no snapshot here."""
        self.updates[slot] += 1
        self.rows_done += rows
        due = int(self.updates.sum()) % self.eval_every == 0
        if callable(theta):
            theta = theta() if due else None
        stop = self.run.record(int(self.updates.sum()), theta, math.nan, math.nan, update_worker=slot,
                               version=self.version, staleness=staleness, rows=self.rows_done, **extra)
        if due:
            self.sample(theta)
        if save_point:
            self._save()
        return stop

    def sample(self, theta: np.ndarray) -> None:
        index = self.run.n_rows - 1
        theta = np.array(theta, dtype=np.float64)
        if self.online:
            self.monitors[self._losses(theta[None, :])] = (index, theta)
            self.ac.add(next(reversed(self.monitors)))
        else:
            self.snapshots.append((index, theta))

    def _losses(self, thetas: np.ndarray) -> Any:
        spec = self.objective.spec
        parts = [self.client.submit(chunk_losses, X, y, thetas, spec.family, spec.layout, pure=False)
                 for X, y in self.blocks]
        return self.client.submit(add, *parts, pure=False)

    def _full(self, sums: np.ndarray, thetas: np.ndarray) -> np.ndarray:
        obj = self.objective
        return np.array([s / self.n + obj.lam * obj.penalty.value(t[obj.mask]) for s, t in zip(sums, thetas)])

    def _monitored(self, future: Any) -> None:
        index, theta = self.monitors.pop(future)
        if future.status != "finished":          # lost with a worker: the sample is skipped
            return
        f = float(self._full(future.result(), theta[None, :])[0])
        self.run.fill(index, objective=f)
        if self.stopper is not None and self.stopper(f):
            self.converged = True
            self.reason = (f"the sampled objective did not improve by tol={self.stopper.tol:g} in "
                           f"{self.stopper.patience} samples")

    def _evaluate_after(self) -> None:
        for future in list(self.monitors):      # online samples still pending
            try:
                self.client.gather(future)
                self._monitored(future)
            except Exception:                   # pragma: no cover - lost with its worker
                self.monitors.pop(future, None)
        if not self.snapshots:
            return
        for s in range(0, len(self.snapshots), 64):
            group = self.snapshots[s:s + 64]
            thetas = np.stack([t for _, t in group])
            sums = self._losses(thetas).result()
            for (index, _), f in zip(group, self._full(sums, thetas)):
                self.run.fill(index, objective=float(f))
        self.snapshots = []

    def _lost_to_worker_loss(self) -> np.ndarray:
        """Tasks of this run that were processing, or finished but not yet collected, on a
        worker the scheduler removed (from its ``remove-worker`` events)."""
        lost = np.zeros(self.P, dtype=np.int64)
        try:
            events = self.client.get_events("all")
        except Exception:  # pragma: no cover - scheduler gone
            return lost
        for _, msg in events:
            if not isinstance(msg, dict) or msg.get("action") != "remove-worker":
                continue
            keys = set(msg.get("processing-tasks", ())) | set(msg.get("lost-computed-tasks", ()))
            for key in keys:
                slot = self.key_slot.get(key if isinstance(key, str) else str(key))
                if slot is not None:
                    lost[slot] += 1
        return lost

    def finish(self, theta: np.ndarray, **totals: Any) -> OptimizeResult:
        """The result: objective samples evaluated, lost work counted, per-worker totals
        (``totals`` adds solver-specific ones)."""
        theta = np.array(theta, dtype=np.float64)
        if not self.run.n_rows:                    # stopped before the first update
            self.run.record(0, theta, math.nan, math.nan, update_worker=-1, version=0, staleness=0, rows=0)
        last = self.run.n_rows - 1
        if not any(i == last for i, _ in self.snapshots) and not any(i == last for i, _ in self.monitors.values()):
            self.snapshots.append((last, theta))
        self._save(final=True)
        self._evaluate_after()
        lost = np.maximum(self._lost_to_worker_loss(), self.failed)
        self.run.worker_totals = {"updates": self.updates, "lost": lost, "busy_time": self.busy,
                                  "rows_per_chunk": np.asarray(self.sizes),
                                  "address": np.asarray(self.addresses, dtype=str), **totals}
        self.run.attrs.update(lost_tasks=int(lost.sum()), updates=int(self.updates.sum()),
                              epochs=self.rows_done / self.n)
        finished = self.converged or self.rows_done >= self.rows_needed
        message = self.reason or ("" if finished else "stopped early")
        if finished and not self.reason:
            message = f"ran max_iter={self.rows_needed / self.n:g} epochs"
        return self.run.finish(theta, int(self.updates.sum()), finished and not self.run.stopped, message)


def _check_sgd(batch_size: int, eta0: float) -> None:
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}.")
    if not eta0 > 0:
        raise ValueError(f"eta0 must be positive, got {eta0}.")


@validate_params({}, removed=RENAMED)
def async_sgd(objective: Objective, theta0: np.ndarray, *, batch_size: int = 256,
              learning_rate: Schedule = "invscaling", eta0: float = 0.1, power_t: float = 0.25,
              gamma: float = 0.1, decay_every: int = 10, staleness: str = "none", max_staleness: int | None = None,
              push_every: int = 1, pull_every: int = 1, max_iter: float = 10, max_time: float | None = None,
              tol: float | None = None, n_iter_no_change: int = 3, eval_every: int | None = None,
              delay: Mapping[int, float] | None = None, random_state: Any = None,
              callback: Callable | None = None, progress: bool | None = None,
              checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10, resume: bool = False) -> OptimizeResult:
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
    _check_sgd(batch_size, eta0)
    if staleness not in ("none", "divide"):
        raise ValueError(f"staleness must be 'none' or 'divide', got {staleness!r}.")
    push_every, pull_every = int(push_every), int(pull_every)
    if push_every < 1 or pull_every < 1 or pull_every % push_every:
        raise ValueError(f"push_every and pull_every must be positive with pull_every a multiple of push_every "
                         f"(got push_every={push_every}, pull_every={pull_every}).")
    if max_staleness is not None and int(max_staleness) < 0:
        raise ValueError(f"max_staleness must be a non-negative integer or None, got {max_staleness}.")
    bound = None if max_staleness is None else int(max_staleness)
    seed = resolve_seed(random_state)
    batch = int(batch_size)
    eng = Engine("async_sgd", objective, rows_per_update=batch * push_every, max_iter=max_iter,
                 max_time=max_time, tol=tol, n_iter_no_change=n_iter_no_change, eval_every=eval_every,
                 delay=delay, callback=callback, progress=progress, batch_size=batch,
                 learning_rate=learning_rate, eta0=eta0, staleness=staleness,
                 max_staleness=-1 if bound is None else bound, push_every=push_every, pull_every=pull_every,
                 seed=seed, checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume)
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

    rate = eng.schedule(learning_rate, eta0, power_t=power_t, gamma=gamma, decay_every=decay_every)

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
    _check_sgd(batch_size, eta0)
    tau = int(local_steps)                  # the paper's communication period
    if tau < 1:
        raise ValueError(f"local_steps must be a positive integer, got {local_steps}.")
    seed = resolve_seed(random_state)
    batch = int(batch_size)
    P = objective.n_chunks
    alpha = 0.9 / P if alpha is None else float(alpha)
    if not 0 < alpha < 1 or (synchronous and alpha * P > 1):
        raise ValueError(f"alpha must be in (0, 1) (and alpha * n_workers <= 1 when synchronous), got {alpha} "
                         f"with {P} workers; the default is 0.9 / n_workers.")
    name = "easgd"
    eng = Engine(name, objective, rows_per_update=batch * tau, max_iter=max_iter, max_time=max_time, tol=tol,
                 n_iter_no_change=n_iter_no_change, eval_every=eval_every, delay=delay, callback=callback,
                 progress=progress, local_steps=tau, alpha=alpha, synchronous=int(bool(synchronous)), batch_size=batch,
                 learning_rate=learning_rate, eta0=eta0, seed=seed, checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume)
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

    rate = eng.schedule(learning_rate, eta0, power_t=power_t, gamma=gamma, decay_every=decay_every)

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
def gossip_sgd(objective: Objective, theta0: np.ndarray, *, local_steps: int = 10, batch_size: int = 32,
               learning_rate: Schedule = "invscaling", eta0: float = 0.1, power_t: float = 0.25,
               gamma: float = 0.1, decay_every: int = 10, max_iter: float = 10, max_time: float | None = None,
               tol: float | None = None, n_iter_no_change: int = 3, eval_every: int | None = None,
               delay: Mapping[int, float] | None = None, random_state: Any = None,
               callback: Callable | None = None, progress: bool | None = None,
               checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10, resume: bool = False) -> OptimizeResult:
    """Decentralized gossip SGD: no server.

    Each worker repeats, at its own pace: average its model with the latest model of a
    peer drawn at random, then ``local_steps`` SGD steps on its rows. The averaging
    task runs on the worker's own dask worker and fetches the peer's model from the
    peer's worker directly; models never pass through a central process. The driver
    gathers the models only for objective samples, and the result is their average
    (weighted by rows) at the end. ``staleness`` in the history is the number of
    updates (all workers) since the peer's model was made.

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
    _check_sgd(batch_size, eta0)
    H = int(local_steps)
    if H < 1:
        raise ValueError(f"local_steps must be a positive integer, got {local_steps}.")
    seed = resolve_seed(random_state)
    batch = int(batch_size)
    P = objective.n_chunks
    if P < 2:
        raise ValueError("gossip_sgd needs at least 2 chunks (workers) to gossip between; "
                         "pass more row chunks or use local_sgd.")
    eng = Engine("gossip_sgd", objective, rows_per_update=batch * H, max_iter=max_iter, max_time=max_time, tol=tol,
                 n_iter_no_change=n_iter_no_change, eval_every=eval_every, delay=delay, callback=callback,
                 progress=progress, local_steps=H, batch_size=batch, learning_rate=learning_rate,
                 eta0=eta0, seed=seed, checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume)
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

    rate = eng.schedule(learning_rate, eta0, power_t=power_t, gamma=gamma, decay_every=decay_every)

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

