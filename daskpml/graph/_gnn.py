"""Full-graph GNN training over graph partitions, with halo exchange on Dask futures.

The graph's nodes are split by :func:`daskpml.partition.partition_graph`. Partition ``p``
lives on one worker and holds its owned nodes' features and labels, and its rows of the
propagation operator over local columns (owned nodes, then the halo). One epoch of a layer
``Z = P (dropout(H) W) + b`` (GCN; GraphSAGE adds ``dropout(H) R``) runs as:

forward
    each partition transforms its owned rows (``T = dropout(H) W``, the narrower side of the
    layer, as PyG's ``GCNConv`` does), sends the rows of ``T`` that each neighbour's halo
    needs (``T[send[q]]``, one future per pair of partitions), then aggregates
    ``Z = P_local [T; T_halo]`` with one sparse product and applies ReLU;
backward
    ``dT_local = P_local^T dZ``: the owned part stays, the halo part goes back to the owners,
    which add it (reverse exchange); ``dW = dropout(H)^T dT`` and the bias gradients are
    summed over partitions (all-reduce, in partition order) by one step task, which also
    applies Adam. The new weights are the only thing the next epoch's tasks receive.

Each phase between two exchanges is one task per partition, pinned to the partition's
worker; only exchange rows and O(model) data move. The client submits epoch ``e + 1`` before
it reads epoch ``e``'s metrics, so it is never on the critical path.

Dropout keeps an element (node ``i``, feature ``j``) of layer ``l`` at epoch ``e`` by a hash of
``(seed, e, l, i, j)``: the same seed gives the same masks, hence the same model up to the
order of floating-point sums, for any number of partitions. On the training forward pass the
evaluation pass (no dropout) runs alongside in the same tasks and exchanges (its columns are
appended to the training ones), so an epoch's history holds the training loss and the
accuracies of the weights that entered that epoch.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Callable, Literal, Sequence

import dask
import numpy as np
import scipy.sparse as sp
import xarray as xr

from .._checkpoint import Checkpoint, recorded_seed
from .._random import resolve_seed
from .._progress import ProgressLine
from ..backend import backend_name, get_namespace, is_sparse, to_backend, to_numpy
from ..partition import METHODS, Partitioning, partition_graph
from ..results import HistoryRecorder, ResultDisplay
from ..runtime import gather_watching
from ..validation import PROTOCOL, Interval, Options, check_indices, validate_params
from ._gnn_tasks import _Local, _Spec, adam_step, backward, begin, dropout, forward, pick, reduce_results, release

Model = Literal["gcn", "sage"]
MODELS = ("gcn", "sage")

__all__ = ["GNNResult", "MODELS", "dropout", "gcn_operator", "init_params", "mean_operator", "train_gnn"]

# ----------------------------------------------------------------------------- operators


def _host_csr(A: Any, dtype: Any) -> sp.csr_matrix:
    if hasattr(A, "compute"):
        A = A.compute()
    A = to_numpy(A)
    return sp.csr_matrix(A, dtype=dtype)


def gcn_operator(A: Any, dtype: Any = np.float32) -> sp.csr_matrix:
    """Kipf & Welling's propagation matrix ``D^-1/2 (A + I) D^-1/2`` (host CSR).

        As PyG's ``gcn_norm``, a node that already has a loop keeps its weight; the others get
        a loop of weight 1. Edge weights are used as given.

        Parameters
        ----------
        A : sparse matrix, array, dask array or CSRMatrix
            The adjacency (n x n).
        dtype : numpy dtype, default float32
            Type of the result.

        Returns
        -------
        scipy.sparse.csr_matrix

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> gcn_operator(sp.csr_matrix([[0, 1.0], [1.0, 0]])).toarray().round(6).tolist()
        [[0.5, 0.5], [0.5, 0.5]]
    """
    A = _host_csr(A, dtype)
    diag = A.diagonal()
    A = A + sp.diags(np.where(diag != 0, 0, 1).astype(dtype), format="csr")
    d = np.asarray(A.sum(axis=1)).ravel()
    inv = np.zeros_like(d)
    np.divide(1.0, np.sqrt(d), out=inv, where=d > 0)
    D = sp.diags(inv.astype(dtype))
    return (D @ A @ D).tocsr().astype(dtype)


def mean_operator(A: Any, dtype: Any = np.float32) -> sp.csr_matrix:
    """GraphSAGE's mean aggregation ``D^-1 S`` over the neighbours ``S = (A != 0)`` (host CSR).

        A node without neighbours aggregates to 0.

        Parameters
        ----------
        A : sparse matrix, array, dask array or CSRMatrix
            The adjacency (n x n).
        dtype : numpy dtype, default float32
            Type of the result.

        Returns
        -------
        scipy.sparse.csr_matrix

        Examples
        --------
        >>> import scipy.sparse as sp
        >>> mean_operator(sp.csr_matrix([[0, 1.0, 1.0], [1.0, 0, 0], [0, 0, 0]])).toarray().tolist()
        [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    """
    S = (_host_csr(A, dtype) != 0).astype(dtype)
    d = np.asarray(S.sum(axis=1)).ravel()
    inv = np.zeros_like(d)
    np.divide(1.0, d, out=inv, where=d > 0)
    return (sp.diags(inv.astype(dtype)) @ S).tocsr().astype(dtype)


OPERATORS: dict[str, Callable[..., sp.csr_matrix]] = {"gcn": gcn_operator, "sage": mean_operator}


def init_params(sizes: Sequence[int], model: Model, seed: int, like: Any, dtype: Any) -> list[tuple]:
    """Glorot-uniform weights and zero biases per layer, drawn on the host from ``seed``
    (the same for every partitioning) and placed on ``like``'s backend: ``(W, b)`` for GCN,
    ``(W, b, R)`` for GraphSAGE (``R`` the root weight)."""
    rng = np.random.default_rng(seed)
    xp, _ = get_namespace(like)
    layers = []
    for f_in, f_out in zip(sizes[:-1], sizes[1:]):
        bound = np.sqrt(6.0 / (f_in + f_out))
        mats = [rng.uniform(-bound, bound, size=(f_in, f_out))]
        if model == "sage":
            mats.append(rng.uniform(-bound, bound, size=(f_in, f_out)))
        W, *R = (xp.asarray(m.astype(dtype)) for m in mats)
        layers.append((W, xp.zeros(f_out, dtype=dtype), *R))
    return layers


# ----------------------------------------------------------------------------- execution


class _Done:
    """A finished computation, for :class:`Inline`."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self) -> Any:
        return self.value


class Inline:
    """Runs every task at once in this process: the same tasks and exchanges as on a
    cluster, for debugging and the exactness tests."""

    workers: list[str] = ["inline"]

    def submit(self, fn: Callable, *args: Any, **_: Any) -> _Done:
        return _Done(fn(*(a.value if isinstance(a, _Done) else a for a in args)))

    def scatter(self, obj: Any, **_: Any) -> _Done:
        return _Done(obj)

    def gather(self, futures: Any) -> Any:
        if isinstance(futures, list):
            return [f.value for f in futures]
        return futures.value

    def cancel(self, futures: Any) -> None:
        pass

    def run(self, fn: Callable, *args: Any) -> None:
        fn(*args)


class _Distributed:
    def __init__(self, client: Any) -> None:
        self.client = client
        self.workers = sorted(client.scheduler_info()["workers"])
        if not self.workers:
            raise RuntimeError("the dask cluster has no workers; start some (dask worker ADDRESS).")

    def submit(self, fn: Callable, *args: Any, key: str, worker: str | None = None) -> Any:
        where = {"workers": [worker], "allow_other_workers": False} if worker else {}
        return self.client.submit(fn, *args, key=key, pure=False, **where)

    def scatter(self, obj: Any, worker: str) -> Any:
        return self.client.scatter(obj, workers=[worker], hash=False)

    def gather(self, futures: Any) -> Any:
        return gather_watching(
            self.client, futures, self.workers, what="the state of the GNN partitions it held (operator rows, "
            "features, weights)", fix="Train again (the cluster's nanny starts a new worker), or fit with "
            "checkpoint=path and then resume=True to continue from the last snapshot.")

    def cancel(self, futures: Any) -> None:
        self.client.cancel(futures)

    def run(self, fn: Callable, *args: Any) -> None:
        self.client.run(fn, *args)


class Trainer:
    """The partitioned model: local data on the workers, passes submitted as tasks."""

    def __init__(self, op: sp.csr_matrix, X: Any, y: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray,
                 partitioning: Partitioning, spec: _Spec, executor: Any, backend: str) -> None:
        self.spec, self.ex, self.partitioning = spec, executor, partitioning
        self.n_parts = partitioning.n_parts
        self.n_nodes, self.val_idx = op.shape[0], val_idx
        self.token = uuid.uuid4().hex[:8]
        n = op.shape[0]
        in_train = np.zeros(n, dtype=bool)
        in_train[train_idx] = True
        in_val = np.zeros(n, dtype=bool)
        in_val[val_idx] = True
        self.where = [executor.workers[p % len(executor.workers)] for p in range(self.n_parts)]
        self.ctx, self.send_rows = [], 0
        for p, part in enumerate(partitioning.parts):
            owned = part.owned
            local = _Local(
                part=p, op=to_backend(op[owned][:, part.nodes].tocsr(), backend),
                opT=None, X=X[to_backend(owned, backend)], gid=to_backend(owned.astype(np.int64), backend),
                y=to_backend(y[owned].astype(np.int64), backend),
                train=to_backend(np.flatnonzero(in_train[owned]), backend),
                val=to_backend(np.flatnonzero(in_val[owned]), backend),
                send={q: to_backend(v, backend) for q, v in part.send.items()},
                recv={q: to_backend(v, backend) for q, v in part.recv.items()})
            local.opT = local.op.T.tocsr()
            self.send_rows += sum(int(v.shape[0]) for v in part.send.values())
            self.ctx.append(executor.scatter(local, worker=self.where[p]))

    def _key(self, name: str, p: int | str, epoch: int) -> str:
        return f"gnn-{name}-{p}-e{epoch}-{self.token}"

    def _inbox(self, outs: list, epoch: int, layer: int, backward: bool) -> list[list]:
        """For each partition, what its neighbours send it: forward, their owned rows for its
        halo, in the order of its ``recv`` lists; backward, the gradients of its rows' copies
        in their halos, in the order of its ``send`` lists. A neighbour with one destination
        hands over its whole outbox; one with several gets a task per destination that picks
        that destination's rows, so only the rows a partition needs reach it."""
        parts = self.partitioning.parts
        inbox: list[list] = []
        for p, part in enumerate(parts):
            row = []
            for q in (part.send if backward else part.recv):
                if len(parts[q].recv if backward else parts[q].send) == 1:
                    row.append(outs[q])
                else:
                    name = f"{'grads' if backward else 'rows'}{layer}-{q}to"
                    row.append(self.ex.submit(pick, outs[q], p, key=self._key(name, p, epoch), worker=self.where[q]))
            inbox.append(row)
        return inbox

    def submit_pass(self, epoch: int, version: int, mode: str, opt: Any = None, finals: Sequence = ()) -> list:
        """Submit one pass at optimizer ``version`` with the dropout masks of ``epoch``
        (forward, and backward unless ``mode == "eval"``); returns the partitions' last
        futures."""
        L, P, spec = self.spec.n_layers, range(self.n_parts), self.spec
        tag = f"{mode}{epoch}"
        outs = [self.ex.submit(begin, self.ctx[p], spec, self.token, epoch, version, mode, opt, *finals,
                               key=self._key("begin", p, tag), worker=self.where[p]) for p in P]
        for layer in range(L):
            inbox = self._inbox(outs, epoch, layer, backward=False)
            outs = [self.ex.submit(forward, self.ctx[p], spec, self.token, epoch, mode, layer, outs[p], *inbox[p],
                                   key=self._key(f"forward{layer}", p, tag), worker=self.where[p]) for p in P]
        if mode == "eval":
            return outs
        for layer in reversed(range(L)):
            inbox = self._inbox(outs, epoch, layer, backward=True)
            outs = [self.ex.submit(backward, self.ctx[p], spec, self.token, epoch, mode, layer, outs[p], *inbox[p],
                                   key=self._key(f"backward{layer}", p, tag), worker=self.where[p]) for p in P]
        return outs

    def gradients(self, params: list, epoch: int = 0) -> tuple[float, list]:
        """Loss (mean over training nodes) and its gradients at ``params``, with the dropout
        masks of ``epoch``: for the gradient checks."""
        finals = self.ex.gather(self.submit_pass(epoch, 0, "grad", opt={"params": params}))
        grads, metrics = reduce_results(finals)
        return metrics["loss"] / self.spec.n_train, grads

    def evaluate(self, version: int, opt: Any = None, finals: Sequence = ()) -> tuple[list, Any, dict]:
        """Weights at ``version``, the class probabilities of every node under them (no
        dropout), in global order, and the summed metrics."""
        outs = self.ex.gather(self.submit_pass(-1, version, "eval", opt=opt, finals=finals))
        xp, _ = get_namespace(outs[0]["proba"])
        proba = xp.empty((self.n_nodes, outs[0]["proba"].shape[1]), dtype=outs[0]["proba"].dtype)
        for part, f in zip(self.partitioning.parts, outs):
            proba[to_backend(part.owned, backend_name(proba))] = f["proba"]
        return outs[0]["params"], proba, reduce_results([{"grads": [], "metrics": f["metrics"]} for f in outs])[1]

    def close(self) -> None:
        """Release the partitions' state on the workers."""
        self.ex.run(release, self.token)


@dataclass(repr=False)
class GNNResult(ResultDisplay):
    """What :func:`train_gnn` returns.

        Parameters
        ----------
        params : list of tuple
            Per layer, the weights and the bias (and GraphSAGE's root weights).
        proba : array
            Class probabilities of every node under the final model (n x n_classes).
        history : xarray.Dataset
            Over ``iteration`` (epochs): loss, train and validation accuracy, validation loss, time,
            epoch_time, rounds, bytes.
        partitioning : Partitioning
            The partitions used.
        final : dict
            Metrics of the final model (counts of correct training and validation nodes).

        Examples
        --------
        >>> GNNResult.__dataclass_fields__.keys() >= {"params", "proba", "history"}
        True
    """

    params: list            # per layer (W, b) or (W, b, R)
    proba: Any              # (n_nodes, n_classes) class probabilities of the final model
    history: xr.Dataset     # per epoch, plus attrs
    partitioning: Partitioning
    final: dict             # metrics of the final model


def validate(graph: Any, features: Any, labels: Any, train_idx: Any, val_idx: Any, *, model: str,
             dtype: Any) -> tuple[sp.csr_matrix, Any, np.ndarray, np.ndarray, np.ndarray, int, str]:
    """Check the inputs of :func:`train_gnn` and bring them to host form (features keep
    their backend). Returns ``A, X, y, train, val, n_classes, backend``."""
    from ..validation import check_array, check_graph

    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}.")
    A = _host_csr(check_graph(graph, symmetric=model == "gcn", non_negative=True, name="graph"), None)
    X = check_array(features, name="features")
    if hasattr(X, "compute"):
        X = X.compute()
    backend = backend_name(X)
    n = A.shape[0]
    if X.shape[0] != n:
        raise ValueError(f"the graph has {n} nodes but features has {X.shape[0]} rows; "
                         "features must have one row per node, in the graph's node order.")
    y = np.asarray(to_numpy(labels.compute() if hasattr(labels, "compute") else labels))
    if y.ndim != 1 or y.shape[0] != n:
        raise ValueError(f"labels must be 1-D with one entry per node ({n}), got shape {y.shape}.")
    if not np.issubdtype(y.dtype, np.integer):
        if not (np.issubdtype(y.dtype, np.floating) and np.all(np.isfinite(y)) and np.all(y == np.round(y))):
            raise ValueError(f"labels must be integer class ids 0 .. n_classes-1 (-1 for unlabelled), "
                             f"got dtype {y.dtype}; encode them first, e.g. with sklearn's LabelEncoder.")
        y = y.astype(np.int64)
    train = check_indices(train_idx, n, "train_idx")
    if train.size == 0:
        raise ValueError("train_idx is empty; give the indices of the labelled training nodes.")
    val = check_indices(val_idx if val_idx is not None else np.empty(0, np.int64), n, "val_idx")
    both = np.intersect1d(train, val)
    if both.size:
        raise ValueError(f"train_idx and val_idx overlap in {both.size} node(s) (for example {int(both[0])}); "
                         "the validation nodes must be held out of training.")
    labelled = np.concatenate([train, val])
    bad = labelled[y[labelled] < 0]
    if bad.size:
        raise ValueError(f"labels of {bad.size} training/validation node(s) are negative (for example node "
                         f"{int(bad[0])}: {int(y[bad[0]])}); class ids must be 0 .. n_classes-1.")
    n_classes = int(y[labelled].max()) + 1
    if n_classes < 2:
        raise ValueError("the training and validation labels hold a single class; need at least 2.")
    y = np.where((y >= 0) & (y < n_classes), y, -1)
    X = X.astype(dtype, copy=False)
    if is_sparse(X):
        X = X.tocsr()
    return A, X, y, train, val, n_classes, backend


