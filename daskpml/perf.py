"""How long communication takes on a dask cluster: cost models, their calibration on
the running cluster, a prediction of the speedup ratio, and the split of a run's time
into compute, communication and waiting from dask's task stream.

The models count, for one round of a pattern over ``P`` workers and ``n`` bytes, the
levels of dependent tasks it runs. A level costs ``a + c * tasks`` (``a``: the
scheduler's round trip and a message's start-up; ``c``: the scheduler's and workers'
cost per task) plus its transfers, ``max(b * bytes through the busiest worker,
beta * bytes of all its transfers)`` (``b``: one link; ``beta``: what the machine or the
network moves at most, which on one computer is the memory and the shared cores), plus
its local adds and copies at ``gamma`` seconds per byte, stretched by ``P / cores``
when the workers share fewer cores.

- **all-reduce** (:func:`allreduce`: reduce-scatter by recursive halving, then all-gather
  by recursive doubling; Rabenseifner's algorithm on futures). With only ``a`` and ``b``::

      T = (2 log2 P + 1) a + 2 b (P - 1) / P n

  Each worker sends and receives ``(P - 1) / P n`` bytes in each of the two phases, so
  the bandwidth term carries a factor 2 (the form ``2 a log P + b (P - 1) / P n`` often
  quoted counts one phase), and dask adds one local level that splits each vector in
  halves. For ``P`` not a power of two, the ``P - Q`` extra workers (``Q`` the largest
  power of two below ``P``) fold their vector into a partner first and receive the
  result last: ``+ 2 (a + b n)``.
- **parameter server** (:func:`parameter_server_round`: one server sums the ``P``
  vectors and sends the sum back; the pattern of daskpml's synchronous solvers, whose
  driver is the server)::

      T = 2 a + 2 b (P - 1) n

  The server's link carries every message, so the bandwidth term grows with ``P``.
- **gossip** (:func:`gossip_round`: each worker averages with ``peers`` ring neighbours)::

      T = peers (a + b n)

  independent of ``P``: the exchanges run side by side (until ``beta`` binds).

:func:`calibrate` fits the constants from worker-to-worker transfers of 1 KB to 100 MB
on the running cluster and measures its round-trip overhead, its add rate and the
compute rate of one worker. :meth:`CommModel.speedup` predicts the speedup ratio of a
synchronous data-parallel iteration from these numbers and the iteration's compute
(its data size, or its measured time on one worker).
"""

from __future__ import annotations

import math
import os
import statistics
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

PATTERNS = ("allreduce", "parameter_server", "gossip")


# ----------------------------------------------------------------------------- models
def _check(nbytes: float, n_workers: int) -> None:
    if not (np.isfinite(nbytes) and nbytes >= 0):
        raise ValueError(f"nbytes must be a finite number >= 0, got {nbytes!r}.")
    if int(n_workers) != n_workers or n_workers < 1:
        raise ValueError(f"n_workers must be a whole number >= 1, got {n_workers!r}.")


def _step(a: float, c: float, tasks: int, b: float, beta: float, per_worker: float, total: float) -> float:
    """One level of dependent tasks: its latency, and its transfers, bounded by the
    busiest worker's link and by what the whole machine (or network) can move."""
    return a + c * tasks + max(b * per_worker, beta * total)


def _share(active: int, cores: int | None) -> float:
    """How many workers share a core while ``active`` of them compute at once."""
    return max(1.0, active / cores) if cores else 1.0


