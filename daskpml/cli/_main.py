"""The ``daskpml`` click group: global options, error reporting, ``info``."""

from __future__ import annotations

import copy
import functools
import os
import platform
from importlib import metadata
from typing import Any

import click

from .. import __version__
from .._checkpoint import read_manifest
from .._files import DataFormatError, Outputs, check_writable
from ..backend import gpu_count
from ..runtime import connect, dashboard_link, shutdown

# errors that carry a message written for the user: shown without a traceback
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, PermissionError, IsADirectoryError,
               ConnectionError, ImportError, DataFormatError)


class Session:
    """What the global options ask for; connects on first use."""

    def __init__(self, scheduler: str | None, gpu: bool, workers: int | None, threads: int | None) -> None:
        self.scheduler, self.gpu, self.workers, self.threads = scheduler, gpu, workers, threads
        self._client = None

    def client(self) -> Any:
        if self._client is None:
            self._client = connect(self.scheduler, gpu=self.gpu, n_workers=self.workers,
                                   threads_per_worker=self.threads)
        return self._client

    @property
    def backend(self) -> str | None:
        return "cupy" if self.gpu else None


def outputs(inputs: dict[str, str | None], **named: str | None) -> Outputs:
    """The command's output files (``out="m.nc"`` is ``--out``), checked before any work starts:
    each can be written and none is an input or another output; written all or nothing."""
    return Outputs({"--" + k.replace("_", "-"): v for k, v in named.items()}, inputs)


def check_checkpoint(path: str | None, resume: bool) -> None:
    """``--checkpoint``/``--resume`` before any work: the folder can be written, ``--resume``
    names one; a resume that finds no snapshot says that it starts from the beginning."""
    if path is None:
        if resume:
            raise click.UsageError("--resume needs --checkpoint DIR (the folder of the snapshots to go on from).")
        return
    if os.path.exists(path) and not os.path.isdir(path):
        raise click.UsageError(f"--checkpoint {path} is a file, not a folder; name a folder for the snapshots.")
    if os.path.isdir(path):
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(f"cannot write snapshots in --checkpoint {path}: permission denied; name "
                                  "another folder or fix its permissions.")
    else:
        check_writable(path, "--checkpoint")
    if resume:
        exists = os.path.isdir(path)
        found = exists and read_manifest(path)[0] is not None
        if not found:
            why = "holds no snapshot" if exists else "does not exist"
            click.echo(f"daskpml: --resume: the checkpoint folder {path} {why}; starting from the beginning.",
                       err=True)


def checkpoint_options(every: int, unit: str) -> Any:
    """``--checkpoint DIR``, ``--checkpoint-every K`` and ``--resume`` for a long command; the
    folder is checked (:func:`check_checkpoint`) before the command runs."""

    def add(function: Any) -> Any:
        @functools.wraps(function)
        def command(*args: Any, **kwargs: Any) -> Any:
            check_checkpoint(kwargs.get("checkpoint"), bool(kwargs.get("resume")))
            return function(*args, **kwargs)

        command = click.option("--resume", is_flag=True,
                               help="Continue from the newest snapshot in --checkpoint (same data and settings).")(command)
        command = click.option("--checkpoint-every", type=click.IntRange(min=1), default=every, show_default=True,
                               help=f"{unit.capitalize()} between snapshots.")(command)
        return click.option("--checkpoint", type=click.Path(file_okay=False), default=None,
                            help=f"Directory for snapshots, every --checkpoint-every {unit} (see --resume).")(command)

    return add


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as err:
            raise click.ClickException(str(err)) from err


@click.group(cls=_Group, name="daskpml", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--scheduler", metavar="ADDRESS", default=None,
              help="Scheduler address (from `dask scheduler`), e.g. tcp://127.0.0.1:8786. "
                   "Default: DASK_SCHEDULER_ADDRESS, then the embedded local cluster.")
@click.option("--gpu", is_flag=True, help="Use CuPy arrays and a LocalCUDACluster (needs daskpml[gpu]).")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Workers of the embedded cluster.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Threads per worker of the embedded cluster.")
@click.version_option(__version__, prog_name="daskpml")
@click.pass_context
def cli(ctx: click.Context, scheduler: str | None, gpu: bool, workers: int | None, threads: int | None) -> None:
    """daskpml: parallel machine learning on Dask clusters, on CPUs and GPUs."""
    ctx.obj = Session(scheduler, gpu, workers, threads)
    ctx.call_on_close(shutdown)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


@cli.command()
@click.option("--no-cluster", is_flag=True, help="Do not connect to (or start) a cluster.")
@click.pass_obj
def info(session: Session, no_cluster: bool) -> None:
    """Versions, available backends and GPUs, cluster address and dashboard link."""
    rows = [("daskpml", __version__), ("python", platform.python_version())]
    rows += [(d, _version(d)) for d in ("dask", "distributed", "numpy", "scipy", "xarray", "scikit-learn", "click")]
    cupy_version = _version("cupy") if _version("cupy") != "not installed" else _version("cupy-cuda12x")
    n_gpus = gpu_count()
    rows += [("backend numpy", "available"),
             ("backend cupy", f"{cupy_version}, {n_gpus} GPU(s)" if cupy_version != "not installed" else "not installed"),
             ("dask-cuda", _version("dask-cuda"))]
    if not no_cluster:
        client = session.client()
        workers = client.nthreads()
        threads = sum(workers.values())
        rows += [("scheduler", client.scheduler.address), ("dashboard", dashboard_link(client) or "none"),
                 ("workers", f"{len(workers)} ({threads} threads)")]
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        click.echo(f"{key:<{width}}  {value}")


from . import _datasets, _decomposition, _demo, _gnn, _linear, _mcl, _perf, _spectral, _svm  # noqa: E402,F401  (register the subcommands)

# ``dask pml ...``: dask's CLI adds entry-point groups under their own name
dask_cli = copy.copy(cli)
dask_cli.name = "pml"
