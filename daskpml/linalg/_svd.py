"""Truncated SVD of a row-blocked matrix (dense dask array or CSRMatrix).

Two methods, both one pass over ``A`` per step, where each row block does
its two products while it is in cache and only l x n / l x l partial sums
(l = k + oversamples) go up a tree to the client:

* ``"gram"`` (exact, for few columns): ``A^T A`` (n x n) in one pass, its
  eigendecomposition on the client, ``U = A V S^-1`` blockwise.
* ``"randomized"`` (Halko, Martinsson & Tropp 2011, subspace iteration):
  ``Z`` (n x l) starts Gaussian; each power iteration is one pass forming
  ``A^T (A Z)`` block by block, re-orthonormalized on the client (QR of an
  n x l matrix). A last pass forms ``Y^T Y`` and ``Y^T A`` for ``Y = A Z``;
  with ``Y = Q R`` (Cholesky of ``Y^T Y``), ``Q^T A = R^-T Y^T A`` and the
  small SVD of that gives the triplets, ``U = Y R^-1 U_B`` blockwise.
  ``q + 1`` passes in all.

``"auto"`` is exact (Gram) for up to ``daskpml.linalg.gram-columns`` columns.
"""

from __future__ import annotations

from typing import Any, Literal

import dask
import dask.array as da
import numpy as np

from .. import _config
from ..backend import get_namespace, is_sparse
from ..datasets._generators import resolve_seed
from ..optim._objective import tree_sum
from ..sparse import CSRMatrix


def _blocks(A: Any) -> tuple[list, tuple]:
    """Delayed row blocks of ``A`` and their row counts."""
    if isinstance(A, CSRMatrix):
        return list(A.blocks.to_delayed()[:, 0]), A.row_chunks
    A = A.rechunk({1: -1}) if len(A.chunks[1]) > 1 else A
    return list(A.to_delayed()[:, 0]), A.chunks[0]


def _t_product(block: Any, Y: Any) -> Any:
    """``block^T Y`` for a dense or CSR block."""
    return (Y.T @ block).T if is_sparse(block) else block.T @ Y


def _gram_block(block: Any) -> Any:
    G = block.T @ block
    return G.toarray() if is_sparse(G) else G


def _power_block(block: Any, Z: Any) -> Any:
    return _t_product(block, block @ Z)


def _final_block(block: Any, Z: Any) -> Any:
    """``[Y^T Y | Y^T A_i]`` (l x (l + n)) for ``Y = A_i Z``: one array, so partial sums add."""
    xp, _ = get_namespace(Z)
    Y = block @ Z
    return xp.concatenate([Y.T @ Y, _t_product(block, Y).T], axis=1)


def _left_block(block: Any, M: Any) -> Any:
    return block @ M


def _reduce(blocks: list, func: Any, *args: Any) -> Any:
    parts = [dask.delayed(func, pure=True)(b, *args) for b in blocks]
    root, _ = tree_sum(parts)
    return root


def _left(blocks: list, rows: tuple, M: Any, dtype: Any) -> da.Array:
    xp, _ = get_namespace(M)
    meta = xp.empty((0, 0), dtype=dtype)
    pieces = [da.from_delayed(dask.delayed(_left_block, pure=True)(b, M), shape=(r, M.shape[1]),
                              dtype=dtype, meta=meta) for b, r in zip(blocks, rows)]
    return da.concatenate(pieces, axis=0)