def allreduce_time(nbytes: float, n_workers: int, *, latency: float, inv_bandwidth: float, per_task: float = 0.0,
                   shared_inv_bandwidth: float = 0.0, reduce_per_byte: float = 0.0,
                   cores: int | None = None) -> float:
    """Modelled time of :func:`allreduce` of ``nbytes`` over ``n_workers`` (see the module doc).

    Parameters
    ----------
    nbytes : float
        Bytes of each vector.
    n_workers : int
        Workers taking part.
    latency : float
        ``a``: seconds per level of dependent tasks.
    inv_bandwidth : float
        ``b``: seconds per byte sent by one worker.
    per_task : float, default 0.0
        Scheduler seconds per task.
    shared_inv_bandwidth : float, default 0.0
        Seconds per byte of the link all workers share.
    reduce_per_byte : float, default 0.0
        Seconds per byte added.
    cores : int, optional
        Cores of the machine (workers beyond share them).

    Returns
    -------
    seconds : float
        The modelled time.

    Examples
    --------
    >>> allreduce_time(8e6, 4, latency=2e-3, inv_bandwidth=1e-9) > allreduce_time(8e3, 4, latency=2e-3, inv_bandwidth=1e-9)
    True
    """
    _check(nbytes, n_workers)
    P = int(n_workers)
    if P == 1:
        return 0.0
    q = 1 << math.floor(math.log2(P))
    a, c, b, beta, g = latency, per_task, inv_bandwidth, shared_inv_bandwidth, reduce_per_byte
    t = 0.0
    if P > q:                                               # fold in, and hand the result back at the end
        t += 2 * _step(a, c, P - q, b, beta, nbytes, (P - q) * nbytes) + g * nbytes * _share(P - q, cores)
    t += _step(a, c, 2 * q, 0.0, 0.0, 0.0, 0.0)             # split each vector into halves
    m = nbytes
    steps = int(math.log2(q))
    for k in range(steps):
        m /= 2
        tasks = q if k == steps - 1 else 2 * q
        t += _step(a, c, tasks, b, beta, m, q * m) + g * m * _share(q, cores)     # reduce-scatter step
        t += _step(a, c, q, b, beta, m, q * m)                                    # its mirror in the all-gather
    return t + g * nbytes * _share(q, cores)                # the one concatenation, at the last gather step


def parameter_server_time(nbytes: float, n_workers: int, *, latency: float, inv_bandwidth: float,
                          per_task: float = 0.0, shared_inv_bandwidth: float = 0.0,
                          reduce_per_byte: float = 0.0, cores: int | None = None) -> float:
    """Modelled time of :func:`parameter_server_round`: the server receives ``P - 1``
    vectors and adds them, then sends ``P - 1`` copies of the sum.

    Parameters
    ----------
    nbytes : float
        Bytes of each vector.
    n_workers : int
        Workers taking part.
    latency : float
        ``a``: seconds per level of dependent tasks.
    inv_bandwidth : float
        ``b``: seconds per byte sent by one worker.
    per_task : float, default 0.0
        Scheduler seconds per task.
    shared_inv_bandwidth : float, default 0.0
        Seconds per byte of the link all workers share.
    reduce_per_byte : float, default 0.0
        Seconds per byte added.
    cores : int, optional
        Cores of the machine (workers beyond share them).

    Returns
    -------
    seconds : float
        The modelled time.

    Examples
    --------
    >>> parameter_server_time(1e6, 8, latency=2e-3, inv_bandwidth=1e-9) > 0
    True
    """
    _check(nbytes, n_workers)
    P = int(n_workers)
    if P == 1:
        return 0.0
    b, beta, moved = inv_bandwidth, shared_inv_bandwidth, (P - 1) * nbytes
    return (_step(latency, per_task, 1, b, beta, moved, moved) + reduce_per_byte * moved
            + _step(latency, per_task, P, b, beta, moved, moved))


def gossip_time(nbytes: float, n_workers: int, *, latency: float, inv_bandwidth: float, per_task: float = 0.0,
                shared_inv_bandwidth: float = 0.0, reduce_per_byte: float = 0.0, cores: int | None = None,
                peers: int = 1) -> float:
    """Modelled time of :func:`gossip_round`, each worker averaging with ``peers`` others.

    Parameters
    ----------
    nbytes : float
        Bytes of each vector.
    n_workers : int
        Workers taking part.
    latency : float
        ``a``: seconds per level of dependent tasks.
    inv_bandwidth : float
        ``b``: seconds per byte sent by one worker.
    per_task : float, default 0.0
        Scheduler seconds per task.
    shared_inv_bandwidth : float, default 0.0
        Seconds per byte of the link all workers share.
    reduce_per_byte : float, default 0.0
        Seconds per byte added.
    cores : int, optional
        Cores of the machine (workers beyond share them).
    peers : int, default 1
        Peers each worker averages with.

    Returns
    -------
    seconds : float
        The modelled time.

    Examples
    --------
    >>> gossip_time(1e6, 8, latency=2e-3, inv_bandwidth=1e-9) > 0
    True
    """
    _check(nbytes, n_workers)
    P = int(n_workers)
    if P == 1:
        return 0.0
    k = min(peers, P - 1)
    return (_step(latency, per_task, P, inv_bandwidth, shared_inv_bandwidth, k * nbytes, P * k * nbytes)
            + reduce_per_byte * (k + 1) * nbytes * _share(P, cores))


