"""Truncated SVD of a row-blocked matrix (dense dask array or CSRMatrix).

Two methods, both one pass over ``A`` per step, where each row block does
its two products while it is in cache and only l x n / l x l partial sums
(l = k + oversamples) go up a tree to the client:

* ``"tsqr"`` (exact and stable, for few columns): a tree of QR factorizations of the
  row blocks; only n x n triangles travel, ``V`` and ``S`` come from the SVD of the root.
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

from numbers import Integral
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np

from .. import _config
from ..backend import get_namespace, is_sparse
from .._random import resolve_seed
from .._blocks import delayed_rows, reduce_rows
from ..sparse import CSRMatrix, as_rows
from ..validation import Interval, Options, validate_params


def _t_product(block: Any, Y: Any) -> Any:
    """``block^T Y`` for a dense or CSR block."""
    return (Y.T @ block).T if is_sparse(block) else block.T @ Y


def _product(block: Any, Z: Any, center: Any) -> Any:
    """``(block - center) Z`` without forming the centered block (which a CSR block is not)."""
    Y = block @ Z
    return Y if center is None else Y - center @ Z


def _t_centered(block: Any, Y: Any, center: Any) -> Any:
    """``(block - center)^T Y``."""
    xp, _ = get_namespace(Y)
    out = _t_product(block, Y)
    return out if center is None else out - xp.outer(center, Y.sum(axis=0))


def gram_block(block: Any, with_sums: bool = False) -> Any:
    """``A_i^T A_i``, or ``[A_i^T A_i | A_i^T 1]``, of one dense or CSR row block ``A_i``.

        The column sums let the caller centre the Gram matrix (:func:`centred_gram`) without
        densifying a sparse block.

        Parameters
        ----------
        block : array or sparse matrix
            A row block (m_i x n).
        with_sums : bool, default False
            Append the column sums as a last column.

        Returns
        -------
        array
            n x n, or n x (n + 1) with ``with_sums``.

        Examples
        --------
        >>> gram_block(np.array([[1.0, 2.0]]), with_sums=True).tolist()
        [[1.0, 2.0, 1.0], [2.0, 4.0, 2.0]]
    """
    with np.errstate(over="ignore", invalid="ignore"):
        G = block.T @ block
    G = G.toarray() if is_sparse(G) else G
    if not with_sums:
        return G
    xp, _ = get_namespace(G)
    sums = xp.asarray(block.sum(axis=0)).reshape(-1, 1)
    return xp.concatenate([G, sums], axis=1)


def _power_block(block: Any, Z: Any, center: Any = None) -> Any:
    return _t_centered(block, _product(block, Z, center), center)


def _final_block(block: Any, Z: Any, center: Any = None) -> Any:
    """``[Y^T Y | Y^T A_i]`` (l x (l + n)) for ``Y = A_i Z``: one array, so partial sums add."""
    xp, _ = get_namespace(Z)
    Y = _product(block, Z, center)
    return xp.concatenate([Y.T @ Y, _t_centered(block, Y, center).T], axis=1)


def _left_block(block: Any, M: Any, center: Any = None) -> Any:
    return _product(block, M, center)


def _r_block(block: Any, center: Any) -> Any:
    """``R`` of the QR factorization of the (centred) block. The rows go through in slices of
    about 80 n (each slice and the running ``R`` stay in cache: 2x faster than one LAPACK
    call on a tall block), densified one slice at a time."""
    xp, _ = get_namespace(center) if center is not None else get_namespace(block)
    n = block.shape[1]
    step = int(min(max(80 * n, 4096), 65536))
    R = None
    for start in range(0, max(block.shape[0], 1), step):
        piece = block[start:start + step]
        piece = piece.toarray() if is_sparse(piece) else piece
        if center is not None:
            piece = piece - center
        R = xp.linalg.qr(piece if R is None else xp.concatenate([R, piece], axis=0), mode="r")
    return R


def _r_combine(*rs: Any) -> Any:
    xp, _ = get_namespace(rs[0])
    return xp.linalg.qr(xp.concatenate(rs, axis=0), mode="r")


def _tsqr_r(blocks: list, center: Any, split_every: int = 8) -> Any:
    """``R`` of ``A - center`` (n x n) by a tree of QR factorizations of stacked ``R`` s (TSQR,
    Demmel et al. 2012): only n x n triangles travel, and ``Q`` is never formed."""
    parts = [dask.delayed(_r_block, pure=True)(b, center) for b in blocks]
    while len(parts) > 1:
        parts = [dask.delayed(_r_combine, pure=True)(*parts[i:i + split_every])
                 for i in range(0, len(parts), split_every)]
    return parts[0]


def project_rows(blocks: list, rows: tuple, M: Any, dtype: Any, center: Any = None) -> da.Array:
    """``(A - center) @ M`` as a dask array, one block per delayed row block of ``A``.

        Parameters
        ----------
        blocks : list of dask.delayed.Delayed
            The row blocks of ``A`` (:func:`daskpml._blocks.delayed_rows`).
        rows : tuple of int
            Their row counts.
        M : array
            The matrix to multiply by (n x k).
        dtype : numpy dtype
            Type of the result.
        center : array, optional
            A row (1 x n) subtracted from every row of ``A`` without densifying it.

        Returns
        -------
        dask.array.Array
            (m x k), chunked like the rows of ``A``.

        Examples
        --------
        >>> import dask
        >>> blocks = [dask.delayed(np.eye(2)), dask.delayed(np.ones((1, 2)))]
        >>> project_rows(blocks, (2, 1), np.ones((2, 1)), np.float64).compute().ravel().tolist()
        [1.0, 1.0, 2.0]
    """
    xp, _ = get_namespace(M)
    meta = xp.empty((0, 0), dtype=dtype)
    pieces = [da.from_delayed(dask.delayed(_left_block, pure=True)(b, M, center), shape=(r, M.shape[1]),
                              dtype=dtype, meta=meta) for b, r in zip(blocks, rows)]
    return da.concatenate(pieces, axis=0)


SVD_CONSTRAINTS = {"n_components": [Interval(Integral, 1, None)], "n_oversamples": [Interval(Integral, 0, None)],
                   "n_iter": [Options("auto"), Interval(Integral, 0, None)], "random_state": ["random_state"]}


@validate_params({**SVD_CONSTRAINTS, "method": [Options("auto", "gram", "tsqr", "randomized")],
                  "compute_u": ["boolean"]})
def truncated_svd(A: Any, n_components: int, *, method: Literal["auto", "gram", "tsqr", "randomized"] = "auto",
                  n_oversamples: int = 10, n_iter: int | str = "auto", random_state: Any = None,
                  center: Any = None, compute_u: bool = True) -> tuple[Any, Any, Any]:
    """The leading ``n_components`` singular triplets of ``A`` (m x n).

    Parameters
    ----------
    A : dask array (chunked along rows) or CSRMatrix
    n_components : int
    method : {"auto", "gram", "tsqr", "randomized"}
        "tsqr" is exact and stable (no squared condition number): a tree of QR
        factorizations of the row blocks (densified), for tall and skinny ``A``.
    n_oversamples : int
        Extra columns of the randomized sketch (scikit-learn's default, 10).
    n_iter : int or "auto"
        Power iterations; "auto" is scikit-learn's rule: 7 when
        ``n_components < 0.1 min(m, n)``, otherwise 4.
    random_state : int, Generator or None
    center : array (n,), optional
        Decompose ``A - center`` (each row minus ``center``) without forming it: sparse
        blocks stay sparse for "gram" and "randomized" (PCA's implicit centering).
    compute_u : bool
        Form and persist ``U`` (one more pass); ``None`` is returned in its place otherwise.

    Returns
    -------
    U : dask array (m x k), row chunks as ``A`` (or None)
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
    if not isinstance(A, (da.Array, CSRMatrix)):    # in memory: validated and split into row blocks
        A = as_rows(A, name="A", ensure_min_samples=1)
    m, n = A.shape
    k = int(n_components)
    if not 1 <= k <= min(m, n):
        raise ValueError(f"n_components must be in [1, {min(m, n)}] for a {m} x {n} matrix, got {n_components}.")
    if method not in ("auto", "gram", "tsqr", "randomized"):
        raise ValueError(f"method must be 'auto', 'gram', 'tsqr' or 'randomized', got {method!r}.")
    if method == "auto":
        method = "gram" if n <= int(_config.get("linalg.gram-columns")) else "randomized"
    blocks, rows = delayed_rows(A)
    xp, _ = get_namespace(A)
    if center is not None:
        center = xp.asarray(center, dtype=A.dtype).reshape(1, -1)

    def left(M: Any) -> Any:
        return project_rows(blocks, rows, M, A.dtype, center).persist() if compute_u else None

    def from_right(S: Any, V: Any) -> Any:       # U = A V S^-1, with 0 for null directions
        inv = xp.where(S > S[0] * np.finfo(S.dtype).eps * n, 1 / xp.where(S > 0, S, 1), 0)
        return left(V * inv)

    if method == "tsqr":
        R = _tsqr_r(blocks, center).compute()
        _, S, Vt = xp.linalg.svd(R, full_matrices=False)
        S, Vt = S[:k], Vt[:k]
        return from_right(S, Vt.T), S, Vt
    if method == "gram":
        G = reduce_rows(blocks, gram_block, center is not None).compute()
        if center is not None:
            G = centred_gram(G[:, :n], G[:, n], center.ravel(), m)
        S, V = gram_svd(G, k)
        return from_right(S, V), S, V.T
    if n_iter == "auto":
        n_iter = 7 if k < 0.1 * min(m, n) else 4
    width = min(k + int(n_oversamples), min(m, n))
    rng = np.random.default_rng(resolve_seed(random_state))
    Z = xp.asarray(rng.standard_normal((n, width)).astype(A.dtype, copy=False))
    for _ in range(int(n_iter)):
        Z, _ = xp.linalg.qr(reduce_rows(blocks, _power_block, Z, center).compute())
    both = reduce_rows(blocks, _final_block, Z, center).compute()
    YtY, YtA = both[:, :width], both[:, width:]
    R = _cholesky_upper(YtY)
    B = xp.linalg.solve(R.T, YtA)                     # Q^T A with Q = Y R^-1
    Ub, S, Vt = xp.linalg.svd(B, full_matrices=False)
    M = Z @ xp.linalg.solve(R, Ub[:, :k])             # U = A Z R^-1 Ub
    return left(M), S[:k], Vt[:k]


def centred_gram(G: Any, sums: Any, c: Any, m: int) -> Any:
    """The Gram matrix of ``A - 1 c`` from that of ``A``: ``A^T A - c s^T - s c^T + m c c^T``.

        Parameters
        ----------
        G : array
            ``A^T A`` (n x n).
        sums : array
            Column sums ``s`` of ``A``.
        c : array
            The centre subtracted from every row (n,).
        m : int
            Number of rows of ``A``.

        Returns
        -------
        array
            ``(A - 1 c)^T (A - 1 c)``.

        Examples
        --------
        >>> A = np.array([[1.0, 2.0], [3.0, 6.0]]); c = A.mean(axis=0)
        >>> np.allclose(centred_gram(A.T @ A, A.sum(axis=0), c, 2), (A - c).T @ (A - c))
        True
    """
    xp, _ = get_namespace(G)
    return G - xp.outer(c, sums) - xp.outer(sums, c) + m * xp.outer(c, c)


def gram_svd(G: Any, k: int) -> tuple[Any, Any]:
    """The leading ``k`` singular values and right singular vectors of a matrix from its Gram matrix.

        Parameters
        ----------
        G : array
            ``A^T A`` (n x n), symmetric positive semi-definite.
        k : int
            How many.

        Returns
        -------
        S : array
            Singular values of ``A``, descending (k,).
        V : array
            Right singular vectors (n x k).

        Examples
        --------
        >>> S, V = gram_svd(np.diag([9.0, 4.0, 1.0]), 2)
        >>> S.tolist()
        [3.0, 2.0]
    """
    xp, _ = get_namespace(G)
    evals, V = xp.linalg.eigh(G)
    order = xp.argsort(evals)[::-1][:k]
    return xp.sqrt(xp.maximum(evals[order], 0)), V[:, order]


def _cholesky_upper(G: Any) -> Any:
    """Upper ``R`` with ``R^T R = G`` (a tiny diagonal shift if rounding made G indefinite)."""
    xp, _ = get_namespace(G)
    try:
        return xp.linalg.cholesky(G).T
    except Exception:  # numpy LinAlgError / cupy equivalent: G numerically singular
        shift = float(xp.trace(G)) * np.finfo(G.dtype).eps * G.shape[0]
        return xp.linalg.cholesky(G + shift * xp.eye(G.shape[0], dtype=G.dtype)).T


@validate_params(SVD_CONSTRAINTS)
def randomized_svd(A: Any, n_components: int, *, n_oversamples: int = 10, n_iter: int | str = "auto",
                   random_state: Any = None) -> tuple[da.Array, Any, Any]:
    """:func:`truncated_svd` with ``method="randomized"`` (scikit-learn's name and defaults).

        Parameters
        ----------
        A : dask array, CSRMatrix, array or sparse matrix
            The matrix (m x n), in row blocks.
        n_components : int
            Singular triplets wanted.
        n_oversamples : int, default 10
            Extra random directions.
        n_iter : int or "auto", default "auto"
            Power iterations ("auto": 7 when ``n_components`` is below 10% of the smaller side, else 4).
        random_state : None, int or numpy.random.Generator
            Seed of the random projection.

        Returns
        -------
        U : dask.array.Array
            Left singular vectors (m x k), chunked like the rows of ``A``.
        S : array
            Singular values, descending (k,).
        Vt : array
            Right singular vectors (k x n).

        Examples
        --------
        >>> X = np.random.default_rng(0).standard_normal((200, 20))
        >>> U, S, Vt = randomized_svd(X, 3, random_state=0)
        >>> np.allclose(S, np.linalg.svd(X, compute_uv=False)[:3], rtol=1e-2)
        True
    """
    return truncated_svd(A, n_components, method="randomized", n_oversamples=n_oversamples, n_iter=n_iter,
                         random_state=random_state)
