"""``daskpml train`` and ``daskpml predict``: linear models from the command line."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
import numpy as np
import xarray as xr

from ..backend import to_numpy
from .._files import DataFormatError, check_readable, describe_head, open_npz, read_head
from ..results import read_netcdf, write_netcdf
from ..runtime import persist_with_progress
from ._main import Session, checkpoint_options, cli, outputs

MODELS = {"logistic": "LogisticRegression", "linear": "LinearRegression", "ridge": "Ridge", "lasso": "Lasso",
          "elasticnet": "ElasticNet", "svm": "LinearSVC"}


def load_xy(path: str, target: str | None = None) -> tuple[Any, Any]:
    """``(X, y)`` from svmlight/LIBSVM (``.svm``, ``.svmlight``, ``.libsvm``, ``.txt``, also ``.gz``),
    ``.npz`` (arrays ``X`` and ``y``) or ``.csv`` (the target is the last column unless ``target``
    names or numbers another; a header line is detected)."""
    from ..datasets import load_csv, load_svmlight, read_array

    check_readable(path)
    name = path.lower()
    if name.endswith(".npz"):
        with open_npz(path) as f:
            if "X" not in f or "y" not in f:
                raise DataFormatError(f"{path} must hold arrays named 'X' and 'y' (np.savez(path, X=X, y=y)); "
                                      f"it has {sorted(f.files)}.")
            X = read_array(path, "X")                # large data: the workers read their own rows
            y = None if X is None else read_array(path, "y", like=X)
            return (X, y) if y is not None else (f["X"], f["y"])
    if name.endswith(".csv"):
        return load_csv(path, target)
    return load_svmlight(path)



def _estimator(model: str, params: dict) -> Any:
    from .. import linear_model

    return getattr(linear_model, MODELS[model])(**params)


def _json_params(est: Any) -> dict:
    return {k: v for k, v in est.get_params().items()
            if isinstance(v, (int, float, str, bool, type(None))) and k != "solver_kwargs"}


def model_dataset(est: Any, model: str) -> xr.Dataset:
    """A fitted linear model as an xarray Dataset (coefficients, intercepts, classes, history)."""
    coef = np.atleast_2d(est.coef_)
    ds = xr.Dataset({"coef": (("output", "feature"), coef),
                     "intercept": (("output",), np.atleast_1d(est.intercept_).astype(float))},
                    attrs={"model": model, "params": json.dumps(_json_params(est)),
                           "n_features": int(est.n_features_in_), "solver": str(est.solver_),
                           "n_iter": int(est.n_iter_)})
    if hasattr(est, "classes_"):
        ds["classes"] = ("class", np.asarray(est.classes_))
    for name, var in est.history_.data_vars.items():
        ds[f"history_{name}"] = var.rename({d: f"history_{d}" for d in var.dims})
    return ds


def read_model_file(path: str) -> xr.Dataset:
    """A model file written by ``daskpml train``/``lasso``, or an error saying what the file is."""
    check_readable(path)
    head = read_head(path)
    if not head.startswith((b"CDF", b"\x89HDF")):
        raise DataFormatError(f"{path} is not a model file (a netCDF file written by `daskpml train` or "
                              f"`daskpml lasso`): its contents are {describe_head(head)}. Give the model first, "
                              "then the data: daskpml predict MODEL.nc DATA.")
    try:
        return read_netcdf(path)
    except (OSError, ValueError) as err:
        raise DataFormatError(f"{path} looks like netCDF but could not be read ({err}); it may be truncated. "
                              "Write it again with `daskpml train ... --out`.") from err


def model_from_dataset(ds: xr.Dataset) -> Any:
    model = ds.attrs.get("model")
    if model not in MODELS:
        raise DataFormatError(f"this file does not hold a daskpml linear model (model={model!r}); "
                              "write one with `daskpml train`.")
    est = _estimator(model, json.loads(ds.attrs["params"]))
    coef = ds["coef"].values
    est.coef_ = coef if "classes" in ds else coef[0]
    est.intercept_ = ds["intercept"].values if "classes" in ds else float(ds["intercept"].values[0])
    if "classes" in ds:
        est.classes_ = ds["classes"].values
    est.n_features_in_ = int(ds.attrs["n_features"])
    return est


def _metric(est: Any, X: Any, y: Any) -> str:
    score = est.score(X, y)
    return f"accuracy {score:.4f}" if hasattr(est, "classes_") else f"R^2 {score:.4f}"


@cli.command()
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--model", type=click.Choice(sorted(MODELS)), default="logistic", show_default=True)
@click.option("--solver", default="auto", show_default=True,
              help="lbfgs, newton, newton_cg, gradient_descent, proximal_gradient, sgd, local_sgd, one_shot_average.")
@click.option("--C", "C", type=float, default=1.0, show_default=True, help="Inverse regularization (logistic, svm).")
@click.option("--alpha", type=float, default=1.0, show_default=True, help="Penalty strength (ridge, lasso, elasticnet).")
@click.option("--penalty", type=click.Choice(["l2", "l1", "elasticnet", "none"]), default="l2", show_default=True,
              help="Penalty of the logistic model.")
@click.option("--l1-ratio", type=float, default=0.5, show_default=True)
@click.option("--max-iter", type=click.IntRange(min=1), default=None)
@click.option("--tol", type=float, default=None)
@click.option("--seed", type=click.IntRange(min=0), default=None, help="Seed of the stochastic solvers.")
@click.option("--target", default=None, help="CSV: name or index of the target column (default: the last).")
@click.option("--quiet", is_flag=True, help="No progress line.")
@checkpoint_options(10, "iterations")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Model file (netCDF).")
@click.pass_obj
def train(session: Session, data: str, model: str, solver: str, C: float, alpha: float, penalty: str,
          l1_ratio: float, max_iter: int | None, tol: float | None, seed: int | None, target: str | None,
          quiet: bool, checkpoint: str | None, checkpoint_every: int, resume: bool, out: str) -> None:
    """Fit a linear model on DATA (svmlight, .npz with X and y, or CSV) and write it to --out."""
    files = outputs({"DATA": data}, out=out)
    session.client()
    X, y = session.on_device(*load_xy(data, target))
    if hasattr(X, "__dask_graph__"):
        X, y = persist_with_progress(X, y, show=not quiet)
    params: dict[str, Any] = {"solver": solver, "random_state": seed, "solver_kwargs": {"progress": not quiet},
                              "checkpoint": checkpoint, "checkpoint_every": checkpoint_every}
    if model in ("logistic", "svm"):
        params["C"] = C
    if model == "logistic":
        params.update(penalty=None if penalty == "none" else penalty, l1_ratio=l1_ratio)
    if model in ("ridge", "lasso", "elasticnet"):
        params["alpha"] = alpha
    if model == "elasticnet":
        params["l1_ratio"] = l1_ratio
    if max_iter is not None:
        params["max_iter"] = max_iter
    if tol is not None:
        params["tol"] = tol
    est = _estimator(model, params)
    start = time.perf_counter()
    est.fit(X, y, resume=resume)
    elapsed = time.perf_counter() - start
    h = est.history_
    with files:
        write_netcdf(model_dataset(est, model), files["--out"])
    click.echo(f"{MODELS[model]} ({est.solver_}): {est.n_iter_} iterations in {elapsed:.2f} s, "
               f"objective {float(h['objective'].values[-1]):.6g}, {int(h['rounds'].values[-1])} rounds, "
               f"{int(h.attrs['total_bytes']):,} bytes; training {_metric(est, X, y)}")
    click.echo(f"wrote {out}")


@cli.command()
@click.argument("model_file", type=click.Path(dir_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--target", default=None, help="CSV: name or index of the target column (default: the last).")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write one prediction per line here (default: standard output).")
@click.pass_obj
def predict(session: Session, model_file: str, data: str, target: str | None, out: str | None) -> None:
    """Predict DATA with a model written by `daskpml train`; prints the accuracy / R^2 against DATA's labels."""
    files = outputs({"MODEL_FILE": model_file, "DATA": data}, out=out)
    est = model_from_dataset(read_model_file(model_file))
    session.client()
    X, y = session.on_device(*load_xy(data, target))
    pred = est.predict(X)
    pred = to_numpy(pred.compute() if hasattr(pred, "compute") else pred)      # labels may be on a GPU
    lines = "\n".join(str(v) for v in pred) + "\n"
    if out:
        with files:
            Path(files["--out"]).write_text(lines)
        click.echo(f"wrote {len(pred)} predictions to {out}")
    else:
        click.echo(lines, nl=False)
    click.echo(f"{_metric(est, X, y)} on {len(pred)} samples", err=out is None)