_MODELS: dict[str, Callable[..., float]] = {
    "allreduce": allreduce_time, "parameter_server": parameter_server_time, "gossip": gossip_time,
}


def _pattern(pattern: str, table: dict | None = None) -> Callable:
    """The model (or, with ``table=_ROUNDS``, the round on futures) of ``pattern``."""
    try:
        return (_MODELS if table is None else table)[pattern]
    except KeyError:
        raise ValueError(f"Unknown communication pattern {pattern!r}; use one of {PATTERNS}.") from None


@dataclass(frozen=True)
class CommModel:
    """Fitted communication and compute constants of one cluster (see :func:`calibrate`).

    Parameters
    ----------
    latency : float
        ``a``: seconds per level of dependent tasks.
    inv_bandwidth : float
        ``b``: seconds per byte sent by one worker.
    per_task : float, default 0.0
        Scheduler seconds per task.
    shared_inv_bandwidth : float, default 0.0
        Seconds per byte of the link all workers share.
    reduce_per_byte : float, default 0.0
        Seconds per byte added.
    overhead : float, default 0.0
        Seconds of client round trip per submitted graph.
    compute_per_byte : float, default 0.0
        Seconds per byte of a gradient sweep.
    cores : int, optional
        Cores of the machine (workers beyond share them).
    workers : sequence of str, optional
        The workers the work is pinned to (default all).
    fit : dict, optional
        The measurements and the fit's residuals.

    Attributes
    ----------
    latency : float
        ``a``: seconds per level of dependent tasks (the scheduler's round trip and a
        message's start-up).
    inv_bandwidth : float
        ``b``: seconds per byte through one worker's link.
    per_task : float
        Seconds the scheduler and workers add per task in a level.
    shared_inv_bandwidth : float
        Seconds per byte of all the traffic of a level together: what the machine (or
        the network) moves at most. On one computer, workers share memory bandwidth and
        cores, and this bound, not ``b``, sets the time of collectives.
    reduce_per_byte : float
        Seconds per byte of adding two vectors on a worker.
    overhead : float
        One client -> scheduler -> worker -> client round trip (s): the fixed cost of
        each iteration a driver runs.
    compute_per_byte : float
        Seconds one worker thread takes per byte of data in a gradient pass (``X.T @ (X @ w)``).
    cores : int or None
        Cores the workers can use at once; ``None`` when each worker has its own. On one
        computer with fewer cores than workers, compute stops scaling at ``cores``.
    workers : int
        Workers the constants were measured with.
    fit : dict
        Sizes (bytes), the measured times (s) and the fit's largest relative error.

    Examples
    --------
    >>> m = CommModel(latency=2e-3, inv_bandwidth=1e-9)
    >>> m.comm_time(8e6, 4) > 0
    True
    """

    latency: float
    inv_bandwidth: float
    per_task: float = 0.0
    shared_inv_bandwidth: float = 0.0
    reduce_per_byte: float = 0.0
    overhead: float = 0.0
    compute_per_byte: float = 0.0
    cores: int | None = None
    workers: int = 2
    fit: dict = field(default_factory=dict, compare=False)

    def comm_time(self, nbytes: float, n_workers: int, pattern: str = "allreduce", **kwargs: Any) -> float:
        """Modelled communication time of one round of ``pattern``."""
        return _pattern(pattern)(nbytes, n_workers, latency=self.latency, inv_bandwidth=self.inv_bandwidth,
                                 per_task=self.per_task, shared_inv_bandwidth=self.shared_inv_bandwidth,
                                 reduce_per_byte=self.reduce_per_byte, cores=self.cores, **kwargs)

    def iteration_time(self, *, model_bytes: float, n_workers: int, data_bytes: float | None = None,
                       compute_s: float | None = None, pattern: str = "parameter_server") -> float:
        """Modelled time of one synchronous data-parallel iteration: the driver's round
        trip, the gradient pass split over the workers (no faster than ``cores`` allow),
        and one round of ``pattern`` on ``model_bytes``.

        The pass takes ``compute_s`` seconds on one worker when given (measure one
        iteration), else ``compute_per_byte * data_bytes``."""
        if (data_bytes is None) == (compute_s is None):
            raise ValueError("give exactly one of data_bytes (bytes one iteration reads) and compute_s "
                             "(seconds one iteration computes on one worker).")
        work = compute_s if compute_s is not None else self.compute_per_byte * data_bytes
        _check(work, n_workers)
        parallel = n_workers if self.cores is None else min(n_workers, self.cores)
        return self.overhead + work / parallel + self.comm_time(model_bytes, n_workers, pattern)

    def speedup(self, *, model_bytes: float, n_workers: int, data_bytes: float | None = None,
                compute_s: float | None = None, pattern: str = "parameter_server") -> float:
        """Predicted speedup ratio (time on 1 worker / time on ``n_workers``) of a
        synchronous data-parallel iteration (arguments as :meth:`iteration_time`)."""
        kw = dict(model_bytes=model_bytes, data_bytes=data_bytes, compute_s=compute_s, pattern=pattern)
        return self.iteration_time(n_workers=1, **kw) / self.iteration_time(n_workers=n_workers, **kw)

    def to_dict(self) -> dict:
        return asdict(self)


