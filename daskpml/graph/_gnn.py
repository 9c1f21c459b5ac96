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

import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import numpy as np
import scipy.sparse as sp
import xarray as xr

from .._progress import ProgressLine
from ..backend import backend_name, get_namespace, is_sparse, to_backend, to_numpy
from ..partition import Partitioning, partition_graph

Model = Literal["gcn", "sage"]
MODELS = ("gcn", "sage")

__all__ = ["GNNResult", "MODELS", "dropout", "gcn_operator", "init_params", "mean_operator", "train_gnn"]

_M64 = (1 << 64) - 1


def _mix64(x: int) -> int:
    """splitmix64's finalizer on a Python int (the client-side half of the mask hash)."""
    z = (x + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def mask_key(seed: int, epoch: int, layer: int) -> int:
    """The base key of the dropout mask of ``layer`` at ``epoch``."""
    return _mix64(_mix64(_mix64(seed & _M64) ^ epoch) ^ (layer + 1))


def _keep_threshold(rate: float) -> int:
    return int(round(rate * (1 << 24)))


def dropout_mask(rows: Any, n_cols: int, key: int, rate: float, cols: Any = None) -> Any:
    """Keep-mask of elements ``(rows[i], j)`` (or ``(rows[i], cols[i])`` when ``cols`` is
    given, one element per row) with array operations: the reference for the compiled
    kernels and the path for CuPy arrays."""
    xp, _ = get_namespace(rows)
    u64 = xp.uint64
    r = rows.astype(u64)
    if cols is None:
        z = xp.asarray(key, dtype=u64) + r[:, None] * u64(n_cols) + xp.arange(n_cols, dtype=u64)[None, :]
    else:
        z = xp.asarray(key, dtype=u64) + r * u64(n_cols) + cols.astype(u64)
    z = z + u64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> u64(30))) * u64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> u64(27))) * u64(0x94D049BB133111EB)
    z = z ^ (z >> u64(31))
    return (z >> u64(40)) >= u64(_keep_threshold(rate))


def dropout(H: Any, rows: Any, key: int, rate: float) -> Any:
    """Inverted dropout of ``H`` (dense or CSR; row ``i`` is global node ``rows[i]``): an
    element is zeroed with probability ``rate`` and the rest scaled by ``1 / (1 - rate)``.
    Stored entries of a sparse ``H`` keep their places (a dropped one stores 0)."""
    if rate <= 0:
        return H
    scale = 1.0 / (1.0 - rate)
    xp, _ = get_namespace(H)
    width = H.shape[1]
    if xp is np:
        from . import _gnn_kernels as K

        args = (np.ascontiguousarray(rows, dtype=np.int64), np.uint64(key), width,
                np.uint64(_keep_threshold(rate)), H.dtype.type(scale))
        if is_sparse(H):
            data = K.dropout_csr(H.indptr, H.indices, H.data, *args, np.empty_like(H.data))
            return sp.csr_matrix((data, H.indices, H.indptr), shape=H.shape)
        return K.dropout_dense(H, *args, np.empty(H.shape, dtype=H.dtype))
    if is_sparse(H):
        row_of = xp.repeat(rows, xp.diff(H.indptr).astype(xp.int64))
        keep = dropout_mask(row_of, width, key, rate, cols=H.indices)
        data = xp.where(keep, H.data * H.dtype.type(scale), H.dtype.type(0))
        return type(H)((data, H.indices, H.indptr), shape=H.shape)
    return xp.where(dropout_mask(rows, width, key, rate), H * H.dtype.type(scale), H.dtype.type(0))


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
    """GraphSAGE's mean aggregation ``D^-1 S`` over the neighbours ``S = (A != 0)`` (host
    CSR); a node without neighbours aggregates to 0."""
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


# ----------------------------------------------------------------------------- partition tasks


@dataclass(frozen=True)
class _Spec:
    model: str
    n_layers: int
    rate: float
    seed: int
    n_train: int
    lr: float = 0.01
    weight_decay: float = 0.0


