"""Markov clustering (MCL, van Dongen 2000) with distributed, pruned expansion.

The walk leaves node ``i`` along row ``i`` of the adjacency ``A`` (``A[i, j]`` weighs the
edge ``i -> j``), so the iterand is kept row-stochastic: it is the transpose of mcl's
column-stochastic matrix, and every rule mcl applies to a column applies here to a row.
Rows are held in blocks (a :class:`~daskpml.sparse.CSRMatrix`).

One iteration (one task graph, one round trip for its statistics):

1. the row blocks are gathered into one matrix ``R`` (the right operand every task reads:
   the 1-D "broadcast B" distribution);
2. each task computes its block's rows of ``R_i @ R`` and prunes each row as soon as it
   is complete (threshold, select, recover, as mcl), renormalizes it, measures its chaos
   and inflates it. On CPU blocks a compiled kernel accumulates one row at a time in a
   dense scratch row, so the unpruned square never exists beyond one row per thread. On
   other backends (CuPy) a block's product is formed and pruned in *phases* of rows
   whose unpruned size (bounded by ``L @ nnz_per_row(R)``) fits
   ``daskpml.graph.mcl-phase-bytes``, as HipMCL does when memory is short;
3. the run stops when the largest chaos of the expanded rows is below ``tol``.

Clusters are read from the limit as mcl reads them (see :func:`interpret`).

References
----------
S. van Dongen, "Graph clustering by flow simulation", PhD thesis, Utrecht (2000);
"Graph clustering via a discrete uncoupling process", SIAM J. Matrix Anal. Appl. 30 (2008).
A. Azad, G. Pavlopoulos, C. Ouzounis, N. Kyrpides, A. Buluc, "HipMCL: a high-performance
parallel implementation of the Markov clustering algorithm for large-scale networks",
Nucleic Acids Research 46 (2018).
"""

from __future__ import annotations

import operator
import os
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Callable, Literal, Sequence

import dask
import dask.array as da
import numpy as np
import scipy.sparse as sp
import xarray as xr
from dask.base import tokenize
from dask.delayed import Delayed
from scipy.sparse.csgraph import connected_components

from .. import _config, results
from .._checkpoint import Checkpoint
from .._progress import ProgressLine
from ..backend import get_namespace, is_sparse, to_numpy
from ..runtime import total_threads
from ..sparse import CSRMatrix, from_array, row_indices
from .._blocks import even_split
from ..sparse import from_block_graph
from ..validation import PROTOCOL, Interval, Options, check_array, check_graph, validate_params

Overlap = Literal["remove", "cut", "keep"]
OVERLAPS = ("remove", "cut", "keep")

__all__ = ["MCLResult", "interpret", "mcl", "prepare"]


@dataclass(repr=False)
class MCLResult(results.ResultDisplay):
    """What :func:`mcl` returns.

        Parameters
        ----------
        labels : xarray.DataArray
            Cluster ids over ``node`` (clusters numbered largest first).
        clusters : list of numpy.ndarray
            Node indices of each cluster, largest first (as mcl writes them).
        n_iter : int
            Iterations run.
        converged : bool
            Whether the chaos fell below ``tol``.
        history : xarray.Dataset
            Over ``iteration``: nnz, expanded, products, chaos, kept_mass, time, rounds,
            iterand_bytes (the new iterand's size), bytes (moved: the previous iterand gathered once
            and sent to every row block, a model) and task_bytes (the largest task's working set).
        limit : sparse matrix
            The last iterand (SciPy or cupyx CSR, row-stochastic).

        Examples
        --------
        >>> from daskpml.datasets import make_sbm
        >>> A, y = make_sbm(200, 2, in_degree=10, out_degree=1, random_state=0)
        >>> mcl(A).n_iter > 0
        True
    """

    labels: xr.DataArray
    clusters: list
    n_iter: int
    converged: bool
    history: xr.Dataset
    limit: Any


# ---------------------------------------------------------------- the start matrix