def prepare(graph: Any, features: Any, labels: Any, train_idx: Any, val_idx: Any = None, *, model: Model = "gcn",
            hidden: int = 16, n_layers: int = 2, dropout: float = 0.5, n_parts: int | None = None,
            partition: str = "bfs", random_state: int | None = None, dtype: Any = np.float32,
            lr: float = 0.01, weight_decay: float = 0.0) -> tuple[Trainer, list, int]:
    """Validate, partition, place the partitions on the workers and draw the initial weights:
    the set-up of :func:`train_gnn`. Returns the trainer, the weights and the class count."""
    from ..runtime import connect, current_client

    if not isinstance(n_layers, (int, np.integer)) or n_layers < 1:
        raise ValueError(f"n_layers must be an integer >= 1, got {n_layers!r}.")
    if not isinstance(hidden, (int, np.integer)) or hidden < 1:
        raise ValueError(f"hidden must be a positive integer, got {hidden!r}.")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
    dtype = np.dtype(dtype)
    A, X, y, train, val, n_classes, backend = validate(graph, features, labels, train_idx, val_idx,
                                                       model=model, dtype=dtype)
    # a local scheduler named in dask's config (sync, threads) runs the partitions' tasks in this process
    local = dask.config.get("scheduler", None) not in (None, "dask.distributed")
    executor: Any = Inline() if local else _Distributed(current_client() or connect())
    n_parts = len(executor.workers) if n_parts is None else n_parts
    seed = resolve_seed(random_state)
    partitioning = partition_graph(A, n_parts, method=partition, random_state=seed)
    op = OPERATORS[model](A, dtype)
    sizes = (X.shape[1],) + (int(hidden),) * (int(n_layers) - 1) + (n_classes,)
    spec = _Spec(model=model, n_layers=int(n_layers), rate=float(dropout), seed=seed, n_train=int(train.size),
                 lr=float(lr), weight_decay=float(weight_decay))
    trainer = Trainer(op, X, y, train, val, partitioning, spec, executor, backend)
    trainer.data = {"graph": A, "features": X, "labels": y, "train": train}     # what a checkpoint fingerprints
    params = init_params(sizes, model, seed, X.data if is_sparse(X) else X, dtype)
    return trainer, params, n_classes