@dataclass
class _Local:
    """What partition ``p`` keeps on its worker."""

    part: int
    op: Any                 # n_owned x (n_owned + n_halo)
    opT: Any                # its transpose, CSR
    X: Any                  # owned features, dense or CSR
    gid: Any                # global ids of the owned nodes
    y: Any                  # owned labels, -1 where none
    train: Any              # local indices of training nodes
    val: Any                # local indices of validation nodes
    send: dict = field(default_factory=dict)
    recv: dict = field(default_factory=dict)

    @property
    def n_owned(self) -> int:
        return int(self.op.shape[0])


STREAMS = {"train": ("train", "eval"), "grad": ("train",), "eval": ("eval",)}


def _matmul(H: Any, W: Any) -> Any:
    out = H @ W
    return out.toarray() if is_sparse(out) else out


def _transform(ctx: _Local, spec: _Spec, st: dict, layer: int) -> None:
    """``T = dropout(H) W`` for each stream; the rows neighbours need go to ``st['out']``."""
    xp, _ = get_namespace(ctx.y)
    W = st["params"][layer][0]
    parts = []
    for s in STREAMS[st["mode"]]:
        H = st["H"][s]
        if s == "train":
            H = dropout(H, ctx.gid, mask_key(spec.seed, st["epoch"], layer), spec.rate)
            if layer:                   # the first layer's input is dropped out again when needed
                st["Hd"][layer] = H
        if spec.model == "sage":                    # the root term reads the layer input again
            st["Hin"][s] = H
        parts.append(_matmul(H, W))
    T = parts[0] if len(parts) == 1 else xp.concatenate(parts, axis=1)
    st["T"] = T
    st["out"] = {q: T[idx] for q, idx in ctx.send.items()}


def _spmm(op: Any, first: Any, second: Any, bias: Any) -> Any:
    """``op @ [first; second] + bias``. On the host, with a second block (the halo), a
    compiled kernel reads the two row blocks where they are (no stacked copy); otherwise one
    sparse product (SciPy's is as fast for one block; CuPy stacks the blocks)."""
    xp, _ = get_namespace(first)
    if xp is np and second.shape[0]:
        from . import _gnn_kernels as K

        out = np.empty((op.shape[0], first.shape[1]), dtype=first.dtype)
        return K.spmm_split(op.indptr, op.indices, op.data, first, second, bias, out)
    stacked = xp.concatenate([first, second], axis=0) if second.shape[0] else first
    return op @ stacked + bias


def _halo(ctx: _Local, received: Sequence, width: int, dtype: Any) -> Any:
    """The halo rows in local order: ``recv`` lists are consecutive blocks, one per owner in
    increasing order, so the neighbours' rows are laid end to end (no copy for one)."""
    xp, _ = get_namespace(ctx.y)
    if not received:
        return xp.empty((0, width), dtype=dtype)
    return received[0] if len(received) == 1 else xp.concatenate(list(received), axis=0)


def _aggregate(ctx: _Local, spec: _Spec, st: dict, layer: int, received: Sequence) -> dict:
    """``Z = P_local [T; T_halo] + b`` (+ ``dropout(H) R``), per stream."""
    xp, _ = get_namespace(ctx.y)
    T = st.pop("T")
    params = st["params"][layer]
    streams = STREAMS[st["mode"]]
    Z = _spmm(ctx.op, T, _halo(ctx, received, T.shape[1], T.dtype), xp.concatenate([params[1]] * len(streams)))
    width = params[0].shape[1]
    out = {}
    for k, s in enumerate(streams):
        z = Z[:, k * width:(k + 1) * width]
        if spec.model == "sage":
            z = z + _matmul(st["Hin"][s], params[2])
        out[s] = z
    return out


def _log_softmax(Z: Any) -> Any:
    xp, _ = get_namespace(Z)
    Z = Z - Z.max(axis=1, keepdims=True)
    return Z - xp.log(xp.exp(Z).sum(axis=1, keepdims=True))


