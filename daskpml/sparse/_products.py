"""Products, transpose and column-wise pruning of :class:`CSRMatrix`.

Communication per operation (P row blocks, m x n matrix A, nnz stored entries):

* ``A @ x`` (SpMV) / ``A @ X`` (SpMM, k columns): ``x`` is sent once to every
  worker (n or n*k values); each block returns its rows. No reduction.
* ``x @ A`` / :func:`rmatmul` (``A.T @ x`` without transposing): block ``i``
  reads its rows of ``x`` and returns a length-n partial sum; the partials are
  added by a tree reduction (an all-reduce of n values).
* ``A.T``: every block is cut into P column pieces and piece ``(i, j)`` moves
  to output block ``j``: an all-to-all exchange of all nnz entries.
* ``A @ B`` (SpGEMM): ``B`` is gathered once into one block and sent to every
  worker (``nnz(B)`` per worker); block ``i`` computes ``A_i @ B`` locally.
  Suited to the square-a-graph workloads of MCL where B fits on one worker; an
  optional ``threshold`` prunes each output block before it leaves the task.
* ``topk_per_column(k)``: each block sends at most k candidates per column,
  the candidates are merged in a tree, and the per-column k-th value comes back
  to every block (O(n k) values).
"""

from __future__ import annotations

import operator
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize

from .. import _config
from ..backend import get_namespace, is_sparse, sparse_meta
from ..runtime import scatter_client
from .._blocks import even_split
from ._csr import CSRMatrix, _prune, auto_row_chunks, from_block_graph, row_indices


def _matmul_block(a: list, x: list) -> Any:
    """Block ``i`` of ``A @ x``. The contracted index arrives as lists (one chunk each): taking
    their elements, instead of letting dask concatenate them, avoids a copy of ``x`` per block."""
    return a[0] @ x[0]


def _as_dask_dense(x: Any, A: CSRMatrix) -> da.Array:
    """``x`` as a dask array. On a distributed cluster, an in-memory ``x`` of ``daskpml.sparse.scatter-vector-bytes`` (1 MiB) or more is
    scattered first (sent once, not pickled into the graph of every call)."""
    if isinstance(x, CSRMatrix) or is_sparse(x):
        raise TypeError("expected a dense vector or matrix here")
    if not isinstance(x, da.Array):
        xp, _ = get_namespace(A)
        x = xp.asarray(x)
        client = scatter_client(x.nbytes, int(_config.get("sparse.scatter-vector-bytes")))
        if client is not None:
            future = client.scatter(x, hash=False)
            meta = xp.empty((0,) * x.ndim, dtype=x.dtype)
            x = da.from_delayed(dask.delayed(future), shape=x.shape, dtype=x.dtype, meta=meta)
        else:
            x = da.from_array(x, chunks=-1)
    get_namespace(A, x)  # refuse mixed NumPy / CuPy
    return x


def matmul(A: CSRMatrix, other: Any) -> Any:
    """``A @ other`` for a dense vector or matrix (a dask array out) or a CSRMatrix (SpGEMM).

        Parameters
        ----------
        A : CSRMatrix
            The sparse matrix (m x n).
        other : array, dask array or CSRMatrix
            A vector (n,), a matrix (n x k) or a distributed sparse matrix.

        Returns
        -------
        dask.array.Array or CSRMatrix
            Chunked like the rows of ``A``.

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> from daskpml.sparse import from_array
        >>> M = sp.csr_matrix([[1.0, 0, 2.0], [0, 3.0, 0], [4.0, 0, 0]])
        >>> A = from_array(M, chunks=2)
        >>> matmul(A, np.ones(3)).compute().tolist()
        [3.0, 3.0, 4.0]
    """
    if isinstance(other, CSRMatrix):
        return spgemm(A, other)
    if is_sparse(other):
        from ._csr import from_array

        return spgemm(A, from_array(other))
    x = _as_dask_dense(other, A)
    if x.ndim not in (1, 2) or x.shape[0] != A.shape[1]:
        raise ValueError(
            f"matmul: A has shape {A.shape}, so the right operand needs {A.shape[1]} rows; "
            f"got shape {tuple(x.shape)}."
        )
    x = x.rechunk({0: -1})
    dtype = np.result_type(A.dtype, x.dtype)
    xp, _ = get_namespace(A)
    if x.ndim == 1:
        return da.blockwise(_matmul_block, "i", A.blocks, "ij", x, "j", dtype=dtype,
                            meta=xp.empty((0,), dtype), concatenate=False, align_arrays=False)
    return da.blockwise(_matmul_block, "ik", A.blocks, "ij", x, "jk", dtype=dtype,
                        meta=xp.empty((0, 0), dtype), concatenate=False, align_arrays=False)


