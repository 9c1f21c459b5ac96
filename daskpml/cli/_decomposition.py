"""``daskpml nmf``: blockwise non-negative matrix factorization from the command line."""

from __future__ import annotations

import time

import click
import numpy as np
import xarray as xr

from .._files import check_readable
from ..results import write_netcdf
from ._main import Session, checkpoint_options, cli, outputs


@cli.command()
@click.argument("matrix", type=click.Path(dir_okay=False))
@click.option("--rank", "-k", type=click.IntRange(min=1), required=True, help="Number of components.")
@click.option("--solver", type=click.Choice(["hals", "mu", "anls"]), default="hals", show_default=True)
@click.option("--init", type=click.Choice(["nndsvda", "nndsvd", "nndsvdar", "random"]), default="nndsvda",
              show_default=True)
@click.option("--max-iter", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--tol", type=click.FloatRange(min=0), default=1e-4, show_default=True)
@click.option("--inner-iter", default="1", show_default=True,
              help="Updates of each factor per iteration: 1 (scikit-learn's), an integer, or 'auto' (accelerated).")
@click.option("--alpha-w", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option("--alpha-h", type=click.FloatRange(min=0), default=0.0, show_default=True)
@click.option("--l1-ratio", type=click.FloatRange(0, 1), default=0.0, show_default=True)
@click.option("--dtype", type=click.Choice(["float64", "float32"]), default=None,
              help="Working precision (default: the matrix's floating type).")
@click.option("--layout", type=click.Choice(["auto", "rows", "grid"]), default="auto", show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@checkpoint_options(10, "iterations")
@click.option("--no-w", "no_w", is_flag=True, help="Leave W (n_samples x rank) out of the output.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="netCDF with H ('components'), W and the iteration history.")
@click.pass_obj
def nmf(session: Session, matrix: str, rank: int, solver: str, init: str, max_iter: int, tol: float, inner_iter: str,
        alpha_w: float, alpha_h: float, l1_ratio: float, dtype: str | None, layout: str, seed: int,
        checkpoint: str | None, checkpoint_every: int, resume: bool, no_w: bool, out: str) -> None:
    """Factor MATRIX (.npy, .npz dense or sparse, .mtx, .csv) as W H with W, H >= 0."""
    from ..backend import to_numpy
    from ..datasets import load_matrix
    from ..decomposition import nmf as factor

    files = outputs({"MATRIX": matrix}, out=out)
    session.client()
    A = load_matrix(check_readable(matrix), backend=session.backend)
    start = time.perf_counter()
    inner = inner_iter if inner_iter == "auto" else int(inner_iter) if inner_iter.isdigit() else None
    if inner is None or inner == 0:
        raise click.BadParameter(f"must be a positive integer or 'auto', got {inner_iter!r}", param_hint="--inner-iter")
    result = factor(A, rank, solver=solver, init=init, max_iter=max_iter, tol=tol, inner_iter=inner, alpha_W=alpha_w,
                    alpha_H=alpha_h, l1_ratio=l1_ratio, dtype=dtype, layout=layout, random_state=seed,
                    checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume)
    H = np.asarray(to_numpy(result.H.compute()))
    elapsed = time.perf_counter() - start
    hist = result.history
    data = {"components": (("component", "feature"), H)}
    if not no_w:
        data["W"] = (("sample", "component"), np.asarray(to_numpy(result.W.compute())))
    for name in ("relative_error", "error", "violation", "time", "bytes"):
        data[name] = (("iteration",), hist[name].values)
    ds = xr.Dataset(data, coords={"iteration": hist.iteration.values},
                    attrs=dict(hist.attrs, source=matrix, n_iter=result.n_iter,
                               reconstruction_err=result.reconstruction_err))
    with files:
        write_netcdf(ds, files["--out"])
    click.echo(f"{A.shape[0]} x {A.shape[1]}, rank {rank} ({solver}): {result.n_iter} iterations in "
               f"{elapsed:.2f} s, relative error {float(hist.relative_error[-1]):.6g}"
               f"{'' if result.converged else ' (not converged)'}")
    click.echo(f"wrote {out}")


@cli.command()
@click.argument("matrix", type=click.Path(dir_okay=False))
@click.option("--components", "-k", type=click.IntRange(min=1), required=True, help="Number of components.")
@click.option("--solver", type=click.Choice(["auto", "tsqr", "covariance_eigh", "randomized"]), default="auto",
              show_default=True)
@click.option("--no-center", is_flag=True, help="Truncated SVD (no centring; for sparse term counts, LSA).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--transform", type=click.Path(dir_okay=False), default=None,
              help="Also write the projected rows (n_samples x k) to this .npy file.")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="netCDF with the components (component x feature), explained variance and its ratio.")
@click.pass_obj
def pca(session: Session, matrix: str, components: int, solver: str, no_center: bool, seed: int,
        transform: str | None, out: str) -> None:
    """Principal components of MATRIX (.npy, .npz dense or sparse, .mtx, .csv): rows are samples."""
    from ..backend import to_numpy
    from ..datasets import load_matrix
    from ..decomposition import PCA, TruncatedSVD

    files = outputs({"MATRIX": matrix}, out=out, transform=transform)
    session.client()
    A = load_matrix(check_readable(matrix), backend=session.backend)
    cls = TruncatedSVD if no_center else PCA
    start = time.perf_counter()
    model = cls(components, svd_solver=solver, random_state=seed).fit(A)
    elapsed = time.perf_counter() - start
    ratio = np.asarray(to_numpy(model.explained_variance_ratio_))
    click.echo(f"{cls.__name__} of {A.shape[0]} x {A.shape[1]} ({model.svd_solver_}) in {elapsed:.2f} s; "
               f"explained variance ratio {', '.join(f'{r:.4f}' for r in ratio[:5])}"
               f"{' ...' if ratio.shape[0] > 5 else ''} (total {ratio.sum():.4f})")
    with files:                                     # both files, or neither
        write_netcdf(model.results_, files["--out"])
        if transform:
            Z = model.transform(A)
            np.save(files["--transform"], np.asarray(to_numpy(Z.compute() if hasattr(Z, "compute") else Z)))
    if transform:
        click.echo(f"wrote {transform}")
    click.echo(f"wrote {out}")