# ----------------------------------------------------------------------------- patterns on futures
def _ones(n: int, seed: int, backend: str = "numpy") -> Any:
    from .backend import to_backend

    return to_backend(np.full(n, 1.0 + seed * 1e-3), backend)


def _same(x: Any) -> Any:
    return x


def _half(x: Any, upper: bool) -> Any:
    h = x.shape[0] // 2
    return x[h:] if upper else x[:h]


def _add(*xs: Any) -> Any:
    out = xs[0] + xs[1]
    for x in xs[2:]:
        out += x
    return out


def _mean2(x: Any, y: Any) -> Any:
    return (x + y) * 0.5


def _pieces(first: Any, second: Any) -> tuple:
    """The pieces of two workers' parts of a vector, in order (no copy)."""
    return (*(first if isinstance(first, tuple) else (first,)), *(second if isinstance(second, tuple) else (second,)))


def _cat(first: Any, second: Any) -> Any:
    from .backend import get_namespace

    pieces = _pieces(first, second)
    xp, _ = get_namespace(pieces[0])
    return xp.concatenate(pieces)


def _on(client: Any, func: Callable, *args: Any, worker: str) -> Any:
    return client.submit(func, *args, workers=[worker], allow_other_workers=False, pure=False,
                         key=f"{func.__name__.strip('_')}-{uuid.uuid4().hex}")


def _placement(client: Any, parts: Sequence, workers: Sequence[str] | None) -> list[str]:
    if workers is None:
        who = client.who_has(list(parts))
        workers = []
        for f in parts:
            holders = who.get(f.key) or ()
            if not holders:
                raise ValueError("every part must be a finished future held by a worker; wait for them first "
                                 "or pass workers=[...] naming where each part lives.")
            workers.append(min(holders))
    if len(workers) != len(parts):
        raise ValueError(f"workers names {len(workers)} places for {len(parts)} parts; give one per part.")
    return list(workers)


def _sum_half(x: Any, y: Any, upper: bool) -> Any:
    h = x.shape[0] // 2
    return x[h:] + y[h:] if upper else x[:h] + y[:h]


