"""SPMD groups on a Distributed cluster: one long-running task per worker that holds the data.

How a group runs:

1. The worker plugin (:class:`CommPlugin`, registered once per client) listens on each worker's
   host for the connections of the groups' ranks.
2. :func:`spmd` finds which worker holds each block of the first collection (the data are not
   moved); those workers are the ranks, ordered by the first block each holds. A worker that
   holds no block takes no part; a worker that holds several blocks gets all of them, as lists in
   block order. Blocks of the other collections are fetched to the worker of the same block of the
   first (Dask moves them only when they live elsewhere).
3. Each rank's task secedes from the worker's thread pool (a group needs all its ranks running at
   once; two groups on one cluster then never wait on each other's threads), connects to the
   lower ranks and accepts the higher ones (one connection per pair, kept for the group's
   life), runs ``fn(comm, *blocks)`` and closes its connections. The connections are plain TCP
   sockets on a ``tcp://`` cluster, and Distributed's comm on the cluster's protocol on any
   other (``daskpml.comm.transport``, :func:`transport_for`).
4. Messages from the ranks (:meth:`Communicator.report`) reach the driver as Distributed events
   (the worker's batched stream; the rank does not wait); messages to the ranks
   (:meth:`SpmdGroup.signal`) go through ``Client.run``. Neither carries the group's data.

Failures: a rank whose task fails closes its connections, so its peers raise
:class:`CommError` at their next message from it; a worker that dies closes them too (the OS does).
A peer that sends nothing for ``daskpml.comm.timeout`` seconds is declared lost. The driver then
aborts the group (every rank stops within a fraction of a second), cancels its tasks, and raises
the first rank's own error, or :class:`CommError` naming the lost worker.
"""

from __future__ import annotations

import asyncio
import queue
import socket
import threading
import time
import uuid
from collections import deque
from typing import Any, Callable, Iterator, Sequence

import dask
from dask.utils import parse_timedelta
from distributed import WorkerPlugin, get_worker, secede
from distributed.comm import get_address_host
from distributed.protocol import pickle as dpickle

from .. import _config
from ._communicator import Communicator
from ._stream import OP as STREAM_OP
from ._stream import StreamChannel, open_stream
from ._transport import Channel, CommError, hello, read_hello, send_frames

PLUGIN = "daskpml-comm"


def timeout() -> float:
    """``daskpml.comm.timeout`` in seconds."""
    return float(parse_timedelta(_config.get("comm.timeout")))


class GroupState:
    """One group's state on one worker: connections that arrived, control messages, abort."""

    def __init__(self, gid: str) -> None:
        self.gid = gid
        self.cond = threading.Condition()
        self.incoming: dict[int, Any] = {}          # rank -> socket, or StreamChannel (transport "distributed")
        self.arrived = threading.Condition()        # a StreamChannel of this group's rank got a message
        self.channels: dict[int, Channel] = {}
        self.control: deque = deque()
        self.abort = threading.Event()
        self.topic = f"daskpml-spmd-{gid}"
        self.sent = 0
        self.rank = 0
        self.worker: Any = None

    def report(self, message: Any) -> None:
        self.sent += 1
        self.worker.log_event(self.topic, {"rank": self.rank, "payload": dpickle.dumps(message)})

    def take_control(self) -> list:
        with self.cond:
            out = list(self.control)
            self.control.clear()
        return out

    def wait_control(self, limit: float) -> list:
        deadline = time.monotonic() + limit
        with self.cond:
            while not self.control:
                if self.abort.is_set():
                    raise CommError("the group was aborted")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CommError(f"no message from the driver within {limit:g} s")
                self.cond.wait(min(left, 0.5))
            out = list(self.control)
            self.control.clear()
        return out

    def close(self) -> None:
        for ch in self.channels.values():
            ch.close()
        with self.cond:
            for s in self.incoming.values():
                s.close()
            self.incoming.clear()


