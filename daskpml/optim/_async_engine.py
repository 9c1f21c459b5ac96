"""The engine of the asynchronous solvers: the driver loop on ``dask.distributed`` futures
(task submission with unique keys, ``as_completed``, stopping rules, lost-work accounting,
objective samples, checkpoints and the history) and the tasks that run on the workers
(:func:`sgd_steps`). The solvers themselves (:mod:`daskpml.optim._async`) only say what a worker
computes and how the driver combines it; every solver hands the engine one
:class:`RunOptions`.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from dataclasses import dataclass, fields
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
from distributed import as_completed, futures_of, get_worker, wait

from ..runtime import current_client
from .._blocks import add
from ._objective import Objective, Spec, chunk_loss_grad, chunk_losses
from ._run import OptimizeResult, Run
from ._stochastic import Schedule, _Stopper, _take, batch_rows, scheduled_rate, slowdown, straggle

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


@dataclass(frozen=True)
class RunOptions:
    """The options every asynchronous solver takes, handed to the :class:`Engine` as one object:
    the stopping rules, monitoring, the callback, the checkpoint protocol and the learning-rate
    schedule (see :func:`async_sgd` for each)."""

    max_iter: float
    max_time: float | None
    tol: float | None
    n_iter_no_change: int
    eval_every: int | None
    delay: Mapping[int, float] | None
    callback: Callable | None
    progress: bool | None
    checkpoint: str | os.PathLike | None
    checkpoint_every: int
    resume: bool
    learning_rate: Schedule
    eta0: float
    power_t: float = 0.25
    gamma: float = 0.1
    decay_every: int = 10

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> RunOptions:
        """The options among a solver's arguments (its ``locals()`` on entry); the schedule's
        constants a solver does not take keep their defaults."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


class Engine:
    """The driver side shared by the asynchronous solvers: block futures, task submission with
    unique keys, the ``as_completed`` loop, stopping rules, lost-work accounting, objective
    samples and the history.

    Parameters
    ----------
    solver : str
        The solver's name.
    objective : Objective
        The distributed objective (data, loss family, penalty), see :func:`fit_linear`.
    options : RunOptions
        The solver's stopping rules, monitoring, callback, checkpoint and schedule.
    rows_per_update : int
        Rows one update consumes (for the epoch count).
    **attrs
        Settings recorded in the history's attrs.

    Examples
    --------
    >>> Engine.__name__                    # built by async_sgd, easgd and gossip_sgd, not by users
    'Engine'
    """

    def __init__(self, solver: str, objective: Objective, options: RunOptions, *, rows_per_update: int,
                 **attrs: Any) -> None:
        self.options = o = options
        max_iter, max_time, tol = o.max_iter, o.max_time, o.tol
        attrs = dict(attrs, learning_rate=o.learning_rate, eta0=o.eta0)
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
        self.factors = [slowdown(o.delay, i) for i in range(self.P)]
        wait([x for x, _ in self.blocks])              # persist returns before the chunks exist
        who = client.who_has([x for x, _ in self.blocks])
        self.addresses = [(list(who.get(x.key, [])) or [""])[0] for x, _ in self.blocks]
        self.rows_needed = float(max_iter) * self.n
        self.max_time = max_time
        self.online = tol is not None
        self.stopper = _Stopper(float(tol), int(o.n_iter_no_change)) if self.online else None
        updates_per_epoch = max(1, math.ceil(self.n / max(rows_per_update, 1)))
        self.eval_every = int(o.eval_every or max(1, updates_per_epoch // (1 if self.online else 8)))
        if self.eval_every < 1:
            raise ValueError(f"eval_every must be a positive integer, got {o.eval_every}.")
        self.run = Run(solver, objective, max_iter=math.ceil(max_iter * updates_per_epoch),
                       tol=0.0 if tol is None else tol, callback=o.callback, progress=o.progress,
                       eval_every=self.eval_every, max_time=-1.0 if max_time is None else float(max_time),
                       monitor="online" if self.online else "after", checkpoint=o.checkpoint,
                       checkpoint_every=o.checkpoint_every, resume=o.resume, **attrs)
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

    def schedule(self) -> Callable[[], float]:
        """The current learning rate: steps counted in server versions, epochs in rows processed."""
        o = self.options
        return lambda: scheduled_rate(o.learning_rate, o.eta0, self.version, self.rows_done / self.n,
                                      power_t=o.power_t, gamma=o.gamma, decay_every=o.decay_every)

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


