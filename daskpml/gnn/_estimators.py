"""scikit-learn estimators over :func:`daskpml.graph.train_gnn`: transductive node
classification, full batch, on a graph split into partitions with halos."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from sklearn.base import BaseEstimator

from ..backend import get_namespace, to_numpy
from ..graph import GNN_REMOVED, train_gnn
from ..graph import GNN_CONSTRAINTS
from ..validation import ParamsValidated, check_indices, check_is_fitted, validate_params


class _PartitionedGNN(ParamsValidated, BaseEstimator):
    _model = "gcn"
    _parameter_constraints = GNN_CONSTRAINTS

    def __init__(self, hidden: int = 16, n_layers: int = 2, dropout: float = 0.5, lr: float = 0.01,
                 weight_decay: float = 5e-4, epochs: int = 200, n_parts: int | None = None, partition: str = "bfs",
                 random_state: int | None = None, dtype: Any = "float32", progress: bool | None = None,
                 checkpoint: Any = None, checkpoint_every: int = 10) -> None:
        self.hidden = hidden
        self.n_layers = n_layers
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.n_parts = n_parts
        self.partition = partition
        self.random_state = random_state
        self.dtype = dtype
        self.progress = progress
        self.checkpoint = checkpoint
        self.checkpoint_every = checkpoint_every

    @validate_params({}, removed=GNN_REMOVED)
    def fit(self, graph: Any, features: Any, labels: Any, train_idx: Any, val_idx: Any = None, *,
            callback: Callable[[dict], Any] | None = None, resume: bool = False) -> _PartitionedGNN:
        """Train on the labelled nodes ``train_idx`` of ``graph`` (n x n adjacency) with node
        ``features`` (n x f) and ``labels`` (n,; -1 allowed outside the training and validation
        sets); the partitions run as :func:`~daskpml.graph.train_gnn` says. ``resume=True``
        continues from the newest snapshot in ``checkpoint``."""
        self._validate_params()
        result = train_gnn(graph, features, labels, train_idx, val_idx, model=self._model, hidden=self.hidden,
                           n_layers=self.n_layers, dropout=self.dropout, lr=self.lr,
                           weight_decay=self.weight_decay, epochs=self.epochs, n_parts=self.n_parts,
                           partition=self.partition, random_state=self.random_state, dtype=self.dtype,
                           callback=callback, progress=self.progress,
                           checkpoint=self.checkpoint, checkpoint_every=self.checkpoint_every, resume=resume)
        self.coefs_ = [layer[0] for layer in result.params]
        self.intercepts_ = [layer[1] for layer in result.params]
        if self._model == "sage":
            self.root_coefs_ = [layer[2] for layer in result.params]
        self.proba_ = result.proba
        self.classes_ = np.arange(result.proba.shape[1])
        self.n_features_in_ = int(self.coefs_[0].shape[0])
        self.partitioning_ = result.partitioning
        self.history_ = result.history
        self.n_epochs_ = int(result.history.sizes["iteration"])
        labels = labels.compute() if hasattr(labels, "compute") else labels
        self._labels = np.asarray(to_numpy(labels)).astype(np.int64)
        return self

    def _rows(self, idx: Any) -> Any:
        check_is_fitted(self, "proba_")
        if idx is None:
            return slice(None)
        idx = check_indices(idx, self.proba_.shape[0], "idx")
        xp, _ = get_namespace(self.proba_)
        return xp.asarray(idx)

    def predict_proba(self, idx: Any = None) -> Any:
        """Class probabilities of the nodes ``idx`` (all nodes by default), on the features'
        backend."""
        rows = self._rows(idx)
        return self.proba_[rows]

    def predict(self, idx: Any = None) -> Any:
        """Predicted classes of the nodes ``idx`` (all nodes by default)."""
        return self.predict_proba(idx).argmax(axis=1)

    def score(self, idx: Any, labels: Any = None) -> float:
        """Accuracy on the nodes ``idx`` against ``labels`` (n,; default: those given to
        ``fit``), for example the test nodes."""
        rows = self._rows(idx)
        truth = self._labels if labels is None else np.asarray(to_numpy(labels)).astype(np.int64)
        if truth.shape[0] != self.proba_.shape[0]:
            raise ValueError(f"labels must have one entry per node ({self.proba_.shape[0]}), got {truth.shape[0]}.")
        picked = truth[to_numpy(rows)] if not isinstance(rows, slice) else truth
        if picked.size == 0:
            raise ValueError("idx is empty; give the indices of the nodes to score.")
        unknown = int(((picked < 0) | (picked >= self.classes_.shape[0])).sum())
        if unknown:
            raise ValueError(f"{unknown} of the scored nodes have no label in 0 .. {self.classes_.shape[0] - 1} "
                             "(unlabelled nodes hold -1); score only labelled nodes.")
        pred = np.asarray(to_numpy(self.predict(idx)))
        return float((pred == picked).mean())


class GCN(_PartitionedGNN):
    """Graph convolutional network (Kipf & Welling, 2017), trained full batch on a graph split
    into partitions whose halos are exchanged through Dask futures.

    Each layer computes ``Z = D^-1/2 (A + I) D^-1/2 (dropout(H) W) + b``, with ReLU between
    layers and a softmax cross-entropy loss on the training nodes; Adam, with an L2 penalty
    ``weight_decay`` on the first layer (as the published setup).

    Parameters
    ----------
    hidden : width of the hidden layers.
    n_layers : number of graph convolutions.
    dropout : dropout rate before every layer.
    lr, weight_decay : Adam's step size; L2 penalty of the first layer's parameters.
    epochs : full-batch training steps.
    n_parts : number of partitions (default: one per worker of the cluster).
    partition : "bfs", "contiguous", "spectral" or "metis" (see
        :func:`daskpml.partition.partition_graph`).
    random_state : seed of the weights and the dropout masks (and the partitioner); the same
        seed gives the same model for any number of partitions, up to floating-point sums.
    dtype : float32 (default) or float64.
    progress : show a progress line (default: on a terminal).
    checkpoint : str or os.PathLike, optional
        A folder for snapshots (see :mod:`daskpml._checkpoint`); ``fit(..., resume=True)`` goes on
        from the newest one.
    checkpoint_every : int, default 10
        Epochs between snapshots.

    Attributes
    ----------
    coefs_, intercepts_ : per-layer weights and biases.
    proba_ : (n_nodes, n_classes) class probabilities of the final model.
    classes_ : class ids ``0 .. n_classes - 1``.
    history_ : xarray Dataset over ``iteration`` (epochs): ``loss`` (training, with dropout),
        ``train_accuracy``, ``val_accuracy``, ``val_loss`` (without dropout, of the weights
        that entered the epoch), ``time``, ``epoch_time`` (s), ``rounds`` and ``bytes`` (halo
        rows sent per epoch, both directions, a model).
    partitioning_ : the :class:`~daskpml.partition.Partitioning` used.

    Examples
    --------
    >>> import dask, numpy as np
    >>> from daskpml.datasets import make_sbm
    >>> A, y = make_sbm(120, 2, in_degree=8, out_degree=1, random_state=0)
    >>> y = np.asarray(y); X = np.eye(2)[y] + np.random.default_rng(0).normal(0, 1, (120, 2))
    >>> with dask.config.set(scheduler="sync"):
    ...     model = GCN(epochs=30, n_parts=2, random_state=0, progress=False).fit(A.to_scipy(), X, y, np.arange(0, 120, 3))
    >>> model.predict().shape
    (120,)
    """

    _model = "gcn"


class GraphSAGE(_PartitionedGNN):
    """GraphSAGE with mean aggregation (Hamilton et al., 2017), trained like :class:`GCN`.

        Each layer computes ``Z = mean_{j in N(i)} (dropout(H) W)_j + dropout(H)_i R + b``
        (PyG's ``SAGEConv`` with ``aggr="mean"``); attributes are those of :class:`GCN`, plus
        ``root_coefs_`` (the ``R`` of each layer).

        Parameters
        ----------
        hidden : int, default 16
            Width of the hidden layers.
        n_layers : int, default 2
            Number of layers.
        dropout : float, default 0.5
            Dropout rate before every layer.
        lr : float, default 0.01
            Adam's step size.
        weight_decay : float, default 5e-4
            L2 penalty of the first layer's parameters.
        epochs : int, default 200
            Full-batch training steps.
        n_parts : int, optional
            Number of partitions (default: one per worker of the cluster).
        partition : str, default "bfs"
            "bfs", "contiguous", "spectral" or "metis" (:func:`daskpml.partition.partition_graph`).
        random_state : None or int
            Seed of the weights, the dropout masks and the partitioner.
        dtype : str or numpy dtype, default "float32"
            Float type of the weights and activations.
        progress : bool, optional
            A progress line (default: on a terminal).
        checkpoint : str or os.PathLike, optional
            A folder for snapshots (see :mod:`daskpml._checkpoint`); ``fit(..., resume=True)`` goes on
            from the newest one.
        checkpoint_every : int, default 10
            Epochs between snapshots.

        Examples
        --------
        >>> import dask, numpy as np
        >>> from daskpml.datasets import make_sbm
        >>> A, y = make_sbm(120, 2, in_degree=8, out_degree=1, random_state=0)
        >>> y = np.asarray(y); X = np.eye(2)[y] + np.random.default_rng(0).normal(0, 1, (120, 2))
        >>> with dask.config.set(scheduler="sync"):
        ...     model = GraphSAGE(epochs=30, n_parts=2, random_state=0, progress=False).fit(A.to_scipy(), X, y, np.arange(0, 120, 3))
        >>> model.predict().shape
        (120,)
    """

    _model = "sage"
