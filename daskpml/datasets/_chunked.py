"""Files read by the workers themselves, block by block.

Data read on the client and scattered to the workers have one copy that dask cannot rebuild:
when the worker holding it dies, the run fails. A block that a task reads from the file can be
read again, by any worker: these readers build such tasks for the formats that allow reading a
range of rows without the rest of the file.

- ``.npy`` arrays and the members of ``.npz`` archives (``numpy.save``/``savez``; compressed
  members too, at the price of decompressing up to the block): the rows ``a:b`` are read at
  their byte offset after the array's header;
- svmlight/LIBSVM and CSV text: the client finds where each data line starts (one pass over
  the file's bytes), and each task parses its own byte range.

Gzipped text cannot be read from the middle; such files are read on the client. The workers
must see the same file (a shared file system, or one machine): :func:`workers_see` compares its
size and modification time on every worker with the client's, and the callers fall back to the
client's read when they differ.
"""

from __future__ import annotations

import io
import math
import operator
import os
import zipfile
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from .. import _config
from ..runtime import current_client, total_threads

#: a block is at most this large (bytes), whatever the worker count
BLOCK_BYTES = 128 * 2**20


def identity(path: str) -> tuple[int, int]:
    """``(size, mtime_ns)`` of a file: what says two machines see the same file."""
    stat = os.stat(path)
    return int(stat.st_size), int(stat.st_mtime_ns)


def workers_see(path: str) -> bool:
    """Whether every worker of the current client reads the same ``path`` as this process."""
    client = current_client()
    if client is None or dask.config.get("scheduler", None) not in (None, "dask.distributed"):
        return False
    mine = identity(os.path.abspath(path))
    try:
        theirs = client.run(_identity_or_none, os.path.abspath(path))
    except Exception:                      # a worker that cannot answer cannot read either
        return False
    return bool(theirs) and all(tuple(v) == mine if v is not None else False for v in theirs.values())


def _identity_or_none(path: str) -> tuple[int, int] | None:
    try:
        return identity(path)
    except OSError:
        return None


def worth_reading_on_workers(path: str, nbytes: int) -> bool:
    """Read on the workers: the array is at least ``daskpml.datasets.worker-read-bytes`` (smaller
    data are computed in this process anyway) and every worker sees the file."""
    return large(nbytes) and workers_see(path)


def large(nbytes: int) -> bool:
    """Whether data of ``nbytes`` are worth reading on the workers (``daskpml.datasets.worker-read-bytes``)."""
    return nbytes >= int(_config.get("datasets.worker-read-bytes"))


def row_chunks(n_rows: int, row_bytes: int) -> tuple[int, ...]:
    """One block per worker thread, each at most :data:`BLOCK_BYTES`."""
    parts = max(total_threads(), math.ceil(n_rows * max(row_bytes, 1) / BLOCK_BYTES), 1)
    parts = min(parts, max(n_rows, 1))
    base, extra = divmod(n_rows, parts)
    return tuple(base + (1 if i < extra else 0) for i in range(parts))


def _bounds(chunks: tuple[int, ...]) -> list[tuple[int, int]]:
    ends = np.cumsum((0,) + tuple(chunks))
    return [(int(a), int(b)) for a, b in zip(ends[:-1], ends[1:])]


# -- .npy and .npz members ----------------------------------------------------------------

def _open_array(path: str, member: str | None) -> Any:
    if member is None:
        return open(path, "rb")
    archive = zipfile.ZipFile(path)
    handle = archive.open(member + ".npy")
    handle._daskpml_archive = archive            # closed with the member (see _close)
    return handle


def _close(handle: Any) -> None:
    handle.close()
    archive = getattr(handle, "_daskpml_archive", None)
    if archive is not None:
        archive.close()


def npy_header(path: str, member: str | None = None) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """``(shape, fortran_order, dtype, offset of the data)`` of a ``.npy`` file or ``.npz`` member."""
    handle = _open_array(path, member)
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
        return tuple(shape), bool(fortran), np.dtype(dtype), int(handle.tell())
    finally:
        _close(handle)


