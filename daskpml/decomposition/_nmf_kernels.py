"""Per-block kernels of the blockwise NMF (NumPy/SciPy or CuPy/cupyx, one code path).

Layout: a row block of ``W`` is stored transposed, ``Wt_i`` (k x m_i,
C-contiguous), so that every factor row updated by coordinate descent is a
contiguous vector and ``W`` and ``H`` (k x n) are updated by the same kernels:
updating ``W`` with ``H`` fixed is the problem of updating ``H`` with ``W``
fixed, transposed. Each kernel gets

* ``M`` (k x r): the factor rows being updated (``Wt_i`` or ``H_j``), in place;
* ``R`` (k x r): the data term (``H A_i^T`` or ``W^T A_j``);
* ``G`` (k x k): the Gram matrix of the fixed factor (``H H^T`` or ``W^T W``).

The update rules and their regularization are scikit-learn's
(``sklearn.decomposition._nmf``): the same arithmetic, up to the order of
floating-point sums.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import get_namespace, is_sparse, to_numpy

#: scikit-learn's guard against division by zero in the multiplicative updates.
EPSILON = float(np.finfo(np.float32).eps)
#: Bytes of a column slice of one HALS sweep (about half a core's L2 cache).
SWEEP_BYTES = 1 << 20


# ------------------------------------------------------------------ products
def data_term(H: Any, A: Any) -> Any:
    """``H A^T`` (k x m) as a C-contiguous array, for a dense or sparse block ``A`` (m x n)."""
    xp, _ = get_namespace(H)
    if is_sparse(A):
        return xp.ascontiguousarray((A @ H.T).T)
    return H @ A.T


def left_product(Mt: Any, A: Any) -> Any:
    """``Mt A`` (k x n) for a dense or sparse block ``A`` (m x n); ``Mt`` is k x m."""
    if is_sparse(A):
        return (A.T @ Mt.T).T
    return Mt @ A


def sq_norm(A: Any) -> float:
    """``||A||_F^2`` of a dense or sparse block."""
    xp, _ = get_namespace(A)
    values = A.data if is_sparse(A) else A
    return float(xp.vdot(values.ravel(), values.ravel()).real)


# ------------------------------------------------------------------ updates
def hals(M: Any, R: Any, G: Any, l1: float, l2: float, violation: bool = True) -> float:
    """One cyclic coordinate-descent (HALS) sweep over the rows of ``M``, in place.

    scikit-learn's ``solver="cd"``: for each component t, every entry moves
    to ``max(0, m - grad / G_tt)`` with ``grad = (G M)_t - R_t``, where the
    L2 term is added to the diagonal of ``G`` and the L1 term subtracted
    from ``R``. Returns the violation (the sum of absolute projected
    gradients before each step, scikit-learn's stopping quantity).

    The columns of ``M`` are independent, so a long block is swept in column
    slices of about :data:`SWEEP_BYTES` (k passes over a slice that stays in
    cache instead of k passes over the whole block).
    """
    xp, _ = get_namespace(M)
    if l2:
        G = G + l2 * xp.eye(G.shape[0], dtype=G.dtype)
    if l1:
        R = R - l1
    hess = to_numpy(xp.diagonal(G))
    total = xp.zeros((), dtype=xp.float64)
    k, r = M.shape
    width = max(256, SWEEP_BYTES // max(1, k * M.dtype.itemsize))
    for c in range(0, r, width):
        Mc, Rc = M[:, c:c + width], R[:, c:c + width]
        for t in range(k):
            grad = G[t] @ Mc
            grad -= Rc[t]
            if violation:
                total += xp.abs(xp.where(Mc[t] == 0, xp.minimum(grad, 0), grad)).sum()
            if hess[t] != 0:           # m <- max(0, m - grad / G_tt), in place
                grad *= -1.0 / hess[t]
                grad += Mc[t]
                xp.maximum(grad, 0, out=Mc[t])
    return float(total)


def multiplicative(M: Any, R: Any, G: Any, l1: float, l2: float) -> float:
    """Lee & Seung's multiplicative update ``M *= R / (G M + l1 + l2 M)``, in place (scikit-learn's
    ``solver="mu"`` for the Frobenius loss; zero denominators become float32 eps). Returns 0."""
    denominator = G @ M
    if l1 > 0:
        denominator += l1
    if l2 > 0:
        denominator = denominator + l2 * M
    denominator[denominator == 0] = EPSILON
    M *= R / denominator
    return 0.0


def anls(M: Any, R: Any, G: Any, l1: float, l2: float) -> float:
    """The exact non-negative least-squares solution of every column of ``M`` (block principal
    pivoting, warm-started from the current non-zeros), written into ``M``. Returns 0."""
    xp, _ = get_namespace(M)
    if l2:
        G = G + l2 * xp.eye(G.shape[0], dtype=G.dtype)
    if l1:
        R = R - l1
    M[...] = nnls(G, R, passive=M > 0)
    return 0.0


UPDATES = {"hals": hals, "mu": multiplicative, "anls": anls}


def repeat(solver: str, M: Any, R: Any, G: Any, l1: float, l2: float, inner: tuple[int, float]) -> float:
    """Up to ``inner[0]`` updates of ``M`` with the same ``R`` and ``G`` (Gillis & Glineur's
    accelerated HALS / MU: the costly data term is reused), stopping once an update moves ``M``
    by at most ``inner[1]`` times what the first one did. Returns the first update's violation
    (the quantity of scikit-learn's stopping rule)."""
    update = UPDATES[solver]
    most, eps = inner
    if most <= 1:
        return update(M, R, G, l1, l2)
    xp, _ = get_namespace(M)
    first_move = None
    violation = 0.0
    for s in range(most):
        before = M.copy()
        v = update(M, R, G, l1, l2) if s == 0 or solver != "hals" else hals(M, R, G, l1, l2, violation=False)
        before -= M
        move = float(xp.sqrt(xp.vdot(before.ravel(), before.ravel()).real))
        if s == 0:
            violation, first_move = v, move
        elif move <= eps * first_move:
            break
    return violation


# ----------------------------------------------------------------- NNLS (BPP)
def _masked_solve(G: Any, R: Any, F: Any) -> Any:
    """``x_F = G_FF^{-1} r_F``, ``x = 0`` off ``F``, for every column at once (batched solves of
    ``G`` restricted to each column's passive set, padded with the identity)."""
    xp, _ = get_namespace(R)
    k, c = R.shape
    Fc = F.T                                                  # c x k
    mats = G[None, :, :] * (Fc[:, :, None] & Fc[:, None, :])
    idx = xp.arange(k)
    mats[:, idx, idx] = xp.where(Fc, mats[:, idx, idx], 1)
    rhs = xp.where(Fc, R.T, 0)[:, :, None]
    return xp.linalg.solve(mats, rhs)[:, :, 0].T


def nnls(G: Any, R: Any, *, passive: Any = None, max_iter: int | None = None) -> Any:
    """Non-negative least squares ``argmin_{x >= 0} x^T G x / 2 - r^T x`` for every column ``r`` of ``R``.

        Block principal pivoting (Kim & Park, 2011): all infeasible variables change sides at once,
        with Murty's single-variable rule as the backup that guarantees termination. ``G`` must be
        positive definite on every passive set (a Gram matrix of full rank, or with an L2 term).

        Parameters
        ----------
        G : array
            (k x k) symmetric positive definite.
        R : array
            (k x c) right-hand sides.
        passive : array of bool, optional
            Warm start of the passive sets (for example the non-zeros of the previous solution).
        max_iter : int, optional
            Pivoting steps at most (default 10 k + 50).

        Returns
        -------
        array
            The solutions (k x c), non-negative.

        Examples
        --------
        >>> nnls(np.eye(2), np.array([[1.0], [-1.0]])).ravel().tolist()
        [1.0, 0.0]

        References
        ----------
        J. Kim and H. Park, "Fast nonnegative matrix factorization: an active-set-like
        method and comparisons", SIAM J. Sci. Comput. 33(6), 2011.
    """
    xp, _ = get_namespace(R)
    k, c = R.shape
    F = xp.zeros((k, c), dtype=bool) if passive is None else xp.asarray(passive, dtype=bool).copy()
    X = _masked_solve(G, R, F) if passive is not None else xp.zeros_like(R)
    Y = G @ X - R
    scale = float(xp.abs(R).max()) if R.size else 0.0
    tol = 1e-12 * max(scale, 1e-300)
    best = np.full(c, k + 1)
    backup = np.full(c, 3)
    todo = np.arange(c)
    max_iter = max_iter or 10 * k + 50
    for _ in range(max_iter):
        Fs, Xs, Ys = F[:, todo], X[:, todo], Y[:, todo]
        infeasible = (Fs & (Xs < -tol)) | (~Fs & (Ys < -tol))
        counts = to_numpy(infeasible.sum(axis=0))
        keep = counts > 0
        if not keep.any():
            break
        todo, infeasible, counts = todo[keep], infeasible[:, xp.asarray(keep)], counts[keep]
        fewer = counts < best[todo]
        best[todo[fewer]] = counts[fewer]
        backup[todo[fewer]] = 3
        retry = ~fewer & (backup[todo] >= 1)
        backup[todo[retry]] -= 1
        single = ~fewer & ~retry
        flip = infeasible
        if single.any():
            # Murty's rule: only the infeasible variable with the largest index changes side.
            cols = xp.asarray(np.flatnonzero(single))
            last = k - 1 - xp.argmax(infeasible[::-1][:, cols], axis=0)
            one = xp.zeros((k, len(cols)), dtype=bool)
            one[last, xp.arange(len(cols))] = True
            flip = flip.copy()
            flip[:, cols] = one
        sel = xp.asarray(todo)
        F[:, sel] ^= flip
        Xn = _masked_solve(G, R[:, sel], F[:, sel])
        X[:, sel] = Xn
        Y[:, sel] = xp.where(F[:, sel], 0, G @ Xn - R[:, sel])
    else:
        raise RuntimeError(f"NNLS (block principal pivoting) did not finish in {max_iter} exchanges; "
                           "the Gram matrix is probably singular (add alpha_W / alpha_H).")
    return xp.maximum(X, 0)


# --------------------------------------------------------------------- passes
def update_rows(A: Any, Wt: Any, H: Any, G: Any, solver: str, l1: float, l2: float,
                sub_rows: int, inner: tuple[int, float] = (1, 0.0)) -> tuple[Any, Any, Any, float]:
    """The fused one-pass kernel of a row block: update ``W_i`` and form ``W_i^T A_i``.

    ``A_i`` is swept in sub-blocks of ``sub_rows`` rows; each sub-block gives
    ``R = H A_s^T``, its rows of ``W`` are updated from it, and ``W_s^T A_s``
    is added up while the sub-block is still in cache. Returns the new
    ``Wt_i``, ``W_i^T A_i`` (k x n), ``W_i^T W_i`` (k x k) and the violation.
    ``inner``: see :func:`repeat`. ``H`` may come as a list of column blocks.
    """
    if isinstance(H, list):
        xp, _ = get_namespace(H[0])
        H = H[0] if len(H) == 1 else xp.concatenate(H, axis=1)
    Wt = Wt.copy()
    m = Wt.shape[1]
    step = m if is_sparse(A) else max(1, min(m, sub_rows))
    WtA = None
    violation = 0.0
    for s in range(0, m, step):
        As = A[s:s + step]
        Ws = Wt[:, s:s + step]
        violation += repeat(solver, Ws, data_term(H, As), G, l1, l2, inner)
        part = left_product(Ws, As)
        WtA = part if WtA is None else WtA + part
    return Wt, WtA, Wt @ Wt.T, violation


def update_cols(M: Any, R: Any, G: Any, solver: str, l1: float, l2: float,
                inner: tuple[int, float] = (1, 0.0)) -> tuple[Any, float]:
    """Update a block of ``H`` (k x n_j) from ``W^T A_j`` and ``W^T W`` (or, transposed, a block
    of ``W``); returns it and the violation."""
    M = M.copy()
    violation = repeat(solver, M, R, G, l1, l2, inner)
    return M, violation


def h_terms(H: Any, WtA: Any) -> tuple[Any, float]:
    """``H H^T`` and ``<W^T A, H>`` of a block of ``H`` (the pieces of the error and the next Gram)."""
    xp, _ = get_namespace(H)
    return H @ H.T, float(xp.vdot(WtA.ravel(), H.ravel()))


def error_pieces(A: Any, Wt: Any, gram: bool) -> tuple[Any, Any, float]:
    """``W_i^T A_ij``, ``W_i^T W_i`` (with ``gram``; once per row block) and ``||A_ij||^2``: the
    pieces of the error at the start."""
    return left_product(Wt, A), Wt @ Wt.T if gram else None, sq_norm(A)
