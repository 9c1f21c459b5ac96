"""Bookkeeping shared by the solvers: history, progress line, callback, result."""

from __future__ import annotations

import os
import math
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import xarray as xr
from sklearn.exceptions import ConvergenceWarning

from .._checkpoint import Checkpoint, Snapshot
from .._progress import ProgressLine
from ..results import HistoryRecorder, ResultDisplay
from ._ranks import rank_context


@dataclass(repr=False)
class OptimizeResult(ResultDisplay):
    """What every solver returns.

    Parameters
    ----------
    theta : numpy.ndarray
        Packed parameters ``[W.ravel(), b]``.
    history : xarray.Dataset
        One row per iteration (dimension ``iteration``).
    n_iter : int
        Iterations (epochs) run.
    converged : bool
        Whether the tolerance was met.
    message : str
        Why the solver stopped, in words.
    status : str
        One of "converged", "max_iter", "stagnated", "diverged", "stopped".

    Attributes
    ----------
    theta : ndarray
        The packed parameters ``[W.ravel(), b]`` (host memory; O(model)).
    history : xarray.Dataset
        One row per iteration: ``objective``, ``grad_norm``, ``time``, ``rounds``
        (cumulative communication rounds), ``bytes`` (moved in that iteration),
        solver-specific columns, and per-worker columns for the averaging methods.
    n_iter : int
    converged : bool
    message : str
    status : str
        Why the solver stopped: ``"converged"`` (the tolerance was met), ``"max_iter"``,
        ``"stagnated"`` (no decrease of the objective is representable in floating point from
        here: the point is as accurate as the precision allows, but the tolerance was not met),
        ``"diverged"`` or ``"stopped"`` (a callback, ``max_time`` or Ctrl-C).

    Examples
    --------
    >>> import numpy as np
    >>> from daskpml.optim import fit_linear
    >>> X = np.random.default_rng(0).standard_normal((50, 2))
    >>> _, _, res = fit_linear(X, X @ [1.0, 1.0], solver="lbfgs")
    >>> isinstance(res, OptimizeResult), res.status
    (True, 'converged')
    """

    theta: np.ndarray
    history: xr.Dataset
    n_iter: int
    converged: bool
    message: str
    status: str = ""