def _head(ctx: _Local, spec: _Spec, st: dict, Z: dict) -> None:
    """Loss, its gradient on the training rows, and the evaluation metrics."""
    xp, _ = get_namespace(ctx.y)
    metrics = st["metrics"]
    if "train" in Z:
        logp = _log_softmax(Z["train"])
        lp = logp[ctx.train]
        yt = ctx.y[ctx.train]
        metrics["loss"] = -float(lp[xp.arange(yt.shape[0]), yt].sum())
        G = xp.zeros_like(logp)
        g = xp.exp(lp)
        g[xp.arange(yt.shape[0]), yt] -= 1
        G[ctx.train] = g / logp.dtype.type(spec.n_train)
        st["G"] = G
    if "eval" in Z:
        logp = _log_softmax(Z["eval"])
        pred = logp.argmax(axis=1)
        metrics["train_correct"] = int((pred[ctx.train] == ctx.y[ctx.train]).sum())
        yv = ctx.y[ctx.val]
        metrics["val_correct"] = int((pred[ctx.val] == yv).sum())
        metrics["val_loss"] = -float(logp[ctx.val][xp.arange(yv.shape[0]), yv].sum())
        if st["mode"] == "eval":
            st["proba"] = xp.exp(logp)


def _layer_input(ctx: _Local, spec: _Spec, st: dict, layer: int) -> Any:
    """The dropped-out input of ``layer`` in the training pass. The first layer's (the
    features, as large as the partition) is not kept from the forward pass but drawn again:
    the masks are a function of the position, so it is the same array."""
    if layer:
        return st["Hd"][layer]
    return dropout(ctx.X, ctx.gid, mask_key(spec.seed, st["epoch"], 0), spec.rate)


def _backward_start(ctx: _Local, spec: _Spec, st: dict, layer: int) -> None:
    """Bias (and root) gradients; ``P_local^T dZ``, whose halo rows go back to their owners."""
    G = st["G"]
    Hd = _layer_input(ctx, spec, st, layer)
    grads = [None, G.sum(axis=0)]
    if spec.model == "sage":
        grads.append(_matmul(Hd.T, G))
    st["grads"][layer] = grads
    dT = ctx.opT @ G
    n = ctx.n_owned
    st["out"] = {q: dT[n + idx] for q, idx in ctx.recv.items()}
    st["dT"] = dT[:n]


def _backward_end(ctx: _Local, spec: _Spec, st: dict, layer: int, received: Sequence) -> None:
    """Add the gradients of the copies of owned rows; weight gradient; ``dZ`` one layer down."""
    dT = st.pop("dT")
    for idx, rows in zip(ctx.send.values(), received):
        dT[idx] += rows
    Hd = _layer_input(ctx, spec, st, layer)
    st["Hd"].pop(layer, None)
    st["grads"][layer][0] = _matmul(Hd.T, dT)
    if layer == 0:
        return
    params = st["params"][layer]
    dH = dT @ params[0].T
    if spec.model == "sage":
        dH = dH + st["G"] @ params[2].T
    # H = relu(Z) and Hd = dropout(H): Hd > 0 exactly where Z > 0 and the element was kept
    scale = Hd.dtype.type(1.0 / (1.0 - spec.rate))
    st["G"] = dH * (Hd > 0) * scale


# Each partition's running state lives in its worker's process between the tasks of a pass:
# a task returns only the rows its neighbours need, so an exchange is one hop from producer
# to consumer. Tasks of a partition are pinned to its worker and chained (each takes its
# predecessor's output), so they run in order. Keys: (token of the run, part).
_STASH: dict[tuple, dict] = {}


def _box(token: str, part: int) -> dict:
    return _STASH.setdefault((token, part), {"opt": {}, "pass": {}})


def release(token: str) -> None:
    """Forget the state of run ``token`` in this process (run on every worker at the end)."""
    for key in [k for k in _STASH if k[0] == token]:
        del _STASH[key]


def _received(items: Sequence, part: int) -> list:
    """Rows from each neighbour: either its whole outbox (when this part is its only
    destination) or the rows picked out for this part."""
    return [r[part] if isinstance(r, dict) else r for r in items]