class CommPlugin(WorkerPlugin):
    """Listens on the worker's host for the ranks' connections and keeps the groups' state.

    Examples
    --------
    >>> CommPlugin().name
    'daskpml-comm'
    """

    name = PLUGIN
    idempotent = True

    def setup(self, worker: Any) -> None:
        self.worker = worker
        try:
            host = get_address_host(worker.address)
        except Exception:                          # inproc:// and other transports without a host
            host = "127.0.0.1"
        if not host or "/" in host:
            host = "127.0.0.1"
        self.listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
        _buffers(self.listener)                    # inherited by the accepted sockets
        self.listener.bind((host, 0))
        self.listener.listen(256)
        self.address = (host, self.listener.getsockname()[1])
        self.groups: dict[str, GroupState] = {}
        self.lock = threading.Lock()
        self.closed = False
        self._thread = threading.Thread(target=self._accept, name="daskpml-comm-accept", daemon=True)
        self._thread.start()
        worker.handlers[STREAM_OP] = self._on_stream  # (transport "distributed": the worker's own listener)

    def group(self, gid: str) -> GroupState:
        with self.lock:
            st = self.groups.get(gid)
            if st is None:
                st = self.groups[gid] = GroupState(gid)
                st.worker = self.worker
            return st

    def _accept(self) -> None:
        while not self.closed:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handshake, args=(sock,), daemon=True).start()

    def _handshake(self, sock: socket.socket) -> None:
        try:
            gid, rank = read_hello(sock, 30.0)
        except Exception:
            sock.close()
            return
        st = self.group(gid)
        with st.cond:
            if st.abort.is_set():
                sock.close()
                return
            st.incoming[rank] = sock
            st.cond.notify_all()

    async def _on_stream(self, comm: Any, gid: str, rank: int) -> None:
        """A rank's connection over Distributed's comm: its group's rank reads it from now on."""
        st = self.group(gid)
        ch = StreamChannel(comm, comm.peer_address, st.abort, asyncio.get_running_loop(), st.arrived)
        with st.cond:
            if st.abort.is_set():
                comm.abort()
                return
            st.incoming[int(rank)] = ch
            st.cond.notify_all()
        await ch.serve()

    def forget(self, gid: str, abort: bool) -> None:
        with self.lock:
            st = self.groups.pop(gid, None) if not abort else self.groups.get(gid)
        if st is None:
            return
        if abort:
            st.abort.set()
            with st.cond:
                st.cond.notify_all()
            st.close()

    def teardown(self, worker: Any) -> None:
        self.closed = True
        worker.handlers.pop(STREAM_OP, None)
        try:
            self.listener.close()
        except OSError:
            pass
        for gid in list(self.groups):
            self.forget(gid, abort=True)


def _buffers(sock: socket.socket) -> None:
    """Socket buffers of ``daskpml.comm.socket-buffer-bytes`` (the kernel caps them at
    ``net.core.rmem_max`` / ``wmem_max``): a message of that size is taken by the kernel in one
    call, without waking the receiving rank once per 128 KB."""
    size = int(_config.get("comm.socket-buffer-bytes"))
    for opt in (socket.SO_SNDBUF, socket.SO_RCVBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, opt, size)
        except OSError:
            pass


def _plugin() -> CommPlugin:
    worker = get_worker()
    plugin = worker.plugins.get(PLUGIN)
    if plugin is None:
        raise CommError(f"the worker {worker.address} has no daskpml comm plugin; spmd registers it, "
                        "so this worker joined without it: restart the worker")
    return plugin


def _signal(gid: str, message: Any, dask_worker: Any = None) -> None:
    plugin = (dask_worker or get_worker()).plugins.get(PLUGIN)
    if plugin is None:
        return
    st = plugin.group(gid)
    with st.cond:
        st.control.append(message)
        st.cond.notify_all()


def _finish(gid: str, abort: bool, dask_worker: Any = None) -> None:
    plugin = (dask_worker or get_worker()).plugins.get(PLUGIN)
    if plugin is not None:
        plugin.forget(gid, abort)


