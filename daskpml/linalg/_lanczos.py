"""Thick-restart Lanczos eigensolver for distributed symmetric matrices.

Algorithm (Wu & Simon 2000, in the Krylov-Schur form of Stewart 2001):

* The basis ``V`` (n x (ncv + 1)) is distributed like the rows of ``A``: row
  block ``i`` owns ``V[rows_i, :]`` in one preallocated array. Only the
  projected matrix ``H = V^T A V`` (ncv x ncv) and a few norms reach the client.
* Each step is one product ``w = A v_j`` (``v_j`` is gathered once and sent to
  every block), then classical Gram-Schmidt twice against the whole basis (full
  reorthogonalization: two tree reductions of ``j + 2`` numbers), then
  ``v_{j+1} = w / beta``. A breakdown (``w`` numerically in the span: an
  invariant subspace) puts a seeded random vector, orthogonalized twice, in its
  place, with coupling 0.
* A *cycle* runs the steps up to ``ncv`` as one task graph: the client submits
  it, the workers run all its steps, and the client receives the coefficients
  once per cycle. This is the materialization point: one round trip per
  restart, not per step.
* Converged pairs are verified: the basis is restarted once more with the
  Ritz vectors and a fresh random vector orthogonal to them instead of the
  residual. A single Krylov sequence only ever sees one vector of a repeated
  eigenvalue (a graph with c components has c zero Laplacian eigenvalues); the
  fresh vector uncovers the missing copies. The run ends when a verification
  cycle leaves the wanted values unchanged. This costs one extra cycle.
* After a cycle the client diagonalizes ``H`` (``H Y = Y diag(theta)``). The
  residual of Ritz pair ``i`` is ``|beta_m Y[m-1, i]|`` exactly (``A V = V H +
  beta_m v_m e_m^T``). Pairs with residual ``<= tol * max(|theta|, eps^(2/3) ||A||)``
  have converged (ARPACK's rule). Otherwise the basis is restarted with the
  ``keep`` wanted Ritz vectors and the residual vector (a thick restart: the
  new ``H`` is diagonal plus one coupling column, which the next step's
  coefficients produce by themselves).

Lanczos finds the extreme eigenvalues of ``A`` fastest. For the smallest
eigenvalues of a Laplacian, :func:`daskpml.linalg.laplacian_eigsh` computes the
largest ones of ``D^-1/2 W D^-1/2`` (or of ``sigma I - L``) instead; the
Krylov spaces are the same as for ``L`` itself, but the wanted end becomes
the largest values, for which a relative tolerance is meaningful (an
eigenvalue 0 has no relative accuracy).

References
----------
K. Wu and H. Simon, "Thick-restart Lanczos method for large symmetric
eigenvalue problems", SIAM J. Matrix Anal. Appl. 22 (2000).
G. W. Stewart, "A Krylov-Schur algorithm for large eigenproblems", SIAM J.
Matrix Anal. Appl. 23 (2001).
J. W. Daniel, W. B. Gragg, L. Kaufman, G. W. Stewart, "Reorthogonalization
and stable algorithms for updating the Gram-Schmidt QR factorization",
Math. Comp. 30 (1976).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Callable, Literal

import dask
from dask.base import tokenize
import dask.array as da
import numpy as np
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from .. import _config, results
from .._checkpoint import Checkpoint, recorded_seed
from ..backend import get_namespace, is_sparse
from .._random import resolve_seed
from ..sparse import CSRMatrix, auto_row_chunks, from_array
from ..validation import PROTOCOL, Interval, NotSymmetricError, Options, check_array, validate_params
from . import _kernels as K

Which = Literal["LA", "SA", "LM"]
EPS = np.finfo(np.float64).eps


class NoConvergence(RuntimeError):
    """:func:`eigsh` ran out of restarts; the pairs that converged come with the error.

        Parameters
        ----------
        message : str
            What happened and how to fix it.
        eigenvalues : numpy.ndarray
            The converged eigenvalues.
        eigenvectors : dask.array.Array
            Their eigenvectors.

        Examples
        --------
        >>> err = NoConvergence("2 of 4 converged", np.array([1.0, 2.0]), None)
        >>> err.eigenvalues.tolist()
        [1.0, 2.0]
    """

    def __init__(self, message: str, eigenvalues: np.ndarray, eigenvectors: Any) -> None:
        super().__init__(message)
        self.eigenvalues = eigenvalues
        self.eigenvectors = eigenvectors


def default_ncv(k: int, n: int) -> int:
    """The Lanczos basis size ``min(n, max(2 k + 1, 20))``, SciPy's rule.

        Parameters
        ----------
        k : int
            Eigenpairs wanted.
        n : int
            Order of the matrix.

        Returns
        -------
        int

        Examples
        --------
        >>> default_ncv(6, 1000), default_ncv(6, 10)
        (20, 10)
    """
    return int(min(n, max(2 * k + 1, 20)))


def _row_blocks(A: Any) -> da.Array:
    """``A`` as a dask array of row blocks spanning all columns (sparse or dense blocks)."""
    if isinstance(A, CSRMatrix):
        return A.blocks
    if isinstance(A, da.Array):
        return A.rechunk({1: -1}) if len(A.chunks[1]) != 1 else A
    if is_sparse(A):
        return from_array(A).blocks
    xp, _ = get_namespace(A)
    A = xp.asarray(A)
    rows = auto_row_chunks(A.shape[0], int(np.prod(A.shape)) // 4)
    return da.from_array(A, chunks=(rows, -1), asarray=False)


def probably_symmetric(A: Any, *, rtol: float = 1e-10, random_state: Any = 0) -> bool:
    """Randomized symmetry test: ``u^T A v == v^T A u`` for two random vectors.

        Costs one product with a 2-column matrix instead of a transpose (an all-to-all exchange);
        a non-symmetric ``A`` passes with probability 0.

        Parameters
        ----------
        A : CSRMatrix, dask array, sparse matrix or array
            A square matrix.
        rtol : float, default 1e-10
            Relative tolerance of the comparison.
        random_state : None, int or numpy.random.Generator, default 0
            Seed of the test vectors.

        Returns
        -------
        bool

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> probably_symmetric(sp.csr_matrix([[0, 1.0], [1.0, 0]])), probably_symmetric(sp.csr_matrix([[0, 1.0], [0, 0]]))
        (True, False)
    """
    n = A.shape[0]
    if A.shape[0] != A.shape[1]:
        return False
    xp, _ = get_namespace(A)
    rng = np.random.default_rng(resolve_seed(random_state))
    uv = xp.asarray(rng.standard_normal((n, 2)))
    prod = A @ uv
    prod = prod.compute() if hasattr(prod, "compute") else prod
    a = float(uv[:, 0] @ prod[:, 1])
    b = float(uv[:, 1] @ prod[:, 0])
    scale = float(xp.linalg.norm(uv[:, 0]) * xp.linalg.norm(prod[:, 1])
                  + xp.linalg.norm(uv[:, 1]) * xp.linalg.norm(prod[:, 0]))
    return abs(a - b) <= rtol * max(scale, 1e-300)


def check_k_ncv(A: Any, k: int, which: str, ncv: int | None) -> tuple[int, int]:
    if which not in ("LA", "SA", "LM"):
        raise ValueError(f"which must be 'LA', 'SA' or 'LM', got {which!r}.")
    if not hasattr(A, "shape") or len(A.shape) != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"eigsh needs a square matrix, got shape {getattr(A, 'shape', None)}.")
    n = int(A.shape[0])
    if int(k) != k or not 0 < k < n:
        raise ValueError(f"k must be an integer with 0 < k < n = {n} (actual: {k}).")
    ncv = default_ncv(int(k), n) if ncv is None else int(ncv)
    if not k < ncv <= n:
        raise ValueError(f"ncv must satisfy k < ncv <= n ({k} < ncv <= {n}), got {ncv}.")
    return n, ncv


@dataclass
class RowOperator:
    """``A = S B S + E``: row blocks ``B`` (a dask array of sparse or dense blocks spanning all
    columns) with optional diagonal scalings ``S`` (``scale``) and ``E`` (``diag``), dask
    vectors chunked like the rows.

    A graph operator such as ``D^-1/2 W D^-1/2`` is used this way without forming it.
    """

    blocks: da.Array
    scale: da.Array | None = None
    diag: da.Array | None = None

    def persist(self) -> RowOperator:
        scale_full = None if self.scale is None else self.scale.rechunk(-1)
        blocks, scale, diag, scale_full = dask.persist(self.blocks, self.scale, self.diag, scale_full)
        out = RowOperator(blocks, scale, diag)
        out.scale_full = scale_full
        return out


class _Lanczos:
    """The state of one run: the persisted basis blocks and the projected matrix."""

    def __init__(self, op: RowOperator, ncv: int, seed: int, params: tuple = ()) -> None:
        blocks = op.blocks
        self.op = op
        self.blocks = blocks
        self.ncv = ncv
        self.seed = seed
        self.n_blocks = blocks.numblocks[0]
        self.rows = blocks.chunks[0]
        # deterministic names (dask's habit): the same operator, basis size, seed and options give the
        # same keys. The options are in the name because they steer the run (when it restarts, which
        # columns it refills at random): two runs that differ only in k or tol made different tasks
        # under the same keys, and the second read the first one's blocks (a shape error in the demo)
        self.token = tokenize(op.blocks, op.scale, op.diag, ncv, seed, params)[:12]
        self.a_keys = [(blocks.name, i, 0) for i in range(self.n_blocks)]
        self.basis: list[Delayed] = []   # persisted basis array of each block
        self.pieces: list[Delayed] = []  # persisted current vector of each block
        self.H = np.zeros((ncv, ncv))
        self.matvecs = 0
        self.rounds = 0
        self.counter = 0

    # -------------------------------------------------------------- graphs
    def _name(self, what: str) -> str:
        self.counter += 1
        return f"lanczos-{what}-{self.token}-{self.counter}"

    def _submit(self, dsk: dict, basis: list, pieces: list, small: list, extra: tuple = ()) -> list:
        """Run ``dsk``: keep the new basis / vector blocks on the workers, return ``small`` values."""
        name = self._name("graph")
        deps = [self.blocks, *self.basis, *self.pieces, *self._operator_parts(), *extra]
        graph = HighLevelGraph.from_collections(name, dsk, dependencies=deps)
        outputs = [Delayed(key, graph, layer=name) for key in [*basis, *pieces, *small]]
        persisted = dask.persist(*outputs, optimize_graph=False)
        p = self.n_blocks
        self.basis, self.pieces = list(persisted[:p]), list(persisted[p:2 * p])
        self.rounds += 1
        return list(dask.compute(*persisted[2 * p:]))

    def _operator_parts(self) -> list:
        op = self.op
        return [x for x in (op.scale, op.diag, getattr(op, "scale_full", None)) if x is not None]

    def _step(self, dsk: dict, basis: list, pieces: list, j: int, fill: str) -> tuple:
        """Tasks that fill column ``j + 1`` (product with column ``j``, or random) and orthonormalize it."""
        name = self._name("step")
        p = self.n_blocks
        col = j + 1
        if fill == "product":
            gather = (name, "v")
            scale_full = getattr(self.op, "scale_full", None)
            dsk[gather] = (K.gather, None if scale_full is None else (scale_full.name, 0), *pieces)
        first_parts, new_basis = [], []
        for i in range(p):
            if fill == "product":
                scale = None if self.op.scale is None else (self.op.scale.name, i)
                diag = None if self.op.diag is None else (self.op.diag.name, i)
                dsk[(name, "a", i)] = (K.fill_product, self.a_keys[i], gather, basis[i], col, scale, diag)
            else:
                dsk[(name, "a", i)] = (K.fill_random, basis[i], col, self.seed, self.counter, i)
            dsk[(name, "a0", i)] = (K.item, (name, "a", i), 0)
            dsk[(name, "a1", i)] = (K.item, (name, "a", i), 1)
            first_parts.append((name, "a1", i))
        dsk[(name, "r1")] = (K.total, *first_parts)
        second_parts = []
        for i in range(p):
            dsk[(name, "b", i)] = (K.subtract, (name, "a0", i), col, (name, "r1"))
            dsk[(name, "b0", i)] = (K.item, (name, "b", i), 0)
            dsk[(name, "b1", i)] = (K.item, (name, "b", i), 1)
            second_parts.append((name, "b1", i))
        dsk[(name, "r2")] = (K.total, *second_parts)
        new_pieces = []
        for i in range(p):
            dsk[(name, "c", i)] = (K.normalize, (name, "b0", i), col, (name, "r1"), (name, "r2"))
            dsk[(name, "c0", i)] = (K.item, (name, "c", i), 0)
            dsk[(name, "c1", i)] = (K.item, (name, "c", i), 1)
            new_basis.append((name, "c0", i))
            new_pieces.append((name, "c1", i))
        return new_basis, new_pieces, ((name, "r1"), (name, "r2"))

    # ------------------------------------------------------------- phases
    def start(self, v0: da.Array | None, like: Any) -> None:
        self.token = tokenize(self.token, v0)[:12]
        name = self._name("start")
        dsk: dict = {}
        parts, basis, pieces = [], [], []
        for i in range(self.n_blocks):
            if v0 is None:
                vec = (K.random_block, self.seed, 0, i, self.rows[i], like)
            else:
                vec = (v0.name, i)
            dsk[(name, "new", i)] = (K.new_basis, self.a_keys[i], vec, self.ncv)
            dsk[(name, "n0", i)] = (K.item, (name, "new", i), 0)
            dsk[(name, "n1", i)] = (K.item, (name, "new", i), 1)
            parts.append((name, "n1", i))
        dsk[(name, "norm")] = (K.total, *parts)
        for i in range(self.n_blocks):
            dsk[(name, "s", i)] = (K.normalize_first, (name, "n0", i), (name, "norm"))
            dsk[(name, "s0", i)] = (K.item, (name, "s", i), 0)
            dsk[(name, "s1", i)] = (K.item, (name, "s", i), 1)
            basis.append((name, "s0", i))
            pieces.append((name, "s1", i))
        self._submit(dsk, basis, pieces, [], extra=(v0,) if v0 is not None else ())

    def extend(self, start: int, stop: int) -> tuple[int, float]:
        """Steps ``start .. stop - 1``; returns the last completed step and its coupling beta.

        On a breakdown at step ``j`` the coupling is 0 and the following
        vector is random; the cycle then goes on from there.
        """
        j = start
        beta = 0.0
        while j < stop:
            dsk: dict = {}
            basis = [b.key for b in self.basis]
            pieces = [p.key for p in self.pieces]
            sums = []
            for step in range(j, stop):
                basis, pieces, pair = self._step(dsk, basis, pieces, step, "product")
                sums.append(pair)
            values = self._submit(dsk, basis, pieces, [key for pair in sums for key in pair])
            for offset in range(len(sums)):
                step = j + offset
                first, second = values[2 * offset], values[2 * offset + 1]
                self.matvecs += 1
                beta, broken = K.beta_and_breakdown(first, second)
                self.H[:step + 1, step] = first[:-1] + second[:-1]
                if broken:
                    beta = 0.0
                    if step + 1 < stop:
                        self._inject(step)
                    j = step + 1
                    break
                if step + 1 < stop:
                    self.H[step + 1, step] = beta
            else:
                j = stop
        return j, beta

    def _inject(self, step: int) -> None:
        """A random vector orthogonal to the basis in column ``step + 1`` (after a breakdown)."""
        dsk: dict = {}
        basis, pieces, pair = self._step(dsk, [b.key for b in self.basis], None, step, "random")
        first, second = self._submit(dsk, basis, pieces, list(pair))
        _, broken = K.beta_and_breakdown(first, second)
        if broken:
            raise RuntimeError("Lanczos could not extend the basis: the whole space is spanned.")

    def restart(self, m: int, rotation: np.ndarray, theta: np.ndarray, fresh: bool) -> None:
        """Keep ``V Y`` (``Y`` = rotation) and the residual vector (or a random one when ``fresh``)."""
        name = self._name("restart")
        dsk: dict = {}
        basis, pieces = [], []
        for i in range(self.n_blocks):
            dsk[(name, i)] = (K.restart, self.basis[i].key, m, rotation)
            dsk[(name, "0", i)] = (K.item, (name, i), 0)
            dsk[(name, "1", i)] = (K.item, (name, i), 1)
            basis.append((name, "0", i))
            pieces.append((name, "1", i))
        keep = rotation.shape[1]
        self.H = np.zeros_like(self.H)
        self.H[np.arange(keep), np.arange(keep)] = theta
        if fresh:
            basis, pieces, pair = self._step(dsk, basis, None, keep - 1, "random")
            _, broken = K.beta_and_breakdown(*self._submit(dsk, basis, pieces, list(pair)))
            if broken:
                raise RuntimeError("Lanczos could not extend the basis: the whole space is spanned.")
        else:
            self._submit(dsk, basis, pieces, [])

    def vectors(self, m: int, rotation: np.ndarray, meta: Any) -> da.Array:
        name = self._name("ritz")
        dsk = {(name, i, 0): (K.ritz_vectors, self.basis[i].key, m, rotation) for i in range(self.n_blocks)}
        graph = HighLevelGraph.from_collections(name, dsk, dependencies=self.basis)
        return da.Array(graph, name, chunks=(self.rows, (rotation.shape[1],)), meta=meta)


def _order(theta: np.ndarray, which: str) -> np.ndarray:
    """Indices of the Ritz values, most wanted first."""
    if which == "LA":
        return np.argsort(-theta, kind="stable")
    if which == "SA":
        return np.argsort(theta, kind="stable")
    return np.argsort(-np.abs(theta), kind="stable")


#: the arguments of eigsh and laplacian_eigsh (SciPy's names)
EIGSH_CONSTRAINTS = {
    "k": [Interval(Integral, 1, None)], "which": [Options("LA", "SA", "LM")], "ncv": [None, Interval(Integral, 2, None)],
    "tol": [Interval(Real, 0, None)], "maxiter": [None, Interval(Integral, 1, None)], "v0": [None, "array-like"],
    "return_eigenvectors": ["boolean"], **PROTOCOL}

#: keywords eigsh and laplacian_eigsh no longer take
REMOVED = {"return_history": "the history is on the result of daskpml.linalg.lanczos (or laplacian_lanczos), "
                             "which eigsh (laplacian_eigsh) unpacks as SciPy does; eigsh returns what "
                             "scipy.sparse.linalg.eigsh returns."}


@dataclass(repr=False)
class LanczosResult(results.ResultDisplay):
    """What :func:`lanczos` and :func:`~daskpml.linalg.laplacian_lanczos` return.

        Parameters
        ----------
        eigenvalues : numpy.ndarray
            The ``k`` eigenvalues in ascending order (as SciPy).
        eigenvectors : dask.array.Array or None
            Orthonormal eigenvectors (n x k), chunked like the matrix's rows; None when not asked for.
        history : xarray.Dataset
            One row per restart cycle: ``matvecs``, ``converged``, ``max_residual``, ``time``,
            ``rounds``, ``bytes`` (a model: the vectors moved by the products and reductions).
        n_restarts : int
            Restart cycles run.
        matvecs : int
            Products with the matrix.

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> res = lanczos(sp.diags([1.0, 2.0, 3.0, 4.0, 5.0]).tocsr(), k=2, which="LA")
        >>> res.eigenvalues.round(6).tolist(), res.eigenvectors.shape
        ([4.0, 5.0], (5, 2))
    """

    eigenvalues: np.ndarray
    eigenvectors: Any
    history: Any
    n_restarts: int
    matvecs: int

    def unpack(self) -> Any:
        """``w`` or ``(w, v)``, as :func:`scipy.sparse.linalg.eigsh` returns them."""
        return self.eigenvalues if self.eigenvectors is None else (self.eigenvalues, self.eigenvectors)


@validate_params(EIGSH_CONSTRAINTS, removed=REMOVED)
def eigsh(A: Any, k: int = 6, *, which: Which = "LM", ncv: int | None = None, tol: float = 0.0,
          maxiter: int | None = None, v0: Any = None, return_eigenvectors: bool = True,
          random_state: Any = None, callback: Callable[[dict], Any] | None = None,
          checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10,
          resume: bool = False) -> Any:
    """Eigenvalues (and eigenvectors) of a distributed symmetric matrix by thick-restart Lanczos.

    The signature, defaults and return values are :func:`scipy.sparse.linalg.eigsh`'s (without
    ``M``, ``sigma`` and the inverse operators); :func:`lanczos` takes the same arguments and
    returns a :class:`LanczosResult` with the history.

    Parameters
    ----------
    A : CSRMatrix, dask array, SciPy sparse matrix or NumPy/CuPy array, shape (n, n)
        Symmetric. Row blocks stay where they are; dense dask input is
        rechunked to span all columns.
    k : int
        Number of eigenpairs, ``0 < k < n``.
    which : {"LM", "LA", "SA"}, default "LM"
        Largest magnitude (SciPy's default), largest algebraic or smallest algebraic.
    ncv : int, optional
        Basis size, ``k < ncv <= n``; default ``min(n, max(2 k + 1, 20))``.
    tol : float
        Relative accuracy: converged when ``||A x - theta x|| <= tol *
        max(|theta|, eps^(2/3) ||A||)`` (or ``<= 4 eps ||A||``, the rounding
        level); 0 means machine precision.
    maxiter : int, optional
        Restarts allowed (default ``10 n``, as SciPy).
    v0 : array of length n, optional
        Start vector; default a random vector seeded by ``random_state``
        (generated per row block, so it depends on the row chunks).
    return_eigenvectors : bool
        Also return the eigenvectors, a dask array (n x k) chunked like ``A``'s rows.
    random_state : int, Generator or None
        Seed of the start vector and of the vectors used after a breakdown.
    callback : callable(record) -> bool, optional
        Called after every restart cycle with the history row just appended (``iteration``: the
        cycle, ``matvecs``, ``converged``, ``max_residual``, ``time``, ``rounds``, ``bytes``) and
        the wanted Ritz pairs' ``ritz_values`` and ``residuals``; returning True stops with the
        current Ritz pairs.
    checkpoint, checkpoint_every, resume :
        A directory for a snapshot every ``checkpoint_every`` restarts: the basis blocks
        (written by the tasks that hold them), the projected matrix and the counters.
        ``resume=True`` goes on from the newest snapshot and gives exactly the
        uninterrupted run's eigenpairs.

    Returns
    -------
    w : ndarray (k,)
        Eigenvalues in ascending order (as SciPy).
    v : dask array (n, k), if ``return_eigenvectors``
        The eigenvectors, orthonormal, same backend as ``A``.

    Raises
    ------
    NoConvergence
        When ``maxiter`` restarts end first; it carries the converged pairs.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> from daskpml.linalg import eigsh
    >>> A = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(200, 200), format="csr")
    >>> w = eigsh(A, k=3, return_eigenvectors=False)
    >>> bool(abs(w[-1] - (2 + 2 * np.cos(np.pi / 201))) < 1e-10)
    True
    """
    return lanczos(A, k, which=which, ncv=ncv, tol=tol, maxiter=maxiter, v0=v0,
                   return_eigenvectors=return_eigenvectors, random_state=random_state, callback=callback,
                   checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume).unpack()


@validate_params(EIGSH_CONSTRAINTS)
def lanczos(A: Any, k: int = 6, *, which: Which = "LM", ncv: int | None = None, tol: float = 0.0,
            maxiter: int | None = None, v0: Any = None, return_eigenvectors: bool = True,
            random_state: Any = None, callback: Callable[[dict], Any] | None = None,
            checkpoint: str | os.PathLike | None = None, checkpoint_every: int = 10,
            resume: bool = False) -> LanczosResult:
    """:func:`eigsh` returning a :class:`LanczosResult` (the eigenpairs with the history).

    Parameters
    ----------
    A, k, which, ncv, tol, maxiter, v0, return_eigenvectors, random_state, callback, checkpoint, \
