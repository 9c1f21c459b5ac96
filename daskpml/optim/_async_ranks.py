"""The parameter server of :func:`~daskpml.optim.async_sgd` on the ranks of an SPMD group.

On a distributed cluster (and with ``tol=None``, the default) ``async_sgd`` does not submit a task
per update from the client. Every row chunk is a *worker* that loops where its rows are: take
``push_every`` SGD steps from its copy of the weights, push the summed gradient straight to the
server, and get back the server's answer (the new weights when a pull is due, and the current
learning rate) in the same round trip. The server is a thread on rank 0 (its own chunks' workers
call it directly); it applies each push as it arrives, exactly as the client-side engine does:
staleness accounting, ``staleness="divide"``, ``max_staleness`` (a worker is held back while
the pushes in flight could take a gradient past the bound), ``push_every``/``pull_every``, the
``delay`` straggler hook, the learning-rate schedule in server versions and rows processed.

Only rank 0 records the history (one row per update, sent to the client in batches) and the
snapshots (every ``checkpoint_every`` updates; the client writes them). Objective samples (every
``eval_every`` updates) are kept as copies and evaluated after the run by every rank at once (one
``allreduce``), as the client-side engine does with ``tol=None``. A lost worker ends the group;
the run restarts from the newest snapshot on the workers that remain (see ``_ranks.py``).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np

from .._random import resolve_seed
from ._async_engine import sgd_steps
from ._objective import chunk_losses
from ._ranks import rank_context
from ._run import Run
from ._stochastic import scheduled_rate, slowdown

TAG = "ps"


class _Server:
    """The server's state on rank 0: history, samples, snapshots, stopping rules, the workers
    held back and the delivery of answers. Subclasses say what a push does (:meth:`first`,
    :meth:`push`) and what a snapshot holds (:meth:`arrays`, :meth:`restore`)."""

    solver = ""

    def __init__(self, objective: Any, theta0: np.ndarray, o: dict, attrs: dict) -> None:
        self.objective, self.o = objective, o
        self.comm = objective.group
        self.P, self.n = objective.n_chunks, objective.n_samples
        self.spec = objective.spec
        self.rows_per_update = o["rows_per_update"]
        updates_per_epoch = max(1, math.ceil(self.n / self.rows_per_update))
        self.eval_every = int(o["eval_every"] or max(1, updates_per_epoch // 8))
        if self.eval_every < 1:
            raise ValueError(f"eval_every must be a positive integer, got {o['eval_every']}.")
        self.rows_needed = float(o["max_iter"]) * self.n
        self.run = Run(self.solver, objective, max_iter=math.ceil(o["max_iter"] * updates_per_epoch), tol=0.0,
                       callback=None, progress=False, eval_every=self.eval_every,
                       max_time=-1.0 if o["max_time"] is None else float(o["max_time"]), monitor="after",
                       checkpoint=o["checkpoint"], checkpoint_every=o["checkpoint_every"], resume=o["resume"],
                       learning_rate=o["learning_rate"], eta0=o["eta0"], seed=o["seed"], on_ranks=1, **attrs)
        self.run.workers = list(range(self.P))
        self.theta = np.array(theta0, dtype=np.float64)
        self.version = self.rows_done = 0
        self.position = [0] * self.P
        self.updates = np.zeros(self.P, dtype=np.int64)
        self.busy = np.zeros(self.P)
        self.lost = np.zeros(self.P, dtype=np.int64)      # work lost with a worker (restarts)
        self.discarded = np.zeros(self.P, dtype=np.int64)
        self.addresses = [""] * self.P
        self.samples: list[tuple[int, np.ndarray]] = []
        self.setup()
        snap = self.run.snapshot
        if snap is not None:
            st = snap.state
            self.version, self.rows_done = int(st["version"]), int(st["rows_done"])
            self.position = [int(p) for p in st["position"]]
            self.updates = np.array(snap.arrays["updates"], dtype=np.int64)
            self.busy = np.array(snap.arrays["busy"], dtype=float)
            if "failed" in snap.arrays:
                self.lost = np.array(snap.arrays["failed"], dtype=np.int64)
            if "sample_index" in snap.arrays:
                self.samples = list(zip(snap.arrays["sample_index"].tolist(), np.array(snap.arrays["sample_theta"])))
            self.restore(snap)
        self.ctx = ctx = rank_context()
        if ctx is not None and ctx.lost is not None:     # updates redone after a lost worker
            self.lost = self.lost + np.asarray(ctx.lost, dtype=np.int64)
        self.waiting: dict[int, Any] = {}           # chunk -> what its held-back answer needs
        self.local_mail: dict[int, tuple] = {}      # answers to rank 0's own chunks
        self.lock = threading.Condition()
        self.done = False
        self.error: BaseException | None = None
        self.reason = ""
        self.replied_stop: set[int] = set()
        self.owner: dict[int, int] = {}             # chunk -> rank

    # -- what subclasses define ---------------------------------------------------------------
    def setup(self) -> None:
        """The rule's own state (before a snapshot is restored)."""

    def restore(self, snap: Any) -> None:
        """The rule's own state from a snapshot."""
        self.theta = np.array(snap.arrays["theta"])

    def arrays(self) -> dict:
        """The rule's own arrays in a snapshot."""
        return {"theta": self.theta}

    def current(self) -> np.ndarray | None:
        """The model the callback sees with a sampled row."""
        return self.theta.copy()

    def sample(self, index: int) -> None:
        """Keep the model of history row ``index``; its objective is evaluated after the run."""
        self.samples.append((index, self.theta.copy()))

    def first(self, i: int) -> tuple | None:
        """The answer to chunk ``i``'s hello."""
        raise NotImplementedError

    def push(self, msg: tuple) -> tuple | None:
        """Apply chunk ``msg[1]``'s push; its answer (None: held back)."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------
    def rate(self) -> float:
        o = self.o
        return scheduled_rate(o["learning_rate"], o["eta0"], self.version, self.rows_done / self.n,
                              power_t=o["power_t"], gamma=o["gamma"], decay_every=o["decay_every"])

    def handle(self, msg: tuple, rank: int) -> tuple | None:
        kind, i = msg[0], msg[1]
        if kind == "hello":
            self.owner[i], self.addresses[i] = rank, msg[2]
            if self.done:
                self.replied_stop.add(i)
                return ("stop",)
            return self.first(i)
        if self.done:                               # pushed after the end: not applied (as a task
            self.discarded[i] += 1                  # in flight at the end is cancelled)
            self.replied_stop.add(i)
            return ("stop",)
        answer = self.push(msg)
        if self.done:
            self._release_waiting()
            self.replied_stop.add(i)
            return ("stop",)
        self._wake()
        return answer

    def record_update(self, i: int, staleness: int, elapsed: float, save: bool = True, **extra: Any) -> bool:
        """Count one update of chunk ``i``, record its row (sampling the model every
        ``eval_every`` updates), snapshot when due; sets :attr:`done` when a stopping rule fires."""
        self.updates[i] += 1
        self.rows_done += self.rows_per_update
        self.busy[i] += elapsed
        total = int(self.updates.sum())
        obj = self.objective
        obj.comm.rounds = total
        obj.comm.bytes = self.comm.bytes_sent + sum(ch.bytes_received for ch in self.comm.channels.values())
        due = total % self.eval_every == 0
        stop = self.run.record(total, self.current() if due else None, math.nan, math.nan, update_worker=i,
                               version=self.version, staleness=staleness, rows=self.rows_done, **extra)
        if due:
            self.sample(self.run.n_rows - 1)
        if save:
            self._save()
        ctx = self.ctx                              # (this may run in the server's thread)
        if ctx is not None and ctx.interrupt_requested():
            self.reason = "interrupted (KeyboardInterrupt); returning the current model"
            self.run.stopped = stop = True
        elif stop:
            self.reason = "stopped by the callback"
        elif self.rows_done >= self.rows_needed:
            self.reason = ""
            stop = True
        elif self.o["max_time"] is not None and self.run.elapsed() >= self.o["max_time"]:
            self.reason = f"reached max_time={self.o['max_time']:g} s; returning the current model"
            self.run.stopped = stop = True
        if stop:
            self.done = True
        return stop or self.done

    def retry(self, i: int, need: Any) -> tuple | None:
        """A held-back chunk's answer, when it may go on now (subclasses that hold back)."""
        return None


    def _wake(self) -> None:
        for j, need in list(self.waiting.items()):
            if j not in self.waiting:
                continue
            self.waiting.pop(j)
            answer = self.retry(j, need)
            if answer is not None:
                self._deliver(j, answer)
            elif j not in self.waiting:             # (retry did not hold it back again: keep it)
                self.waiting[j] = need

    def _release_waiting(self) -> None:
        for j in list(self.waiting):
            self.waiting.pop(j)
            self.replied_stop.add(j)
            self._deliver(j, ("stop",))

    def _deliver(self, i: int, answer: tuple) -> None:
        rank = self.owner[i]
        if rank == self.comm.rank:
            self.local_mail[i] = answer
            self.lock.notify_all()
        else:
            self.comm.send(answer, rank, tag=(TAG, i))

    # -- snapshots ------------------------------------------------------------------------
    def _save(self, final: bool = False) -> None:
        cp = self.run.checkpoint
        total = int(self.updates.sum())
        if cp is None or not cp.due(total, final):
            return
        arrays = {**self.arrays(), "updates": self.updates, "busy": self.busy, "failed": self.lost}
        if self.samples:
            arrays["sample_index"] = np.array([i for i, _ in self.samples], dtype=np.int64)
            arrays["sample_theta"] = np.stack([t for _, t in self.samples])
        self.run.save(total, final=True, arrays=arrays, version=self.version, rows_done=self.rows_done,
                      position=list(self.position), seed=self.o["seed"], converged=False, best=0.0, bad=0)

    # -- the remote chunks --------------------------------------------------------------------
    def serve(self, remote_chunks: int) -> None:
        """Answer the other ranks' chunks until every one of them was told to stop. A failure (a
        lost rank) ends the run on this rank too: rank 0's own chunks stop and the error is
        raised in the rank's thread."""
        try:
            self._serve(remote_chunks)
        except BaseException as e:
            with self.lock:
                self.error = e
                self.done = True
                self.lock.notify_all()

    def _serve(self, remote_chunks: int) -> None:
        comm = self.comm
        peers = [r for r in range(comm.size) if r != comm.rank]
        while True:
            with self.lock:
                if len([c for c in self.replied_stop if self.owner.get(c) != comm.rank]) >= remote_chunks:
                    return
            src, msg = comm.recv_any(tag=TAG, sources=peers, timeout=0.2, raise_on_timeout=False)
            if src is None:                         # (a stop may have gone out from rank 0's own chunks)
                continue
            with self.lock:
                answer = self.handle(msg, src)
            if answer is not None:
                comm.send(answer, src, tag=(TAG, msg[1]))

    def ask_local(self, msg: tuple) -> tuple:
        """Rank 0's own chunks call the server directly (held back like the others)."""
        i = msg[1]
        with self.lock:
            if self.error is not None:
                raise self.error
            answer = self.handle(msg, self.comm.rank)
            while answer is None:
                if i in self.local_mail:
                    answer = self.local_mail.pop(i)
                    break
                if self.error is not None:
                    raise self.error
                self.lock.wait(0.5)
        # Give the GIL away: the thread that answers the other ranks' chunks may be waiting for
        # it. Without this, a chunk on rank 0 (which never waits on a socket) kept it for most of
        # each switch interval and made 2.5x the updates of a chunk on another worker (4x-150x
        # in a cluster of threads), which then trained on a fraction of the data.
        time.sleep(0)
        return answer

    # -- the end ------------------------------------------------------------------------------
    def finish(self, sums: np.ndarray | None, thetas: np.ndarray | None) -> Any:
        obj = self.objective
        if sums is not None:
            for (index, theta), s in zip(self.samples, sums):
                f = s / self.n + obj.lam * obj.penalty.value(theta[obj.mask])
                self.run.fill(index, objective=float(f))
        self._save(final=True)
        sizes = np.asarray(obj.row_chunks)
        self.run.worker_totals = {"updates": self.updates, "lost": self.lost, "busy_time": self.busy,
                                  "rows_per_chunk": sizes, "address": np.asarray(self.addresses, dtype=str)}
        self.run.attrs.update(lost_tasks=int(self.lost.sum()), updates=int(self.updates.sum()),
                              epochs=self.rows_done / self.n)
        finished = self.rows_done >= self.rows_needed
        message = self.reason or (f"ran max_iter={self.rows_needed / self.n:g} epochs" if finished else "stopped early")
        return self.run.finish(self.theta, int(self.updates.sum()), finished and not self.run.stopped, message)