def _start_block(block: Any, offset: int, loop_weight: float, dtype: Any, sort_rows: bool) -> Any:
    """Drop the block's loops, add mcl's (``loop_weight`` times the row's largest weight;
    1 for a node with no edges), and make the rows stochastic."""
    xp, xsp = get_namespace(block)
    M = block.tocoo()
    rows, cols, vals = M.row, M.col, M.data.astype(dtype)
    off = (cols != rows + offset) & (vals != 0)
    rows, cols, vals = rows[off], cols[off], vals[off]
    n = block.shape[0]
    top = xp.zeros(n, dtype=dtype)
    if vals.shape[0]:
        if xp is np:
            np.maximum.at(top, rows, vals)
        else:
            top = xsp.csr_matrix((vals, (rows, cols)), shape=block.shape).max(axis=1).toarray().ravel()
    loops = xp.where(top > 0, loop_weight * top, 1.0).astype(dtype)
    keep = loops > 0
    rows = xp.concatenate([rows, xp.arange(n)[keep]])
    cols = xp.concatenate([cols, xp.arange(n)[keep] + offset])
    vals = xp.concatenate([vals, loops[keep]])
    out = xsp.csr_matrix((vals, (rows, cols)), shape=block.shape, dtype=dtype)
    sums = xp.asarray(out.sum(axis=1)).ravel()
    out = xsp.diags(1.0 / sums) @ out
    out = out.tocsr().astype(dtype)
    out.indices = out.indices.astype(np.int32) if block.shape[1] < 2**31 else out.indices
    if sort_rows and xp is np:
        _kernels().sort_rows_descending(out.indptr, out.indices, out.data)
        out.has_sorted_indices = False
    return out


def prepare(A: CSRMatrix, *, loop_weight: float = 1.0, dtype: Any = np.float64, n_blocks: int | None = None,
            sort_rows: bool = True) -> CSRMatrix:
    """The row-stochastic start matrix of MCL: loops re-weighted as mcl does, rows normalized.

    Input loops are discarded (mcl's ``--discard-loops=y``); each node gets a loop of
    ``loop_weight`` times its largest edge weight (mcl's ``-c``), an isolated node a loop
    of 1. The rows are cut into ``n_blocks`` even blocks (default: 4 per worker thread).
    """
    if n_blocks is None:
        n_blocks = max(A.numblocks, 4 * total_threads())
    n_blocks = max(1, min(int(n_blocks), A.shape[0]))
    if A.numblocks != n_blocks:
        A = A.rechunk(even_split(A.shape[0], n_blocks))
    offsets = A.row_offsets
    name = f"mcl-start-{tokenize(A, loop_weight, np.dtype(dtype).str, sort_rows)}"
    dsk = {(name, i, 0): (_start_block, (A.name, i, 0), int(offsets[i]), float(loop_weight), np.dtype(dtype),
                          sort_rows)
           for i in range(A.numblocks)}
    return from_block_graph(name, dsk, [A.blocks], A.row_chunks, A.shape[1], A._meta.astype(dtype))


# ---------------------------------------------------------------- one expansion


def _kernels() -> Any:
    """The numba kernels (compiled, or loaded from numba's cache, on first use)."""
    from . import _mcl_kernels

    return _mcl_kernels


#: How the compiled kernel reads back the columns a row reached (see
#: :func:`._mcl_kernels.expand_rows`): a list for rows with fewer than ``n / TOUCH_RATIO``
#: products, a scan of the scratch row for rows expected to reach more than
#: ``n / SCAN_RATIO`` columns, a bitmap otherwise.
TOUCH_RATIO = 4
SCAN_RATIO = 8


@dataclass(frozen=True)
class _Rules:
    threshold: float
    select: int
    recover: int
    pct: float
    product_tol: float
    phase_bytes: int


def _gather(*blocks: Any) -> Any:
    _, xsp = get_namespace(blocks[0])
    whole = xsp.vstack(blocks, format="csr") if len(blocks) > 1 else blocks[0]
    return whole


