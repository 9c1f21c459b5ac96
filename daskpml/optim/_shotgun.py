"""Shotgun: parallel coordinate descent for the Lasso and the elastic net (Bradley et al., 2011).

The data are split into column blocks (all rows, a slice of the features), one task per
block and round. A round updates P coordinates at once, drawn without replacement from a
random permutation of the features (an epoch is ``ceil(d / P)`` rounds that visit every
coordinate once). Every selected coordinate ``j`` takes the exact coordinate-descent step
from the same residual ``r = y - X w``::

    w_j <- S(w_j ||x_j||^2 + x_j^T r, l1) / (||x_j||^2 + l2)

(S is soft thresholding; ``l1 = n alpha l1_ratio``, ``l2 = n alpha (1 - l1_ratio)``), each
block returns ``X_b delta_b`` and one task sums them into the next residual. Only the
residual (n numbers) moves between the tasks; the columns never move. With an intercept
the columns and ``y`` are centred implicitly (sparse blocks stay sparse).

**Choice of P.** Bradley et al. show that P simultaneous updates make the expected
progress of P sequential ones as long as ``P <= d / rho``, where ``rho`` is the spectral
radius of ``X^T X`` with unit-norm columns (1 for orthogonal features, d when all columns
are equal). ``n_parallel="auto"`` takes ``P = max(1, floor(d / rho_hat))``. ``rho_hat`` is
found by 30 power iterations on a sample of at most ``max(2 d, 5,000)`` rows with the
columns scaled by their full-data norms; a sample over-estimates ``rho`` for nearly
orthogonal features (for i.i.d. Gaussian columns ``(1 + sqrt(d/m))^2`` against
``(1 + sqrt(d/n))^2``), so P errs on the safe side. Should an epoch still increase the
objective, it is undone and P is halved.

**Stopping** is scikit-learn's rule: when the largest coordinate change of an epoch is at
most ``tol`` times the largest coefficient, the duality gap is computed (one more pass,
``X^T r``); the solver stops when the gap is at most ``tol * ||y - mean(y)||^2``.

In-memory problems up to ``daskpml.shotgun.local-bytes`` (16 MiB) run on the threaded
scheduler in this process even when a cluster is connected.

One materialization per epoch: the epoch's rounds form one task graph; the residual and
the blocks' coefficients are persisted where they were made, and only O(d) numbers (the
coefficients, norms, the largest change) reach the client.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Callable

import dask
from dask.base import tokenize
import dask.array as da
import numpy as np

from .._checkpoint import Checkpoint
from .._blocks import add, is_small
from .._progress import ProgressLine
from .._random import resolve_seed
from ..backend import get_namespace, is_sparse, nbytes, to_numpy
from ..results import HistoryRecorder, ResultDisplay
from ..runtime import current_client, scatter_client, total_threads
from ..validation import PROTOCOL, Interval, Options, validate_params


@dataclass
class ColumnBlock:
    """One column block: its columns (Fortran-ordered dense or CSC), their means and centred
    squared norms."""

    X: Any
    mean: Any
    sqnorm: Any


@dataclass(repr=False)
class ShotgunResult(ResultDisplay):
    """What :func:`shotgun` returns.

    Parameters
    ----------
    coef : numpy.ndarray
        The coefficients (d,).
    intercept : float
        The intercept.
    n_iter : int
        Iterations (epochs) run.
    n_parallel : int
        P, the coordinates updated at once (after any halving).
    rho : float
        The spectral radius estimate behind ``n_parallel="auto"`` (NaN when P was given).
    converged : bool
        Whether the tolerance was met.
    history : xarray.Dataset
        One row per iteration (dimension ``iteration``).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).standard_normal((200, 5)); y = X @ [1.0, 0, 0, 2.0, 0]
    >>> res = shotgun(X, y, l1=1.0, random_state=0)
    >>> isinstance(res, ShotgunResult), (np.round(res.coef, 1) + 0.0).tolist()
    (True, [1.0, 0.0, 0.0, 2.0, 0.0])
    """
    coef: np.ndarray
    intercept: float
    n_iter: int
    n_parallel: int
    rho: float
    converged: bool
    history: Any


def _prepare(block: Any, fit_intercept: bool, lo: int = 0, hi: int | None = None) -> ColumnBlock:
    """Columns ``lo:hi`` of ``block`` as a :class:`ColumnBlock`."""
    xp, _ = get_namespace(block)
    n = block.shape[0]
    hi = block.shape[1] if hi is None else hi
    if is_sparse(block):
        X = block[:, lo:hi].tocsc() if (lo, hi) != (0, block.shape[1]) else block.tocsc()
        X.sum_duplicates()
        s = xp.asarray(X.sum(axis=0)).ravel()
        sq = xp.asarray(X.multiply(X).sum(axis=0)).ravel()
    elif xp is np and block.flags.c_contiguous and block.dtype == np.float64:
        from ._shotgun_kernels import fortran_copy

        X, s, sq = fortran_copy(block, lo, hi)
    else:
        X = block[:, lo:hi]
        X = np.asfortranarray(X, dtype=np.float64) if xp is np else X.astype(xp.float64, order="F")
        s = X.sum(axis=0)
        sq = (X * X).sum(axis=0)
    if fit_intercept:
        mean = s / n
        sq = sq - n * mean * mean
    else:
        mean = xp.zeros_like(s)
    return ColumnBlock(X, mean, xp.maximum(sq, 0.0))


def _dots(block: ColumnBlock, r: Any, sel: Any) -> Any:
    X = block.X
    if isinstance(r, np.ndarray):
        from ._shotgun_kernels import csc_dots, dense_dots

        g = csc_dots(X.indptr, X.indices, X.data, r, sel) if is_sparse(X) else dense_dots(X, r, sel)
    else:
        g = X[:, sel].T @ r
    if bool((block.mean != 0).any()):
        g = g - block.mean[sel] * r.sum()
    return g


def _combine(block: ColumnBlock, sel: Any, delta: Any, n: int) -> Any:
    """``(X_sel - mean_sel) @ delta`` as an n-vector."""
    xp, _ = get_namespace(delta)
    X = block.X
    if isinstance(delta, np.ndarray):
        from ._shotgun_kernels import csc_combine, dense_combine

        out = np.zeros(n)
        if is_sparse(X):
            csc_combine(X.indptr, X.indices, X.data, sel, delta, out)
        else:
            dense_combine(X, sel, delta, out)
    else:
        nz = xp.flatnonzero(delta)
        out = xp.asarray(X[:, sel[nz]] @ delta[nz]).ravel()
    shift = float((block.mean[sel] * delta).sum())
    if shift:
        out -= shift
    return out


def _round(block: ColumnBlock, state: Any, r: Any, sel: np.ndarray, l1: float, l2: float) -> tuple:
    """P coordinate steps in this block from the residual ``r``: (w, X delta, largest change so far)."""
    w, _, biggest = state if isinstance(state, tuple) else (state, None, 0.0)
    xp, _ = get_namespace(w)
    if len(sel) == 0:
        return w, None, biggest
    sel = xp.asarray(sel)
    sq = block.sqnorm[sel]
    old = w[sel]
    z = old * sq + _dots(block, r, sel)
    new = xp.sign(z) * xp.maximum(xp.abs(z) - l1, 0.0) / xp.maximum(sq + l2, 1e-300)
    new = xp.where(sq + l2 > 0, new, 0.0)
    delta = new - old
    if not bool((delta != 0).any()):
        return w, None, biggest
    w = w.copy()
    w[sel] = new
    return w, _combine(block, sel, delta, r.shape[0]), max(biggest, float(xp.abs(delta).max()))


def _apply(r: Any, *states: tuple) -> Any:
    updates = [s[1] for s in states if s[1] is not None]
    if not updates:
        return r
    r = r.copy()
    for u in updates:
        r -= u
    return r


def _reset(state: Any) -> tuple:
    w = state[0] if isinstance(state, tuple) else state
    return w, None, 0.0


def _epoch_stats(r: Any, y: Any, *states: tuple) -> tuple:
    xp, _ = get_namespace(r)
    w = xp.concatenate([s[0] for s in states])
    return (np.asarray(to_numpy(w)), float(r @ r), float(r @ y), max(s[2] for s in states))


def _dual_norm_block(block: ColumnBlock, state: tuple, r: Any, l2: float) -> float:
    xp, _ = get_namespace(state[0])
    d = block.X.shape[1]
    g = _dots(block, r, xp.arange(d)) - l2 * state[0]
    return float(xp.abs(g).max()) if d else 0.0


def _sample_block(block: ColumnBlock, rows: np.ndarray) -> tuple:
    xp, _ = get_namespace(block.sqnorm)
    S = block.X[xp.asarray(rows)]
    scale = xp.where(block.sqnorm > 0, 1.0 / xp.sqrt(xp.maximum(block.sqnorm, 1e-300)), 0.0)
    return S, block.mean, scale


def _start_vector(sample: tuple, seed: int) -> Any:
    xp, _ = get_namespace(sample[2])
    return xp.asarray(np.random.default_rng(seed).standard_normal(sample[2].shape[0]))


def _mv(sample: tuple, v: Any) -> Any:
    S, mean, scale = sample
    x = v * scale
    return S @ x - float((mean * x).sum())


def _rmv(sample: tuple, u: Any) -> Any:
    S, mean, scale = sample
    return scale * ((S.T @ u) - mean * u.sum())


def _norm(*parts: Any) -> float:
    return math.sqrt(sum(float((p * p).sum()) for p in parts))


def _scaled(v: Any, norm: float) -> Any:
    return v / norm if norm > 0 else v


def spectral_radius(blocks: list, n: int, d: int, seed: int, iterations: int = 30) -> float:
    """Estimate of the largest eigenvalue of ``X^T X`` with unit-norm (centred) columns."""
    m = min(n, max(2 * d, 5_000))
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=m, replace=False)) if m < n else np.arange(n)
    samples = [dask.delayed(_sample_block, pure=True)(b, rows) for b in blocks]
    v = [dask.delayed(_start_vector)(sample, int(rng.integers(2**31))) for sample in samples]
    norm = None
    for _ in range(iterations):
        u = dask.delayed(add)(*[dask.delayed(_mv)(s, vb) for s, vb in zip(samples, v)])
        v = [dask.delayed(_rmv)(s, u) for s in samples]
        norm = dask.delayed(_norm)(*v)
        v = [dask.delayed(_scaled)(vb, norm) for vb in v]
    # after normalization, one more product gives the Rayleigh quotient's numerator
    u = dask.delayed(add)(*[dask.delayed(_mv)(s, vb) for s, vb in zip(samples, v)])
    lam = dask.delayed(lambda uu: float((uu * uu).sum()))(u)
    value = float(dask.compute(lam)[0])
    return max(value * n / m, 1.0)


class _Blocks(list):
    widths: list[int]


def _put(value: Any) -> Any:
    """``value`` as a task input: scattered once to a connected cluster (not embedded in every
    graph), else a delayed value named by its content (dask's tokenize)."""
    client = scatter_client()
    if client is not None:
        return client.scatter(value, hash=False)
    return dask.delayed(value, name=f"shotgun-input-{tokenize(value)}")


def column_blocks(X: Any, fit_intercept: bool, n_blocks: int | None = None) -> _Blocks:
    """``X`` as persisted column blocks (a :class:`ColumnBlock` per slice of the features).

    An in-memory matrix is sliced by the block tasks themselves (C-ordered NumPy input is
    copied to column order by a tiled transpose); a dask array is rechunked to whole columns.
    """
    n, d = X.shape
    n_blocks = max(1, min(d, int(n_blocks or total_threads())))
    width = math.ceil(d / n_blocks)
    bounds = [(lo, min(d, lo + width)) for lo in range(0, d, width)]
    if isinstance(X, da.Array):
        X = X.rechunk({0: -1, 1: width})
        tasks = [dask.delayed(_prepare, pure=True)(b, fit_intercept) for b in X.to_delayed().ravel()]
    else:
        whole = _put(X)
        tasks = [dask.delayed(_prepare, pure=True)(whole, fit_intercept, lo, hi) for lo, hi in bounds]
    blocks = _Blocks(dask.persist(*tasks))
    blocks.widths = [hi - lo for lo, hi in bounds]
    return blocks


@validate_params({"l1": [Interval(Real, 0, None)], "l2": [Interval(Real, 0, None)], "fit_intercept": ["boolean"],
                  "n_parallel": [Options("auto"), Interval(Integral, 1, None)], "n_blocks": [None, Interval(Integral, 1, None)],
                  "max_iter": [Interval(Integral, 1, None)], "tol": [Interval(Real, 0, None)], **PROTOCOL})
def shotgun(X: Any, y: Any, *, l1: float, l2: float = 0.0, fit_intercept: bool = True,
            n_parallel: int | str = "auto", n_blocks: int | None = None, max_iter: int = 1000,
            tol: float = 1e-4, random_state: Any = None, callback: Callable | None = None,
            progress: bool | None = None, checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10,
            resume: bool = False) -> ShotgunResult:
    """Minimize ``1/2 ||y - X w - b||^2 + l1 ||w||_1 + l2/2 ||w||^2`` by Shotgun coordinate descent.

    Parameters
    ----------
    X : array (n x d): NumPy, SciPy sparse, CuPy, or a dask array of such blocks
    y : 1-D array of n targets
    l1, l2 : penalty weights (scikit-learn's ElasticNet has ``l1 = n alpha l1_ratio``,
        ``l2 = n alpha (1 - l1_ratio)``)
    n_parallel : int or "auto"
        P, the coordinates updated at once (see the module's notes for "auto").
    n_blocks : int, optional
        Column blocks (tasks per round); default: the worker threads.
    max_iter : int
        Epochs (each visits every coordinate once).
    tol : float
        Duality-gap tolerance relative to ``||y - mean(y)||^2`` (scikit-learn's).
    random_state : seed of the coordinate order and of the P estimate.
    callback : callable(record) -> bool, optional
        Called after every epoch with the history row just appended (``iteration``: the epoch,
        ``objective``, ``duality_gap``, ``max_update``, ``n_parallel``, ``time``, ``rounds``,
        ``bytes``) and the current ``coef``; returning True stops.
    progress : bool, optional
        A progress line per epoch (default: on a terminal, see ``daskpml.progress``).
    checkpoint, checkpoint_every, resume : str or os.PathLike, int, bool
        A directory for a snapshot every
        ``checkpoint_every`` epochs: the coefficients, the residual (written by the task that
        holds it), the coordinate order's generator, P and the history. ``resume=True`` goes on
        from the newest one and ends exactly as the uninterrupted run would.

    fit_intercept : bool, default True
        Fit an unpenalized intercept (the data are centred).

    Returns
    -------
    ShotgunResult
        The coefficients, the intercept and the history: per epoch the objective
        (scikit-learn's scaling, divided by n), the duality gap (NaN where it was not computed),
        the largest coordinate change, P, the communication rounds so far and the bytes of
        residual moved in the epoch (each block receives r and sends ``X_b delta_b`` once per
        round: ``16 n`` bytes per block and round).

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((200, 5)); y = X @ [1.0, 0, 0, 2.0, 0] + 3
    >>> res = shotgun(X, y, l1=1.0, random_state=0)
    >>> (np.round(res.coef, 1) + 0.0).tolist(), round(res.intercept, 1)
    ([1.0, 0.0, 0.0, 2.0, 0.0], 3.0)
    """
    if not isinstance(X, da.Array) and is_small(nbytes(X), "shotgun.local-bytes") \
            and dask.config.get("scheduler", None) is None and current_client() is not None:
        # A small in-memory problem: task and round-trip costs on a cluster would dominate.
        with dask.config.set(scheduler="threads"):
            return shotgun(X, y, l1=l1, l2=l2, fit_intercept=fit_intercept, n_parallel=n_parallel,
                           n_blocks=n_blocks, max_iter=max_iter, tol=tol, random_state=random_state,
                           callback=callback, progress=progress, checkpoint=checkpoint,
                           checkpoint_every=checkpoint_every, resume=resume)
    n, d = X.shape
    seed = resolve_seed(random_state)
    rng = np.random.default_rng(seed)
    blocks = column_blocks(X, fit_intercept, n_blocks)
    widths = blocks.widths
    offsets = np.concatenate([[0], np.cumsum(widths)])
    meta = X._meta if isinstance(X, da.Array) else X
    xp, _ = get_namespace(meta)
    y = y.compute() if hasattr(y, "compute") else y
    y = xp.asarray(y, dtype=xp.float64)
    y_mean = float(y.mean()) if fit_intercept else 0.0
    yc = y - y_mean
    scale = float(yc @ yc)
    if n_parallel != "auto" and int(n_parallel) < 1:
        raise ValueError(f"n_parallel must be a positive integer or 'auto', got {n_parallel!r}.")
    ckpt = Checkpoint(checkpoint, every=checkpoint_every, resume=resume)
    ckpt.describe("shotgun", params={"l1": float(l1), "l2": float(l2), "fit_intercept": bool(fit_intercept),
                                     "n_parallel": n_parallel, "seed": seed},
                  data={"n_samples": int(n), "n_features": int(d), "column_blocks": list(widths)})
    ckpt.watch(X=[dask.delayed(getattr, pure=True)(b, "X") for b in blocks], y=y)
    snap = ckpt.restore(like=xp.empty(0))
    yd = _put(yc)
    recorder = HistoryRecorder(callback=callback, bytes_source="model")
    if snap is None:
        if n_parallel == "auto":
            rho = spectral_radius(blocks, n, d, seed)
            P = max(1, int(d // rho))
        else:
            rho, P = float("nan"), int(n_parallel)
        P = min(P, d)
        r = yd
        states = [dask.delayed(xp.zeros)(w) for w in widths]
        objective = 0.5 * scale
        w_all = np.zeros(d)
        epoch = 0
    else:                               # exactly where the snapshot left off
        rho, P, objective = float(snap.state["rho"]), int(snap.state["P"]), float(snap.state["objective"])
        rng.bit_generator.state = snap.state["rng"]
        w_all = snap.arrays["coef"]
        r = dask.persist(snap.blocks["residual"][0])[0]
        states = [dask.delayed(xp.asarray)(w_all[offsets[b]:offsets[b + 1]]) for b in range(len(widths))]
        recorder.resume(snap.rows())
        epoch = snap.iteration
    total_rounds = int(recorder.rows[-1]["rounds"]) if len(recorder) else 0
    line = ProgressLine(progress)
    converged = bool(snap.state.get("converged", False)) if snap is not None else False
    finished = bool(snap.state.get("finished", False)) if snap is not None else False   # a final snapshot
    while epoch < max_iter and not finished:
        order = rng.permutation(d)
        rounds = math.ceil(d / P)
        size = math.ceil(d / rounds)            # rounds of equal size, at most P
        new_r, new_states = r, [dask.delayed(_reset)(s) for s in states]
        for k in range(rounds):
            chosen = np.sort(order[k * size:(k + 1) * size])
            cut = np.searchsorted(chosen, offsets)
            new_states = [dask.delayed(_round, pure=True)(blocks[b], new_states[b], new_r,
                                                         chosen[cut[b]:cut[b + 1]] - offsets[b], l1, l2)
                          for b in range(len(blocks))]
            new_r = dask.delayed(_apply, pure=True)(new_r, *new_states)
        stats = dask.delayed(_epoch_stats)(new_r, yd, *new_states)
        new_r, new_states, stats = dask.persist(new_r, new_states, stats)
        (w_new, rr, ry, biggest), = dask.compute(stats)
        new_objective = 0.5 * rr + l1 * float(np.abs(w_new).sum()) + 0.5 * l2 * float(w_new @ w_new)
        if new_objective > objective * (1 + 1e-10) + 1e-300 and P > 1:
            P = max(1, P // 2)               # too many coordinates at once for this design: undo, halve
            continue
        epoch += 1
        r, states, w_all, objective = new_r, list(new_states), w_new, new_objective
        w_max = float(np.abs(w_all).max()) if d else 0.0
        gap = float("nan")
        if w_max == 0.0 or biggest / w_max <= tol or epoch == max_iter:
            norms = dask.compute(*[dask.delayed(_dual_norm_block)(blocks[b], states[b], r, l2)
                                   for b in range(len(blocks))])
            gap = _duality_gap(max(norms) if norms else 0.0, rr, ry, w_all, l1, l2)
        total_rounds += rounds
        line.update(epoch, max_iter, f"shotgun: epoch {epoch}/{max_iter}  objective {objective / n:.8g}  P {P}")
        converged = bool(np.isfinite(gap) and gap <= tol * scale)
        asked = recorder.record(epoch, {"coef": w_all}, objective=objective / n, duality_gap=gap / n,
                                max_update=biggest, n_parallel=P, rounds=total_rounds,
                                bytes=16 * n * len(blocks) * rounds)
        stop = converged or asked
        if ckpt.due(epoch, final=stop or epoch == max_iter):
            ckpt.save(epoch, arrays={"coef": w_all}, blocks={"residual": [r]}, history=recorder.columns(),
                      state={"rho": rho, "P": P, "objective": objective, "rng": rng.bit_generator.state,
                             "converged": converged, "finished": stop})
        if stop:
            break
    line.close()
    x_mean = np.concatenate([np.asarray(to_numpy(m)) for m in
                             dask.compute(*[dask.delayed(lambda b: b.mean)(b) for b in blocks])])
    intercept = y_mean - float(x_mean @ w_all) if fit_intercept else 0.0
    history = recorder.to_xarray(attrs=dict(solver="shotgun", l1=l1, l2=l2, rho=rho, tol=tol,
                                            n_blocks=len(blocks), converged=int(converged),
                                            total_bytes=int(sum(recorder.columns().get("bytes", [])))))
    return ShotgunResult(coef=w_all, intercept=intercept, n_iter=epoch, n_parallel=P, rho=rho,
                         converged=converged, history=history)


def _duality_gap(dual_norm: float, rr: float, ry: float, w: np.ndarray, l1: float, l2: float) -> float:
    """scikit-learn's elastic-net duality gap (``cd_fast``), unscaled."""
    if dual_norm > l1:
        const = l1 / dual_norm
        gap = 0.5 * (rr + rr * const * const)
    else:
        const = 1.0
        gap = rr
    gap += l1 * float(np.abs(w).sum()) - const * ry + 0.5 * l2 * (1 + const * const) * float(w @ w)
    return gap
