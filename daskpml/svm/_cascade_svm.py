"""Cascade SVM (Graf et al., 2005): kernel SVMs on data partitions, merged up a binary tree.

One pass is one dask graph:

* **leaves**: partition ``p`` (its rows, plus the previous pass's final support vectors) is
  solved on a worker by the node solver: by default (``solver="auto"``) libsvm's SMO algorithm
  compiled with numba over the node's kernel matrix (formed with BLAS) for binary nodes whose
  kernel matrix fits in ``daskpml.svm.kernel-bytes``, else scikit-learn's
  :class:`~sklearn.svm.SVC` (libsvm itself, kernel rows on demand);
* **merges**: the support vectors of two sibling nodes, and only those, travel to one worker
  and are solved together; an unpaired node moves up unchanged;
* **top**: the single remaining node's model is the pass's model.

Its support vectors are fed back to every leaf in the next pass. The cascade stops when the
top's support-vector set equals the previous pass's, or after ``max_passes``. Graf et al.
show that the top's dual objective does not decrease from pass to pass and that the cascade
reaches the optimum of the SVM on all the data in finitely many passes.

Only support vectors (O(model)) and per-node statistics reach the client; the partitions'
rows stay where their blocks are. Labels (n integers) are read on the client to build
the partitions.

The dual objective recorded for a binary node is ``sum |a| - 1/2 a^T K a`` with
``a = y * alpha`` (``dual_coef_``), the quantity libsvm maximizes. For more than two
classes it is NaN (scikit-learn's one-vs-one problems are not summed).
"""

from __future__ import annotations

import math
import os
import time
import zlib
from concurrent.futures import CancelledError
from dataclasses import dataclass
from operator import getitem
from typing import Any, Callable, Sequence

import dask
from distributed import KilledWorker
import numpy as np
import scipy.sparse as sp

from .. import _config
from .._checkpoint import Checkpoint
from ..results import HistoryRecorder, ResultDisplay
from ..runtime import WorkerLostError, scatter_client, total_threads

KERNELS = ("rbf", "linear", "poly", "sigmoid")


@dataclass
class SVSet:
    """Rows of one node's training set kept for the next layer (its support vectors)."""

    idx: np.ndarray                 # global row numbers (int64)
    X: Any                          # the rows: ndarray or CSR
    y: np.ndarray                   # their labels
    alpha: Any = None               # their dual variables (>= 0; None: zero, or not binary)
    n_train: int = 0                # size of the node's training set
    objective: float = float("nan")
    solve_time: float = 0.0
    intercept: float = float("nan")  # binary: decision = K(x, X) @ dual_coef[0] + intercept
    dual_coef: Any = None           # y * alpha (binary), or libsvm's one-vs-one layout
    model: Any = None               # the fitted SVC (top node solved by libsvm only)


@dataclass(repr=False)
class CascadeResult(ResultDisplay):
    """What :func:`cascade_svm` returns.

        Parameters
        ----------
        top : SVSet
            The top node of the last pass: its support vectors' rows, labels and dual coefficients.
        model : sklearn.svm.SVC or None
            The libsvm model of the top node, when libsvm solved it.
        support : numpy.ndarray
            Row indices of the support vectors.
        objective : float
            The top node's dual objective (NaN for more than two classes).
        n_passes : int
            Passes run.
        converged : bool
            Whether the support-vector set stopped changing.
        history : xarray.Dataset
            One row per node layer and pass: pass, layer, n_nodes, n_train, n_support, objective,
            solve_time, time, rounds.

        Examples
        --------
        >>> X = np.random.default_rng(0).standard_normal((100, 2)); y = (X[:, 1] > 0).astype(int)
        >>> res = cascade_svm(X, y, np.arange(100) % 2)
        >>> isinstance(res, CascadeResult), sorted(set(res.history["layer"].values.tolist()))
        (True, [0, 1])
    """
    top: SVSet                      # the final top node: support vectors, dual_coef, intercept
    model: Any                      # sklearn.svm.SVC of the top node (when libsvm solved it)
    support: np.ndarray             # global row numbers of its support vectors
    objective: float
    n_passes: int
    converged: bool
    history: Any


def _stack(blocks: Sequence[Any]) -> Any:
    if any(sp.issparse(b) for b in blocks):
        return sp.vstack([sp.csr_matrix(b) for b in blocks], format="csr")
    return np.concatenate(blocks, axis=0) if len(blocks) > 1 else blocks[0]


