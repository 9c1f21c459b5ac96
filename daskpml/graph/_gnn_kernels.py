"""Compiled ``nogil`` dropout kernels of :mod:`daskpml.graph._gnn` (imported on first use, so
that importing daskpml does not import numba).

The keep/drop decision of an element is a hash of its *global* position (node id, feature),
of the seed, the epoch and the layer, so the masks do not depend on how nodes are spread over
partitions. The hash is splitmix64's finalizer; ``_gnn.dropout_mask`` computes the same bits
with array operations (CuPy), and the tests check the two agree bit for bit.
"""

import numpy as np
from .._numba import njit

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX1 = np.uint64(0xBF58476D1CE4E5B9)
MIX2 = np.uint64(0x94D049BB133111EB)


@njit(nogil=True, cache=True, inline="always")
def _keep(key, threshold):
    z = key + GOLDEN
    z = (z ^ (z >> np.uint64(30))) * MIX1
    z = (z ^ (z >> np.uint64(27))) * MIX2
    z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)) >= threshold


@njit(nogil=True, cache=True)
def dropout_dense(H, rows, base, width, threshold, scale, out):
    """``out[i, j] = H[i, j] * scale`` where element (rows[i], j) is kept, else 0."""
    n, f = H.shape
    for i in range(n):
        start = base + np.uint64(rows[i]) * np.uint64(width)
        for j in range(f):
            if _keep(start + np.uint64(j), threshold):
                out[i, j] = H[i, j] * scale
            else:
                out[i, j] = 0
    return out


@njit(nogil=True, cache=True)
def dropout_csr(indptr, indices, data, rows, base, width, threshold, scale, out):
    """The same for the stored entries of a CSR matrix (``out`` has ``data``'s shape)."""
    for i in range(indptr.shape[0] - 1):
        start = base + np.uint64(rows[i]) * np.uint64(width)
        for k in range(indptr[i], indptr[i + 1]):
            if _keep(start + np.uint64(indices[k]), threshold):
                out[k] = data[k] * scale
            else:
                out[k] = 0
    return out


@njit(nogil=True, cache=True)
def spmm_split(indptr, indices, data, first, second, bias, out):
    """``out = A @ [first; second] + bias`` for a CSR ``A`` whose columns index the rows of
    ``first`` (``0 .. len(first) - 1``) and then of ``second``: the halo rows are read where
    they arrived, never copied next to the owned ones."""
    n_first = first.shape[0]
    f = out.shape[1]
    for i in range(out.shape[0]):
        for j in range(f):
            out[i, j] = bias[j]
        for k in range(indptr[i], indptr[i + 1]):
            c = indices[k]
            v = data[k]
            if c < n_first:
                for j in range(f):
                    out[i, j] += v * first[c, j]
            else:
                c -= n_first
                for j in range(f):
                    out[i, j] += v * second[c, j]
    return out