def begin(ctx: _Local, spec: _Spec, token: str, epoch: int, version: int, mode: str, opt: Any,
          *finals: dict) -> dict:
    """First task of a pass: bring the optimizer to ``version`` steps, then the first
    layer's transform.

    ``opt`` (weights and Adam moments) is given for version 0; later versions apply one Adam
    step to the previous one with the gradients summed from every partition's ``finals`` of
    the previous epoch, in partition order, so all partitions hold the same weights (the
    all-reduce)."""
    box = _box(token, ctx.part)
    versions = box["opt"]
    if opt is not None:
        versions[version] = opt
    elif version not in versions:
        versions[version] = adam_step(versions[version - 1], reduce_results(finals)[0], lr=spec.lr,
                                      weight_decay=spec.weight_decay)
    for old in [v for v in versions if v < version - 1]:
        del versions[old]
    st = {"params": versions[version]["params"], "epoch": epoch, "mode": mode, "Hd": {}, "Hin": {},
          "grads": {}, "metrics": {}, "H": {s: ctx.X for s in STREAMS[mode]}}
    box["pass"][(epoch, mode)] = st
    _transform(ctx, spec, st, 0)
    return st.pop("out")


def forward(ctx: _Local, spec: _Spec, token: str, epoch: int, mode: str, layer: int, previous: Any,
            *received: Any) -> dict:
    """Aggregate ``layer``; then the next layer's transform, or the head and the first
    backward step. ``previous`` is this partition's last output (it orders the tasks)."""
    passes = _box(token, ctx.part)["pass"]
    st = passes[(epoch, mode)]
    Z = _aggregate(ctx, spec, st, layer, _received(received, ctx.part))
    if layer < spec.n_layers - 1:
        xp, _ = get_namespace(ctx.y)
        st["H"] = {s: xp.maximum(z, 0, out=z) for s, z in Z.items()}     # Z is this task's own
        _transform(ctx, spec, st, layer + 1)
        return st.pop("out")
    st["H"], st["Hin"] = {}, {}
    _head(ctx, spec, st, Z)
    if mode == "eval":
        del passes[(epoch, mode)]
        return {"proba": st["proba"], "metrics": st["metrics"], "params": st["params"] if ctx.part == 0 else None}
    _backward_start(ctx, spec, st, layer)
    return st.pop("out")


def backward(ctx: _Local, spec: _Spec, token: str, epoch: int, mode: str, layer: int, previous: Any,
             *received: Any) -> dict:
    """Finish ``layer``'s backward step; start the one below, or return the gradients."""
    passes = _box(token, ctx.part)["pass"]
    st = passes[(epoch, mode)]
    _backward_end(ctx, spec, st, layer, _received(received, ctx.part))
    if layer > 0:
        _backward_start(ctx, spec, st, layer - 1)
        return st.pop("out")
    del passes[(epoch, mode)]
    return {"grads": [tuple(st["grads"][l]) for l in range(spec.n_layers)], "metrics": st["metrics"]}


def pick(out: dict, q: int) -> Any:
    """The rows partition ``q`` receives from a partition's outbox."""
    return out[q]


def _sum_in_order(values: Sequence) -> Any:
    total = values[0]
    for v in values[1:]:
        total = total + v
    return total


def reduce_results(finals: Sequence[dict]) -> tuple[list, dict]:
    """Gradients and metrics summed over partitions, always in partition order."""
    grads = [tuple(_sum_in_order([f["grads"][l][k] for f in finals]) for k in range(len(finals[0]["grads"][l])))
             for l in range(len(finals[0]["grads"]))]
    metrics = {k: sum(f["metrics"][k] for f in finals) for k in finals[0]["metrics"]}
    return grads, metrics


