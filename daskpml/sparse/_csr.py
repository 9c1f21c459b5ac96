"""The row-blocked distributed CSR matrix.

A :class:`CSRMatrix` is a thin wrapper over a 2-D :class:`dask.array.Array`
chunked along rows only, whose blocks are ``scipy.sparse.csr_matrix`` (CPU) or
``cupyx.scipy.sparse.csr_matrix`` (GPU). Block ``i`` holds rows
``row_offsets[i]:row_offsets[i+1]`` with all columns. The wrapper is a dask
collection itself: ``dask.persist(A)``, ``A.compute()`` (one SciPy/cupyx
matrix) and ``distributed.progress(A.persist())`` work as for dask arrays.
Nothing is computed until asked for.
"""

from __future__ import annotations

import math
from numbers import Number
from typing import Any, Sequence

import dask
from dask.base import tokenize
import dask.array as da
import numpy as np
from dask.highlevelgraph import HighLevelGraph

from .. import _config
from .._blocks import even_split
from ..backend import backend_name, get_namespace, is_sparse, sparse_meta, to_backend
from ..runtime import scatter_blocks


def auto_row_chunks(n_rows: int, nnz: int, chunks: Any = "auto") -> tuple[int, ...]:
    """Row block sizes of a sparse matrix.

        Parameters
        ----------
        n_rows : int
            Rows of the matrix.
        nnz : int
            Its stored entries.
        chunks : "auto", int or tuple of int, default "auto"
            ``"auto"``: ``ceil(nnz / daskpml.sparse.block-nnz)`` blocks of equal rows (at least one);
            an ``int``: that many rows per block; a tuple: used as it is (it must add up to ``n_rows``).

        Returns
        -------
        tuple of int
            The rows of each block.

        Examples
        --------
        >>> auto_row_chunks(10, 100, 4)
        (4, 4, 2)
    """
    if chunks is None or chunks == "auto":
        n_blocks = max(1, min(n_rows, math.ceil(nnz / float(_config.get("sparse.block-nnz")))))
        return even_split(n_rows, n_blocks)
    if isinstance(chunks, (int, np.integer)):
        if chunks <= 0:
            raise ValueError(f"chunks must be a positive number of rows per block, got {chunks}.")
        return tuple(min(int(chunks), n_rows - s) for s in range(0, n_rows, int(chunks))) or (0,)
    chunks = tuple(int(c) for c in (chunks[0] if chunks and isinstance(chunks[0], tuple) else chunks))
    if sum(chunks) != n_rows:
        raise ValueError(f"row chunks {chunks} add up to {sum(chunks)}, not to the {n_rows} rows.")
    return chunks


def _tocsr(block: Any) -> Any:
    _, xsp = get_namespace(block)
    return block.tocsr() if is_sparse(block) else xsp.csr_matrix(block)


def _astype(block: Any, dtype: Any) -> Any:
    return block.astype(dtype)


def _power(block: Any, exponent: float) -> Any:
    return block.power(exponent)


def _scale(block: Any, scalar: Any) -> Any:
    return block * scalar


def _abs(block: Any) -> Any:
    return abs(block)


def _prune(block: Any, threshold: float) -> Any:
    xp, _ = get_namespace(block)
    out = block.copy()
    out.data[xp.abs(out.data) < threshold] = 0
    out.eliminate_zeros()
    return out


def row_indices(block: Any) -> Any:
    """Row index of every stored entry of a CSR block, in storage order (NumPy or CuPy).

        Parameters
        ----------
        block : sparse matrix
            A CSR block.

        Returns
        -------
        array of int64

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> row_indices(sp.csr_matrix([[1.0, 2.0], [0, 3.0]])).tolist()
        [0, 0, 1]
    """
    return block.tocoo().row.astype(np.int64)


def _scale_rows(block: Any, d: Any) -> Any:
    xp, _ = get_namespace(block)
    d = xp.asarray(d).ravel()
    out = block.astype(np.result_type(block.dtype, d.dtype))
    out.data *= d[row_indices(block)]
    return out


def _scale_columns(block: Any, d: Any) -> Any:
    xp, _ = get_namespace(block)
    d = xp.asarray(d).ravel()
    out = block.astype(np.result_type(block.dtype, d.dtype))
    out.data *= d[block.indices]
    return out


def _add(a: Any, b: Any) -> Any:
    return (a + b).tocsr()


def _sub(a: Any, b: Any) -> Any:
    return (a - b).tocsr()


def _maximum(a: Any, b: Any) -> Any:
    return a.maximum(b).tocsr()