def npy_rows(path: str, member: str | None, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a C-ordered ``.npy`` array (or ``.npz`` member), read at their offset."""
    shape, fortran, dtype, offset = npy_header(path, member)
    if fortran:
        raise ValueError(f"{path}: a Fortran-ordered array cannot be read by rows.")
    row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    out = np.empty((stop - start,) + shape[1:], dtype=dtype)
    handle = _open_array(path, member)
    try:
        handle.seek(offset + start * row)
        view = memoryview(out.reshape(-1).view(np.uint8))
        got = 0
        while got < view.nbytes:
            n = handle.readinto(view[got:])
            if not n:
                raise ValueError(f"{path}: the file ended inside rows {start}-{stop - 1}; it may be truncated.")
            got += n
    finally:
        _close(handle)
    return out


def read_npy(path: str, member: str | None = None, chunks: tuple[int, ...] | None = None) -> da.Array | None:
    """A dask array whose blocks (``chunks`` rows each, default :func:`row_chunks`) the workers
    read from ``path`` (``member`` of an ``.npz``), or None when the array cannot be read by rows
    (Fortran order, an object dtype, a 0-d array, other row counts than ``chunks``)."""
    shape, fortran, dtype, _ = npy_header(path, member)
    if fortran or dtype.hasobject or len(shape) == 0:
        return None
    row = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
    chunks = row_chunks(shape[0], row) if chunks is None else tuple(chunks)
    if sum(chunks) != shape[0]:
        return None
    name = f"read-npy-{tokenize(os.path.abspath(path), member, identity(path), chunks)}"
    rest = (0,) * (len(shape) - 1)
    dsk = {(name, i) + rest: (npy_rows, os.path.abspath(path), member, a, b)
           for i, (a, b) in enumerate(_bounds(chunks))}
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[])
    return da.Array(graph, name, chunks=(chunks,) + tuple((s,) for s in shape[1:]), dtype=dtype,
                    meta=np.empty((0,) * len(shape), dtype=dtype))


def npz_nbytes(path: str, member: str) -> int:
    """The size of an ``.npz`` member's array, from its header."""
    shape, _, dtype, _ = npy_header(path, member)
    return int(np.prod(shape, dtype=np.int64)) * dtype.itemsize


# -- text: svmlight and CSV, by byte ranges ----------------------------------------------------

#: bytes of a text file scanned at once for line ends (the file is never read whole into memory)
SCAN_BYTES = 64 * 2**20


def data_line_starts(path: str, skip_first: bool = False) -> np.ndarray:
    """Byte offsets of the data lines of a text file (not blank, not ``#`` comments; the first line
    skipped with ``skip_first``), followed by the file's size. One pass, in pieces of
    :data:`SCAN_BYTES`; memory: the offsets."""
    size = os.path.getsize(path)
    if size == 0:
        return np.zeros(1, dtype=np.int64)
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    newlines = np.concatenate([np.flatnonzero(raw[lo:lo + SCAN_BYTES] == 10) + lo
                               for lo in range(0, size, SCAN_BYTES)]).astype(np.int64)
    starts = np.concatenate([[0], newlines + 1]).astype(np.int64)
    starts = starts[starts < size]
    ends = np.concatenate([newlines, [size]])[: starts.shape[0]]
    first = np.asarray(raw[starts])
    keep = (ends > starts) & (first != ord("#")) & (first != 13)
    if skip_first and starts.shape[0]:
        keep[0] = False
    return np.concatenate([starts[keep], [size]]).astype(np.int64)


def _read_range(path: str, start: int, stop: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(start)
        return f.read(stop - start)


def svmlight_rows(path: str, start: int, stop: int, n_features: int, zero_based: bool, dtype: Any) -> tuple:
    """``(X, y)`` of the svmlight lines in bytes ``start:stop`` (which begin and end at lines)."""
    from sklearn.datasets import load_svmlight_file

    X, y = load_svmlight_file(io.BytesIO(_read_range(path, start, stop)), n_features=n_features,
                              zero_based=zero_based, dtype=dtype)
    return X.tocsr(), y


def csv_rows(path: str, start: int, stop: int, target: int | None, n_columns: int) -> Any:
    """The CSV lines in bytes ``start:stop`` as floats: ``(X, y)`` with the ``target`` column as
    ``y``, or the whole table when ``target`` is None."""
    from .._files import DataFormatError

    try:
        table = np.loadtxt(io.BytesIO(_read_range(path, start, stop)), delimiter=",", ndmin=2)
    except ValueError as err:
        raise DataFormatError(f"{path} is not a numeric CSV table (in bytes {start}-{stop}): {err}.") from err
    if table.shape[1] != n_columns:
        raise DataFormatError(f"{path}: lines in bytes {start}-{stop} have {table.shape[1]} fields, not "
                              f"{n_columns} as the first line.")
    if target is None:
        return table
    return np.delete(table, target, axis=1), table[:, target]


def _text_blocks(path: str, starts: np.ndarray, row_bytes: int) -> list[tuple[int, int, int]]:
    """``(rows, first byte, end byte)`` of each block of data lines."""
    n = starts.shape[0] - 1
    out = []
    for a, b in _bounds(row_chunks(n, row_bytes)):
        out.append((b - a, int(starts[a]), int(starts[b])))
    return out


def read_svmlight(path: str, n_rows: int, n_features: int, zero_based: bool, dtype: Any,
                  nnz: int) -> tuple[Any, da.Array] | None:
    """``(X, y)``: a CSRMatrix and a dask vector whose blocks the workers parse from their byte
    range of ``path``; None when the data lines do not match the ``n_rows`` the client parsed."""
    from ..sparse import from_block_graph

    starts = data_line_starts(path)
    if starts.shape[0] - 1 != n_rows:
        return None
    blocks = _text_blocks(path, starts, max(1, 12 * nnz // max(n_rows, 1)))
    token = tokenize(os.path.abspath(path), identity(path), n_features, zero_based, str(np.dtype(dtype)), blocks)
    parsed = f"read-svmlight-{token}"
    xname, yname = f"svmlight-X-{token}", f"svmlight-y-{token}"
    dsk: dict = {}
    for i, (_, a, b) in enumerate(blocks):
        dsk[(parsed, i)] = (svmlight_rows, os.path.abspath(path), a, b, n_features, zero_based, dtype)
        dsk[(xname, i, 0)] = (operator.getitem, (parsed, i), 0)
        dsk[(yname, i)] = (operator.getitem, (parsed, i), 1)
    rows = tuple(r for r, _, _ in blocks)
    import scipy.sparse as sp

    meta = sp.csr_matrix((0, n_features), dtype=dtype)
    x_dsk = {k: v for k, v in dsk.items() if k[0] != yname}
    X = from_block_graph(xname, x_dsk, [], rows, n_features, meta)
    y_graph = HighLevelGraph.from_collections(yname, dsk, dependencies=[])
    y = da.Array(y_graph, yname, chunks=(rows,), dtype=np.float64, meta=np.empty(0))
    return X, y


def read_csv(path: str, n_columns: int, header: bool, target: int | None) -> Any:
    """``(X, y)`` (``target`` a column index) or the whole table (``target`` None) as dask arrays
    whose blocks the workers parse from their byte range of a numeric CSV file, when the table
    (float64) holds at least ``daskpml.datasets.worker-read-bytes`` and every worker sees the
    file; else None."""
    if not workers_see(path):
        return None
    starts = data_line_starts(path, skip_first=header)
    if not large(8 * n_columns * (starts.shape[0] - 1)):
        return None
    blocks = _text_blocks(path, starts, 8 * n_columns)
    token = tokenize(os.path.abspath(path), identity(path), n_columns, header, target, blocks)
    parsed = f"read-csv-{token}"
    rows = tuple(r for r, _, _ in blocks)
    dsk: dict = {(parsed, i): (csv_rows, os.path.abspath(path), a, b, target, n_columns)
                 for i, (_, a, b) in enumerate(blocks)}
    if target is None:
        graph = HighLevelGraph.from_collections(parsed, {(parsed, i, 0): dsk[(parsed, i)] for i in range(len(rows))},
                                                dependencies=[])
        return da.Array(graph, parsed, chunks=(rows, (n_columns,)), dtype=np.float64, meta=np.empty((0, 0)))
    xname, yname = f"csv-X-{token}", f"csv-y-{token}"
    full = dict(dsk)
    for i in range(len(rows)):
        full[(xname, i, 0)] = (operator.getitem, (parsed, i), 0)
        full[(yname, i)] = (operator.getitem, (parsed, i), 1)
    X = da.Array(HighLevelGraph.from_collections(xname, full, dependencies=[]), xname,
                 chunks=(rows, (n_columns - 1,)), dtype=np.float64, meta=np.empty((0, 0)))
    y = da.Array(HighLevelGraph.from_collections(yname, full, dependencies=[]), yname, chunks=(rows,),
                 dtype=np.float64, meta=np.empty(0))
    return X, y

