"""The ``daskpml`` click group: global options, error reporting, ``info``."""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import platform
import re
import shlex
import signal
import threading
import warnings
from importlib import metadata
from typing import Any

import click

from .. import __version__
from .._checkpoint import read_manifest
from .._files import DAMAGED, DataFormatError, Outputs, check_writable
from ..backend import gpu_count, to_backend
from ..runtime import (WorkerLostError, check_address, connect, current_client, dashboard_link, mute_cluster_logs,
                       muted_cluster_logs, shutdown, worker_errors)
from ..validation import NotSymmetricError

# errors that carry a message written for the user: shown without a traceback
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, PermissionError, IsADirectoryError,
               ConnectionError, ImportError, DataFormatError)


class Session:
    """What the global options ask for; connects on first use."""

    def __init__(self, scheduler: str | None, gpu: bool, workers: int | None, threads: int | None) -> None:
        self.scheduler, self.gpu, self.workers, self.threads = scheduler, gpu, workers, threads
        self._client = None
        self._own = False            # whether this command opened the client (and closes it)

    def client(self) -> Any:
        if self._client is None:
            before = current_client()
            self._client = connect(self.scheduler, gpu=self.gpu, n_workers=self.workers,
                                   threads_per_worker=self.threads)
            self._own = self._client is not before
        return self._client

    def close(self) -> None:
        """Close the client this command opened to a named scheduler (the embedded cluster and
        its client are closed by :func:`~daskpml.runtime.shutdown`)."""
        client, self._client = self._client, None
        if client is not None and self._own and client.status != "closed":
            with contextlib.suppress(Exception):
                client.close(timeout=5)

    @property
    def backend(self) -> str | None:
        return "cupy" if self.gpu else None

    def on_device(self, *arrays: Any) -> tuple:
        """The loaded inputs on ``--gpu``'s device (CuPy blocks), or as they are without it."""
        if not self.gpu:
            return arrays
        return tuple(None if a is None else to_backend(a, "cupy") for a in arrays)


def outputs(inputs: dict[str, str | None], files: dict[str, str | None] | None = None,
            **named: str | None) -> Outputs:
    """The command's output files, by name (``files={"TARGET": path}``) or by option (``out="m.nc"``
    is ``--out``), checked before any work starts: each can be written and none is an input or
    another output; written all or nothing."""
    try:
        return Outputs({**(files or {}), **{"--" + k.replace("_", "-"): v for k, v in named.items()}}, inputs)
    except (ValueError, OSError) as err:
        raise click.UsageError(str(err)) from None


def check_checkpoint(path: str | None, resume: bool) -> None:
    """``--checkpoint``/``--resume`` before any work: the folder can be written, ``--resume``
    names one; a resume that finds no snapshot says that it starts from the beginning."""
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta["daskpml.checkpoint"] = path
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


#: the library's messages name Python parameters; the command line names its flags
CLI_WORDS = [
    (r"\(or pass resume=False\)", "(or run without --resume)"),
    (r"pass resume=False to start over", "run without --resume to start over"),
    (r"with checkpoint=path, resume=True to continue", "with --checkpoint DIR, then --resume, to continue"),
    (r"checkpoint=path and then resume=True", "--checkpoint DIR and then --resume"),
    (r"resume=True needs checkpoint='path'", "--resume needs --checkpoint DIR"),
    (r"use smaller chunks \(e\.g\. X\.rechunk\(\{0: 'auto'\}\) or a smaller chunks= argument\) or give", "give"),
]


def cli_message(err: BaseException) -> str:
    """A library error as the command line says it: its flags instead of Python parameters."""
    if isinstance(err, NotSymmetricError):
        return ("the input matrix is not symmetric; this command needs a symmetric matrix (an undirected "
                "graph). Add --symmetrize to use max(A, A.T) (as edge lists are read), or fix the file.")
    text = str(err)
    for pattern, words in CLI_WORDS:
        text = re.sub(pattern, words, text)
    return text