def _rmatmul_block(a: Any, x: Any) -> Any:
    out = a.T @ x
    return out[None]


def rmatmul_transposed(A: CSRMatrix, x: Any) -> da.Array:
    """``A.T @ x`` (x with m rows) by per-block partial products and a tree sum; A is not transposed.

        Parameters
        ----------
        A : CSRMatrix
            The sparse matrix (m x n).
        x : array or dask array
            A vector (m,) or matrix (m x k).

        Returns
        -------
        dask.array.Array
            (n,) or (n x k).

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> from daskpml.sparse import from_array
        >>> M = sp.csr_matrix([[1.0, 0, 2.0], [0, 3.0, 0], [4.0, 0, 0]])
        >>> A = from_array(M, chunks=2)
        >>> rmatmul_transposed(A, np.ones(3)).compute().tolist()
        [5.0, 3.0, 2.0]
    """
    x = _as_dask_dense(x, A)
    if x.ndim not in (1, 2) or x.shape[0] != A.shape[0]:
        raise ValueError(f"A.T @ x: A has {A.shape[0]} rows but x has shape {tuple(x.shape)}.")
    x = x.rechunk({0: A.row_chunks})
    dtype = np.result_type(A.dtype, x.dtype)
    xp, _ = get_namespace(A)
    if x.ndim == 1:
        partial = da.blockwise(_rmatmul_block, "ij", A.blocks, "ij", x, "i", dtype=dtype,
                               adjust_chunks={"i": 1}, meta=xp.empty((0, 0), dtype), align_arrays=False)
    else:
        partial = da.blockwise(_rmatmul_block, "ijk", A.blocks, "ij", x, "ik", dtype=dtype,
                               adjust_chunks={"i": 1}, meta=xp.empty((0, 0, 0), dtype), align_arrays=False)
    return partial.sum(axis=0)


def rmatmul(A: CSRMatrix, other: Any) -> da.Array:
    """``other @ A`` for a dense vector (length m) or matrix (k x m).

        Parameters
        ----------
        A : CSRMatrix
            The sparse matrix (m x n).
        other : array or dask array
            A vector (m,) or a matrix (k x m).

        Returns
        -------
        dask.array.Array
            (n,) or (k x n).

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> from daskpml.sparse import from_array
        >>> M = sp.csr_matrix([[1.0, 0, 2.0], [0, 3.0, 0], [4.0, 0, 0]])
        >>> A = from_array(M, chunks=2)
        >>> rmatmul(A, np.ones(3)).compute().tolist()
        [5.0, 3.0, 2.0]
    """
    x = _as_dask_dense(other, A)
    if x.ndim == 1:
        return rmatmul_transposed(A, x)
    return rmatmul_transposed(A, x.T).T


def _split_columns(block: Any, bounds: list[int]) -> tuple:
    return tuple(block[:, bounds[j]:bounds[j + 1]] for j in range(len(bounds) - 1))


def _stack_transposed(*pieces: Any) -> Any:
    _, xsp = get_namespace(pieces[0])
    return xsp.vstack(pieces, format="csr").T.tocsr()


