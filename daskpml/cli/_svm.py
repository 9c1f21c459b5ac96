"""``daskpml svm``: a kernel SVM trained as a cascade over data partitions."""

from __future__ import annotations

import time

import click
import numpy as np
import xarray as xr

from ..results import write_netcdf
from ._linear import load_xy
from ._main import Session, checkpoint_options, cli, outputs


def svm_dataset(est, source: str) -> xr.Dataset:
    """A fitted CascadeSVC as a Dataset: support vectors, dual coefficients, intercepts, history."""
    sv = est.support_vectors_
    sv = sv.toarray() if hasattr(sv, "toarray") else np.asarray(sv)
    ds = xr.Dataset({"support_vectors": (("support", "feature"), sv),
                     "support_index": (("support",), np.asarray(est.support_, dtype=np.int64)),
                     "dual_coef": (("pair", "support"), np.asarray(est.dual_coef_)),
                     "intercept": (("intercept_pair",), np.asarray(est.intercept_, dtype=float)),
                     "classes": (("class",), np.asarray(est.classes_)),
                     "n_support": (("class",), np.asarray(est.n_support_, dtype=np.int64))},
                    attrs=dict(model="CascadeSVC", source=source, kernel=est.kernel, C=float(est.C),
                               gamma=float(est.gamma_), degree=int(est.degree), coef0=float(est.coef0),
                               objective=float(est.objective_), n_passes=int(est.n_passes_),
                               converged=int(est.converged_)))
    for name, var in est.history_.data_vars.items():
        ds[f"history_{name}"] = var.rename({d: f"history_{d}" for d in var.dims})
    return ds


@cli.command()
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--test", "test", type=click.Path(dir_okay=False), default=None,
              help="Labelled test data (same formats); prints the test accuracy.")
@click.option("--C", "C", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True)
@click.option("--kernel", type=click.Choice(["rbf", "linear", "poly", "sigmoid"]), default="rbf", show_default=True)
@click.option("--gamma", default="scale", show_default=True, help="'scale', 'auto' or a positive number.")
@click.option("--partitions", type=click.IntRange(min=1), default=None,
              help="Leaves of the cascade (default: a power of two >= 2 x worker threads).")
@click.option("--partition", type=click.Choice(["random", "kmeans"]), default="random", show_default=True)
@click.option("--passes", type=click.IntRange(min=1), default=3, show_default=True,
              help="Most passes (the first, then feedback passes).")
@click.option("--solver", type=click.Choice(["auto", "smo", "libsvm"]), default="auto", show_default=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--target", default=None, help="CSV: name or index of the label column (default: the last).")
@click.option("--predictions", type=click.Path(dir_okay=False), default=None,
              help="Write the test rows' predicted labels here, one per line.")
@checkpoint_options(1, "passes")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Model file (netCDF).")
@click.pass_obj
def svm(session: Session, data: str, test: str | None, C: float, kernel: str, gamma: str, partitions: int | None,
        partition: str, passes: int, solver: str, seed: int, target: str | None, predictions: str | None,
        checkpoint: str | None, checkpoint_every: int, resume: bool, out: str) -> None:
    """Train a kernel SVM on DATA (svmlight, .npz with X and y, or CSV) with the Cascade SVM."""
    from ..svm import CascadeSVC

    if gamma not in ("scale", "auto"):
        try:
            gamma = float(gamma)
        except ValueError:
            raise click.BadParameter(f"must be 'scale', 'auto' or a number, got {gamma!r}",
                                     param_hint="--gamma") from None
    if predictions and not test:
        raise click.UsageError("--predictions needs --test (the rows to predict).")
    if session.gpu:
        raise click.UsageError("svm trains with libsvm on the host (CPU only): run it without --gpu; for a "
                               "linear SVM on GPUs: daskpml --gpu train --model svm.")
    files = outputs({"DATA": data, "--test": test}, out=out, predictions=predictions)
    session.client()
    X, y = load_xy(data, target)
    est = CascadeSVC(C=C, kernel=kernel, gamma=gamma, n_partitions=partitions, partition=partition,
                     max_passes=passes, solver=solver, random_state=seed, checkpoint=checkpoint,
                     checkpoint_every=checkpoint_every)
    start = time.perf_counter()
    est.fit(X, y, resume=resume)
    elapsed = time.perf_counter() - start
    objective = "" if np.isnan(est.objective_) else f", dual objective {est.objective_:.8g}"
    click.echo(f"CascadeSVC ({kernel}, C={C}, {int(est.history_.attrs['n_partitions'])} partitions, {partition}): "
               f"{est.n_passes_} pass(es){' (converged)' if est.converged_ else ''} in {elapsed:.2f} s, "
               f"{len(est.support_)} support vectors{objective}")
    with files:                                     # the model and the predictions, or neither
        write_netcdf(svm_dataset(est, data), files["--out"])
        if test:
            if test.lower().endswith((".npz", ".csv")):
                Xt, yt = load_xy(test, target)
            else:                      # svmlight: the test file may end before the last feature
                from ..datasets import load_svmlight

                Xt, yt = load_svmlight(test, n_features=X.shape[1])
            pred = est.predict(Xt)
            pred, yt = (np.asarray(v.compute() if hasattr(v, "compute") else v) for v in (pred, yt))
            click.echo(f"test accuracy {float((pred == yt).mean()):.4f} on {len(pred)} rows")
            if predictions:
                with open(files["--predictions"], "w") as f:
                    f.write("\n".join(str(v) for v in pred) + "\n")
    if predictions:
        click.echo(f"wrote {predictions}")
    click.echo(f"wrote {out}")