def _lost_scheduler(ctx: click.Context) -> str | None:
    """The address of the scheduler this run was connected to, when the connection is gone."""
    session = ctx.obj if isinstance(ctx.obj, Session) else None
    client = None if session is None else session._client
    if client is None:
        return None
    address = getattr(client.scheduler, "address", None) or session.scheduler or "the scheduler"
    comm = getattr(client, "scheduler_comm", None)
    if client.status in ("running",) and comm is not None and not comm.closed():
        return None
    return address


def error_message(ctx: click.Context, err: BaseException) -> str | None:
    """The one line the command line prints for ``err``, or None for an error that is a bug
    (its traceback is shown)."""
    resume = ("Run the command again" + (" with --resume to go on from the last snapshot"
                                         if ctx.meta.get("daskpml.checkpoint") else "") + ".")
    lost = _lost_scheduler(ctx)
    if lost is not None and not isinstance(err, USER_ERRORS):
        return (f"the connection to the scheduler at {lost} was lost ({type(err).__name__}: {err}). Check that "
                f"`dask scheduler` is still running and reachable, then {resume[0].lower()}{resume[1:]}")
    if isinstance(err, USER_ERRORS + (WorkerLostError,)):
        return cli_message(err)
    if isinstance(err, DAMAGED):
        return (f"a file could not be read to its end ({type(err).__name__}: {err}); it may be truncated or "
                "damaged. Write or copy it again.")
    if isinstance(err, OSError):
        return f"{err}"
    return None


def interrupted_message(ctx: click.Context) -> str:
    """What Ctrl-C leaves behind, and how to go on: one line."""
    argv = ["daskpml", *ctx.meta.get("daskpml.argv", [])]
    if "daskpml.checkpoint" not in ctx.meta:
        return "daskpml: interrupted; nothing was written."
    path = ctx.meta["daskpml.checkpoint"]
    if path is None:
        return ("daskpml: interrupted; nothing was written and no --checkpoint was given (add --checkpoint DIR to "
                "keep snapshots that --resume goes on from).")
    try:
        manifest, directory = read_manifest(path)
    except ValueError as err:
        return f"daskpml: interrupted; the checkpoint in {path} cannot be used: {cli_message(err)}"
    command = shlex.join(argv if "--resume" in argv else argv + ["--resume"])
    if manifest is None:
        return f"daskpml: interrupted before the first snapshot in {path}; run the same command again to start over."
    return (f"daskpml: interrupted; the last snapshot is {directory} (iteration {manifest.get('iteration')}); "
            f"go on from it with: {command}")


def _one_line_warning(message: Any, category: type, filename: str, lineno: int, file: Any = None,
                      line: str | None = None) -> None:
    click.echo(f"daskpml: warning: {message}", err=True)


@contextlib.contextmanager
def _muted_on_interrupt() -> Any:
    """Ctrl-C mutes the cluster's loggers at once, before the interruption unwinds: the client's
    event loop reports the cancelled gathers as it happens, in its own thread."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        mute_cluster_logs()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


class _Group(click.Group):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["daskpml.argv"] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with warnings.catch_warnings(), _muted_on_interrupt(), worker_errors(f"daskpml {ctx.invoked_subcommand}"):
                warnings.showwarning = _one_line_warning
                return super().invoke(ctx)
        except KeyboardInterrupt:
            message = interrupted_message(ctx)
            with muted_cluster_logs():
                ctx.close()
            click.echo(message, err=True)
            raise click.exceptions.Exit(130) from None
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as err:
            message = error_message(ctx, err)
            if message is None:
                raise
            with muted_cluster_logs():
                ctx.close()
            raise click.ClickException(message) from err


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
    if scheduler is not None:
        try:
            check_address(scheduler, "--scheduler")
        except ValueError as err:
            raise click.UsageError(str(err)) from None
    ctx.obj = Session(scheduler, gpu, workers, threads)
    ctx.call_on_close(shutdown)
    ctx.call_on_close(ctx.obj.close)          # runs first (callbacks run last-in, first-out)


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
