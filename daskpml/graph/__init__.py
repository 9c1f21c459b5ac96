"""Similarity graphs of points: k-nearest-neighbour, epsilon-radius and Gaussian affinities.

>>> import numpy as np
>>> from daskpml.graph import knn_graph
>>> X = np.random.default_rng(0).normal(size=(1000, 4))
>>> W = knn_graph(X, 10, mode="connectivity", symmetrize="mean")   # a symmetric CSRMatrix
"""

from ._neighbors import epsilon_graph, gaussian_graph, kneighbors, knn_graph

__all__ = ["epsilon_graph", "gaussian_graph", "kneighbors", "knn_graph"]