def _expand_cpu(L: Any, offset: int, R: Any, inflation: float, rules: _Rules, sort_rows: bool) -> tuple:
    k = _kernels()
    lp = L.indptr.astype(np.int64, copy=False)
    rp = R.indptr.astype(np.int64, copy=False)
    li = L.indices.astype(R.indices.dtype, copy=False)
    lx = L.data.astype(R.dtype, copy=False)
    ptr, ind, val, stats = k.expand_rows(lp, li, lx, rp, R.indices, R.data, R.shape[1],
                                          R.dtype.type(rules.threshold), rules.select, rules.recover,
                                          rules.pct, float(inflation), float(rules.product_tol), sort_rows,
                                          int(L.nnz * 2 + L.shape[0]), offset, TOUCH_RATIO, SCAN_RATIO)
    out = sp.csr_matrix((val, ind, ptr), shape=(L.shape[0], R.shape[1]))
    out.has_sorted_indices = False
    scratch = R.shape[1] * (3 * R.dtype.itemsize + 16)
    return out, stats, scratch


def _kth_per_row(xp: Any, starts: Any, counts: Any, sorted_vals: Any, k: Any) -> Any:
    """Per row, the k-th largest value (rows sorted by decreasing value); -1 where k > count."""
    k = xp.asarray(k)
    idx = xp.minimum(starts + xp.maximum(k, 1) - 1, max(sorted_vals.shape[0] - 1, 0))
    out = sorted_vals[idx] if sorted_vals.shape[0] else xp.zeros(starts.shape[0], dtype=sorted_vals.dtype)
    return xp.where((k <= counts) & (k >= 1), out, -1.0)


def _prune_rows_xp(P: Any, row0: int, inflation: float, rules: _Rules) -> tuple:
    """mcl's pruning (the rules of :func:`_mcl_kernels.prune_bar`), normalization, chaos and
    inflation of every row of an expanded block, with array operations."""
    xp, xsp = get_namespace(P)
    n = P.shape[0]
    P = P.tocsr()
    P.sum_duplicates()
    counts = xp.diff(P.indptr)
    rows = row_indices(P)                      # (CuPy's repeat takes no array of counts)
    vals = P.data
    order = xp.lexsort(xp.stack([-vals, rows.astype(vals.dtype)]))
    sorted_vals = vals[order]
    starts = P.indptr[:-1]
    above = vals >= rules.threshold
    n_thr = xp.bincount(rows, weights=above.astype(np.float64), minlength=n)
    m_thr = xp.bincount(rows, weights=xp.where(above, vals, 0.0), minlength=n)
    bar = xp.full(n, rules.threshold, dtype=np.float64)
    rec1 = (rules.recover > 0) & (n_thr < rules.recover) & (m_thr < rules.pct)
    bar = xp.where(rec1, _kth_per_row(xp, starts, counts, sorted_vals, rules.recover), bar)
    sel = ~rec1 & (rules.select > 0) & (n_thr > rules.select)
    if bool(sel.any()):
        sbar = _kth_per_row(xp, starts, counts, sorted_vals, rules.select)
        in_s = vals >= sbar[rows]
        n_s = xp.bincount(rows, weights=in_s.astype(np.float64), minlength=n)
        m_s = xp.bincount(rows, weights=xp.where(in_s, vals, 0.0), minlength=n)
        rec2 = sel & (rules.recover > 0) & (n_s < rules.recover) & (m_s < rules.pct)
        rbar = xp.where(rules.recover < n_thr, _kth_per_row(xp, starts, counts, sorted_vals, rules.recover),
                        rules.threshold)
        bar = xp.where(sel, xp.where(rec2, rbar, sbar), bar)
    keep = vals >= bar[rows]
    kept_rows = xp.bincount(rows, weights=keep.astype(np.float64), minlength=n)
    empty = xp.flatnonzero(kept_rows == 0)
    r = xp.concatenate([rows[keep], empty])
    c = xp.concatenate([P.indices[keep].astype(np.int64), empty + row0])
    v = xp.concatenate([vals[keep], xp.ones(empty.shape[0], dtype=vals.dtype)])
    mass = xp.bincount(r, weights=v, minlength=n)
    x = v / mass[r]
    top = xp.zeros(n, dtype=np.float64)
    if xp is np:
        np.maximum.at(top, r, x)
    else:
        top = xsp.csr_matrix((x, (r, c)), shape=P.shape).max(axis=1).toarray().ravel()
    squares = xp.bincount(r, weights=x * x, minlength=n)
    kept = xp.bincount(r, minlength=n)
    chaos = float(((top - squares) * kept).max()) if n else 0.0
    y = x ** inflation if inflation != 1.0 else x
    y = y / xp.bincount(r, weights=y, minlength=n)[r]
    out = xsp.csr_matrix((y.astype(vals.dtype), (r, c)), shape=P.shape)
    stats = np.array([chaos, float(P.nnz), float("nan"), float(mass.min()) if n else 1.0, float(mass.sum())])
    return out, stats


