"""Distributed k-means: k-means|| or k-means++ initialization, then Lloyd iterations.

Each pass over the data is one task per row block and a tree sum of small
per-block results (k x d sums, counts, costs); only those reach the client.
One Lloyd iteration is one pass and one round trip.

References
----------
D. Arthur and S. Vassilvitskii, "k-means++: the advantages of careful seeding", SODA 2007.
B. Bahmani, B. Moseley, A. Vattani, R. Kumar, S. Vassilvitskii, "Scalable k-means++",
VLDB 2012 (k-means||).
"""

from __future__ import annotations

import os
import warnings
from numbers import Integral, Real
from typing import Any, Callable, Literal

import dask
import dask.array as da
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .. import results
from ..results import HistoryRecorder
from .._checkpoint import Checkpoint
from .._progress import ProgressLine
from ..backend import get_namespace, to_numpy
from .._random import resolve_seed
from .._blocks import as_points
from ._neighbors import sq_distances
from ..validation import PROTOCOL, Interval, Options, validate_params

KMeansInit = Literal["k-means||", "k-means++", "random"]


def _min_dist2(x: Any, centers: Any) -> tuple[Any, Any]:
    """Squared distance of each row to its nearest center, and that center's index."""
    xp, _ = get_namespace(x)
    d = sq_distances(x, xp.asarray(centers, dtype=x.dtype))
    labels = d.argmin(axis=1)
    return xp.take_along_axis(d, labels[:, None], axis=1)[:, 0], labels


def _labels(x: Any, centers: np.ndarray) -> Any:
    return _min_dist2(x, centers)[1]


def _lloyd_stats(x: Any, centers: np.ndarray) -> Any:
    """``[sums (k x d), counts (k), inertia]`` of this block, flattened into one row."""
    xp, _ = get_namespace(x)
    k, d = centers.shape
    dist, labels = _min_dist2(x, centers)
    onehot = xp.zeros((x.shape[0], k), dtype=x.dtype)
    onehot[xp.arange(x.shape[0]), labels] = 1
    sums = onehot.T @ x
    out = xp.concatenate([sums.ravel(), onehot.sum(axis=0), xp.asarray([dist.sum()])])
    return out[None, :]


def _pass(X: da.Array, func: Any, width: int, *args: Any) -> np.ndarray:
    """Sum over blocks of ``func(block, *args)`` (a row of ``width`` numbers), on the client."""
    xp, _ = get_namespace(X)
    parts = X.map_blocks(func, *args, chunks=((1,) * X.numblocks[0], (width,)), dtype=np.float64,
                         meta=xp.empty((0, 0)))
    return np.asarray(to_numpy(parts.sum(axis=0).compute()), dtype=np.float64)


def _cost(x: Any, centers: np.ndarray) -> Any:
    xp, _ = get_namespace(x)
    return xp.asarray([_min_dist2(x, centers)[0].sum()])[None, :]


def _sample(x: Any, centers: np.ndarray, factor: float, phi: float, seed: int, rnd: int,
            block_info: dict | None = None) -> Any:
    """Rows kept independently with probability ``min(1, factor d^2 / phi)`` (k-means||)."""
    xp, _ = get_namespace(x)
    i = block_info[0]["chunk-location"][0] if block_info else 0
    dist, _ = _min_dist2(x, centers)
    u = xp.asarray(np.random.default_rng([seed, rnd, i]).random(x.shape[0]))
    return x[u < factor * dist / phi]


def _counts(x: Any, centers: np.ndarray) -> Any:
    xp, _ = get_namespace(x)
    _, labels = _min_dist2(x, centers)
    return xp.bincount(labels, minlength=len(centers)).astype(np.float64)[None, :]


def _pick(X: da.Array, rng: np.random.Generator) -> np.ndarray:
    return np.asarray(to_numpy(X[int(rng.integers(X.shape[0]))].compute()), dtype=np.float64)[None, :]


