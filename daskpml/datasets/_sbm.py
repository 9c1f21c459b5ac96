"""Stochastic block model graphs, generated row block by row block.

Nodes ``0..n-1`` belong to ``n_clusters`` planted communities (contiguous
ranges, or a seeded random assignment with ``shuffle=True``). An unordered
pair of nodes is an edge with probability ``p_in`` inside a community and
``p_out`` across communities, where

    p_in = in_degree / (n / n_clusters - 1),   p_out = out_degree / (n - n / n_clusters),

so that a node's expected number of neighbours in its own community is
``in_degree`` and outside it ``out_degree``.

How it scales: the rows are cut into P blocks. The edges between row blocks
``a <= b`` are drawn from their own random stream ``(seed, a, b)``: first at the
rate ``min(p_in, p_out)`` over all pairs, then the excess rate over the
in-community pairs (per community, vectorized) or over the cross pairs (by
rejection). Repeated draws of one pair are merged, so the realized edge
probability is ``1 - exp(-p)`` instead of ``p``: indistinguishable for sparse
graphs. The task that builds row block ``I`` redraws the streams of all pairs
``(min(I, J), max(I, J))``, keeping the edges with an end in ``I``, so blocks are
made in parallel with no exchange and the matrix is exactly symmetric.
"""

from __future__ import annotations

from typing import Any, Sequence

import dask.array as da
import numpy as np
import scipy.sparse as sp
from dask.base import tokenize

from ..backend import to_backend
from ..sparse import CSRMatrix, auto_row_chunks, from_block_graph
from .._random import PAIRS, PARAMS, block_rng, resolve_seed


def _sbm_labels(seed: int, sizes: tuple[int, ...], shuffle: bool) -> np.ndarray:
    labels = np.repeat(np.arange(len(sizes), dtype=np.int32), sizes)
    if shuffle:
        labels = labels[block_rng(seed, PARAMS).permutation(labels.shape[0])]
    return labels


def _community_index(labels: np.ndarray, n_clusters: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=n_clusters).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return order, counts, starts


def _pair_edges(labels: np.ndarray, bounds: np.ndarray, a: int, b: int, seed: int, n_clusters: int,
                p_in: float, p_out: float) -> tuple[np.ndarray, np.ndarray]:
    """Edges between row blocks a <= b: u in block a, v in block b (u < v when a == b)."""
    rng = block_rng(seed, PAIRS, a, b)
    a0, a1, b0, b1 = int(bounds[a]), int(bounds[a + 1]), int(bounds[b]), int(bounds[b + 1])
    na, nb = a1 - a0, b1 - b0
    base = min(p_in, p_out)
    count = rng.binomial(na * nb, base) if base > 0 else 0
    u = [a0 + rng.integers(0, na, count)]
    v = [b0 + rng.integers(0, nb, count)]
    la, lb = labels[a0:a1], labels[b0:b1]
    if p_in > p_out:
        order_a, counts_a, starts_a = _community_index(la, n_clusters)
        order_b, counts_b, starts_b = _community_index(lb, n_clusters)
        per_community = rng.binomial(counts_a * counts_b, p_in - p_out)
        comm = np.repeat(np.arange(n_clusters), per_community)
        u.append(a0 + order_a[starts_a[comm] + rng.integers(0, counts_a[comm])])
        v.append(b0 + order_b[starts_b[comm] + rng.integers(0, counts_b[comm])])
    elif p_out > p_in:
        count = rng.binomial(na * nb, p_out - p_in)
        uu, vv = rng.integers(0, na, count), rng.integers(0, nb, count)
        cross = la[uu] != lb[vv]
        u.append(a0 + uu[cross])
        v.append(b0 + vv[cross])
    u, v = np.concatenate(u), np.concatenate(v)
    if a == b:
        keep = u < v
        u, v = u[keep], v[keep]
    return u, v


def _sbm_block(labels: np.ndarray, i: int, bounds: np.ndarray, seed: int, n_clusters: int,
               p_in: float, p_out: float, dtype: Any) -> sp.csr_matrix:
    rows, cols = [], []
    for j in range(len(bounds) - 1):
        a, b = min(i, j), max(i, j)
        u, v = _pair_edges(labels, bounds, a, b, seed, n_clusters, p_in, p_out)
        if i == a:
            rows.append(u)
            cols.append(v)
        if i == b:
            rows.append(v)
            cols.append(u)
    r0, n = int(bounds[i]), int(bounds[-1])
    r = np.concatenate(rows) - r0
    c = np.concatenate(cols)
    index_dtype = np.int32 if n < 2**31 else np.int64
    block = sp.csr_matrix((np.ones(r.shape[0], dtype=dtype), (r.astype(index_dtype), c.astype(index_dtype))),
                          shape=(int(bounds[i + 1]) - r0, n))
    block.sum_duplicates()
    block.data[:] = 1
    return block


