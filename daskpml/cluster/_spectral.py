"""Spectral embedding and spectral clustering on distributed graphs.

The affinity graph (k-nearest-neighbour, Gaussian or given) stays a
:class:`~daskpml.sparse.CSRMatrix`; the eigenvectors come from
:func:`daskpml.linalg.laplacian_eigsh` (distributed Lanczos on ``D^-1/2 W D^-1/2``)
and stay a dask array until k-means reads them.

* ``laplacian="sym"`` (Ng, Jordan & Weiss 2002): the k smallest eigenvectors of
  ``L_sym``, each row scaled to unit length, then k-means.
* ``laplacian="rw"`` (Shi & Malik 2000): the eigenvectors of ``L_rw``
  (``D^-1/2`` times those of ``L_sym``), then k-means; scikit-learn's choice.
* ``method="recursive"``: the normalized-cut recursion. A part is split in two by
  the sign of its Fiedler vector (the second eigenvector of ``L_rw`` of the part's
  subgraph); the part split next is the one whose second eigenvalue is smallest
  (the cheapest normalized cut), until there are ``n_clusters`` parts.

References
----------
U. von Luxburg, "A tutorial on spectral clustering", Statistics and Computing 17 (2007).
J. Shi and J. Malik, "Normalized cuts and image segmentation", IEEE TPAMI 22 (2000).
A. Ng, M. Jordan, Y. Weiss, "On spectral clustering: analysis and an algorithm", NIPS 2001.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin

from ..backend import get_namespace, to_numpy
from .._random import resolve_seed
from ..graph import gaussian_graph, knn_graph
from ..linalg import laplacian_eigsh
from ..sparse import CSRMatrix, auto_row_chunks, from_array, stack_blocks
from ..validation import Interval, NotSymmetricError, Options, ParamsValidated, check_array, check_graph, validate_params
from ..graph import kmeans

Affinity = Literal["nearest_neighbors", "rbf", "precomputed"]
AFFINITIES = ("nearest_neighbors", "rbf", "precomputed")


def affinity_graph(X: Any, affinity: Affinity = "nearest_neighbors", *, n_neighbors: int = 10,
                   gamma: float = 1.0) -> CSRMatrix:
    """The symmetric affinity matrix used by the spectral estimators.

        Parameters
        ----------
        X : array-like, dask array, sparse matrix or CSRMatrix
            Points (n x d), or the affinity itself for ``"precomputed"``.
        affinity : {"nearest_neighbors", "rbf", "precomputed"}, default "nearest_neighbors"
            ``"nearest_neighbors"``: ``(C + C.T) / 2`` with ``C`` the k-NN connectivity including
            each point itself (as scikit-learn); ``"rbf"``: the sparsified Gaussian kernel of
            :func:`daskpml.graph.gaussian_graph`; ``"precomputed"``: ``X`` is the affinity (it must
            be symmetric and non-negative).
        n_neighbors : int, default 10
            Neighbours of the k-NN affinity.
        gamma : float, default 1.0
            Width of the ``"rbf"`` affinity.

        Returns
        -------
        CSRMatrix
            The symmetric affinity (n x n).

        Examples
        --------
        >>> import numpy as np
        >>> W = affinity_graph(np.random.default_rng(0).normal(size=(50, 2)), n_neighbors=5)
        >>> W.shape, W.is_symmetric()
        ((50, 50), True)
    """
    if affinity not in AFFINITIES:
        raise ValueError(f"affinity must be one of {AFFINITIES}, got {affinity!r}.")
    if affinity == "nearest_neighbors":
        return knn_graph(X, n_neighbors, mode="connectivity", symmetrize="mean", include_self=True)
    if affinity == "rbf":
        return gaussian_graph(X, gamma=gamma)
    if not isinstance(X, CSRMatrix) and not hasattr(X, "chunks"):
        X = check_array(X, ensure_finite=False, ensure_min_samples=2, name="affinity")   # lists, object dtype
    W = X if isinstance(X, CSRMatrix) else from_array(X)
    check_graph(W, name="affinity")
    if not W.is_symmetric(tol=1e-10):
        raise NotSymmetricError(
            "The precomputed affinity is not symmetric. Build it with daskpml.graph.knn_graph(X, ..., "
            "symmetrize='mean') or symmetrize it yourself ((W + W.T) / 2).", "affinity"
        )
    return W


def _normalize_rows(v: Any) -> Any:
    xp, _ = get_namespace(v)
    norms = xp.sqrt((v * v).sum(axis=1, keepdims=True))
    return v / xp.where(norms > 0, norms, 1.0)


def _sign_flip(vectors: da.Array) -> da.Array:
    """Make the entry of largest magnitude of each vector positive (deterministic signs)."""
    idx = to_numpy(da.argmax(abs(vectors), axis=0).compute())          # dask's vindex takes host indices
    signs = np.sign(np.asarray(to_numpy(vectors.vindex[idx, np.arange(vectors.shape[1])].compute())))
    signs[signs == 0] = 1
    xp, _ = get_namespace(vectors)
    return vectors * xp.asarray(signs)[None, :]


@validate_params({"n_components": [Interval(Integral, 1, None)], "laplacian": [Options("sym", "rw")],
                  "tol": [Interval(Real, 0, None)], "random_state": ["random_state"], "drop_first": ["boolean"],
                  "normalize_rows": ["boolean"]})
def spectral_embedding(W: Any, n_components: int = 2, *, laplacian: Literal["sym", "rw"] = "sym",
                       tol: float = 1e-6, random_state: Any = None, drop_first: bool = False,
                       normalize_rows: bool = False) -> tuple[np.ndarray, da.Array]:
    """Eigenvalues and the embedding of a symmetric affinity ``W``.

        The columns are the eigenvectors of the ``n_components`` smallest eigenvalues of ``L_sym``
        (``"sym"``) or ``L_rw`` (``"rw"``), signs fixed so that each column's largest entry is
        positive.

        Parameters
        ----------
        W : CSRMatrix, sparse matrix or array
            The symmetric, non-negative affinity (n x n).
        n_components : int, default 2
            Eigenvectors kept.
        laplacian : {"sym", "rw"}, default "sym"
            Which normalized Laplacian.
        tol : float, default 1e-6
            Relative tolerance of the eigenvalues.
        random_state : None, int or numpy.random.Generator
            Seed of the Lanczos start vector.
        drop_first : bool, default False
            Drop the first (constant-like) eigenvector.
        normalize_rows : bool, default False
            Scale each row of the embedding to unit length (Ng-Jordan-Weiss).

        Returns
        -------
        eigenvalues : numpy.ndarray
            The Laplacian's smallest eigenvalues, ascending.
        embedding : dask.array.Array
            (n x n_components), chunked like the rows of ``W``.

        Examples
        --------
        >>> from daskpml.datasets import make_sbm
        >>> W, _ = make_sbm(200, 2, in_degree=10, out_degree=1, random_state=0)
        >>> values, emb = spectral_embedding(W, 2, random_state=0)
        >>> emb.shape, bool(abs(values[0]) < 1e-6)
        ((200, 2), True)
    """
    if laplacian not in ("sym", "rw"):
        raise ValueError(f"laplacian must be 'sym' or 'rw', got {laplacian!r}.")
    k = n_components + int(drop_first)
    values, vectors = laplacian_eigsh(W, k, kind=laplacian, tol=tol, random_state=random_state)
    vectors = _sign_flip(vectors)
    if drop_first:
        values, vectors = values[1:], vectors[:, 1:]
    if normalize_rows:
        vectors = vectors.map_blocks(_normalize_rows)
    return values, vectors


def _subgraph(W: CSRMatrix, nodes: np.ndarray) -> CSRMatrix:
    """``W[nodes][:, nodes]`` for sorted global ``nodes``, rows re-blocked evenly."""
    rows = W.row_offsets
    parts = []
    for i in range(W.numblocks):
        lo, hi = np.searchsorted(nodes, [rows[i], rows[i + 1]])
        parts.append((i, nodes[lo:hi] - rows[i]))
    blocks = W.to_delayed()
    pieces = [dask.delayed(_take)(blocks[i], local, nodes) for i, local in parts if len(local)]
    sub = dask.delayed(stack_blocks)(pieces)
    n = len(nodes)
    chunks = auto_row_chunks(n, 0, max(1, -(-n // max(1, W.numblocks))))
    return from_array(da.from_delayed(sub, shape=(n, n), dtype=W.dtype, meta=W._meta), chunks=chunks)


def _take(block: Any, local_rows: np.ndarray, columns: np.ndarray) -> Any:
    return block[local_rows][:, columns].tocsr()


def _recursive(W: CSRMatrix, n_clusters: int, tol: float, seed: int) -> tuple[np.ndarray, list]:
    """Normalized-cut recursion; returns labels and the (size, lambda_2) of every split."""
    n = W.shape[0]
    labels = np.zeros(n, dtype=np.int64)
    parts: dict[int, np.ndarray] = {0: np.arange(n)}
    cache: dict[int, tuple[float, np.ndarray | None]] = {}
    splits = []

    def fiedler(label: int) -> tuple[float, np.ndarray | None]:
        nodes = parts[label]
        if len(nodes) < 2:
            return np.inf, None
        if len(nodes) == 2:
            return 0.0, np.array([-1.0, 1.0])
        sub = W if len(nodes) == n else _subgraph(W, nodes)
        values, vectors = laplacian_eigsh(sub, 2, kind="rw", tol=tol, random_state=seed + label)
        return float(values[1]), np.asarray(to_numpy(vectors[:, 1].compute()))

    while len(parts) < n_clusters:
        for label in parts:
            if label not in cache:
                cache[label] = fiedler(label)
        label = min((lab for lab in parts if cache[lab][1] is not None), key=lambda lab: cache[lab][0],
                    default=None)
        if label is None:
            break
        value, vector = cache.pop(label)
        nodes = parts[label]
        side = vector > 0
        if side.all() or not side.any():
            side = vector > np.median(vector)
        new = len(parts)
        parts[label], parts[new] = nodes[~side], nodes[side]
        labels[nodes[side]] = new
        splits.append((len(nodes), value))
    return labels, splits


EMBEDDING_CONSTRAINTS = {
    "n_components": [Interval(Integral, 1, None)], "affinity": [Options(*AFFINITIES)],
    "n_neighbors": [Interval(Integral, 1, None)], "gamma": [Interval(Real, 0, None, closed="neither")],
    "laplacian": [Options("sym", "rw")], "eigen_tol": [Interval(Real, 0, None)], "random_state": ["random_state"]}


class SpectralEmbedding(ParamsValidated, TransformerMixin, BaseEstimator):
    """Laplacian eigenmaps on a distributed affinity graph.

    Parameters
    ----------
    n_components : int
    affinity : {"nearest_neighbors", "rbf", "precomputed"}
    n_neighbors, gamma : see :func:`affinity_graph`
    laplacian : {"sym", "rw"}
    eigen_tol : float
        Relative tolerance of the eigenvalues.
    random_state : int, Generator or None
        Seed of the Lanczos start vector.

    Attributes
    ----------
    embedding_ : NumPy array (or dask array for dask input), n x n_components
    eigenvalues_ : NumPy array
    affinity_matrix_ : CSRMatrix

    Examples
    --------
    >>> from daskpml.datasets import make_blobs
    >>> X, y = make_blobs(300, 3, centers=2, random_state=0)
    >>> SpectralEmbedding(2, random_state=0).fit_transform(X).shape
    (300, 2)
    """

    def __init__(self, n_components: int = 2, *, affinity: Affinity = "nearest_neighbors",
                 n_neighbors: int = 10, gamma: float = 1.0, laplacian: Literal["sym", "rw"] = "sym",
                 eigen_tol: float = 1e-6, random_state: Any = None) -> None:
        self.n_components = n_components
        self.affinity = affinity
        self.n_neighbors = n_neighbors
        self.gamma = gamma
        self.laplacian = laplacian
        self.eigen_tol = eigen_tol
        self.random_state = random_state

    _parameter_constraints = EMBEDDING_CONSTRAINTS

    def fit(self, X: Any, y: Any = None) -> SpectralEmbedding:
        self._validate_params()
        if self.affinity != "precomputed":
            X = check_array(X, accept_sparse=False, ensure_min_samples=2, name="X")
        W = affinity_graph(X, self.affinity, n_neighbors=self.n_neighbors, gamma=self.gamma)
        self.n_features_in_ = int(X.shape[1])
        values, vectors = spectral_embedding(W, self.n_components, laplacian=self.laplacian,
                                             tol=self.eigen_tol, random_state=self.random_state)
        self.affinity_matrix_ = W
        self.eigenvalues_ = values
        self.embedding_ = _like_input(vectors, X)
        return self

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        return self.fit(X).embedding_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = self.affinity == "precomputed"    # X is then an n x n affinity graph
        tags.input_tags.positive_only = self.affinity == "precomputed"
        tags.input_tags.sparse = self.affinity == "precomputed"
        return tags


def _like_input(x: da.Array, X: Any) -> Any:
    return x if isinstance(X, (da.Array, CSRMatrix)) else np.asarray(to_numpy(x.compute()))


class SpectralClustering(ParamsValidated, ClusterMixin, BaseEstimator):
    """Spectral clustering on a distributed affinity graph.

    Parameters
    ----------
    n_clusters : int
    affinity : {"nearest_neighbors", "rbf", "precomputed"}
    n_neighbors : int
        Neighbours of the k-NN affinity (each point counts itself, as scikit-learn).
    gamma : float
        Width of the ``"rbf"`` affinity ``exp(-gamma |x - y|^2)``.
    laplacian : {"sym", "rw"}
        Ng-Jordan-Weiss (row-normalized ``L_sym`` eigenvectors) or Shi-Malik (``L_rw``).
    method : {"kmeans", "recursive"}
        k-means on the embedding, or the normalized-cut recursion by Fiedler vectors.
    n_components : int, optional
        Eigenvectors used by ``"kmeans"`` (default ``n_clusters``).
    eigen_tol : float
    n_init : int
        k-means runs (the lowest inertia wins).
    random_state : int, Generator or None

    Attributes
    ----------
    labels_ : NumPy array (dask array for dask input)
    affinity_matrix_ : CSRMatrix
    eigenvalues_ : NumPy array (``"kmeans"``)
    embedding_ : dask array (``"kmeans"``)
    splits_ : list of (part size, second eigenvalue) per split (``"recursive"``)

    Examples
    --------
    >>> from daskpml.datasets import make_blobs
    >>> from daskpml.cluster import SpectralClustering
    >>> X, y = make_blobs(2000, 5, centers=4, random_state=0)
    >>> sc = SpectralClustering(4, random_state=0).fit(X)
    >>> sc.labels_.shape
    (2000,)
    """

    def __init__(self, n_clusters: int = 8, *, affinity: Affinity = "nearest_neighbors", n_neighbors: int = 10,
                 gamma: float = 1.0, laplacian: Literal["sym", "rw"] = "sym",
                 method: Literal["kmeans", "recursive"] = "kmeans", n_components: int | None = None,
                 eigen_tol: float = 1e-6, n_init: int = 4, random_state: Any = None) -> None:
        self.n_clusters = n_clusters
        self.affinity = affinity
        self.n_neighbors = n_neighbors
        self.gamma = gamma
        self.laplacian = laplacian
        self.method = method
        self.n_components = n_components
        self.eigen_tol = eigen_tol
        self.n_init = n_init
        self.random_state = random_state

    _parameter_constraints = {**EMBEDDING_CONSTRAINTS, "n_clusters": [Interval(Integral, 1, None)],
                              "method": [Options("kmeans", "recursive")],
                              "n_components": [None, Interval(Integral, 1, None)], "n_init": [Interval(Integral, 1, None)]}

    def fit(self, X: Any, y: Any = None) -> SpectralClustering:
        self._validate_params()
        if self.method not in ("kmeans", "recursive"):
            raise ValueError(f"method must be 'kmeans' or 'recursive', got {self.method!r}.")
        if self.affinity != "precomputed":
            X = check_array(X, accept_sparse=False, ensure_min_samples=2, name="X")
        W = affinity_graph(X, self.affinity, n_neighbors=self.n_neighbors, gamma=self.gamma)
        n = W.shape[0]
        if self.n_clusters > 1 and not self.n_clusters < n:
            raise ValueError(f"n_clusters must be 1, or less than n_samples = {n}; got {self.n_clusters!r}.")
        seed = resolve_seed(self.random_state)
        self.affinity_matrix_ = W
        self.n_features_in_ = int(X.shape[1])
        if self.n_clusters == 1:                # one cluster: nothing to cut
            labels = np.zeros(n, dtype=np.int64)
            self.labels_ = da.from_array(labels, chunks=(W.row_chunks,)) if isinstance(X, da.Array) else labels
            return self
        if self.method == "recursive":
            labels, self.splits_ = _recursive(W.persist(), int(self.n_clusters), self.eigen_tol, seed)
            self.labels_ = da.from_array(labels, chunks=(W.row_chunks,)) if isinstance(X, da.Array) else labels
            return self
        k = self.n_components or self.n_clusters
        values, emb = spectral_embedding(W, k, laplacian=self.laplacian, tol=self.eigen_tol, random_state=seed,
                                         normalize_rows=self.laplacian == "sym")
        out = kmeans(emb, self.n_clusters, random_state=seed, n_init=self.n_init)
        self.eigenvalues_ = values
        self.embedding_ = emb
        self.labels_ = _like_input(out["labels"], X)
        return self

    def fit_predict(self, X: Any, y: Any = None) -> Any:
        return self.fit(X).labels_

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = self.affinity == "precomputed"    # X is then an n x n affinity graph
        tags.input_tags.positive_only = self.affinity == "precomputed"
        tags.input_tags.sparse = self.affinity == "precomputed"
        return tags
