"""``daskpml datasets ...``: generate and convert data files."""

from __future__ import annotations

import os

import click
import numpy as np

from .. import datasets as ds
from ..results import write_netcdf
from ._main import Session, cli, outputs


@cli.group()
def datasets() -> None:
    """Generate synthetic data sets and convert between file formats."""


def _suffix(path: str) -> str:
    return os.path.splitext(path.lower())[1]


@datasets.command("make-sbm")
@click.option("--nodes", type=click.IntRange(min=2), default=10_000, show_default=True)
@click.option("--clusters", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--in-degree", type=click.FloatRange(min=0), default=8.0, show_default=True)
@click.option("--out-degree", type=click.FloatRange(min=0), default=2.0, show_default=True)
@click.option("--shuffle/--no-shuffle", default=False, show_default=True, help="Random node order.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="Graph file: .npz, .mtx, or an edge list (.tsv, .abc).")
@click.option("--labels", "labels_out", type=click.Path(dir_okay=False), help="Also write the planted labels (TSV).")
@click.pass_obj
def make_sbm(session: Session, nodes: int, clusters: int, in_degree: float, out_degree: float, shuffle: bool,
             seed: int, out: str, labels_out: str | None) -> None:
    """A stochastic block model graph with planted communities."""
    files = outputs({}, out=out, labels=labels_out)
    session.client()
    A, labels = ds.make_sbm(nodes, clusters, in_degree=in_degree, out_degree=out_degree, shuffle=shuffle,
                            random_state=seed)
    A = A.persist()
    with files:
        ds.save_graph(files["--out"], A)
        if labels_out:
            ds.write_labels(files["--labels"], labels)
    click.echo(f"wrote {out}: {nodes} nodes, {A.nnz} stored entries, {clusters} communities")


@datasets.command("make-blobs")
@click.option("--samples", type=click.IntRange(min=1), default=10_000, show_default=True)
@click.option("--features", type=click.IntRange(min=1), default=2, show_default=True)
@click.option("--centers", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--std", type=click.FloatRange(min=0), default=1.0, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help=".npz (arrays X and y) or .nc (xarray Dataset).")
@click.pass_obj
def make_blobs(session: Session, samples: int, features: int, centers: int, std: float, seed: int, out: str) -> None:
    """Gaussian blobs for clustering."""
    import xarray as xr

    if _suffix(out) not in (".npz", ".nc"):
        raise click.BadParameter(f"{out}: use .npz or .nc", param_hint="--out")
    files = outputs({}, out=out)
    session.client()
    X, y = ds.make_blobs(samples, features, centers=centers, cluster_std=std, random_state=seed)
    X, y = np.asarray(X.compute()), np.asarray(y.compute())
    with files:
        if _suffix(out) == ".npz":
            np.savez(files["--out"], X=X, y=y)
        else:
            write_netcdf(xr.Dataset({"X": (("sample", "feature"), X), "y": ("sample", y)}), files["--out"])
    click.echo(f"wrote {out}: {samples} x {features}, {centers} centers")


@datasets.command("make-low-rank")
@click.option("--rows", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("--cols", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--rank", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--noise", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option("--density", type=click.FloatRange(min=0, max=1, min_open=True), default=None,
              help="Make a sparse matrix with this fraction of entries.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help=".npy (dense), .npz or .mtx (sparse with --density).")
@click.pass_obj
def make_low_rank(session: Session, rows: int, cols: int, rank: int, noise: float, density: float | None,
                  seed: int, out: str) -> None:
    """A non-negative low-rank matrix (for NMF)."""
    if density is None and _suffix(out) != ".npy":
        raise click.BadParameter(f"{out}: a dense matrix is written as .npy (add --density for sparse)",
                                 param_hint="--out")
    if density is not None and _suffix(out) not in (".npz", ".mtx"):
        raise click.BadParameter(f"{out}: a sparse matrix is written as .npz or .mtx", param_hint="--out")
    files = outputs({}, out=out)
    session.client()
    A = ds.make_low_rank(rows, cols, rank, noise=noise, density=density, random_state=seed)
    with files:
        if density is not None:
            ds.save_graph(files["--out"], A) if _suffix(out) == ".mtx" else ds.save_npz(files["--out"], A)
        else:
            np.save(files["--out"], np.asarray(A.compute()))
    click.echo(f"wrote {out}: {rows} x {cols}, rank {rank}")


@datasets.command("convert")
@click.argument("source", type=click.Path(dir_okay=False))
@click.argument("target", type=click.Path(dir_okay=False))
@click.option("--matrix", is_flag=True, help="Treat the input as a general matrix, not a graph.")
@click.option("--directed", is_flag=True, help="Keep edge lists directed (default: symmetrize).")
def convert(source: str, target: str, matrix: bool, directed: bool) -> None:
    """Convert between .npz, .mtx, edge lists (.tsv, .abc, .txt) and, with --matrix, .npy."""
    files = outputs({"SOURCE": source}, {"TARGET": target})
    tmp = files["TARGET"]
    if matrix:
        M = ds.load_matrix(source)
        with files:
            if hasattr(M, "to_scipy"):
                ds.save_graph(tmp, M) if _suffix(target) != ".npz" else ds.save_npz(tmp, M)
            else:
                np.save(tmp, np.asarray(M.compute()))
        click.echo(f"wrote {target}: {M.shape[0]} x {M.shape[1]}")
        return
    graph = ds.load_graph(source, symmetrize=False if directed else None)
    with files:
        ds.save_graph(tmp, graph.adjacency, nodes=graph.nodes)
    click.echo(f"wrote {target}: {graph.adjacency.shape[0]} nodes")