def kernel_matrix(A: Any, B: Any, kernel: str, gamma: float, degree: int, coef0: float) -> np.ndarray:
    """``K(A, B)`` with libsvm's kernels (dense result; ``A``, ``B`` dense or CSR)."""
    G = A @ B.T
    G = G.toarray() if sp.issparse(G) else np.asarray(G)
    if kernel == "linear":
        return G
    if kernel == "rbf":
        na = np.asarray(A.multiply(A).sum(axis=1)).ravel() if sp.issparse(A) else np.einsum("ij,ij->i", A, A)
        nb = np.asarray(B.multiply(B).sum(axis=1)).ravel() if sp.issparse(B) else np.einsum("ij,ij->i", B, B)
        G *= -2.0
        G += na[:, None]
        G += nb[None, :]
        np.maximum(G, 0.0, out=G)
        G *= -gamma
        return np.exp(G, out=G)
    if kernel == "poly":
        return (gamma * G + coef0) ** degree
    if kernel == "sigmoid":
        return np.tanh(gamma * G + coef0)
    raise ValueError(f"unknown kernel {kernel!r}; valid kernels are {', '.join(KERNELS)}.")


def decision_values(X: Any, support_vectors: Any, dual_coef: np.ndarray, intercept: float,
                    params: dict, block_rows: int = 2048) -> np.ndarray:
    """``K(X, SV) @ dual_coef + intercept`` of a binary SVC, in row blocks (BLAS, not libsvm)."""
    out = np.empty(X.shape[0])
    coef = np.asarray(dual_coef, dtype=np.float64).ravel()
    for lo in range(0, X.shape[0], block_rows):
        K = kernel_matrix(X[lo:lo + block_rows], support_vectors, **params)
        out[lo:lo + block_rows] = K @ coef
    out += intercept
    return out


def dual_objective(support_vectors: Any, dual_coef: np.ndarray, params: dict,
                   block_rows: int = 2048) -> float:
    """``sum |a| - 1/2 a^T K a`` for a binary SVC's ``dual_coef_`` ``a`` (libsvm's dual, maximized)."""
    a = np.asarray(dual_coef, dtype=np.float64).ravel()
    quad = 0.0
    for lo in range(0, len(a), block_rows):
        K = kernel_matrix(support_vectors[lo:lo + block_rows], support_vectors, **params)
        quad += float(a[lo:lo + block_rows] @ (K @ a))
    return float(np.abs(a).sum() - 0.5 * quad)


def _pieces_of_block(X: Any, y: np.ndarray, offset: int, labels: np.ndarray, n_parts: int) -> list:
    """Split one row block into ``n_parts`` pieces ``(global idx, rows, labels)`` by partition label."""
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_parts + 1))
    pieces = []
    for p in range(n_parts):
        local = np.sort(order[bounds[p]:bounds[p + 1]])
        rows = X[local]
        pieces.append((local.astype(np.int64) + offset, rows, y[local]))
    return pieces


def _solve_smo(X: Any, y: np.ndarray, alpha: np.ndarray, positive: Any, params: dict,
               svc_options: dict) -> tuple[np.ndarray, float, float]:
    """Binary node with the kernel matrix in memory: ``alpha`` (solved in place), intercept, objective."""
    from ._cascade_kernels import smo

    kernel = {k: params[k] for k in ("kernel", "gamma", "degree", "coef0")}
    K = kernel_matrix(X, X, **kernel)
    signs = np.where(y == positive, 1.0, -1.0)
    n = len(y)
    G, rho, _ = smo(K, signs, alpha, params["C"], float(svc_options.get("tol", 1e-3)), max(10_000_000, 100 * n))
    objective = 0.5 * float(alpha.sum()) - 0.5 * float(alpha @ G)
    return alpha, -rho, objective