def _expand_xp(L: Any, offset: int, R: Any, inflation: float, rules: _Rules) -> tuple:
    """The same iteration with the backend's sparse product, phase by phase."""
    xp, xsp = get_namespace(L)
    per_row = xp.diff(R.indptr).astype(np.float64)
    bound = L @ per_row                                 # unpruned entries per row, at most
    entry_bytes = R.dtype.itemsize + 4 + 8 * 6          # the product plus the pruning's work arrays
    budget = max(1.0, rules.phase_bytes / entry_bytes)
    cum = to_numpy(xp.cumsum(bound))                    # the phase cuts are planned on the host
    cuts = [0]
    while cuts[-1] < L.shape[0]:
        base = cum[cuts[-1] - 1] if cuts[-1] else 0.0
        nxt = int(np.searchsorted(cum, base + budget, side="right"))
        cuts.append(min(L.shape[0], max(nxt, cuts[-1] + 1)))
    pieces, stats = [], []
    for a, b in zip(cuts[:-1], cuts[1:]):
        out, st = _prune_rows_xp(L[a:b] @ R, offset + a, inflation, rules)
        pieces.append(out)
        stats.append(st)
    out = xsp.vstack(pieces, format="csr") if len(pieces) > 1 else pieces[0]
    s = np.array(stats)
    merged = np.array([s[:, 0].max(), s[:, 1].sum(), float(xp.asarray(bound).sum()), s[:, 3].min(), s[:, 4].sum()])
    scratch = int(min(float(cum[-1]) if cum.shape[0] else 0.0, budget) * entry_bytes)
    return out, merged, scratch


def _expand_block(L: Any, offset: int, R: Any, inflations: tuple, rules: _Rules, compiled: bool,
                  sort_rows: bool) -> tuple:
    """``len(inflations)`` expansions of a row block by ``R`` (all but the last only
    normalized), each pruned; returns the new block and its statistics."""
    X = L
    stats = None
    for inflation in inflations:
        if compiled:
            X, stats, scratch = _expand_cpu(X, offset, R, inflation, rules, sort_rows)
        else:
            X, stats, scratch = _expand_xp(X, offset, R, inflation, rules)
    whole = R.nnz * (R.dtype.itemsize + 4) + 8 * (R.shape[0] + 1)
    block = X.nnz * (X.dtype.itemsize + 4) + 8 * (X.shape[0] + 1)
    return X, np.concatenate([stats, [float(X.nnz), float(block), float(whole + block + scratch)]])


def _collect(*stats: np.ndarray) -> np.ndarray:
    s = np.array(stats)
    return np.array([s[:, 0].max(), s[:, 1].sum(), s[:, 2].sum(), s[:, 3].min(), s[:, 4].sum(), s[:, 5].sum(),
                     s[:, 6].sum(), s[:, 7].max()])


