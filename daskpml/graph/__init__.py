"""Points and graphs: similarity graphs of points (k-nearest-neighbour, epsilon-radius, Gaussian
affinities), k-means (the algorithm behind :class:`daskpml.cluster.KMeans` and the cascade SVM's
partitioning), Markov clustering of graphs, and GNN training on partitioned graphs.

>>> import numpy as np
>>> from daskpml.graph import knn_graph
>>> X = np.random.default_rng(0).normal(size=(1000, 4))
>>> W = knn_graph(X, 10, mode="connectivity", symmetrize="mean")   # a symmetric CSRMatrix

The names are imported on first use, so that a worker unpickling a task function of one
submodule (an MCL block, a GNN partition's step) does not import the others.
"""

from importlib import import_module
from typing import Any

_WHERE = {
    "GNNResult": "._gnn", "GNN_REMOVED": "._gnn", "gcn_operator": "._gnn", "mean_operator": "._gnn", "train_gnn": "._gnn",
    "MCLResult": "._mcl", "Overlap": "._mcl", "MCL_CONSTRAINTS": "._mcl", "interpret": "._mcl", "mcl": "._mcl",
    "GNN_CONSTRAINTS": "._gnn",
    "KMEANS_CONSTRAINTS": "._kmeans", "KMeansInit": "._kmeans", "assign": "._kmeans", "center_distances": "._kmeans", "inertia": "._kmeans",
    "kmeans": "._kmeans",
    "epsilon_graph": "._neighbors", "gaussian_graph": "._neighbors", "kneighbors": "._neighbors",
    "knn_graph": "._neighbors", "sq_distances": "._neighbors",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(import_module(_WHERE[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