class _SGDServer(_Server):
    """:func:`~daskpml.optim.async_sgd`'s rule: apply each pushed gradient as it arrives."""

    solver = "async_sgd"

    def setup(self) -> None:
        o = self.o
        self.push_every, self.pull_every, self.bound = o["push_every"], o["pull_every"], o["bound"]
        self._pulled = [0] * self.P                 # chunk -> the version it last pulled
        self.flying: dict[int, int] = {}            # chunk -> the version it computes from

    def _allowed(self, version: int) -> bool:
        if self.bound is None:
            return True
        flying = list(self.flying.values())
        k = len(flying)
        return all(self.version - v + k <= self.bound for v in flying + [version])

    def _answer(self, i: int, pull: bool) -> tuple | None:
        """The answer that lets chunk ``i`` go on (None: held back by ``max_staleness``)."""
        if self.done:
            self.replied_stop.add(i)
            return ("stop",)
        start_version = self.version if pull else self._pulled[i]
        if not self._allowed(start_version):
            if pull or not self._allowed(self.version):
                self.waiting[i] = pull
                return None
            pull = True
        if pull:
            self._pulled[i] = self.version
        self.flying[i] = self._pulled[i]
        return ("go", self.theta.copy() if pull else None, self._pulled[i], self.rate(), self.position[i])

    def retry(self, i: int, need: Any) -> tuple | None:
        return self._answer(i, need)

    def first(self, i: int) -> tuple | None:
        return self._answer(i, True)

    def push(self, msg: tuple) -> tuple | None:
        _, i, acc, loss, pulled, elapsed, want_pull = msg
        self.flying.pop(i, None)
        tau = self.version - pulled
        eta = self.rate() / (max(tau, 1) if self.o["staleness"] == "divide" else 1.0)
        self.theta = self.spec.prox(self.theta - eta * acc, eta * self.push_every)
        self.version += 1
        self.position[i] += self.push_every
        if self.record_update(i, tau, elapsed, eta=eta, batch_loss=float(loss)):
            return ("stop",)
        return self._answer(i, want_pull)


