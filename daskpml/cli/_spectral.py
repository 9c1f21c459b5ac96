"""``daskpml spectral`` and ``daskpml eigsh``: spectral methods from the command line."""

from __future__ import annotations

import time
from typing import Any

import click
import numpy as np
import xarray as xr

from .._files import DataFormatError, check_readable, open_npz
from ..results import write_netcdf
from ._main import Session, checkpoint_options, cli, outputs

GRAPH_SUFFIXES = (".mtx", ".abc", ".tsv", ".txt", ".edges")


def load_input(path: str, kind: str, symmetrize: bool = False) -> tuple[str, Any, np.ndarray | None]:
    """``("graph", adjacency, node names)`` or ``("points", X, None)`` from a file.

    ``kind="auto"``: Matrix Market and edge lists are graphs; ``.npz`` holding an
    array ``X`` is points, another ``.npz`` a SciPy sparse graph; ``.csv`` and
    svmlight files are points.
    """
    from ..datasets import load_graph
    from ._linear import load_xy

    check_readable(path)
    name = path.lower()
    if kind == "auto":
        if name.endswith(GRAPH_SUFFIXES):
            kind = "graph"
        elif name.endswith(".npz"):
            with open_npz(path) as f:
                kind = "points" if "X" in f.files else "graph"
        else:
            kind = "points"
    if kind == "graph":
        graph = load_graph(path, symmetrize=True if symmetrize else None)
        return "graph", graph.adjacency, graph.nodes
    if name.endswith(".npz"):
        with open_npz(path) as f:
            if "X" not in f.files:
                raise DataFormatError(f"{path} holds no array named 'X' (it has {sorted(f.files)}); save points as "
                                      "numpy.savez(path, X=X), or pass --input-kind graph for a sparse graph.")
            return "points", f["X"], None
    if name.endswith(".csv"):
        return "points", np.loadtxt(path, delimiter=",", ndmin=2), None
    X, _ = load_xy(path)
    return "points", X, None


@cli.command()
@click.argument("input_file", metavar="INPUT", type=click.Path(dir_okay=False))
@click.option("--clusters", "-k", type=click.IntRange(min=2), required=True, help="Number of clusters.")
@click.option("--input-kind", type=click.Choice(["auto", "points", "graph"]), default="auto", show_default=True)
@click.option("--affinity", type=click.Choice(["nearest_neighbors", "rbf"]), default="nearest_neighbors",
              show_default=True, help="Graph built from points (ignored for a graph).")
@click.option("--neighbors", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--gamma", type=float, default=1.0, show_default=True, help="Width of the rbf affinity.")
@click.option("--laplacian", type=click.Choice(["sym", "rw"]), default="sym", show_default=True)
@click.option("--method", type=click.Choice(["kmeans", "recursive"]), default="kmeans", show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--symmetrize", is_flag=True, help="Use max(A, A.T) of a directed graph (.npz, .mtx input).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Labels (TSV: node, label).")
@click.pass_obj
def spectral(session: Session, input_file: str, clusters: int, input_kind: str, affinity: str, neighbors: int,
             gamma: float, laplacian: str, method: str, seed: int, symmetrize: bool, out: str) -> None:
    """Spectral clustering of INPUT (points: .npz with X, .csv, svmlight; or a graph: .mtx, .npz, edge list)."""
    from ..cluster import SpectralClustering
    from ..datasets import write_labels

    files = outputs({"INPUT": input_file}, out=out)
    session.client()
    kind, data, nodes = load_input(input_file, input_kind, symmetrize)
    (data,) = session.on_device(data)
    model = SpectralClustering(clusters, affinity="precomputed" if kind == "graph" else affinity,
                               n_neighbors=neighbors, gamma=gamma, laplacian=laplacian, method=method,
                               random_state=seed)
    start = time.perf_counter()
    labels = np.asarray(model.fit(data).labels_)
    elapsed = time.perf_counter() - start
    with files:
        write_labels(files["--out"], labels, nodes=nodes)
    sizes = np.bincount(labels)
    click.echo(f"{kind} ({len(labels)} nodes): {len(sizes)} clusters in {elapsed:.2f} s, "
               f"sizes {sorted(sizes.tolist(), reverse=True)}")
    click.echo(f"wrote {out}")


@cli.command(name="eigsh")
@click.argument("graph", type=click.Path(dir_okay=False))
@click.option("--k", "k", type=click.IntRange(min=1), default=8, show_default=True, help="Eigenpairs.")
@click.option("--laplacian", type=click.Choice(["sym", "rw", "unnormalized", "none"]), default="sym",
              show_default=True, help="Smallest eigenpairs of this Laplacian, or 'none': of the matrix itself.")
@click.option("--which", type=click.Choice(["LM", "LA", "SA"]), default="LM", show_default=True,
              help="With --laplacian none (as scipy.sparse.linalg.eigsh: largest magnitude by default).")
@click.option("--tol", type=float, default=1e-8, show_default=True)
@click.option("--ncv", type=click.IntRange(min=2), default=None)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--symmetrize", is_flag=True, help="Use max(A, A.T) of a directed matrix (.npz, .mtx input).")
@checkpoint_options(10, "restarts")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="netCDF with eigenvalues and vectors.")
@click.pass_obj
def eigsh_command(session: Session, graph: str, k: int, laplacian: str, which: str, tol: float, ncv: int | None,
                  seed: int, symmetrize: bool, checkpoint: str | None, checkpoint_every: int, resume: bool,
                  out: str) -> None:
    """Eigenpairs of a graph's Laplacian (or of a symmetric matrix) by distributed Lanczos."""
    from ..backend import to_numpy
    from ..datasets import load_graph
    from ..linalg import lanczos, laplacian_lanczos

    files = outputs({"GRAPH": graph}, out=out)
    session.client()
    loaded = load_graph(graph, symmetrize=True if symmetrize else None)
    (adjacency,) = session.on_device(loaded.adjacency)
    start = time.perf_counter()
    if laplacian == "none":
        res = lanczos(adjacency, k, which=which, tol=tol, ncv=ncv, random_state=seed,
                      checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume)
    else:
        res = laplacian_lanczos(adjacency, k, kind=laplacian, tol=tol, ncv=ncv, random_state=seed,
                                checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume)
    w, V, hist = res.eigenvalues, res.eigenvectors, res.history
    vectors = np.asarray(to_numpy(V.compute()))
    elapsed = time.perf_counter() - start
    ds = xr.Dataset({"eigenvalues": (("component",), w),
                     "eigenvectors": (("node", "component"), vectors)},
                    coords={"node": np.asarray(loaded.nodes).astype(str)},
                    attrs={"laplacian": laplacian, "which": which if laplacian == "none" else "smallest",
                           "tol": tol, "matvecs": int(hist.attrs["matvecs"]),
                           "restarts": int(hist.attrs["restarts"]), "source": graph})
    with files:
        write_netcdf(ds, files["--out"])
    click.echo(f"{k} eigenpairs in {elapsed:.2f} s ({hist.attrs['matvecs']} products, "
               f"{hist.attrs['restarts']} restarts): {np.array2string(w, precision=6)}")
    click.echo(f"wrote {out}")