def allreduce(client: Any, parts: Sequence, workers: Sequence[str] | None = None) -> list:
    """Sum the vectors ``parts`` (futures, one per worker) and leave the sum on every
    worker, by reduce-scatter (recursive halving) and all-gather (recursive doubling).

    Nothing passes through the client: each worker sends and receives ``(P - 1) / P`` of
    the vector in each phase, in ``log2 P`` steps, after one local level that splits each
    vector in halves. For ``P`` not a power of two the extra workers fold their vector
    into a partner first and get the sum from it last. Returns one future per part, on
    that part's worker.

    Parameters
    ----------
    client : distributed.Client
        The client of the cluster.
    parts : sequence of distributed.Future
        One vector per worker.
    workers : sequence of str, optional
        The workers the work is pinned to (default all).

    Returns
    -------
    futures : list of distributed.Future
        The sum, one future per part on its worker.

    Examples
    --------
    >>> import numpy as np
    >>> from distributed import Client, LocalCluster
    >>> with LocalCluster(n_workers=2, processes=False, dashboard_address=None) as c, Client(c) as client:
    ...     parts = [client.scatter(np.ones(4) * i) for i in (1, 2)]
    ...     print(client.gather(allreduce(client, parts))[0].tolist())
    [3.0, 3.0, 3.0, 3.0]
    """
    if len(parts) == 0:
        raise ValueError("allreduce needs at least one part.")
    where = _placement(client, parts, workers)
    P = len(parts)
    if P == 1:
        return list(parts)
    q = 1 << math.floor(math.log2(P))
    seg = list(parts[:q])
    for r in range(q, P):                                   # fold the extra workers in
        seg[r - q] = _on(client, _add, seg[r - q], parts[r], worker=where[r - q])
    halves = [(_on(client, _half, s, False, worker=where[i]), _on(client, _half, s, True, worker=where[i]))
              for i, s in enumerate(seg)]
    d = q // 2
    while d >= 1:                                           # reduce-scatter: keep one half, add the partner's
        pairs = [(halves[i][1 if i & d else 0], halves[i ^ d][1 if i & d else 0]) for i in range(q)]
        if d == 1:
            seg = [_on(client, _add, kept, got, worker=where[i]) for i, (kept, got) in enumerate(pairs)]
        else:
            halves = [(_on(client, _sum_half, kept, got, False, worker=where[i]),
                       _on(client, _sum_half, kept, got, True, worker=where[i]))
                      for i, (kept, got) in enumerate(pairs)]
        d //= 2
    d = 1
    while d < q:                            # all-gather: collect the pieces, concatenate once at the last step
        join = _cat if 2 * d == q else _pieces
        seg = [_on(client, join, *((seg[i], seg[i ^ d]) if not i & d else (seg[i ^ d], seg[i])), worker=where[i])
               for i in range(q)]
        d *= 2
    return seg + [_on(client, _same, seg[r - q], worker=where[r]) for r in range(q, P)]


def parameter_server_round(client: Any, parts: Sequence, workers: Sequence[str] | None = None) -> list:
    """One synchronous parameter-server round: the first part's worker sums all parts and
    every worker fetches the sum. Returns one future per part, on that part's worker.

    Parameters
    ----------
    client : distributed.Client
        The client of the cluster.
    parts : sequence of distributed.Future
        One vector per worker.
    workers : sequence of str, optional
        The workers the work is pinned to (default all).

    Returns
    -------
    futures : list of distributed.Future
        The sum, one future per part on its worker.

    Examples
    --------
    >>> import numpy as np
    >>> from distributed import Client, LocalCluster
    >>> with LocalCluster(n_workers=2, processes=False, dashboard_address=None) as c, Client(c) as client:
    ...     parts = [client.scatter(np.ones(2) * i) for i in (1, 2)]
    ...     print(client.gather(parameter_server_round(client, parts))[1].tolist())
    [3.0, 3.0]
    """
    where = _placement(client, parts, workers)
    total = _on(client, _add, *parts, worker=where[0]) if len(parts) > 1 else parts[0]
    return [_on(client, _same, total, worker=w) for w in where]


def gossip_round(client: Any, parts: Sequence, workers: Sequence[str] | None = None) -> list:
    """One gossip round on a ring: each worker averages its vector with its right
    neighbour's. Returns one future per part, on that part's worker.

    Parameters
    ----------
    client : distributed.Client
        The client of the cluster.
    parts : sequence of distributed.Future
        One vector per worker.
    workers : sequence of str, optional
        The workers the work is pinned to (default all).

    Returns
    -------
    futures : list of distributed.Future
        The averages, one future per part on its worker.

    Examples
    --------
    >>> import numpy as np
    >>> from distributed import Client, LocalCluster
    >>> with LocalCluster(n_workers=2, processes=False, dashboard_address=None) as c, Client(c) as client:
    ...     parts = [client.scatter(np.ones(2) * i) for i in (1, 3)]
    ...     print(client.gather(gossip_round(client, parts))[0].tolist())
    [2.0, 2.0]
    """
    where = _placement(client, parts, workers)
    P = len(parts)
    if P == 1:
        return list(parts)
    return [_on(client, _mean2, parts[i], parts[(i + 1) % P], worker=where[i]) for i in range(P)]


_ROUNDS: dict[str, Callable[..., list]] = {
    "allreduce": allreduce, "parameter_server": parameter_server_round, "gossip": gossip_round,
}


def _workers(client: Any, n_workers: int | None) -> list[str]:
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    if n_workers is not None:
        if n_workers > len(workers):
            raise ValueError(f"n_workers={n_workers} but the cluster has {len(workers)} workers.")
        workers = workers[:n_workers]
    return workers


