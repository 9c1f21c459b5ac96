"""The synchronous solvers' loop on the ranks of an SPMD group (:mod:`daskpml.comm`).

On a distributed cluster a solver decorated with :func:`on_ranks` does not drive its iterations
from the client: one task per worker that holds row blocks runs the *whole* solver, each with a
:class:`RankObjective` over the blocks it holds. Every loss/gradient/Hessian-vector evaluation is
the rank's local sum (its blocks, on the worker's threads) followed by one ``allreduce`` of
``|theta| + 2`` numbers, worker to worker. ``allreduce`` gives every rank the same bits, so the
replicated state (line searches, L-BFGS pairs, CG) is computed identically everywhere and the
ranks take the same branches; the iterates equal the task-graph version's up to the order of the
floating-point sums. Only rank 0 talks to the client:

- each history row goes to the client as it is recorded (progress line; ``callback(record)``
  runs on the client; with a callback, rank 0 waits for its answer, which it broadcasts, so a
  true return stops every rank at the same iteration);
- checkpoints are read and written by the client (``Checkpoint`` as before): rank 0 sends the
  snapshot's arrays and history, and receives the snapshot to resume from;
- warnings raised on the ranks (``ConvergenceWarning``) are raised again on the client.

A lost worker ends the group with :class:`~daskpml.comm.CommError`; with ``checkpoint=`` the run
restarts from its newest snapshot on the workers that remain (the blocks the lost worker held are
recomputed by Dask, when their graph allows it), and says so in a warning.

The ``bytes`` column is measured: what all ranks wrote to their sockets (summed in the same
``allreduce``), ``attrs["source"] == "measured"``.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

from .. import _config
from .._checkpoint import Checkpoint, Snapshot
from .._progress import ProgressLine
from .._random import resolve_seed
from ..comm import CommError, spmd
from ..runtime import active_client
from ._objective import Comm, Objective, Spec

_RANK: contextvars.ContextVar = contextvars.ContextVar("daskpml_optim_rank", default=None)

#: restarts after a lost worker (with a checkpoint) before giving up
MAX_RESTARTS = 3


def rank_context() -> "RankContext | None":
    """The context of the solver running on this rank (None on the client)."""
    return _RANK.get()


class RankObjective(Objective):
    """The objective on one rank: the rank's row blocks, summed locally, then all-reduced.

    Parameters
    ----------
    group : Communicator
        The SPMD group.
    X_blocks, y_blocks : list
        The rank's row blocks and targets.
    desc : dict
        ``family``, ``penalty``, ``lam``, ``layout``, ``n_samples``, ``row_chunks`` of the whole problem.
    """

    def __init__(self, group: Any, X_blocks: list, y_blocks: list, desc: dict) -> None:
        self.family, self.penalty, self.lam, self.layout = desc["family"], desc["penalty"], float(desc["lam"]), \
            desc["layout"]
        self.spec = Spec(self.family, self.penalty, self.lam, self.layout)
        self.n_samples = int(desc["n_samples"])
        self.row_chunks = tuple(desc["row_chunks"])
        self.n_chunks = len(self.row_chunks)
        self.distributed = True
        self.split_every = None
        self.comm = Comm()
        self.mask = self.layout.coef_mask()
        self.group = group
        self._blocks = list(zip(X_blocks, y_blocks))
        self.block_index = list(group.blocks)      # the global chunk index of each local block
        self.data = {}
        self.collections = ()
        threads = 1
        try:
            from distributed import get_worker

            threads = int(get_worker().state.nthreads)
        except Exception:
            pass
        self.compute_s = 0.0                     # the rank's own timers: block work, and time in allreduce
        self.comm_s = 0.0
        self._pool = ThreadPoolExecutor(min(threads, len(self._blocks))) \
            if threads > 1 and len(self._blocks) > 1 else None

    def map_blocks(self, fn: Callable) -> list:
        """``fn(chunk_index, X_block, y_block)`` for each local block (on the worker's threads)."""
        t0 = time.perf_counter()
        items = list(zip(self.block_index, self._blocks))
        if self._pool is not None:
            out = list(self._pool.map(lambda item: fn(item[0], *item[1]), items))
        else:
            out = [fn(i, Xb, yb) for i, (Xb, yb) in items]
        self.compute_s += time.perf_counter() - t0
        return out

    def allreduce(self, local: np.ndarray, count: bool = True) -> np.ndarray:
        """Sum of ``local`` over the ranks (one round; the ``bytes`` counter rides along)."""
        vec = np.empty(local.size + 1)
        vec[:-1] = local.ravel()
        vec[-1] = self.group.bytes_sent         # measured: every rank's socket bytes so far, summed
        t0 = time.perf_counter()
        self.group.allreduce(vec)
        self.comm_s += time.perf_counter() - t0
        if count:
            self.comm.rounds += 1
            self.comm.bytes = int(vec[-1])
        return vec[:-1].reshape(local.shape)

    def reduce_blocks(self, fn: Callable, count: bool = True) -> np.ndarray:
        """Sum over every block of the problem of ``fn(chunk_index, X_block, y_block)``: the local
        blocks in order, then the ranks."""
        parts = self.map_blocks(fn)
        return self.allreduce(parts[0] if len(parts) == 1 else functools.reduce(np.add, parts), count)

    def _reduce(self, kernel: Any, *args: Any, count: bool = True) -> np.ndarray:
        return self.reduce_blocks(lambda i, Xb, yb: kernel(Xb, yb, *args), count)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()


class RemoteCheckpoint:
    """The rank side of a client-held :class:`~daskpml._checkpoint.Checkpoint`: rank 0 sends
    what the client's checkpoint reads and writes; the snapshot to resume from is broadcast."""

    #: without a folder (the client's in-memory copy, for restarts) at most one snapshot this often
    MEMORY_INTERVAL_S = 1.0

    def __init__(self, ctx: "RankContext", every: int) -> None:
        self.ctx, self.every = ctx, int(every)
        self.path = "(on the client)"
        self._last = -float("inf")

    @property
    def enabled(self) -> bool:
        return True

    def describe(self, algorithm: str, params: Any = None, data: Any = None) -> "RemoteCheckpoint":
        if self.ctx.comm.rank == 0:
            self.ctx.comm.report(("cp-describe", algorithm, params, data))
        return self

    def watch(self, **collections: Any) -> "RemoteCheckpoint":
        return self                               # the client watches the whole data

    def restore(self, like: Any = None) -> Any:
        comm = self.ctx.comm
        snap = None
        if comm.rank == 0:
            comm.report(("cp-restore",))
            snap = self.ctx.wait_for("snapshot")[1]
        return comm.broadcast(snap) if self.ctx.collective else snap

    def due(self, iteration: int, final: bool = False) -> bool:
        if final:
            return True
        if int(iteration) % self.every:
            return False
        if not self.ctx.folder:                     # only the client's copy: bounded in time
            now = time.perf_counter()
            if now - self._last < self.MEMORY_INTERVAL_S:
                return False
            self._last = now
        return True

    def save(self, iteration: int, *, arrays: Any = None, blocks: Any = None, history: Any = None,
             state: Any = None) -> None:
        if self.ctx.comm.rank == 0:
            from ..backend import to_numpy

            self.ctx.comm.report(("cp-save", int(iteration), {k: to_numpy(v) for k, v in (arrays or {}).items()},
                                  history, state))


class MemoryCheckpoint:
    """The client's copy of the newest snapshot when no ``checkpoint=`` folder is given: what the
    group restarts from when it loses a worker (nothing is written to disk)."""

    def __init__(self, every: int) -> None:
        self.every, self.path, self.resume = int(every), None, False
        self._snapshot: Snapshot | None = None

    def describe(self, *args: Any) -> "MemoryCheckpoint":
        return self

    def restore(self) -> Snapshot | None:
        return self._snapshot if self.resume else None

    def save(self, iteration: int, *, arrays: Any = None, history: Any = None, state: Any = None) -> None:
        self._snapshot = Snapshot(int(iteration), dict(arrays or {}), {}, dict(history or {}), dict(state or {}))


class RankContext:
    """What a solver's :class:`~daskpml.optim.Run` does differently on a rank.

    ``collective``: every rank runs the solver's loop (the synchronous solvers): the callback's
    verdict and the snapshot to resume from are broadcast. Otherwise only rank 0 records (the
    asynchronous solvers' server) and nothing is broadcast; rows then go to the client in
    batches (every ``FLUSH_S`` seconds) unless a callback needs each one."""

    FLUSH_S = 0.25

    def __init__(self, comm: Any, callback: bool, checkpoint: bool, collective: bool = True, folder: bool = False,
                 lost: Any = None) -> None:
        self.comm, self.callback, self.checkpoint, self.collective = comm, callback, checkpoint, collective
        self.folder = folder                        # the client writes snapshots to a folder
        self.lost = lost                            # per chunk: updates lost with a worker before this restart
        self._held: list = []
        self._rows: list = []
        self._flushed = time.perf_counter()
        self.interrupted = False

    def interrupt_requested(self) -> bool:
        """Whether the client asked to stop (Ctrl-C, or a callback that raised KeyboardInterrupt)."""
        if not self.interrupted and self.control("interrupt"):
            self.interrupted = True
        return self.interrupted

    def wait_for(self, kind: str) -> tuple:
        while True:
            for i, msg in enumerate(self._held):
                if msg[0] == kind:
                    return self._held.pop(i)
            self._held += self.comm.wait_control()

    def control(self, kind: str) -> list:
        """Messages of ``kind`` from the client that arrived so far (never waits)."""
        self._held += self.comm.control()
        out = [m for m in self._held if m[0] == kind]
        self._held = [m for m in self._held if m[0] != kind]
        return out

    def on_record(self, record: dict) -> bool:
        """The recorder's callback on a rank: the row to the client (and its verdict back)."""
        comm = self.comm
        verdict = False
        if comm.rank == 0:
            row = record if self.callback else {k: v for k, v in record.items() if k != "theta"}
            if self.collective or self.callback:
                comm.report(("row", row))
            else:
                self._rows.append(row)
                if time.perf_counter() - self._flushed >= self.FLUSH_S:
                    self.flush()
            if self.callback:
                answer = self.wait_for("verdict")[1]
                self.interrupted = self.interrupted or answer == "interrupt"
                verdict = bool(answer)
        if self.callback and self.collective:
            verdict = bool(comm.broadcast(verdict))
        return verdict

    def flush(self) -> None:
        if self._rows:
            self.comm.report(("rows", self._rows))
            self._rows = []
        self._flushed = time.perf_counter()

    def remote_checkpoint(self, every: int) -> RemoteCheckpoint | None:
        return RemoteCheckpoint(self, every) if self.checkpoint else None


def _rank_solve(comm: Any, X_blocks: list, y_blocks: list, fn: Callable, desc: dict, theta0: np.ndarray,
                options: dict, flags: dict) -> Any:
    t0 = time.perf_counter()
    objective = RankObjective(comm, X_blocks, y_blocks, desc)
    ctx = RankContext(comm, **flags)
    token = _RANK.set(ctx)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fn(objective, theta0, **options)
        ctx.flush()
    finally:
        _RANK.reset(token)
        objective.close()
    timers = comm.gather((objective.compute_s, objective.comm_s, time.perf_counter() - t0), root=0)
    if comm.rank != 0:
        return None
    # the ranks' own split of their time: block work, time inside allreduce (waiting for the
    # slowest rank included), and the rest (the solver's replicated arithmetic, reports)
    result.history.attrs.update(rank_compute_s=[t[0] for t in timers], rank_comm_s=[t[1] for t in timers],
                                rank_wall_s=[t[2] for t in timers], n_ranks=comm.size)
    return result, [(str(w.message), w.category) for w in caught]


def use_ranks(objective: Objective) -> bool:
    """Whether a solver runs on the ranks: a distributed objective, a distributed client as dask's
    scheduler, ``daskpml.optim.on-ranks`` true, and not already on a rank."""
    return (objective.distributed and not isinstance(objective, RankObjective) and rank_context() is None
            and bool(_config.get("optim.on-ranks")) and active_client() is not None)


def run_on_ranks(fn: Callable, objective: Objective, theta0: np.ndarray, options: dict,
                 collective: bool = True, name: str | None = None) -> Any:
    """Run ``fn(objective, theta0, **options)`` on the ranks; the client keeps the progress line,
    the callback and the checkpoint (see the module's description)."""
    options = dict(options)
    params = inspect.signature(fn).parameters
    if "random_state" in params:          # one seed for every rank (None would draw one per rank)
        options["random_state"] = resolve_seed(options.get("random_state", params["random_state"].default))
    callback = options.pop("callback", None)
    progress = ProgressLine(options.pop("progress", None))
    path, resume = options.pop("checkpoint", None), bool(options.pop("resume", False))
    every = int(options.get("checkpoint_every", 10))
    # Without a folder the client still keeps the newest snapshot, in memory: a lost worker then
    # costs the iterations since it, not the run.
    cp = Checkpoint(path, every=every, resume=resume).watch(**objective.data) if path is not None or resume \
        else MemoryCheckpoint(every)
    max_iter = options.get("max_iter", "?")
    desc = dict(family=objective.family, penalty=objective.penalty, lam=objective.lam, layout=objective.layout,
                n_samples=objective.n_samples, row_chunks=objective.row_chunks)
    X, y = objective.collections
    name = name or getattr(fn, "__name__", "solver")

    def on_message(msg: tuple, rank: int, group: Any) -> None:
        kind = msg[0]
        if kind in ("row", "rows"):
            rows = [msg[1]] if kind == "row" else msg[1]
            for row in rows:
                it = row["iteration"]
                if not collective and "update_worker" in row:
                    seen.append((it, int(row["update_worker"])))
                if "objective" in row and np.isfinite(row["objective"]):
                    progress.update(it, max_iter, f"{name}: iteration {it}/{max_iter}  objective "
                                    f"{row['objective']:.6g}  |grad| {row.get('grad_norm', float('nan')):.3g}")
                elif "version" in row:
                    progress.update(it, max_iter, f"{name}: update {it}  version {row['version']}")
                if callback is not None:
                    try:
                        verdict: Any = bool(callback(row))
                    except KeyboardInterrupt:
                        if collective:
                            raise
                        verdict = "interrupt"       # the server stops and returns the current model
                    group.signal(("verdict", verdict), ranks=[0])
        elif kind == "cp-describe":
            cp.describe(*msg[1:])
        elif kind == "cp-restore":
            group.signal(("snapshot", cp.restore()), ranks=[0])
        elif kind == "cp-save":
            _, it, arrays, history, state = msg
            cp.save(it, arrays=arrays, history=history, state=state)
            saved["iteration"] = int(it)

    # asynchronous runs: the updates each chunk made since the newest snapshot are lost with a worker
    seen: list = []
    saved = {"iteration": 0}
    lost = None

    def on_interrupt(group: Any) -> bool:
        group.signal(("interrupt",), ranks=[0])     # Ctrl-C: the server returns the current model
        return True

    restarts = 0
    try:
        while True:
            flags = dict(callback=callback is not None, checkpoint=True, collective=collective,
                         folder=cp.path is not None, lost=lost.tolist() if lost is not None else None)
            try:
                results = spmd(_rank_solve, X, y, args=(fn, desc, theta0, options, flags),
                               on_message=on_message, on_interrupt=None if collective else on_interrupt,
                               name=name)
                break
            except CommError as e:
                restarts += 1
                where = f"checkpoint={cp.path!r}, resume=True" if cp.path is not None else "a checkpoint= folder"
                if restarts > MAX_RESTARTS:
                    raise CommError(f"{name}: {e}; gave up after {MAX_RESTARTS} restarts. Resume later with "
                                    f"{where}.") from e
                if isinstance(cp, MemoryCheckpoint):
                    snap = cp._snapshot
                    since = f"the snapshot of iteration {snap.iteration}" if snap is not None else \
                        "the start (no snapshot was due yet)"
                else:
                    since = f"the newest snapshot in {cp.path!r}"
                warnings.warn(f"{name}: {e}. Restarting from {since} on the workers that remain.",
                              RuntimeWarning, stacklevel=3)
                cp.resume = True
                if not collective:
                    redone = np.zeros(objective.n_chunks, dtype=np.int64)
                    for it, chunk in seen:
                        if it > saved["iteration"] and 0 <= chunk < len(redone):
                            redone[chunk] += 1
                    lost = redone                   # (earlier losses are in the snapshot)
                    seen.clear()
    finally:
        progress.close()
    result, caught = results[0]
    for message, category in caught:
        warnings.warn(message, category, stacklevel=3)
    objective.comm.rounds = int(result.history.attrs.get("total_rounds", objective.comm.rounds))
    objective.comm.bytes = int(result.history.attrs.get("total_bytes", objective.comm.bytes))
    return result


def on_ranks(fn: Callable | None = None, *, rank_fn: Callable | None = None, collective: bool = True,
             when: Callable[[dict], bool] | None = None) -> Callable:
    """Make a solver run its loop on the ranks when the objective is on a distributed cluster
    (:func:`use_ranks`); elsewhere it runs as written. ``rank_fn`` (same signature) is what the
    ranks run instead of the solver itself; ``collective=False``: only rank 0 records (an
    asynchronous solver's server); ``when(options)``: the options this rank version supports."""

    def wrap(solver_fn: Callable) -> Callable:
        @functools.wraps(solver_fn)
        def solver(objective: Objective, theta0: np.ndarray, **options: Any) -> Any:
            if use_ranks(objective) and (when is None or when(options)):
                # every option explicit, with the solver's own defaults (the rank version gets them all)
                bound = inspect.signature(solver_fn).bind(objective, theta0, **options)
                bound.apply_defaults()
                full = {k: v for k, v in list(bound.arguments.items())[2:]}
                return run_on_ranks(rank_fn or solver_fn, objective, theta0, full, collective,
                                    name=solver_fn.__name__)
            return solver_fn(objective, theta0, **options)

        return solver

    return wrap(fn) if fn is not None else wrap