class _EASGDServer(_Server):
    """:func:`~daskpml.optim.easgd`'s rule: the elastic exchange with the centre variable, as
    each worker arrives (asynchronous) or once all have (synchronous)."""

    solver = "easgd"

    def setup(self) -> None:
        self.alpha, self.tau, self.sync = self.o["alpha"], self.o["local_steps"], self.o["synchronous"]
        self.models = [self.theta.copy() for _ in range(self.P)]
        self.arrived: dict[int, tuple] = {}

    def restore(self, snap: Any) -> None:
        self.theta = np.array(snap.arrays["centre"])
        self.models = [np.array(m) for m in snap.arrays["models"]]

    def arrays(self) -> dict:
        return {"centre": self.theta, "models": np.stack(self.models)}

    def _go(self, i: int) -> tuple:
        return ("go", self.models[i], self.version, self.rate(), self.position[i])

    def first(self, i: int) -> tuple | None:
        return self._go(i)

    def _exchange(self, i: int, x: np.ndarray, elapsed: float) -> np.ndarray:
        d = self.alpha * (x - self.theta)
        self.models[i] = x - d
        return d

    def push(self, msg: tuple) -> tuple | None:
        _, i, x, loss, started, elapsed = msg
        self.position[i] += self.tau
        if not self.sync:
            d = self._exchange(i, x, elapsed)
            self.theta = self.theta + d
            staleness = self.version - started
            self.version += 1
            if self.record_update(i, staleness, elapsed, eta=self.rate(), batch_loss=float(loss)):
                return ("stop",)
            return self._go(i)
        self.arrived[i] = (x, loss, elapsed)
        if len(self.arrived) < self.P:
            self.waiting[i] = True                  # answered when every worker has arrived
            return None
        moves = {j: (self._exchange(j, v[0], v[2]), v[1], v[2]) for j, v in sorted(self.arrived.items())}
        self.theta = self.theta + sum(d for d, _, _ in moves.values())
        self.version += 1
        self.arrived.clear()
        last = max(moves)
        for j, (_, loss_j, elapsed_j) in moves.items():         # a row for every worker of the round
            self.record_update(j, 0, elapsed_j, save=j == last, eta=self.rate(), batch_loss=float(loss_j))
        if self.done:
            return ("stop",)
        for j in list(self.waiting):                # everyone goes on with the new round
            self.waiting.pop(j)
            self._deliver(j, self._go(j))
        return self._go(i)