def transpose(A: CSRMatrix, row_chunks: Any = None) -> CSRMatrix:
    """``A.T`` as a CSRMatrix (an all-to-all exchange of the stored entries).

        Parameters
        ----------
        A : CSRMatrix
            The matrix (m x n).
        row_chunks : tuple of int, optional
            Row blocks of the result; default A's for a square matrix, else ``A.numblocks`` equal blocks.

        Returns
        -------
        CSRMatrix
            (n x m).

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> from daskpml.sparse import from_array
        >>> M = sp.csr_matrix([[1.0, 0, 2.0], [0, 3.0, 0], [4.0, 0, 0]])
        >>> A = from_array(M, chunks=2)
        >>> transpose(A).to_scipy().toarray().tolist()
        [[1.0, 0.0, 4.0], [0.0, 3.0, 0.0], [2.0, 0.0, 0.0]]
    """
    m, n = A.shape
    if row_chunks is None:
        row_chunks = A.row_chunks if m == n else even_split(n, A.numblocks)
    row_chunks = auto_row_chunks(n, 0, row_chunks)
    bounds = [int(b) for b in np.concatenate([[0], np.cumsum(row_chunks)])]
    token = tokenize(A, row_chunks)
    split, name = f"csr-split-columns-{token}", f"csr-transpose-{token}"
    dsk: dict = {}
    for i in range(A.numblocks):
        dsk[(split, i)] = (_split_columns, (A.name, i, 0), bounds)
    for j in range(len(row_chunks)):
        pieces = [(operator.getitem, (split, i), j) for i in range(A.numblocks)]
        dsk[(name, j, 0)] = (_stack_transposed, *pieces)
    return from_block_graph(name, dsk, [A.blocks], row_chunks, m, A._meta)


def _spgemm_block(a: list, b: list, threshold: float | None) -> Any:
    out = (a[0] @ b[0]).tocsr()
    if threshold:
        out = _prune(out, threshold)
    out.sort_indices()
    return out


def spgemm(A: CSRMatrix, B: CSRMatrix, *, threshold: float | None = None) -> CSRMatrix:
    """Sparse product ``A @ B`` of two distributed matrices, row-blocked like ``A``.

        ``B`` is gathered once and sent to each worker; block ``i`` of the result is ``A_i @ B``.
        With ``threshold``, entries below it (in absolute value) are dropped inside the task, so the
        unpruned block never leaves the worker.

        Parameters
        ----------
        A, B : CSRMatrix
            The factors (m x n and n x p).
        threshold : float, optional
            Drop entries whose absolute value is below it.

        Returns
        -------
        CSRMatrix
            (m x p).

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> from daskpml.sparse import from_array
        >>> M = sp.csr_matrix([[1.0, 0, 2.0], [0, 3.0, 0], [4.0, 0, 0]])
        >>> A = from_array(M, chunks=2)
        >>> spgemm(A, A).to_scipy().toarray().tolist()
        [[9.0, 0.0, 2.0], [0.0, 9.0, 0.0], [4.0, 0.0, 8.0]]
    """
    if not isinstance(B, CSRMatrix):
        raise TypeError(f"spgemm needs two CSRMatrix operands, got {type(B).__name__}.")
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"spgemm: shapes {A.shape} and {B.shape} are not aligned ({A.shape[1]} != {B.shape[0]}).")
    get_namespace(A, B)
    dtype = np.result_type(A.dtype, B.dtype)
    whole_b = B.blocks.rechunk({0: -1}) if B.numblocks > 1 else B.blocks
    blocks = da.blockwise(_spgemm_block, "ik", A.blocks, "ij", whole_b, "jk", threshold=threshold,
                          dtype=dtype, meta=sparse_meta(A._meta, dtype), concatenate=False, align_arrays=False)
    return CSRMatrix(blocks)


# ---------------------------------------------------------------- top-k


def _topk_mask(xp: Any, cols: Any, vals: Any, rows: Any, k: int) -> Any:
    """Mask of the k largest values of each column (ties: smaller row first)."""
    n = cols.shape[0]
    if n == 0:
        return xp.zeros(0, dtype=bool)
    order = xp.lexsort(xp.stack([rows.astype(np.float64), -vals.astype(np.float64), cols.astype(np.float64)]))
    sorted_cols = cols[order]
    new_group = xp.concatenate([xp.ones(1, dtype=bool), sorted_cols[1:] != sorted_cols[:-1]])
    starts = xp.flatnonzero(new_group)
    rank = xp.arange(n) - starts[xp.cumsum(new_group) - 1]
    mask = xp.zeros(n, dtype=bool)
    mask[order[rank < k]] = True
    return mask


def _column_candidates(block: Any, k: int, offset: int) -> tuple:
    xp, _ = get_namespace(block)
    coo = block.tocoo()
    rows = coo.row.astype(np.int64) + offset
    cols, vals = coo.col.astype(np.int64), coo.data
    mask = _topk_mask(xp, cols, vals, rows, k)
    return cols[mask], vals[mask], rows[mask]


