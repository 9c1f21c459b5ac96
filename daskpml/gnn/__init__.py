"""Graph neural networks trained on partitioned graphs: GCN and GraphSAGE-mean, full batch,
with halo exchange between partitions through Dask futures.

>>> from daskpml.gnn import GCN
>>> model = GCN(hidden=16, epochs=200, n_parts=2)            # doctest: +SKIP
>>> model.fit(A, X, labels, train_idx, val_idx).score(test_idx)   # doctest: +SKIP
"""

from ..graph import GNNResult, train_gnn
from ._estimators import GCN, GraphSAGE

__all__ = ["GCN", "GNNResult", "GraphSAGE", "train_gnn"]