def _row_sums(block: Any) -> Any:
    xp, _ = get_namespace(block)
    return xp.asarray(block.sum(axis=1)).ravel()


def _col_sums(block: Any) -> Any:
    xp, _ = get_namespace(block)
    return xp.asarray(block.sum(axis=0)).reshape(1, -1)


def _block_nnz(block: Any) -> Any:
    return np.array([block.nnz], dtype=np.int64)


def _block_max_abs(block: Any) -> Any:
    xp, _ = get_namespace(block)
    data = block.data
    return np.array([float(xp.abs(data).max()) if data.size else 0.0])


def _diagonal(block: Any, block_info: dict | None = None) -> Any:
    start, stop = block_info[0]["array-location"][0]
    return block[:, start:stop].diagonal()


class CSRMatrix:
    """Row-blocked distributed sparse matrix in CSR format (SciPy or cupyx blocks).

        Build one with :func:`daskpml.sparse.from_array` (or from a dask array of sparse blocks
        with ``CSRMatrix(blocks)``). Products with dense vectors and matrices return dask arrays;
        products with another ``CSRMatrix`` return a ``CSRMatrix``. See :mod:`daskpml.sparse` for
        the communication each operation needs.

        Parameters
        ----------
        blocks : dask.array.Array
            A dask array of CSR blocks, chunked along rows only.

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> from daskpml.sparse import from_array
        >>> A = from_array(sp.random(100, 100, density=0.05, format="csr", random_state=0), chunks=25)
        >>> A.numblocks, A.shape
        (4, (100, 100))
    """

    __array_priority__ = 20  # numpy defers ``x @ A`` to __rmatmul__

    def __init__(self, blocks: da.Array) -> None:
        if not isinstance(blocks, da.Array) or blocks.ndim != 2:
            raise TypeError(f"CSRMatrix needs a 2-D dask array of sparse blocks, got {type(blocks).__name__}.")
        if not is_sparse(blocks._meta):
            raise TypeError(
                "CSRMatrix blocks must be scipy.sparse or cupyx sparse matrices; convert dense "
                "input with daskpml.sparse.from_array(x)."
            )
        if len(blocks.chunks[1]) != 1:
            raise ValueError(
                f"CSRMatrix blocks must span all columns (chunks {blocks.chunks[1]} along axis 1); "
                "use blocks.rechunk({1: -1})."
            )
        self.blocks = blocks

    # ----------------------------------------------------------- attributes
    @property
    def shape(self) -> tuple[int, int]:
        return self.blocks.shape

    @property
    def dtype(self) -> np.dtype:
        return self.blocks.dtype

    ndim = 2

    @property
    def chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        return self.blocks.chunks

    @property
    def row_chunks(self) -> tuple[int, ...]:
        return self.blocks.chunks[0]

    @property
    def row_offsets(self) -> np.ndarray:
        """Start row of each block, and the number of rows at the end."""
        return np.concatenate([[0], np.cumsum(self.row_chunks)]).astype(np.int64)

    @property
    def numblocks(self) -> int:
        return len(self.row_chunks)

    @property
    def name(self) -> str:
        return self.blocks.name

    @property
    def _meta(self) -> Any:
        return self.blocks._meta

    @property
    def backend(self) -> str:
        return backend_name(self)

    @property
    def nnz(self) -> int:
        """Number of stored entries (computes)."""
        return int(self.nnz_per_block().sum().compute())

    def nnz_per_block(self) -> da.Array:
        """Stored entries of each row block, as a small dask array."""
        return self.blocks.map_blocks(_block_nnz, chunks=((1,) * self.numblocks,), drop_axis=1,
                                      dtype=np.int64, meta=np.empty(0, np.int64))

    def __repr__(self) -> str:
        return (f"<CSRMatrix shape={self.shape} dtype={self.dtype} blocks={self.numblocks} "
                f"backend={self.backend}>")

    def _repr_html_(self) -> str:
        """In Jupyter: the shape, type and row blocks, and the block graph's own dask display."""
        rows = self.row_chunks
        head = (f"<p><strong>CSRMatrix</strong> {self.shape[0]:,} x {self.shape[1]:,} {self.dtype} "
                f"({self.backend} CSR blocks): {self.numblocks} row blocks of {min(rows):,} to "
                f"{max(rows):,} rows</p>")
        return head + self.blocks._repr_html_()

    # --------------------------------------------------- dask collection API
    def __dask_graph__(self):
        return self.blocks.__dask_graph__()

    def __dask_keys__(self):
        return self.blocks.__dask_keys__()

    def __dask_layers__(self):
        return self.blocks.__dask_layers__()

    def __dask_tokenize__(self):
        return ("daskpml.CSRMatrix", self.blocks.name)

    __dask_optimize__ = staticmethod(da.Array.__dask_optimize__)
    __dask_scheduler__ = staticmethod(da.Array.__dask_scheduler__)

    def __dask_postcompute__(self):
        return stack_blocks, ()

    def __dask_postpersist__(self):
        func, args = self.blocks.__dask_postpersist__()
        return _rebuild, (func, args)

    def persist(self, **kwargs: Any) -> CSRMatrix:
        """Compute the blocks and keep them in (distributed) memory."""
        (out,) = dask.persist(self, **kwargs)
        return out

    def compute(self, **kwargs: Any) -> Any:
        """The whole matrix as one SciPy (or cupyx) CSR matrix on the client."""
        (out,) = dask.compute(self, **kwargs)
        return out

    def to_scipy(self) -> Any:
        """The whole matrix as a ``scipy.sparse.csr_matrix`` on the client (host memory)."""
        return to_backend(self.compute(), "numpy")

    def to_delayed(self) -> list:
        return list(self.blocks.to_delayed().ravel())

    # --------------------------------------------------------- block maps
    def map_blocks(self, func: Any, *args: Any, dtype: Any = None, meta: Any = None,
                   **kwargs: Any) -> CSRMatrix:
        """Apply ``func`` to every block; it must return a CSR block with the same rows."""
        dtype = dtype or self.dtype
        meta = meta if meta is not None else sparse_meta(self._meta, dtype)
        return CSRMatrix(self.blocks.map_blocks(func, *args, dtype=dtype, meta=meta, **kwargs))

    def astype(self, dtype: Any) -> CSRMatrix:
        if np.dtype(dtype) == self.dtype:
            return self
        return self.map_blocks(_astype, np.dtype(dtype), dtype=np.dtype(dtype))

    def to_backend(self, backend: str) -> CSRMatrix:
        return to_backend(self, backend)

    def rechunk(self, row_chunks: Any) -> CSRMatrix:
        """Same matrix with other row blocks (``"auto"``, rows per block, or sizes)."""
        if not isinstance(row_chunks, (str, int, np.integer)) and tuple(row_chunks) == self.row_chunks:
            return self
        if isinstance(row_chunks, str):
            row_chunks = auto_row_chunks(self.shape[0], self.nnz, row_chunks)
        chunks = auto_row_chunks(self.shape[0], 0, row_chunks)
        blocks = self.blocks.rechunk({0: chunks})
        return CSRMatrix(blocks.map_blocks(_tocsr, dtype=self.dtype, meta=self._meta))

    # ------------------------------------------------------- elementwise
    def power(self, exponent: float) -> CSRMatrix:
        """Elementwise power of the stored entries (MCL inflation)."""
        dtype = np.result_type(self.dtype, np.float64 if not float(exponent).is_integer() else self.dtype)
        return self.map_blocks(_power, exponent, dtype=dtype)

    def prune(self, threshold: float) -> CSRMatrix:
        """Drop stored entries whose absolute value is below ``threshold``."""
        if threshold < 0 or not np.isfinite(threshold):
            raise ValueError(f"threshold must be finite and >= 0, got {threshold}.")
        return self.map_blocks(_prune, float(threshold))

    def __abs__(self) -> CSRMatrix:
        return self.map_blocks(_abs)

    def __mul__(self, other: Any) -> CSRMatrix:
        if not isinstance(other, Number):
            raise TypeError("CSRMatrix * x is defined for scalars; use scale_rows / scale_columns for vectors.")
        return self.map_blocks(_scale, other, dtype=np.result_type(self.dtype, other))

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> CSRMatrix:
        if not isinstance(other, Number):
            raise TypeError("CSRMatrix / x is defined for scalars only.")
        return self * (1.0 / other)

    def __neg__(self) -> CSRMatrix:
        return self * -1

    def _aligned(self, other: CSRMatrix, op: str) -> CSRMatrix:
        if not isinstance(other, CSRMatrix):
            raise TypeError(f"CSRMatrix {op} needs another CSRMatrix, got {type(other).__name__}.")
        if other.shape != self.shape:
            raise ValueError(f"shapes {self.shape} and {other.shape} differ for {op}.")
        return other.rechunk(self.row_chunks)

    def _binary(self, other: CSRMatrix, func: Any, op: str) -> CSRMatrix:
        other = self._aligned(other, op)
        dtype = np.result_type(self.dtype, other.dtype)
        blocks = da.map_blocks(func, self.blocks, other.blocks, dtype=dtype, meta=sparse_meta(self._meta, dtype))
        return CSRMatrix(blocks)

    def __add__(self, other: CSRMatrix) -> CSRMatrix:
        return self._binary(other, _add, "+")

    def __sub__(self, other: CSRMatrix) -> CSRMatrix:
        return self._binary(other, _sub, "-")

    def maximum(self, other: CSRMatrix) -> CSRMatrix:
        """Elementwise maximum with another matrix of the same shape."""
        return self._binary(other, _maximum, "maximum")

    def scale_rows(self, d: Any) -> CSRMatrix:
        """``diag(d) @ A`` without forming ``diag(d)``; ``d`` has one value per row."""
        d = _as_dask_vector(d, self.shape[0], "d", self).rechunk((self.row_chunks,))
        dtype = np.result_type(self.dtype, d.dtype)
        return CSRMatrix(self.blocks.map_blocks(_scale_rows, d[:, None], dtype=dtype,
                                                meta=sparse_meta(self._meta, dtype)))

    def scale_columns(self, d: Any) -> CSRMatrix:
        """``A @ diag(d)`` without forming ``diag(d)``; ``d`` has one value per column."""
        d = _as_dask_vector(d, self.shape[1], "d", self).rechunk(-1)
        dtype = np.result_type(self.dtype, d.dtype)
        return CSRMatrix(self.blocks.map_blocks(_scale_columns, d, dtype=dtype,
                                                meta=sparse_meta(self._meta, dtype)))

    # --------------------------------------------------------- reductions
    def sum(self, axis: int | None = None) -> da.Array:
        """Sum of all entries (``axis=None``), row sums (``axis=1``) or column sums (``axis=0``)."""
        xp, _ = get_namespace(self)
        if axis in (1, -1):
            return self.blocks.map_blocks(_row_sums, drop_axis=1, dtype=self.dtype,
                                          meta=xp.empty(0, self.dtype))
        partial = self.blocks.map_blocks(_col_sums, chunks=((1,) * self.numblocks, self.chunks[1]),
                                         dtype=self.dtype, meta=xp.empty((0, 0), self.dtype))
        if axis == 0:
            return partial.sum(axis=0)
        if axis is None:
            return partial.sum()
        raise ValueError(f"axis must be None, 0 or 1, got {axis}.")

    def max_abs(self) -> da.Array:
        """Largest absolute value of the stored entries (0 for an empty matrix), lazily."""
        return self.blocks.map_blocks(_block_max_abs, chunks=((1,) * self.numblocks,), drop_axis=1,
                                      dtype=np.float64, meta=np.empty(0)).max()

    def diagonal(self) -> da.Array:
        """Main diagonal of a square matrix, chunked like the rows."""
        if self.shape[0] != self.shape[1]:
            raise ValueError(f"diagonal() needs a square matrix, got shape {self.shape}.")
        xp, _ = get_namespace(self)
        return self.blocks.map_blocks(_diagonal, drop_axis=1, dtype=self.dtype, meta=xp.empty(0, self.dtype))

    def is_symmetric(self, tol: float = 1e-10) -> bool:
        """Whether ``max|A - A.T| <= tol * max|A|`` (computes; moves only two numbers to the client)."""
        if self.shape[0] != self.shape[1]:
            return False
        diff, scale = dask.compute((self - self.T).max_abs(), self.max_abs())
        return float(diff) <= tol * max(float(scale), 1e-300)

    # ------------------------------------------------------------ products
    def __matmul__(self, other: Any) -> Any:
        from ._products import matmul

        return matmul(self, other)

    def __rmatmul__(self, other: Any) -> Any:
        from ._products import rmatmul

        return rmatmul(self, other)

    dot = __matmul__

    @property
    def T(self) -> CSRMatrix:
        return self.transpose()

    def transpose(self, row_chunks: Any = None) -> CSRMatrix:
        from ._products import transpose

        return transpose(self, row_chunks=row_chunks)

    def topk_per_column(self, k: int) -> CSRMatrix:
        from ._products import topk_per_column

        return topk_per_column(self, k)