checkpoint_every, resume
        As :func:`eigsh`.

    Returns
    -------
    LanczosResult

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> A = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(200, 200), format="csr")
    >>> res = lanczos(A, k=3, which="LA", return_eigenvectors=False)
    >>> res.history.sizes["iteration"] == res.n_restarts + 1
    True
    """
    check_k_ncv(A, k, which, ncv)
    if isinstance(A, CSRMatrix):
        check_array(A, name="A")
    elif not isinstance(A, da.Array):
        A = check_array(A if is_sparse(A) or hasattr(A, "__array__") else np.asarray(A), name="A")
    blocks = _row_blocks(A)
    if isinstance(A, da.Array):
        blocks = check_array(blocks, name="A")
    if not probably_symmetric(CSRMatrix(blocks) if is_sparse(blocks._meta) else blocks):
        raise NotSymmetricError(
            "A is not symmetric (u^T A v differs from v^T A u for random u, v): eigsh (Lanczos) needs a "
            "symmetric matrix and would not converge. Symmetrize it ((A + A.T) / 2 or A.maximum(A.T)), or "
            "use scipy.sparse.linalg.eigs for a non-symmetric matrix.", "A")
    return solve(RowOperator(blocks), k, which=which, ncv=ncv, tol=tol, maxiter=maxiter, v0=v0,
                 return_eigenvectors=return_eigenvectors, random_state=random_state,
                 callback=callback, checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume)


def solve(op: RowOperator, k: int, *, which: Which = "LA", ncv: int | None = None, tol: float = 0.0,
          maxiter: int | None = None, v0: Any = None, return_eigenvectors: bool = True,
          random_state: Any = None, callback: Callable[[dict], Any] | None = None,
          tol_shift: float = 0.0, checkpoint: str | os.PathLike | None = None,
          checkpoint_every: int = 10, resume: bool = False) -> LanczosResult:
    """:func:`eigsh` on a validated :class:`RowOperator`.

    ``tol_shift``: measure the relative accuracy against ``|theta - tol_shift|``
    instead of ``|theta|``; after a spectral transformation ``theta = shift -
    lambda`` this makes ``tol`` relative to the original eigenvalue ``lambda``.
    ``checkpoint`` (a folder): snapshots at restarts.
    """
    blocks = op.blocks
    n, ncv = check_k_ncv(blocks, k, which, ncv)
    tol = float(tol)
    if tol < 0 or not np.isfinite(tol):
        raise ValueError(f"tol must be >= 0, got {tol}.")
    maxiter = 10 * n if maxiter is None else int(maxiter)
    xp, _ = get_namespace(blocks)
    dtype = np.result_type(blocks.dtype, np.float64)
    like = xp.empty(0, dtype=dtype)
    row_chunks = blocks.chunks[0]
    with _placement(op.persist(), ncv) as op:
        blocks = op.blocks
        if v0 is not None:
            v0 = da.asarray(v0) if not isinstance(v0, da.Array) else v0
            if v0.shape != (n,):
                raise ValueError(f"v0 must have shape ({n},), got {tuple(v0.shape)}.")
            v0 = check_array(v0, ensure_2d=False, allow_1d=True, name="v0").astype(dtype).rechunk((blocks.chunks[0],))
        ckpt = Checkpoint(checkpoint, every=checkpoint_every, resume=resume)
        # a resume draws what the interrupted run drew
        seed = resolve_seed(recorded_seed(ckpt.path, "eigsh", random_state) if ckpt.resume else random_state)
        ckpt.describe("eigsh", params={"k": k, "which": which, "ncv": ncv, "tol": tol, "tol_shift": tol_shift,
                                       "seed": seed, "v0": v0 is not None},
                      data={"n": n, "row_chunks": list(row_chunks), "dtype": str(np.dtype(dtype))})
        solver = _Lanczos(op, ncv, seed, params=(k, which, tol, tol_shift, maxiter))
        tol_eff = max(tol, EPS)
        recorder = results.HistoryRecorder(callback=callback, bytes_source="model")
        # a product sends the vector to every row block and brings the blocks of A x back
        product_bytes = 8 * n * (blocks.numblocks[0] + 1)
        ckpt.watch(A=blocks)
        snap = ckpt.restore(like=like)
        if snap is None:
            solver.start(v0, like)
            j, restarts, verified = 0, 0, None
        else:                           # the basis after restart number snap.iteration
            solver.basis = list(dask.persist(*snap.blocks["basis"]))
            solver.pieces = list(dask.persist(*snap.blocks["pieces"]))
            solver.H = np.array(snap.arrays["H"])
            for name in ("matvecs", "rounds", "counter"):
                setattr(solver, name, int(snap.state[name]))
            j, restarts = int(snap.state["j"]), snap.iteration
            verified = snap.arrays.get("verified")
            recorder.resume(snap.rows())
        while True:
            matvecs_before = solver.matvecs
            last, beta = solver.extend(j, ncv)
            m = last
            T = np.triu(solver.H[:m, :m])
            T = T + np.triu(T, 1).T
            theta, Y = np.linalg.eigh(T)
            order = _order(theta, which)
            residual = np.abs(beta * Y[m - 1, :])
            anorm = max(np.abs(theta).max(), EPS)
            scale = np.maximum(np.abs(theta - tol_shift), EPS ** (2 / 3) * anorm)
            bound = np.maximum(tol_eff * scale, 4 * EPS * anorm)
            wanted = order[:k]
            done = residual[wanted] <= bound[wanted]
            invariant = beta == 0.0 and m < n
            values = np.sort(theta[wanted])
            # after a verification restart: stop once converged again to the same values
            settled = done.all() and verified is not None and bool(
                np.abs(values - verified).max() <= max(10 * bound[wanted].max(), 100 * EPS * anorm))
            stop = recorder.record(restarts, {"ritz_values": theta[wanted], "residuals": residual[wanted]},
                                   matvecs=solver.matvecs, converged=int(done.sum()),
                                   max_residual=float(residual[wanted].max()), rounds=solver.rounds,
                                   bytes=product_bytes * (solver.matvecs - matvecs_before))
            if (done.all() and settled) or m == n or stop:
                break
            if restarts >= maxiter:
                good = wanted[done]
                vecs = solver.vectors(m, Y[:, good], xp.empty((0, 0), dtype))
                raise NoConvergence(
                    f"eigsh: {int(done.sum())} of {k} eigenpairs converged in {maxiter} restarts "
                    f"({solver.matvecs} products); raise maxiter or tol, or enlarge ncv.",
                    np.sort(theta[good]), vecs)
            # a verification restart keeps only the converged wanted pairs, whose dropped
            # couplings to the residual vector are below the tolerance
            kept = wanted if done.all() else order[:_keep(k, m, int(done.sum()))]
            keep = len(kept)
            fresh = invariant or done.all()
            if done.all():
                verified = values
            solver.restart(m, Y[:, kept], theta[kept], fresh=fresh)
            j = keep
            restarts += 1
            if ckpt.due(restarts):
                ckpt.save(restarts, arrays={"H": solver.H, **({} if verified is None else {"verified": verified})},
                          blocks={"basis": solver.basis, "pieces": solver.pieces}, history=recorder.columns(),
                          state={"j": j, "matvecs": solver.matvecs, "rounds": solver.rounds,
                                 "counter": solver.counter})
        sel = wanted[np.argsort(theta[wanted], kind="stable")]
        vectors = solver.vectors(m, Y[:, sel], xp.empty((0, 0), dtype)).rechunk({0: row_chunks}) \
            if return_eigenvectors else None
        history = recorder.to_xarray(attrs={"k": k, "which": which, "ncv": ncv, "tol": tol, "restarts": restarts,
                                            "matvecs": solver.matvecs, "rounds": solver.rounds})
        return LanczosResult(eigenvalues=theta[sel], eigenvectors=vectors, history=history,
                             n_restarts=int(restarts), matvecs=int(solver.matvecs))


@contextlib.contextmanager
def _placement(op: RowOperator, ncv: int):
    """Run small problems in this process: one in-memory block and the synchronous scheduler.

    A Lanczos step is a few tasks per block with two reductions; on a
    distributed cluster each costs a scheduler round trip, which dominates
    when the matrix and the basis are below ``daskpml.linalg.local-bytes``.
    """
    nnz = op.blocks.map_blocks(_stored, chunks=((1,) * op.blocks.numblocks[0],), drop_axis=1,
                               dtype=np.int64, meta=np.empty(0, np.int64)).sum().compute()
    n = op.blocks.shape[0]
    if 12 * int(nnz) + 8 * n * (ncv + 1) > _config.get("linalg.local-bytes"):
        yield op
        return
    blocks, scale, diag = dask.compute(op.blocks, op.scale, op.diag)
    local = RowOperator(da.from_array(blocks, chunks=-1, asarray=False),
                        None if scale is None else da.from_array(scale, chunks=-1),
                        None if diag is None else da.from_array(diag, chunks=-1))
    with dask.config.set(scheduler="sync"):
        yield local.persist()


def _stored(block: Any) -> Any:
    return np.asarray([block.nnz if is_sparse(block) else block.size], dtype=np.int64)


def _keep(k: int, m: int, converged: int) -> int:
    """Ritz vectors kept at a restart: the k wanted plus half the rest (more as pairs converge)."""
    return int(min(m - 1, k + max((m - k) // 2, 1) + min(converged, (m - k) // 4)))