def _connect(st: GroupState, rank: int, spec: dict) -> dict[int, Any]:
    """Connect to the lower ranks, accept the higher ones: one channel per peer."""
    workers, limit = spec["workers"], spec["connect_timeout"]
    deadline = time.monotonic() + limit
    channels: dict[int, Any] = {}
    stream = spec["transport"] == "distributed"
    for peer in range(rank):
        if stream:
            channels[peer] = _open_stream(st, rank, workers[peer], deadline)
            continue
        while True:
            try:
                host, port = spec["endpoints"][peer]
                sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
                _buffers(sock)                     # before connect: the window scale is agreed then
                sock.settimeout(max(1.0, deadline - time.monotonic()))
                try:
                    sock.connect((host, port))
                except OSError:
                    sock.close()
                    raise
                break
            except OSError as e:
                if time.monotonic() > deadline or st.abort.is_set():
                    raise CommError(f"rank {rank} could not connect to rank {peer} on {workers[peer]}: {e}") from None
                time.sleep(0.05)
        sock.settimeout(None)
        send_frames(sock, hello(st.gid, rank))
        channels[peer] = Channel(sock, workers[peer], st.abort, spec["inline_bytes"])
    with st.cond:
        while len(st.incoming) < len(workers) - rank - 1:
            if st.abort.is_set():
                raise CommError("the group was aborted while it started")
            left = deadline - time.monotonic()
            if left <= 0:
                missing = sorted(set(range(rank + 1, len(workers))) - set(st.incoming))
                raise CommError(f"rank {rank}: the ranks {missing} (workers "
                                f"{[workers[m] for m in missing]}) did not start within "
                                f"daskpml.comm.connect-timeout={limit:g} s; are those workers busy or gone?")
            st.cond.wait(min(left, 0.5))
        for peer, conn in st.incoming.items():
            if stream:
                conn.peer = workers[peer]
                channels[peer] = conn
            else:
                channels[peer] = Channel(conn, workers[peer], st.abort, spec["inline_bytes"])
        st.incoming.clear()
    return channels


def _open_stream(st: GroupState, rank: int, address: str, deadline: float) -> StreamChannel:
    """A :class:`StreamChannel` to the rank on ``address`` (transport "distributed")."""
    worker = st.worker
    loop = worker.loop.asyncio_loop
    left = max(1.0, deadline - time.monotonic())
    fut = asyncio.run_coroutine_threadsafe(open_stream(address, st.gid, rank, left, worker.connection_args), loop)
    try:
        comm = fut.result(left + 5.0)
    except Exception as e:
        fut.cancel()
        raise CommError(f"rank {rank} could not connect to the rank on {address}: {e}") from None
    ch = StreamChannel(comm, address, st.abort, loop, st.arrived)
    asyncio.run_coroutine_threadsafe(ch.serve(), loop)
    return ch


def transport_for(addresses: Sequence[str]) -> str:
    """The transport of a group whose ranks are on ``addresses``: ``daskpml.comm.transport``,
    where "auto" means plain sockets on a ``tcp://`` (or in-process) cluster and Distributed's
    comm on any other protocol (``tls://`` keeps its encryption, ``ucx://`` its fabric).

    Parameters
    ----------
    addresses : list of str
        The worker addresses of the group's ranks.

    Returns
    -------
    transport : {"sockets", "distributed"}
        Plain TCP sockets between the workers' hosts, or ``distributed.comm`` connections.

    Examples
    --------
    >>> transport_for(["tcp://10.0.0.1:4000", "tcp://10.0.0.2:4000"])
    'sockets'
    >>> transport_for(["tls://10.0.0.1:4000"])
    'distributed'
    """
    choice = _config.get("comm.transport")
    if choice not in ("auto", "sockets", "distributed"):
        raise ValueError(f"daskpml.comm.transport must be 'auto', 'sockets' or 'distributed', got {choice!r}.")
    if choice != "auto":
        return choice
    plain = all(a.split("://", 1)[0] in ("tcp", "inproc") for a in addresses)
    return "sockets" if plain else "distributed"


def _rank_main(spec: dict, *blocks: list) -> Any:
    """The task of one rank."""
    try:
        secede()
    except Exception:                               # not in a worker's thread pool (tests): fine
        pass
    plugin = _plugin()
    gid, rank, workers = spec["gid"], spec["rank"], spec["workers"]
    st = plugin.group(gid)
    st.rank = rank
    with dask.config.set(spec["config"]):
        try:
            st.channels = _connect(st, rank, spec)
            comm = Communicator(gid, rank, workers, st.channels, spec["blocks"], timeout=spec["timeout"],
                                small_bytes=spec["small_bytes"], state=st)
            out = spec["fn"](comm, *blocks, *spec["args"], **spec["kwargs"])
            return {"result": out, "sent": st.sent}
        finally:
            st.close()                              # peers still waiting on this rank learn at once


def _keys(collection: Any) -> list:
    from dask.core import flatten

    return list(flatten(collection.__dask_keys__()))


_WAKE = object()                                     # (in a group's inbox: a rank's task ended)


