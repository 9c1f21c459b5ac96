"""Point-to-point channels between the ranks of a group: one persistent TCP connection per pair.

Why not ``distributed.comm`` for every message: a message sent from a rank (a task thread) over
Distributed's comm must hop onto the worker's event loop and back (``sync``), through Tornado's
stream and Distributed's ``to_frames``/``from_frames``. ``benchmarks/bench_comm.py`` measures a
1 KB ping-pong that way at about 40x the raw TCP round trip between the same two processes, far
outside the 3x the design allows. So the ranks talk over plain sockets that the worker plugin opens
and closes, addressed by the workers' hosts, and a rank thread reads and writes its sockets itself
(no thread hand-off on the path of a small message).

What goes over a socket is Distributed's own serialization: ``distributed.protocol.pickle``
(pickle protocol 5, NumPy buffers out of band, so arrays are not copied into the pickle) and
Distributed's frame prelude (``pack_frames_prelude``: the frame count and lengths) before the
frames. A received array is backed by its own writable buffer.

Deadlock freedom: ``sendall`` of a message larger than the kernel's socket buffers blocks until
the peer reads. The collectives send and receive at once (the ring, the pairwise exchange), so
the rank thread never waits in a send of a large message: it writes what the kernel takes at once
and a per-channel sender thread writes the rest while the rank thread receives
(:meth:`Channel.isend`); a small one (``daskpml.comm.inline-bytes``) is written inline.
"""

from __future__ import annotations

import pickle
import queue
import select
import socket
import struct
import threading
import time
from typing import Any, Sequence

import numpy as np

from distributed.protocol import pickle as dpickle
from distributed.protocol.utils import pack_frames_prelude

_Q = struct.Struct("Q")
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0)      # (0 where the platform lacks it: no inline try)


class CommError(RuntimeError):
    """A rank of an SPMD group was lost (its worker died, or its task failed or stopped), or a
    peer did not answer within ``daskpml.comm.timeout``. Every rank of the group raises it and the
    group ends; :func:`~daskpml.comm.spmd` raises it on the caller's side naming the worker.

    Examples
    --------
    >>> issubclass(CommError, RuntimeError)
    True
    """


def encode(obj: Any) -> list:
    """Distributed's pickle with out-of-band buffers: ``[prelude, pickle, *buffers]``.

    Plain pickle (protocol 5) first, as ``distributed.protocol.pickle.dumps`` does; what it
    cannot pickle (functions defined in ``__main__``, lambdas) goes through Distributed's
    cloudpickle path. (Distributed's own ``dumps`` also inspects the object's module on every
    call, a third of the cost of a small message.)"""
    buffers: list = []
    tag, payload = obj
    if type(payload) is np.ndarray and payload.flags.c_contiguous and not payload.dtype.hasobject:
        # an array, the collectives' payload: its buffer is the frame, its dtype and shape the
        # header (what Distributed's NumPy serializer sends, without the msgpack round)
        head = pickle.dumps((tag, payload.dtype.str, payload.shape), protocol=5)
        frames = [head, memoryview(payload).cast("B") if payload.size else b""]
        return [pack_frames_prelude(frames), *frames]
    try:
        head = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    except Exception:
        buffers.clear()
        head = dpickle.dumps(obj, buffer_callback=buffers.append)
    frames = [head, *(b.raw() if hasattr(b, "raw") else b for b in buffers)]
    return [pack_frames_prelude(frames), *frames]


def decode(frames: list) -> tuple[Any, Any]:
    """``(tag, payload)`` from the frames of :func:`encode`."""
    obj = pickle.loads(frames[0], buffers=frames[1:])
    if len(obj) == 3:                                # an array: (tag, dtype, shape) + its buffer
        tag, dtype, shape = obj
        data = frames[1]
        return tag, (np.frombuffer(data, dtype=dtype).reshape(shape) if len(data)
                     else np.empty(shape, dtype=dtype))
    return obj


def _views(frames: list) -> list[memoryview]:
    """The frames' bytes, the empty ones left out."""
    return [v for v in (memoryview(f).cast("B") for f in frames) if v.nbytes]


def _rest(views: list[memoryview], sent: int) -> list[memoryview]:
    """What is left of ``views`` once their first ``sent`` bytes went out."""
    for i, v in enumerate(views):
        if sent < v.nbytes:
            return [v[sent:], *views[i + 1:]]
        sent -= v.nbytes
    return []


def nbytes_of(frames: list) -> int:
    return sum(memoryview(f).nbytes for f in frames)


_SENT = threading.Event()
_SENT.set()


