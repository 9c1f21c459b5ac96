"""``daskpml gnn``: node classification with a partitioned GCN or GraphSAGE from an .npz file."""

from __future__ import annotations

import time
from typing import Any

import click
import numpy as np

from .._files import DataFormatError, open_npz
from ._main import Session, checkpoint_options, cli, outputs

def _csr(data: Any, prefix: str) -> Any:
    import scipy.sparse as sp

    keys = [f"{prefix}_{k}" for k in ("data", "indices", "indptr", "shape")]
    if all(k in data for k in keys):
        return sp.csr_matrix((data[keys[0]], data[keys[1]], data[keys[2]]), shape=tuple(data[keys[3]]))
    return None


def load_node_data(path: str) -> dict:
    """Read a node-classification .npz (see ``NPZ_FORMAT``)."""
    import scipy.sparse as sp

    with open_npz(path) as data:
        A = _csr(data, "adj")
        if A is None and "adj" in data:
            A = sp.csr_matrix(data["adj"])
        if A is None and "edges" in data:
            e = np.asarray(data["edges"])
            n = int(data["n_nodes"]) if "n_nodes" in data else int(e.max()) + 1
            A = sp.csr_matrix((np.ones(e.shape[0]), (e[:, 0], e[:, 1])), shape=(n, n))
            A = A.maximum(A.T)
        X = _csr(data, "x")
        if X is None and "x" in data:
            X = np.asarray(data["x"])
        missing = [name for name, v in (("graph (adj_* / adj / edges)", A), ("features (x_* / x)", X)) if v is None]
        missing += [k for k in ("labels", "idx_train") if k not in data]
        if missing:
            raise DataFormatError(f"{path} lacks {', '.join(missing)}; `daskpml gnn --help` describes the layout "
                                  "of DATA.npz.")
        out = {"graph": A, "features": X, "labels": np.asarray(data["labels"]), "train": np.asarray(data["idx_train"])}
        for key in ("idx_val", "idx_test"):
            out[key[4:]] = np.asarray(data[key]) if key in data else None
    return out


@cli.command(name="gnn")
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--model", type=click.Choice(["gcn", "sage"]), default="gcn", show_default=True)
@click.option("--parts", type=click.IntRange(min=1), default=None,
              help="Partitions of the graph (default: one per worker).")
@click.option("--partition", type=click.Choice(["bfs", "contiguous", "spectral", "metis"]), default="bfs",
              show_default=True)
@click.option("--epochs", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--hidden", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--layers", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--dropout", type=click.FloatRange(min=0, max=1, max_open=True), default=0.5, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=0.01, show_default=True)
@click.option("--weight-decay", type=click.FloatRange(min=0), default=5e-4, show_default=True)
@click.option("--row-normalize", is_flag=True, help="Scale each node's features to sum 1 (the Cora setup).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--history", type=click.Path(dir_okay=False), default=None, help="netCDF of the training history.")
@checkpoint_options(10, "epochs")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="TSV: node, predicted class, its probability.")
@click.pass_obj
def gnn_command(session: Session, data: str, model: str, parts: int | None, partition: str, epochs: int, hidden: int,
                layers: int, dropout: float, lr: float, weight_decay: float, row_normalize: bool, seed: int,
                history: str | None, checkpoint: str | None, checkpoint_every: int, resume: bool, out: str) -> None:
    """Train a GCN or GraphSAGE on the labelled nodes of DATA.npz, split into partitions on the
    cluster's workers, and write a prediction for every node.

    \b
    DATA.npz holds plain arrays (numpy.savez, no pickles):
      the graph   CSR adj_data, adj_indices, adj_indptr, adj_shape;
                  or a dense adj; or an (m, 2) edges list (mirrored, with n_nodes)
      features    CSR x_data, x_indices, x_indptr, x_shape; or a dense x
      labels      integer classes, -1 where unknown
      idx_train   the training nodes; optional idx_val and idx_test
    The shared Cora file (../shared/data/cora.npz) has this layout.
    """
    import scipy.sparse as sp

    from ..backend import to_backend, to_numpy
    from ..gnn import GCN, GraphSAGE
    from ..results import write_netcdf

    files = outputs({"DATA": data}, out=out, history=history)
    d = load_node_data(data)
    if d["test"] is not None:
        both = np.intersect1d(d["train"], d["test"])
        if both.size:
            raise ValueError(f"idx_train and idx_test overlap in {both.size} node(s) (for example {int(both[0])}); "
                             "the test nodes must be held out of training.")
    X = d["features"]
    if row_normalize:
        sums = np.asarray(abs(X).sum(axis=1)).ravel()
        X = sp.diags(1.0 / np.where(sums > 0, sums, 1)) @ X if sp.issparse(X) else X / np.where(sums > 0, sums, 1)[:, None]
    if session.backend:
        X = to_backend(X, session.backend)
    session.client()
    cls = GCN if model == "gcn" else GraphSAGE
    est = cls(hidden=hidden, n_layers=layers, dropout=dropout, lr=lr, weight_decay=weight_decay, epochs=epochs,
              n_parts=parts, partition=partition, random_state=seed, checkpoint=checkpoint,
              checkpoint_every=checkpoint_every)
    start = time.perf_counter()
    est.fit(d["graph"], X, d["labels"], d["train"], d["val"], resume=resume)
    elapsed = time.perf_counter() - start
    proba = to_numpy(est.predict_proba())
    pred = proba.argmax(axis=1)
    with files:                                     # both files, or neither
        with open(files["--out"], "w") as f:
            f.write("node\tpredicted\tprobability\n")
            f.writelines(f"{i}\t{c}\t{p:.6g}\n" for i, (c, p) in enumerate(zip(pred, proba.max(axis=1))))
        if history:
            write_netcdf(est.history_, files["--history"])
    h = est.history_
    line = (f"{model} on {proba.shape[0]} nodes, {est.partitioning_.n_parts} partition(s) "
            f"(edge cut {h.attrs['edge_cut_fraction']:.3f}), {est.n_epochs_} epochs in {elapsed:.2f} s "
            f"({float(np.median(h.epoch_time)) * 1e3:.1f} ms per epoch); train accuracy "
            f"{h.attrs['final_train_accuracy']:.4f}")
    if d["val"] is not None:
        line += f", validation {h.attrs['final_val_accuracy']:.4f}"
    if d["test"] is not None:
        line += f", test {est.score(d['test']):.4f}"
    click.echo(line)
    click.echo(f"wrote {out}")
