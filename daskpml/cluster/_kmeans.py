"""The KMeans estimator (scikit-learn API) over :func:`daskpml.graph.kmeans`."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin

from .._blocks import as_points
from ..backend import to_numpy
from ..graph import KMEANS_CONSTRAINTS, KMeansInit, assign, center_distances, inertia, kmeans
from ..validation import ParamsValidated, check_is_fitted, check_n_features

__all__ = ["KMeans"]


class KMeans(ParamsValidated, ClusterMixin, TransformerMixin, BaseEstimator):
    """Distributed k-means with k-means|| initialization (scikit-learn API).

    Parameters
    ----------
    n_clusters : int
    init : {"k-means||", "k-means++", "random"} or array (n_clusters, n_features)
    n_init : int
        Runs with different seeds; the lowest inertia wins.
    max_iter, tol : Lloyd iterations and the relative center-shift tolerance.
    oversampling_factor, init_rounds : k-means|| keeps about
        ``oversampling_factor * n_clusters`` points per round, for ``init_rounds`` rounds.
    random_state : int, Generator or None
    checkpoint, checkpoint_every : a directory for snapshots every ``checkpoint_every``
        Lloyd iterations; ``fit(X, resume=True)`` continues from the newest.

    Attributes
    ----------
    cluster_centers_, labels_ (NumPy for in-memory input, dask for dask input),
    inertia_, n_iter_, history_

    Examples
    --------
    >>> from daskpml.datasets import make_blobs
    >>> from daskpml.cluster import KMeans
    >>> X, y = make_blobs(10_000, 4, centers=5, random_state=0)
    >>> km = KMeans(5, random_state=0).fit(X)
    >>> km.cluster_centers_.shape
    (5, 4)
    """

    def __init__(self, n_clusters: int = 8, *, init: KMeansInit | np.ndarray = "k-means||", n_init: int = 1,
                 max_iter: int = 300, tol: float = 1e-4, oversampling_factor: float = 2.0,
                 init_rounds: int = 5, random_state: Any = None, checkpoint: Any = None,
                 checkpoint_every: int = 10) -> None:
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.oversampling_factor = oversampling_factor
        self.init_rounds = init_rounds
        self.random_state = random_state
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every

    _parameter_constraints = KMEANS_CONSTRAINTS

    def fit(self, X: Any, y: Any = None, resume: bool = False) -> KMeans:
        """Cluster ``X``; ``resume=True`` continues from the newest snapshot in ``checkpoint``."""
        self._validate_params()
        out = kmeans(X, self.n_clusters, init=self.init, n_init=self.n_init, max_iter=self.max_iter,
                     tol=self.tol, random_state=self.random_state,
                     oversampling_factor=self.oversampling_factor, init_rounds=self.init_rounds,
                     checkpoint=self.checkpoint, checkpoint_every=self.checkpoint_every, resume=resume)
        self.cluster_centers_ = out["centers"]
        labels = out["labels"]
        self.labels_ = labels if isinstance(X, da.Array) else np.asarray(to_numpy(labels.compute()))
        self.inertia_ = out["inertia"]
        self.n_iter_ = out["n_iter"]
        self.history_ = out["history"]
        self.n_features_in_ = self.cluster_centers_.shape[1]
        return self

    def _points(self, X: Any) -> da.Array:
        check_is_fitted(self, "cluster_centers_")
        Xd = as_points(X)
        check_n_features(self, Xd)
        return Xd

    def predict(self, X: Any) -> Any:
        Xd = self._points(X)
        labels = assign(Xd, self.cluster_centers_)
        return labels if isinstance(X, da.Array) else np.asarray(to_numpy(labels.compute()))

    def transform(self, X: Any) -> Any:
        """Distances to the centers (n x k)."""
        Xd = self._points(X)
        out = center_distances(Xd, self.cluster_centers_)
        return out if isinstance(X, da.Array) else np.asarray(to_numpy(out.compute()))

    def score(self, X: Any, y: Any = None) -> float:
        """Minus the inertia of ``X`` (as scikit-learn)."""
        return -inertia(self._points(X), self.cluster_centers_)