def _chunk_worker(i: int, X: Any, y: Any, o: dict, spec: Any, address: str):
    """One chunk's worker, as a generator: it yields each message for the server and is sent the
    server's answer; it ends when the server says stop."""
    answer = yield ("hello", i, address)
    if answer[0] == "stop":
        return
    _, theta, pulled, rate, position = answer
    local = None
    since_pull = 0
    batch, push_every, pull_every = o["batch"], o["push_every"], o["pull_every"]
    while True:
        start = theta if local is None else local
        new_local, acc, loss, _, elapsed = sgd_steps(X, y, start, o["seed"], i, position * batch, push_every, batch,
                                                      rate, spec, o["factors"][i])
        position += push_every
        since_pull += push_every
        want_pull = since_pull >= pull_every
        answer = yield ("push", i, acc, loss, pulled, elapsed, want_pull)
        if answer[0] == "stop":
            return
        _, new_theta, pulled, rate, _ = answer
        if new_theta is not None:                   # a pull (due, or forced by max_staleness)
            theta, local, since_pull = new_theta, None, 0
        else:
            local = new_local


def _drive(worker: Any, ask: Any) -> None:
    """Run one chunk's worker against ``ask(message) -> answer``."""
    try:
        msg = next(worker)
        while True:
            msg = worker.send(ask(msg))
    except StopIteration:
        return


def _run_chunks(comm: Any, server: _Server | None, blocks: list, o: dict, spec: Any, address: str,
                make_worker: Any) -> None:
    """This rank's chunks: one thread each when there are several (a chunk held back by
    ``max_staleness`` must not hold up the others). The chunks of rank 0 ask the server directly;
    the others' answers come over the connection to rank 0, read by one thread here and handed
    to the chunk they are tagged for."""
    workers = {i: make_worker(i, X, y, o, spec, address) for i, (X, y) in blocks}
    if server is not None:
        asks = {i: server.ask_local for i in workers}
    elif len(workers) == 1:
        (i,) = workers

        def remote(msg: tuple) -> tuple:
            comm.send(msg, 0, tag=TAG)
            return comm.recv(0, tag=(TAG, msg[1]))

        asks = {i: remote}
    else:
        import queue

        boxes = {i: queue.Queue() for i in workers}
        ch = comm.channels[0]
        active = set(workers)

        def reader() -> None:                       # the only thread that reads the connection to rank 0
            try:
                while active:
                    (_, (_, i)), answer = ch._read_message(comm.timeout)     # tag ("u", (TAG, chunk))
                    boxes[i].put(answer)
                    if answer[0] == "stop":
                        active.discard(i)
            except BaseException as e:              # hand the failure to every chunk
                for box in boxes.values():
                    box.put(e)

        threading.Thread(target=reader, daemon=True, name="daskpml-ps-reader").start()

        def make(i: int) -> Any:
            def remote(msg: tuple) -> tuple:
                comm.send(msg, 0, tag=TAG)
                answer = boxes[i].get()
                if isinstance(answer, BaseException):
                    raise answer
                return answer
            return remote

        asks = {i: make(i) for i in workers}
    if len(workers) == 1:
        ((i, worker),) = workers.items()
        _drive(worker, asks[i])
        return
    errors: list = []

    def guarded(i: int) -> None:
        try:
            _drive(workers[i], asks[i])
        except BaseException as e:                  # re-raised in the rank's thread
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(i,), daemon=True) for i in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _run(objective: Any, theta0: np.ndarray, o: dict, server_cls: type, attrs: dict, worker: Any) -> Any:
    """Every rank: the server (rank 0), this rank's chunks, then the objective samples."""
    comm = objective.group
    o = dict(o, factors=[slowdown(o["delay"], i) for i in range(objective.n_chunks)])
    server = server_cls(objective, theta0, o, attrs) if comm.rank == 0 else None
    try:
        from distributed import get_worker

        address = get_worker().address
    except Exception:
        address = ""
    # how many chunks the other ranks run (the server answers them until each is told to stop)
    counts = comm.allgather(len(objective.block_index))
    thread = None
    if server is not None and comm.size > 1:
        thread = threading.Thread(target=server.serve, args=(sum(counts) - counts[0],), daemon=True,
                                  name="daskpml-parameter-server")
        thread.start()
    blocks = list(zip(objective.block_index, objective._blocks))
    _run_chunks(comm, server, blocks, o, objective.spec, address, worker)
    if thread is not None:
        thread.join()
        if server.error is not None:
            raise server.error
    if server is not None:                          # the final model is always sampled
        last = server.run.n_rows - 1
        if last < 0:
            server.run.record(0, None, math.nan, math.nan, update_worker=-1, version=0, staleness=0, rows=0)
            last = 0
        if not any(i == last for i, _ in server.samples):
            server.samples.append((last, server.theta.copy()))
    # objective samples: every rank evaluates its chunks at the sampled models, one allreduce
    thetas = comm.broadcast(np.stack([t for _, t in server.samples]) if server is not None and server.samples
                            else None)
    sums = None
    if thetas is not None:
        spec = objective.spec
        sums = objective.reduce_blocks(lambda i, X, y: chunk_losses(X, y, thetas, spec.family, spec.layout),
                                       count=False)
    if server is None:
        return None
    return server.finish(sums, thetas)