class ChannelBase:
    """What every channel to one peer rank shares: tag matching on receipt, the lost-peer error.

    A subclass provides ``isend``/``wait`` and ``next_message`` (the next message, any tag)."""

    peer: str
    abort: threading.Event
    pending: dict

    def send(self, tag: Any, obj: Any, timeout: float) -> None:
        self.wait(self.isend(tag, obj), timeout)

    def recv(self, tag: Any, timeout: float) -> Any:
        """The next message with ``tag`` from this peer; others are kept for their recv."""
        waiting = self.pending.get(tag)
        if waiting:
            return waiting.pop(0)
        while True:
            got_tag, obj = self.next_message(timeout)
            if got_tag == tag:
                return obj
            self.pending.setdefault(got_tag, []).append(obj)

    def _lost(self, error: BaseException | None) -> CommError:
        if self.abort.is_set():
            return CommError(f"the group was aborted (connection to {self.peer} closed)")
        why = f": {error}" if error is not None and str(error) else ""
        return CommError(f"lost the rank on worker {self.peer} (its connection closed{why}); "
                         "that worker died or its task failed")


class Channel(ChannelBase):
    """One connected socket to one peer rank: framed messages in order, tag matching on receipt.

    Parameters
    ----------
    sock : socket.socket
        A connected TCP socket.
    peer : str
        The peer's worker address (for error messages).
    abort : threading.Event
        Set when the group is aborted: waits end with :class:`CommError`.
    """

    def __init__(self, sock: socket.socket, peer: str, abort: threading.Event, inline_bytes: int) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)
        self.sock, self.peer, self.abort, self.inline_bytes = sock, peer, abort, inline_bytes
        self.pending: dict[Any, list] = {}          # tag -> messages that arrived before their recv
        self._sender: threading.Thread | None = None
        self._outbox: queue.Queue = queue.Queue()
        self._send_lock = threading.Lock()
        self._queued = 0                             # messages handed to the sender thread, not yet written
        self._send_error: BaseException | None = None
        self.closed = False
        self._rbuf = bytearray(1 << 18)
        self._rstart = self._rend = 0
        self._timeout = 0.0
        self.bytes_sent = 0
        self.bytes_received = 0

    # -- sending -----------------------------------------------------------------------
    def _write(self, frames: list) -> None:
        views = _views(frames)
        try:
            while views:                             # (a partial write: the rest)
                sent = self.sock.sendmsg(views)
                self.bytes_sent += sent
                views = _rest(views, sent)
        except OSError as e:
            raise self._lost(e) from None

    def _sender_loop(self) -> None:
        while True:
            item = self._outbox.get()
            if item is None:
                return
            frames, done = item
            try:
                if self._send_error is None:
                    with self._send_lock:
                        self._write(frames)
            except BaseException as e:              # reported to the rank thread by wait()
                self._send_error = e
            finally:
                with self._send_lock:
                    self._queued -= 1
                done.set()

    def _write_nowait(self, frames: list) -> list:
        """Write what the kernel takes now without waiting; the views still to send."""
        views = _views(frames)
        try:
            sent = self.sock.sendmsg(views, [], _DONTWAIT)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as e:
            raise self._lost(e) from None
        self.bytes_sent += sent
        return _rest(views, sent)

    def isend(self, tag: Any, obj: Any) -> threading.Event:
        """Start sending; the returned event is set once the bytes are written (the object's
        buffers must not change before that).

        A message with nothing queued ahead of it is written by the calling thread, at once: a
        small one (``inline-bytes``) in full, a larger one as far as the kernel's socket buffer
        takes it without waiting; what is left goes to the channel's sender thread (so that a
        rank that sends and receives at once never blocks in its send)."""
        frames = encode((tag, obj))
        small = nbytes_of(frames) <= self.inline_bytes
        with self._send_lock:
            if self._queued == 0:                   # nothing ahead of it: write now, in order
                if small:
                    self._write(frames)
                    return _SENT
                if _DONTWAIT:
                    frames = self._write_nowait(frames)
                    if not frames:
                        return _SENT
            done = threading.Event()
            self._queued += 1                       # (under the lock: nothing overtakes the rest)
            self._outbox.put((frames, done))
        if self._sender is None:
            with self._send_lock:
                if self._sender is None:
                    self._sender = threading.Thread(target=self._sender_loop, name=f"daskpml-send-{self.peer}",
                                                    daemon=True)
                    self._sender.start()
        return done

    def wait(self, done: threading.Event, timeout: float) -> None:
        """Wait for an :meth:`isend` to finish (raises what the sender thread met)."""
        if done is _SENT:
            return
        deadline = time.monotonic() + timeout
        while not done.wait(0.2):
            if self.abort.is_set():
                raise CommError(f"the group was aborted while sending to {self.peer}")
            if time.monotonic() > deadline:
                raise CommError(f"sending to the rank on {self.peer} did not finish within "
                                f"daskpml.comm.timeout={timeout:g} s: that worker stopped reading")
        if self._send_error is not None:
            raise self._send_error

    # -- receiving ---------------------------------------------------------------------
    def _fill(self, deadline: float) -> None:
        """Read what the socket has into the receive buffer (at least one byte)."""
        sock, buf = self.sock, self._rbuf
        if self._rend == len(buf):                   # compact: keep the unread tail at the front
            tail = self._rend - self._rstart
            buf[:tail] = buf[self._rstart:self._rend]
            self._rstart, self._rend = 0, tail
        view = memoryview(buf)[self._rend:]
        while True:
            try:
                k = sock.recv_into(view, len(view), socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                k = -1
            except OSError as e:
                raise self._lost(e) from None
            if k == 0:
                raise self._lost(None)
            if k > 0:
                self._rend += k
                return
            self._wait_readable(deadline)

    def _wait_readable(self, deadline: float) -> None:
        # The socket stays blocking (its sender thread may be writing); select bounds the wait
        # so that an abort or the deadline is noticed.
        while True:
            try:
                ready, _, _ = select.select([self.sock], [], [], 0.5)
            except (OSError, ValueError) as e:
                raise self._lost(e) from None
            if ready:
                return
            if self.abort.is_set():
                raise CommError(f"the group was aborted while waiting for the rank on {self.peer}")
            if time.monotonic() > deadline:
                raise CommError(f"the rank on {self.peer} sent nothing for daskpml.comm.timeout="
                                f"{self._timeout:g} s; it is stuck or its worker is unreachable")

    def _take(self, n: int, deadline: float) -> bytearray | np.ndarray:
        """The next ``n`` bytes of the stream: from the buffer, the rest read straight into place."""
        have = self._rend - self._rstart
        if n <= have:
            out = self._rbuf[self._rstart:self._rstart + n]
            self._rstart += n
            return out
        if n <= len(self._rbuf) // 4:                # small: refill the buffer
            while self._rend - self._rstart < n:
                if self._rend == len(self._rbuf) and self._rstart == 0:
                    break
                self._fill(deadline)
            if self._rend - self._rstart >= n:
                out = self._rbuf[self._rstart:self._rstart + n]
                self._rstart += n
                return out
            have = self._rend - self._rstart
        out = np.empty(n, dtype=np.uint8)            # large: one allocation (not zeroed), read in place
        out[:have] = np.frombuffer(memoryview(self._rbuf)[self._rstart:self._rend], dtype=np.uint8)
        self._rstart = self._rend = 0
        view = memoryview(out)
        got = have
        while got < n:
            try:
                k = self.sock.recv_into(view[got:], n - got, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                self._wait_readable(deadline)
                continue
            except OSError as e:
                raise self._lost(e) from None
            if k == 0:
                raise self._lost(None)
            got += k
        return out

    def next_message(self, timeout: float) -> tuple[Any, Any]:
        """The next message from this peer, whatever its tag: ``(tag, obj)``."""
        self._timeout = timeout
        deadline = time.monotonic() + timeout
        (count,) = _Q.unpack(self._take(8, deadline))
        lengths = struct.unpack(f"{count}Q", self._take(8 * count, deadline))
        frames = [self._take(n, deadline) for n in lengths]
        self.bytes_received += 8 * (count + 1) + sum(lengths)
        return decode(frames)

    def readable(self) -> bool:
        """Bytes already buffered here (``select`` cannot see them)."""
        return self._rend > self._rstart

    def poll(self) -> bool:
        """Whether a message is waiting (already received or readable now)."""
        if any(self.pending.values()) or self.readable():
            return True
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True                               # closed: recv will raise the error
        return bool(readable)

    @staticmethod
    def wait_any(channels: Sequence["Channel"], timeout: float) -> list:
        """The channels among ``channels`` with a message to read (or a closed connection),
        waiting up to ``timeout`` seconds for one; [] when none came."""
        ready = [ch for ch in channels if ch.readable()]
        if ready or not channels:
            return ready
        by_fd = {ch.sock.fileno(): ch for ch in channels}
        try:
            fds, _, _ = select.select(list(by_fd), [], [], max(0.0, timeout))
        except (OSError, ValueError):               # a socket closed meanwhile: its read raises
            return list(channels)
        return [by_fd[fd] for fd in fds]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._sender is not None:
            self._outbox.put(None)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def hello(gid: str, rank: int) -> list:
    """The first message on a new connection: which group and rank it belongs to."""
    return encode(("hello", (gid, int(rank))))


def read_hello(sock: socket.socket, timeout: float) -> tuple[str, int]:
    sock.settimeout(timeout)
    try:
        def exact(n: int) -> bytes:
            buf = b""
            while len(buf) < n:
                part = sock.recv(n - len(buf))
                if not part:
                    raise ConnectionError("closed during the handshake")
                buf += part
            return buf

        (count,) = _Q.unpack(exact(8))
        lengths = struct.unpack(f"{count}Q", exact(8 * count))
        frames = [exact(n) for n in lengths]
    finally:
        sock.settimeout(None)
    kind, (gid, rank) = decode(frames)
    if kind != "hello":
        raise ConnectionError(f"unexpected first message {kind!r}")
    return gid, rank


def send_frames(sock: socket.socket, frames: list) -> None:
    sock.sendall(b"".join(bytes(memoryview(f)) for f in frames))