def _train_node(parts: Sequence[Any], params: dict, svc_options: dict, keep_model: bool) -> SVSet:
    """Solve one node: the union (by row number) of its inputs; keep its support vectors.

    A node starts from its inputs' ``alpha`` (zero for partition rows): the union of
    feasible solutions of disjoint problems is feasible, and a row that is both in a
    partition and among the fed-back support vectors keeps the fed-back value. When two
    solutions overlap, the one with the larger objective is the start.
    """
    sets = [p if isinstance(p, SVSet) else SVSet(p[0], p[1], p[2]) for p in parts]
    idx = np.concatenate([p.idx for p in sets])
    X = _stack([p.X for p in sets])
    y = np.concatenate([p.y for p in sets])
    warm = [p for p in sets if p.alpha is not None]
    if len(warm) > 1 and len(np.unique(np.concatenate([p.idx for p in warm]))) < sum(len(p.idx) for p in warm):
        # Overlapping solutions (siblings in a feedback pass both hold the fed-back rows): their
        # sum is not feasible, so start from the better one alone.
        best = max(warm, key=lambda p: p.objective if np.isfinite(p.objective) else -np.inf)
        warm = [best]
    alpha = np.concatenate([p.alpha if any(p is w for w in warm) else np.zeros(len(p.idx)) for p in sets])
    idx, first, inverse = np.unique(idx, return_index=True, return_inverse=True)
    if len(first) != X.shape[0] or np.any(first != np.arange(len(first))):
        X, y = X[first], y[first]
        merged = np.zeros(len(idx))
        np.add.at(merged, inverse, alpha)
        alpha = merged
    classes = np.unique(y)
    if len(classes) < 2:
        # One class cannot be separated here; all its rows move up to meet the other classes.
        return SVSet(idx, X, y, alpha=alpha, n_train=len(idx), objective=0.0)
    start = time.perf_counter()
    n = len(idx)
    if params["binary"] and params["solver"] == "smo" or (
            params["binary"] and params["solver"] == "auto" and 8 * n * n <= params["kernel_bytes"]):
        alpha, intercept, objective = _solve_smo(X, y, alpha, params["positive"], params, svc_options)
        sv = np.flatnonzero(alpha > 0)
        elapsed = time.perf_counter() - start
        signs = np.where(y[sv] == params["positive"], 1.0, -1.0)
        return SVSet(idx[sv], X[sv], y[sv], alpha=alpha[sv], n_train=n, objective=objective,
                     solve_time=elapsed, intercept=intercept, dual_coef=(signs * alpha[sv])[None, :])
    from sklearn.svm import SVC

    model = SVC(C=params["C"], kernel=params["kernel"], gamma=params["gamma"], degree=params["degree"],
                coef0=params["coef0"], **svc_options).fit(X, y)
    elapsed = time.perf_counter() - start
    sv = model.support_
    kernel = {k: params[k] for k in ("kernel", "gamma", "degree", "coef0")}
    if params["binary"]:
        objective = dual_objective(model.support_vectors_, model.dual_coef_, kernel)
        alpha_sv = np.abs(model.dual_coef_[0])
    else:
        objective, alpha_sv = float("nan"), None
    return SVSet(idx[sv], X[sv], y[sv], alpha=alpha_sv, n_train=n, objective=objective, solve_time=elapsed,
                 intercept=float(model.intercept_[0]) if params["binary"] else float("nan"),
                 dual_coef=model.dual_coef_, model=model if keep_model else None)


def _layers(leaves: list, train: Callable) -> list[list]:
    """Merge sibling nodes up a binary tree: the list of layers, leaves first."""
    layers = [leaves]
    while len(layers[-1]) > 1:
        below, above = layers[-1], []
        for i in range(0, len(below) - 1, 2):
            above.append(train([below[i], below[i + 1]], keep_model=len(below) <= 2))
        if len(below) % 2:
            above.append(below[-1])
        layers.append(above)
    return layers