def stack_blocks(results: Sequence) -> Any:
    """Stack computed row blocks (a list, or a list of one-element rows) into one CSR matrix.

        Parameters
        ----------
        results : sequence
            The blocks in row order.

        Returns
        -------
        sparse matrix
            SciPy or cupyx CSR.

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> stack_blocks([sp.identity(2, format="csr"), sp.identity(2, format="csr")]).shape
        (4, 2)
    """
    blocks = [b for row in results for b in (row if isinstance(row, (list, tuple)) else [row])]
    _, xsp = get_namespace(blocks[0])
    return xsp.vstack(blocks, format="csr") if len(blocks) > 1 else blocks[0].tocsr()


def _rebuild(dsk: Any, func: Any, args: tuple, rename: Any = None) -> CSRMatrix:
    return CSRMatrix(func(dsk, *args, rename=rename))


def _as_dask_vector(d: Any, length: int, name: str, like: Any) -> da.Array:
    if not isinstance(d, da.Array):
        xp, _ = get_namespace(like)
        d = da.from_array(xp.asarray(d), chunks=-1)
    if d.ndim != 1 or d.shape[0] != length:
        raise ValueError(f"{name} must be a vector of length {length}, got shape {tuple(d.shape)}.")
    return d


def from_block_graph(name: str, dsk: dict, dependencies: list, row_chunks: Sequence[int],
                     n_cols: int, meta: Any) -> CSRMatrix:
    """A CSRMatrix from a task graph with keys ``(name, i, 0)``, one per row block.

        Parameters
        ----------
        name : str
            The graph layer's name.
        dsk : dict
            The tasks.
        dependencies : list
            The collections the tasks read.
        row_chunks : sequence of int
            Rows of each block.
        n_cols : int
            Columns of the matrix.
        meta : sparse matrix
            An empty block of the right type (SciPy or cupyx CSR).

        Returns
        -------
        CSRMatrix

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> dsk = {("eye", 0, 0): sp.identity(2, format="csr")}
        >>> from_block_graph("eye", dsk, [], (2,), 2, sp.csr_matrix((0, 0))).shape
        (2, 2)
    """
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=dependencies)
    return CSRMatrix(da.Array(graph, name, chunks=(tuple(row_chunks), (n_cols,)), meta=meta))


