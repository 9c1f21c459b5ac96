"""Any matrix input as row blocks: a dense dask array chunked along rows only, or a CSRMatrix."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from .._blocks import block_rows
from ..backend import is_sparse, nbytes
from ..runtime import distribute_rows
from ..validation import check_array
from ._csr import CSRMatrix, from_array


def as_rows(X: Any, name: str = "X", ensure_min_samples: int = 2) -> Any:
    """``X`` validated (finite, 2-D, at least 2 rows) as row blocks.

    Parameters
    ----------
    X : array-like, sparse matrix, dask array or CSRMatrix
        The matrix. Integer values become float64.
    name : str
        The name used in error messages.
    ensure_min_samples : int
        The fewest rows accepted (2 to fit a model; 1 to apply a fitted one).

    Returns
    -------
    dask.array.Array or CSRMatrix
        A dask array chunked along rows only (dense input), or a :class:`CSRMatrix` (sparse
        input, including dask arrays of sparse blocks). In-memory input is split into row blocks
        of about ``daskpml.decomposition.block-bytes``, their number a multiple of the worker
        threads.

    Examples
    --------
    >>> import numpy as np
    >>> as_rows(np.ones((6, 2))).chunks[1]
    (2,)
    """
    X = check_array(X, name=name, ensure_min_samples=ensure_min_samples)
    if isinstance(X, CSRMatrix):
        return X
    if isinstance(X, da.Array):
        if is_sparse(X._meta):
            return from_array(X)
        if not np.issubdtype(X.dtype, np.floating):
            X = X.astype(np.float64)
        return X.rechunk({1: -1}) if len(X.chunks[1]) > 1 else X
    if is_sparse(X):
        X = X.tocsr()
        if not np.issubdtype(X.dtype, np.floating):
            X = X.astype(np.float64)
        return from_array(X, chunks=block_rows(X.shape[0], nbytes(X), "decomposition.block-bytes"))
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    return distribute_rows(X, block_rows(X.shape[0], nbytes(X), "decomposition.block-bytes"))
