"""The scikit-learn face of Markov clustering (:func:`daskpml.graph.mcl` does the work)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin

from ..graph import MCL_CONSTRAINTS, mcl
from ..graph import Overlap
from ..validation import ParamsValidated


class MarkovClustering(ParamsValidated, ClusterMixin, BaseEstimator):
    """Markov clustering (MCL) of a graph given by its adjacency matrix.

    The defaults are mcl's (``-I 2.0``, ``-P 10000``, ``-S 1100``, ``-R 1400``, ``-pct 90``).

    Parameters
    ----------
    inflation : float, default 2.0
        mcl's ``-I``: larger values give finer clusters.
    expansion : int, default 2
        The power of the walk matrix per iteration.
    loop_weight : float, default 1.0
        mcl's ``-c``: each node gets a loop of this times its largest edge weight.
    prune_threshold : float, default 1e-4
        mcl's ``-p`` (1 / ``-P``).
    select : int, default 1100
        mcl's ``-S`` (0: off).
    recover : int, default 1400
        mcl's ``-R`` (0: off).
    recover_pct : float, default 0.9
        mcl's ``-pct / 100``.
    max_iter : int, default 100
        Iterations at most.
    tol : float, default 1e-6
        Stop when the chaos is below this.
    product_tol : float or "auto", default "auto"
        Skip products below it (see :func:`daskpml.graph.mcl`).
    overlap : {"remove", "cut", "keep"}, default "remove"
        Nodes attracted by several clusters (:func:`daskpml.graph.interpret`).
    dtype : numpy dtype, optional
        Float type of the iterands (default float32, as mcl).
    checkpoint : str or os.PathLike, optional
        A folder for snapshots (see :mod:`daskpml._checkpoint`); ``fit(..., resume=True)`` goes on
        from the newest one.
    checkpoint_every : int, default 10
        Iterations between snapshots.

    Attributes
    ----------
    labels_ : NumPy array of cluster ids (clusters numbered largest first)
    clusters_ : list of NumPy index arrays, one per cluster, largest first
    n_clusters_ : int
    n_iter_ : int
    converged_ : bool
    history_ : xarray Dataset over ``iteration`` (nnz, expanded entries, products, chaos,
        kept mass, time, bytes of the iterand, largest task's bytes)

    Examples
    --------
    >>> from daskpml.datasets import make_sbm
    >>> from daskpml.cluster import MarkovClustering
    >>> A, y = make_sbm(2000, 20, in_degree=12, out_degree=0.5, random_state=0)
    >>> model = MarkovClustering(inflation=1.6).fit(A)
    >>> model.labels_.shape
    (2000,)
    """

    _parameter_constraints = MCL_CONSTRAINTS

    def __init__(self, inflation: float = 2.0, *, expansion: int = 2, loop_weight: float = 1.0,
                 prune_threshold: float = 1e-4, select: int = 1100, recover: int = 1400, recover_pct: float = 0.9,
                 max_iter: int = 100, tol: float = 1e-6, product_tol: float | Literal["auto"] = "auto",
                 overlap: Overlap = "remove", dtype: Any = None, checkpoint: Any = None,
                 checkpoint_every: int = 5) -> None:
        self.inflation = inflation
        self.expansion = expansion
        self.loop_weight = loop_weight
        self.prune_threshold = prune_threshold
        self.select = select
        self.recover = recover
        self.recover_pct = recover_pct
        self.max_iter = max_iter
        self.tol = tol
        self.product_tol = product_tol
        self.overlap = overlap
        self.dtype = dtype
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every

    def fit(self, X: Any, y: Any = None, *, nodes: Any = None, resume: bool = False) -> MarkovClustering:
        """Cluster the graph ``X`` (``n x n`` non-negative adjacency; ``nodes`` names its rows);
        ``resume=True`` continues from the newest snapshot in ``checkpoint``."""
        self._validate_params()
        out = mcl(X, self.inflation, expansion=self.expansion, loop_weight=self.loop_weight,
                  prune_threshold=self.prune_threshold, select=self.select, recover=self.recover,
                  recover_pct=self.recover_pct, max_iter=self.max_iter, tol=self.tol,
                  product_tol=self.product_tol, overlap=self.overlap, nodes=nodes, dtype=self.dtype,
                  checkpoint=self.checkpoint, checkpoint_every=self.checkpoint_every, resume=resume)
        self.labels_ = np.asarray(out.labels.values)
        self.clusters_ = out.clusters
        self.n_clusters_ = len(out.clusters)
        self.n_iter_ = out.n_iter
        self.converged_ = out.converged
        self.history_ = out.history
        self.n_features_in_ = int(X.shape[1])
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.pairwise = True         # X is a graph: n x n, not samples x features
        tags.input_tags.positive_only = True    # edge weights
        tags.input_tags.sparse = True
        return tags

    def fit_predict(self, X: Any, y: Any = None, *, nodes: Any = None) -> np.ndarray:
        return self.fit(X, nodes=nodes).labels_
