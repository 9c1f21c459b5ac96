"""Channels over Distributed's own comm, on the cluster's protocol (tls, ucx, ...).

The plain-socket channels of :mod:`._transport` are the fast path on a ``tcp://`` cluster. A
cluster on another protocol asked for something sockets do not give: ``tls://`` encrypts and
authenticates every connection with the cluster's certificates, ``ucx://`` moves bytes over
InfiniBand / NVLink. There the ranks talk over ``distributed.comm`` instead, with the worker's own
security settings (``Worker.connection_args``): one persistent connection per pair of ranks,
opened by the higher rank to the lower rank's worker address (the worker's own listener; the
plugin's handler ``daskpml-comm`` takes the connection over), kept for the group's life, and
streamed over, one message per write.

The connection's reading and writing live on the worker's event loop: a reader task puts every
message it reads into the channel's inbox (and wakes the rank thread), a writer task writes the
messages the rank thread queued, in order. Arrays travel as Distributed serializes them
(``dask`` serializer: out-of-band frames, no copy into a pickle); other objects as pickle.

Compared with the sockets this costs a hop through the event loop per message: on a 2-core
machine, 2 ranks over tcp, a 1 KB allreduce took 0.62 ms against 0.046 ms on sockets; 100 MB moved
as fast (``benchmarks/bench_comm.py`` measures both).
"""

from __future__ import annotations

import asyncio
import pickle
import threading
import time
from collections import deque
from typing import Any, Sequence

from dask.sizeof import sizeof
from distributed.comm import connect
from distributed.protocol import to_serialize
from distributed.protocol.serialize import Serialized, deserialize

from ._transport import ChannelBase, CommError

OP = "daskpml-comm"
SERIALIZERS = ("dask", "pickle", "error")


