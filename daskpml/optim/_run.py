"""Bookkeeping shared by the solvers: history, progress line, callback, result."""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import xarray as xr
from sklearn.exceptions import ConvergenceWarning

from .._progress import ProgressLine
from ..results import history


@dataclass
class OptimizeResult:
    """What every solver returns.

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
    """

    theta: np.ndarray
    history: xr.Dataset
    n_iter: int
    converged: bool
    message: str


class Run:
    """Records one iteration at a time, prints a progress line on a terminal, calls
    ``callback(iteration, theta, record)`` (returning ``True`` stops the solver)."""

    def __init__(self, solver: str, objective: Any, *, max_iter: int, tol: float,
                 callback: Callable | None = None, progress: bool | None = None, **attrs: Any) -> None:
        self.solver, self.objective, self.max_iter, self.tol = solver, objective, int(max_iter), float(tol)
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be at least 1, got {max_iter}.")
        if not self.tol >= 0:
            raise ValueError(f"tol must be non-negative, got {tol}.")
        self.callback = callback
        self.progress = ProgressLine(progress)
        self._start = time.perf_counter()
        self._paused = 0.0
        self._rows: list[dict] = []
        self._per_worker: list[dict] = []
        self.workers: list | None = None
        self.worker_totals: dict[str, Any] = {}     # one value per worker for the whole run
        self.attrs = dict({
            "solver": solver, "family": objective.family.name, "lam": objective.lam,
            "l1": objective.penalty.l1, "l2": objective.penalty.l2, "tol": self.tol,
            "max_iter": self.max_iter, "n_samples": objective.n_samples, "n_chunks": objective.n_chunks,
            "n_params": objective.layout.size, "param_bytes": 8 * objective.layout.size}, **attrs)
        self._bytes = objective.comm.bytes
        self.stopped = False

    def elapsed(self) -> float:
        """Solver time so far: wall time less the time spent in :meth:`paused` blocks."""
        return time.perf_counter() - self._start - self._paused

    @contextlib.contextmanager
    def paused(self) -> Any:
        """Keep the enclosed monitoring work (the full objective of the stochastic
        solvers) out of the ``time`` column."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._paused += time.perf_counter() - t0

    def fill(self, index: int, **values: Any) -> None:
        """Set values of an earlier row (objective samples evaluated after the fact)."""
        self._rows[index].update(values)

    def record(self, iteration: int, theta: np.ndarray, objective: float, grad_norm: float, *,
               per_worker: dict | None = None, **extra: Any) -> bool:
        """One history row; ``per_worker`` maps names to one value per chunk/worker."""
        comm = self.objective.comm
        row = dict(objective=float(objective), grad_norm=float(grad_norm),
                   time=self.elapsed(), rounds=comm.rounds,
                   bytes=comm.bytes - self._bytes, **extra)
        self._bytes = comm.bytes
        self._rows.append(row)
        if per_worker:
            self._per_worker.append({k: np.asarray(v) for k, v in per_worker.items()})
        if not math.isnan(row["objective"]):
            self.progress.update(iteration, self.max_iter, f"{self.solver}: iteration {iteration}/{self.max_iter}  "
                                 f"objective {objective:.6g}  |grad| {grad_norm:.3g}")
        if self.callback is not None and self.callback(iteration, theta, row):
            self.stopped = True
        return self.stopped

    def finish(self, theta: np.ndarray, n_iter: int, converged: bool, message: str = "") -> OptimizeResult:
        self.progress.close()
        if not converged and not self.stopped:
            message = message or f"reached max_iter={self.max_iter} before tol={self.tol:g}"
            warnings.warn(f"{self.solver} did not converge: {message}. Increase max_iter or tol, "
                          "or scale the data.", ConvergenceWarning, stacklevel=3)
        elif self.stopped:
            message = message or "stopped by the callback"
        self.attrs.update(converged=int(converged), message=message or "converged",
                          total_rounds=self.objective.comm.rounds, total_bytes=self.objective.comm.bytes)
        keys: list[str] = []
        for row in self._rows:
            keys += [k for k in row if k not in keys]
        records = {k: [row.get(k, np.nan) for row in self._rows] for k in keys}
        per_worker = None
        if self._per_worker and len(self._per_worker) == len(self._rows):
            per_worker = {k: np.stack([r[k] for r in self._per_worker]) for k in self._per_worker[0]}
        hist = history(records, per_worker=per_worker, workers=self.workers, attrs=self.attrs)
        for key, value in self.worker_totals.items():
            hist[key] = ("worker", np.asarray(value))
        if self.worker_totals and "worker" not in hist.coords:
            hist = hist.assign_coords(worker=np.asarray(self.workers if self.workers is not None
                                                        else np.arange(len(value))))
        return OptimizeResult(theta=theta, history=hist, n_iter=n_iter,
                              converged=converged, message=message or "converged")