class SpmdGroup:
    """The driver's handle on a running group: its messages, signals to the ranks, its results.

    Created by :func:`spmd`; ``on_message(message, group)`` may call :meth:`signal`.

    Parameters
    ----------
    client : distributed.Client
        The client that runs the group.
    futures : list of distributed.Future
        One task per rank.
    gid : str
        The group's id.
    workers : list of str
        The worker address of each rank.

    Attributes
    ----------
    workers : list of str
        The worker address of each rank.
    size : int
        The number of ranks.

    Examples
    --------
    >>> def answer(message, rank, group):             # doctest: +SKIP
    ...     if message == "ready?":
    ...         group.signal("go", ranks=[rank])
    >>> spmd(fn, X, on_message=answer)                # doctest: +SKIP
    """

    def __init__(self, client: Any, futures: list, gid: str, workers: list[str]) -> None:
        self.client, self.futures, self.gid, self.workers = client, futures, gid, workers
        self._signals: Any = None
        self.size = len(workers)
        self.topic = f"daskpml-spmd-{gid}"
        self._inbox: queue.Queue = queue.Queue()
        self.received = [0] * self.size

        def handler(event: Any) -> None:
            _, msg = event
            self._inbox.put((msg["rank"], msg["payload"]))

        self._handler = handler
        client.subscribe_topic(self.topic, handler)

    def signal(self, message: Any, ranks: Sequence[int] | None = None) -> None:
        """Deliver ``message`` to the ranks (all by default); they read it with
        :meth:`Communicator.control` / :meth:`Communicator.wait_control`.

        Parameters
        ----------
        message : object
            Anything picklable.
        ranks : list of int, optional
            The ranks to tell (default: every rank).
        """
        targets = [self.workers[r] for r in (range(self.size) if ranks is None else ranks)]
        # From a thread of its own, in order: a message to a worker that just died would hold the
        # caller for Distributed's connect timeout (30 s), and the caller must see the loss at once.
        if self._signals is None:
            from concurrent.futures import ThreadPoolExecutor

            self._signals = ThreadPoolExecutor(1, thread_name_prefix="daskpml-spmd-signal")
        self._signals.submit(self._signal, message, targets)

    def _signal(self, message: Any, targets: list) -> None:
        try:
            self.client.run(_signal, self.gid, message, workers=targets, on_error="ignore")
        except Exception:                           # (a lost worker ends the group elsewhere)
            pass

    def _messages(self, block: float) -> Iterator[tuple[int, Any]]:
        """The ranks' reports that arrived, waiting up to ``block`` seconds for the first (or
        for a rank's task to end)."""
        try:
            item = self._inbox.get(timeout=block)
        except queue.Empty:
            return
        while True:
            if item is not _WAKE:
                rank, payload = item
                self.received[rank] += 1
                yield rank, dpickle.loads(payload)
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return

    def run(self, on_message: Callable | None, on_interrupt: Callable | None = None) -> list:
        """Pump messages until every rank is done; the ranks' results in rank order.
        ``on_interrupt(group)``: called on the first KeyboardInterrupt; a true return keeps the
        group running (it was asked to stop cleanly); otherwise, or at a second one, the group is
        aborted and the interrupt raised."""
        done = False
        interrupted = False
        checked = time.monotonic()
        for f in self.futures:                     # a rank's end wakes the loop (not its next poll)
            f.add_done_callback(lambda _: self._inbox.put(_WAKE))
        try:
            while not done:
                try:
                    for rank, message in self._messages(0.05):
                        if on_message is not None:
                            on_message(message, rank, self)
                except KeyboardInterrupt:
                    if interrupted or on_interrupt is None or not on_interrupt(self):
                        raise
                    interrupted = True
                if not self._connected():
                    raise CommError("the connection to the scheduler was lost while the SPMD group ran; its "
                                    "tasks end when their workers lose the scheduler")
                states = [f.status for f in self.futures]
                now = time.monotonic()
                if now - checked > 1.0:             # a rank whose worker left before it connected
                    checked = now                   # would hold the others until connect-timeout
                    alive = self._alive()
                    if alive and not set(self.workers) <= alive:
                        raise self._error()
                if any(s in ("error", "cancelled", "lost") for s in states):
                    raise self._error()            # the first failure ends the group (never wait on a dead rank)
                done = all(s == "finished" for s in states)
            results = self._results()
            # the ranks' last reports may still be on their way: wait for every one of them
            deadline = time.monotonic() + 10.0
            while any(self.received[r] < results[r]["sent"] for r in range(self.size)) \
                    and time.monotonic() < deadline:
                for rank, message in self._messages(0.05):
                    if on_message is not None:
                        on_message(message, rank, self)
            return [r["result"] for r in results]
        except BaseException:
            self.abort()
            raise
        finally:
            self.close()

    def _results(self) -> list:
        """What the finished rank tasks returned, in one gather. A result lives on its rank's
        worker until it is fetched; if that worker dies first, the scheduler would run the task
        again, but only that worker may run it: the gather would wait forever (this hung a fault
        test once in CI). Such a loss ends the group with a CommError instead (the caller's abort
        then cancels the futures, which ends the gather's thread)."""
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(1, thread_name_prefix="daskpml-spmd-gather")
        try:
            fetch = pool.submit(self.client.gather, self.futures)
            while True:
                try:
                    return fetch.result(timeout=1.0)
                except TimeoutError:
                    alive = self._alive()
                    for rank, f in enumerate(self.futures):
                        if self.workers[rank] not in alive or f.status in ("lost", "cancelled"):
                            raise CommError(f"the SPMD group lost rank {rank} on {self.workers[rank]} before its "
                                            "result reached the caller: the worker died") from None
        finally:
            pool.shutdown(wait=False)

    def _error(self) -> BaseException:
        """The first rank's own error, else a CommError naming the lost worker."""
        self._stop_ranks()                          # every rank stops waiting on its peers now
        deadline = time.monotonic() + 3.0
        alive = self._alive()
        while time.monotonic() < deadline and any(
                f.status == "pending" and self.workers[r] in alive for r, f in enumerate(self.futures)):
            time.sleep(0.05)                        # let the other ranks' own errors arrive
        own, comm_errors, lost = None, [], []
        alive = self._alive()
        for rank, f in enumerate(self.futures):
            if f.status == "error":
                exc = f.exception()
                if isinstance(exc, CommError):
                    comm_errors.append((rank, exc))
                elif own is None:
                    own = exc
            if self.workers[rank] not in alive:
                lost.append(rank)
        if own is not None:
            return own
        if lost:
            names = ", ".join(f"rank {r} on {self.workers[r]}" for r in lost)
            return CommError(f"the SPMD group lost {names}: the worker died" +
                             (f" ({comm_errors[0][1]})" if comm_errors else ""))
        if comm_errors:
            return comm_errors[0][1]
        states = {f.status for f in self.futures}
        return CommError(f"the SPMD group ended with task states {sorted(states)}")

    def abort(self) -> None:
        """Stop every rank (their waits end with :class:`CommError`) and cancel the tasks."""
        self._stop_ranks()
        if not self._connected():
            return
        try:
            self.client.cancel(self.futures, force=True)
        except Exception:
            pass

    def _alive(self) -> set:
        """The workers the scheduler has now. (``Client.scheduler_info()`` is a copy refreshed every
        few seconds: a worker that just died is still in it, and ``Client.run`` on it waits out
        the connect timeout, 30 s.)"""
        try:
            return set(self.client.run_on_scheduler(_scheduler_workers))
        except Exception:                           # (the scheduler is gone: nobody is alive)
            return set()

    def _connected(self) -> bool:
        comm = getattr(self.client, "scheduler_comm", None)
        return self.client.status == "running" and comm is not None and not comm.closed()

    def _stop_ranks(self) -> None:
        if getattr(self, "_stopped", False) or not self._connected():
            return
        self._stopped = True
        alive = self._alive()
        try:
            self.client.run(_finish, self.gid, True, workers=[w for w in set(self.workers) if w in alive],
                            on_error="ignore")
        except Exception:
            pass

    def close(self) -> None:
        if self._signals is not None:
            self._signals.shutdown(wait=False, cancel_futures=True)
        if not self._connected():
            return
        try:
            self.client.unsubscribe_topic(self.topic)
        except Exception:
            pass
        alive = self._alive()
        try:                                        # (a dead worker would hold this up for the connect timeout)
            self.client.run(_finish, self.gid, False, workers=[w for w in set(self.workers) if w in alive],
                            on_error="ignore")
        except Exception:
            pass