@cli.command()
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--alpha", type=click.FloatRange(min=0), default=1.0, show_default=True, help="Penalty strength.")
@click.option("--l1-ratio", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="1 is the Lasso; below 1 the elastic net.")
@click.option("--parallel", "-P", default="auto", show_default=True,
              help="Coordinates updated at once: an integer, or 'auto' (d / spectral radius, Bradley et al.).")
@click.option("--blocks", type=click.IntRange(min=1), default=None, help="Column blocks (default: worker threads).")
@click.option("--max-iter", type=click.IntRange(min=1), default=1000, show_default=True, help="Epochs.")
@click.option("--tol", type=click.FloatRange(min=0), default=1e-4, show_default=True,
              help="Duality-gap tolerance relative to ||y - mean(y)||^2 (scikit-learn's).")
@click.option("--no-intercept", is_flag=True)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--target", default=None, help="CSV: name or index of the target column (default: the last).")
@click.option("--quiet", is_flag=True, help="No progress line.")
@checkpoint_options(10, "epochs")
@click.option("--out", required=True, type=click.Path(dir_okay=False),
              help="Model file (netCDF, readable by `daskpml predict`).")
@click.pass_obj
def lasso(session: Session, data: str, alpha: float, l1_ratio: float, parallel: str, blocks: int | None,
          max_iter: int, tol: float, no_intercept: bool, seed: int, target: str | None, quiet: bool,
          checkpoint: str | None, checkpoint_every: int, resume: bool, out: str) -> None:
    """Lasso / elastic net on DATA by Shotgun parallel coordinate descent over column blocks."""
    from ..linear_model import ElasticNet, Lasso

    if parallel != "auto" and not (parallel.isdigit() and int(parallel) > 0):
        raise click.BadParameter(f"must be a positive integer or 'auto', got {parallel!r}", param_hint="--parallel")
    files = outputs({"DATA": data}, out=out)
    session.client()
    X, y = session.on_device(*load_xy(data, target))
    options = {"n_parallel": parallel if parallel == "auto" else int(parallel), "n_blocks": blocks,
               "progress": not quiet}
    common = dict(alpha=alpha, fit_intercept=not no_intercept, solver="shotgun", max_iter=max_iter, tol=tol,
                  random_state=seed, solver_kwargs=options, checkpoint=checkpoint, checkpoint_every=checkpoint_every)
    est = Lasso(**common) if l1_ratio == 1.0 else ElasticNet(l1_ratio=l1_ratio, **common)
    name = "lasso" if l1_ratio == 1.0 else "elasticnet"
    start = time.perf_counter()
    est.fit(X, y, resume=resume)
    elapsed = time.perf_counter() - start
    h = est.history_
    with files:
        write_netcdf(model_dataset(est, name), files["--out"])
    gap = float(h["duality_gap"].values[-1])
    click.echo(f"{MODELS[name]} (shotgun, P = {est.n_parallel_} of {X.shape[1]}): {est.n_iter_} epochs in "
               f"{elapsed:.2f} s, objective {float(h['objective'].values[-1]):.8g}, duality gap {gap:.3g}"
               f"{'' if h.attrs['converged'] else ' (not converged)'}; {np.count_nonzero(est.coef_)} non-zero "
               f"coefficients; training {_metric(est, X, y)}")
    click.echo(f"wrote {out}")