class StreamChannel(ChannelBase):
    """One ``distributed.comm`` connection to one peer rank: messages in order, tag matching.

    The same interface as the socket :class:`~daskpml.comm._transport.Channel`.

    Parameters
    ----------
    comm : distributed.comm.Comm
        A connection on the cluster's protocol.
    peer : str
        The peer's worker address (for error messages).
    abort : threading.Event
        Set when the group is aborted: waits end with :class:`CommError`.
    loop : asyncio.AbstractEventLoop
        The worker's event loop (the connection's reads and writes run there).
    arrived : threading.Condition
        Shared by the channels of one rank; notified when a message arrives or a connection is lost.
    """

    def __init__(self, comm: Any, peer: str, abort: threading.Event, loop: asyncio.AbstractEventLoop,
                 arrived: threading.Condition) -> None:
        self.comm, self.peer, self.abort, self.loop, self.arrived = comm, peer, abort, loop, arrived
        self.pending: dict[Any, list] = {}
        self.inbox: deque = deque()
        self.error: BaseException | None = None
        self._send_error: BaseException | None = None
        self._outbox: asyncio.Queue = asyncio.Queue()
        self.closed = False
        self.bytes_sent = 0
        self.bytes_received = 0

    # -- on the event loop ------------------------------------------------------------------
    async def serve(self) -> None:
        """Read until the connection closes, writing what the rank queues meanwhile."""
        writer = asyncio.ensure_future(self._write_loop())
        try:
            while True:
                msg = await self.comm.read(deserializers=SERIALIZERS)
                obj = msg["x"]
                if isinstance(obj, Serialized):          # (a comm that does not deserialize)
                    obj = deserialize(obj.header, obj.frames, deserializers=SERIALIZERS)
                # (Distributed's read does not say how many bytes it took: the frames' size
                # is estimated as dask does, by the objects' sizeof)
                self.bytes_received += len(msg["t"]) + sizeof(obj)
                with self.arrived:
                    self.inbox.append((pickle.loads(msg["t"]), obj))
                    self.arrived.notify_all()
        except BaseException as e:                       # closed, aborted, cancelled
            with self.arrived:
                self.error = e
                self.arrived.notify_all()
            if isinstance(e, asyncio.CancelledError):
                raise
        finally:
            self._outbox.put_nowait(None)
            await asyncio.gather(writer, return_exceptions=True)
            if not self.comm.closed():
                self.comm.abort()

    async def _write_loop(self) -> None:
        while True:
            item = await self._outbox.get()
            if item is None:
                return
            tag, obj, done = item
            try:
                if self._send_error is None:
                    self.bytes_sent += await self.comm.write(
                        {"t": pickle.dumps(tag, protocol=5), "x": to_serialize(obj)},
                        serializers=SERIALIZERS, on_error="raise") or 0
                    # Distributed's TCP comm returns once the frames are queued in its Tornado
                    # stream (which holds views of obj's buffers); "written" means flushed to
                    # the kernel, as its own close() waits for. (UCX's write awaits the send.)
                    stream = getattr(self.comm, "stream", None)
                    if stream is not None and stream.writing():
                        await stream.write(b"")
            except BaseException as e:                   # reported to the rank thread by wait()
                self._send_error = e
            finally:
                done.set()

    # -- sending (the rank thread) ----------------------------------------------------------
    def _call(self, fn: Any, *args: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError as e:                        # the worker's loop has closed
            raise self._lost(e) from None

    def isend(self, tag: Any, obj: Any) -> threading.Event:
        """Queue ``obj`` for sending; the returned event is set once it is written (its buffers
        must not change before that)."""
        if self.error is not None:
            raise self._lost(self.error)
        done = threading.Event()
        self._call(self._outbox.put_nowait, (tag, obj, done))
        return done

    def wait(self, done: threading.Event, timeout: float) -> None:
        """Wait for an :meth:`isend` to finish (raises what the writer met)."""
        deadline = time.monotonic() + timeout
        while not done.wait(0.2):
            if self.abort.is_set():
                raise CommError(f"the group was aborted while sending to {self.peer}")
            if self.error is not None:
                raise self._lost(self.error)
            if time.monotonic() > deadline:
                raise CommError(f"sending to the rank on {self.peer} did not finish within "
                                f"daskpml.comm.timeout={timeout:g} s: that worker stopped reading")
        if self._send_error is not None:
            raise self._lost(self._send_error)

    # -- receiving (the rank thread) --------------------------------------------------------
    def next_message(self, timeout: float) -> tuple[Any, Any]:
        """The next message from this peer, whatever its tag: ``(tag, obj)``."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while not self.inbox:
                if self.error is not None:
                    raise self._lost(self.error)
                if self.abort.is_set():
                    raise CommError(f"the group was aborted while waiting for the rank on {self.peer}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CommError(f"the rank on {self.peer} sent nothing for daskpml.comm.timeout="
                                    f"{timeout:g} s; it is stuck or its worker is unreachable")
                self.arrived.wait(min(left, 0.5))
            return self.inbox.popleft()

    def readable(self) -> bool:
        """Whether :meth:`next_message` returns (or raises) without waiting."""
        return bool(self.inbox) or self.error is not None

    def poll(self) -> bool:
        """Whether a message is waiting."""
        return any(self.pending.values()) or self.readable()

    @staticmethod
    def wait_any(channels: Sequence["StreamChannel"], timeout: float) -> list:
        """The channels among ``channels`` with a message (or a lost connection), waiting up to
        ``timeout`` seconds for one; [] when none came."""
        if not channels:
            return []
        cond = channels[0].arrived
        deadline = time.monotonic() + timeout
        with cond:
            while True:
                ready = [ch for ch in channels if ch.readable()]
                left = deadline - time.monotonic()
                if ready or left <= 0:
                    return ready
                cond.wait(left)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.loop.call_soon_threadsafe(self.comm.abort)
        except RuntimeError:                             # the loop has closed: so has the comm
            pass


async def open_stream(address: str, gid: str, rank: int, timeout: float, connection_args: dict) -> Any:
    """A connection to the worker at ``address`` that its plugin hands to rank ``rank``'s peer."""
    comm = await connect(address, timeout=timeout, **connection_args)
    await comm.write({"op": OP, "gid": gid, "rank": int(rank), "reply": False})
    return comm
