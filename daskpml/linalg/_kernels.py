"""Per-block kernels of the distributed Lanczos method (see :mod:`daskpml.linalg._lanczos`).

Every row block ``i`` owns one preallocated basis array ``B`` of shape
``(n_i, ncv + 1)`` (Fortran order, so columns are contiguous). A step fills
column ``j + 1`` in place and returns the same array under a new task key.
This is safe for dask because readers of the key of step ``j`` only ever read
columns ``0..j + 1`` as they were when that key was produced, and no later step
writes those columns; should the scheduler move a task elsewhere it works on a
copy and returns that copy under the next key, which is again consistent.

Orthogonalization is classical Gram-Schmidt applied twice (CGS2, "twice is
enough"), with the coefficients of each pass summed over blocks by one
reduction. The norm of the new vector follows from Pythagoras,
``||w''||^2 = ||w'||^2 - ||h2||^2``, so no third reduction is needed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import get_namespace, to_numpy

#: A new vector whose norm after two Gram-Schmidt passes is below this
#: fraction of ``||A v||`` is rounding noise: the Krylov space is invariant.
BREAKDOWN = 1e3 * np.finfo(np.float64).eps
#: DGKS: if the second pass still removes more than this fraction of the
#: norm, the vector lies in the span of the basis (Daniel et al. 1976).
DGKS = 1.0 / np.sqrt(2.0)


def new_basis(block: Any, v0: Any, ncv: int) -> tuple[Any, Any]:
    """An empty basis for this row block with ``v0`` (unnormalized) in column 0."""
    xp, _ = get_namespace(v0)
    basis = xp.zeros((v0.shape[0], ncv + 1), dtype=v0.dtype, order="F")
    basis[:, 0] = v0
    return basis, xp.asarray([v0 @ v0])


def random_block(seed: int, tag: int, block_index: int, rows: int, like: Any) -> Any:
    """Standard normal values for one row block, seeded by ``(seed, tag, block)``."""
    xp, _ = get_namespace(like)
    values = np.random.default_rng([seed, tag, block_index]).standard_normal(rows)
    return xp.asarray(values, dtype=like.dtype)


def fill_random(basis: Any, column: int, seed: int, tag: int, block_index: int) -> tuple[Any, Any]:
    """Put a random vector in ``column`` and project it on the columns before it."""
    basis[:, column] = random_block(seed, tag, block_index, basis.shape[0], basis)
    return basis, project(basis, column)


def fill_product(block: Any, u: Any, basis: Any, column: int,
                 scale: Any = None, diag: Any = None) -> tuple[Any, Any]:
    """``w = A_i @ v`` into ``column``; returns the basis and ``[V_i^T w, w.w]``.

    The operator is ``A = S B S + E`` with ``B`` the stored blocks and the
    optional diagonals ``S`` (``scale``) and ``E`` (``diag``); ``u = S v`` was
    formed once by :func:`gather`.
    """
    w = basis[:, column]
    w[:] = block @ u
    if scale is not None:
        w *= scale
    if diag is not None:
        w += diag * basis[:, column - 1]
    return basis, project(basis, column)


def project(basis: Any, column: int) -> Any:
    """Partial sums ``[V_i[:, :column]^T w, w . w]`` of this block, ``w = V_i[:, column]``."""
    xp, _ = get_namespace(basis)
    w = basis[:, column]
    return xp.concatenate([basis[:, :column].T @ w, xp.asarray([w @ w])])


def subtract(basis: Any, column: int, first: Any, rows: int = 8192) -> tuple[Any, Any]:
    """First pass ``w -= V h1`` in place; returns the basis and the second pass's sums.

    When the first pass removed less than half of ``||w||^2`` (by Pythagoras)
    the second pass is not needed (DGKS): its coefficients are zeros and only
    ``||w'||^2`` is summed. Otherwise the update and the second projection run together
    over row slices of ``rows`` rows, so that each slice of ``V`` is read from
    cache the second time.
    """
    xp, _ = get_namespace(basis)
    first = _host(first)
    h = xp.asarray(first[:column], dtype=basis.dtype)
    norm2 = max(float(first[-1]) - float(np.dot(first[:column], first[:column])), 0.0)
    if norm2 > DGKS ** 2 * float(first[-1]):
        w = basis[:, column]
        w -= basis[:, :column] @ h
        return basis, xp.concatenate([xp.zeros(column), xp.asarray([w @ w])])
    out = xp.zeros(column + 1)
    for start in range(0, basis.shape[0], rows):
        V = basis[start:start + rows, :column]
        w = basis[start:start + rows, column]
        w -= V @ h
        out[:column] += V.T @ w
        out[column] += w @ w
    return basis, out


def beta_and_breakdown(first: np.ndarray, second: np.ndarray) -> tuple[float, bool]:
    """Norm of the new vector after two passes, and whether the Krylov space is invariant.

    ``first`` and ``second`` are the reduced ``[h, w.w]`` of the two passes (host arrays).
    """
    norm_w2 = max(float(first[-1]), 0.0)
    norm_w1 = max(float(second[-1]), 0.0)
    beta2 = norm_w1 - float(np.dot(second[:-1], second[:-1]))
    beta = float(np.sqrt(beta2)) if beta2 > 0 else 0.0
    broken = beta <= BREAKDOWN * np.sqrt(norm_w2) or beta < DGKS * np.sqrt(norm_w1) or beta == 0.0
    return beta, broken


def normalize(basis: Any, column: int, first: Any, second: Any) -> tuple[Any, Any]:
    """Second pass ``w -= V h2`` and ``v = w / beta`` in place (zeros on breakdown).

    Returns the basis and a copy of the new column (what the next product needs).
    """
    xp, _ = get_namespace(basis)
    first, second = _host(first), _host(second)
    beta, broken = beta_and_breakdown(first, second)
    if broken:
        basis[:, column] = 0
    else:
        w = basis[:, column]
        if second[:column].any():
            w -= basis[:, :column] @ xp.asarray(second[:column], dtype=basis.dtype)
        w *= 1.0 / beta
    return basis, basis[:, column].copy()


def normalize_first(basis: Any, norm2: Any) -> tuple[Any, Any]:
    """Scale column 0 to unit norm (the start vector)."""
    norm = float(np.sqrt(_host(norm2)[0]))
    if norm == 0.0:
        raise ValueError("v0 is the zero vector; pass a nonzero start vector or v0=None.")
    basis[:, 0] *= 1.0 / norm
    return basis, basis[:, 0].copy()


def restart(basis: Any, columns: int, rotation: Any) -> tuple[Any, Any]:
    """A new basis: ``V[:, :columns] @ Y`` followed by the residual column ``V[:, columns]``."""
    xp, _ = get_namespace(basis)
    keep = rotation.shape[1]
    out = xp.empty_like(basis, order="F")
    xp.matmul(basis[:, :columns], xp.asarray(rotation, dtype=basis.dtype), out=out[:, :keep])
    out[:, keep] = basis[:, columns]
    return out, out[:, keep].copy()


def ritz_vectors(basis: Any, columns: int, rotation: Any) -> Any:
    """Rows of the Ritz vectors ``V[:, :columns] @ Y`` for this block."""
    xp, _ = get_namespace(basis)
    return basis[:, :columns] @ xp.asarray(rotation, dtype=basis.dtype)


def gather(scale: Any, *pieces: Any) -> Any:
    """``S v`` as one vector from the row pieces of ``v`` (what every block's product needs)."""
    xp, _ = get_namespace(pieces[0])
    v = xp.concatenate(pieces) if len(pieces) > 1 else pieces[0].copy()
    if scale is not None:
        v *= scale
    return v


def total(*parts: Any) -> np.ndarray:
    """Sum of the per-block partial sums, on the host (they are a few numbers)."""
    out = _host(parts[0]).astype(np.float64, copy=True)
    for part in parts[1:]:
        out += _host(part)
    return out


def _host(x: Any) -> np.ndarray:
    return np.asarray(to_numpy(x), dtype=np.float64)


def item(pair: tuple, index: int) -> Any:
    return pair[index]
