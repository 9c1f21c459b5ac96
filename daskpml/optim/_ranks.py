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
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import numpy as np

from .. import _config
from .._checkpoint import Checkpoint
from .._progress import ProgressLine
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
        self._pool = ThreadPoolExecutor(min(threads, len(self._blocks))) \
            if threads > 1 and len(self._blocks) > 1 else None

    def map_blocks(self, fn: Callable) -> list:
        """``fn(chunk_index, X_block, y_block)`` for each local block (on the worker's threads)."""
        items = list(zip(self.block_index, self._blocks))
        if self._pool is not None:
            return list(self._pool.map(lambda item: fn(item[0], *item[1]), items))
        return [fn(i, Xb, yb) for i, (Xb, yb) in items]

    def allreduce(self, local: np.ndarray, count: bool = True) -> np.ndarray:
        """Sum of ``local`` over the ranks (one round; the ``bytes`` counter rides along)."""
        vec = np.empty(local.size + 1)
        vec[:-1] = local.ravel()
        vec[-1] = self.group.bytes_sent         # measured: every rank's socket bytes so far, summed
        self.group.allreduce(vec)
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

    def __init__(self, ctx: "RankContext", every: int) -> None:
        self.ctx, self.every = ctx, int(every)
        self.path = "(on the client)"

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
        return comm.broadcast(snap)

    def due(self, iteration: int, final: bool = False) -> bool:
        return final or int(iteration) % self.every == 0

    def save(self, iteration: int, *, arrays: Any = None, blocks: Any = None, history: Any = None,
             state: Any = None) -> None:
        if self.ctx.comm.rank == 0:
            from ..backend import to_numpy

            self.ctx.comm.report(("cp-save", int(iteration), {k: to_numpy(v) for k, v in (arrays or {}).items()},
                                  history, state))


class RankContext:
    """What a solver's :class:`~daskpml.optim.Run` does differently on a rank."""

    def __init__(self, comm: Any, callback: bool, checkpoint: bool) -> None:
        self.comm, self.callback, self.checkpoint = comm, callback, checkpoint
        self._held: list = []

    def wait_for(self, kind: str) -> tuple:
        while True:
            for i, msg in enumerate(self._held):
                if msg[0] == kind:
                    return self._held.pop(i)
            self._held += self.comm.wait_control()

    def on_record(self, record: dict) -> bool:
        """The recorder's callback on a rank: the row to the client (and its verdict back)."""
        comm = self.comm
        verdict = False
        if comm.rank == 0:
            row = record if self.callback else {k: v for k, v in record.items() if k != "theta"}
            comm.report(("row", row))
            if self.callback:
                verdict = bool(self.wait_for("verdict")[1])
        if self.callback:
            verdict = bool(comm.broadcast(verdict))
        return verdict

    def remote_checkpoint(self, every: int) -> RemoteCheckpoint | None:
        return RemoteCheckpoint(self, every) if self.checkpoint else None


def _rank_solve(comm: Any, X_blocks: list, y_blocks: list, fn: Callable, desc: dict, theta0: np.ndarray,
                options: dict, flags: dict) -> Any:
    objective = RankObjective(comm, X_blocks, y_blocks, desc)
    token = _RANK.set(RankContext(comm, **flags))
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = fn(objective, theta0, **options)
    finally:
        _RANK.reset(token)
        objective.close()
    if comm.rank != 0:
        return None
    return result, [(str(w.message), w.category) for w in caught]


def use_ranks(objective: Objective) -> bool:
    """Whether a solver runs on the ranks: a distributed objective, a distributed client as dask's
    scheduler, ``daskpml.optim.on-ranks`` true, and not already on a rank."""
    return (objective.distributed and not isinstance(objective, RankObjective) and rank_context() is None
            and bool(_config.get("optim.on-ranks")) and active_client() is not None)


def run_on_ranks(fn: Callable, objective: Objective, theta0: np.ndarray, options: dict) -> Any:
    """Run ``fn(objective, theta0, **options)`` on the ranks; the client keeps the progress line,
    the callback and the checkpoint (see the module's description)."""
    from ..comm import SpmdGroup  # noqa: F401  (the type of on_message's group)

    options = dict(options)
    callback = options.pop("callback", None)
    progress = ProgressLine(options.pop("progress", None))
    path, resume = options.pop("checkpoint", None), bool(options.pop("resume", False))
    every = int(options.get("checkpoint_every", 10))
    cp = Checkpoint(path, every=every, resume=resume).watch(**objective.data) if path is not None or resume \
        else None
    max_iter = options.get("max_iter", "?")
    desc = dict(family=objective.family, penalty=objective.penalty, lam=objective.lam, layout=objective.layout,
                n_samples=objective.n_samples, row_chunks=objective.row_chunks)
    X, y = objective.collections
    name = getattr(fn, "__name__", "solver")

    def on_message(msg: tuple, rank: int, group: Any) -> None:
        kind = msg[0]
        if kind == "row":
            row = msg[1]
            it = row["iteration"]
            if "objective" in row and np.isfinite(row["objective"]):
                progress.update(it, max_iter, f"{name}: iteration {it}/{max_iter}  objective {row['objective']:.6g}"
                                f"  |grad| {row.get('grad_norm', float('nan')):.3g}")
            if callback is not None:
                group.signal(("verdict", bool(callback(row))), ranks=[0])
        elif kind == "cp-describe":
            cp.describe(*msg[1:])
        elif kind == "cp-restore":
            group.signal(("snapshot", cp.restore()), ranks=[0])
        elif kind == "cp-save":
            _, it, arrays, history, state = msg
            cp.save(it, arrays=arrays, history=history, state=state)

    restarts = 0
    try:
        while True:
            flags = dict(callback=callback is not None, checkpoint=cp is not None)
            try:
                results = spmd(_rank_solve, X, y, args=(fn, desc, theta0, options, flags),
                               on_message=on_message, name=name)
                break
            except CommError as e:
                if cp is None:
                    raise CommError(f"{name}: {e}. Nothing was saved: pass checkpoint='folder' to restart "
                                    "from the newest snapshot on the workers that remain.") from e
                restarts += 1
                if restarts > MAX_RESTARTS:
                    raise CommError(f"{name}: {e}; gave up after {MAX_RESTARTS} restarts. Resume later with "
                                    f"checkpoint={cp.path!r}, resume=True.") from e
                warnings.warn(f"{name}: {e}. Restarting from the newest snapshot in {cp.path!r} on the "
                              "workers that remain.", RuntimeWarning, stacklevel=3)
                cp.resume = True
    finally:
        progress.close()
    result, caught = results[0]
    for message, category in caught:
        warnings.warn(message, category, stacklevel=3)
    objective.comm.rounds = int(result.history.attrs.get("total_rounds", objective.comm.rounds))
    objective.comm.bytes = int(result.history.attrs.get("total_bytes", objective.comm.bytes))
    return result


def on_ranks(fn: Callable) -> Callable:
    """Make a solver run its loop on the ranks when the objective is on a distributed cluster
    (:func:`use_ranks`); elsewhere it runs as written."""

    @functools.wraps(fn)
    def solver(objective: Objective, theta0: np.ndarray, **options: Any) -> Any:
        if use_ranks(objective):
            return run_on_ranks(fn, objective, theta0, options)
        return fn(objective, theta0, **options)

    return solver
