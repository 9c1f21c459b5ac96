"""The worker side of :mod:`daskpml.graph._gnn`: what a partition computes between two
exchanges, the dropout masks, the all-reduce and the optimizer step.

Kept apart from the driver so that a worker running these tasks imports NumPy, SciPy and
the compiled kernels only (not xarray, scikit-learn or the rest of :mod:`daskpml.graph`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from ..backend import get_namespace, is_sparse
from ..sparse import row_indices

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
    xp, xsp = get_namespace(H)
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
        row_of = rows[row_indices(H)]           # (CuPy's repeat takes no array of counts)
        keep = dropout_mask(row_of, width, key, rate, cols=H.indices)
        data = xp.where(keep, H.data * H.dtype.type(scale), H.dtype.type(0))
        return xsp.csr_matrix((data, H.indices, H.indptr), shape=H.shape)
    return xp.where(dropout_mask(rows, width, key, rate), H * H.dtype.type(scale), H.dtype.type(0))


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
    Hd = st["Hd"].get(layer)
    return Hd if Hd is not None else dropout(ctx.X, ctx.gid, mask_key(spec.seed, st["epoch"], 0), spec.rate)


def _backward_start(ctx: _Local, spec: _Spec, st: dict, layer: int) -> None:
    """Bias (and root) gradients; ``P_local^T dZ``, whose halo rows go back to their owners."""
    G = st["G"]
    grads = [None, G.sum(axis=0)]
    if spec.model == "sage":                  # the root term; kept until the layer's weight gradient
        st["Hd"][layer] = Hd = _layer_input(ctx, spec, st, layer)
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
