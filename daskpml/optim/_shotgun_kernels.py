"""Column kernels of Shotgun coordinate descent (numba, host): dots with the residual and
the residual update, for dense column-major blocks and CSC blocks."""

from __future__ import annotations

from .._numba import njit
import numpy as np


@njit(cache=True, nogil=True, fastmath=True)
def dense_dots(X, r, sel):
    """``X[:, sel].T @ r`` for a Fortran-ordered block."""
    n = X.shape[0]
    out = np.empty(sel.shape[0])
    for k in range(sel.shape[0]):
        j = sel[k]
        s = 0.0
        for i in range(n):
            s += X[i, j] * r[i]
        out[k] = s
    return out


@njit(cache=True, nogil=True, fastmath=True)
def dense_combine(X, sel, delta, out):
    """``out += X[:, sel] @ delta`` (skipping zero ``delta``), Fortran-ordered block."""
    n = X.shape[0]
    for k in range(sel.shape[0]):
        d = delta[k]
        if d != 0.0:
            j = sel[k]
            for i in range(n):
                out[i] += d * X[i, j]


@njit(cache=True, nogil=True)
def csc_dots(indptr, indices, data, r, sel):
    out = np.empty(sel.shape[0])
    for k in range(sel.shape[0]):
        j = sel[k]
        s = 0.0
        for p in range(indptr[j], indptr[j + 1]):
            s += data[p] * r[indices[p]]
        out[k] = s
    return out


@njit(cache=True, nogil=True)
def csc_combine(indptr, indices, data, sel, delta, out):
    for k in range(sel.shape[0]):
        d = delta[k]
        if d != 0.0:
            j = sel[k]
            for p in range(indptr[j], indptr[j + 1]):
                out[indices[p]] += d * data[p]


@njit(cache=True, nogil=True)
def fortran_copy(X, lo, hi):
    """``X[:, lo:hi]`` of a C-ordered matrix as a Fortran-ordered copy, with its column sums and
    sums of squares (a tiled transpose: both sides are read and written in cache-sized tiles)."""
    n = X.shape[0]
    w = hi - lo
    out = np.empty((w, n)).T               # Fortran order: out[i, j] at j * n + i
    sums = np.zeros(w)
    sq = np.zeros(w)
    tile = 64
    for i0 in range(0, n, tile):
        i1 = min(n, i0 + tile)
        for j0 in range(0, w, tile):
            j1 = min(w, j0 + tile)
            for j in range(j0, j1):
                s = 0.0
                q = 0.0
                for i in range(i0, i1):
                    v = X[i, lo + j]
                    out[i, j] = v
                    s += v
                    q += v * v
                sums[j] += s
                sq[j] += q
    return out, sums, sq