def cascade_svm(X: Any, y: np.ndarray, labels: np.ndarray, *, C: float = 1.0, kernel: str = "rbf",
                gamma: float = 1.0, degree: int = 3, coef0: float = 0.0, max_passes: int = 3,
                solver: str = "auto", svc_options: dict | None = None,
                callback: Callable | None = None, checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 1,
                resume: bool = False, random_state: int | None = None) -> CascadeResult:
    """Cascade SVM over row blocks.

    Parameters
    ----------
    X : dask array (dense or CSR blocks), row-chunked only, or an in-memory array / CSR matrix
    y : ndarray of the labels (on the client)
    labels : ndarray of int, the partition of each row (0..P-1)
    C, kernel, gamma, degree, coef0 : the SVM (gamma already a number)
    max_passes : int
        Passes of the cascade (the first, then feedback passes).
    solver : {"auto", "smo", "libsvm"}
        The node solver. "smo" (binary problems only) computes the node's kernel matrix with
        BLAS and runs libsvm's SMO on it in numba, starting from the children's dual
        variables; "libsvm" is :class:`sklearn.svm.SVC`; "auto" is "smo" for binary nodes
        whose kernel matrix fits in ``daskpml.svm.kernel-bytes`` and "libsvm" otherwise.
    svc_options : dict
        Further :class:`sklearn.svm.SVC` options for every node (``tol``, ``cache_size``).
    callback : callable(record) -> bool, optional
        Called after each pass with the history row of its top node (``iteration``: the pass,
        ``layer``, ``n_support``, ``objective``, ``time``, ``rounds``, ...) and the top node's
        support-vector set under ``top``; returning True stops.
    random_state : None or int
        The seed that drew ``labels``, recorded in the snapshots so that a resume can draw the
        same partition.
    checkpoint, checkpoint_every, resume :
        A directory (str or os.PathLike) for a snapshot after every
        ``checkpoint_every`` passes that another pass follows: the top node's support vectors
        (rows, labels, dual variables) that the next pass feeds back, and the history.
        ``resume=True`` runs the passes after the newest snapshot; the result equals the
        uninterrupted run's. The partition ``labels`` must be the same (their checksum is
        compared); ``random_state``, the seed that drew them, is recorded so a resume can draw them
        again.

    Returns
    -------
    CascadeResult

    Examples
    --------
    >>> X = np.random.default_rng(0).standard_normal((200, 2)); y = (X[:, 0] > 0).astype(int)
    >>> res = cascade_svm(X, y, np.arange(200) % 2, C=1.0, gamma=0.5)
    >>> res.n_passes >= 1, res.top.X.shape[1]
    (True, 2)
    """
    n_parts = int(labels.max()) + 1
    classes = np.unique(y)
    if solver not in ("auto", "smo", "libsvm"):
        raise ValueError(f"solver must be 'auto', 'smo' or 'libsvm', got {solver!r}.")
    if solver == "smo" and len(classes) != 2:
        raise ValueError(f"solver='smo' solves binary problems, but y has {len(classes)} classes; use "
                         "solver='libsvm' or 'auto'.")
    params = dict(C=float(C), kernel=kernel, gamma=float(gamma), degree=int(degree), coef0=float(coef0),
                  solver=solver, binary=len(classes) == 2, positive=classes[-1],
                  kernel_bytes=int(_config.get("svm.kernel-bytes")))
    svc_options = dict(svc_options or {})
    ckpt = Checkpoint(checkpoint, every=checkpoint_every, resume=resume)
    ckpt.describe("cascade_svm", params={k: params[k] for k in ("C", "kernel", "gamma", "degree", "coef0", "solver")}
                  | {"node_tol": svc_options.get("tol")},       # (cache_size changes no result)
                  data={"n_samples": int(X.shape[0]), "n_features": int(X.shape[1]), "n_partitions": n_parts,
                        "labels_crc32": zlib.crc32(np.unique(y, return_inverse=True)[1].astype(np.int64).tobytes()),
                        "partition_crc32": zlib.crc32(np.ascontiguousarray(labels, dtype=np.int64).tobytes())})
    ckpt.watch(X=X, y=y)
    snap = ckpt.restore(like=np.empty(0))
    pieces_of = _Pieces(X, y, labels, n_parts)
    pieces = pieces_of()

    recorder = HistoryRecorder(callback=callback)
    previous: np.ndarray | None = None
    top: SVSet | None = None
    converged = False
    first = 1
    if snap is not None:                  # the support vectors the next pass feeds back
        rows = dask.compute(snap.blocks["support_rows"][0])[0]
        top = SVSet(snap.arrays["idx"], rows, snap.arrays["y"], alpha=snap.arrays.get("alpha"))
        previous = np.sort(top.idx)
        # snapshots written before the one recorder named the pass column pass_
        recorder.resume([{("pass" if k == "pass_" else k): v for k, v in row.items()} for row in snap.rows()])
        first = snap.iteration + 1
    n_pass = first - 1
    for n_pass in range(first, max_passes + 1):
        def train(parts, keep_model=False):
            return dask.delayed(_train_node, pure=True)(parts, params, svc_options, keep_model)

        feedback = [] if top is None else [dask.delayed(SVSet(top.idx, top.X, top.y, alpha=top.alpha),
                                                        pure=False)]
        for attempt in range(2):
            leaves = [train(list(pieces[p]) + feedback, keep_model=n_parts == 1) for p in range(n_parts)]
            layers = _layers(leaves, train)
            stats = [[dask.delayed(_node_stats)(node) for node in layer] for layer in layers[:-1]]
            try:
                stats, top = dask.compute(stats, layers[-1][0])
                break
            except (CancelledError, KilledWorker) as exc:
                if attempt or not pieces_of.in_memory:
                    raise WorkerLostError(
                        f"a worker died during pass {n_pass} of the cascade and the partitions' rows it held "
                        "were lost; fit again (on the workers now present)") from exc
                pieces = pieces_of()          # scatter the rows again from memory and redo the pass
        elapsed = recorder.elapsed()
        current = np.sort(top.idx)
        converged = previous is not None and np.array_equal(current, previous)
        previous = current
        layers_stats = stats + [[_node_stats(top)]]
        for depth, layer in enumerate(layers_stats):       # one row per layer; the callback sees the top's
            asked = recorder.record(n_pass, {"top": top}, notify=depth == len(layers_stats) - 1,
                                    **{"pass": n_pass}, layer=depth, n_nodes=len(layer),
                                    n_train=sum(s[0] for s in layer), n_support=sum(s[1] for s in layer),
                                    objective=sum(s[2] for s in layer), solve_time=max(s[3] for s in layer),
                                    time=elapsed, rounds=n_pass)
        if converged or asked:
            break
        if n_pass < max_passes and ckpt.due(n_pass):
            arrays = {"idx": top.idx, "y": top.y} | ({} if top.alpha is None else {"alpha": top.alpha})
            ckpt.save(n_pass, arrays=arrays,
                      blocks={"support_rows": [top.X]}, history=recorder.columns(), state={"seed": random_state})
    settings = {k: params[k] for k in ("C", "kernel", "gamma", "degree", "coef0", "solver")}
    history = recorder.to_xarray(attrs=dict(n_partitions=n_parts, converged=int(converged), **settings))
    return CascadeResult(top=top, model=top.model, support=top.idx, objective=top.objective, n_passes=n_pass,
                         converged=converged, history=history)


