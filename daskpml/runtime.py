"""Connecting to a Dask cluster, and showing progress.

:func:`connect` finds the cluster in this order:

1. an explicit ``address``;
2. the environment variable ``DASK_SCHEDULER_ADDRESS``;
3. the configuration key ``daskpml.scheduler-address``;
4. an already running default :class:`distributed.Client`;
5. a new :class:`distributed.LocalCluster` (the *embedded default*), or
   :class:`dask_cuda.LocalCUDACluster` with ``gpu=True``.

The embedded cluster is started once per process and reused.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import importlib.util
import multiprocessing
import os
import sys
import time
import warnings
from concurrent.futures import CancelledError
from typing import Any, Iterator

import dask
from dask.base import tokenize
import dask.array as da
from dask.array.core import normalize_chunks
from dask.highlevelgraph import HighLevelGraph
from dask.utils import parse_timedelta
from distributed import Client, KilledWorker, LocalCluster, progress, wait

from . import _config
from ._progress import in_notebook
from .backend import nbytes

__all__ = ["WorkerLostError", "active_client", "announce", "check_address", "check_main_guard", "connect", "current_client", "dashboard_link",
           "distribute_rows", "gather_watching", "mute_cluster_logs", "muted_cluster_logs", "persist_with_progress",
           "scatter", "scatter_blocks", "scatter_client", "shutdown", "total_threads", "worker_errors"]

_embedded: dict[tuple, Any] = {}
_announced: set[str] = set()


def _resolve_address(address: str | None) -> tuple[str | None, str]:
    if address is not None:
        return address, "argument"
    env = os.environ.get("DASK_SCHEDULER_ADDRESS")
    if env:
        return env, "DASK_SCHEDULER_ADDRESS"
    configured = _config.get("scheduler-address")
    if configured:
        return configured, "config daskpml.scheduler-address"
    return None, ""


def comm_schemes() -> list[str]:
    """The address schemes Distributed can use here: its own (tcp, tls, ws, wss, inproc) and those
    installed packages register (``ucx`` and ``ucxx`` with distributed-ucxx)."""
    from importlib.metadata import entry_points

    from distributed.comm.registry import backends

    return sorted(set(backends) | {ep.name for ep in entry_points(group="distributed.comm.backends")})


def check_address(address: str, source: str = "argument") -> str:
    """``address`` if it can name a scheduler, else a ValueError saying what is wrong with it
    (an empty string, the dashboard's http:// link, an unknown scheme, a port out of range, a
    host name that does not resolve), at once instead of after the connect timeout.

    Parameters
    ----------
    address : str
        A scheduler address such as ``tcp://127.0.0.1:8786``.
    source : str
        What gave the address, for the message (an option name).

    Returns
    -------
    address : str
        The address, unchanged.

    Examples
    --------
    >>> check_address("tcp://127.0.0.1:8786")
    'tcp://127.0.0.1:8786'
    """
    import socket

    from distributed.comm.addressing import parse_address, parse_host_port

    example = "for example tcp://127.0.0.1:8786 (what `dask scheduler` prints)"
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"the scheduler address from {source} is empty; give one, {example}, or none to start the "
                         "embedded local cluster.")
    try:
        scheme, location = parse_address(address.strip())
    except ValueError as err:
        raise ValueError(f"the scheduler address {address!r} (from {source}) is malformed ({err}); {example}.") from err
    if scheme in ("http", "https"):
        raise ValueError(f"{address!r} (from {source}) is a web address, like the dashboard's link; the scheduler "
                         f"itself listens on tcp://HOST:PORT, {example}.")
    schemes = comm_schemes()
    if scheme not in schemes:
        hint = " (UCX needs the distributed-ucxx package: pip install distributed-ucxx-cu12)" \
            if scheme in ("ucx", "ucxx") else ""
        raise ValueError(f"the scheduler address {address!r} (from {source}) has the unknown scheme {scheme!r}"
                         f"{hint}; use one of {', '.join(s + '://' for s in schemes)}, {example}.")
    if scheme == "inproc":
        return address
    try:
        host, port = parse_host_port(location, 8786)
    except ValueError as err:
        raise ValueError(f"the scheduler address {address!r} (from {source}) is malformed ({err}); {example}.") from err
    if not 0 < int(port) < 65536:
        raise ValueError(f"the scheduler address {address!r} (from {source}) has the port {port}, which is not in "
                         f"1..65535; {example}.")
    try:
        socket.getaddrinfo(host, int(port))
    except (socket.gaierror, UnicodeError) as err:
        raise ValueError(f"the host {host!r} in the scheduler address {address!r} (from {source}) does not resolve "
                         f"({err.args[-1]}); check its spelling, {example}.") from err
    return address


def _connect_address(address: str, timeout: float, source: str) -> Client:
    check_address(address, source)
    try:
        return Client(address, timeout=timeout, set_as_default=True)
    except (OSError, TimeoutError, ValueError) as err:
        raise ConnectionError(
            f"No dask scheduler answered at {address!r} (from {source}) within {timeout:g} s. "
            f"Start one with `dask scheduler` and workers with `dask worker {address}`, "
            "or fix the address (for example tcp://127.0.0.1:8786)."
        ) from err


GUARD_FIX = ("Put the code that uses daskpml under `if __name__ == \"__main__\":` (worker processes start by "
             "importing the script again), or start the cluster with processes=False.")


def _guarded_lines(path: str) -> list[tuple[int, int]]:
    """Line ranges of the ``if __name__ == "__main__":`` blocks of a script."""
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return []
    ranges = []
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            names = {getattr(n, "id", None) for n in [node.test.left, *node.test.comparators]}
            values = {getattr(n, "value", None) for n in [node.test.left, *node.test.comparators]}
            if "__name__" in names and "__main__" in values:
                ranges.append((node.lineno, node.end_lineno or node.lineno))
    return ranges


def check_main_guard() -> None:
    """Refuse to start worker processes from the top level of a script that has no
    ``if __name__ == "__main__":`` guard around the call: every spawned worker would import
    the script again, start a cluster of its own and fail with pages of tracebacks.

    Examples
    --------
    >>> check_main_guard()            # in an interactive session: nothing to say
    """
    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(f"daskpml started a cluster while a worker process was importing the script. "
                           f"{GUARD_FIX}")
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if not path or dask.config.get("distributed.worker.multiprocessing-method", "spawn") == "fork":
        return                                   # an interactive session, or workers that are not spawned
    spec = getattr(main, "__spec__", None)
    name = getattr(spec, "name", None) or ""
    if name == "__main__" or name.endswith(".__main__"):
        return                                   # `python -m package`: spawn does not import it again
    frame, top = sys._getframe(1), None
    while frame is not None:                     # the script's own top-level frame, if it is running
        if frame.f_globals is vars(main) and frame.f_code.co_name == "<module>":
            top = frame
        frame = frame.f_back
    if top is None:
        return
    line = top.f_lineno
    if not any(lo <= line <= hi for lo, hi in _guarded_lines(path)):
        raise RuntimeError(f"{os.path.basename(path)}, line {line}: daskpml starts worker processes here, at the "
                           f"top level of the script. {GUARD_FIX}")


def _start_local(gpu: bool, n_workers: int | None, threads_per_worker: int | None,
                 processes: bool | None, **kwargs: Any) -> Client:
    cfg = _config.get("local-cluster") or {}
    n_workers = n_workers if n_workers is not None else cfg.get("n-workers")
    threads = threads_per_worker if threads_per_worker is not None else cfg.get("threads-per-worker")
    key = (gpu, n_workers, threads, processes, tuple(sorted(kwargs.items())))
    cluster = _embedded.get(key)
    if cluster is None or cluster.status.name in ("closed", "closing"):
        if gpu:
            try:
                from dask_cuda import LocalCUDACluster
            except ImportError as err:
                raise ImportError(
                    "gpu=True needs the package 'dask-cuda' (and CuPy), which could not be "
                    f"imported ({err}); install them with pip install 'daskpml[gpu]' or "
                    "conda env create -f environment-gpu.yml."
                ) from err
            kwargs.setdefault("dashboard_address", cfg.get("dashboard-address", ":8787"))
            if threads is not None:
                kwargs["threads_per_worker"] = threads
            cluster = LocalCUDACluster(**kwargs)
        else:
            kwargs.setdefault("dashboard_address", cfg.get("dashboard-address", ":8787"))
            procs = processes if processes is not None else bool(cfg.get("processes", True))
            if procs:
                check_main_guard()
                kwargs.setdefault("preload", ["daskpml._worker_setup"])    # Ctrl-C is the client's
            with warnings.catch_warnings():
                # the dashboard moves to a free port when 8787 is taken; the link printed says where
                warnings.filterwarnings("ignore", message="Port .* is already in use", category=UserWarning)
                cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads,
                                       processes=procs, **kwargs)
        if not _embedded:
            atexit.register(shutdown)       # closed quietly at exit, before distributed's own handler
        _embedded[key] = cluster
    return Client(cluster, set_as_default=True)


def connect(address: str | None = None, *, gpu: bool = False, n_workers: int | None = None,
            threads_per_worker: int | None = None, processes: bool | None = None,
            timeout: str | float | None = None, **cluster_kwargs: Any) -> Client:
    """Connect to a Dask cluster, starting the embedded local one if none is named.

    Parameters
    ----------
    address : str, optional
        Scheduler address such as ``"tcp://127.0.0.1:8786"`` (from ``dask scheduler``).
    gpu : bool
        Start :class:`dask_cuda.LocalCUDACluster` (one worker per GPU) when a new
        cluster is needed. Fails with a message naming the missing package
        without dask-cuda.
    n_workers, threads_per_worker, processes : optional
        Layout of a new local cluster (defaults from ``daskpml.local-cluster``).
    timeout : str or float, optional
        How long to wait for a named scheduler (default ``daskpml.connect-timeout``).
    **cluster_kwargs
        Passed on to the new local cluster.

    Returns
    -------
    distributed.Client
        Set as the default client, so dask computations run on it.

    Examples
    --------
    >>> client = connect(n_workers=2, threads_per_worker=1)   # doctest: +SKIP
    >>> client = connect("tcp://10.0.0.5:8786")               # doctest: +SKIP
    """
    timeout_s = parse_timedelta(timeout if timeout is not None else _config.get("connect-timeout"))
    if gpu:
        from .backend import import_cupy

        import_cupy()
    resolved, source = _resolve_address(address)
    if resolved is not None:
        client = _connect_address(resolved, timeout_s, source)
    else:
        client = current_client()
        if client is None:
            client = _start_local(gpu, n_workers, threads_per_worker, processes, **cluster_kwargs)
    announce(client)
    return client


def dashboard_link(client: Client) -> str | None:
    """The dashboard address of ``client``'s cluster (``None`` if it has none).

    Parameters
    ----------
    client : distributed.Client
        The client of the cluster.

    Returns
    -------
    link : str or None
        The dashboard's URL.

    Examples
    --------
    >>> from distributed import Client, LocalCluster
    >>> with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as c, Client(c) as client:
    ...     print(dashboard_link(client))                       # doctest: +ELLIPSIS
    http...
    """
    try:
        return client.dashboard_link
    except Exception:  # the scheduler may run without a dashboard
        return None


def announce(client: Client, file: Any = None) -> None:
    """Print the dashboard link of ``client``'s scheduler, once per scheduler.

    Parameters
    ----------
    client : distributed.Client
        The client of the cluster.
    file : file-like, optional
        Where to print (default standard error).

    Examples
    --------
    >>> from distributed import Client, LocalCluster
    >>> with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as c, Client(c) as client:
    ...     announce(client)                                    # doctest: +ELLIPSIS
    daskpml: connected to ...
    """
    addr = client.scheduler.address if client.scheduler is not None else repr(client)
    if addr in _announced or not _config.get("print-dashboard"):
        return
    _announced.add(addr)
    link = dashboard_link(client) or "not available"
    print(f"daskpml: connected to {addr}; dashboard: {link}", file=file or sys.stdout, flush=True)


def current_client() -> Client | None:
    """The default distributed client, or ``None`` when dask runs without one.

    Returns
    -------
    client : distributed.Client or None
        The default client.

    Examples
    --------
    >>> current_client() is None or current_client().status == "running"
    True
    """
    try:
        return Client.current()
    except ValueError:
        return None


def active_client() -> Client | None:
    """The default client when it is also dask's active scheduler; ``None`` when dask computes
    without it (no client, or ``dask.config.set(scheduler="sync"/"threads")`` in force).

    Returns
    -------
    client : distributed.Client or None
        The client that computations go to.

    Examples
    --------
    >>> import dask
    >>> with dask.config.set(scheduler="sync"):
    ...     active_client() is None
    True
    """
    client = current_client()
    if client is None:
        return None
    scheduler = dask.base.get_scheduler()
    return client if getattr(scheduler, "__self__", None) is client else None


def scatter_client(size: int = 0, threshold: int = 0) -> Client | None:
    """The client to scatter ``size`` bytes of in-memory data with (sent once to the workers,
    not pickled into task graphs), or None to embed it in the graph: when no client runs, when
    dask's ``scheduler`` setting picks a local scheduler (which cannot read futures), or when
    ``size`` is below ``threshold``.

    Parameters
    ----------
    size : int, default 0
        Bytes to send.
    threshold : int, default 0
        Bytes below which the data are embedded in the graph instead.

    Returns
    -------
    client : distributed.Client or None
        The client to scatter with.

    Examples
    --------
    >>> scatter_client(10**9, 1) is None                # no client running here
    True
    """
    client = current_client()
    if client is None or dask.config.get("scheduler", None) not in (None, "dask.distributed"):
        return None
    return client if size >= threshold else None


def scatter(client: Client, blocks: list, keys: list | None = None) -> list:
    """``client.scatter(blocks)``, the futures named by ``keys`` when given.

    A collection whose graph maps each key to the future of that same key is already persisted,
    so its futures live as long as the collection; a graph that aliased other keys to them would
    let them be released after a persist. Scattered data still have one copy that dask cannot
    recompute (a second one would not last: the Active Memory Manager's ReduceReplicas policy,
    on by default, drops it within seconds): data that must survive a lost worker are read by
    the workers themselves (:mod:`daskpml.datasets`' chunked readers).

    Parameters
    ----------
    client : distributed.Client
        The client of the cluster.
    blocks : list
        In-memory blocks.
    keys : list, optional
        The keys to scatter them under.

    Returns
    -------
    futures : list of distributed.Future
        One per block.

    Examples
    --------
    >>> import numpy as np
    >>> from distributed import Client, LocalCluster
    >>> with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as c, Client(c) as client:
    ...     futures = scatter(client, [np.ones(3)], ["ones-0"])
    ...     print(futures[0].key)
    ones-0
    """
    if keys is None:
        return client.scatter(list(blocks), hash=False)
    by_key = client.scatter(dict(zip(keys, blocks)))
    return [by_key[k] for k in keys]


def scatter_blocks(blocks: list, keys: list | None = None) -> list:
    """In-memory blocks as they should enter a task graph: on a distributed client, and when
    they hold ``daskpml.scatter-bytes`` (4 MiB) or more together, scattered to the workers (sent once, spread over them,
    under ``keys``: :func:`scatter`) and returned as futures; otherwise returned as they are
    (embedded in the graph, where dask can always read them again).

    Parameters
    ----------
    blocks : list
        In-memory blocks.
    keys : list, optional
        The keys to scatter them under.

    Returns
    -------
    blocks : list
        Futures, or the blocks themselves.

    Examples
    --------
    >>> import numpy as np
    >>> blocks = scatter_blocks([np.ones(3)])          # no client: returned as they are
    >>> type(blocks[0]).__name__
    'ndarray'
    """
    client = scatter_client(sum(nbytes(b) for b in blocks), int(_config.get("scatter-bytes")))
    return list(blocks) if client is None else scatter(client, list(blocks), keys)


def distribute_rows(x: Any, chunks: Any) -> da.Array:
    """An in-memory NumPy/CuPy array as a dask array in row blocks of ``chunks`` (an int, a
    tuple of sizes or "auto"). Large arrays on a distributed client are scattered block by block
    instead of being pickled into the task graph (what dask's "Sending large graph" warning asks).

    Parameters
    ----------
    x : array
        An in-memory NumPy or CuPy array (or sparse matrix).
    chunks : int, tuple of int or "auto"
        Row blocks.

    Returns
    -------
    x : dask.array.Array
        The array in row blocks.

    Examples
    --------
    >>> import numpy as np
    >>> distribute_rows(np.ones((10, 2)), 4).chunks
    ((4, 4, 2), (2,))
    """
    normalized = normalize_chunks((chunks,) + (-1,) * (x.ndim - 1), x.shape, dtype=x.dtype)
    client = scatter_client(nbytes(x), int(_config.get("scatter-bytes")))
    if client is None:
        return da.from_array(x, chunks=normalized)
    bounds = [0]
    for r in normalized[0]:
        bounds.append(bounds[-1] + r)
    name = f"scattered-{tokenize(x, normalized)}"
    keys = [(name, i) + (0,) * (x.ndim - 1) for i in range(len(normalized[0]))]
    futures = scatter(client, [x[a:b] for a, b in zip(bounds[:-1], bounds[1:])], keys)
    dsk = dict(zip(keys, futures))
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[])
    return da.Array(graph, name, chunks=normalized, dtype=x.dtype, meta=x[:0])


def total_threads() -> int:
    """Worker threads of the default client, or this machine's cores without one.

    Returns
    -------
    threads : int
        Threads of the default client's workers, or of this machine without one.

    Examples
    --------
    >>> total_threads() >= 1
    True
    """
    client = current_client()
    if client is not None:
        try:
            return max(1, sum(client.nthreads().values()))
        except Exception:  # pragma: no cover - a client that lost its scheduler
            return 1
    return os.cpu_count() or 1


def persist_with_progress(*collections: Any, show: bool | None = None) -> tuple:
    """Persist dask collections, showing a progress bar while they compute.

    On a distributed client the bar is :func:`distributed.progress` (a text bar
    in a console, a widget in Jupyter, and the dashboard's progress page); on
    the local schedulers it is :class:`dask.diagnostics.ProgressBar`.
    Returns the persisted collections, fully computed.

    Parameters
    ----------
    *collections : dask collections
        What to persist.
    show : bool, optional
        Show the bar (default ``daskpml.progress``, on a terminal or in Jupyter).

    Returns
    -------
    collections : tuple
        The persisted collections.

    Examples
    --------
    >>> import dask.array as da
    >>> (x,) = persist_with_progress(da.ones(10, chunks=5), show=False)
    >>> int(x.sum().compute())
    10
    """
    show = _config.get("progress") if show is None else show
    client = current_client()
    if client is not None:
        persisted = client.persist(list(collections))
        if show and not (sys.stdout.isatty() or in_notebook()):
            _log_progress(persisted)           # a log: a line every few seconds, not one long \r line
        elif show:
            # In Jupyter distributed draws an ipywidgets bar; without ipywidgets, its text bar.
            progress(persisted, notebook=in_notebook() and importlib.util.find_spec("ipywidgets") is not None)
            print(file=sys.stdout, flush=True)
        wait(persisted)
        return tuple(persisted)
    if show:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            return dask.persist(*collections)
    return dask.persist(*collections)


#: loggers whose messages during a deliberate shutdown only describe the shutdown itself
#: (a worker's heartbeat to a closing scheduler, a nanny killing a slow worker, cancelled tasks)
SHUTDOWN_LOGGERS = ("distributed", "asyncio", "tornado")


def mute_cluster_logs() -> None:
    """Silence :data:`SHUTDOWN_LOGGERS` in this process (also run on the workers at shutdown).

    Examples
    --------
    >>> mute_cluster_logs()
    """
    import logging

    for name in SHUTDOWN_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)


@contextlib.contextmanager
def muted_cluster_logs() -> Iterator[None]:
    """:data:`SHUTDOWN_LOGGERS` silenced while the block runs (and while the tasks it left are
    collected: asyncio reports a task's unretrieved exception when the task is garbage collected).

    Examples
    --------
    >>> with muted_cluster_logs():
    ...     pass
    """
    import gc
    import logging

    loggers = [logging.getLogger(name) for name in SHUTDOWN_LOGGERS]
    levels = [log.level for log in loggers]
    mute_cluster_logs()
    try:
        yield
        gc.collect()
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)


def _log_progress(collections: list) -> None:
    """Wait for persisted ``collections``, printing the share of their futures done every
    ``daskpml.progress-interval`` seconds (the first line at once)."""
    from distributed import futures_of

    from ._progress import interval

    futures = futures_of(collections)
    start = time.perf_counter()
    every = interval()
    while True:
        done = sum(f.done() for f in futures)
        print(f"computing: {done}/{len(futures)} blocks ({time.perf_counter() - start:.0f} s)", file=sys.stderr,
              flush=True)
        if done == len(futures):
            return
        try:
            wait(futures, timeout=every)
        except TimeoutError:
            continue


def shutdown() -> None:
    """Close the default client and the embedded clusters this process started: the workers'
    and this process's cluster logs are muted first, so that the messages of an orderly close
    (heartbeats to a closing scheduler, tasks cancelled in flight, a nanny killing a slow
    worker) do not reach the user as errors.

    Examples
    --------
    >>> shutdown()                   # nothing to close when no embedded cluster runs
    """
    client = current_client()
    with muted_cluster_logs():
        if client is not None and client.cluster in _embedded.values():
            if client.status == "running":
                with contextlib.suppress(Exception):
                    client.run(mute_cluster_logs)
            client.close()
        for key, cluster in list(_embedded.items()):
            with contextlib.suppress(Exception):
                cluster.close()
            del _embedded[key]
    # clients closed out of order restore each other's settings; with none left,
    # dask must fall back to its local schedulers
    if current_client() is None and dask.config.get("scheduler", None) == "dask.distributed":
        dask.config.set(scheduler=None)


class WorkerLostError(RuntimeError):
    """Workers that held state no other worker can rebuild left the cluster mid-run.

    Examples
    --------
    >>> issubclass(WorkerLostError, RuntimeError)
    True
    """


def gather_watching(client: Client, futures: Any, workers: Any, *, what: str, fix: str,
                    poll: float = 2.0) -> Any:
    """``client.gather(futures)``, but raise :class:`WorkerLostError` (naming ``what`` was lost
    and ``fix``) as soon as one of ``workers`` has left the cluster, instead of waiting for
    tasks pinned to a worker that will never come back.

    Parameters
    ----------
    client : distributed.Client
        The client of the cluster.
    futures : list of distributed.Future
        What to gather.
    workers : sequence of str, optional
        The workers the work is pinned to (default all).
    what : str
        What is lost if a worker leaves, for the message.
    fix : str
        What the user should do then, for the message.
    poll : float, default 2.0
        Seconds between checks of the cluster's workers.

    Returns
    -------
    results : list
        What the futures hold.

    Examples
    --------
    >>> from distributed import Client, LocalCluster
    >>> with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as c, Client(c) as client:
    ...     gather_watching(client, [client.submit(sum, [1, 2])], list(client.scheduler_info()["workers"]),
    ...                     what="the sum", fix="run again")
    [3]
    """
    watched = set(workers)

    def check(cause: BaseException | None = None) -> None:
        alive = set(client.scheduler_info()["workers"])
        lost = sorted(watched - alive)
        if lost:
            raise WorkerLostError(f"worker {', '.join(lost)} left the cluster and {what} was lost with it. "
                                  f"{fix}") from cause

    try:
        while True:
            try:
                wait(futures, timeout=poll)
                break
            except TimeoutError:
                check()
        return client.gather(futures)
    except WorkerLostError:
        raise
    except Exception as exc:
        check(exc)
        raise


@contextlib.contextmanager
def worker_errors(what: str) -> Iterator[None]:
    """Turn the cluster's terse errors into ones that say what happened and what to do:
    a task that killed every worker it ran on (most often: a chunk larger than a worker's
    memory limit), and data released by ``client.restart()`` or lost with a worker.

    Parameters
    ----------
    what : str
        What is lost if a worker leaves, for the message.

    Examples
    --------
    >>> with worker_errors("the fit"):
    ...     pass
    """
    try:
        yield
    except KilledWorker as exc:
        raise WorkerLostError(
            f"{what} stopped: a task killed every worker that ran it ({exc}). The usual cause is a chunk "
            "too large for a worker's memory limit: use smaller chunks (e.g. X.rechunk({0: 'auto'}) or a "
            "smaller chunks= argument) or give the workers more memory (dask worker --memory-limit), then run "
            "again.") from exc
    except CancelledError as exc:
        raise WorkerLostError(
            f"{what} stopped: data it had placed on the cluster were lost or released ({exc}); this happens "
            "when client.restart() runs during the work or a worker holding the only copy dies. Run it again, "
            "or with checkpoint=path, resume=True to continue from the last snapshot.") from exc
