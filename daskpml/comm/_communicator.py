"""Collectives over the channels of one SPMD group.

Algorithms (``P`` ranks, ``n`` bytes, latency ``a``, inverse bandwidth ``b``):

- ``allreduce``: up to ``daskpml.comm.small-bytes`` (and on two ranks, where one exchange of the
  whole vector moves as many bytes as the ring's two half steps) recursive doubling (``log2 P`` exchanges of the
  whole vector: ``a log2 P + b n log2 P``, latency-optimal; a count that is not a power of two
  first folds the extra ranks in and sends them the result at the end); beyond it a ring
  reduce-scatter and all-gather (``2 (P - 1)`` steps of ``n / P`` bytes: ``2 a (P - 1) +
  2 b n (P - 1) / P``, bandwidth-optimal).
- ``broadcast`` / ``reduce``: binomial trees (``ceil(log2 P)`` levels).
- ``allgather``: a ring (``P - 1`` steps); ``gather``: every rank to the root.

Every rank gets the same bits from ``allreduce``: in recursive doubling both partners combine the
lower rank's operand first; in the ring each segment is reduced by one rank and then copied. That
makes state computed from reduced values (line searches, L-BFGS pairs) identical on every rank.

CuPy arrays: where every rank has CuPy with NCCL and its own GPU (``daskpml.comm.nccl``, on by
default), ``allreduce``, ``broadcast`` and ``reduce`` of a CuPy array run over NCCL
(``cupy.cuda.nccl``; the unique id is broadcast over the group's own connections by the first
CuPy collective, which also checks that every rank can take part, so all ranks decide alike).
Otherwise, and for ops NCCL lacks (a callable) or dtypes it lacks, the array is staged through
host memory.

Collective messages carry a per-group sequence number, so successive collectives, and user
``send``/``recv`` with their own tags, never cross.
"""

from __future__ import annotations

import socket
import time
from typing import Any, Callable, Sequence

import numpy as np

from .. import _config
from ._transport import Channel, CommError

_OPS: dict[str, Callable[[Any, Any], Any]] = {"sum": np.add, "prod": np.multiply, "max": np.maximum,
                                              "min": np.minimum}
_UFUNCS = tuple(_OPS.values())


def _op(op: str | Callable) -> Callable[[Any, Any], Any]:
    if callable(op):
        return op
    try:
        return _OPS[op]
    except KeyError:
        raise ValueError(f"op must be one of {sorted(_OPS)} or a callable(a, b), got {op!r}.") from None


def _in_place(fn: Any, mine: np.ndarray, theirs: Any) -> bool:
    """Whether ``fn`` is one of the NumPy ops and can write its result into ``theirs``."""
    return (fn in _UFUNCS and isinstance(theirs, np.ndarray) and theirs.flags.writeable
            and theirs.dtype == mine.dtype and theirs.shape == mine.shape)


def _on_device(x: Any) -> bool:
    """A CuPy (CUDA) array."""
    return hasattr(x, "__cuda_array_interface__") and not isinstance(x, np.ndarray)


def _nccl_device() -> str | None:
    """This process's GPU (its PCI bus id) when CuPy with NCCL can run a collective here, else None."""
    if not _config.get("comm.nccl"):
        return None
    try:
        import cupy
        from cupy.cuda import nccl
    except Exception:                               # no CuPy, or CuPy built without NCCL
        return None
    if not getattr(nccl, "available", True):
        return None
    try:
        dev = cupy.cuda.Device()
        return f"{socket.gethostname()}/{getattr(dev, 'pci_bus_id', dev.id)}"
    except Exception:                               # no usable device
        return None


