"""Graph Laplacians of distributed sparse graphs, and their smallest eigenpairs.

With ``W`` a symmetric non-negative adjacency matrix and ``d = W 1`` the degrees:

* ``"unnormalized"``: ``L = D - W``;
* ``"sym"``: ``L = I - D^-1/2 W D^-1/2``;
* ``"rw"``: ``L = I - D^-1 W`` (not symmetric; same eigenvalues as ``"sym"``,
  eigenvectors ``D^-1/2`` times those of ``"sym"``).

Self loops (diagonal entries of ``W``) are ignored, as in
:func:`scipy.sparse.csgraph.laplacian`.

**Isolated nodes** (degree 0) get an all-zero row and column in every kind: the
diagonal of ``L`` is 0 there, not 1, exactly as SciPy's ``normed=True``. Each
isolated node is then its own connected component and contributes one zero
eigenvalue, with the indicator of that node as eigenvector; nothing is divided
by a zero degree.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Literal

import dask
import dask.array as da
import numpy as np

from ..backend import get_namespace
from ..sparse import CSRMatrix, from_array, row_indices
from ..validation import NotSymmetricError, Options, check_graph, validate_params
from ._lanczos import EIGSH_CONSTRAINTS, REMOVED, LanczosResult, RowOperator, check_k_ncv, probably_symmetric, solve

Kind = Literal["unnormalized", "sym", "rw"]
KINDS = ("unnormalized", "sym", "rw")


def _offdiagonal(block: Any, block_info: dict | None = None) -> Any:
    """This row block of ``W`` with its self loops removed."""
    start = block_info[0]["array-location"][0][0] if block_info else 0
    loops = block.indices == row_indices(block) + start
    if not loops.any():
        return block
    _, xsp = get_namespace(block)
    data = block.data.copy()
    data[loops] = 0
    out = xsp.csr_matrix((data, block.indices.copy(), block.indptr.copy()), shape=block.shape)
    out.eliminate_zeros()
    return out


def _with_diagonal(block: Any, diag: Any, scale: float, block_info: dict | None = None) -> Any:
    """``diag(diag) + scale * block`` for one row block (``diag`` holds this block's rows)."""
    start = block_info[0]["array-location"][0][0] if block_info else 0
    xp, xsp = get_namespace(block)
    rows = block.shape[0]
    eye = xsp.csr_matrix((diag.ravel(), (xp.arange(rows), xp.arange(start, start + rows))), shape=block.shape)
    return (eye + block * scale).tocsr()


def _as_graph(W: Any, name: str = "W") -> CSRMatrix:
    if not isinstance(W, CSRMatrix):
        W = from_array(W)
    check_graph(W, symmetric=False, name=name)
    return W


def _check_symmetric(W: CSRMatrix, name: str) -> None:
    if not probably_symmetric(W):
        raise NotSymmetricError(
            f"{name} is not symmetric; a Laplacian needs an undirected graph. Symmetrize it first, "
            "for example with knn_graph(..., symmetrize='mean'), (W + W.T) / 2 or W.maximum(W.T).", name
        )


def degrees(W: CSRMatrix) -> da.Array:
    """Weighted degrees of a graph: the row sums of ``W`` without its self loops.

        Parameters
        ----------
        W : CSRMatrix
            The adjacency.

        Returns
        -------
        dask.array.Array
            One degree per node, chunked like the rows of ``W``.

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> from daskpml.sparse import from_array
        >>> degrees(from_array(sp.csr_matrix([[5.0, 1.0], [1.0, 0]]))).compute().tolist()
        [1.0, 1.0]
    """
    return _drop_loops(W).sum(axis=1)


def _drop_loops(W: CSRMatrix) -> CSRMatrix:
    return W.map_blocks(_offdiagonal)


def _prepare(W: Any) -> tuple[CSRMatrix, da.Array]:
    """Validated symmetric ``W`` without self loops, and its degrees, both persisted."""
    W = _as_graph(W)
    _check_symmetric(W, "W")
    W = _drop_loops(W)
    return dask.persist(W, W.sum(axis=1))


def _degree_power(d: Any, power: float, isolated: float = 0.0) -> Any:
    """``d ** power`` where ``d > 0`` and ``isolated`` where ``d == 0`` (no division by zero)."""
    xp, _ = get_namespace(d)
    out = xp.full_like(d, isolated)
    mask = d > 0
    out[mask] = d[mask] ** power
    return out


def _nonzero(d: Any) -> Any:
    return (d > 0).astype(d.dtype)


@validate_params({"kind": [Options(*KINDS)], "return_diag": ["boolean"]})
def laplacian(W: Any, kind: Kind = "sym", *, return_diag: bool = False) -> Any:
    """Graph Laplacian of a symmetric non-negative adjacency matrix, as a :class:`CSRMatrix`.

    Parameters
    ----------
    W : CSRMatrix, SciPy sparse matrix, dense array or dask array (n x n)
        Symmetric, non-negative, finite. Self loops are ignored.
    kind : {"unnormalized", "sym", "rw"}
        ``D - W``, ``I - D^-1/2 W D^-1/2`` or ``I - D^-1 W``. Isolated nodes
        get zero rows (see the module docstring).
    return_diag : bool
        Also return the degrees (``"unnormalized"``) or their square roots
        (``"sym"``, as SciPy) or the degrees (``"rw"``), a dask vector.

    Returns
    -------
    L : CSRMatrix, row blocks as ``W``
    d : dask array, if ``return_diag``

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from daskpml.linalg import laplacian
    >>> W = sp.csr_matrix(np.array([[0, 1, 0], [1, 0, 2], [0, 2, 0]], float))
    >>> laplacian(W, "unnormalized").to_scipy().toarray()
    array([[ 1., -1.,  0.],
           [-1.,  3., -2.],
           [ 0., -2.,  2.]])
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
    W, d = _prepare(W)
    if kind == "unnormalized":
        L = _add_diagonal(W, d, -1.0)
        diag = d
    elif kind == "sym":
        s = d.map_blocks(_degree_power, -0.5)
        L = _add_diagonal(W.scale_rows(s).scale_columns(s), d.map_blocks(_nonzero), -1.0)
        diag = d.map_blocks(_sqrt_or_one)
    else:
        L = _add_diagonal(W.scale_rows(d.map_blocks(_degree_power, -1.0)), d.map_blocks(_nonzero), -1.0)
        diag = d
    return (L, diag) if return_diag else L


def _sqrt_or_one(d: Any) -> Any:
    """SciPy's ``normed=True`` diagonal: ``sqrt(d)``, 1 for isolated nodes."""
    xp, _ = get_namespace(d)
    return xp.where(d > 0, xp.sqrt(xp.abs(d)), 1.0)


def _add_diagonal(W: CSRMatrix, diag: da.Array, scale: float) -> CSRMatrix:
    diag = diag.rechunk((W.row_chunks,))
    dtype = np.result_type(W.dtype, diag.dtype)
    return CSRMatrix(W.blocks.map_blocks(_with_diagonal, diag[:, None], scale, dtype=dtype,
                                         meta=W._meta.astype(dtype)))


@validate_params({**EIGSH_CONSTRAINTS, "kind": [Options(*KINDS)]}, removed=REMOVED)
def laplacian_eigsh(W: Any, k: int = 6, *, kind: Kind = "sym", tol: float = 0.0, ncv: int | None = None,
                    maxiter: int | None = None, v0: Any = None, random_state: Any = None,
                    return_eigenvectors: bool = True, callback: Callable | None = None,
                    checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10,
                    resume: bool = False) -> Any:
    """The ``k`` smallest eigenpairs of a graph Laplacian, through a spectral transformation.

    Returns ``w`` (ascending) or ``(w, v)``, as :func:`eigsh`; :func:`laplacian_lanczos` takes the
    same arguments and returns a :class:`LanczosResult` with the history.

    Parameters
    ----------
    W : CSRMatrix, dask array, SciPy sparse matrix or array, shape (n, n)
        The symmetric, non-negative adjacency (weight) matrix of the graph.
    k : int
        Number of eigenpairs.
    kind : {"sym", "rw", "unnormalized"}
        Which Laplacian (see :func:`laplacian`).
    tol, ncv, maxiter, v0, random_state, return_eigenvectors, callback, checkpoint, \
checkpoint_every, resume
        As :func:`eigsh`; ``tol`` is relative to the Laplacian's eigenvalues.

    Returns
    -------
    w : numpy.ndarray
        The ``k`` smallest eigenvalues of the Laplacian, ascending.
    v : dask.array.Array, if ``return_eigenvectors``
        Their eigenvectors (n x k).

    Examples
    --------
    >>> from daskpml.datasets import make_sbm
    >>> W, _ = make_sbm(300, 3, in_degree=10, out_degree=1, random_state=0)
    >>> w = laplacian_eigsh(W, 3, return_eigenvectors=False, tol=1e-8)
    >>> bool(abs(w[0]) < 1e-8)
    True

    Notes
    -----
    Lanczos converges fastest to the extreme eigenvalues, and a relative
    tolerance means nothing for the eigenvalue 0. So instead of ``which="SA"``
    on ``L`` this computes the largest eigenpairs of

    * ``N = D^-1/2 W D^-1/2`` for ``"sym"`` and ``"rw"``: ``lambda = 1 - theta``;
      for ``"rw"`` the eigenvectors are ``D^-1/2 v`` (normalized to unit length);
    * ``sigma I - L`` with ``sigma = 2 max(d)`` (a Gershgorin bound on the
      spectrum of ``L``) for ``"unnormalized"``: ``lambda = sigma - theta``.

    These have the same Krylov spaces as ``L``; nothing is inverted. The
    operator is applied as ``S W S + E`` (``S``, ``E`` diagonal) without being
    formed. An isolated node is an eigenvector with eigenvalue 0 in every kind (its row of
    ``L`` is 0; ``E`` has a 1 there). ``tol`` is relative to ``lambda`` (the
    Laplacian's eigenvalue), as ARPACK's would be on ``L`` itself.

    Checkpoints are snapshots of the Lanczos basis at restarts, as :func:`eigsh`'s.
    """
    return laplacian_lanczos(W, k, kind=kind, tol=tol, ncv=ncv, maxiter=maxiter, v0=v0, random_state=random_state,
                             return_eigenvectors=return_eigenvectors, callback=callback, checkpoint=checkpoint,
                             checkpoint_every=checkpoint_every, resume=resume).unpack()


@validate_params({**EIGSH_CONSTRAINTS, "kind": [Options(*KINDS)]})
def laplacian_lanczos(W: Any, k: int = 6, *, kind: Kind = "sym", tol: float = 0.0, ncv: int | None = None,
                      maxiter: int | None = None, v0: Any = None, random_state: Any = None,
                      return_eigenvectors: bool = True, callback: Callable | None = None,
                      checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10,
                      resume: bool = False) -> LanczosResult:
    """:func:`laplacian_eigsh` returning a :class:`LanczosResult` (the eigenpairs and the history;
    the eigenvalues are the Laplacian's, the history's Ritz values the transformed operator's).

    Parameters
    ----------
    W, k, kind, tol, ncv, maxiter, v0, random_state, return_eigenvectors, callback, checkpoint, \
checkpoint_every, resume
        As :func:`laplacian_eigsh`.

    Returns
    -------
    LanczosResult

    Examples
    --------
    >>> from daskpml.datasets import make_sbm
    >>> W, _ = make_sbm(300, 3, in_degree=10, out_degree=1, random_state=0)
    >>> res = laplacian_lanczos(W, 3, tol=1e-8)
    >>> res.eigenvectors.shape
    (300, 3)
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
    check_k_ncv(W, k, "LA", ncv)
    W, d = _prepare(W)
    d_max, n_isolated = dask.compute(d.max(), (d == 0).sum())
    if kind == "unnormalized":
        shift = 2.0 * float(d_max) if d_max > 0 else 1.0
        op = RowOperator(W.blocks, diag=shift - d)
    else:
        shift = 1.0
        op = RowOperator(W.blocks, scale=d.map_blocks(_degree_power, -0.5),
                         diag=d.map_blocks(_isolated) if n_isolated else None)
    res = solve(op, k, which="LA", tol=tol, ncv=ncv, maxiter=maxiter, v0=v0, random_state=random_state,
                return_eigenvectors=return_eigenvectors, callback=callback, tol_shift=shift,
                checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume)
    theta = res.eigenvalues
    order = np.argsort(shift - theta, kind="stable")
    res.eigenvalues = (shift - theta)[order]
    if return_eigenvectors:
        vecs = res.eigenvectors[:, order]
        res.eigenvectors = _rw_vectors(vecs, d) if kind == "rw" else vecs
    res.history.attrs.update(kind=kind, shift=shift)
    return res


def _isolated(d: Any) -> Any:
    return (d == 0).astype(d.dtype)


def _rw_vectors(vecs: da.Array, d: da.Array) -> da.Array:
    """``D^-1/2 v`` column-normalized (isolated nodes keep their entry)."""
    s = d.map_blocks(_degree_power, -0.5, 1.0).rechunk((vecs.chunks[0],))
    u = vecs * s[:, None]
    return u / da.sqrt((u ** 2).sum(axis=0))[None, :]