def _scheduler_workers(dask_scheduler: Any = None) -> list:
    return list(dask_scheduler.workers)


def _has_endpoint(dask_worker: Any = None) -> tuple[str, int] | None:
    plugin = (dask_worker or get_worker()).plugins.get(PLUGIN)
    return None if plugin is None else plugin.address


def _ensure_plugin(client: Any) -> dict[str, tuple[str, int]]:
    """Every worker's listening address; registers the plugin (for later workers too) when a
    worker lacks it."""
    endpoints = client.run(_has_endpoint)
    if any(e is None for e in endpoints.values()):
        client.register_plugin(CommPlugin())
        endpoints = client.run(_has_endpoint)
    return endpoints


def _local(fn: Callable, collections: Sequence[Any], args: tuple, kwargs: dict,
           on_message: Callable | None) -> list:
    """One rank in this process (no cluster): in-memory input, or the synchronous scheduler."""
    blocks = []
    for c in collections:
        if hasattr(c, "__dask_graph__"):
            keys = _keys(c)
            vals = dask.compute(*_as_delayed(c), scheduler="sync") if keys else []
            blocks.append(list(vals))
        else:
            blocks.append([c])
    n = {len(b) for b in blocks}
    gid = uuid.uuid4().hex

    class _State:
        abort = threading.Event()
        sent = 0

        def report(self, message: Any) -> None:
            if on_message is not None:
                on_message(message, 0, None)

        def take_control(self) -> list:
            return []

        def wait_control(self, limit: float) -> list:
            return []

    comm = Communicator(gid, 0, ["local"], {}, list(range(max(n) if n else 1)), timeout=timeout(),
                        small_bytes=int(_config.get("comm.small-bytes")), state=_State())
    return [fn(comm, *blocks, *args, **kwargs)]


