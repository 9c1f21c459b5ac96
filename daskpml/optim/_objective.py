"""The data-parallel objective: per-chunk loss and gradient, summed by a tree reduction.

``F(theta) = (1/n) sum_i loss(x_i @ W + b, y_i) + lam * penalty(W)`` with the
parameters packed in one flat host vector ``theta = [W.ravel(), b]``.

Every evaluation is one *round*: each row chunk computes its summed loss and
gradient in one sweep over its rows (dense blocks in cache-sized sub-blocks so
that ``X_b @ W`` and ``X_b.T @ dz`` read the sub-block once from memory), the
per-chunk vectors are summed up a tree with fan-in ``daskpml.optim.split-every``
(the all-reduce), and the sum, ``|theta| + 1`` numbers, reaches the client.
The only materialization point of a round is that one ``compute``.

Communication per round, with ``|W|`` the parameter bytes and ``P`` chunks:
broadcast of ``theta`` to the ``P`` chunk tasks (``P |W|``) and the reduction
tree (``P - 1`` partial sums of ``|W| + 8`` bytes, plus the result to the client).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import dask
import numpy as np
from dask import delayed

from .. import _config
from .._blocks import tree_sum
from ..backend import get_namespace, is_sparse, to_numpy
from ._families import Family, Penalty


def pack(W: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """Flat parameter vector from coefficients ``W`` (d x K) and intercepts ``b`` (K,).

    Parameters
    ----------
    W : numpy.ndarray
        Weights (d x k), or (d,) for one output.
    b : numpy.ndarray, optional
        Intercepts (k,).

    Returns
    -------
    theta : numpy.ndarray
        ``[W.ravel(), b]``.

    Examples
    --------
    >>> pack(np.array([[1.0], [2.0]]), np.array([3.0])).tolist()
    [1.0, 2.0, 3.0]
    """
    parts = [np.asarray(W, dtype=np.float64).ravel()]
    if b is not None:
        parts.append(np.asarray(b, dtype=np.float64).ravel())
    return np.concatenate(parts)


@dataclass(frozen=True)
class Layout:
    """How ``theta`` splits into ``W`` (n_features x n_outputs) and the intercepts.

    Parameters
    ----------
    n_features : int
        Number of features.
    n_outputs : int
        Number of outputs (classes for the multinomial loss, else 1).
    fit_intercept : bool, default True
        Fit an unpenalized intercept.

    Examples
    --------
    >>> Layout(3, 2, True).size          # 3 x 2 weights and 2 intercepts
    8
    """

    n_features: int
    n_outputs: int
    fit_intercept: bool

    @property
    def size(self) -> int:
        return self.n_features * self.n_outputs + (self.n_outputs if self.fit_intercept else 0)

    def unpack(self, theta: Any) -> tuple[Any, Any]:
        m = self.n_features * self.n_outputs
        W = theta[:m].reshape(self.n_features, self.n_outputs)
        b = theta[m:] if self.fit_intercept else None
        return W, b

    def coef_mask(self) -> np.ndarray:
        mask = np.zeros(self.size, dtype=bool)
        mask[: self.n_features * self.n_outputs] = True
        return mask


def _sub_rows(X: Any) -> int:
    if is_sparse(X):
        return max(X.shape[0], 1)
    if get_namespace(X)[0] is not np:       # accelerators want whole blocks
        return max(X.shape[0], 1)
    row_bytes = max(X.shape[1], 1) * X.dtype.itemsize
    return max(64, int(_config.get("optim.sub-block-bytes")) // row_bytes)


def _params_like(theta: np.ndarray, X: Any, layout: Layout) -> tuple[Any, Any]:
    xp = get_namespace(X)[0]
    dtype = X.dtype if np.dtype(X.dtype).kind == "f" else np.float64
    W, b = layout.unpack(xp.asarray(theta, dtype=dtype))
    return W, b


def _linear(Xb: Any, W: Any, b: Any) -> Any:
    z = Xb @ W
    if b is not None:
        z = z + b
    return z


def chunk_loss_grad(X: Any, y: Any, theta: np.ndarray, family: Family, layout: Layout) -> Any:
    """``[sum loss, d/dW (flat), d/db]`` over the rows of one chunk, in one sweep.

    Parameters
    ----------
    X : array
        One chunk's rows (n_i x d).
    y : array
        Its targets.
    theta : numpy.ndarray
        Packed parameters ``[W.ravel(), b]``.
    family : Family
        The loss.
    layout : Layout
        How ``theta`` packs the weights and intercepts.

    Returns
    -------
    out : numpy.ndarray
        ``[sum of the losses, gradient (flat)]`` (1 + theta's size).

    Examples
    --------
    >>> from daskpml.optim import get_family
    >>> X = np.array([[1.0], [2.0]]); y = np.array([1.0, 2.0])
    >>> chunk_loss_grad(X, y, np.array([1.0, 0.0]), get_family("squared"), Layout(1, 1, True)).tolist()
    [0.0, 0.0, 0.0]
    """
    xp = get_namespace(X)[0]
    W, b = _params_like(theta, X, layout)
    loss = 0.0
    gW = xp.zeros(W.shape, dtype=W.dtype)
    gb = xp.zeros(layout.n_outputs, dtype=W.dtype)
    step = _sub_rows(X)
    single = layout.n_outputs == 1           # matrix-vector products for one output
    W1, g1 = (W[:, 0], gW[:, 0]) if single else (W, gW)
    for s in range(0, X.shape[0], step):
        Xb = X[s:s + step]
        z = Xb @ W1
        if b is not None:
            z += b
        l, dz = family.loss_dz(z[:, None] if single else z, y[s:s + step])
        loss += float(l)
        g1 += Xb.T @ (dz[:, 0] if single else dz)
        gb += dz.sum(axis=0)
    out = np.empty(layout.size + 1)
    out[0] = loss
    out[1:1 + gW.size] = to_numpy(gW).ravel()
    if layout.fit_intercept:
        out[1 + gW.size:] = to_numpy(gb)
    return out


def chunk_loss(X: Any, y: Any, theta: np.ndarray, family: Family, layout: Layout) -> np.ndarray:
    W, b = _params_like(theta, X, layout)
    step = _sub_rows(X)
    total = sum(float(family.loss(_linear(X[s:s + step], W, b), y[s:s + step]))
                for s in range(0, X.shape[0], step))
    return np.array([total])


def chunk_hvp(X: Any, y: Any, theta: np.ndarray, v: np.ndarray, family: Family, layout: Layout) -> np.ndarray:
    """``X.T @ (curvature(z) * (X @ V + c))`` over one chunk (the loss Hessian times ``v``)."""
    xp = get_namespace(X)[0]
    W, b = _params_like(theta, X, layout)
    V, c = _params_like(v, X, layout)
    hW = xp.zeros(W.shape, dtype=W.dtype)
    hb = xp.zeros(layout.n_outputs, dtype=W.dtype)
    step = _sub_rows(X)
    for s in range(0, X.shape[0], step):
        Xb = X[s:s + step]
        r = family.hess_dz(_linear(Xb, W, b), y[s:s + step], _linear(Xb, V, c))
        hW += Xb.T @ r
        hb += r.sum(axis=0)
    out = np.empty(layout.size)
    out[:hW.size] = to_numpy(hW).ravel()
    if layout.fit_intercept:
        out[hW.size:] = to_numpy(hb)
    return out


def chunk_losses(X: Any, y: Any, thetas: np.ndarray, family: Family, layout: Layout) -> np.ndarray:
    """Summed loss of one chunk at each row of ``thetas`` (K x size), in one sweep:
    single-output models are stacked into one ``d x K`` product."""
    thetas = np.atleast_2d(thetas)
    if layout.n_outputs != 1:
        return np.array([chunk_loss(X, y, t, family, layout)[0] for t in thetas])
    xp = get_namespace(X)[0]
    dtype = X.dtype if np.dtype(X.dtype).kind == "f" else np.float64
    d = layout.n_features
    W = xp.asarray(np.ascontiguousarray(thetas[:, :d].T), dtype=dtype)
    b = xp.asarray(thetas[:, d], dtype=dtype) if layout.fit_intercept else None
    out = np.zeros(len(thetas))
    step = _sub_rows(X)
    for s in range(0, X.shape[0], step):
        Z = _linear(X[s:s + step], W, b)
        yb = y[s:s + step]
        for k in range(len(thetas)):
            out[k] += float(family.loss(Z[:, k:k + 1], yb))
    return out


@dataclass
class Comm:
    """Communication counters of an objective (cumulative)."""

    rounds: int = 0
    bytes: int = 0

    def add(self, nbytes: int) -> None:
        self.rounds += 1
        self.bytes += nbytes


@dataclass(frozen=True)
class Spec:
    """The small, picklable description of the objective that tasks carry."""

    family: Family
    penalty: Penalty
    lam: float
    layout: Layout

    @property
    def mask(self) -> np.ndarray:
        return self.layout.coef_mask()

    def smooth_grad(self, theta: np.ndarray) -> np.ndarray:
        """Gradient of the smooth part of ``lam * penalty`` (zero on the intercept)."""
        g = np.zeros_like(theta)
        mask = self.mask
        g[mask] = self.lam * self.penalty.smooth_grad(theta[mask])
        return g

    def prox(self, theta: np.ndarray, step: float, part: tuple[int, int] | None = None) -> np.ndarray:
        """Proximal step of the L1 part on the coefficients (the intercept is not penalized).
        ``part=(lo, hi)``: ``theta`` is the slice ``lo:hi`` of the parameters (a server shard)."""
        if self.penalty.l1 == 0.0 or self.lam == 0.0:
            return theta
        out = theta.copy()
        mask = self.mask if part is None else self.mask[part[0]:part[1]]
        out[mask] = self.penalty.prox(theta[mask], step * self.lam)
        return out


class Objective:
    """The regularized objective over in-memory arrays or row-chunked dask collections.

    Parameters
    ----------
    X : dask array (row chunks, one feature chunk) / CSRMatrix, or an in-memory array
    y : encoded targets with the same row chunks (float, or class indices)
    family, penalty : loss and penalty; ``lam`` scales the penalty
    lam : float
        Strength of the penalty.
    layout : parameter layout
    split_every : int, optional
        Fan-in of the tree (default ``daskpml.optim.split-every``).

    Examples
    --------
    >>> import numpy as np
    >>> from daskpml.optim import get_family, get_penalty
    >>> X = np.ones((4, 2)); y = np.arange(4.0)
    >>> f = Objective(X, y, get_family("squared"), get_penalty("l2"), 0.1, Layout(2, 1, True))
    >>> f.n_samples
    4
    """

    def __init__(self, X: Any, y: Any, family: Family, penalty: Penalty, lam: float, layout: Layout,
                 *, split_every: int | None = None) -> None:
        self.family, self.penalty, self.lam, self.layout = family, penalty, float(lam), layout
        self.spec = Spec(family, penalty, float(lam), layout)
        self.n_samples = int(X.shape[0])
        self.distributed = hasattr(X, "__dask_graph__")
        self.split_every = split_every
        self.comm = Comm()
        self.mask = layout.coef_mask()
        self.data = {"X": X, "y": y}          # what a checkpoint fingerprints
        self.collections: tuple = ()
        if self.distributed:
            self.collections = (X, y)          # persisted: their futures place the async tasks
            xblocks = X.blocks.to_delayed().ravel() if hasattr(X, "row_offsets") else X.to_delayed().ravel()
            self._blocks = list(zip(xblocks, y.to_delayed().ravel()))
            self.row_chunks = tuple(int(c) for c in (X.row_chunks if hasattr(X, "row_offsets") else X.chunks[0]))
        else:
            self.row_chunks = (self.n_samples,)
            self._blocks = [(X, y)]
        self.n_chunks = len(self._blocks)

    # -- rounds ---------------------------------------------------------------------------
    def _reduce(self, kernel: Any, *args: Any, count: bool = True) -> np.ndarray:
        if not self.distributed:
            X, y = self._blocks[0]
            out = kernel(X, y, *args)
            edges = 0
        else:
            parts = [delayed(kernel, pure=True)(Xb, yb, *args) for Xb, yb in self._blocks]
            root, edges = tree_sum(parts, self.split_every)
            (out,) = dask.compute(root, optimize_graph=False)
        if count:
            sent = sum(a.nbytes for a in args if isinstance(a, np.ndarray))
            self.comm.add(self.n_chunks * sent + (edges + 1) * out.nbytes)
        return out

    # -- the objective ------------------------------------------------------------------
    def _coef(self, theta: np.ndarray) -> np.ndarray:
        return theta[self.mask]

    def penalty_value(self, theta: np.ndarray) -> float:
        return self.lam * self.penalty.value(self._coef(theta))

    def value_grad(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        """Smooth part of the objective (loss and L2 part of the penalty) and its gradient."""
        out = self._reduce(chunk_loss_grad, theta, self.family, self.layout)
        w = self._coef(theta)
        f = out[0] / self.n_samples + self.lam * self.penalty.smooth_value(w)
        g = out[1:] / self.n_samples
        g[self.mask] += self.lam * self.penalty.smooth_grad(w)
        return float(f), g

    def monitor(self, theta: np.ndarray) -> tuple[float, float]:
        """Full objective and gradient max-norm for the history of stochastic solvers
        (a round that is not counted as the solver's communication)."""
        out = self._reduce(chunk_loss_grad, theta, self.family, self.layout, count=False)
        w = self._coef(theta)
        f = out[0] / self.n_samples + self.lam * self.penalty.smooth_value(w)
        g = out[1:] / self.n_samples
        g[self.mask] += self.lam * self.penalty.smooth_grad(w)
        if self.penalty.l1 and self.lam:        # minimal-norm subgradient
            gw = g[self.mask]
            t = self.lam * self.penalty.l1
            sub = np.where(w != 0, gw + t * np.sign(w), np.sign(gw) * np.maximum(np.abs(gw) - t, 0.0))
            g[self.mask] = sub
        return self.total(float(f), theta), float(np.max(np.abs(g))) if g.size else 0.0

    def value(self, theta: np.ndarray) -> float:
        """Smooth part of the objective only (one round, no gradient)."""
        out = self._reduce(chunk_loss, theta, self.family, self.layout)
        return float(out[0] / self.n_samples + self.lam * self.penalty.smooth_value(self._coef(theta)))

    def hvp(self, theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Hessian of the smooth part at ``theta`` times ``v`` (one round)."""
        if not self.family.smooth:
            self.family.hess_dz(None, None, None)        # raises the family's explanation
        out = self._reduce(chunk_hvp, theta, v, self.family, self.layout) / self.n_samples
        out[self.mask] += self.lam * self.penalty.l2 * v[self.mask]
        return out

    def prox(self, theta: np.ndarray, step: float) -> np.ndarray:
        """Proximal step of the L1 part on the coefficients (the intercept is not penalized)."""
        return self.spec.prox(theta, step)

    def total(self, f_smooth: float, theta: np.ndarray) -> float:
        """Full objective from its smooth part (adds the L1 part of the penalty)."""
        return f_smooth + self.lam * self.penalty.l1 * float(np.abs(self._coef(theta)).sum())
