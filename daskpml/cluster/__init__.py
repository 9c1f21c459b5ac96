"""Clustering on Dask: distributed k-means and spectral clustering.

>>> from daskpml.datasets import make_blobs
>>> from daskpml.cluster import KMeans, SpectralClustering
>>> X, y = make_blobs(5000, 10, centers=8, random_state=0)
>>> labels = SpectralClustering(8, random_state=0).fit_predict(X)
"""

from ._kmeans import KMeans, kmeans
from ._spectral import SpectralClustering, SpectralEmbedding, affinity_graph, spectral_embedding

__all__ = ["KMeans", "SpectralClustering", "SpectralEmbedding", "affinity_graph", "kmeans", "spectral_embedding"]