def _schedule(learning_rate: str, eta0: float, power_t: float, gamma: float, decay_every: int, max_iter: float,
              max_time: float | None, eval_every: int | None, checkpoint: Any, checkpoint_every: int, resume: bool,
              random_state: Any, delay: Any) -> dict:
    return dict(learning_rate=learning_rate, eta0=eta0, power_t=power_t, gamma=gamma, decay_every=decay_every,
                max_iter=max_iter, max_time=max_time, eval_every=eval_every, checkpoint=checkpoint,
                checkpoint_every=checkpoint_every, resume=resume, seed=resolve_seed(random_state), delay=delay)


def async_sgd_on_ranks(objective: Any, theta0: np.ndarray, *, batch_size: int = 256, learning_rate: str = "invscaling",
                       eta0: float = 0.1, power_t: float = 0.25, gamma: float = 0.1, decay_every: int = 10,
                       staleness: str = "none", max_staleness: int | None = None, push_every: int = 1,
                       pull_every: int = 1, max_iter: float = 10, max_time: float | None = None,
                       tol: float | None = None, n_iter_no_change: int = 3, eval_every: int | None = None,
                       delay: Any = None, random_state: Any = None, callback: Any = None, progress: Any = None,
                       checkpoint: Any = None, checkpoint_every: int = 10, resume: bool = False) -> Any:
    """What every rank runs for :func:`~daskpml.optim.async_sgd` (see the module's description)."""
    from ._async import check_async_sgd

    bound = check_async_sgd(batch_size, eta0, staleness, push_every, pull_every, max_staleness, max_iter, max_time)
    o = dict(_schedule(learning_rate, eta0, power_t, gamma, decay_every, max_iter, max_time, eval_every, checkpoint,
                       checkpoint_every, resume, random_state, delay),
             batch=int(batch_size), push_every=int(push_every), pull_every=int(pull_every), bound=bound,
             staleness=staleness, rows_per_update=int(batch_size) * int(push_every))
    attrs = dict(batch_size=int(batch_size), staleness=staleness, max_staleness=-1 if bound is None else bound,
                 push_every=int(push_every), pull_every=int(pull_every))
    return _run(objective, theta0, o, _SGDServer, attrs, _chunk_worker)


def _easgd_worker(i: int, X: Any, y: Any, o: dict, spec: Any, address: str):
    """One chunk's EASGD worker: ``local_steps`` SGD steps from its model, then the elastic
    exchange (the server answers with the moved model)."""
    answer = yield ("hello", i, address)
    if answer[0] == "stop":
        return
    _, model, version, rate, position = answer
    batch, tau = o["batch"], o["local_steps"]
    while True:
        x, _, loss, _, elapsed = sgd_steps(X, y, model, o["seed"], i, position * batch, tau, batch, rate, spec,
                                           o["factors"][i])
        position += tau
        answer = yield ("push", i, x, loss, version, elapsed)
        if answer[0] == "stop":
            return
        _, model, version, rate, _ = answer


def easgd_on_ranks(objective: Any, theta0: np.ndarray, *, local_steps: int = 10, alpha: float | None = None,
                   synchronous: bool = False, batch_size: int = 256, learning_rate: str = "invscaling",
                   eta0: float = 0.1, power_t: float = 0.25, gamma: float = 0.1, decay_every: int = 10,
                   max_iter: float = 10, max_time: float | None = None, tol: float | None = None,
                   n_iter_no_change: int = 3, eval_every: int | None = None, delay: Any = None,
                   random_state: Any = None, callback: Any = None, progress: Any = None, checkpoint: Any = None,
                   checkpoint_every: int = 10, resume: bool = False) -> Any:
    """What every rank runs for :func:`~daskpml.optim.easgd` (the centre variable on rank 0)."""
    from ._async import check_easgd

    tau, alpha = check_easgd(objective.n_chunks, batch_size, eta0, local_steps, alpha, synchronous, max_iter, max_time)
    o = dict(_schedule(learning_rate, eta0, power_t, gamma, decay_every, max_iter, max_time, eval_every, checkpoint,
                       checkpoint_every, resume, random_state, delay),
             batch=int(batch_size), local_steps=tau, alpha=alpha, synchronous=bool(synchronous),
             rows_per_update=int(batch_size) * tau)
    attrs = dict(local_steps=tau, alpha=alpha, synchronous=int(bool(synchronous)), batch_size=int(batch_size))
    return _run(objective, theta0, o, _EASGDServer, attrs, _easgd_worker)


# -- gossip ---------------------------------------------------------------------------------------
#
# Gossip has no server: a chunk averages its model with the newest model of a peer drawn at random,
# fetched straight from the peer's rank, then takes its local steps. Rank 0 still keeps the books
# (the history rows, the update counter that staleness is measured in, the peer draw, the stopping
# rules) with a few bytes per update; the models never go to it, except where a history sample or
# a snapshot needs one. Such a need is a *mark* on every chunk's current model ("that model was
# the newest of its chunk when sample s or snapshot c was taken"): each chunk learns its model's
# marks in the answer to its next push and only then sends the model to rank 0, so a sample is
# the exact row-weighted average of the models at that update, and a snapshot holds the models,
# counters and history of one moment.

