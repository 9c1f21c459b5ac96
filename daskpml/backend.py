"""CPU/GPU array backends.

daskpml has one code path for NumPy/SciPy and CuPy/cupyx. Functions ask
:func:`get_namespace` for the array module ``xp`` and the sparse module
``xsp`` of their input and create new arrays like the input
(``zeros_like(meta, shape=...)``). Dispatch looks at the array (for a dask
collection, at its ``_meta``), never at type-name strings.

CuPy is imported lazily: an object can only be a CuPy array when ``cupy`` is
already imported, so CPU users never pay for (or need) CuPy.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from types import ModuleType
from typing import Any, Callable, Iterator, Literal

import numpy as np
import scipy.sparse

__all__ = ["asarray_like", "backend_name", "device_standin", "get_namespace", "gpu_count", "import_cupy", "is_sparse", "nbytes", "sparse_meta",
           "synchronize", "to_backend", "to_numpy", "zeros_like"]

BackendName = Literal["numpy", "cupy"]

_GPU_HELP = (
    "install the GPU extra (pip install 'daskpml[gpu]', or conda env create -f "
    "environment-gpu.yml) on a machine with an NVIDIA GPU and CUDA"
)


#: (xp, xsp, owns) of the module pair that stands in for CuPy (see :func:`device_standin`), or None
_STANDIN: tuple[ModuleType, ModuleType, Callable[[Any], bool]] | None = None


@contextmanager
def device_standin(xp: ModuleType, xsp: ModuleType, owns: Callable[[Any], bool]) -> Iterator[None]:
    """Route the ``"cupy"`` backend to another pair of array modules while the block runs.

    A testing hook: the test suite's ``strict`` backend is NumPy/SciPy behind arrays that refuse
    implicit conversion to the host the way CuPy does, so that the CuPy code paths (and their
    host-conversion mistakes) run on a machine without a GPU. Inside the block,
    ``get_namespace`` gives ``(xp, xsp)`` for every object ``owns`` accepts, ``backend_name``
    calls them ``"cupy"``, and ``to_backend(x, "cupy")`` makes them. It holds for this process
    only (worker processes keep the real CuPy).

    Parameters
    ----------
    xp : module
        The dense array module (CuPy's place: ``asarray``, ``cuda.get_current_stream``...).
    xsp : module
        The sparse module (cupyx.scipy.sparse's place: ``csr_matrix``, ``issparse``...).
    owns : callable(object) -> bool
        Whether an object (an array or sparse matrix) belongs to ``xp`` / ``xsp``.

    Yields
    ------
    None
        The block runs with the stand-in.

    Examples
    --------
    >>> import numpy as np, scipy.sparse
    >>> with device_standin(np, scipy.sparse, lambda obj: False):
    ...     backend_name(np.ones(1))
    'numpy'
    """
    global _STANDIN
    previous, _STANDIN = _STANDIN, (xp, xsp, owns)
    try:
        yield
    finally:
        _STANDIN = previous


def import_cupy() -> tuple[ModuleType, ModuleType]:
    """Return ``(cupy, cupyx.scipy.sparse)`` or fail with one clear message.

    Returns
    -------
    cupy : module
        CuPy.
    cupyx_sparse : module
        cupyx.scipy.sparse.

    Examples
    --------
    >>> try:
    ...     cupy, cupyx_sparse = import_cupy()
    ... except ImportError as err:
    ...     print("GPU" in str(err) or "CuPy" in str(err))
    True
    """
    if _STANDIN is not None:
        return _STANDIN[0], _STANDIN[1]
    try:
        import cupy
        import cupyx.scipy.sparse
    except ImportError as err:  # pragma: no cover - depends on the machine
        raise ImportError(
            f"The 'cupy' backend needs CuPy, which could not be imported ({err}); {_GPU_HELP}."
        ) from err
    return cupy, cupyx.scipy.sparse


def gpu_count() -> int:
    """Number of CUDA devices CuPy can see (0 without CuPy or a GPU).

    Returns
    -------
    count : int
        CUDA devices visible (0 without CuPy).

    Examples
    --------
    >>> gpu_count() >= 0
    True
    """
    try:
        cupy, _ = import_cupy()
        return int(cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


def _meta(x: Any) -> Any:
    """The object whose type tells the backend: ``_meta`` for dask collections."""
    meta = getattr(x, "_meta", None)
    return x if meta is None else meta


def _is_cupy_object(obj: Any) -> bool:
    if _STANDIN is not None:
        return bool(_STANDIN[2](obj))
    cupy = sys.modules.get("cupy")
    if cupy is None:
        return False
    if isinstance(obj, cupy.ndarray):
        return True
    cupyx_sparse = sys.modules.get("cupyx.scipy.sparse")
    return cupyx_sparse is not None and bool(cupyx_sparse.issparse(obj))


def get_namespace(*arrays: Any) -> tuple[ModuleType, ModuleType]:
    """Array and sparse modules of the inputs: ``(numpy, scipy.sparse)`` or ``(cupy, cupyx.scipy.sparse)``.

    Dask arrays and daskpml distributed matrices are judged by their
    ``_meta``. Mixing backends is an error.

    Parameters
    ----------
    *arrays : arrays or dask collections
        The inputs (None entries are ignored).

    Returns
    -------
    xp : module
        numpy or cupy.
    xsp : module
        scipy.sparse or cupyx.scipy.sparse.

    Examples
    --------
    >>> import numpy as np
    >>> xp, xsp = get_namespace(np.ones(3))
    >>> xp.__name__, xsp.__name__
    ('numpy', 'scipy.sparse')
    """
    flags = {_is_cupy_object(_meta(x)) for x in arrays if x is not None}
    if flags == {True, False}:
        raise TypeError(
            "Inputs mix NumPy and CuPy arrays; move them to one backend first with "
            "daskpml.backend.to_backend(x, 'numpy') or to_backend(x, 'cupy')."
        )
    if True in flags:
        return import_cupy()
    return np, scipy.sparse


def backend_name(x: Any) -> BackendName:
    """``"cupy"`` for CuPy-backed input, else ``"numpy"``.

    Parameters
    ----------
    x : array, sparse matrix or dask collection
        The input.

    Returns
    -------
    name : str
        "numpy" or "cupy".

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> backend_name(np.ones(2)), backend_name(da.ones(2))
    ('numpy', 'numpy')
    """
    return "cupy" if _is_cupy_object(_meta(x)) else "numpy"


def is_sparse(x: Any) -> bool:
    """Whether ``x`` (or the blocks of a dask collection) is a SciPy/cupyx sparse matrix.

    Parameters
    ----------
    x : array, sparse matrix or dask collection
        The input.

    Returns
    -------
    sparse : bool
        Whether ``x`` (or the blocks of a dask collection) is sparse.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> is_sparse(sp.eye(2)), is_sparse(np.eye(2))
    (True, False)
    """
    obj = _meta(x)
    if scipy.sparse.issparse(obj):
        return True
    cupyx_sparse = _STANDIN[1] if _STANDIN is not None else sys.modules.get("cupyx.scipy.sparse")
    return cupyx_sparse is not None and bool(cupyx_sparse.issparse(obj))


def _convert_block(block: Any, backend: BackendName) -> Any:
    if backend == "cupy":
        cupy, cupyx_sparse = import_cupy()
        if _is_cupy_object(block):
            return block
        if scipy.sparse.issparse(block):
            return cupyx_sparse.csr_matrix(block.tocsr())
        return cupy.asarray(block)
    if not _is_cupy_object(block):
        return block
    return block.get()


def to_backend(x: Any, backend: BackendName) -> Any:
    """Move ``x`` to ``backend`` (``"numpy"`` or ``"cupy"``), block by block for dask collections.

    Works for NumPy/CuPy arrays, SciPy/cupyx sparse matrices, dask arrays and
    :class:`daskpml.sparse.CSRMatrix`. Nothing is computed for lazy input.

    Parameters
    ----------
    x : array, sparse matrix or dask collection
        The input.
    backend : {"numpy", "cupy"}
        The array library wanted.

    Returns
    -------
    x : array, sparse matrix or dask collection
        On the wanted backend.

    Examples
    --------
    >>> import numpy as np
    >>> to_backend(np.ones(2), "numpy").tolist()
    [1.0, 1.0]
    """
    if backend not in ("numpy", "cupy"):
        raise ValueError(f"backend must be 'numpy' or 'cupy' (got {backend!r}).")
    if backend == "cupy":
        import_cupy()
    if hasattr(x, "map_blocks") and hasattr(x, "_meta"):
        meta = _convert_block(x._meta, backend)
        return x.map_blocks(_convert_block, backend, dtype=x.dtype, meta=meta)
    return _convert_block(x, backend)


def nbytes(x: Any) -> int:
    """Bytes held by ``x``.

    Dense arrays (NumPy, CuPy, or dask arrays of dense blocks: shape times item size) and sparse
    matrices (their ``data``, ``indices`` and ``indptr``; 12 bytes per stored entry for a
    distributed CSR matrix, whose ``nnz`` is known). A dask array of sparse blocks has no known
    size: ``2**62`` (never small).

    Parameters
    ----------
    x : array, sparse matrix or dask collection
        The input.

    Returns
    -------
    nbytes : int
        Bytes held.

    Examples
    --------
    >>> import numpy as np
    >>> nbytes(np.zeros((10, 4)))
    320
    """
    if hasattr(x, "indptr"):
        return sum(int(getattr(x, a).nbytes) for a in ("data", "indices", "indptr"))
    if hasattr(x, "row_chunks") and hasattr(x, "nnz"):           # a distributed CSR matrix
        return 12 * int(x.nnz)
    if hasattr(x, "__dask_graph__"):
        return 2**62 if is_sparse(x) else int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize
    if is_sparse(x):
        return 12 * int(x.nnz)
    return int(np.prod(x.shape)) * np.dtype(x.dtype).itemsize


def to_numpy(x: Any) -> Any:
    """Host copy of a small in-memory array or sparse matrix (no-op for NumPy/SciPy).

    Parameters
    ----------
    x : array, sparse matrix or dask collection
        The input.

    Returns
    -------
    x : numpy.ndarray or scipy sparse matrix
        A host copy (the input itself on the CPU).

    Examples
    --------
    >>> import numpy as np
    >>> to_numpy(np.ones(2)).tolist()
    [1.0, 1.0]
    """
    return _convert_block(x, "numpy")


def synchronize(x: Any) -> None:
    """Wait until the device has finished the work that produces ``x`` (CuPy runs
    kernels asynchronously; a no-op for NumPy/SciPy). Time GPU work only after this.

    Parameters
    ----------
    x : array, sparse matrix or dask collection
        The input.

    Examples
    --------
    >>> import numpy as np
    >>> synchronize(np.ones(2))          # a no-op on the CPU
    """
    if _is_cupy_object(_meta(x)):
        cupy, _ = import_cupy()
        cupy.cuda.get_current_stream().synchronize()


def zeros_like(meta: Any, shape: tuple[int, ...], dtype: Any = None) -> Any:
    """Zeros on the backend of ``meta`` (a NumPy/CuPy array or a dask ``_meta``).

    Parameters
    ----------
    meta : array
        An array of the library and dtype to create (a dask array's ``_meta``).
    shape : tuple of int
        Shape of the result.
    dtype : numpy dtype, optional
        Type of the result (default that of ``meta``).

    Returns
    -------
    zeros : array
        Zeros of ``meta``'s library.

    Examples
    --------
    >>> import numpy as np
    >>> zeros_like(np.ones(1), (2, 2)).tolist()
    [[0.0, 0.0], [0.0, 0.0]]
    """
    xp, _ = get_namespace(meta)
    return xp.zeros(shape, dtype=dtype or getattr(_meta(meta), "dtype", None))


def asarray_like(x: Any, like: Any) -> Any:
    """``x`` as a dense array on the backend of ``like``.

    Parameters
    ----------
    x : array, sparse matrix or dask collection
        The input.
    like : array
        An array of the wanted library.

    Returns
    -------
    array : array
        ``x`` as an array of ``like``'s library.

    Examples
    --------
    >>> import numpy as np
    >>> asarray_like([1, 2], np.ones(1)).tolist()
    [1, 2]
    """
    xp, _ = get_namespace(like)
    return xp.asarray(x)


def sparse_meta(like: Any, dtype: Any = None) -> Any:
    """An empty 0 x 0 CSR matrix on the backend of ``like``: the ``_meta`` of sparse dask arrays.

    Parameters
    ----------
    like : array
        An array of the wanted library.
    dtype : numpy dtype, optional
        Type of the result (default that of ``meta``).

    Returns
    -------
    meta : sparse matrix
        An empty CSR matrix of ``like``'s library.

    Examples
    --------
    >>> import numpy as np
    >>> sparse_meta(np.ones(1)).format
    'csr'
    """
    _, xsp = get_namespace(like)
    dtype = np.dtype(dtype or getattr(_meta(like), "dtype", np.float64))
    return xsp.csr_matrix((0, 0), dtype=dtype)