def _weighted_kmeanspp(points: np.ndarray, weights: np.ndarray, k: int, rng: np.random.Generator,
                       iterations: int = 30) -> np.ndarray:
    """k-means++ seeding and weighted Lloyd on the (few) candidates, on the client."""
    first = rng.choice(len(points), p=weights / weights.sum())
    centers = [points[first]]
    dist = ((points - centers[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        p = weights * dist
        idx = rng.choice(len(points), p=p / p.sum()) if p.sum() > 0 else rng.integers(len(points))
        centers.append(points[idx])
        dist = np.minimum(dist, ((points - points[idx]) ** 2).sum(axis=1))
    centers = np.array(centers)
    for _ in range(iterations):
        _, labels = _min_dist2(points, centers)
        new = centers.copy()
        for c in range(k):
            w = weights[labels == c]
            if w.sum() > 0:
                new[c] = (points[labels == c] * w[:, None]).sum(axis=0) / w.sum()
        if np.allclose(new, centers):
            break
        centers = new
    return centers


def _init_parallel(X: da.Array, k: int, rng: np.random.Generator, seed: int, factor: float,
                   rounds: int) -> np.ndarray:
    """k-means|| (Bahmani et al.): ``rounds`` passes that each keep about ``factor k`` points."""
    centers = _pick(X, rng)
    for r in range(rounds):
        phi = float(_pass(X, _cost, 1, centers)[0])
        if phi == 0:
            break
        new = X.map_blocks(_sample, centers, factor * k, phi, seed, r, chunks=((np.nan,) * X.numblocks[0],
                                                                          (X.shape[1],)), dtype=X.dtype)
        new = np.asarray(to_numpy(new.compute()), dtype=np.float64)
        centers = np.vstack([centers, new])
    centers = np.unique(centers, axis=0)
    if len(centers) <= k:
        return np.vstack([centers, _init_random(X, k - len(centers), rng)]) if len(centers) < k else centers
    weights = _pass(X, _counts, len(centers), centers)
    return _weighted_kmeanspp(centers, np.maximum(weights, 1e-12), k, rng)


def _pp_candidate(x: Any, centers: np.ndarray, seed: int, step: int, block_info: dict | None = None) -> Any:
    """This block's d^2-weighted candidate (its index in the block) and the block's d^2 total."""
    i = block_info[0]["chunk-location"][0] if block_info else 0
    dist = to_numpy(_min_dist2(x, centers)[0])
    total = float(dist.sum())
    rng = np.random.default_rng([seed, step, i])
    pick = int(rng.choice(len(dist), p=dist / total)) if total > 0 else int(rng.integers(len(dist)))
    return np.asarray([[total, pick]])


def _init_plusplus(X: da.Array, k: int, rng: np.random.Generator, seed: int) -> np.ndarray:
    """k-means++: k passes, each drawing one point with probability proportional to d^2."""
    centers = _pick(X, rng)
    offsets = np.concatenate([[0], np.cumsum(X.chunks[0])])
    for step in range(1, k):
        parts = X.map_blocks(_pp_candidate, centers, seed, step, chunks=((1,) * X.numblocks[0], (2,)),
                             dtype=np.float64, meta=np.empty((0, 0))).compute()
        totals = parts[:, 0]
        block = int(rng.choice(len(totals), p=totals / totals.sum())) if totals.sum() > 0 else 0
        row = int(offsets[block] + parts[block, 1])
        centers = np.vstack([centers, np.asarray(to_numpy(X[row].compute()), dtype=np.float64)])
    return centers


def _init_random(X: da.Array, k: int, rng: np.random.Generator) -> np.ndarray:
    rows = np.sort(rng.choice(X.shape[0], size=k, replace=False))
    return np.asarray(to_numpy(X[rows].compute()), dtype=np.float64)


def _variance_scale(X: da.Array) -> float:
    return float(da.var(X, axis=0).mean().compute())


KMEANS_CONSTRAINTS = {
    "n_clusters": [Interval(Integral, 1, None)], "init": [Options("k-means||", "k-means++", "random"), "array-like"],
    "n_init": [Interval(Integral, 1, None)], "max_iter": [Interval(Integral, 1, None)], "tol": [Interval(Real, 0, None)],
    "oversampling_factor": [Interval(Real, 0, None, closed="neither")], "init_rounds": [Interval(Integral, 1, None)],
    **PROTOCOL}


@validate_params(KMEANS_CONSTRAINTS)
def kmeans(X: Any, n_clusters: int, *, init: KMeansInit | np.ndarray = "k-means||", n_init: int = 1,
           max_iter: int = 300, tol: float = 1e-4, random_state: Any = None,
           oversampling_factor: float = 2.0, init_rounds: int = 5, callback: Callable | None = None,
           progress: bool | None = None, checkpoint: str | os.PathLike | None = None,
           checkpoint_every: int = 10, resume: bool = False) -> dict:
    """Distributed k-means (Lloyd) with k-means|| / k-means++ / random / given initial centers.

        Converged when the squared shift of the centers is at most ``tol`` times the mean variance
        of the features (scikit-learn's rule). Empty clusters keep their center. The best of
        ``n_init`` runs (lowest inertia) is kept.

        Parameters
        ----------
        X : array-like, dask array
            Points (n x d), dense, chunked along rows only.
        n_clusters : int
            Number of centers, at most n.
        init : {"k-means||", "k-means++", "random"} or numpy.ndarray, default "k-means||"
            The initialization, or the initial centers (k x d).
        n_init : int, default 1
            Runs from different initializations.
        max_iter : int, default 300
            Lloyd iterations per run.
        tol : float, default 1e-4
            Relative tolerance on the centers' shift.
        random_state : None, int or numpy.random.Generator
            Seed of the initialization.
        oversampling_factor : float, default 2.0
            k-means|| candidates drawn per round, times k.
        init_rounds : int, default 5
            k-means|| rounds.
        callback : callable(record) -> bool, optional
            Runs after each Lloyd iteration with the history row just appended (``iteration``,
            ``inertia``, ``shift``, ``time``, ``rounds``, ``bytes``) and the current ``centers``;
            a true return value stops the run (the centers so far are the result).
        progress : bool, optional
            A progress line (default: on a terminal).
        checkpoint : str or os.PathLike, optional
            A folder for snapshots: the centers, the init run, the best run so far and the history.
        checkpoint_every : int, default 10
            Iterations between snapshots.
        resume : bool, default False
            Continue from the newest snapshot in ``checkpoint``.

        Returns
        -------
        dict
            ``centers`` (k x d NumPy), ``labels`` (dask array), ``inertia``, ``n_iter`` and
            ``history`` (xarray: inertia, shift, time, rounds and bytes per iteration).

        Examples
        --------
        >>> from daskpml.datasets import make_blobs
        >>> X, y = make_blobs(600, 2, centers=3, random_state=0)
        >>> out = kmeans(X, 3, random_state=0, progress=False)
        >>> out["centers"].shape, out["labels"].shape
        ((3, 2), (600,))

        References
        ----------
        D. Arthur and S. Vassilvitskii, "k-means++: the advantages of careful seeding", SODA 2007.
        B. Bahmani et al., "Scalable k-means++", VLDB 2012 (k-means||).
    """
    X = as_points(X)
    n, d = X.shape
    if int(n_clusters) != n_clusters or not 1 <= n_clusters <= n:
        raise ValueError(f"n_clusters must be an integer in [1, n_samples={n}], got {n_clusters!r}.")
    k = int(n_clusters)
    if isinstance(init, str) and init not in ("k-means||", "k-means++", "random"):
        raise ValueError(f"init must be 'k-means||', 'k-means++', 'random' or an array, got {init!r}.")
    if not isinstance(init, str):
        init = np.asarray(to_numpy(init), dtype=np.float64)        # (CuPy centers too: seeding is on the host)
        if init.shape != (k, d):
            raise ValueError(f"init centers must have shape ({k}, {d}), got {init.shape}.")
        n_init = 1
    X = X.astype(np.float64) if X.dtype.kind != "f" else X
    (X,) = dask.persist(X)
    seed = resolve_seed(random_state)
    cp = Checkpoint(checkpoint, "kmeans", dict(n_clusters=k, init=init if isinstance(init, str) else "array",
                                              n_init=int(n_init), oversampling_factor=oversampling_factor,
                                              init_rounds=init_rounds),
                    dict(shape=[int(n), int(d)], chunks=[int(c) for c in X.chunks[0]]),
                    every=checkpoint_every, resume=resume)
    cp.watch(X=X)
    snap = cp.restore()
    if snap is not None:
        seed = int(snap.state["seed"])
    tol_abs = tol * _variance_scale(X)
    best = None if snap is None or "best_centers" not in snap.arrays else dict(
        centers=snap.arrays["best_centers"], inertia=float(snap.state["best_inertia"]),
        n_iter=int(snap.state["best_n_iter"]), records=snap.state["best_records"])
    lloyd = _Lloyd(X, max_iter, tol_abs, cp, seed, callback, progress)
    for run in range(int(n_init)):
        if snap is not None and run < int(snap.state["run"]):
            continue
        if snap is not None:                        # the interrupted run, from its snapshot
            result = lloyd(snap.arrays["centers"], run, best, snap.iteration, snap.history)
            snap = None
        else:
            rng = np.random.default_rng([seed, run])
            if isinstance(init, np.ndarray):
                centers = init.copy()
            elif init == "k-means||":
                centers = _init_parallel(X, k, rng, seed + run, oversampling_factor, init_rounds)
            elif init == "k-means++":
                centers = _init_plusplus(X, k, rng, seed + run)
            else:
                centers = _init_random(X, k, rng)
            result = lloyd(centers, run, best)
        if best is None or result["inertia"] < best["inertia"]:
            best = result
        if lloyd.stopped:
            break
    if "counts" not in best:                        # the best run of a resumed fit, from its snapshot
        best.update(final_stats(X, best["centers"]))
    distinct = int(np.count_nonzero(best.pop("counts")))
    if distinct < k:
        warnings.warn(f"Number of distinct clusters ({distinct}) found smaller than n_clusters ({k}). Possibly "
                      "due to duplicate points in X.", ConvergenceWarning, stacklevel=2)
    best["history"] = results.history(best.pop("records"), attrs={"n_clusters": k}, bytes_source="model")
    best["labels"] = X.map_blocks(_labels, best["centers"], drop_axis=1, dtype=np.int64)
    return best


def final_stats(X: da.Array, centers: np.ndarray) -> dict:
    """Inertia and cluster sizes of the final centers, in one pass (the loop's values belong to
    the centers before its last update)."""
    k, d = centers.shape
    stats = _pass(X, _lloyd_stats, k * d + k + 1, centers)
    return {"inertia": float(stats[-1]), "counts": stats[k * d:k * d + k]}


class _Lloyd:
    """Lloyd iterations from given centers: one pass over the data per iteration (the
    per-chunk sums, counts and inertia are tree-reduced to the client, O(k d))."""

    def __init__(self, X: da.Array, max_iter: int, tol_abs: float, cp: Checkpoint, seed: int,
                 callback: Callable | None, progress: bool | None) -> None:
        self.X, self.max_iter, self.tol_abs, self.cp, self.seed = X, int(max_iter), tol_abs, cp, seed
        self.callback, self.show = callback, ProgressLine(progress)
        self.stopped = False

    def __call__(self, centers: np.ndarray, run: int, best: dict | None, first: int = 0,
                 records: dict | None = None) -> dict:
        k, d = centers.shape
        rec = HistoryRecorder(callback=self.callback, bytes_source="model")
        columns = records or {}
        rows = [{key: v[i] for key, v in columns.items()} for i in range(len(columns.get("time", ())))]
        rec.resume(rows)
        n_iter, shift = first, (rows[-1]["shift"] if rows else np.inf)
        # a pass moves the centers to every block and its k d + k + 1 sums back up the tree
        pass_bytes = 8 * (2 * k * d + k + 1) * self.X.numblocks[0]
        try:
            while n_iter < self.max_iter and not shift <= self.tol_abs:
                n_iter += 1
                stats = _pass(self.X, _lloyd_stats, k * d + k + 1, centers)
                sums, counts, inertia = stats[:k * d].reshape(k, d), stats[k * d:k * d + k], stats[-1]
                new = centers.copy()
                nonempty = counts > 0
                new[nonempty] = sums[nonempty] / counts[nonempty, None]
                shift = float(((new - centers) ** 2).sum())
                centers = new
                stop = rec.record(n_iter, {"centers": centers}, inertia=float(inertia), shift=shift,
                                  rounds=n_iter, bytes=pass_bytes)
                self.show.update(n_iter, self.max_iter, f"kmeans: iteration {n_iter}/{self.max_iter}  "
                                 f"inertia {inertia:.6g}  shift {shift:.3g}")
                if self.cp.due(n_iter, shift <= self.tol_abs):
                    self._save(n_iter, centers, run, best, rec.columns())
                if stop:
                    self.stopped = True
                    break
        finally:
            self.show.close()
        return {"centers": centers, "n_iter": n_iter, "records": rec.columns(), **final_stats(self.X, centers)}

    def _save(self, n_iter: int, centers: np.ndarray, run: int, best: dict | None, records: dict) -> None:
        arrays, state = {"centers": centers}, {"run": run, "seed": self.seed}
        if best is not None:
            arrays["best_centers"] = best["centers"]
            state.update(best_inertia=best["inertia"], best_n_iter=best["n_iter"], best_records=best["records"])
        self.cp.save(n_iter, arrays=arrays, history=records, state=state)


def _center_distances(x: Any, centers: np.ndarray) -> Any:
    xp, _ = get_namespace(x)
    return xp.sqrt(sq_distances(x, xp.asarray(centers, dtype=x.dtype)))


def assign(X: da.Array, centers: np.ndarray) -> da.Array:
    """The index of each row's nearest center (ties: the smaller index), one task per row block.

        Parameters
        ----------
        X : dask.array.Array
            Points, chunked along rows only.
        centers : numpy.ndarray
            The centers (k x d).

        Returns
        -------
        dask.array.Array
            Labels (int64), chunked as the rows of ``X``.

        Examples
        --------
        >>> import dask.array as da
        >>> X = da.from_array(np.array([[0.0], [0.9], [2.0]]), chunks=2)
        >>> assign(X, np.array([[0.0], [2.0]])).compute().tolist()
        [0, 0, 1]
    """
    return X.map_blocks(_labels, centers, drop_axis=1, dtype=np.int64)


def center_distances(X: da.Array, centers: np.ndarray) -> da.Array:
    """Euclidean distances of every row of ``X`` to every center (n x k), one task per row block.

        Parameters
        ----------
        X : dask.array.Array
            Points, chunked along rows only.
        centers : numpy.ndarray
            The centers (k x d).

        Returns
        -------
        dask.array.Array
            Distances (n x k), chunked as the rows of ``X``.

        Examples
        --------
        >>> import dask.array as da
        >>> X = da.from_array(np.array([[0.0, 0.0], [3.0, 4.0]]), chunks=(1, 2))
        >>> center_distances(X, np.zeros((1, 2))).compute().ravel().tolist()
        [0.0, 5.0]
    """
    return X.map_blocks(_center_distances, centers, chunks=(X.chunks[0], (len(centers),)), dtype=np.float64)


def inertia(X: da.Array, centers: np.ndarray) -> float:
    """Sum of squared distances of the rows of ``X`` to their nearest center (one pass).

        Parameters
        ----------
        X : dask.array.Array
            Points, chunked along rows only.
        centers : numpy.ndarray
            The centers (k x d).

        Returns
        -------
        float

        Examples
        --------
        >>> import dask.array as da
        >>> X = da.from_array(np.array([[0.0], [1.0], [3.0]]), chunks=2)
        >>> inertia(X, np.array([[0.0], [3.0]]))
        1.0
    """
    return float(_pass(X, _cost, 1, centers)[0])