GOSSIP = "gossip"


class _GossipServer(_Server):
    """:func:`~daskpml.optim.gossip_sgd`'s books on rank 0 (see the comment above)."""

    solver = "gossip_sgd"

    def setup(self) -> None:
        o = self.o
        self.H = o["local_steps"]
        self.made_at = [0] * self.P
        self.start: list | None = None                          # resumed models, handed out with the hello
        self.weights = np.asarray(self.objective.row_chunks, dtype=float) / self.n
        self.marks: list[list] = [[] for _ in range(self.P)]    # chunk -> marks on its current model
        self.parts: dict[int, list] = {}                        # sample -> [weighted sum, pieces]
        self.snaps: dict[int, tuple] = {}                       # snapshot -> (iteration, parts, models)
        self.n_snaps = 0
        self.newest_saved = -1
        self.final: dict[int, np.ndarray] = {}
        self.theta = None

    def restore(self, snap: Any) -> None:
        self.start = [np.array(m) for m in snap.arrays["models"]]
        self.made_at = [int(v) for v in snap.state["made_at"]]

    def current(self) -> None:
        return None                                 # the average model is nowhere while the run goes on

    def sample(self, index: int) -> None:
        sid = len(self.samples)
        self.samples.append((index, None))
        self.parts[sid] = [None, 0]
        for m in self.marks:
            m.append(("s", sid))

    def _go(self, i: int, prev: list, start: Any = None) -> tuple:
        return ("go", prev, self.version, self.rate(), self.position[i], start)

    def _take_marks(self, i: int) -> list:
        marks, self.marks[i] = self.marks[i], []
        return marks

    def handle(self, msg: tuple, rank: int) -> tuple | None:
        kind, i = msg[0], msg[1]
        if kind == "piece":
            self.add_piece(i, msg[2], msg[3])
            return None
        if kind == "hello":
            self.owner[i], self.addresses[i] = rank, msg[2]
            start = None if self.start is None else (self.start[i], self.made_at[i])
            if self.done:                           # its model is the one it would start from
                self.replied_stop.add(i)
                self.add_piece(i, self._take_marks(i), self.start[i] if self.start is not None else self.theta0)
                return ("stop", [], [])
            return self._go(i, [], start)
        if self.done:                               # pushed after the end: not applied
            self.discarded[i] += 1
            self.replied_stop.add(i)
            return ("stop", self._take_marks(i), [])
        _, i, loss, elapsed, peer, peer_made = msg
        prev = self._take_marks(i)
        eta = self.rate()
        self.version += 1
        self.made_at[i] = self.version
        self.position[i] += self.H
        self.record_update(i, self.version - 1 - peer_made, elapsed, eta=eta, peer=peer, batch_loss=float(loss))
        if self.done:
            for m in self.marks:                    # every chunk's newest model is part of the result
                m.append(("f",))
            self.replied_stop.add(i)
            return ("stop", prev, self._take_marks(i))
        return self._go(i, prev)

    def add_piece(self, i: int, marks: list, model: np.ndarray) -> None:
        """Chunk ``i``'s ``model``, for the samples and snapshots in ``marks``."""
        for mark in marks:
            if mark[0] == "s":
                part = self.parts[mark[1]]
                part[0] = self.weights[i] * model if part[0] is None else part[0] + self.weights[i] * model
                part[1] += 1
                if part[1] == self.P:
                    index = self.samples[mark[1]][0]
                    self.samples[mark[1]] = (index, part[0])
                    del self.parts[mark[1]]
            elif mark[0] == "c":
                iteration, parts, models = self.snaps[mark[1]]
                models[i] = model
                if len(models) == self.P:
                    del self.snaps[mark[1]]
                    if mark[1] > self.newest_saved:           # (an older one completing late is dropped)
                        self.newest_saved = mark[1]
                        self._write(iteration, parts, models)
            else:
                self.final[i] = model

    def _state(self) -> dict:
        return dict(version=self.version, rows_done=self.rows_done, position=list(self.position),
                    seed=self.o["seed"], made_at=list(self.made_at),
                    converged=False, best=0.0, bad=0)

    def _counters(self) -> dict:
        arrays = {"updates": self.updates.copy(), "busy": self.busy.copy(), "failed": self.lost.copy()}
        done = [(i, t) for i, t in self.samples if t is not None]
        if done:
            arrays["sample_index"] = np.array([i for i, _ in done], dtype=np.int64)
            arrays["sample_theta"] = np.stack([t for _, t in done])
        return arrays

    def _write(self, iteration: int, parts: tuple, models: dict) -> None:
        arrays, history, state = parts
        arrays = dict(arrays, models=np.stack([models[j] for j in range(self.P)]))
        self.run.checkpoint.save(iteration, arrays=arrays, history=history, state=state)

    def _save(self, final: bool = False) -> None:
        cp = self.run.checkpoint
        total = int(self.updates.sum())
        if cp is None:
            return
        if final:                                   # every chunk's newest model is in
            self._write(total, self.run.snapshot_parts(self._counters(), **self._state()), self.final)
            return
        if not cp.due(total):
            return
        cid = self.n_snaps
        self.n_snaps += 1
        self.snaps[cid] = (total, self.run.snapshot_parts(self._counters(), **self._state()), {})
        for m in self.marks:
            m.append(("c", cid))

    def result(self) -> np.ndarray:
        """The row-weighted average of every chunk's newest model (once all are in)."""
        return sum(self.weights[j] * self.final[j] for j in range(self.P))