def truncated_svd(A: Any, n_components: int, *, method: Literal["auto", "gram", "randomized"] = "auto",
                  n_oversamples: int = 10, n_iter: int | str = "auto",
                  random_state: Any = None) -> tuple[da.Array, Any, Any]:
    """The leading ``n_components`` singular triplets of ``A`` (m x n).

    Parameters
    ----------
    A : dask array (chunked along rows) or CSRMatrix
    n_components : int
    method : {"auto", "gram", "randomized"}
    n_oversamples : int
        Extra columns of the randomized sketch (scikit-learn's default, 10).
    n_iter : int or "auto"
        Power iterations; "auto" is scikit-learn's rule: 7 when
        ``n_components < 0.1 min(m, n)``, otherwise 4.
    random_state : int, Generator or None

    Returns
    -------
    U : dask array (m x k), row chunks as ``A``
    S : array (k,), descending
    Vt : array (k x n)

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> from daskpml.linalg import truncated_svd
    >>> A = da.from_array(np.random.default_rng(0).random((400, 50)), chunks=(100, 50))
    >>> U, S, Vt = truncated_svd(A, 5, method="randomized", random_state=0)
    >>> U.shape, S.shape, Vt.shape
    ((400, 5), (5,), (5, 50))
    """
    m, n = A.shape
    k = int(n_components)
    if not 1 <= k <= min(m, n):
        raise ValueError(f"n_components must be in [1, {min(m, n)}] for a {m} x {n} matrix, got {n_components}.")
    if method not in ("auto", "gram", "randomized"):
        raise ValueError(f"method must be 'auto', 'gram' or 'randomized', got {method!r}.")
    if method == "auto":
        method = "gram" if n <= int(_config.get("linalg.gram-columns", 256)) else "randomized"
    blocks, rows = _blocks(A)
    xp, _ = get_namespace(A)
    if method == "gram":
        G = _reduce(blocks, _gram_block).compute()
        evals, V = xp.linalg.eigh(G)
        order = xp.argsort(evals)[::-1][:k]
        S = xp.sqrt(xp.maximum(evals[order], 0))
        V = V[:, order]
        inv = xp.where(S > S[0] * np.finfo(S.dtype).eps * n, 1 / xp.where(S > 0, S, 1), 0)
        return _left(blocks, rows, V * inv, A.dtype).persist(), S, V.T
    if n_iter == "auto":
        n_iter = 7 if k < 0.1 * min(m, n) else 4
    width = min(k + int(n_oversamples), min(m, n))
    rng = np.random.default_rng(resolve_seed(random_state))
    Z = xp.asarray(rng.standard_normal((n, width)).astype(A.dtype, copy=False))
    for _ in range(int(n_iter)):
        Z, _ = xp.linalg.qr(_reduce(blocks, _power_block, Z).compute())
    both = _reduce(blocks, _final_block, Z).compute()
    YtY, YtA = both[:, :width], both[:, width:]
    R = _cholesky_upper(YtY)
    B = xp.linalg.solve(R.T, YtA)                     # Q^T A with Q = Y R^-1
    Ub, S, Vt = xp.linalg.svd(B, full_matrices=False)
    M = Z @ xp.linalg.solve(R, Ub[:, :k])             # U = A Z R^-1 Ub
    return _left(blocks, rows, M, A.dtype).persist(), S[:k], Vt[:k]


def _cholesky_upper(G: Any) -> Any:
    """Upper ``R`` with ``R^T R = G`` (a tiny diagonal shift if rounding made G indefinite)."""
    xp, _ = get_namespace(G)
    try:
        return xp.linalg.cholesky(G).T
    except Exception:  # numpy LinAlgError / cupy equivalent: G numerically singular
        shift = float(xp.trace(G)) * np.finfo(G.dtype).eps * G.shape[0]
        return xp.linalg.cholesky(G + shift * xp.eye(G.shape[0], dtype=G.dtype)).T


def randomized_svd(A: Any, n_components: int, *, n_oversamples: int = 10, n_iter: int | str = "auto",
                   random_state: Any = None) -> tuple[da.Array, Any, Any]:
    """:func:`truncated_svd` with ``method="randomized"`` (scikit-learn's name)."""
    return truncated_svd(A, n_components, method="randomized", n_oversamples=n_oversamples, n_iter=n_iter,
                         random_state=random_state)