def _nccl_names(dtype: Any, op: Any) -> tuple[str, str] | None:
    """NCCL's names of the datatype and op for a NumPy dtype and a named op, or None where NCCL
    has none (decided from the arguments alone, so every rank decides alike)."""
    types = {"float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64",
             "int8": "NCCL_INT8", "uint8": "NCCL_UINT8", "int32": "NCCL_INT32", "uint32": "NCCL_UINT32",
             "int64": "NCCL_INT64", "uint64": "NCCL_UINT64"}
    ops = {"sum": "NCCL_SUM", "prod": "NCCL_PROD", "max": "NCCL_MAX", "min": "NCCL_MIN"}
    t = types.get(np.dtype(dtype).name)
    o = ops.get(op) if isinstance(op, str) else None
    return None if t is None or o is None else (t, o)


class _DeviceHead:
    """What the root of a broadcast sends first for a CuPy array: its shape and dtype."""

    def __init__(self, shape: tuple, dtype: str) -> None:
        self.shape, self.dtype = tuple(shape), dtype


def _host(x: Any) -> tuple[np.ndarray, Any]:
    """A host (NumPy) copy-or-view of an array and its array namespace's ``asarray``."""
    if isinstance(x, np.ndarray):
        return x, None
    if hasattr(x, "__cuda_array_interface__") or hasattr(x, "get"):
        from ..backend import get_namespace, to_numpy

        return to_numpy(x), get_namespace(x)[0].asarray
    return np.asarray(x), None