def _iteration(R: CSRMatrix, inflations: tuple, rules: _Rules, compiled: bool, sort_rows: bool) -> tuple:
    token = tokenize(R, inflations, rules, compiled, sort_rows)
    gather, step, name, stats = (f"mcl-{part}-{token}" for part in ("gather", "step", "block", "stats"))
    keys = [(R.name, i, 0) for i in range(R.numblocks)]
    dsk: dict = {(gather, 0): (_gather, *keys)}
    offsets = R.row_offsets
    for i, key in enumerate(keys):
        dsk[(step, i)] = (_expand_block, key, int(offsets[i]), (gather, 0), inflations, rules, compiled, sort_rows)
        dsk[(name, i, 0)] = (operator.getitem, (step, i), 0)
    dsk[(stats, 0)] = (_collect, *[(operator.getitem, (step, i), 1) for i in range(R.numblocks)])
    new = from_block_graph(name, dsk, [R.blocks], R.row_chunks, R.shape[1], R._meta)
    return new, Delayed((stats, 0), new.__dask_graph__(), layer=name)


# ---------------------------------------------------------------- interpretation


def _dag(M: sp.csr_matrix) -> sp.csr_matrix:
    """mcl's DAG of the limit: in each row keep the entries near the largest or above the
    loop (``0.999 self + 0.001 max`` when the loop is not the largest, else ``self / 1.01``),
    renormalize, and keep the entries of at least ``1 / (entries + 1)``."""
    M = M.tocsr()
    n = M.shape[0]
    rows = np.repeat(np.arange(n), np.diff(M.indptr))
    self_val = M.diagonal()
    top = np.zeros(n)
    np.maximum.at(top, rows, M.data)
    bar = np.where(self_val < top, 0.999 * self_val + 0.001 * top, self_val / 1.01)
    keep = M.data >= bar[rows]
    r, c, v = rows[keep], M.indices[keep], M.data[keep]
    total = np.bincount(r, weights=v, minlength=n)
    count = np.bincount(r, minlength=n)
    v = v / total[r]
    keep = v >= 1.0 / (count[r] + 1)
    return sp.csr_matrix((np.ones(int(keep.sum()), dtype=bool), (r[keep], c[keep])), shape=(n, n))