def _vectors(client: Any, nbytes: int, workers: Sequence[str], backend: str) -> list:
    from distributed import wait

    n = max(1, int(nbytes) // 8)
    parts = [_on(client, _ones, n, i, backend, worker=w) for i, w in enumerate(workers)]
    wait(parts)
    return parts


def _timed_rounds(client: Any, step: Callable[[list], list], parts: list, rounds: int) -> float:
    from distributed import wait

    start = time.perf_counter()
    out = parts
    for _ in range(rounds):
        out = step(out)
    wait(out)
    elapsed = time.perf_counter() - start
    keep = {f.key for f in parts}
    client.cancel([f for f in out if f.key not in keep])
    return elapsed


def _per_round(client: Any, step: Callable[[list], list], parts: list, short: int, long: int,
               repeats: int) -> float:
    """Seconds per round, from chains of ``short`` and ``long`` rounds submitted at once
    (the difference cancels the submit and wait, which a chain pays once)."""
    diffs = []
    for _ in range(repeats):
        t_short = _timed_rounds(client, step, parts, short)
        t_long = _timed_rounds(client, step, parts, long)
        diffs.append((t_long - t_short) / (long - short))
    return max(statistics.median(diffs), 0.0)


def measure(client: Any, pattern: str, nbytes: int, n_workers: int | None = None, *, repeats: int = 3,
            rounds: tuple[int, int] = (1, 4), backend: str = "numpy") -> float:
    """Measured seconds per round of ``pattern`` on ``nbytes`` vectors held by
    ``n_workers`` workers (default all), without the client's submit and wait. The
    vectors are NumPy arrays, or CuPy arrays with ``backend="cupy"``.

    Parameters
    ----------
    client : distributed.Client
        The client of the cluster.
    pattern : {"allreduce", "parameter_server", "gossip"}
        The communication pattern.
    nbytes : float
        Bytes of each vector.
    n_workers : int
        Workers taking part.
    repeats : int, default 3
        Measurements per size (the median is kept).
    rounds : tuple of int, default (1, 4)
        Chains of dependent transfers timed; their difference gives the per-round time.
    backend : {"numpy", "cupy"}, default "numpy"
        Arrays measured.

    Returns
    -------
    seconds : float
        Median seconds per round.

    Examples
    --------
    >>> from distributed import Client, LocalCluster
    >>> with LocalCluster(n_workers=2, processes=False, dashboard_address=None) as c, Client(c) as client:
    ...     t = measure(client, "allreduce", 8000, repeats=1)
    >>> t >= 0
    True
    """
    step = _pattern(pattern, _ROUNDS)
    _check_backend(backend)
    return float(_chain_times(client, step, [nbytes], _workers(client, n_workers), rounds, repeats, backend)[0])


def _check_backend(backend: str) -> None:
    if backend not in ("numpy", "cupy"):
        raise ValueError(f"backend must be 'numpy' or 'cupy', got {backend!r}.")


def _hop(client: Any, parts: list, workers: list[str]) -> list:
    """Every worker hands its vector to its partner (pairs 0-1, 2-3, ...; an odd last
    worker keeps its own)."""
    out = list(parts)
    for i in range(0, len(workers) - 1, 2):
        out[i] = _on(client, _same, parts[i + 1], worker=workers[i])
        out[i + 1] = _on(client, _same, parts[i], worker=workers[i + 1])
    return out


def _ping(client: Any, parts: list, workers: list[str]) -> list:
    """The first worker's vector goes to the second worker and back: two transfers, one
    at a time."""
    there = _on(client, _same, parts[0], worker=workers[1])
    return [_on(client, _same, there, worker=workers[0]), parts[1]]


def _best_time(func: Callable[[], Any], repeats: int = 5) -> float:
    from .backend import synchronize

    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        synchronize(func())
        best = min(best, time.perf_counter() - t0)
    return best


def _add_rate(n: int, backend: str = "numpy") -> float:
    x, y = _ones(n, 0, backend), _ones(n, 1, backend)
    return _best_time(lambda: x + y) / x.nbytes


def _gradient_rate(rows: int, cols: int, backend: str = "numpy") -> float:
    from .backend import to_backend

    rng = np.random.default_rng(0)
    X = to_backend(rng.standard_normal((rows, cols)), backend)
    w = to_backend(rng.standard_normal(cols), backend)
    return _best_time(lambda: X.T @ (X @ w)) / X.nbytes


def _cores_shared(client: Any, workers: list[str]) -> int | None:
    info = client.scheduler_info(n_workers=-1)["workers"]
    cpus = client.run(os.cpu_count, workers=workers)
    by_host: dict[str, tuple[int, int]] = {}
    for w in workers:
        host = info[w].get("host", w)
        threads, _ = by_host.get(host, (0, 0))
        by_host[host] = (threads + int(info[w].get("nthreads", 1)), int(cpus.get(w) or 1))
    if all(threads <= cores for threads, cores in by_host.values()):
        return None
    return sum(min(threads, cores) for threads, cores in by_host.values())


DEFAULT_SIZES = (1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000)


def _chain_times(client: Any, hop: Callable, sizes: Sequence[int], workers: list[str], rounds: tuple[int, int],
                 repeats: int, backend: str) -> np.ndarray:
    out = []
    for size in sizes:
        parts = _vectors(client, size, workers, backend)
        try:
            out.append(_per_round(client, lambda p: hop(client, p, workers), parts, *rounds, repeats))
        finally:
            client.cancel(parts)
    return np.asarray(out)


def calibrate(client: Any, *, sizes: Sequence[int] = DEFAULT_SIZES, n_workers: int | None = None,
              repeats: int = 3, rounds: tuple[int, int] = (1, 4), backend: str = "numpy") -> CommModel:
    """Fit the communication constants of the cluster behind ``client`` from measured
    worker-to-worker transfers, and measure its round-trip overhead and compute rates.

    Two experiments, each a chain of ``rounds`` dependent transfers per size in ``sizes``
    (bytes), timed as the difference of a short and a long chain so that the client's
    submit and wait cancel:

    1. one vector moves back and forth between two workers, one transfer at a time:
       ``t1(n) = a + c + b n`` fitted by non-negative least squares on relative errors
       gives the latency ``a`` (with the per-task cost ``c``) and the link's ``b``;
    2. all workers swap vectors in pairs at once (``P`` tasks, ``P n`` bytes per level):
       the small sizes give ``c`` (the extra time of ``P`` tasks over one), the largest
       two the machine-wide ``beta`` where ``P n beta`` exceeds ``b n``.

    The vectors, adds and gradient pass are on ``backend`` (``"cupy"`` for the device
    memory of a dask-cuda cluster; GPU work is synchronized before it is timed).

    Needs two workers. Returns a :class:`CommModel` whose ``fit`` holds the sizes, both
    sets of times and the largest relative error of the fitted model on them.

    Parameters
    ----------
    client : distributed.Client
        The client of the cluster.
    sizes : sequence of int
        Vector sizes (bytes) measured.
    n_workers : int
        Workers taking part.
    repeats : int, default 3
        Measurements per size (the median is kept).
    rounds : tuple of int, default (1, 4)
        Chains of dependent transfers timed; their difference gives the per-round time.
    backend : {"numpy", "cupy"}, default "numpy"
        Arrays measured.

    Returns
    -------
    model : CommModel
        The fitted constants.

    Examples
    --------
    >>> from distributed import Client, LocalCluster
    >>> with LocalCluster(n_workers=2, processes=False, dashboard_address=None) as c, Client(c) as client:
    ...     model = calibrate(client, sizes=(1000, 100000), repeats=1)
    >>> bool(model.latency >= 0)
    True
    """
    from scipy.optimize import nnls

    _check_backend(backend)
    workers = _workers(client, n_workers)
    if len(workers) < 2:
        raise ValueError(f"calibrate needs at least 2 workers to time transfers between them; the cluster has "
                         f"{len(workers)}. Start more with `dask worker <scheduler address>`.")
    sizes = sorted(int(s) for s in sizes)
    if not sizes or sizes[0] <= 0:
        raise ValueError(f"sizes must be positive byte counts, got {sizes!r}.")
    if len(set(sizes)) < 2:
        raise ValueError("calibrate needs at least two different sizes to separate latency from bandwidth.")
    P = len(workers) - len(workers) % 2                     # workers that take part in the swap
    x = np.asarray([8 * max(1, s // 8) for s in sizes], dtype=float)
    single = np.maximum(_chain_times(client, _ping, sizes, workers[:2], rounds, repeats, backend) / 2, 1e-9)
    (a1, b), _ = nnls(np.column_stack([1 / single, x / single]), np.ones_like(single))
    swap = np.maximum(_chain_times(client, _hop, sizes, workers[:P], rounds, repeats, backend), 1e-9)
    small = x <= 100_000
    c = max(float(np.median(swap[small] - a1)) / max(P - 1, 1), 0.0) if small.any() else 0.0
    a = max(a1 - c, 0.0)
    level = a + c * P
    big = np.argsort(x)[-2:]
    beta = max(float(np.median((swap[big] - level) / (P * x[big]))), 0.0)
    if P * beta <= b:
        beta = 0.0                                          # the links, not the machine, set the pace
    model_single = a + c + b * x
    model_swap = level + np.maximum(b * x, beta * P * x)
    rel = float(max(np.max(np.abs(model_single / single - 1)), np.max(np.abs(model_swap / swap - 1))))
    trips = []
    for _ in range(max(5, repeats)):
        t0 = time.perf_counter()
        client.submit(_same, 0, pure=False).result()
        trips.append(time.perf_counter() - t0)
    rate = client.submit(_gradient_rate, 20_000, 100, backend, workers=workers[:1], pure=False).result()
    # 64 MB vectors: above glibc's largest mmap threshold, so each add pays for fresh pages, as the
    # adds and the concatenation of large messages do
    gamma = client.submit(_add_rate, 8_000_000, backend, workers=workers[:1], pure=False).result()
    return CommModel(latency=a, inv_bandwidth=float(b), per_task=c, shared_inv_bandwidth=beta,
                     reduce_per_byte=float(gamma), overhead=float(statistics.median(trips)),
                     compute_per_byte=float(rate), cores=_cores_shared(client, workers), workers=len(workers),
                     fit={"sizes": x.astype(int).tolist(), "single_s": single.tolist(), "swap_s": swap.tolist(),
                          "swap_workers": P, "max_rel_error": rel})


# ----------------------------------------------------------------------------- task stream
def time_split(records: Sequence[dict], wall: float, n_threads: int) -> dict:
    """Split ``wall`` seconds on ``n_threads`` worker threads into compute, communication
    and waiting, from dask task-stream records (``distributed.get_task_stream``).

    Compute and transfer are the summed durations of the ``compute`` and ``transfer``
    intervals; waiting is the rest of ``wall * n_threads`` (idle threads: scheduling,
    the driver's own work, dependencies not ready). Dask overlaps transfers with
    compute, so on a busy worker the three can add up to more than the capacity; the
    waiting share is then 0. Returns seconds and fractions of the capacity.

    Parameters
    ----------
    records : sequence of dict
        Task-stream records (``distributed.get_task_stream``).
    wall : float
        Wall seconds of the run.
    n_threads : int
        Worker threads in all.

    Returns
    -------
    split : dict
        Seconds of compute, transfer and waiting (``compute_s``, ``transfer_s``, ``waiting_s``,
        ``capacity_s``) and their fractions of the capacity (``compute``, ``transfer``, ``waiting``).

    Examples
    --------
    >>> split = time_split([{"startstops": [{"action": "compute", "start": 0.0, "stop": 1.0}]}], 2.0, 1)
    >>> split["compute"], split["waiting"]
    (0.5, 0.5)
    """
    if wall <= 0 or n_threads < 1:
        raise ValueError(f"wall must be > 0 and n_threads >= 1, got {wall!r} and {n_threads!r}.")
    compute = transfer = 0.0
    for rec in records:
        for ss in rec.get("startstops", ()):
            action = ss["action"] if isinstance(ss, dict) else ss[0]
            start = ss["start"] if isinstance(ss, dict) else ss[1]
            stop = ss["stop"] if isinstance(ss, dict) else ss[2]
            if action == "compute":
                compute += stop - start
            elif action == "transfer":
                transfer += stop - start
    capacity = wall * n_threads
    waiting = max(capacity - compute - transfer, 0.0)
    return {"compute_s": compute, "transfer_s": transfer, "waiting_s": waiting, "capacity_s": capacity,
            "compute": compute / capacity, "transfer": transfer / capacity, "waiting": waiting / capacity}


__all__ = [
    "DEFAULT_SIZES", "PATTERNS", "CommModel", "allreduce", "allreduce_time", "calibrate", "gossip_round",
    "gossip_time", "measure", "parameter_server_round", "parameter_server_time", "time_split",
]