def adam_step(state: dict, grads: Sequence, *, lr: float, weight_decay: float, betas: tuple = (0.9, 0.999),
              eps: float = 1e-8) -> dict:
    """One Adam step (PyTorch's: the L2 term ``weight_decay * w`` is added to the gradient)
    on every parameter; ``weight_decay`` applies to the first layer only (Kipf & Welling)."""
    xp, _ = get_namespace(state["params"][0][0])
    t = state["t"] + 1
    b1, b2 = betas
    c1, c2 = 1 - b1 ** t, 1 - b2 ** t
    params, m_all, v_all = [], [], []
    for l, (ws, gs, ms, vs) in enumerate(zip(state["params"], grads, state["m"], state["v"])):
        new_w, new_m, new_v = [], [], []
        for w, g, m, v in zip(ws, gs, ms, vs):
            if l == 0 and weight_decay:
                g = g + weight_decay * w
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            w = w - (lr / c1) * m / (xp.sqrt(v / c2) + eps)
            new_w.append(w.astype(ws[0].dtype, copy=False))
            new_m.append(m)
            new_v.append(v)
        params.append(tuple(new_w))
        m_all.append(tuple(new_m))
        v_all.append(tuple(new_v))
    return {"params": params, "m": m_all, "v": v_all, "t": t}


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
        return self.client.gather(futures)

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


@dataclass
class GNNResult:
    """What :func:`train_gnn` returns."""

    params: list            # per layer (W, b) or (W, b, R)
    proba: Any              # (n_nodes, n_classes) class probabilities of the final model
    history: xr.Dataset     # per epoch, plus attrs
    partitioning: Partitioning
    final: dict             # metrics of the final model


def _check_idx(idx: Any, n: int, name: str) -> np.ndarray:
    idx = np.asarray(to_numpy(idx.compute() if hasattr(idx, "compute") else idx))
    if idx.ndim != 1 or not (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
        raise ValueError(f"{name} must be a 1-D array of integer node indices, got dtype {idx.dtype} "
                         f"and shape {idx.shape}.")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        bad = idx[(idx < -n) | (idx >= n)]
        raise ValueError(f"{name} has {bad.size} index(es) out of range for a graph of {n} nodes "
                         f"(for example {int(bad[0])}); indices must be in [0, {n}).")
    idx = np.where(idx < 0, idx + n, idx)
    if np.unique(idx).size != idx.size:
        raise ValueError(f"{name} repeats node indices; pass each node once.")
    return idx


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
    train = _check_idx(train_idx, n, "train_idx")
    if train.size == 0:
        raise ValueError("train_idx is empty; give the indices of the labelled training nodes.")
    val = _check_idx(val_idx if val_idx is not None else np.empty(0, np.int64), n, "val_idx")
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
            lr: float = 0.01, weight_decay: float = 0.0, client: Any = None) -> tuple[Trainer, list, int]:
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
    executor: Any = Inline() if client is False else _Distributed(client or current_client() or connect())
    n_parts = len(executor.workers) if n_parts is None else n_parts
    seed = int(np.random.SeedSequence(random_state).generate_state(1)[0]) if random_state is None \
        else int(random_state)
    partitioning = partition_graph(A, n_parts, method=partition, random_state=seed)
    op = OPERATORS[model](A, dtype)
    sizes = (X.shape[1],) + (int(hidden),) * (int(n_layers) - 1) + (n_classes,)
    spec = _Spec(model=model, n_layers=int(n_layers), rate=float(dropout), seed=seed, n_train=int(train.size),
                 lr=float(lr), weight_decay=float(weight_decay))
    trainer = Trainer(op, X, y, train, val, partitioning, spec, executor, backend)
    params = init_params(sizes, model, seed, X.data if is_sparse(X) else X, dtype)
    return trainer, params, n_classes


