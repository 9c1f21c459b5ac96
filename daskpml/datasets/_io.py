"""Loaders and writers of graphs, matrices, labels and results.

Formats are chosen by the file name and checked against the contents: a
``.npz`` that is not a zip archive, a ``.mtx`` without the Matrix Market
header or a ``.gz`` that is not gzip fails with :class:`DataFormatError`
naming the file and what it really looks like.
"""

from __future__ import annotations

import gzip
import os
from typing import Any, NamedTuple, Sequence

import dask.array as da
import numpy as np
import scipy.io
import scipy.sparse as sp

from .._files import (DAMAGED, MAGIC, DataFormatError, atomic_path, check_readable, damaged_file, describe_head,
                      check_npy, expect_magic, load_npy, open_npz, read_head)
from ..backend import is_sparse, to_backend, to_numpy
from ..results import write_netcdf
from ..runtime import distribute_rows
from ..sparse import CSRMatrix, from_array
from . import _chunked

EDGE_LIST_SUFFIXES = (".tsv", ".txt", ".abc", ".csv", ".edges")


class LoadedGraph(NamedTuple):
    """A graph read from a file: the adjacency and the name of each node (row).

        Parameters
        ----------
        adjacency : CSRMatrix
            The square adjacency matrix.
        nodes : numpy.ndarray
            The name of each row, in row order.

        Examples
        --------
        >>> g = LoadedGraph(*load_karate())
        >>> g.adjacency.shape
        (34, 34)
    """

    adjacency: CSRMatrix
    nodes: np.ndarray


class Planetoid(NamedTuple):
    """A Planetoid-style node-classification data set (Cora, CiteSeer, PubMed).

        Parameters
        ----------
        adjacency : CSRMatrix
            The citation graph (n x n).
        features : CSRMatrix
            Node features (n x f).
        labels : numpy.ndarray
            The class of each node.
        idx_train, idx_val, idx_test : numpy.ndarray
            Node indices of the standard splits.

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> from daskpml.sparse import from_array
        >>> A = from_array(sp.identity(4, format="csr"))
        >>> p = Planetoid(A, A, np.zeros(4, int), np.arange(2), np.arange(2, 3), np.arange(3, 4))
        >>> p.idx_train.tolist()
        [0, 1]
    """

    adjacency: CSRMatrix
    features: CSRMatrix
    labels: np.ndarray
    idx_train: np.ndarray
    idx_val: np.ndarray
    idx_test: np.ndarray


def _suffix(path: str) -> str:
    name = path.lower()
    name = name[:-3] if name.endswith(".gz") else name
    return os.path.splitext(name)[1]


def _load_npz_sparse(path: str) -> sp.csr_matrix:
    with open_npz(path) as f:
        keys = sorted(f.files)
    if not {"format", "shape"} <= set(keys):
        raise DataFormatError(
            f"{path} is a .npz archive but not a scipy.sparse matrix (it holds {keys}); "
            "write sparse matrices with scipy.sparse.save_npz or daskpml.datasets.save_npz."
        )
    try:
        return sp.load_npz(path).tocsr()
    except DAMAGED + (ValueError, KeyError, OSError) as err:
        raise damaged_file(path, "sparse .npz archive", err) from err


def _read_mtx(path: str) -> Any:
    expect_magic(path, read_head(path), (b"%%MatrixMarket", b"%%matrixmarket"), "a Matrix Market (.mtx) file")
    try:
        return scipy.io.mmread(path)
    except Exception as err:
        raise DataFormatError(f"{path} has a Matrix Market header but could not be parsed: {err}.") from err