class _Mailroom:
    """The only reader of this rank's connections while gossip runs. It hands the control messages
    to the books (rank 0), answers the peers' requests for this rank's models, gives each chunk
    the answers tagged for it, and keeps anything else (a collective a finished peer started) for
    its own receive. It ends when this rank's chunks are done and every other rank said so too."""

    def __init__(self, comm: Any, chunks: list, server: _GossipServer | None) -> None:
        import queue

        self.comm, self.server = comm, server
        self.boxes = {i: queue.Queue() for i in chunks}        # the books' answers
        self.replies = {i: queue.Queue() for i in chunks}      # the peers' models
        self.models: dict[int, tuple] = {}          # this rank's chunks: (newest model, made at)
        self.asked: dict[int, list] = {}            # requests for a model not published yet
        self.lock = threading.Lock()
        self.byes = 0
        self.local_done = threading.Event()

    def publish(self, i: int, model: np.ndarray, made: int) -> None:
        with self.lock:
            self.models[i] = (model, made)
            asked = self.asked.pop(i, [])
        for src, j in asked:
            self.comm.send(("model", model, made), src, tag=(GOSSIP, j))

    def run(self) -> None:
        try:
            self._run()
        except BaseException as e:                  # every waiting chunk (and the books) end with it
            for box in [*self.boxes.values(), *self.replies.values()]:
                box.put(e)
            if self.server is not None:
                with self.server.lock:
                    self.server.error, self.server.done = e, True
                    self.server.lock.notify_all()

    def _run(self) -> None:
        import select

        from ..comm import CommError

        comm = self.comm
        peers = [r for r in range(comm.size) if r != comm.rank]
        while not (self.local_done.is_set() and self.byes == len(peers)):
            if any(comm.channels[p].closed for p in peers):
                raise CommError(f"rank {comm.rank}: a connection of the group is closed")
            socks = {comm.channels[p].sock.fileno(): p for p in peers}
            if not socks:                           # a group of one rank: nothing to read
                self.local_done.wait(0.2)
                continue
            ready = [fd for fd, p in socks.items() if comm.channels[p].readable()] or \
                select.select(list(socks), [], [], 0.2)[0]
            if not ready:
                if comm.state is not None and comm.state.abort.is_set():
                    raise CommError("the group was aborted")
                continue
            for fd in ready:
                p = socks[fd]
                ch = comm.channels[p]
                tag, obj = ch._read_message(comm.timeout)
                self._route(p, ch, tag, obj)

    def _route(self, src: int, ch: Any, tag: Any, obj: Any) -> None:
        user = tag[1] if tag[0] == "u" else None
        if not (isinstance(user, tuple) and len(user) == 2 and user[0] == GOSSIP):
            ch.pending.setdefault(tag, []).append(obj)
            return
        what = user[1]
        if what == "ctl":
            with self.server.lock:
                answer = self.server.handle(obj, src)
            if answer is not None:
                self.comm.send(answer, src, tag=(GOSSIP, obj[1]))
        elif what == "get":
            j, i = obj
            with self.lock:
                have = self.models.get(j)
                if have is None:                    # (chunk j has not started yet)
                    self.asked.setdefault(j, []).append((src, i))
            if have is not None:
                self.comm.send(("model", *have), src, tag=(GOSSIP, i))
        elif what == "bye":
            self.byes += 1
        else:
            (self.replies if obj[0] == "model" else self.boxes)[what].put(obj)

    def wait(self, i: int, model: bool = False) -> tuple:
        """The next answer of the books to chunk ``i`` (``model``: the next peer's model)."""
        import queue

        from ..comm import CommError

        try:
            answer = (self.replies if model else self.boxes)[i].get(timeout=self.comm.timeout)
        except queue.Empty:
            raise CommError(f"rank {self.comm.rank}: no answer for chunk {i} within daskpml.comm.timeout="
                            f"{self.comm.timeout:g} s") from None
        if isinstance(answer, BaseException):
            raise answer
        return answer


def gossip_peer(seed: int, chunk: int, position: int, n_chunks: int) -> int:
    """The peer chunk ``chunk`` averages with in its update that starts at ``position`` (drawn
    by the chunk itself, so that it can ask for the peer's model ahead of time; the same draw
    after a restart from a snapshot)."""
    j = int(np.random.default_rng([seed, 11, chunk, position]).integers(n_chunks - 1))
    return j + (j >= chunk)


def _gossip_chunk(i: int, X: Any, y: Any, o: dict, spec: Any, theta0: np.ndarray, ask: Any, request: Any,
                  receive: Any, publish: Any, piece: Any, address: str) -> None:
    """One chunk's gossip loop: average with a peer's newest model, ``local_steps`` steps, push the
    bookkeeping to rank 0, and send its previous model where a sample or snapshot marked it. The
    next peer's model is asked for before the push, so that the two round trips overlap."""
    answer = ask(("hello", i, address))
    if answer[0] == "stop":
        publish(i, np.array(theta0, dtype=np.float64), 0)   # (a peer may still ask for it)
        return
    _, _, _, rate, position, start = answer
    model, made = (np.array(theta0, dtype=np.float64), 0) if start is None else start
    publish(i, model, made)
    batch, H, P = o["batch"], o["local_steps"], o["n_chunks"]
    peer = gossip_peer(o["seed"], i, position, P)
    request(peer, i)
    while True:
        other, peer_made = receive(peer, i)
        x, _, loss, _, elapsed = sgd_steps(X, y, 0.5 * (model + other), o["seed"], i, position * batch, H, batch,
                                           rate, spec, o["factors"][i])
        following = gossip_peer(o["seed"], i, position + H, P)
        request(following, i)
        answer = ask(("push", i, loss, elapsed, peer, peer_made))
        piece(i, answer[1], model)
        if answer[0] == "stop":                     # (the model asked for is not needed any more)
            piece(i, answer[2], x)
            return
        _, _, version, rate, position, _ = answer
        model, peer = x, following
        publish(i, model, version)