def _cluster_sizes(n_nodes: int, n_clusters: int, sizes: Sequence[int] | None) -> tuple[int, ...]:
    if sizes is not None:
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) != n_clusters or sum(sizes) != n_nodes or min(sizes) < 1:
            raise ValueError(f"sizes must be {n_clusters} positive ints adding up to {n_nodes}, got {sizes}.")
        return sizes
    base, extra = divmod(n_nodes, n_clusters)
    return tuple(base + (c < extra) for c in range(n_clusters))


def make_sbm(n_nodes: int = 1000, n_clusters: int = 4, *, in_degree: float = 8.0, out_degree: float = 2.0,
             sizes: Sequence[int] | None = None, shuffle: bool = False, chunks: Any = "auto",
             dtype: Any = np.float64, random_state: Any = None,
             backend: str | None = None) -> tuple[CSRMatrix, da.Array]:
    """Symmetric 0/1 adjacency of a stochastic block model graph, and the planted labels.

        Parameters
        ----------
        n_nodes : int, default 1000
            Graph size.
        n_clusters : int, default 4
            Number of planted communities (equal sizes unless ``sizes``).
        in_degree, out_degree : float
            Expected neighbours of a node inside / outside its community.
        sizes : sequence of int, optional
            The community sizes (adding up to ``n_nodes``).
        shuffle : bool, default False
            Assign nodes to communities at random (seeded) instead of contiguously,
            which destroys the block-diagonal locality of the matrix.
        chunks : "auto", int or tuple
            Row blocks of the result (see :func:`daskpml.sparse.auto_row_chunks`).
        dtype : numpy dtype, default float64
            Type of the stored ones.
        random_state : None, int or numpy.random.Generator
            Seed: the same seed and chunks give the same data on any scheduler and any number of workers.
        backend : {"numpy", "cupy"}, optional
            Put the blocks on this backend (default NumPy).

        Returns
        -------
        A : CSRMatrix
            The adjacency (n_nodes x n_nodes), symmetric, no self loops.
        labels : dask.array.Array
            int32 community labels, chunked like A's rows.

        Examples
        --------
        >>> A, labels = make_sbm(10_000, 4, in_degree=16, out_degree=4, random_state=0)
        >>> A.shape
        (10000, 10000)
    """
    if int(n_nodes) != n_nodes or n_nodes < 2:
        raise ValueError(f"n_nodes must be an integer >= 2, got {n_nodes!r}.")
    if int(n_clusters) != n_clusters or not 1 <= n_clusters <= n_nodes:
        raise ValueError(f"n_clusters must be an integer in [1, n_nodes], got {n_clusters!r}.")
    if in_degree < 0 or out_degree < 0:
        raise ValueError(f"in_degree and out_degree must be >= 0, got {in_degree} and {out_degree}.")
    n_nodes, n_clusters = int(n_nodes), int(n_clusters)
    sizes = _cluster_sizes(n_nodes, n_clusters, sizes)
    mean_size = n_nodes / n_clusters
    p_in = in_degree / (mean_size - 1) if mean_size > 1 else 0.0
    p_out = out_degree / (n_nodes - mean_size) if n_clusters > 1 else 0.0
    if p_in > 1 or p_out > 1:
        raise ValueError(
            f"in_degree={in_degree} / out_degree={out_degree} need edge probabilities above 1 "
            f"(p_in={p_in:.3g}, p_out={p_out:.3g}); use smaller degrees or larger communities."
        )
    if n_clusters == 1 and out_degree:
        raise ValueError("out_degree must be 0 with a single community.")
    seed = resolve_seed(random_state)
    row_chunks = auto_row_chunks(n_nodes, int(n_nodes * (in_degree + out_degree)), chunks)
    bounds = np.concatenate([[0], np.cumsum(row_chunks)]).astype(np.int64)
    token = tokenize(seed, n_nodes, sizes, in_degree, out_degree, shuffle, row_chunks, np.dtype(dtype).str)
    lab, name, lname = f"sbm-labels-{token}", f"sbm-{token}", f"sbm-labels-block-{token}"
    dsk: dict = {(lab,): (_sbm_labels, seed, sizes, bool(shuffle))}
    for i in range(len(row_chunks)):
        dsk[(name, i, 0)] = (_sbm_block, (lab,), i, bounds, seed, n_clusters, p_in, p_out, np.dtype(dtype))
    A = from_block_graph(name, dsk, [], row_chunks, n_nodes, sp.csr_matrix((0, 0), dtype=dtype))
    ldsk = {(lname, i): (_slice, (lab,), int(bounds[i]), int(bounds[i + 1])) for i in range(len(row_chunks))}
    from dask.highlevelgraph import HighLevelGraph

    labels = da.Array(HighLevelGraph.from_collections(lname, ldsk, dependencies=[A.blocks]), lname,
                      chunks=(row_chunks,), dtype=np.int32, meta=np.empty(0, np.int32))
    if backend:
        A, labels = to_backend(A, backend), to_backend(labels, backend)
    return A, labels


def _slice(x: np.ndarray, start: int, stop: int) -> np.ndarray:
    return x[start:stop]
