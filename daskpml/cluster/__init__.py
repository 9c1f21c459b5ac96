"""Clustering on Dask: distributed k-means, spectral clustering and Markov clustering (MCL).

>>> from daskpml.datasets import make_blobs
>>> from daskpml.cluster import KMeans, SpectralClustering
>>> X, y = make_blobs(5000, 10, centers=8, random_state=0)
>>> labels = SpectralClustering(8, random_state=0).fit_predict(X)
"""

from ..graph import kmeans, mcl
from ._kmeans import KMeans
from ._mcl import MarkovClustering
from ._spectral import SpectralClustering, SpectralEmbedding, affinity_graph, spectral_embedding

__all__ = ["KMeans", "MarkovClustering", "SpectralClustering", "SpectralEmbedding", "affinity_graph", "kmeans", "mcl",
           "spectral_embedding"]