def interpret(M: Any, overlap: Overlap = "remove") -> tuple[np.ndarray, list]:
    """Clusters of an MCL limit (row-stochastic, rows = nodes), as mcl reads them.

        1. Each row is thinned to a DAG: a node points at the nodes it flows to.
        2. Attractors are the nodes that keep their own loop; attractors joined by DAG edges
           (in either direction) form one attractor system.
        3. Every other node joins the systems of all attractors it reaches along the DAG.
        4. A node that reaches more than one system is in overlap. ``overlap="remove"`` (mcl's
           default) takes such nodes out of those clusters and puts nodes that share the same
           set of systems into one new cluster; ``"cut"`` keeps a node in the first of its
           systems (the one with the smallest attractor); ``"keep"`` leaves it in all of them
           (``labels`` then names the first).
        5. A node that reaches no attractor (possible only before convergence) is a cluster
           of its own.

        Parameters
        ----------
        M : sparse matrix
            The limit (SciPy CSR).
        overlap : {"remove", "cut", "keep"}, default "remove"
            What to do with nodes in overlap.

        Returns
        -------
        labels : numpy.ndarray
            The cluster of each node, numbered largest first.
        clusters : list of numpy.ndarray
            Node indices of each cluster, largest first (ties: the smaller first node first).

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> labels, clusters = interpret(sp.csr_matrix([[1.0, 0, 0], [1.0, 0, 0], [0, 0, 1.0]]))
        >>> labels.tolist(), [c.tolist() for c in clusters]
        ([0, 0, 1], [[0, 1], [2]])
    """
    if overlap not in OVERLAPS:
        raise ValueError(f"overlap must be one of {OVERLAPS}, got {overlap!r}.")
    M = sp.csr_matrix(M)
    n = M.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64), []
    D = _dag(M)
    attractor = np.asarray(D.diagonal(), dtype=bool)
    att = np.flatnonzero(attractor)
    sub = D[att][:, att]
    n_sys, sys_of_att = connected_components(sub, directed=True, connection="weak")
    own = sp.csr_matrix((np.ones(att.shape[0], dtype=np.int8), (att, sys_of_att)), shape=(n, n_sys))
    # reach along the DAG, attractors keeping their own system only
    follow = (sp.diags((~attractor).astype(np.int8), dtype=np.int8) @ D.astype(np.int8)).tocsr()
    member = own
    for _ in range(n):
        grown = (own + follow @ member).astype(bool).astype(np.int8)
        if grown.nnz == member.nnz:
            break
        member = grown
    member = member.tocsr()
    member.sort_indices()
    counts = np.diff(member.indptr)
    first = np.full(n, -1, dtype=np.int64)                # no attractor reached (a graph too small or
    has = counts > 0                                       # stopped early can leave every node so)
    first[has] = member.indices[member.indptr[:-1][has]]
    code = first.copy()                                    # one system: its id
    extra = n_sys
    if overlap == "remove":
        signatures: dict = {}
        for node in np.flatnonzero(counts > 1):
            key = tuple(member.indices[member.indptr[node]:member.indptr[node + 1]].tolist())
            code[node] = signatures.setdefault(key, extra + len(signatures))
        extra += len(signatures)
    alone = np.flatnonzero(counts == 0)
    code[alone] = extra + np.arange(alone.shape[0])
    nodes_all, codes_all = np.arange(n), code
    if overlap == "keep":
        rows = np.repeat(np.arange(n), counts)
        again = np.ones(member.nnz, dtype=bool)
        again[member.indptr[:-1][counts > 0]] = False          # the first system is already in
        nodes_all = np.concatenate([nodes_all, rows[again]])
        codes_all = np.concatenate([codes_all, member.indices[again]])
    order = np.lexsort((nodes_all, codes_all))
    nodes_sorted, codes_sorted = nodes_all[order], codes_all[order]
    bounds = np.flatnonzero(np.diff(codes_sorted)) + 1
    clusters = [c.astype(np.int64) for c in np.split(nodes_sorted, bounds)]
    clusters.sort(key=lambda c: (-c.shape[0], int(c[0])))
    labels = np.full(n, -1, dtype=np.int64)
    for index, members in reversed(list(enumerate(clusters))):
        labels[members] = index
    return labels, clusters


# ---------------------------------------------------------------- the driver


def _check_positive_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or int(value) != value or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def _as_graph(A: Any, nodes: Sequence | None) -> CSRMatrix:
    if not isinstance(A, CSRMatrix):
        if not hasattr(A, "chunks"):
            A = check_array(A, ensure_finite=False, name="graph")    # lists and numbers stored as objects
        if hasattr(A, "chunks") and not is_sparse(A):   # a dask array
            A = A.map_blocks(sp.csr_matrix, dtype=A.dtype)
        A = from_array(A)
    check_graph(A, name="graph")
    if nodes is not None and len(nodes) != A.shape[0]:
        raise ValueError(
            f"the node list has {len(nodes)} names but the graph has {A.shape[0]} nodes; pass one name per "
            "row of the adjacency matrix, in row order."
        )
    return A


MCL_CONSTRAINTS = {
    "inflation": [Interval(Real, 1, None, closed="neither")], "expansion": [Interval(Integral, 2, None)],
    "loop_weight": [Interval(Real, 0, None)], "prune_threshold": [Interval(Real, 0, 1)],
    "select": [Interval(Integral, 0, None)], "recover": [Interval(Integral, 0, None)],
    "recover_pct": [Interval(Real, 0, 1)], "max_iter": [Interval(Integral, 1, None)], "tol": [Interval(Real, 0, None)],
    "product_tol": [Options("auto"), Interval(Real, 0, None)], "overlap": [Options(*OVERLAPS)],
    "dtype": [None, "dtype"], "n_blocks": [None, Interval(Integral, 1, None)], **PROTOCOL}