def _read_edge_list(path: str, nodes: Sequence | None, duplicates: str = "sum") -> tuple[sp.csr_matrix, np.ndarray]:
    import pandas as pd

    head = read_head(path)
    found = describe_head(head)
    if path.lower().endswith(".gz"):
        expect_magic(path, head, (b"\x1f\x8b",), "a gzip-compressed (.gz) file")
    elif head.startswith(b"\x1f\x8b"):
        raise DataFormatError(f"{path} is gzip-compressed but its name does not end in .gz; rename it to {path}.gz.")
    elif found in MAGIC.values() or found.startswith("binary"):
        raise DataFormatError(
            f"{path} is named like a text edge list but its contents are {found}. Rename it to "
            "match its contents, or convert it with `daskpml datasets convert IN OUT`."
        )
    sep = "," if path.lower().endswith((".csv", ".csv.gz")) else r"\s+"
    try:
        table = pd.read_csv(path, sep=sep, header=None, comment="#", dtype=str, keep_default_na=False,
                            engine="python" if sep == "," else "c",
                            skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        table = pd.DataFrame(columns=[0, 1])
    except pd.errors.ParserError as err:
        raise DataFormatError(f"{path}: every line must be 'source target [weight]': {err}") from err
    except DAMAGED + (OSError, UnicodeDecodeError) as err:
        raise damaged_file(path, "edge list", err) from err
    if table.shape[1] not in (2, 3):
        raise DataFormatError(
            f"{path}: every line must be 'source target [weight]', but lines have {table.shape[1]} fields."
        )
    short = (table.isna() | (table == "")).any(axis=1).to_numpy()
    if short.any():
        line = int(np.flatnonzero(short)[0]) + 1
        raise DataFormatError(f"{path}: data line {line} has fewer fields than the others ('source target [weight]').")
    if table.shape[1] == 3:
        weights = pd.to_numeric(table[2], errors="coerce").to_numpy(dtype=np.float64)
        bad = ~np.isfinite(weights)
        if bad.any():
            line = int(np.flatnonzero(bad)[0]) + 1
            raise DataFormatError(
                f"{path}: the weight {table[2].iloc[line - 1]!r} on data line {line} is not a finite number."
            )
    else:
        weights = np.ones(table.shape[0])
    src, dst = table[0].to_numpy(), table[1].to_numpy()
    if nodes is None:
        codes, names = pd.factorize(np.concatenate([src, dst]))
        names = np.asarray(names, dtype=str)
    else:
        names = np.asarray([str(n) for n in nodes])
        index = pd.Index(names)
        if not index.is_unique:
            raise ValueError(f"the node list for {path} has repeated names; each node must appear once.")
        codes = index.get_indexer(np.concatenate([src, dst]))
        if (codes < 0).any():
            missing = sorted(set(np.concatenate([src, dst])[codes < 0]))[:5]
            raise ValueError(f"{path} names nodes that are not in the node list, for example {missing}.")
    m = src.shape[0]
    n = names.shape[0]
    rows, cols = codes[:m].astype(np.int64), codes[m:].astype(np.int64)
    if duplicates == "max" and m:
        pairs, inverse = np.unique(rows * n + cols, return_inverse=True)
        top = np.full(pairs.shape[0], -np.inf)
        np.maximum.at(top, inverse, weights)
        rows, cols, weights = pairs // n, pairs % n, top
    A = sp.csr_matrix((weights, (rows, cols)), shape=(n, n))
    A.sum_duplicates()
    return A, names


def load_graph(path: str | os.PathLike, *, chunks: Any = "auto", symmetrize: bool | None = None,
               nodes: Sequence | None = None, dtype: Any = np.float64, backend: str | None = None,
               duplicates: str = "sum") -> LoadedGraph:
    """Read a graph: SciPy ``.npz``, Matrix Market ``.mtx``, or an edge list.

        Edge lists (``.tsv``, ``.txt``, ``.abc`` as mcl reads, ``.csv``) have one
        edge per line, ``source target [weight]`` separated by whitespace (commas
        for ``.csv``); ``#`` starts a comment. Node names may be any strings and
        are numbered in order of first appearance, unless ``nodes`` gives the
        order.

        Parameters
        ----------
        path : str or os.PathLike
            The file (``.gz`` edge lists are read too).
        chunks : "auto", int or tuple of int, default "auto"
            Row blocks of the result (see :func:`daskpml.sparse.auto_row_chunks`).
        symmetrize : bool, optional
            Make the graph undirected with ``max(A, A.T)``. Default: yes for edge
            lists, no for matrix files (they are returned as stored).
        nodes : sequence of str, optional
            The node order of an edge list.
        dtype : numpy dtype, default float64
            The weights' type.
        backend : {"numpy", "cupy"}, optional
            Put the blocks on this backend (default NumPy).
        duplicates : {"sum", "max"}, default "sum"
            Repeated edges add up, or keep the largest weight (as mcl reads ``.abc`` files).

        Returns
        -------
        LoadedGraph
            ``(adjacency, nodes)``: a square :class:`CSRMatrix` and the node names.

        Examples
        --------
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "g.tsv")
        >>> _ = open(path, "w").write("a\\tb\\nb\\tc\\n")
        >>> g = load_graph(path)
        >>> g.adjacency.shape, [str(node) for node in g.nodes]
        ((3, 3), ['a', 'b', 'c'])
    """
    path = check_readable(path)
    suffix = _suffix(path)
    if suffix == ".npz":
        A, names = _load_npz_sparse(path), None
    elif suffix == ".mtx":
        A, names = sp.csr_matrix(_read_mtx(path)), None
    elif suffix in EDGE_LIST_SUFFIXES:
        if duplicates not in ("sum", "max"):
            raise ValueError(f"duplicates must be 'sum' or 'max', got {duplicates!r}.")
        A, names = _read_edge_list(path, nodes, duplicates)
        symmetrize = True if symmetrize is None else symmetrize
    else:
        raise DataFormatError(
            f"{path}: unknown graph format {suffix!r}; use .npz, .mtx, or an edge list "
            f"({', '.join(EDGE_LIST_SUFFIXES)})."
        )
    if A.shape[0] != A.shape[1]:
        raise ValueError(
            f"{path} holds a {A.shape[0]} x {A.shape[1]} matrix, but a graph needs a square adjacency "
            "matrix (one row and one column per node)."
        )
    if names is None:
        names = np.arange(A.shape[0]) if nodes is None else np.asarray(nodes)
        if names.shape[0] != A.shape[0]:
            raise ValueError(f"the node list has {names.shape[0]} names but {path} has {A.shape[0]} nodes.")
    if symmetrize:
        A = A.maximum(A.T).tocsr()
    A = A.astype(dtype)
    return LoadedGraph(from_array(A, chunks, backend=backend), names)


def load_matrix(path: str | os.PathLike, *, chunks: Any = "auto", backend: str | None = None) -> Any:
    """Read a matrix from a file.

        Sparse ``.npz`` / ``.mtx`` give a :class:`CSRMatrix`; ``.npy``, dense ``.mtx``, one-array
        ``.npz`` and numeric ``.csv``/``.txt`` give a dask array chunked by rows.

        Parameters
        ----------
        path : str or os.PathLike
            The file.
        chunks : "auto", int or tuple of int, default "auto"
            Row blocks of the result (see :func:`daskpml.sparse.auto_row_chunks`).
        backend : {"numpy", "cupy"}, optional
            Put the blocks on this backend (default NumPy).

        Returns
        -------
        CSRMatrix or dask.array.Array
            The matrix, in row blocks.

        Examples
        --------
        >>> import os, tempfile, numpy as np
        >>> path = os.path.join(tempfile.mkdtemp(), "m.npy")
        >>> np.save(path, np.eye(3))
        >>> load_matrix(path).shape
        (3, 3)
    """
    path = check_readable(path)
    suffix = _suffix(path)
    on_workers = chunks == "auto" and backend in (None, "numpy")
    if suffix == ".npy":
        if on_workers:
            X = _read_on_workers(path, None)
            if X is not None:
                return X
        dense = load_npy(path)
    elif suffix == ".npz":
        with open_npz(path) as f:
            files = f.files
            if "format" in files and "indptr" in files:
                return from_array(_load_npz_sparse(path), chunks, backend=backend)
            if not files:
                raise DataFormatError(f"{path} is an empty .npz archive (it holds no arrays); save the matrix "
                                      "in it (numpy.savez(path, A) or scipy.sparse.save_npz).")
            if len(files) != 1:
                raise DataFormatError(f"{path} holds several arrays {sorted(files)}; save one matrix per file.")
            X = _read_on_workers(path, files[0]) if on_workers else None
            if X is not None:
                return X
            dense = f[files[0]]
    elif suffix == ".mtx":
        M = _read_mtx(path)
        if is_sparse(M):
            return from_array(M, chunks, backend=backend)
        dense = np.asarray(M)
    elif suffix in (".csv", ".txt", ".tsv"):
        if suffix == ".csv" and on_workers:
            with open(path) as f:
                n_columns = len(f.readline().split(","))
            read = _chunked.read_csv(path, n_columns, False, None)
            if read is not None:
                return read
        try:
            dense = np.loadtxt(path, delimiter="," if suffix == ".csv" else None, ndmin=2)
        except ValueError as err:
            raise DataFormatError(f"{path} is not a numeric table: {err}.") from err
    else:
        raise DataFormatError(f"{path}: unknown matrix format {suffix!r}; use .npy, .npz, .mtx, .csv or .txt.")
    if dense.ndim != 2:
        raise ValueError(f"{path} holds an array of shape {dense.shape}; a 2-D matrix is required.")
    X = distribute_rows(dense, chunks)                  # scattered, not pickled into every graph
    return to_backend(X, backend) if backend else X


def read_array(path: str | os.PathLike, member: str | None = None, *, like: Any = None) -> Any:
    """A ``.npy`` array (or an ``.npz`` archive's ``member``) whose row blocks the workers read.

        Returned when the array is large (``daskpml.datasets.worker-read-bytes``) and every worker sees
        the file, so that dask can read a lost block again; else None (read it here instead).

        Parameters
        ----------
        path : str or os.PathLike
            The ``.npy`` or ``.npz`` file.
        member : str, optional
            The member of an ``.npz`` archive.
        like : dask.array.Array, optional
            An array read this way whose row blocks the result follows, whatever its size.

        Returns
        -------
        dask.array.Array or None
            The array in row blocks, or None when it is small or the workers do not see the file.

        Examples
        --------
        >>> import os, tempfile, numpy as np
        >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
        >>> np.save(path, np.ones((4, 2)))
        >>> read_array(path) is None          # small: read it here
        True
    """
    path = check_readable(path)
    if like is not None:
        return _chunked.read_npy(path, member, chunks=like.chunks[0])
    return _read_on_workers(path, member)


def load_csv(path: str | os.PathLike, target: str | int | None = None) -> tuple[Any, Any]:
    """Read ``(X, y)`` from a numeric CSV file.

        ``y`` is the last column, or the column ``target`` names (by header name or index); a header
        line is detected. Large files that every worker sees are parsed by the workers, each its own
        byte range (dask arrays); others are read here (NumPy arrays).

        Parameters
        ----------
        path : str or os.PathLike
            The CSV file.
        target : str or int, optional
            The column of the targets (a header name or an index); default the last column.

        Returns
        -------
        X : numpy.ndarray or dask.array.Array
            The other columns (n x d).
        y : numpy.ndarray or dask.array.Array
            The targets (n,).

        Examples
        --------
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "d.csv")
        >>> _ = open(path, "w").write("a,b,y\\n1,2,0\\n3,4,1\\n")
        >>> X, y = load_csv(path)
        >>> X.shape, y.tolist()
        ((2, 2), [0.0, 1.0])
    """
    path = check_readable(path)
    with open(path) as f:
        first = f.readline().strip().split(",")
    try:
        [float(v) for v in first]
        header = None
    except ValueError:
        header = [h.strip() for h in first]
    n_columns = len(first)
    if target is None:
        col = n_columns - 1
    elif header is not None and str(target) in header:
        col = header.index(str(target))
    else:
        try:
            col = int(target)
        except ValueError:
            raise DataFormatError(f"target column {target!r} is not in the header of {path} ({header}).") from None
    if not -n_columns <= col < n_columns:
        raise DataFormatError(f"target column {target!r} is out of range: {path} has {n_columns} columns.")
    col %= n_columns
    read = _chunked.read_csv(path, n_columns, header is not None, col)
    if read is not None:
        return read
    try:
        data = np.loadtxt(path, delimiter=",", skiprows=int(header is not None), ndmin=2)
    except ValueError as err:
        raise DataFormatError(f"{path} is not a numeric CSV table: {err}.") from err
    return np.delete(data, col, axis=1), data[:, col]


def _read_on_workers(path: str, member: str | None) -> Any:
    if member is None:
        check_npy(path)
    try:
        shape, fortran, dtype, offset = _chunked.npy_header(path, member)
    except (ValueError, OSError, KeyError, *DAMAGED) as err:
        raise damaged_file(path, ".npz archive" if member else ".npy array", err) from err
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if member is None and offset + nbytes != os.path.getsize(path):
        raise DataFormatError(f"{path} is a damaged .npy array: its header says {nbytes + offset} bytes, the file "
                              f"has {os.path.getsize(path)}; it may be truncated. Write or copy it again.")
    if fortran or dtype.kind not in "biuf" or not _chunked.worth_reading_on_workers(path, nbytes):
        return None
    return _chunked.read_npy(path, member)


def load_svmlight(path: str | os.PathLike, *, n_features: int | None = None, chunks: Any = "auto",
                  dtype: Any = np.float64, zero_based: bool | str = "auto",
                  backend: str | None = None) -> tuple[CSRMatrix, da.Array]:
    """Read svmlight / LIBSVM data (plain or ``.gz``).

        Parameters
        ----------
        path : str or os.PathLike
            The file.
        n_features : int, optional
            Number of columns (default: the largest index seen).
        chunks : "auto", int or tuple of int, default "auto"
            Row blocks of the result (see :func:`daskpml.sparse.auto_row_chunks`).
        dtype : numpy dtype, default float64
            The values' type.
        zero_based : bool or "auto", default "auto"
            Whether the file's column indices start at 0 (as scikit-learn's reader).
        backend : {"numpy", "cupy"}, optional
            Put the blocks on this backend (default NumPy).

        Returns
        -------
        X : CSRMatrix
            The features.
        y : dask.array.Array
            The targets.

        Examples
        --------
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "d.svm")
        >>> _ = open(path, "w").write("1 1:0.5 3:1\\n-1 2:2\\n")
        >>> X, y = load_svmlight(path)
        >>> X.shape, y.compute().tolist()
        ((2, 3), [1.0, -1.0])
    """
    from sklearn.datasets import load_svmlight_file

    path = check_readable(path)
    gz = path.lower().endswith(".gz")
    head = read_head(path)
    if gz:
        expect_magic(path, head, (b"\x1f\x8b",), "a gzip-compressed (.gz) file")
    elif head.startswith(b"\x1f\x8b"):
        raise DataFormatError(f"{path} is gzip-compressed but its name does not end in .gz; rename it to {path}.gz.")
    try:
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            X, y = load_svmlight_file(f, n_features=n_features, dtype=dtype, zero_based=zero_based)
    except (ValueError, OSError, EOFError) as err:
        raise DataFormatError(f"{path} is not valid svmlight/LIBSVM data ('label index:value ...' per line): {err}") from err
    if not gz and chunks == "auto" and backend in (None, "numpy") and \
            _chunked.worth_reading_on_workers(path, 12 * int(X.nnz) + 8 * X.shape[0]):
        zero = zero_based if zero_based != "auto" else _has_zero_index(path)
        read = _chunked.read_svmlight(path, X.shape[0], X.shape[1], bool(zero), dtype, int(X.nnz))
        if read is not None:                 # the workers parse their own lines: a lost block is read again
            return read
    Xd = from_array(X, chunks, backend=backend)
    yd = da.from_array(y, chunks=(Xd.row_chunks,))
    return Xd, (to_backend(yd, backend) if backend else yd)


def _has_zero_index(path: str) -> bool:
    """Whether an svmlight file uses the feature index 0 (scikit-learn's ``zero_based="auto"`` rule)."""
    import re

    with open(path, "rb") as f:
        return re.search(rb"[ \t]0:", f.read()) is not None


_PLANETOID_KEYS = ("adj_data", "adj_indices", "adj_indptr", "adj_shape", "x_data", "x_indices", "x_indptr",
                   "x_shape", "labels", "idx_train", "idx_val", "idx_test")


def load_planetoid(path: str | os.PathLike, *, chunks: Any = "auto", backend: str | None = None) -> Planetoid:
    """Read a Planetoid node-classification set stored as plain arrays in one ``.npz``.

        The archive holds ``adj_*`` and ``x_*`` CSR parts, ``labels``, ``idx_train``, ``idx_val`` and
        ``idx_test``.

        Parameters
        ----------
        path : str or os.PathLike
            The ``.npz`` file.
        chunks : "auto", int or tuple of int, default "auto"
            Row blocks of the result (see :func:`daskpml.sparse.auto_row_chunks`).
        backend : {"numpy", "cupy"}, optional
            Put the blocks on this backend (default NumPy).

        Returns
        -------
        Planetoid
            The graph, the features, the labels and the splits.

        Examples
        --------
        >>> import os, tempfile, numpy as np, scipy.sparse as sp
        >>> A = sp.identity(3, format="csr")
        >>> parts = {f"{p}_{k}": v for p in ("adj", "x") for k, v in
        ...          (("data", A.data), ("indices", A.indices), ("indptr", A.indptr), ("shape", A.shape))}
        >>> path = os.path.join(tempfile.mkdtemp(), "p.npz")
        >>> np.savez(path, labels=np.zeros(3, int), idx_train=[0], idx_val=[1], idx_test=[2], **parts)
        >>> load_planetoid(path).features.shape
        (3, 3)
    """
    with open_npz(path) as f:
        missing = [k for k in _PLANETOID_KEYS if k not in f.files]
        if missing:
            raise DataFormatError(f"{path} is not in the Planetoid layout: it lacks {missing}.")
        data = {k: f[k] for k in _PLANETOID_KEYS}
    adj = sp.csr_matrix((data["adj_data"], data["adj_indices"], data["adj_indptr"]), shape=tuple(data["adj_shape"]))
    x = sp.csr_matrix((data["x_data"], data["x_indices"], data["x_indptr"]), shape=tuple(data["x_shape"]))
    A = from_array(adj.astype(np.float64), chunks, backend=backend)
    X = from_array(x.astype(np.float64), A.row_chunks, backend=backend)
    return Planetoid(A, X, data["labels"].astype(np.int64), data["idx_train"].astype(np.int64),
                     data["idx_val"].astype(np.int64), data["idx_test"].astype(np.int64))


def load_karate(*, chunks: Any = "auto", backend: str | None = None) -> tuple[CSRMatrix, np.ndarray]:
    """Zachary's karate club (34 nodes, 78 edges, unweighted) and the two clubs (0 = Mr. Hi, 1 = Officer).

        Parameters
        ----------
        chunks : "auto", int or tuple of int, default "auto"
            Row blocks of the result (see :func:`daskpml.sparse.auto_row_chunks`).
        backend : {"numpy", "cupy"}, optional
            Put the blocks on this backend (default NumPy).

        Returns
        -------
        A : CSRMatrix
            The symmetric adjacency (34 x 34).
        labels : numpy.ndarray
            The club of each member.

        Examples
        --------
        >>> A, clubs = load_karate()
        >>> A.shape, int(clubs.sum())
        ((34, 34), 17)
    """
    try:
        import networkx as nx
    except ImportError as err:
        raise ImportError("load_karate needs networkx: pip install networkx (or daskpml[test]).") from err
    G = nx.karate_club_graph()
    A = sp.csr_matrix(nx.to_scipy_sparse_array(G, nodelist=range(G.number_of_nodes()), weight=None, dtype=np.float64))
    labels = np.array([0 if G.nodes[v]["club"] == "Mr. Hi" else 1 for v in range(G.number_of_nodes())])
    return from_array(A, chunks, backend=backend), labels


def load_digits(*, chunks: Any = "auto", backend: str | None = None) -> tuple[da.Array, da.Array]:
    """scikit-learn's 8 x 8 digits (1797 x 64 pixel intensities 0..16) and their labels 0..9.

        Parameters
        ----------
        chunks : "auto", int or tuple of int, default "auto"
            Row blocks of the result (see :func:`daskpml.sparse.auto_row_chunks`).
        backend : {"numpy", "cupy"}, optional
            Put the blocks on this backend (default NumPy).

        Returns
        -------
        X : dask.array.Array
            Pixel intensities (1797 x 64).
        y : dask.array.Array
            Labels 0..9.

        Examples
        --------
        >>> X, y = load_digits()
        >>> X.shape
        (1797, 64)
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    X, y = _sk_load_digits(return_X_y=True)
    Xd = da.from_array(X.astype(np.float64), chunks=(chunks, -1))
    yd = da.from_array(y.astype(np.int64), chunks=(Xd.chunks[0],))
    if backend:
        Xd, yd = to_backend(Xd, backend), to_backend(yd, backend)
    return Xd, yd


# ------------------------------------------------------------------ writers


def _host_sparse(A: Any) -> sp.csr_matrix:
    if isinstance(A, CSRMatrix):
        return A.to_scipy()
    return sp.csr_matrix(to_numpy(A.compute() if hasattr(A, "compute") else A))


def save_npz(path: str | os.PathLike, A: Any) -> None:
    """Write a sparse matrix (CSRMatrix, SciPy or cupyx) as a SciPy ``.npz``, atomically.

        Parameters
        ----------
        path : str or os.PathLike
            The file.
        A : CSRMatrix or sparse matrix
            The matrix.

        Returns
        -------
        None

        Examples
        --------
        >>> import os, tempfile, scipy.sparse as sp
        >>> path = os.path.join(tempfile.mkdtemp(), "a.npz")
        >>> save_npz(path, sp.identity(3, format="csr"))
        >>> sp.load_npz(path).nnz
        3
    """
    with atomic_path(path) as tmp:
        sp.save_npz(tmp, _host_sparse(A))


def save_graph(path: str | os.PathLike, A: Any, *, nodes: Sequence | None = None) -> None:
    """Write a graph as ``.npz``, ``.mtx`` or an edge list (``source<TAB>target<TAB>weight``).

        Parameters
        ----------
        path : str or os.PathLike
            The file; its suffix picks the format. Written atomically.
        A : CSRMatrix, SciPy sparse matrix or array
            The adjacency.
        nodes : sequence of str, optional
            Node names for an edge list (default the row numbers).

        Returns
        -------
        None

        Examples
        --------
        >>> import os, tempfile, scipy.sparse as sp
        >>> path = os.path.join(tempfile.mkdtemp(), "g.tsv")
        >>> save_graph(path, sp.csr_matrix([[0, 1.0], [1.0, 0]]), nodes=["x", "y"])
        >>> load_graph(path).adjacency.shape
        (2, 2)
    """
    path = os.fspath(path)
    suffix = _suffix(path)
    if suffix == ".npz":
        return save_npz(path, A)
    M = _host_sparse(A)
    with atomic_path(path) as tmp:
        if suffix == ".mtx":
            scipy.io.mmwrite(tmp, M)
            if not os.path.exists(tmp) and os.path.exists(tmp + ".mtx"):
                os.replace(tmp + ".mtx", tmp)
        elif suffix in EDGE_LIST_SUFFIXES:
            coo = M.tocoo()
            names = np.asarray(nodes) if nodes is not None else np.arange(M.shape[0])
            sep = "," if suffix == ".csv" else "\t"
            with open(tmp, "w") as f:
                for r, c, v in zip(names[coo.row], names[coo.col], coo.data):
                    f.write(f"{r}{sep}{c}{sep}{v:.17g}\n")
        else:
            raise DataFormatError(f"{path}: unknown graph format {suffix!r}; use .npz, .mtx or an edge list.")


def write_labels(path: str | os.PathLike, labels: Any, *, nodes: Sequence | None = None) -> None:
    """Write labels as TSV with a header line ``node<TAB>label``.

        Parameters
        ----------
        path : str or os.PathLike
            The file (written atomically).
        labels : xarray.DataArray, array or dask array
            One label per node; a DataArray's coordinate gives the node names.
        nodes : sequence of str, optional
            Node names (default: the DataArray's coordinate, else the row numbers).

        Returns
        -------
        None

        Examples
        --------
        >>> import os, tempfile, numpy as np
        >>> path = os.path.join(tempfile.mkdtemp(), "l.tsv")
        >>> write_labels(path, np.array([1, 0]), nodes=["a", "b"])
        >>> open(path).read().splitlines()
        ['node\\tlabel', 'a\\t1', 'b\\t0']
    """
    import xarray as xr

    if isinstance(labels, xr.DataArray):
        nodes = labels[labels.dims[0]].values if nodes is None else nodes
        values = labels.values
    else:
        values = np.asarray(to_numpy(labels.compute() if hasattr(labels, "compute") else labels))
    values = np.asarray(values).ravel()
    names = np.arange(values.shape[0]) if nodes is None else np.asarray(nodes)
    if names.shape[0] != values.shape[0]:
        raise ValueError(f"{names.shape[0]} node names for {values.shape[0]} labels.")
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write("node\tlabel\n")
        for name, value in zip(names, values):
            f.write(f"{name}\t{value}\n")


def write_clusters(path: str | os.PathLike, clusters: Sequence, *, nodes: Sequence | None = None) -> None:
    """Write clusters as mcl does: one cluster per line, its nodes' names separated by tabs.

        Parameters
        ----------
        path : str or os.PathLike
            The file (written atomically).
        clusters : sequence of sequences of int
            The node indices of each cluster.
        nodes : sequence of str, optional
            Node names (default the indices).

        Returns
        -------
        None

        Examples
        --------
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "c.txt")
        >>> write_clusters(path, [[0, 2], [1]])
        >>> open(path).read()
        '0\\t2\\n1\\n'
    """
    names = None if nodes is None else np.asarray(nodes)
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        for members in clusters:
            members = np.asarray(members)
            f.write("\t".join(str(x) for x in (members if names is None else names[members])) + "\n")


def read_clusters(path: str | os.PathLike) -> list[list[str]]:
    """Read clusters written one per line with tab-separated node names (mcl's label output).

        Parameters
        ----------
        path : str or os.PathLike
            The file.

        Returns
        -------
        list of list of str
            The clusters, each a list of node names.

        Examples
        --------
        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "c.txt")
        >>> write_clusters(path, [[0, 1], [2]], nodes=["a", "b", "c"])
        >>> read_clusters(path)
        [['a', 'b'], ['c']]
    """
    path = check_readable(path)
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


__all__ = ["LoadedGraph", "Planetoid", "load_csv", "load_digits", "load_graph", "load_karate", "load_matrix",
           "load_planetoid", "load_svmlight", "read_array", "read_clusters", "save_graph", "save_npz", "write_clusters",
           "write_labels", "write_netcdf"]