class Run:
    """Records one iteration at a time (through the one :class:`~daskpml.results.HistoryRecorder`),
    prints a progress line on a terminal and calls ``callback(record)``: the history row just
    appended, with ``iteration`` and ``theta`` (the packed parameters ``[W.ravel(), b]``);
    returning True stops the solver."""

    def __init__(self, solver: str, objective: Any, *, max_iter: int, tol: float,
                 callback: Callable | None = None, progress: bool | None = None,
                 checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10, resume: bool = False,
                 **attrs: Any) -> None:
        self.solver, self.objective, self.max_iter, self.tol = solver, objective, int(max_iter), float(tol)
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be at least 1, got {max_iter}.")
        if not self.tol >= 0:
            raise ValueError(f"tol must be non-negative, got {tol}.")
        ctx = rank_context()
        # On a rank (the solver's loop runs on the workers, see _ranks.py) rows go to the client,
        # which shows the progress line, calls the callback and holds the checkpoint.
        self.progress = ProgressLine(False if ctx is not None else progress)
        self.recorder = HistoryRecorder(callback=ctx.on_record if ctx is not None else callback,
                                        bytes_source="measured" if ctx is not None else "model")
        self.workers: list | None = None
        self.worker_totals: dict[str, Any] = {}     # one value per worker for the whole run
        self.attrs = dict({
            "solver": solver, "family": objective.family.name, "lam": objective.lam,
            "l1": objective.penalty.l1, "l2": objective.penalty.l2, "tol": self.tol,
            "max_iter": self.max_iter, "n_samples": objective.n_samples, "n_chunks": objective.n_chunks,
            "n_params": objective.layout.size, "param_bytes": 8 * objective.layout.size}, **attrs)
        self._bytes = objective.comm.bytes
        if ctx is not None:
            self.checkpoint = ctx.remote_checkpoint(checkpoint_every)
        else:
            self.checkpoint = Checkpoint(checkpoint, every=checkpoint_every, resume=resume) \
                if checkpoint is not None or resume else None
        self.snapshot = self._restore()

    # -- checkpoints ----------------------------------------------------------------------
    #: settings that say only when to stop (or how to report): not compared on resume
    _NOT_COMPARED = ("tol", "max_iter", "max_time", "seed", "n_samples", "n_chunks", "n_params", "param_bytes")

    def _restore(self) -> Snapshot | None:
        """Describe the run to the checkpoint and load its newest snapshot when resuming:
        the history so far, the time already spent and the communication counters."""
        cp = self.checkpoint
        if cp is None:
            return None
        obj = self.objective
        cp.describe(self.solver, {k: v for k, v in self.attrs.items() if k not in self._NOT_COMPARED},
                    {"n_samples": int(obj.n_samples), "n_params": int(obj.layout.size),
                     "row_chunks": [int(c) for c in obj.row_chunks]})
        cp.watch(**obj.data)
        snap = cp.restore()
        if snap is None:
            return None
        rows = snap.rows()
        names = [k[len("per_worker/"):] for k in snap.arrays if k.startswith("per_worker/")]
        stacked = {k: snap.arrays["per_worker/" + k] for k in names}
        self.recorder.resume(rows, [{k: stacked[k][i] for k in names} for i in range(len(rows))] if names else ())
        obj.comm.rounds = int(snap.state.get("rounds", obj.comm.rounds))
        obj.comm.bytes = int(snap.state.get("bytes", obj.comm.bytes))
        self._bytes = obj.comm.bytes
        return snap

    def save(self, iteration: int, *, final: bool = False, arrays: dict | None = None, **state: Any) -> None:
        """Snapshot the solver (its ``arrays`` and JSON-able ``state``) with the history so far,
        every ``checkpoint_every`` iterations and at the end (``final``)."""
        cp = self.checkpoint
        if cp is None or not cp.due(iteration, final):
            return
        arrays, history, state = self.snapshot_parts(arrays, **state)
        cp.save(iteration, arrays=arrays, history=history, state=state)

    def snapshot_parts(self, arrays: dict | None = None, **state: Any) -> tuple[dict, dict, dict]:
        """What :meth:`save` writes now, as ``(arrays, history, state)``: for a solver whose
        snapshot is completed later (gossip on the ranks, whose models arrive from the ranks)."""
        arrays = dict(arrays or {})
        per_worker = self.recorder.per_worker_rows
        if per_worker and len(per_worker) == len(self.recorder):
            for k in per_worker[0]:
                arrays["per_worker/" + k] = np.stack([r[k] for r in per_worker])
        return arrays, self.recorder.columns(), dict(state, rounds=self.objective.comm.rounds,
                                                     bytes=self.objective.comm.bytes)

    def elapsed(self) -> float:
        """Solver time so far: wall time less the time spent in :meth:`paused` blocks."""
        return self.recorder.elapsed()

    def paused(self) -> Any:
        """Keep the enclosed monitoring work (the full objective of the stochastic
        solvers) out of the ``time`` column."""
        return self.recorder.paused()

    def fill(self, index: int, **values: Any) -> None:
        """Set values of an earlier row (objective samples evaluated after the fact)."""
        self.recorder.fill(index, **values)

    @property
    def n_rows(self) -> int:
        """Rows recorded so far."""
        return len(self.recorder)

    @property
    def stopped(self) -> bool:
        """Whether the callback (or ``max_time``, or Ctrl-C) stopped the run."""
        return self.recorder.stopped

    @stopped.setter
    def stopped(self, value: bool) -> None:
        self.recorder.stopped = bool(value)

    def record(self, iteration: int, theta: np.ndarray, objective: float, grad_norm: float, *,
               per_worker: dict | None = None, **extra: Any) -> bool:
        """One history row; ``per_worker`` maps names to one value per chunk/worker."""
        comm = self.objective.comm
        row = dict(objective=float(objective), grad_norm=float(grad_norm),
                   time=self.elapsed(), rounds=comm.rounds,
                   bytes=comm.bytes - self._bytes, **extra)
        self._bytes = comm.bytes
        if not math.isnan(row["objective"]):
            self.progress.update(iteration, self.max_iter, f"{self.solver}: iteration {iteration}/{self.max_iter}  "
                                 f"objective {objective:.6g}  |grad| {grad_norm:.3g}")
        return self.recorder.record(iteration, {"theta": theta}, per_worker=per_worker, **row)

    def finish(self, theta: np.ndarray, n_iter: int, converged: bool, message: str = "",
               status: str | None = None) -> OptimizeResult:
        """The result; ``status`` (see :class:`OptimizeResult`) defaults to what ``converged``,
        a callback stop and ``message`` say."""
        self.progress.close()
        if converged:
            status = "converged"
        elif self.stopped:
            status = "stopped"
            message = message or "stopped by the callback"
        else:
            status = status or ("diverged" if message and "diverged" in message else "max_iter")
            message = message or f"reached max_iter={self.max_iter} before tol={self.tol:g}"
            fix = ("Increase tol, or use a solver with curvature (lbfgs, newton)" if status == "stagnated"
                   else "Increase max_iter or tol, or scale the data")
            warnings.warn(f"{self.solver} did not converge: {message}. {fix}.", ConvergenceWarning, stacklevel=3)
        self.attrs.update(converged=int(converged), message=message or "converged", status=status,
                          total_rounds=self.objective.comm.rounds, total_bytes=self.objective.comm.bytes)
        hist = self.recorder.to_xarray(workers=self.workers, attrs=self.attrs)
        for key, value in self.worker_totals.items():
            hist[key] = ("worker", np.asarray(value))
        if self.worker_totals and "worker" not in hist.coords:
            hist = hist.assign_coords(worker=np.asarray(self.workers if self.workers is not None
                                                        else np.arange(len(value))))
        return OptimizeResult(theta=theta, history=hist, n_iter=n_iter,
                              converged=converged, message=message or "converged", status=status)