def _run_gossip(objective: Any, theta0: np.ndarray, o: dict, attrs: dict) -> Any:
    """Every rank: the books (rank 0), the mailroom, this rank's chunks, then the objective samples."""
    comm = objective.group
    o = dict(o, factors=[slowdown(o["delay"], i) for i in range(objective.n_chunks)], n_chunks=objective.n_chunks)
    server = _GossipServer(objective, theta0, o, attrs) if comm.rank == 0 else None
    if server is not None:
        server.theta0 = np.array(theta0, dtype=np.float64)
    try:
        from distributed import get_worker

        address = get_worker().address
    except Exception:
        address = ""
    owner = {j: r for r, chunks in enumerate(comm.allgather(list(objective.block_index))) for j in chunks}
    blocks = list(zip(objective.block_index, objective._blocks))
    mail = _Mailroom(comm, [i for i, _ in blocks], server)
    reader = threading.Thread(target=mail.run, daemon=True, name="daskpml-gossip-mailroom")
    reader.start()

    if server is not None:
        def ask(msg: tuple) -> tuple:
            return server.ask_local(msg)

        def piece(i: int, marks: list, model: np.ndarray) -> None:
            if marks:
                with server.lock:
                    server.add_piece(i, marks, model)
    else:
        def ask(msg: tuple) -> tuple:
            comm.send(msg, 0, tag=(GOSSIP, "ctl"))
            return mail.wait(msg[1])

        def piece(i: int, marks: list, model: np.ndarray) -> None:
            if marks:
                comm.send(("piece", i, marks, model), 0, tag=(GOSSIP, "ctl"))

    def request(j: int, i: int) -> None:
        if owner[j] != comm.rank:
            comm.send((j, i), owner[j], tag=(GOSSIP, "get"))

    def receive(j: int, i: int) -> tuple:
        if owner[j] == comm.rank:                   # the newest, read in place
            while j not in mail.models:             # (a chunk of this rank that has not started yet)
                if errors:
                    raise errors[0]
                time.sleep(0.001)
            return mail.models[j]
        _, model, made = mail.wait(i, model=True)
        return model, made

    errors: list = []

    def chunk(i: int, X: Any, y: Any) -> None:
        try:
            _gossip_chunk(i, X, y, o, objective.spec, theta0, ask, request, receive, mail.publish, piece, address)
        except BaseException as e:                  # re-raised in the rank's thread
            errors.append(e)

    threads = [threading.Thread(target=chunk, args=(i, X, y), daemon=True, name=f"daskpml-gossip-{i}")
               for i, (X, y) in blocks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    for r in range(comm.size):                      # no more requests or pieces from this rank
        if r != comm.rank:
            comm.send(None, r, tag=(GOSSIP, "bye"))
    mail.local_done.set()
    reader.join()
    if server is not None and server.error is not None:
        raise server.error
    if server is not None:
        server.theta = server.result()
        last = server.run.n_rows - 1
        if last < 0:
            server.run.record(0, None, math.nan, math.nan, update_worker=-1, version=0, staleness=0, rows=0)
            last = 0
        if not any(i == last for i, _ in server.samples):
            server.samples.append((last, server.theta.copy()))
    thetas = comm.broadcast(np.stack([t for _, t in server.samples]) if server is not None and server.samples
                            else None)
    sums = None
    if thetas is not None:
        spec = objective.spec
        sums = objective.reduce_blocks(lambda i, X, y: chunk_losses(X, y, thetas, spec.family, spec.layout),
                                       count=False)
    if server is None:
        return None
    return server.finish(sums, thetas)


def gossip_sgd_on_ranks(objective: Any, theta0: np.ndarray, *, local_steps: int = 10, batch_size: int = 32,
                        learning_rate: str = "invscaling", eta0: float = 0.1, power_t: float = 0.25,
                        gamma: float = 0.1, decay_every: int = 10, max_iter: float = 10,
                        max_time: float | None = None, tol: float | None = None, n_iter_no_change: int = 3,
                        eval_every: int | None = None, delay: Any = None, random_state: Any = None,
                        callback: Any = None, progress: Any = None, checkpoint: Any = None,
                        checkpoint_every: int = 10, resume: bool = False) -> Any:
    """What every rank runs for :func:`~daskpml.optim.gossip_sgd` (peers exchange models directly)."""
    from ._async import check_gossip

    H = check_gossip(objective.n_chunks, batch_size, eta0, local_steps, max_iter, max_time)
    o = dict(_schedule(learning_rate, eta0, power_t, gamma, decay_every, max_iter, max_time, eval_every, checkpoint,
                       checkpoint_every, resume, random_state, delay),
             batch=int(batch_size), local_steps=H, rows_per_update=int(batch_size) * H)
    return _run_gossip(objective, theta0, o, dict(local_steps=H, batch_size=int(batch_size)))