def _pack_opt(opt: dict) -> dict:
    """The optimizer state as named arrays for a checkpoint."""
    return {f"{part}/{l}/{j}": w for part in ("params", "m", "v")
            for l, layer in enumerate(opt[part]) for j, w in enumerate(layer)}


def _unpack_opt(arrays: dict, like: dict, xp: Any) -> dict:
    """:func:`_pack_opt` undone, on the backend and in the layout of ``like``."""
    out = {part: [tuple(xp.asarray(arrays[f"{part}/{l}/{j}"]) for j in range(len(layer)))
                  for l, layer in enumerate(like[part])] for part in ("params", "m", "v")}
    out["t"] = int(round(float(np.asarray(arrays.get("t", 0)))))
    return out


GNN_CONSTRAINTS = {
    "model": [Options("gcn", "sage")], "hidden": [Interval(Integral, 1, None)], "n_layers": [Interval(Integral, 1, None)],
    "dropout": [Interval(Real, 0, 1, closed="left")], "lr": [Interval(Real, 0, None, closed="neither")],
    "weight_decay": [Interval(Real, 0, None)], "epochs": [Interval(Integral, 1, None)],
    "n_parts": [None, Interval(Integral, 1, None)], "partition": [Options(*METHODS)], "dtype": ["dtype"],
    **PROTOCOL}