def train_gnn(graph: Any, features: Any, labels: Any, train_idx: Any, val_idx: Any = None, *,
              model: Model = "gcn", hidden: int = 16, n_layers: int = 2, dropout: float = 0.5, lr: float = 0.01,
              weight_decay: float = 5e-4, epochs: int = 200, n_parts: int | None = None,
              partition: str = "bfs", random_state: int | None = None, dtype: Any = np.float32,
              client: Any = None, callback: Callable[[int, dict], Any] | None = None,
              progress: bool | None = None) -> GNNResult:
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
    client : a ``distributed.Client`` (default: the current one, else the embedded local
        cluster), or ``False`` to run every task in this process (:class:`Inline`).
    callback : ``callback(epoch, record)`` after each epoch; returning True stops.

    Returns
    -------
    GNNResult
    """
    if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"epochs must be a positive integer, got {epochs!r}.")
    if not lr > 0 or not weight_decay >= 0:
        raise ValueError(f"lr must be > 0 and weight_decay >= 0, got lr={lr!r}, weight_decay={weight_decay!r}.")
    dtype = np.dtype(dtype)
    trainer, params, n_classes = prepare(graph, features, labels, train_idx, val_idx, model=model, hidden=hidden,
                                         n_layers=n_layers, dropout=dropout, n_parts=n_parts, partition=partition,
                                         random_state=random_state, dtype=dtype, lr=lr,
                                         weight_decay=weight_decay, client=client)
    spec, executor, partitioning = trainer.spec, trainer.ex, trainer.partitioning
    n_parts, val = partitioning.n_parts, trainer.val_idx
    xp, _ = get_namespace(params[0][0])
    opt0 = {"params": params, "t": 0, "m": [tuple(xp.zeros_like(w) for w in layer) for layer in params],
            "v": [tuple(xp.zeros_like(w) for w in layer) for layer in params]}
    widths = [layer[0].shape[1] for layer in params]
    bytes_epoch = trainer.send_rows * dtype.itemsize * (sum(2 * w for w in widths) + sum(widths))
    rows: dict[str, list] = {k: [] for k in ("loss", "train_accuracy", "val_accuracy", "val_loss", "epoch_time",
                                             "bytes_exchanged")}
    bar = ProgressLine(progress)
    n_val = max(int(val.size), 1)
    submitted: list = []                    # final futures of the submitted epochs not yet recorded
    previous: Sequence = ()                 # final futures of the last recorded epoch
    done, last = 0, time.perf_counter()
    try:
        while done < epochs:
            while len(submitted) < 2 and done + len(submitted) < epochs:     # one epoch ahead of the client
                e = done + len(submitted)
                before = submitted[-1] if submitted else previous
                submitted.append(trainer.submit_pass(e, e, "train", opt=opt0 if e == 0 else None, finals=before))
            previous = submitted.pop(0)
            _, m = reduce_results(executor.gather(previous))
            now = time.perf_counter()
            record = {"loss": m["loss"] / spec.n_train, "train_accuracy": m["train_correct"] / spec.n_train,
                      "val_accuracy": m["val_correct"] / n_val if val.size else np.nan,
                      "val_loss": m["val_loss"] / n_val if val.size else np.nan,
                      "epoch_time": now - last, "bytes_exchanged": bytes_epoch}
            last = now
            for k, v in record.items():
                rows[k].append(v)
            bar.update(done + 1, epochs, f"epoch {done + 1}/{epochs}  loss {record['loss']:.4f}  "
                                         f"val acc {record['val_accuracy']:.4f}")
            done += 1
            if callback is not None and callback(done - 1, record):
                break
        executor.cancel([f for finals in submitted for f in finals])
        final_params, proba, final = trainer.evaluate(done, finals=previous)
    except KeyboardInterrupt:
        executor.cancel([f for finals in submitted for f in finals])
        raise
    finally:
        bar.close()
        trainer.close()
    history = xr.Dataset({k: ("epoch", np.asarray(v, dtype=float)) for k, v in rows.items()},
                         coords={"epoch": np.arange(len(rows["loss"]))},
                         attrs={"model": model, "n_parts": n_parts, "partition": partition,
                                "edge_cut_fraction": partitioning.stats.attrs["edge_cut_fraction"],
                                "final_train_accuracy": final["train_correct"] / spec.n_train,
                                "final_val_accuracy": final["val_correct"] / n_val if val.size else np.nan})
    return GNNResult(params=final_params, proba=proba, history=history, partitioning=partitioning,
                     final=final)