class Communicator:
    """The ranks of one SPMD group and the collectives between them (see :func:`spmd`).

    Parameters
    ----------
    gid : str
        The group's id.
    rank : int
        This rank (0 ... size - 1).
    workers : list of str
        The worker address of every rank.
    channels : dict
        One :class:`~daskpml.comm._transport.Channel` per peer rank.
    blocks : list of int
        The global indices of the blocks this rank holds.
    timeout : float
        Seconds a rank waits for a peer before :class:`CommError`.
    small_bytes : int
        Largest message reduced by recursive doubling (larger: the ring).
    state : object
        The group's state on this worker (control messages, reports).

    Attributes
    ----------
    rank, size : int
        This rank and the number of ranks.
    workers : list of str
        The worker address of each rank.
    blocks : list of int
        The global indices of the blocks passed to this rank's function.

    Examples
    --------
    >>> import numpy as np
    >>> from daskpml.comm import spmd
    >>> def total(comm, parts):
    ...     local = np.array([float(sum(p.sum() for p in parts))])
    ...     return float(comm.allreduce(local)[0])
    >>> spmd(total, np.arange(6.0))          # in-memory data: one rank, no cluster
    [15.0]
    """

    def __init__(self, gid: str, rank: int, workers: Sequence[str], channels: dict[int, Channel],
                 blocks: Sequence[int], *, timeout: float, small_bytes: int, state: Any = None) -> None:
        self.gid, self.rank, self.size = gid, int(rank), len(workers)
        self.workers = list(workers)
        self.blocks = list(blocks)
        self.channels = channels
        self.timeout, self.small_bytes = float(timeout), int(small_bytes)
        self.state = state
        self._seq = 0
        self.collectives = 0                 # collective calls so far (every rank counts the same)
        self._nccl: Any = None               # NCCL communicator; False once the group found it cannot use one

    def __repr__(self) -> str:
        return f"<Communicator rank {self.rank} of {self.size}>"

    # -- point to point -----------------------------------------------------------------
    def _ch(self, peer: int) -> Channel:
        if not 0 <= peer < self.size or peer == self.rank:
            raise ValueError(f"rank {self.rank}: peer must be another rank in 0..{self.size - 1}, got {peer}.")
        return self.channels[peer]

    def send(self, x: Any, dest: int, tag: Any = 0) -> None:
        """Send ``x`` (an array or any picklable object) to rank ``dest``; returns once it is written.

        Parameters
        ----------
        x : object
            What to send. Arrays travel out of band, without a copy into the pickle.
        dest : int
            The receiving rank.
        tag : hashable, default 0
            Matched by :meth:`recv`; messages with other tags wait for their own receive.
        """
        self._ch(dest).send(("u", tag), x, self.timeout)

    def isend(self, x: Any, dest: int, tag: Any = 0) -> Callable[[], None]:
        """Start sending ``x``; returns ``wait()``, to call before ``x`` changes."""
        ch = self._ch(dest)
        done = ch.isend(("u", tag), x)
        return lambda: ch.wait(done, self.timeout)

    def recv(self, source: int, tag: Any = 0) -> Any:
        """The next object rank ``source`` sent with ``tag`` (waits up to ``daskpml.comm.timeout``).

        Parameters
        ----------
        source : int
            The sending rank.
        tag : hashable, default 0
            The tag given to :meth:`send`.

        Returns
        -------
        obj : object
            What was sent.
        """
        return self._ch(source).recv(("u", tag), self.timeout)

    def recv_any(self, tag: Any = 0, sources: Sequence[int] | None = None,
                 timeout: float | None = None, raise_on_timeout: bool = True) -> tuple[int, Any]:
        """The next object with ``tag`` from any of ``sources`` (default: every other rank).

        Parameters
        ----------
        tag : hashable, default 0
            The tag given to :meth:`send`.
        sources : list of int, optional
            The ranks to listen to.
        timeout : float, optional
            Seconds to wait (default ``daskpml.comm.timeout``); :class:`CommError` after it.
        raise_on_timeout : bool, default True
            False: return ``(None, None)`` when ``timeout`` passes (a poll); a peer whose
            connection closes still raises :class:`CommError`.

        Returns
        -------
        source : int
            The rank that sent it.
        obj : object
            What was sent.
        """
        peers = [p for p in (range(self.size) if sources is None else sources) if p != self.rank]
        if not peers:
            raise ValueError("recv_any needs at least one other rank to listen to.")
        key = ("u", tag)
        limit = self.timeout if timeout is None else float(timeout)
        deadline = time.monotonic() + limit
        while True:
            for p in peers:                      # messages that already arrived, fairly
                waiting = self.channels[p].pending.get(key)
                if waiting:
                    return p, waiting.pop(0)
            got = None
            for p, got_tag, obj in self.next_messages(peers, min(0.2, max(0.0, deadline - time.monotonic()))):
                if got is None and got_tag == key:
                    got = (p, obj)
                else:
                    self.channels[p].pending.setdefault(got_tag, []).append(obj)
            if got is not None:
                return got
            if time.monotonic() > deadline:
                if not raise_on_timeout:
                    return None, None
                raise CommError(f"rank {self.rank}: no message with tag {tag!r} within {limit:g} s")

    def next_messages(self, sources: Sequence[int], timeout: float) -> list[tuple[int, Any, Any]]:
        """The next message, whatever its tag, from each of ``sources`` that has one, waiting up to
        ``timeout`` seconds for the first: a list of ``(source, tag, obj)`` (empty when none came).

        The tags are the channel's own: ``("u", tag)`` for :meth:`send`, ``("c", n)`` for the
        collectives. For code that serves requests from several ranks at once (a parameter
        server); a message it does not handle belongs in ``comm.channels[source].pending[tag]``.

        Raises
        ------
        CommError
            A connection of the group closed, or the group was aborted.
        """
        chans = [self.channels[p] for p in sources]
        if any(ch.closed for ch in chans):
            raise CommError(f"rank {self.rank}: a connection of the group is closed")
        if not chans:
            return []
        ready = type(chans[0]).wait_any(chans, timeout)
        if not ready:
            if self.state is not None and self.state.abort.is_set():
                raise CommError("the group was aborted")
            return []
        which = {id(ch): p for p, ch in zip(sources, chans)}
        return [(which[id(ch)], *ch.next_message(self.timeout)) for ch in ready]

    def probe(self, source: int, tag: Any = 0) -> bool:
        """Whether a message from ``source`` is waiting (never blocks; ``tag`` is not checked for
        bytes still on the socket)."""
        return self._ch(source).poll()

    # -- collectives ----------------------------------------------------------------------
    def _tag(self) -> tuple:
        self._seq += 1
        self.collectives += 1
        return ("c", self._seq)

    def _exchange(self, peer: int, tag: Any, obj: Any) -> Any:
        ch = self.channels[peer]
        done = ch.isend(tag, obj)
        got = ch.recv(tag, self.timeout)
        ch.wait(done, self.timeout)
        return got

    def allreduce(self, x: Any, op: str | Callable = "sum") -> Any:
        """Combine ``x`` over all ranks; every rank gets the same result (the same bits).

        Parameters
        ----------
        x : array (NumPy or CuPy) or number
            This rank's contribution; the same shape and dtype on every rank.
        op : {"sum", "prod", "max", "min"} or callable(a, b)
            How to combine two contributions (associative and commutative).

        Returns
        -------
        out : array or number
            For a writable array, ``x`` itself, overwritten with the result (in place); otherwise
            the result.
        """
        fn = _op(op)
        if self.size > 1 and _on_device(x) and self._device_collective("allReduce", x, op) is not None:
            return x
        tag = self._tag()
        scalar = isinstance(x, (int, float, complex, np.generic))
        host, back = _host(x)
        if self.size == 1:
            return x
        if scalar:
            out = self._recursive_doubling(np.asarray(host).reshape(1), fn, tag)
            return out[0].item() if isinstance(x, (int, float)) else out[0]
        if host.nbytes <= self.small_bytes or self.size == 2:     # two ranks: one exchange is optimal
            out = self._recursive_doubling(np.ascontiguousarray(host), fn, tag)
        else:
            out = self._ring(host, fn, tag)
        if back is not None:
            x[...] = back(out.reshape(x.shape))
            return x
        if isinstance(x, np.ndarray) and x.flags.writeable:
            np.copyto(x, out.reshape(x.shape), casting="unsafe")
            return x
        return out.reshape(np.shape(x))

    def _recursive_doubling(self, buf: np.ndarray, fn: Callable, tag: Any) -> np.ndarray:
        P, r = self.size, self.rank
        p2 = 1 << (P.bit_length() - 1)
        extra = P - p2
        if r >= p2:                              # folded in: hand over, wait for the result
            ch = self.channels[r - p2]
            ch.send(tag, buf, self.timeout)
            return ch.recv(tag, self.timeout)
        if r < extra:
            buf = fn(buf, self.channels[r + p2].recv(tag, self.timeout))
        mask = 1
        while mask < p2:
            partner = r ^ mask
            theirs = self._exchange(partner, tag, buf)
            # (the lower rank's operand first everywhere: the same bits on both; a NumPy op
            # writes into the received buffer, which is this rank's own, instead of a new one)
            a, b = (buf, theirs) if r < partner else (theirs, buf)
            buf = fn(a, b, out=theirs) if _in_place(fn, buf, theirs) else fn(a, b)
            mask <<= 1
        if r < extra:
            self.channels[r + p2].send(tag, buf, self.timeout)
        return buf

    def _ring(self, host: np.ndarray, fn: Callable, tag: Any) -> np.ndarray:
        P, r = self.size, self.rank
        flat = np.array(host, copy=True).reshape(-1)
        bounds = np.linspace(0, flat.size, P + 1).astype(np.int64)
        seg = [slice(int(bounds[i]), int(bounds[i + 1])) for i in range(P)]
        right, left = self.channels[(r + 1) % P], self.channels[(r - 1) % P]
        for s in range(P - 1):                   # reduce-scatter
            send_i, recv_i = (r - s) % P, (r - s - 1) % P
            done = right.isend(tag, flat[seg[send_i]])
            got = left.recv(tag, self.timeout)
            mine = flat[seg[recv_i]]
            if _in_place(fn, mine, got):
                fn(mine, got, out=mine)
            else:
                flat[seg[recv_i]] = fn(mine, got)
            right.wait(done, self.timeout)
        for s in range(P - 1):                   # all-gather of the reduced segments
            send_i, recv_i = (r + 1 - s) % P, (r - s) % P
            done = right.isend(tag, flat[seg[send_i]])
            flat[seg[recv_i]] = left.recv(tag, self.timeout)
            right.wait(done, self.timeout)
        return flat

    @property
    def uses_nccl(self) -> bool:
        """Whether the group's CuPy collectives go over NCCL (decided by the first of them; False
        before it, and where some rank lacks CuPy with NCCL or two ranks share a GPU)."""
        return bool(self._nccl)

    def _nccl_comm(self) -> Any:
        """The group's NCCL communicator, made by the first CuPy collective (every rank calls
        it at the same point): None where some rank lacks CuPy with NCCL or two ranks share a GPU."""
        if self._nccl is None:
            devices = self.allgather(_nccl_device())
            if all(devices) and len(set(devices)) == self.size:
                from cupy.cuda import nccl

                uid = self._tree_broadcast(nccl.get_unique_id() if self.rank == 0 else None, 0)
                self._nccl = nccl.NcclCommunicator(self.size, uid, self.rank)
            else:
                self._nccl = False
        return self._nccl or None

    def _device_collective(self, name: str, x: Any, op: Any, root: int = 0) -> Any:
        """NCCL's ``name`` (allReduce, reduce, bcast) on the CuPy array ``x``, in place; for bcast
        on a non-root rank ``x`` is the root's :class:`_DeviceHead` and a new array is returned.
        None (nothing done) where NCCL cannot run it: the caller stages through host memory."""
        names = _nccl_names(x.dtype, op if name != "bcast" else "sum") if self._nccl is not False else None
        nc = self._nccl_comm() if names is not None else None
        if nc is None:
            return None
        import cupy
        from cupy.cuda import nccl

        dtype_code, op_code = getattr(nccl, names[0]), getattr(nccl, names[1])
        if isinstance(x, _DeviceHead):
            x = buf = cupy.empty(x.shape, dtype=x.dtype)
        else:
            buf = x if x.flags.c_contiguous else cupy.ascontiguousarray(x)
        stream = cupy.cuda.get_current_stream()
        ptr = buf.data.ptr
        self.collectives += 1
        if name == "allReduce":
            nc.allReduce(ptr, ptr, buf.size, dtype_code, op_code, stream.ptr)
        elif name == "reduce":
            nc.reduce(ptr, ptr, buf.size, dtype_code, op_code, root, stream.ptr)
        else:
            nc.bcast(ptr, buf.size, dtype_code, root, stream.ptr)
        stream.synchronize()
        if buf is not x:
            x[...] = buf
        return x

    def broadcast(self, x: Any = None, root: int = 0) -> Any:
        """``x`` from ``root`` on every rank (a binomial tree).

        Parameters
        ----------
        x : object
            The value on ``root`` (ignored elsewhere).
        root : int, default 0
            The rank whose value is sent.

        Returns
        -------
        x : object
            The root's value. A NumPy array on a non-root rank is a new array.
        """
        if self.size > 1 and self.rank == root and _on_device(x) and self._nccl is not False:
            head = self._tree_broadcast(_DeviceHead(x.shape, np.dtype(x.dtype).str), root)
        else:
            head = self._tree_broadcast(x, root)
        if not isinstance(head, _DeviceHead):
            return head
        got = self._device_collective("bcast", x if self.rank == root else head, None, root=root)
        if got is not None:
            return x if self.rank == root else got
        return self._tree_broadcast(x, root)     # NCCL cannot run here: through host memory

    def _tree_broadcast(self, x: Any, root: int) -> Any:
        tag = self._tag()
        P = self.size
        if P == 1:
            return x
        rel = (self.rank - root) % P
        mask = 1
        while mask < P:                          # receive from the parent
            if rel & mask:
                x = self.channels[(rel - mask + root) % P].recv(tag, self.timeout)
                break
            mask <<= 1
        mask >>= 1
        while mask > 0:                          # then send to the children
            if rel + mask < P:
                self.channels[(rel + mask + root) % P].send(tag, x, self.timeout)
            mask >>= 1
        return x

    def reduce(self, x: Any, root: int = 0, op: str | Callable = "sum") -> Any:
        """Combine ``x`` over all ranks onto ``root`` (a binomial tree).

        Parameters
        ----------
        x : array or number
            This rank's contribution.
        root : int, default 0
            The rank that receives the result.
        op : {"sum", "prod", "max", "min"} or callable(a, b)
            How to combine two contributions.

        Returns
        -------
        out : array, number or None
            The result on ``root``; None elsewhere.
        """
        fn = _op(op)
        P = self.size
        if P > 1 and _on_device(x) and self._nccl is not False:
            out = self._device_collective("reduce", x.copy(), op, root=root)
            if out is not None:
                return out if self.rank == root else None
        tag = self._tag()
        host, back = _host(x)
        if P == 1:
            return x
        rel = (self.rank - root) % P
        acc = np.array(host, copy=True)
        mask = 1
        while mask < P:
            if rel & mask:
                self.channels[(rel - mask + root) % P].send(tag, acc, self.timeout)
                return None
            if rel + mask < P:
                acc = fn(acc, self.channels[(rel + mask + root) % P].recv(tag, self.timeout))
            mask <<= 1
        if back is not None:
            return back(acc)
        return acc.item() if isinstance(x, (int, float, complex)) else acc

    def allgather(self, x: Any) -> list:
        """Every rank's ``x``, in rank order, on every rank (a ring).

        Parameters
        ----------
        x : object
            This rank's value.

        Returns
        -------
        values : list
            ``size`` values; entry ``i`` is rank ``i``'s.
        """
        tag = self._tag()
        P, r = self.size, self.rank
        out: list = [None] * P
        out[r] = x
        if P == 1:
            return out
        right, left = self.channels[(r + 1) % P], self.channels[(r - 1) % P]
        for s in range(P - 1):
            done = right.isend(tag, out[(r - s) % P])
            out[(r - s - 1) % P] = left.recv(tag, self.timeout)
            right.wait(done, self.timeout)
        return out

    def gather(self, x: Any, root: int = 0) -> list | None:
        """Every rank's ``x`` on ``root`` (a list in rank order); None elsewhere.

        Parameters
        ----------
        x : object
            This rank's value.
        root : int, default 0
            The rank that receives them.

        Returns
        -------
        values : list or None
            On ``root``, ``size`` values in rank order.
        """
        tag = self._tag()
        if self.rank != root:
            self.channels[root].send(tag, x, self.timeout)
            return None
        return [x if p == root else self.channels[p].recv(tag, self.timeout) for p in range(self.size)]

    def barrier(self) -> None:
        """Return once every rank has called it."""
        self.allreduce(np.zeros(1))

    # -- the driver ------------------------------------------------------------------------
    def report(self, message: Any) -> None:
        """Send ``message`` (any picklable object) to the caller of :func:`spmd`, without waiting:
        its ``on_message`` gets the messages of each rank in order while the group runs."""
        if self.state is not None:
            self.state.report(message)

    def control(self) -> list:
        """The messages the driver sent this rank (:meth:`SpmdGroup.signal`) since the last call."""
        return self.state.take_control() if self.state is not None else []

    def wait_control(self, timeout: float | None = None) -> list:
        """Wait for at least one message from the driver (``timeout`` seconds, default
        ``daskpml.comm.timeout``); :class:`CommError` when none comes."""
        if self.state is None:
            return []
        return self.state.wait_control(self.timeout if timeout is None else timeout)

    @property
    def bytes_sent(self) -> int:
        """Bytes this rank has written to its peers (measured at the connection)."""
        return sum(ch.bytes_sent for ch in self.channels.values())