def _as_delayed(c: Any) -> list:
    if hasattr(c, "blocks") and hasattr(c, "row_offsets"):        # CSRMatrix
        return list(c.blocks.to_delayed().ravel())
    return list(c.to_delayed().ravel())


def spmd(fn: Callable, *collections: Any, args: tuple = (), kwargs: dict | None = None,
         on_message: Callable | None = None, on_interrupt: Callable | None = None, name: str | None = None) -> list:
    """Run ``fn(comm, *local_blocks, *args, **kwargs)`` once per worker that holds the data.

    Each rank gets, for every collection, the list of the blocks it holds (in block order) and a
    :class:`Communicator` for collectives with the other ranks. The blocks are not moved: the rank
    task runs where the first collection's blocks are. Messages between ranks go worker to worker
    over persistent connections, never through the scheduler or the client.

    Parameters
    ----------
    fn : callable
        ``fn(comm, *blocks, *args, **kwargs)``; runs on the workers (it must be picklable).
    *collections : dask arrays, CSRMatrix or in-memory arrays
        Row-aligned collections (the same number of blocks), persisted on the cluster (they are
        persisted here otherwise). In-memory input, or no cluster, runs one rank in this process.
    args : tuple
        More positional arguments, the same on every rank.
    kwargs : dict, optional
        Keyword arguments, the same on every rank.
    on_message : callable(message, rank, group), optional
        Called in this process for every :meth:`Communicator.report` of the ranks, in order
        per rank, while they run. ``group.signal(message)`` answers them.
    on_interrupt : callable(group) -> bool, optional
        Called on the first Ctrl-C (KeyboardInterrupt) while the group runs; returning True keeps
        the group running (it asked the ranks to stop, with ``group.signal``); otherwise the group
        is aborted and the interrupt raised.
    name : str, optional
        A name for the tasks on the dashboard (``daskpml-spmd-<name>-...``).

    Returns
    -------
    results : list
        What each rank's ``fn`` returned, in rank order.

    Raises
    ------
    CommError
        A rank was lost (its worker died, or a peer did not answer within
        ``daskpml.comm.timeout``); every rank stops and the tasks are cancelled.

    Examples
    --------
    >>> import numpy as np
    >>> def norms(comm, parts):
    ...     local = np.array([sum(float((p ** 2).sum()) for p in parts)])
    ...     return float(np.sqrt(comm.allreduce(local)[0]))
    >>> spmd(norms, np.array([3.0, 4.0]))
    [5.0]
    """
    from ..runtime import active_client

    kwargs = dict(kwargs or {})
    client = active_client()
    distributed = [c for c in collections if hasattr(c, "__dask_graph__")]
    if client is None or not distributed:
        return _local(fn, collections, args, kwargs, on_message)
    if len(distributed) != len(collections):
        raise TypeError("spmd: pass either dask collections (row blocks on the cluster) or in-memory "
                        "arrays, not a mix; give in-memory values through args= or kwargs=.")
    collections = list(collections)
    keys = [_keys(c) for c in collections]
    if len({len(k) for k in keys}) != 1:
        raise ValueError(f"spmd: the collections must have the same number of blocks, got "
                         f"{[len(k) for k in keys]}; rechunk them alike.")
    futures_by_key = {}
    for i, c in enumerate(collections):
        fs = {f.key: f for f in client.futures_of(c)}
        if not all(k in fs for k in keys[i]):
            c = client.persist(c)
            fs = {f.key: f for f in client.futures_of(c)}
            keys[i] = _keys(c)
        futures_by_key.update(fs)
    from distributed import wait

    first = [futures_by_key[k] for k in keys[0]]
    wait(first)
    if any(f.status != "finished" for f in first):
        client.gather(first)                        # the blocks' own error (a worker killed by its memory, ...)
    who = client.who_has(first)
    owner = []
    for k in keys[0]:
        holders = who.get(k) or who.get(str(k)) or ()
        owner.append(sorted(holders)[0] if holders else None)
    if any(o is None for o in owner):
        raise CommError("spmd: some blocks are held by no worker (lost); persist the data again.")
    workers: list[str] = []
    for o in owner:
        if o not in workers:
            workers.append(o)
    endpoints = _ensure_plugin(client)
    gid = uuid.uuid4().hex[:12]
    label = f"daskpml-spmd-{name or getattr(fn, '__name__', 'fn')}-{gid}"
    # the caller's settings of the layer and of the solvers that run on it (a worker process
    # has its own dask.config)
    config = {k: dask.config.get(f"daskpml.{k}") for k in ("comm", "optim")}
    base = dict(gid=gid, workers=workers, endpoints=[tuple(endpoints[w]) for w in workers],
                fn=fn, args=tuple(args), kwargs=kwargs, timeout=timeout(),
                connect_timeout=float(parse_timedelta(_config.get("comm.connect-timeout"))),
                small_bytes=int(_config.get("comm.small-bytes")),
                inline_bytes=int(_config.get("comm.inline-bytes")), transport=transport_for(workers),
                config={f"daskpml.{k}": v for k, v in config.items()})
    # subscribe to the ranks' reports before any rank can start: the scheduler forwards only
    # the events that arrive after a subscription (the subscription and the tasks travel in
    # order on the client's stream)
    group = SpmdGroup(client, [], gid, workers)
    futures = group.futures
    for rank, w in enumerate(workers):
        mine = [i for i, o in enumerate(owner) if o == w]
        spec = dict(base, rank=rank, blocks=mine)
        block_lists = [[futures_by_key[keys[c][i]] for i in mine] for c in range(len(collections))]
        futures.append(client.submit(_rank_main, spec, *block_lists, key=f"{label}-{rank}",
                                     workers=[w], allow_other_workers=False, pure=False, retries=0))
    return group.run(on_message, on_interrupt)