class _Pieces:
    """Each partition's rows, persisted where they were made. In-memory data are cut into
    row blocks and scattered to a connected cluster; calling again scatters them again
    (after a worker holding some of them died)."""

    def __init__(self, X: Any, y: np.ndarray, labels: np.ndarray, n_parts: int) -> None:
        self.X, self.y, self.labels, self.n_parts = X, y, labels, n_parts
        self.in_memory = not hasattr(X, "__dask_graph__")

    def __call__(self) -> tuple:
        X, y, labels, n_parts = self.X, self.y, self.labels, self.n_parts
        if not self.in_memory:
            blocks, rows = list(X.to_delayed().ravel()), X.chunks[0]
        else:
            rows = _row_chunks(X.shape[0])
            bounds = np.concatenate([[0], np.cumsum(rows)])
            blocks = [X[bounds[b]:bounds[b + 1]] for b in range(len(rows))]
            client = scatter_client()
            if client is not None:
                blocks = client.scatter(blocks, hash=False)
        offsets = np.concatenate([[0], np.cumsum(rows)])
        split = [dask.delayed(_pieces_of_block, nout=None, pure=True)(
            blocks[b], y[offsets[b]:offsets[b + 1]], int(offsets[b]), labels[offsets[b]:offsets[b + 1]], n_parts)
            for b in range(len(blocks))]
        pieces = [[dask.delayed(getitem, pure=True)(split[b], p) for b in range(len(blocks))]
                  for p in range(n_parts)]
        return dask.persist(*pieces)


def _row_chunks(n: int) -> tuple[int, ...]:
    parts = max(1, min(n, 2 * total_threads()))
    base, extra = divmod(n, parts)
    return tuple(base + (1 if i < extra else 0) for i in range(parts))


def _node_stats(node: SVSet) -> tuple[int, int, float, float]:
    return node.n_train, len(node.idx), node.objective, node.solve_time


def default_partitions(n_samples: int, threads: int, min_rows: int = 500) -> int:
    """A power of two at least twice the thread count, with at least ``min_rows`` rows each."""
    want = 2 ** math.ceil(math.log2(max(2, 2 * threads)))
    while want > 1 and n_samples / want < min_rows:
        want //= 2
    return want
