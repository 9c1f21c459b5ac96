"""Blockwise non-negative matrix factorization: ``min ||A - W H||_F^2`` with ``W, H >= 0``.

``A`` (m x n, dense or sparse) is split into row blocks (or a grid of blocks)
and never moves; ``W`` (m x k) lives next to the row blocks; ``H`` (k x n) is
small and replicated (or column-blocked in the grid layout). See
:mod:`._nmf_engine` for the task graphs and :mod:`._nmf_kernels` for the
update rules, which are scikit-learn's.

Regularization is scikit-learn's: ``alpha_W * l1_ratio * n`` (L1) and
``alpha_W * (1 - l1_ratio) * n`` (L2) on ``W``, and the same with ``m`` on ``H``.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields
from numbers import Integral, Real
from typing import Any, Callable, Iterator, Literal

import dask
import dask.array as da
import numpy as np
import xarray as xr
from sklearn.exceptions import ConvergenceWarning

from .. import _checkpoint, _config
from .._blocks import block_rows, is_small
from .._progress import ProgressLine
from ..backend import get_namespace, is_sparse, nbytes, sparse_meta
from ..results import HistoryRecorder, ResultDisplay
from ..runtime import distribute_rows, total_threads
from ..sparse import CSRMatrix, from_array
from ..validation import PROTOCOL, Interval, Options, check_array, overflow_guard, validate_params
from ._nmf_engine import Engine
from ._nmf_init import INITS, initialize

Solver = Literal["hals", "mu", "anls"]
SOLVERS = ("hals", "mu", "anls")
LAYOUTS = ("auto", "rows", "grid")


@dataclass(repr=False)
class NMFResult(ResultDisplay):
    """What :func:`nmf` returns.

        Parameters
        ----------
        W : dask.array.Array
            (m x k), row chunks as ``A``.
        H : dask.array.Array
            (k x n), in column blocks (those of the grid; in the row layout one per thread,
            updated in parallel).
        n_iter : int
            Iterations run.
        reconstruction_err : float
            ``||A - W H||_F`` (not divided by ``||A||_F``; the history has that).
        converged : bool
            Whether the stopping rule was met.
        history : xarray.Dataset
            One row per iteration (row 0 is the initialization): ``relative_error``, ``error``,
            ``violation`` (HALS's stopping quantity), ``time``, ``rounds`` and ``bytes`` (between
            tasks in that iteration, a model).

        Examples
        --------
        >>> A = np.random.default_rng(0).random((40, 10))
        >>> res = nmf(A, 2, max_iter=50, random_state=0, progress=False)
        >>> res.W.shape, res.H.shape
        ((40, 2), (2, 10))
    """

    W: da.Array
    H: da.Array
    n_iter: int
    reconstruction_err: float
    converged: bool
    history: xr.Dataset


# ------------------------------------------------------------------- inputs
def _split_columns(block: Any, lo: int, hi: int) -> Any:
    return block[:, lo:hi].tocsr() if is_sparse(block) else block[:, lo:hi]


def _column_chunks(n: int, size: int) -> tuple[int, ...]:
    size = max(1, min(n, int(size)))
    return tuple(min(size, n - s) for s in range(0, n, size))


def as_grid(A: Any, dtype: Any, layout: str, col_chunks: int | None, k: int) -> tuple[da.Array, Any]:
    """``A`` as a persisted dask array of dense or CSR blocks (p x q), and as a row-blocked operator
    for the initialization (the same array when dense, the CSRMatrix when sparse)."""
    if isinstance(A, CSRMatrix):
        op = A.astype(dtype) if A.dtype != dtype else A
    elif isinstance(A, da.Array):
        op = A.astype(dtype)
        if is_sparse(op._meta):
            op = from_array(op)
    elif is_sparse(A):
        A = A.tocsr().astype(dtype)
        op = from_array(A, chunks=block_rows(A.shape[0], nbytes(A), "decomposition.block-bytes"))
    else:
        A = A.astype(dtype, copy=False)
        op = distribute_rows(A, block_rows(A.shape[0], nbytes(A), "decomposition.block-bytes"))
    n = op.shape[1]
    limit = max(1, int(_config.get("decomposition.replicate-bytes")) // (k * np.dtype(dtype).itemsize))
    own_cols = None if isinstance(op, CSRMatrix) else op.chunks[1]
    if layout == "rows":
        cols: tuple[int, ...] = (n,)
    elif col_chunks is not None:
        cols = _column_chunks(n, col_chunks)
    elif own_cols is not None and len(own_cols) > 1:
        cols = own_cols
    elif layout == "grid":
        cols = _column_chunks(n, min(limit, math.ceil(n / 2)))
    else:
        cols = _column_chunks(n, limit)
    if isinstance(op, CSRMatrix):
        op = op.persist()
        return _sparse_grid(op, cols), op
    grid = op.rechunk({1: cols}).persist()
    return grid, grid


def _sparse_grid(op: CSRMatrix, cols: tuple[int, ...]) -> da.Array:
    if len(cols) == 1:
        return op.blocks
    bounds = np.concatenate([[0], np.cumsum(cols)])
    blocks = op.blocks
    pieces = [[blocks.blocks[i, 0].map_blocks(_split_columns, int(bounds[j]), int(bounds[j + 1]),
                                               chunks=((op.row_chunks[i],), (cols[j],)), dtype=op.dtype,
                                               meta=sparse_meta(op._meta, op.dtype))
               for j in range(len(cols))] for i in range(blocks.numblocks[0])]
    return da.block(pieces).persist()


def check_matrix(A: Any, name: str = "A") -> Any:
    """``A`` validated for NMF: 2-D, numeric, finite and non-negative (the message counts the
    negative entries and names the chunk, after scikit-learn's opening words)."""
    A = check_array(A, name=name)
    try:
        check_array(A, ensure_non_negative=True, ensure_finite=False, name=name)
    except ValueError as err:
        detail = str(err).removeprefix("Negative values in data: ")
        raise ValueError(f"Negative values in data passed to NMF: {detail}") from None
    return A


def _check_rank(A: Any, n_components: Any) -> tuple[Any, int]:
    m, n = A.shape
    if isinstance(n_components, bool) or int(n_components) != n_components or not 1 <= n_components <= min(m, n):
        raise ValueError(
            f"n_components must be an integer in [1, min(n_samples, n_features)] = [1, {min(m, n)}] "
            f"for A of shape {(m, n)}, got {n_components!r}."
        )
    return A, int(n_components)


def _check_custom(A: Any, k: int, W: Any, H: Any) -> None:
    m, n = A.shape
    for name, M, shape in (("W", W, (m, k)), ("H", H, (k, n))):
        if M is None:
            raise ValueError(f"init='custom' needs both W ({m} x {k}) and H ({k} x {n}); {name} is missing.")
        if tuple(M.shape) != shape:
            raise ValueError(f"init='custom': {name} must have shape {shape}, got {tuple(M.shape)}.")
        check_array(M, accept_sparse=False, ensure_non_negative=True, name=name)


def regularization(alpha_W: float, alpha_H: float | str, l1_ratio: float, m: int, n: int) -> tuple:
    """scikit-learn's (l1_W, l2_W, l1_H, l2_H) for the Frobenius loss."""
    alpha_H = alpha_W if alpha_H == "same" else alpha_H
    for name, value in (("alpha_W", alpha_W), ("alpha_H", alpha_H)):
        if not (isinstance(value, (int, float)) and value >= 0):
            raise ValueError(f"{name} must be a number >= 0 (or alpha_H='same'), got {value!r}.")
    if not 0 <= l1_ratio <= 1:
        raise ValueError(f"l1_ratio must be in [0, 1], got {l1_ratio}.")
    return (n * alpha_W * l1_ratio, n * alpha_W * (1 - l1_ratio),
            m * alpha_H * l1_ratio, m * alpha_H * (1 - l1_ratio))


# ------------------------------------------------------------ the iteration
class _Stopping:
    """The stopping rules of scikit-learn: HALS stops when the violation falls to ``tol`` times the
    first one; MU compares the error every 10 iterations; ANLS does the same every iteration."""

    def __init__(self, solver: str, tol: float, state: dict | None = None) -> None:
        self.solver, self.tol = solver, tol
        self.violation_init = state.get("violation_init") if state else None
        self.error_init = state.get("error_init") if state else None
        self.previous = state.get("previous_error") if state else None

    def start(self, error: float) -> None:
        self.error_init = self.previous = error

    def done(self, iteration: int, violation: float, error: float) -> bool:
        if self.solver == "hals":
            if self.violation_init is None:
                self.violation_init = violation
            if self.violation_init == 0:
                return True
            return violation / self.violation_init <= self.tol
        every = 10 if self.solver == "mu" else 1
        if self.tol > 0 and iteration % every == 0:
            stop = (self.previous - error) / self.error_init < self.tol
            self.previous = error
            return stop
        return False

    def state(self) -> dict:
        return {"violation_init": self.violation_init, "error_init": self.error_init,
                "previous_error": self.previous}


def _fingerprint(grid: da.Array, k: int, solver: str, reg: tuple) -> dict:
    return {"shape": list(grid.shape), "chunks": [list(c) for c in grid.chunks], "n_components": k,
            "solver": solver, "dtype": str(np.dtype(grid.dtype)), "regularization": list(reg)}


NMF_CONSTRAINTS = {
    "n_components": [Interval(Integral, 1, None)], "solver": [Options(*SOLVERS)], "init": [Options(*INITS)],
    "max_iter": [Interval(Integral, 1, None)], "tol": [Interval(Real, 0, None)],
    "inner_iter": [Options("auto"), Interval(Integral, 1, None)], "alpha_W": [Interval(Real, 0, None)],
    "alpha_H": [Options("same"), Interval(Real, 0, None)], "l1_ratio": [Interval(Real, 0, 1)], "dtype": [None, "dtype"],
    "layout": [Options("auto", "rows", "grid")], "col_chunks": [None, Interval(Integral, 1, None)], **PROTOCOL}


@validate_params(NMF_CONSTRAINTS)
def nmf(A: Any, n_components: int, *, solver: Solver = "hals", init: str = "nndsvda", W: Any = None,
        H: Any = None, max_iter: int = 200, tol: float = 1e-4, inner_iter: int | str = 1, alpha_W: float = 0.0,
        alpha_H: float | str = 0.0, l1_ratio: float = 0.0, dtype: Any = None, random_state: Any = None,
        layout: Literal["auto", "rows", "grid"] = "auto", col_chunks: int | None = None,
        checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10, resume: bool = False,
        callback: Callable | None = None, progress: bool | None = None) -> NMFResult:
    """Factor a non-negative ``A`` (m x n) as ``W H`` with ``W`` (m x k) and ``H`` (k x n) >= 0.

    Parameters
    ----------
    A : array (m, n)
        NumPy/CuPy, SciPy/cupyx sparse, a dask array (dense or sparse blocks,
        chunked along rows; chunked along columns too for the grid layout) or a
        :class:`~daskpml.sparse.CSRMatrix`. Non-negative and finite.
    n_components : int
        The rank k, ``1 <= k <= min(m, n)``.
    solver : {"hals", "mu", "anls"}
        ``"hals"``: cyclic coordinate descent on the columns of W and rows of
        H (scikit-learn's ``"cd"``); ``"mu"``: multiplicative updates
        (scikit-learn's ``"mu"``, Frobenius loss); ``"anls"``: alternating
        exact non-negative least squares (block principal pivoting).
    init : {"nndsvda", "nndsvd", "nndsvdar", "random", "custom"}
        See :mod:`._nmf_init`; ``"custom"`` uses ``W`` and ``H``.
    max_iter, tol : stopping (scikit-learn's rules, see :class:`_Stopping`).
    inner_iter : int or "auto"
        Updates of each factor per iteration, reusing the data term (``H A^T``
        or ``W^T A``, the expensive part): 1 is scikit-learn's algorithm.
        More is Gillis & Glineur's acceleration (HALS and MU): an integer
        repeats the update that many times; ``"auto"`` is their rule, at most
        ``1 + rho / 2`` updates where rho is the cost of the data term over
        that of one update (in flops), capped at ``daskpml.decomposition.max-inner``
        (16: on CPUs an update costs more than its flops say), stopping once an
        update moves the factor by at most 0.1 times the first. Ignored by
        ANLS (its updates are exact).
    alpha_W, alpha_H, l1_ratio : regularization as scikit-learn (``alpha_H="same"`` copies alpha_W).
    dtype : float32 or float64; default A's floating type (float64 for integers).
    random_state : int, Generator or None (initialization only; the iterations are deterministic).
    layout : {"auto", "rows", "grid"}
        ``"rows"``: H replicated, one fused pass over A per iteration.
        ``"grid"``: A in p x q blocks, H column-blocked (``col_chunks`` columns
        each). ``"auto"``: the grid when A already has column chunks or when
        ``k n`` entries exceed ``daskpml.decomposition.replicate-bytes``.
    W, H : array, optional
        Initial factors for ``init="custom"``.
    col_chunks : int, optional
        Columns per block of the grid layout (default from ``daskpml.decomposition.replicate-bytes``).
    checkpoint_every : int, default 10
        Iterations between snapshots.
    checkpoint : path, optional
        A directory: every ``checkpoint_every`` iterations W, H, the iteration,
        the history and the stopping state are saved there.
    resume : bool
        Continue from the newest snapshot in ``checkpoint`` (from the start if
        there is none); the result equals an uninterrupted run's.
    callback : callable(record) -> bool, optional
        Called after each iteration with the history row just appended (``iteration``,
        ``relative_error``, ``error``, ``violation``, ``time``, ``rounds``, ``bytes``); True stops
        (W and H stay on the workers during the run: they are the result's).
    progress : bool, optional
        A progress line on the console (default: the ``daskpml.progress`` setting).

    Returns
    -------
    NMFResult

    References
    ----------
    A. Cichocki and A.-H. Phan, "Fast local algorithms for large scale nonnegative matrix and
    tensor factorizations", IEICE Trans. 2009 (HALS). D. Lee and H. S. Seung, "Algorithms for
    non-negative matrix factorization", NIPS 2001 (MU). J. Kim and H. Park, SIAM J. Sci.
    Comput. 2011 (ANLS with block principal pivoting).

    Examples
    --------
    >>> import numpy as np
    >>> from daskpml.decomposition import nmf
    >>> rng = np.random.default_rng(0)
    >>> A = rng.random((300, 6)) @ rng.random((6, 40))
    >>> r = nmf(A, 6, max_iter=300, tol=1e-8, progress=False)
    >>> float(r.history.relative_error[-1]) < 1e-2
    True
    """
    return _factor(check_matrix(A), n_components, NMFOptions.of(locals()))


@dataclass(frozen=True)
class NMFOptions:
    """The options of :func:`nmf` (see there), handed between its steps as one object."""

    solver: Solver = "hals"
    init: str = "nndsvda"
    W: Any = None
    H: Any = None
    max_iter: int = 200
    tol: float = 1e-4
    inner_iter: int | str = 1
    alpha_W: float = 0.0
    alpha_H: float | str = 0.0
    l1_ratio: float = 0.0
    dtype: Any = None
    random_state: Any = None
    layout: str = "auto"
    col_chunks: int | None = None
    checkpoint: str | os.PathLike | None = None
    checkpoint_every: int = 10
    resume: bool = False
    callback: Callable | None = None
    progress: bool | None = None

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> NMFOptions:
        """The options among a function's arguments (its ``locals()`` on entry)."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})


def _factor(A: Any, n_components: int, o: NMFOptions) -> NMFResult:
    """:func:`nmf` on a matrix already checked by :func:`check_matrix`."""
    solver, init, layout, W, H, dtype, inner_iter = o.solver, o.init, o.layout, o.W, o.H, o.dtype, o.inner_iter
    max_iter, tol, resume, checkpoint = o.max_iter, o.tol, o.resume, o.checkpoint
    if solver not in SOLVERS:
        raise ValueError(f"solver must be one of {SOLVERS}, got {solver!r}.")
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}.")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}.")
    if int(max_iter) < 1 or not float(tol) >= 0:
        raise ValueError(f"max_iter must be >= 1 and tol >= 0, got max_iter={max_iter}, tol={tol}.")
    if (W is not None or H is not None) and init != "custom":
        raise ValueError("W and H are used only with init='custom'; pass init='custom' with both.")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs checkpoint='path' (the directory of the snapshots).")
    A, k = _check_rank(A, n_components)
    if init == "custom":
        _check_custom(A, k, W, H)
    dtype = np.dtype(dtype or (A.dtype if np.dtype(A.dtype).kind == "f" else np.float64))
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}.")
    reg = regularization(o.alpha_W, o.alpha_H, o.l1_ratio, *A.shape)
    if not (inner_iter == "auto" or (isinstance(inner_iter, int) and inner_iter >= 1)):
        raise ValueError(f"inner_iter must be a positive integer or 'auto', got {inner_iter!r}.")
    with _placement(A) as A, overflow_guard(A, "A") as check:
        result = _fit(A, k, dtype, reg, o, attrs=dict(alpha_W=float(o.alpha_W), l1_ratio=float(o.l1_ratio)))
        check(result.history["error"].values)
        return result


@contextlib.contextmanager
def _placement(A: Any) -> Iterator[Any]:
    """Small problems run in this process on dask's synchronous scheduler (in-memory input in one
    block): with tiny blocks, task and round-trip overheads would dominate. ``A`` under
    ``daskpml.decomposition.local-bytes`` that lives on a cluster is gathered first, keeping its
    blocks. A CSRMatrix off the CPU and a dask array of sparse blocks (of unknown size) stay where
    they are."""
    off_host = isinstance(A, CSRMatrix) and A.backend != "numpy"
    if off_host or not is_small(nbytes(A), "decomposition.local-bytes"):
        yield A
        return
    if isinstance(A, CSRMatrix):               # gathered, with the same blocks
        A = from_array(A.to_scipy(), chunks=A.row_chunks)
    elif isinstance(A, da.Array):
        A = da.from_array(A.compute(), chunks=A.chunks)
    elif is_sparse(A):                         # in memory: one block
        A = from_array(A.tocsr(), chunks=(A.shape[0],))
    else:
        A = da.from_array(A, chunks=A.shape)
    with dask.config.set(scheduler="sync"):
        yield A


def _inner(inner_iter: int | str, solver: str, A: Any, k: int) -> tuple[tuple[int, float], tuple[int, float]]:
    """(max updates, relative move that stops them) for W and for H; see :func:`nmf`."""
    if solver == "anls":
        return (1, 0.0), (1, 0.0)
    if inner_iter != "auto":
        return (int(inner_iter), 0.0), (int(inner_iter), 0.0)
    m, n = A.shape
    work = int(A.nnz) if is_sparse(A) or isinstance(A, CSRMatrix) else m * n   # one pass over A
    rho_w = 1 + (work + n * k) / (m * (k + 1))
    rho_h = 1 + (work + m * k) / (n * (k + 1))
    cap = int(_config.get("decomposition.max-inner"))
    return (min(cap, 1 + int(0.5 * rho_w)), 0.1), (min(cap, 1 + int(0.5 * rho_h)), 0.1)


def _fit(A: Any, k: int, dtype: Any, reg: tuple, o: NMFOptions, attrs: dict) -> NMFResult:
    solver, init, max_iter, tol, inner_iter = o.solver, o.init, int(o.max_iter), float(o.tol), o.inner_iter
    grid, op = as_grid(A, dtype, o.layout, o.col_chunks, k)
    xp, _ = get_namespace(grid)
    like = xp.empty((0, 0), dtype=dtype)
    sub_rows = max(1, int(_config.get("decomposition.sub-block-bytes"))
                   // (dtype.itemsize * max(grid.chunks[1])))
    inner = _inner(inner_iter, solver, op, k)
    engine = Engine(grid, k, solver, reg, sub_rows=sub_rows, inner=inner, h_parts=total_threads())
    fingerprint = _fingerprint(grid, k, solver, reg)
    cp = _checkpoint.Checkpoint(
        o.checkpoint, "nmf", dict(n_components=k, solver=solver, regularization=fingerprint["regularization"],
                                  inner=[list(inner[0]), list(inner[1])]),
        {key: fingerprint[key] for key in ("shape", "chunks", "dtype")}, every=int(o.checkpoint_every),
        resume=o.resume)
    cp.watch(A=grid)
    snapshot = cp.restore(like)
    stop = _Stopping(solver, float(tol), snapshot.state if snapshot else None)
    if snapshot is None:
        Wt, H0 = initialize(op, k, init, grid.chunks[0], like, W=o.W, H=o.H, random_state=o.random_state)
        H0 = da.from_array(H0, chunks=(k, engine.h_cols))
        rows: list[dict] = []
        first = 0
        converged = False
    else:
        Wt = _stack(snapshot.blocks["W"], k, grid.chunks[0], like)
        H0 = _stack(snapshot.blocks["H"], k, tuple(snapshot.state["h_cols"]), like).rechunk({1: engine.h_cols})
        rows = snapshot.rows()
        first = snapshot.iteration
        converged = bool(snapshot.state.get("converged", False))
    recorder = HistoryRecorder(callback=o.callback, bytes_source="model")
    recorder.resume(rows)
    t0 = time.perf_counter() - (rows[-1]["time"] if rows else 0.0)
    norm2, cross, quad = engine.start(Wt, H0)
    error = math.sqrt(max(norm2 - 2 * cross + quad, 0.0))
    norm = math.sqrt(norm2) if norm2 > 0 else 1.0
    if snapshot is None:
        stop.start(error)
        recorder.record(0, notify=False, relative_error=error / norm, error=error, violation=np.nan,
                        time=time.perf_counter() - t0, rounds=0, bytes=0)      # the initialization's row
    per_iteration = engine.bytes_per_iteration()
    per_round = _iterations_per_round(grid, k)
    show = ProgressLine(o.progress)
    stopped = False
    iteration = first
    try:
        while not (converged or stopped) and iteration < int(max_iter):
            count = min(per_round, int(max_iter) - iteration)
            t_round = time.perf_counter()
            numbers = engine.advance(count)
            spent = time.perf_counter() - t_round
            rounds = int(recorder.rows[-1].get("rounds", 0)) if recorder.rows else 0
            for b, (violation, cross, quad) in enumerate(numbers):
                iteration += 1
                error = math.sqrt(max(norm2 - 2 * cross + quad, 0.0))
                # one task graph (one round trip) runs ``count`` iterations
                record_stop = recorder.record(iteration, relative_error=error / norm, error=error,
                                              violation=violation, time=t_round - t0 + spent * (b + 1) / count,
                                              rounds=rounds + 1, bytes=per_iteration)
                show.update(iteration, max_iter, f"nmf ({solver}): iteration {iteration}/{max_iter}  "
                            f"relative error {error / norm:.6g}")
                converged = stop.done(iteration, violation, error)
                if cp.due(iteration, converged):
                    Wt_b, H_b, _ = engine.states[b]
                    cp.save(iteration, blocks={"W": Wt_b, "H": H_b}, history=recorder.columns(),
                            state=dict(stop.state(), converged=converged, h_cols=list(engine.h_cols)))
                stopped = not converged and record_stop
                if converged or stopped:
                    engine.rewind(b)
                    break
    finally:
        show.close()
    if not converged and not stopped and float(tol) > 0:
        warnings.warn(f"nmf ({solver}) reached max_iter={max_iter} before tol={tol:g}; increase max_iter "
                      "or tol.", ConvergenceWarning, stacklevel=2)
    return _result(engine, grid, recorder, iteration, converged, dict(
        solver=solver, init=init, n_components=k, tol=float(tol), max_iter=int(max_iter), layout=(
            "rows" if engine.q == 1 else "grid"), row_blocks=engine.p, col_blocks=engine.q, dtype=str(dtype),
        inner_iter=str(inner_iter), max_inner_w=inner[0][0], max_inner_h=inner[1][0], **attrs))


def _iterations_per_round(grid: da.Array, k: int) -> int:
    """Iterations per task graph: ``daskpml.decomposition.iterations-per-round``, fewer when the
    states kept for a stop inside the round (W, H and H H^T of each) would exceed
    ``daskpml.decomposition.state-bytes``."""
    m, n = grid.shape
    state = (m * k + k * n + k * k) * np.dtype(grid.dtype).itemsize
    budget = int(_config.get("decomposition.state-bytes"))
    return max(1, min(int(_config.get("decomposition.iterations-per-round")), budget // max(state, 1)))


def _stack(blocks: list, k: int, sizes: tuple, like: Any) -> da.Array:
    """Delayed k x size_i blocks side by side as one dask array."""
    return da.concatenate([da.from_delayed(b, shape=(k, s), dtype=like.dtype, meta=like)
                           for b, s in zip(blocks, sizes)], axis=1)


def _result(engine: Engine, grid: da.Array, recorder: HistoryRecorder, n_iter: int, converged: bool,
            attrs: dict) -> NMFResult:
    k = engine.k
    xp, _ = get_namespace(grid)
    like = xp.empty((0, 0), dtype=grid.dtype)
    Wt = _stack(engine.Wt, k, grid.chunks[0], like)
    H = _stack(engine.H, k, engine.h_cols, like)
    hist = recorder.to_xarray(attrs=dict(attrs, converged=int(converged)))
    return NMFResult(W=Wt.T, H=H, n_iter=int(n_iter), reconstruction_err=float(recorder.rows[-1]["error"]),
                     converged=bool(converged), history=hist)
