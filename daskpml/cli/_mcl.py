"""``daskpml mcl``: Markov clustering from the command line, with mcl's options and output."""

from __future__ import annotations

import time

import click

from ._main import Session, checkpoint_options, cli, outputs


@cli.command(name="mcl")
@click.argument("graph", type=click.Path(dir_okay=False))
@click.option("-I", "--inflation", "inflation", type=click.FloatRange(min=1.0, min_open=True), default=2.0,
              show_default=True, help="Inflation (mcl's -I): larger gives finer clusters.")
@click.option("-e", "--expansion", type=click.IntRange(min=2), default=2, show_default=True)
@click.option("-c", "--loop-weight", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Loops get this times the node's largest edge weight (mcl's -c).")
@click.option("-P", "precision", type=click.IntRange(min=1), default=None,
              help="Prune entries below 1/P (mcl's -P); overrides -p.")
@click.option("-p", "--prune-threshold", type=click.FloatRange(min=0, max=1), default=1e-4, show_default=True)
@click.option("-S", "--select", type=click.IntRange(min=0), default=1100, show_default=True)
@click.option("-R", "--recover", type=click.IntRange(min=0), default=1400, show_default=True)
@click.option("--pct", type=click.IntRange(min=0, max=100), default=90, show_default=True,
              help="Recover percentage (mcl's -pct).")
@click.option("--max-iter", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--tol", type=float, default=1e-6, show_default=True, help="Stop when the chaos is below this.")
@click.option("--overlap", type=click.Choice(["remove", "cut", "keep"]), default="remove", show_default=True)
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True)
@click.option("--history", type=click.Path(dir_okay=False), default=None, help="netCDF of the iteration history.")
@checkpoint_options(5, "iterations")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="Clusters, one per line, tab-separated node names (as mcl writes).")
@click.pass_obj
def mcl_command(session: Session, graph: str, inflation: float, expansion: int, loop_weight: float,
                precision: int | None, prune_threshold: float, select: int, recover: int, pct: int, max_iter: int,
                tol: float, overlap: str, dtype: str, history: str | None, checkpoint: str | None,
                checkpoint_every: int, resume: bool, out: str) -> None:
    """Markov clustering of GRAPH: an .abc / edge list (label pairs, optional weight; mirrored,
    repeated edges keep the largest weight, as mcl reads them), .mtx or SciPy .npz."""
    from ..datasets import load_graph, write_clusters
    from ..datasets import EDGE_LIST_SUFFIXES
    from ..graph import mcl
    from ..results import write_netcdf
    from ..validation import check_graph

    files = outputs({"GRAPH": graph}, out=out, history=history)
    session.client()
    loaded = load_graph(graph, duplicates="max", symmetrize=False)
    adjacency = check_graph(loaded.adjacency, name=graph)        # before mirroring could hide a bad weight
    if graph.lower().endswith(EDGE_LIST_SUFFIXES):
        adjacency = adjacency.maximum(adjacency.T)                 # mcl mirrors every arc of label input
    (adjacency,) = session.on_device(adjacency)
    start = time.perf_counter()
    result = mcl(adjacency, inflation, expansion=expansion, loop_weight=loop_weight,
                 prune_threshold=1.0 / precision if precision else prune_threshold, select=select, recover=recover,
                 recover_pct=pct / 100.0, max_iter=max_iter, tol=tol, overlap=overlap, dtype=dtype,
                 checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume)
    elapsed = time.perf_counter() - start
    with files:                                     # both files, or neither
        write_clusters(files["--out"], result.clusters, nodes=loaded.nodes)
        if history:
            write_netcdf(result.history, files["--history"])
    state = "converged" if result.converged else f"NOT converged (chaos {float(result.history.chaos[-1]):.3g})"
    click.echo(f"{len(result.clusters)} clusters of {adjacency.shape[0]} nodes in {elapsed:.2f} s, "
               f"{result.n_iter} iterations, {state}")
    click.echo(f"wrote {out}")