def _links(comm: Communicator, blocks: list, sizes: list, repeats: int) -> dict:
    """On every rank: ping-pong between ranks 0 and 1 (one way = half the round trip), then all
    ranks swapping with a partner at once; medians of ``repeats``, in seconds."""
    import statistics

    import numpy as np

    out: dict = {"single": [], "swap": []}
    for size in sizes:
        x = np.ones(max(1, size // 8))
        times = []
        for _ in range(repeats + 1):
            comm.barrier()
            t0 = time.perf_counter()
            if comm.rank == 0:
                comm.send(x, 1, tag="cal")
                comm.recv(1, tag="cal")
            elif comm.rank == 1:
                comm.send(comm.recv(0, tag="cal"), 0, tag="cal")
            times.append(time.perf_counter() - t0)
        out["single"].append(statistics.median(times[1:]) / 2)
        partner = comm.rank ^ 1
        times = []
        for _ in range(repeats + 1):
            comm.barrier()
            t0 = time.perf_counter()
            if partner < comm.size:
                wait = comm.isend(x, partner, tag="swap")
                comm.recv(partner, tag="swap")
                wait()
            times.append(time.perf_counter() - t0)
        out["swap"].append(float(comm.allreduce(np.array([statistics.median(times[1:])]), op="max")[0]))
    y = np.ones(1 << 20)
    t0 = time.perf_counter()
    for _ in range(5):
        np.add(y, y)
    out["reduce_per_byte"] = (time.perf_counter() - t0) / 5 / y.nbytes
    return out


def calibrate(client: Any = None, *, sizes: Sequence[int] = (8, 1024, 65536, 1 << 20, 1 << 23),
              repeats: int = 20) -> Any:
    """The communication constants of the ranks' transport, measured on the cluster.

    Times a one-message ping-pong between two ranks and every rank swapping with a partner at
    once, for each size, inside one SPMD group (no task, scheduler or client in the loop), and fits
    them as :func:`daskpml.perf.calibrate` fits the task graphs': latency ``a`` and inverse
    bandwidth ``b`` of one message (non-negative least squares on relative errors), and the shared
    bandwidth when all pairs swap at once. ``per_task`` and ``overhead`` are zero: a collective of
    the ranks involves no task and no client round trip (a group's start-up, once per solver run,
    is in ``fit["group_start_s"]``).

    Parameters
    ----------
    client : distributed.Client, optional
        The cluster (default: the current client). Needs at least two workers.
    sizes : sequence of int
        Message sizes in bytes.
    repeats : int, default 20
        Timings per size (the median is kept).

    Returns
    -------
    model : daskpml.perf.CommModel
        The fitted constants; ``fit`` holds the sizes and the measured times.

    Examples
    --------
    >>> from distributed import Client, LocalCluster
    >>> with LocalCluster(n_workers=2, processes=False, dashboard_address=None) as c, Client(c) as client:
    ...     model = calibrate(client, sizes=(8, 100_000), repeats=3)     # doctest: +SKIP
    >>> model.per_task                                                   # doctest: +SKIP
    0.0
    """
    import numpy as np
    from scipy.optimize import nnls

    from ..perf import CommModel
    from ..runtime import active_client

    client = client or active_client()
    workers = sorted(client.scheduler_info()["workers"]) if client is not None else []
    if len(workers) < 2:
        raise ValueError(f"calibrate needs at least 2 workers (ranks) to time messages between them; the cluster "
                         f"has {len(workers)}. Start more with `dask worker <scheduler address>`.")
    import dask.array as da

    parts = [client.submit(np.zeros, 1, workers=[w], pure=False) for w in workers]
    x = client.persist(da.concatenate([da.from_delayed(p, (1,), float) for p in parts]))
    sizes = sorted(int(s) for s in sizes)
    t0 = time.perf_counter()
    spmd(lambda comm, blocks: None, x, name="calibrate-start")
    start = time.perf_counter() - t0
    m = spmd(_links, x, args=(sizes, int(repeats)), name="calibrate")[0]
    nbytes = np.asarray([8 * max(1, s // 8) for s in sizes], dtype=float)
    single, swap = np.maximum(np.asarray(m["single"]), 1e-9), np.maximum(np.asarray(m["swap"]), 1e-9)
    (a, b), _ = nnls(np.column_stack([1 / single, nbytes / single]), np.ones_like(single))
    P = len(workers) - len(workers) % 2
    big = np.argsort(nbytes)[-2:]
    beta = max(float(np.median((swap[big] - a) / (P * nbytes[big]))), 0.0)
    if P * beta <= b:
        beta = 0.0
    model_single = a + b * nbytes
    rel = float(np.max(np.abs(model_single / single - 1)))
    cores = None
    try:
        hosts = {w.split("://")[-1].rsplit(":", 1)[0] for w in workers}
        if len(hosts) == 1:
            import os

            cores = os.cpu_count()
    except Exception:
        pass
    return CommModel(latency=float(a), inv_bandwidth=float(b), per_task=0.0, shared_inv_bandwidth=beta,
                     reduce_per_byte=float(m["reduce_per_byte"]), overhead=0.0, cores=cores, workers=len(workers),
                     fit={"sizes": nbytes.astype(int).tolist(), "single_s": single.tolist(), "swap_s": swap.tolist(),
                          "swap_workers": P, "max_rel_error": rel, "group_start_s": start, "transport": "comm"})


__all__ = ["spmd", "SpmdGroup", "CommPlugin", "calibrate", "timeout"]