#: keywords train_gnn (and the GNN estimators' fit) no longer take
GNN_REMOVED = {"client": "no algorithm takes a client: the partitions run on the current dask.distributed client "
                     "(else the embedded cluster daskpml.connect() starts), or in this process under "
                     "dask.config.set(scheduler='sync') (what client=False did)."}


@validate_params(GNN_CONSTRAINTS, removed=GNN_REMOVED)
def train_gnn(graph: Any, features: Any, labels: Any, train_idx: Any, val_idx: Any = None, *,
              model: Model = "gcn", hidden: int = 16, n_layers: int = 2, dropout: float = 0.5, lr: float = 0.01,
              weight_decay: float = 5e-4, epochs: int = 200, n_parts: int | None = None,
              partition: str = "bfs", random_state: int | None = None, dtype: Any = np.float32,
              callback: Callable[[dict], Any] | None = None,
              progress: bool | None = None, checkpoint: str | os.PathLike | None = None,
              checkpoint_every: int = 10, resume: bool = False) -> GNNResult:
    """Train a GCN or GraphSAGE-mean model on a partitioned graph, full batch.

    Parameters
    ----------
    graph : (n, n) adjacency (SciPy / cupyx sparse, dense, dask); symmetric for GCN.
    features : (n, f) node features, dense or sparse; they set the backend (NumPy or CuPy).
    labels : (n,) integer classes; nodes outside ``train_idx`` and ``val_idx`` may hold -1.
    train_idx, val_idx : node indices of the training and validation sets (disjoint).
    model : "gcn" (Kipf & Welling, ``D^-1/2 (A+I) D^-1/2``) or "sage" (GraphSAGE-mean).
    hidden, n_layers : width of the hidden layers and number of layers (>= 1).
    dropout : rate before every layer (inverted dropout).
    lr, weight_decay : Adam's step size and the L2 penalty of the first layer.
    epochs : full-batch steps.
    n_parts : partitions (default: one per worker; 1 without a cluster).
    partition : method of :func:`daskpml.partition.partition_graph`.
    random_state : seed of the weights, of the dropout masks and of the partitioner.
    dtype : numpy dtype, default float32
        Float type of the weights and activations.
    callback : ``callback(record)`` after each epoch, with the history row just appended
        (``iteration``: the epochs done, ``loss``, ``train_accuracy``, ``val_accuracy``,
        ``val_loss``, ``time``, ``epoch_time``, ``rounds``, ``bytes``); returning True stops.
    checkpoint, checkpoint_every, resume : a directory for snapshots of the weights and Adam
        moments (O(model), kept on the client by replaying the all-reduced Adam step) and
        the history every ``checkpoint_every`` epochs; ``resume=True`` continues from the
        newest one with the same masks, so the result equals an uninterrupted run.
    progress : bool, optional
        A progress line per epoch (default: on a terminal).

    Returns
    -------
    GNNResult

    Notes
    -----
    The partitions' tasks run on the current dask.distributed client (else the embedded cluster
    :func:`daskpml.connect` starts), or in this process when dask's ``scheduler`` setting names
    a local scheduler (``dask.config.set(scheduler="sync")``).

    Examples
    --------
    >>> import dask
    >>> from daskpml.datasets import make_sbm
    >>> A, y = make_sbm(120, 2, in_degree=8, out_degree=1, random_state=0)
    >>> X = np.eye(2)[np.asarray(y)] + np.random.default_rng(0).normal(0, 1, (120, 2))
    >>> with dask.config.set(scheduler="sync"):
    ...     res = train_gnn(A.to_scipy(), X, np.asarray(y), np.arange(0, 120, 3), epochs=20, n_parts=2,
    ...                     random_state=0, progress=False)
    >>> res.proba.shape, res.history.sizes["iteration"]
    ((120, 2), 20)
    """
    if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}.")
    if not lr > 0 or not weight_decay >= 0:
        raise ValueError(f"lr must be > 0 and weight_decay >= 0, got lr={lr!r}, weight_decay={weight_decay!r}.")
    dtype = np.dtype(dtype)
    if resume:                                  # continue with the snapshot's seed
        random_state = recorded_seed(checkpoint, "train_gnn", random_state)
    trainer, params, n_classes = prepare(graph, features, labels, train_idx, val_idx, model=model, hidden=hidden,
                                         n_layers=n_layers, dropout=dropout, n_parts=n_parts, partition=partition,
                                         random_state=random_state, dtype=dtype, lr=lr,
                                         weight_decay=weight_decay)
    spec, executor, partitioning = trainer.spec, trainer.ex, trainer.partitioning
    n_parts, val = partitioning.n_parts, trainer.val_idx
    xp, _ = get_namespace(params[0][0])
    opt0 = {"params": params, "t": 0, "m": [tuple(xp.zeros_like(w) for w in layer) for layer in params],
            "v": [tuple(xp.zeros_like(w) for w in layer) for layer in params]}
    cp = Checkpoint(checkpoint, "train_gnn", dict(model=model, hidden=hidden, n_layers=n_layers, dropout=dropout,
                                                  lr=lr, weight_decay=weight_decay, n_parts=n_parts,
                                                  partition=partition, seed=spec.seed, dtype=dtype.name),
                    dict(n_nodes=int(trainer.n_nodes), n_features=int(features.shape[1]), n_train=spec.n_train,
                         n_val=int(val.size)), every=checkpoint_every, resume=resume)
    cp.watch(**trainer.data)
    snap = cp.restore()
    first = 0 if snap is None else snap.iteration
    if snap is not None:
        opt0 = _unpack_opt(snap.arrays, opt0, xp)
    widths = [layer[0].shape[1] for layer in params]
    bytes_epoch = trainer.send_rows * dtype.itemsize * (sum(2 * w for w in widths) + sum(widths))
    # per epoch: a halo exchange per layer forward and one backward, and the gradients' all-reduce
    rounds_epoch = 2 * len(widths) + 1
    recorder = HistoryRecorder(callback=callback, bytes_source="model", attrs={
        "model": model, "n_parts": n_parts, "partition": partition,
        "edge_cut_fraction": partitioning.stats.attrs["edge_cut_fraction"]})
    if snap is not None:
        recorder.resume(snap.rows())
    opt = opt0
    bar = ProgressLine(progress)
    n_val = max(int(val.size), 1)
    submitted: list = []                    # final futures of the submitted epochs not yet recorded
    previous: Sequence = ()                 # final futures of the last recorded epoch
    done, last = first, time.perf_counter()
    try:
        while done < epochs:
            while len(submitted) < 2 and done + len(submitted) < epochs:     # one epoch ahead of the client
                e = done + len(submitted)
                before = submitted[-1] if submitted else previous
                submitted.append(trainer.submit_pass(e, e, "train", opt=opt0 if e == first else None,
                                                     finals=before))
            previous = submitted.pop(0)
            grads, m = reduce_results(executor.gather(previous))
            now = time.perf_counter()
            loss = m["loss"] / spec.n_train
            val_accuracy = m["val_correct"] / n_val if val.size else np.nan
            done += 1
            stop = recorder.record(done, loss=loss, train_accuracy=m["train_correct"] / spec.n_train,
                                   val_accuracy=val_accuracy, val_loss=m["val_loss"] / n_val if val.size else np.nan,
                                   epoch_time=now - last, rounds=done * rounds_epoch, bytes=bytes_epoch)
            last = now
            bar.update(done, epochs, f"epoch {done}/{epochs}  loss {loss:.4f}  val acc {val_accuracy:.4f}")
            if cp.enabled:                  # the state every partition's next begin task will make
                opt = adam_step(opt, grads, lr=lr, weight_decay=weight_decay)
                if cp.due(done, done == epochs):
                    cp.save(done, arrays=dict(_pack_opt(opt), t=np.asarray(opt["t"])), history=recorder.columns())
            if stop:
                break
        executor.cancel([f for finals in submitted for f in finals])
        # a resume from the final snapshot runs no epoch: evaluate the snapshot's weights
        final_params, proba, final = trainer.evaluate(done, opt=opt0 if done == first else None, finals=previous)
    except KeyboardInterrupt:
        executor.cancel([f for finals in submitted for f in finals])
        raise
    finally:
        bar.close()
        trainer.close()
    history = recorder.to_xarray(attrs={"final_train_accuracy": final["train_correct"] / spec.n_train,
                                        "final_val_accuracy": final["val_correct"] / n_val if val.size else np.nan})
    return GNNResult(params=final_params, proba=proba, history=history, partitioning=partitioning,
                     final=final)