@validate_params(MCL_CONSTRAINTS)
def mcl(A: Any, inflation: float = 2.0, *, expansion: int = 2, loop_weight: float = 1.0,
        prune_threshold: float = 1e-4, select: int = 1100, recover: int = 1400, recover_pct: float = 0.9,
        max_iter: int = 100, tol: float = 1e-6, product_tol: float | Literal["auto"] = "auto",
        overlap: Overlap = "remove", nodes: Sequence | None = None, dtype: Any = None,
        n_blocks: int | None = None, callback: Callable[[int, float], Any] | None = None,
        progress: bool | None = None, checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 5,
        resume: bool = False) -> MCLResult:
    """Markov clustering of a weighted graph.

    Parameters
    ----------
    A : (n, n) non-negative adjacency: CSRMatrix, SciPy/cupyx sparse, NumPy/CuPy or dask
        array. ``A[i, j]`` weighs the edge ``i -> j``; undirected graphs are symmetric.
    inflation : float > 1
        mcl's ``-I``: larger values give finer clusters.
    expansion : int >= 2
        The power of the walk matrix per iteration (2 is mcl's squaring).
    loop_weight : float >= 0
        mcl's ``-c``: each node gets a loop of this times its largest edge weight.
    prune_threshold, select, recover, recover_pct :
        mcl's ``-p`` (1 / ``-P``), ``-S``, ``-R`` and ``-pct / 100``; mcl's defaults.
        ``select=0`` / ``recover=0`` turn those steps off.
    max_iter : int
    tol : float
        Stop when the chaos (mcl's convergence measure: the largest over rows of
        ``(max - sum of squares) * entries`` of the expanded, pruned, normalized row) is
        below this. mcl itself stops at 1e-4.
    product_tol : float or "auto"
        On CPU blocks, skip the products ``R[i, k] R[k, j] < product_tol / nnz(R[i])``: each
        expanded entry is then low by at most ``product_tol``. ``"auto"`` is
        ``prune_threshold / 10``: an entry can then fall below the threshold only if it was
        within 10% of it. 0 computes every product. Ignored on other backends, which
        compute every product.
    overlap : "remove", "cut" or "keep"
        What to do with nodes attracted by more than one cluster (:func:`interpret`).
    nodes : sequence of names, optional
        Names of the nodes (one per row), for the labels.
    dtype : numpy dtype, optional
        Float type of the iterands (default float32, as mcl computes).
    n_blocks : int, optional
        Row blocks of the iterand (default: 4 per worker thread).
    callback : ``callback(record)`` after each iteration, with the history row just appended
        (``iteration``, ``chaos``, ``nnz``, ``time``, ``rounds``, ...) and the current iterand
        under ``matrix`` (a persisted :class:`CSRMatrix`); a true return value stops.
    progress : bool, optional
        Show a progress line (None: on a terminal, ``daskpml.progress``).
    checkpoint, checkpoint_every, resume : a directory where the iterand's row blocks are
        written (by the tasks that hold them) every ``checkpoint_every`` iterations;
        ``resume=True`` continues from the newest snapshot (see :mod:`daskpml._checkpoint`).

    Returns
    -------
    MCLResult

    Examples
    --------
    >>> from daskpml.datasets import make_sbm
    >>> A, y = make_sbm(200, 2, in_degree=10, out_degree=1, random_state=0)
    >>> res = mcl(A, 2.0)
    >>> res.labels.shape, res.converged
    ((200,), True)
    """
    A = _as_graph(A, nodes)
    if not float(inflation) > 1.0:
        raise ValueError(f"inflation must be > 1 (mcl uses 1.2 to 5), got {inflation!r}.")
    expansion = _check_positive_int("expansion", expansion, 2)
    max_iter = _check_positive_int("max_iter", max_iter, 1)
    select = _check_positive_int("select", select, 0)
    recover = _check_positive_int("recover", recover, 0)
    if not loop_weight >= 0:
        raise ValueError(f"loop_weight must be >= 0, got {loop_weight!r}.")
    if not 0 <= prune_threshold < 1:
        raise ValueError(f"prune_threshold must be in [0, 1), got {prune_threshold!r}.")
    if not 0 <= recover_pct <= 1:
        raise ValueError(f"recover_pct must be in [0, 1] (mcl's -pct / 100), got {recover_pct!r}.")
    if not tol > 0:
        raise ValueError(f"tol must be > 0, got {tol!r}.")
    if product_tol == "auto":
        product_tol = prune_threshold / 10.0
    if not 0 <= float(product_tol) < 1:
        raise ValueError(f"product_tol must be 'auto' or in [0, 1), got {product_tol!r}.")
    if overlap not in OVERLAPS:
        raise ValueError(f"overlap must be one of {OVERLAPS}, got {overlap!r}.")
    dtype = np.dtype(np.float32 if dtype is None else dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating type (float32 or float64), got {dtype}.")

    xp, _ = get_namespace(A)
    compiled = xp is np
    sort_rows = compiled and product_tol > 0
    rules = _Rules(float(prune_threshold), select, recover, float(recover_pct), float(product_tol),
                   int(_config.get("graph.mcl-phase-bytes")))
    R = prepare(A, loop_weight=loop_weight, dtype=dtype, n_blocks=n_blocks, sort_rows=sort_rows).persist()
    inflations = (1.0,) * (expansion - 2) + (float(inflation),)
    recorder = results.HistoryRecorder(callback=callback, bytes_source="model", attrs={
        "inflation": float(inflation), "expansion": expansion, "loop_weight": float(loop_weight),
        "prune_threshold": float(prune_threshold), "select": select, "recover": recover,
        "recover_pct": float(recover_pct), "tol": float(tol), "product_tol": float(product_tol),
        "dtype": dtype.name, "n_blocks": R.numblocks})
    cp = Checkpoint(checkpoint, "mcl", {k: v for k, v in recorder.attrs.items() if k != "tol"},
                    {"shape": list(A.shape), "row_chunks": list(R.row_chunks)},
                    every=checkpoint_every, resume=resume)
    cp.watch(A=R)
    snap = cp.restore(R._meta)
    n_iter, converged = 0, False
    if snap is not None:
        R = CSRMatrix(da.concatenate([da.from_delayed(b, shape=(c, R.shape[1]), meta=R._meta)
                                      for b, c in zip(snap.blocks["R"], R.row_chunks)])).persist()
        recorder.resume(snap.rows())
        n_iter, converged = snap.iteration, bool(snap.state["converged"])
    line = ProgressLine(progress)
    iterand_bytes = recorder.rows[-1].get("iterand_bytes") if len(recorder) else None
    try:
        while not converged and n_iter < max_iter:
            if iterand_bytes is None:
                iterand_bytes = (R.dtype.itemsize + 4) * R.nnz + 8 * (R.shape[0] + R.numblocks)
            n_iter += 1
            R_next, stats = _iteration(R, inflations, rules, compiled, sort_rows)
            R_next, stats = dask.persist(R_next, stats, optimize_graph=False)
            s = stats.compute()
            R = R_next
            chaos = float(s[0])
            stop = recorder.record(n_iter, {"matrix": R}, nnz=int(s[5]), expanded=int(s[1]), products=float(s[2]),
                                   chaos=chaos, kept_mass=float(s[3]), rounds=n_iter,
                                   bytes=int(iterand_bytes) * (1 + R.numblocks), iterand_bytes=int(s[6]),
                                   task_bytes=int(s[7]))
            iterand_bytes = int(s[6])
            line.update(n_iter, max_iter, f"mcl iteration {n_iter}: chaos {chaos:.3g}, {int(s[5]):,} entries")
            converged = chaos < tol
            if cp.due(n_iter, converged):
                cp.save(n_iter, blocks={"R": list(R.blocks.to_delayed().ravel())},
                        history=recorder.columns(), state={"converged": converged})
            if converged or stop:
                break
    finally:
        line.close()
    limit = R.compute()
    labels, clusters = interpret(to_numpy(limit), overlap)
    return MCLResult(
        labels=results.labels(labels, nodes=nodes, name="cluster", attrs={"n_clusters": len(clusters)}),
        clusters=clusters, n_iter=n_iter, converged=converged, history=recorder.to_xarray(), limit=limit)
