"""Similarity graphs of points, computed block by block.

``X`` (n x d) is split into row blocks. For query block ``i`` the reference
blocks ``j = 0..P-1`` are visited in turn and a *running top-k* (distances and
global indices of the k nearest so far) is carried from one to the next, so a
task holds one query block, one reference block and ``n_i x k`` candidates:
never an ``n x n`` matrix. Within a pair, distances come from a matrix product
(``|x|^2 - 2 x.y + |y|^2``, ``algorithm="brute"``), computed over query slices
of bounded size, or from a k-d tree (``algorithm="kd_tree"``,
:class:`scipy.spatial.cKDTree`; exact, far fewer operations for low
dimensions). Ties between equal distances go to the smaller index, so the
result does not depend on the blocks.

Trees are built over *groups* of consecutive row blocks of up to
``daskpml.graph.tree-bytes`` of points (one group, one tree for most data
that fits a worker), because a k-d tree query costs far less than P queries
on P trees of 1/P the points. A query block searches its own group first;
every later group is searched only within the k-th distance found so far
(scalar bounds on groups of query rows sorted by that distance), so far
groups cost little.

Communication: every reference block (or tree) is read by every query block
(P^2 pairs, O(n d P) bytes moved in all); the candidates stay with their
query block.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from .. import _config
from .._blocks import as_points
from ..backend import get_namespace, to_numpy
from ..sparse import CSRMatrix, from_block_graph
from ..validation import Interval, Options, validate_params

Mode = Literal["connectivity", "distance", "gaussian"]
MODES = ("connectivity", "distance", "gaussian")
SYMMETRIZE = ("mean", "max", None)
#: Entries of one query-slice x reference-block distance matrix.
SLICE_ENTRIES = 4_000_000


def _sq_norms(x: Any) -> Any:
    return (x * x).sum(axis=1)


def sq_distances(x: Any, y: Any, x_sq: Any = None, y_sq: Any = None) -> Any:
    """Squared Euclidean distances ``|x|^2 - 2 x.y + |y|^2`` (rows of x by rows of y), clipped at 0.

        One matrix product; ``x_sq`` / ``y_sq`` are the row norms when already known.

        Parameters
        ----------
        x : array
            Rows (m x d), NumPy or CuPy.
        y : array
            Rows (p x d).
        x_sq, y_sq : array, optional
            Squared row norms of ``x`` and ``y``.

        Returns
        -------
        array
            (m x p).

        Examples
        --------
        >>> sq_distances(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0], [1.0, 0.0]])).tolist()
        [[25.0, 1.0]]
    """
    xp, _ = get_namespace(x)
    x_sq = _sq_norms(x) if x_sq is None else x_sq
    y_sq = _sq_norms(y) if y_sq is None else y_sq
    d = x_sq[:, None] - 2.0 * (x @ y.T) + y_sq[None, :]
    xp.maximum(d, 0, out=d)
    return d


def _merge(dist: Any, idx: Any, new_dist: Any, new_idx: Any, k: int) -> tuple[Any, Any]:
    """The k smallest of the two candidate sets per row (ties: smaller index first)."""
    xp, _ = get_namespace(dist)
    d = xp.concatenate([dist, new_dist], axis=1)
    i = xp.concatenate([idx, new_idx], axis=1)
    order = np.lexsort((to_numpy(i), to_numpy(d)), axis=-1)[:, :k]
    order = xp.asarray(order)
    return xp.take_along_axis(d, order, axis=1), xp.take_along_axis(i, order, axis=1)


def _brute_pair(xq: Any, xr: Any, offset: int, k: int, self_offset: int | None) -> tuple[Any, Any]:
    """Top-k squared distances of each query row within one reference block (matrix products)."""
    xp, _ = get_namespace(xq)
    kk = min(k, xr.shape[0])
    rn = _sq_norms(xr)
    step = max(1, SLICE_ENTRIES // max(xr.shape[0], 1))
    dists, idxs = [], []
    for s in range(0, xq.shape[0], step):
        q = xq[s:s + step]
        d = sq_distances(q, xr, y_sq=rn)
        if self_offset is not None:
            rows = xp.arange(q.shape[0])
            cols = rows + s + self_offset
            ok = (cols >= 0) & (cols < xr.shape[0])
            d[rows[ok], cols[ok]] = xp.inf
        part = xp.argpartition(d, kk - 1, axis=1)[:, :kk] if kk < d.shape[1] else xp.broadcast_to(
            xp.arange(d.shape[1]), d.shape).copy()
        dists.append(xp.take_along_axis(d, part, axis=1))
        idxs.append(part + offset)
    return xp.concatenate(dists), xp.concatenate(idxs)


#: Query rows are searched in this many groups of similar bound (k-th distance so far).
BOUND_GROUPS = 32


def _tree(*blocks: Any) -> Any:
    from scipy.spatial import cKDTree

    return cKDTree(np.concatenate([to_numpy(b) for b in blocks]) if len(blocks) > 1 else to_numpy(blocks[0]))


def _tree_pair(tree: Any, xq: Any, offset: int, k: int, self_offset: int | None,
               bound: Any = None) -> tuple[Any, Any]:
    """Top-k squared distances of each query row within one tree.

    ``bound`` (squared distances, one per query row) limits the search: rows
    are sorted by it and searched in :data:`BOUND_GROUPS` groups, each within
    its largest bound (cKDTree takes one scalar bound per call). Pairs beyond
    the bound come back as ``inf``.
    """
    xp, _ = get_namespace(xq)
    q = to_numpy(xq)
    extra = 1 if self_offset is not None else 0
    kk = min(k + extra, tree.n)
    # One more than needed: an equal (kk+1)-th distance reveals a tie at the boundary.
    kq = min(kk + 1, tree.n)
    if bound is None:
        d, i = tree.query(q, k=kq)
        d, i = d.reshape(len(q), kq), i.reshape(len(q), kq)
    else:
        # Slightly above the bound, so that a tie at the k-th distance is seen
        # (the smaller index wins it).
        bound = np.sqrt(to_numpy(bound)) * (1 + 1e-9) + 1e-150  # (squared inside the tree)
        d = np.empty((len(q), kq))
        i = np.empty((len(q), kq), dtype=np.intp)
        for rows in np.array_split(np.argsort(bound), min(BOUND_GROUPS, len(q))):
            if len(rows):
                dd, ii = tree.query(q[rows], k=kq, distance_upper_bound=float(bound[rows].max()))
                d[rows], i[rows] = dd.reshape(len(rows), kq), ii.reshape(len(rows), kq)
        i[~np.isfinite(d)] = -1
    if kq > kk:
        tied = np.flatnonzero(np.isfinite(d[:, kk]) & (d[:, kk] == d[:, kk - 1]))
        d, i = d[:, :kk].copy(), i[:, :kk].copy()
        for r in tied:  # the tree breaks ties arbitrarily: take every point as close, smallest indices
            near = np.asarray(tree.query_ball_point(q[r], d[r, -1] * (1 + 1e-12)), dtype=np.intp)
            dist = np.sqrt(((tree.data[near] - q[r]) ** 2).sum(axis=1))
            best = np.lexsort((near, dist))[:kk]
            d[r], i[r] = dist[best], near[best]
    d = d * d
    if self_offset is not None:
        own = np.arange(len(q))[:, None] + self_offset
        d = np.where(i == own, np.inf, d)
    return xp.asarray(d), xp.asarray(np.where(i >= 0, i + offset, -1))


def _fold(state: Any, xq: Any, ref: Any, offset: int, k: int, self_offset: int | None,
          brute: bool) -> tuple[Any, Any]:
    if brute:
        new = _brute_pair(xq, ref, offset, k, self_offset)
    else:
        full = state is not None and state[0].shape[1] == k
        new = _tree_pair(ref, xq, offset, k, self_offset, bound=state[0][:, -1] if full else None)
    if state is None:
        return _merge(new[0][:, :0], new[1][:, :0], new[0], new[1], k)
    return _merge(state[0], state[1], new[0], new[1], k)


def _finish(state: tuple, part: int) -> Any:
    d, i = state
    if part == 0:
        xp, _ = get_namespace(d)
        return xp.sqrt(d)
    return i


def kneighbors(X: Any, n_neighbors: int = 10, *, include_self: bool = False,
               algorithm: Literal["auto", "brute", "kd_tree"] = "auto") -> tuple[da.Array, da.Array]:
    """Distances and indices of the ``n_neighbors`` nearest rows of ``X`` to each row.

        Without ``include_self`` a point is not its own neighbour (as scikit-learn's ``kneighbors()``
        without a query); duplicates of it are.

        Parameters
        ----------
        X : array-like or dask array
            Points (n x d), dense.
        n_neighbors : int, default 10
            Neighbours per point.
        include_self : bool, default False
            Count each point as its own nearest neighbour.
        algorithm : {"auto", "brute", "kd_tree"}, default "auto"
            Matrix products over bounded slices, or k-d trees over groups of row blocks; "auto"
            uses the k-d tree for at most 15 features.

        Returns
        -------
        distances : dask.array.Array
            (n x k), rows sorted by distance (ties: smaller index first), chunked like ``X``'s rows.
        indices : dask.array.Array
            (n x k) int64.

        Examples
        --------
        >>> d, i = kneighbors(np.array([[0.0], [1.0], [3.0]]), 1)
        >>> i.compute().ravel().tolist(), d.compute().ravel().tolist()
        ([1, 0, 1], [1.0, 1.0, 2.0])
    """
    X = as_points(X)
    n = X.shape[0]
    k = _check_k(n_neighbors, n, include_self)
    if algorithm not in ("auto", "brute", "kd_tree"):
        raise ValueError(f"algorithm must be 'auto', 'brute' or 'kd_tree', got {algorithm!r}.")
    brute = algorithm == "brute" or (algorithm == "auto" and X.shape[1] > 15)
    X = X.astype(np.result_type(X.dtype, np.float64)) if X.dtype.kind != "f" else X
    rows = X.chunks[0]
    offsets = np.concatenate([[0], np.cumsum(rows)]).astype(int)
    P = len(rows)
    # Reference groups: one per block (brute), or consecutive blocks up to tree-bytes (trees).
    groups = [[j] for j in range(P)] if brute else _tree_groups(rows, X.shape[1] * X.dtype.itemsize)
    token = tokenize(X, k, include_self, brute, groups)
    tree, fold, out = f"knn-tree-{token}", f"knn-fold-{token}", f"knn-{token}"
    dsk: dict = {}
    if not brute:
        for g, members in enumerate(groups):
            dsk[(tree, g)] = (_tree, *[(X.name, j, 0) for j in members])
    group_of = {j: g for g, members in enumerate(groups) for j in members}
    for i in range(P):
        state = None
        own = group_of[i]
        # The own group first: its candidates bound the search of the others.
        for g in [own, *(g for g in range(len(groups)) if g != own)]:
            start = int(offsets[groups[g][0]])
            ref = (X.name, g, 0) if brute else (tree, g)
            self_off = None if include_self or g != own else int(offsets[i]) - start
            dsk[(fold, i, g)] = (_fold, state, (X.name, i, 0), ref, start, k, self_off, brute)
            state = (fold, i, g)
        dsk[(out + "-d", i, 0)] = (_finish, state, 0)
        dsk[(out + "-i", i, 0)] = (_finish, state, 1)
    xp, _ = get_namespace(X)
    dist_layer = {key: v for key, v in dsk.items() if key[0] != out + "-i"}
    graph_d = HighLevelGraph.from_collections(out + "-d", dist_layer, dependencies=[X])
    graph_i = HighLevelGraph.from_collections(out + "-i", dsk, dependencies=[X])
    dist = da.Array(graph_d, out + "-d", chunks=(rows, (k,)), meta=xp.empty((0, 0), X.dtype))
    idx = da.Array(graph_i, out + "-i", chunks=(rows, (k,)), meta=xp.empty((0, 0), np.int64))
    return dist, idx


def _tree_groups(rows: tuple[int, ...], row_bytes: int) -> list[list[int]]:
    """Consecutive row blocks, grouped up to ``daskpml.graph.tree-bytes`` of points per tree."""
    limit = int(_config.get("graph.tree-bytes"))
    groups: list[list[int]] = [[]]
    size = 0
    for j, r in enumerate(rows):
        if groups[-1] and size + r * row_bytes > limit:
            groups.append([])
            size = 0
        groups[-1].append(j)
        size += r * row_bytes
    return groups


def _check_k(n_neighbors: Any, n: int, include_self: bool) -> int:
    limit = n if include_self else n - 1
    if int(n_neighbors) != n_neighbors or not 1 <= n_neighbors <= limit:
        raise ValueError(
            f"n_neighbors must be an integer in [1, {limit}] for {n} points "
            f"({'including' if include_self else 'excluding'} the point itself), got {n_neighbors!r}."
        )
    return int(n_neighbors)


def _rows_to_csr(dist: Any, idx: Any, n_cols: int, mode: str, gamma: float) -> Any:
    xp, xsp = get_namespace(dist)
    rows, k = dist.shape
    if mode == "connectivity":
        values = xp.ones(rows * k, dtype=dist.dtype)
    elif mode == "distance":
        values = dist.ravel()
    else:
        values = xp.exp(-gamma * dist.ravel() ** 2)
    indptr = xp.arange(0, rows * k + 1, k)
    out = xsp.csr_matrix((values, idx.ravel(), indptr), shape=(rows, n_cols))
    out.sort_indices()
    return out


def _default_gamma(dist: da.Array) -> float:
    """``1 / (2 sigma^2)`` with sigma the mean distance to the k-th neighbour."""
    sigma = float(dist[:, -1].mean().compute())
    return 1.0 / (2.0 * sigma * sigma) if sigma > 0 else 1.0


MODES = ("connectivity", "distance", "gaussian")
GAMMA = [None, Interval(Real, 0, None, closed="neither")]


@validate_params({"n_neighbors": [Interval(Integral, 1, None)], "mode": [Options(*MODES)],
                  "symmetrize": [Options("mean", "max"), None], "gamma": GAMMA, "include_self": ["boolean"],
                  "algorithm": [Options("auto", "brute", "kd_tree")]})
def knn_graph(X: Any, n_neighbors: int = 10, *, mode: Mode = "connectivity",
              symmetrize: Literal["mean", "max"] | None = "mean", gamma: float | None = None,
              include_self: bool = False, algorithm: Literal["auto", "brute", "kd_tree"] = "auto") -> CSRMatrix:
    """k-nearest-neighbour graph of the rows of ``X`` as a distributed sparse matrix.

    Parameters
    ----------
    X : array (n, d), NumPy/CuPy or dask (chunked along rows only)
    n_neighbors : int
        Neighbours per point (``1 <= k <= n - 1``).
    mode : {"connectivity", "distance", "gaussian"}
        Stored value: 1, the distance, or ``exp(-gamma d^2)``.
    symmetrize : {"mean", "max", None}
        The directed graph ``G`` (row i holds i's neighbours) is made undirected
        as ``(G + G.T) / 2`` (scikit-learn's spectral clustering) or
        ``max(G, G.T)`` (the union), or returned as is with None (then it
        equals scikit-learn's ``kneighbors_graph``).
    gamma : float, optional
        Gaussian width for ``mode="gaussian"``; default ``1 / (2 sigma^2)``
        with sigma the mean distance to the k-th neighbour.
    include_self : bool
        Count each point as its own first neighbour.
    algorithm : {"auto", "brute", "kd_tree"}
        See :func:`kneighbors`.

    Returns
    -------
    CSRMatrix (n x n), row blocks as ``X``

    Examples
    --------
    >>> import numpy as np
    >>> from daskpml.graph import knn_graph
    >>> X = np.random.default_rng(0).normal(size=(500, 3))
    >>> G = knn_graph(X, 5)
    >>> G.shape, G.is_symmetric()
    ((500, 500), True)
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    if symmetrize not in SYMMETRIZE:
        raise ValueError(f"symmetrize must be 'mean', 'max' or None, got {symmetrize!r}.")
    dist, idx = kneighbors(X, n_neighbors, include_self=include_self, algorithm=algorithm)
    n = dist.shape[0]
    if mode == "gaussian" and gamma is None:
        dist, idx = dask.persist(dist, idx)
        gamma = _default_gamma(dist)
    blocks = da.map_blocks(_rows_to_csr, dist, idx, n, mode, float(gamma or 0.0), dtype=dist.dtype,
                           chunks=(dist.chunks[0], (n,)), meta=_csr_meta(dist))
    G = CSRMatrix(blocks)
    return _symmetrize(G, symmetrize)


def _csr_meta(like: Any) -> Any:
    from ..backend import sparse_meta

    return sparse_meta(like._meta, like.dtype)


def _symmetrize(G: CSRMatrix, how: str | None) -> CSRMatrix:
    if how is None:
        return G
    G = G.persist()
    if how == "mean":
        return ((G + G.T) * 0.5).persist()
    return G.maximum(G.T).persist()


def _radius_block(xq: Any, *refs_and_offsets: Any, radius: float, mode: str, gamma: float,
                  n_cols: int, self_offset: int, include_self: bool) -> Any:
    """Row block of an epsilon graph: pairs within ``radius``, by matrix products over slices."""
    xp, xsp = get_namespace(xq)
    refs = refs_and_offsets[0::2]
    offs = refs_and_offsets[1::2]
    r2 = radius * radius
    qn = _sq_norms(xq)
    rows_all, cols_all, vals_all = [], [], []
    for xr, off in zip(refs, offs):
        rn = _sq_norms(xr)
        step = max(1, SLICE_ENTRIES // max(xr.shape[0], 1))
        for s in range(0, xq.shape[0], step):
            d = sq_distances(xq[s:s + step], xr, qn[s:s + step], rn)
            r, c = xp.nonzero(d <= r2)
            if not include_self:
                keep = (r + s + self_offset) != (c + off)
                r, c = r[keep], c[keep]
            dd = d[r, c]
            rows_all.append(r + s)
            cols_all.append(c + off)
            vals_all.append(xp.ones_like(dd) if mode == "connectivity" else
                            xp.sqrt(dd) if mode == "distance" else xp.exp(-gamma * dd))
    out = xsp.coo_matrix((xp.concatenate(vals_all), (xp.concatenate(rows_all), xp.concatenate(cols_all))),
                         shape=(xq.shape[0], n_cols)).tocsr()
    out.sort_indices()
    return out


@validate_params({"radius": [Interval(Real, 0, None, closed="neither")], "mode": [Options(*MODES)], "gamma": GAMMA,
                  "include_self": ["boolean"]})
def epsilon_graph(X: Any, radius: float, *, mode: Mode = "connectivity", gamma: float | None = None,
                  include_self: bool = False) -> CSRMatrix:
    """Graph joining the points within ``radius`` of each other (symmetric by construction).

        Each row block compares itself with every block by matrix products over bounded slices.

        Parameters
        ----------
        X : array-like or dask array
            Points (n x d), dense.
        radius : float
            The largest distance joined.
        mode : {"connectivity", "distance", "gaussian"}, default "connectivity"
            Edge weights: 1, the distance, or ``exp(-gamma d^2)`` (as :func:`knn_graph`).
        gamma : float, optional
            Width of the ``"gaussian"`` weights (default ``1 / (2 (radius / 2)^2)``).
        include_self : bool, default False
            Keep each point's loop.

        Returns
        -------
        CSRMatrix
            The symmetric adjacency (n x n).

        Examples
        --------
        >>> X = np.random.default_rng(0).normal(size=(300, 2))
        >>> epsilon_graph(X, 0.3).is_symmetric()
        True
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    radius = float(radius)
    if not radius > 0 or not np.isfinite(radius):
        raise ValueError(f"radius must be a positive number, got {radius}.")
    X = as_points(X)
    n = X.shape[0]
    if mode == "gaussian" and gamma is None:
        gamma = 2.0 / (radius * radius)
    rows = X.chunks[0]
    offsets = np.concatenate([[0], np.cumsum(rows)]).astype(int)
    token = tokenize(X, radius, mode, gamma, include_self)
    name = f"epsilon-graph-{token}"
    from dask.utils import apply

    refs = []
    for j in range(len(rows)):
        refs += [(X.name, j, 0), int(offsets[j])]
    dsk = {}
    for i in range(len(rows)):
        kwargs = {"radius": radius, "mode": mode, "gamma": float(gamma or 0.0), "n_cols": n,
                  "self_offset": int(offsets[i]), "include_self": include_self}
        dsk[(name, i, 0)] = (apply, _radius_block, [(X.name, i, 0), *refs], kwargs)
    return from_block_graph(name, dsk, [X], rows, n, _csr_meta(X))


@validate_params({"gamma": [Interval(Real, 0, None, closed="neither")],
                  "threshold": [Interval(Real, 0, 1, closed="neither")], "n_neighbors": [None, Interval(Integral, 1, None)]})
def gaussian_graph(X: Any, *, gamma: float = 1.0, threshold: float = 1e-4,
                   n_neighbors: int | None = None) -> CSRMatrix:
    """Gaussian (RBF) affinity ``exp(-gamma |x - y|^2)``, sparsified.

        Entries below ``threshold`` are dropped: only pairs within ``sqrt(-log(threshold) / gamma)``
        are computed (:func:`epsilon_graph`). With ``n_neighbors`` the affinity is kept on the
        symmetrized k-nearest-neighbour graph instead. The diagonal (``exp(0) = 1``) is left out.

        Parameters
        ----------
        X : array-like or dask array
            Points (n x d), dense.
        gamma : float, default 1.0
            Width of the kernel.
        threshold : float, default 1e-4
            Smallest affinity kept.
        n_neighbors : int, optional
            Keep the affinity on the k-NN graph instead of thresholding.

        Returns
        -------
        CSRMatrix
            The symmetric affinity (n x n).

        Examples
        --------
        >>> W = gaussian_graph(np.array([[0.0], [0.5], [10.0]]), gamma=1.0)
        >>> W.to_scipy().toarray().round(3).tolist()
        [[0.0, 0.779, 0.0], [0.779, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    gamma = float(gamma)
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma}.")
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}.")
    if n_neighbors is not None:
        return knn_graph(X, n_neighbors, mode="gaussian", gamma=gamma, symmetrize="mean")
    radius = float(np.sqrt(-np.log(threshold) / gamma))
    return epsilon_graph(X, radius, mode="gaussian", gamma=gamma)