def _merge_candidates(k: int, *parts: tuple) -> tuple:
    xp, _ = get_namespace(parts[0][1])
    cols, vals, rows = (xp.concatenate([p[i] for p in parts]) for i in range(3))
    mask = _topk_mask(xp, cols, vals, rows, k)
    return cols[mask], vals[mask], rows[mask]


def _column_thresholds(candidates: tuple, k: int, n_cols: int) -> tuple:
    """Per column the k-th largest (value, row); columns with fewer than k entries keep all."""
    xp, _ = get_namespace(candidates[1])
    cols, vals, rows = candidates
    thr_vals = xp.full(n_cols, -np.inf)
    thr_rows = xp.full(n_cols, np.iinfo(np.int64).max, dtype=np.int64)
    if cols.shape[0]:
        counts = xp.bincount(cols, minlength=n_cols)
        # sorted by (column, -value, row), the last candidate of a full column is its k-th
        order = xp.lexsort(xp.stack([rows.astype(np.float64), -vals.astype(np.float64), cols.astype(np.float64)]))
        sorted_cols, sorted_vals, sorted_rows = cols[order], vals[order], rows[order]
        last = xp.concatenate([sorted_cols[1:] != sorted_cols[:-1], xp.ones(1, dtype=bool)])
        full = last & (counts[sorted_cols] >= k)
        thr_vals[sorted_cols[full]] = sorted_vals[full]
        thr_rows[sorted_cols[full]] = sorted_rows[full]
    return thr_vals, thr_rows


def _apply_thresholds(block: Any, thresholds: tuple, offset: int) -> Any:
    xp, _ = get_namespace(block)
    thr_vals, thr_rows = thresholds
    out = block.copy()
    rows = row_indices(block) + offset
    cols = block.indices
    keep = (out.data > thr_vals[cols]) | ((out.data == thr_vals[cols]) & (rows <= thr_rows[cols]))
    out.data[~keep] = 0
    out.eliminate_zeros()
    return out


def topk_per_column(A: CSRMatrix, k: int) -> CSRMatrix:
    """Keep the ``k`` largest stored entries of every column (ties: smaller row index first).

        This is the "select" pruning of MCL on a row-blocked matrix: blocks send their per-column
        candidates, a tree merges them, and each block keeps the entries that reach its column's
        k-th value.

        Parameters
        ----------
        A : CSRMatrix
            The matrix.
        k : int
            Entries kept per column.

        Returns
        -------
        CSRMatrix
            Row-blocked like ``A``.

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> from daskpml.sparse import from_array
        >>> M = sp.csr_matrix([[1.0, 0, 2.0], [0, 3.0, 0], [4.0, 0, 0]])
        >>> A = from_array(M, chunks=2)
        >>> topk_per_column(A, 1).to_scipy().toarray().tolist()
        [[0.0, 0.0, 2.0], [0.0, 3.0, 0.0], [4.0, 0.0, 0.0]]
    """
    if int(k) != k or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}.")
    k = int(k)
    token = tokenize(A, k)
    cand, thr, name = f"topk-candidates-{token}", f"topk-thresholds-{token}", f"topk-{token}"
    offsets = A.row_offsets
    dsk: dict = {}
    level = []
    for i in range(A.numblocks):
        dsk[(cand, 0, i)] = (_column_candidates, (A.name, i, 0), k, int(offsets[i]))
        level.append((cand, 0, i))
    depth = 0
    while len(level) > 1:
        depth += 1
        nxt = []
        for j in range(0, len(level), 2):
            key = (cand, depth, j // 2)
            dsk[key] = (_merge_candidates, k, *level[j:j + 2])
            nxt.append(key)
        level = nxt
    dsk[(thr, 0)] = (_column_thresholds, level[0], k, A.shape[1])
    for i in range(A.numblocks):
        dsk[(name, i, 0)] = (_apply_thresholds, (A.name, i, 0), (thr, 0), int(offsets[i]))
    return from_block_graph(name, dsk, [A.blocks], A.row_chunks, A.shape[1], A._meta)
