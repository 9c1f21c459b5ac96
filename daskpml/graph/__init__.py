"""Similarity graphs of points (k-nearest-neighbour, epsilon-radius, Gaussian affinities) and
Markov clustering of graphs, and GNN training on partitioned graphs.

>>> import numpy as np
>>> from daskpml.graph import knn_graph
>>> X = np.random.default_rng(0).normal(size=(1000, 4))
>>> W = knn_graph(X, 10, mode="connectivity", symmetrize="mean")   # a symmetric CSRMatrix
"""

from ._gnn import GNNResult, gcn_operator, mean_operator, train_gnn
from ._mcl import MCLResult, interpret, mcl
from ._neighbors import epsilon_graph, gaussian_graph, kneighbors, knn_graph

__all__ = ["GNNResult", "MCLResult", "epsilon_graph", "gaussian_graph", "gcn_operator", "interpret", "kneighbors",
           "knn_graph", "mcl", "mean_operator", "train_gnn"]