def from_array(x: Any, chunks: Any = "auto", *, backend: str | None = None) -> CSRMatrix:
    """Distribute a matrix as a :class:`CSRMatrix`.

        Parameters
        ----------
        x : sparse matrix, array, dask array or CSRMatrix
            SciPy / cupyx sparse, NumPy / CuPy dense, a dask array of sparse or dense blocks.
        chunks : "auto", int or tuple of int
            Row blocks: ``"auto"`` targets ``daskpml.sparse.block-nnz`` stored
            entries per block, an int is rows per block, a tuple gives the sizes.
        backend : "numpy" or "cupy", optional
            Move the blocks to this backend (default: stay where ``x`` is).

        Returns
        -------
        CSRMatrix

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> A = from_array(sp.identity(10, format="csr"), chunks=4)
        >>> A.row_chunks
        (4, 4, 2)
    """
    if isinstance(x, CSRMatrix):
        out = x if chunks == "auto" else x.rechunk(chunks)
    elif isinstance(x, da.Array):
        if x.ndim != 2:
            raise ValueError(f"a sparse matrix must be 2-D, got shape {x.shape}.")
        blocks = x.rechunk({1: -1}) if len(x.chunks[1]) != 1 else x
        if chunks != "auto":
            blocks = blocks.rechunk({0: auto_row_chunks(x.shape[0], 0, chunks)})
        out = CSRMatrix(blocks.map_blocks(_tocsr, dtype=x.dtype, meta=sparse_meta(x._meta, x.dtype)))
    else:
        if not hasattr(x, "shape") or len(x.shape) != 2:
            raise ValueError(f"a sparse matrix must be 2-D, got {type(x).__name__} with shape {getattr(x, 'shape', None)}.")
        x = _tocsr(x)
        row_chunks = auto_row_chunks(x.shape[0], x.nnz, chunks)
        name = f"csr-from-array-{tokenize(x.data, x.indices, x.indptr, x.shape, row_chunks)}"
        offsets = np.concatenate([[0], np.cumsum(row_chunks)])
        pieces = scatter_blocks([x[int(offsets[i]):int(offsets[i + 1])] for i in range(len(row_chunks))],
                                [(name, i, 0) for i in range(len(row_chunks))])
        dsk = {(name, i, 0): piece for i, piece in enumerate(pieces)}
        out = from_block_graph(name, dsk, [], row_chunks, x.shape[1], sparse_meta(x, x.dtype))
    return out if backend is None else to_backend(out, backend)
