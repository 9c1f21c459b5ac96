"""The asynchronous solvers (``async_sgd``, ``easgd``, ``gossip_sgd``) on the ranks of an SPMD group.

On a distributed cluster these solvers do not submit a task per update from the client. Every
row chunk is a *worker* that loops where its rows are (one thread per chunk on its rank). For
``async_sgd``: take ``push_every`` SGD steps from its copy of the weights, push the summed gradient
straight to the server, and get back the server's answer (the new weights when a pull is due,
and the current learning rate) in the same round trip. The server lives on rank 0 (its own
chunks call it directly); it applies each push as it arrives, exactly as the client-side engine
does: staleness accounting, ``staleness="divide"``, ``max_staleness`` (a worker is held back
while the pushes in flight could take a gradient past the bound), ``push_every``/``pull_every``,
the ``delay`` straggler hook, the learning-rate schedule in server versions and rows processed.
``easgd`` keeps its centre variable there the same way; gossip is described below.

``async_sgd(n_servers=S)`` splits the server by key range over ranks ``0..S-1``
(:func:`shard_bounds`): a chunk sends every shard its part of a push at once and waits for all
their answers; shard ``s`` applies its part with its own version count and learning rate (every
push reaches every shard, so the counts agree up to the pushes in flight). Rank 0's shard keeps
the books as above and asks the other shards for their keys when a sample or a snapshot needs the
whole model; only it holds workers back for ``max_staleness`` (shards holding back on their own
could each wait for a push the other holds).

One thread per rank (the mailroom) reads all of the rank's connections and hands each message
to whom it is for: the server, a chunk waiting for its answer, a peer asking for a gossip
model, or the rank's evaluator.

Only rank 0 records the history (one row per update, sent to the client in batches) and the
snapshots (every ``checkpoint_every`` updates; the client writes them). Objective samples are
taken every ``eval_every`` updates. Without a ``tol`` they are kept and evaluated after the run
by every rank at once (one ``allreduce``). With a ``tol`` each is evaluated while the run goes on:
rank 0 sends the model to every rank, whose evaluator thread sums its rows' losses and answers,
and scikit-learn's rule (``n_iter_no_change`` samples without improving by ``tol``) stops the run.
A lost worker ends the group; the run restarts from the newest snapshot on the workers that
remain (see ``_ranks.py``).
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
from ._stochastic import _Stopper, scheduled_rate, slowdown

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
                       max_time=-1.0 if o["max_time"] is None else float(o["max_time"]),
                       monitor="online" if o["tol"] is not None else "after",
                       checkpoint=o["checkpoint"], checkpoint_every=o["checkpoint_every"], resume=o["resume"],
                       learning_rate=o["learning_rate"], eta0=o["eta0"], seed=o["seed"], on_ranks=1, **attrs)
        self.run.workers = list(range(self.P))
        self.theta = np.array(theta0, dtype=np.float64)
        self.version = self.rows_done = 0
        self.position = [0] * self.P
        self.updates = np.zeros(self.P, dtype=np.int64)
        self.busy = np.zeros(self.P)
        self.lost = np.zeros(self.P, dtype=np.int64)      # work lost with a worker (restarts)
        self.samples: list[tuple[int, np.ndarray]] = []
        # with a tol, each sample is evaluated while the run goes on (every rank sums its rows)
        self.stopper = _Stopper(float(o["tol"]), int(o["n_iter_no_change"])) if o["tol"] is not None else None
        self.converged = False
        self.evals: dict[int, list] = {}            # sample -> [sum so far, ranks that reported]
        self.next_eval = 0                          # the next sample to evaluate (in order)
        self.mail: Any = None
        self.setup()
        snap = self.run.snapshot
        if snap is not None:
            st = snap.state
            if self.stopper is not None:
                self.stopper.best, self.stopper.bad = float(st.get("best", np.inf)), int(st.get("bad", 0))
            self.version, self.rows_done = int(st["version"]), int(st["rows_done"])
            self.position = [int(p) for p in st["position"]]
            self.updates = np.array(snap.arrays["updates"], dtype=np.int64)
            self.busy = np.array(snap.arrays["busy"], dtype=float)
            if "failed" in snap.arrays:
                self.lost = np.array(snap.arrays["failed"], dtype=np.int64)
            if "sample_index" in snap.arrays:
                self.samples = list(zip(snap.arrays["sample_index"].tolist(), np.array(snap.arrays["sample_theta"])))
            self.next_eval = len(self.samples)      # (evaluated after the run if their rows lack it)
            self.restore(snap)
        self.ctx = ctx = rank_context()
        if ctx is not None and ctx.lost is not None:     # updates redone after a lost worker
            self.lost = self.lost + np.asarray(ctx.lost, dtype=np.int64)
        self.reason = ""
        self.answering()

    def answering(self) -> None:
        """The state of answering the chunks: who they are, who is held back, the end."""
        self.waiting: dict[int, Any] = {}           # chunk -> what its held-back answer needs
        self.local_mail: dict[int, tuple] = {}      # answers to this rank's own chunks
        self.lock = threading.Condition()
        self.done = False
        self.error: BaseException | None = None
        self.replied_stop: set[int] = set()
        self.owner: dict[int, int] = {}             # chunk -> rank
        self.addresses = [""] * self.P
        self.discarded = np.zeros(self.P, dtype=np.int64)

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
        """Keep the model of history row ``index`` (its objective is evaluated now with a tol,
        after the run without one)."""
        self.samples.append((index, self.theta.copy()))
        self.evaluate_ready()

    def on_done(self) -> None:
        """What ends with the run (the chunks held back are told to stop)."""
        self._release_waiting()

    def set_done(self) -> None:
        if not self.done:
            self.done = True
            self.on_done()

    # -- the objective while the run goes on (tol) ---------------------------------------------
    def evaluate_ready(self) -> None:
        """Ask every rank for its rows' loss at the samples whose model is known, in order."""
        while self.stopper is not None and self.mail is not None and self.next_eval < len(self.samples) \
                and self.samples[self.next_eval][1] is not None:
            sid = self.next_eval
            self.next_eval += 1
            self.evals[sid] = [0.0, 0]
            self.mail.evaluate_everywhere(sid, self.samples[sid][1])

    def add_eval(self, sid: int, part: float) -> None:
        """One rank's loss sum at sample ``sid``; with all of them, the row's objective and the
        stopping rule (scikit-learn's: ``n_iter_no_change`` samples without improving by ``tol``)."""
        e = self.evals.get(sid)
        if e is None:
            return
        e[0] += part
        e[1] += 1
        if e[1] < self.comm.size:
            return
        del self.evals[sid]
        index, theta = self.samples[sid]
        obj = self.objective
        f = float(e[0] / self.n + obj.lam * obj.penalty.value(theta[obj.mask]))
        self.run.fill(index, objective=f)
        if not self.done and self.stopper(f):
            self.converged = True
            self.reason = (f"the sampled objective did not improve by tol={self.stopper.tol:g} in "
                           f"{self.stopper.patience} samples")
            self.set_done()

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

    def record_update(self, i: int, staleness: int, elapsed: float, save: bool = True, rows: int | None = None,
                      **extra: Any) -> bool:
        """Count one update of chunk ``i`` (``rows`` rows; default ``rows_per_update``), record its
        row (sampling the model every ``eval_every`` updates), snapshot when due; sets
        :attr:`done` when a stopping rule fires."""
        self.updates[i] += 1
        self.rows_done += self.rows_per_update if rows is None else int(rows)
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
            self.set_done()
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
        self.save_now(total, self._counters(), self._state())

    def save_now(self, total: int, counters: dict, state: dict) -> None:
        """Write the snapshot of update ``total`` (``counters``, ``state``: the books then)."""
        self.run.save(total, final=True, arrays={**self.arrays(), **counters}, **state)

    def extra_state(self) -> dict:
        """The rule's own JSON-able state in a snapshot."""
        return {}

    def _state(self) -> dict:
        return dict(version=self.version, rows_done=self.rows_done, position=list(self.position),
                    seed=self.o["seed"], **self.extra_state(), **self.stop_state())

    def _counters(self) -> dict:
        """The counters and the samples whose model is known, for a snapshot."""
        arrays = {"updates": self.updates.copy(), "busy": self.busy.copy(), "failed": self.lost.copy()}
        done = [(i, t) for i, t in self.samples if t is not None]
        if done:
            arrays["sample_index"] = np.array([i for i, _ in done], dtype=np.int64)
            arrays["sample_theta"] = np.stack([t for _, t in done])
        return arrays

    def stop_state(self) -> dict:
        st = self.stopper
        return {"converged": self.converged, "best": float(st.best) if st is not None else 0.0,
                "bad": int(st.bad) if st is not None else 0}

    # -- rank 0's own chunks -------------------------------------------------------------
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
    def final_model(self) -> np.ndarray:
        """The result (once every chunk has stopped)."""
        return self.theta

    def totals(self) -> dict:
        """The rule's own per-worker totals in the history."""
        return {}

    def unevaluated(self) -> list[tuple[int, np.ndarray]]:
        """The samples whose history row has no objective yet (evaluated after the run)."""
        rows = self.run.recorder.rows
        return [(i, t) for i, t in self.samples if not np.isfinite(rows[i].get("objective", math.nan))]

    def finish(self, filled: list[tuple[int, float]]) -> Any:
        for index, f in filled:
            self.run.fill(index, objective=float(f))
        self._save(final=True)
        obj = self.objective
        sizes = np.asarray(obj.row_chunks)
        self.run.worker_totals = {"updates": self.updates, "lost": self.lost, "busy_time": self.busy,
                                  "rows_per_chunk": sizes, "address": np.asarray(self.addresses, dtype=str),
                                  **self.totals()}
        self.run.attrs.update(lost_tasks=int(self.lost.sum()), updates=int(self.updates.sum()),
                              epochs=self.rows_done / self.n)
        finished = self.converged or self.rows_done >= self.rows_needed
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
        # a sharded server (see shard_bounds): this rank keeps the keys part[0]:part[1]
        self.shard, self.part, self.bounds = 0, None, None
        self.pending: dict[int, list] = {}          # token -> [what, {shard: its keys}]: models being assembled
        self.tokens = 0

    # -- sharded by key range (rank 0 is shard 0 and keeps the books) --------------------------
    @property
    def sharded(self) -> bool:
        return self.bounds is not None

    def keep_shard(self, bounds: list) -> None:
        """From now on this server keeps only shard 0's keys; ranks ``1..len(bounds)-1`` keep
        the others (:class:`_SGDShard`)."""
        self.bounds, self.part = bounds, bounds[0]
        self.theta = self.theta[self.part[0]:self.part[1]].copy()

    def current(self) -> np.ndarray | None:
        return None if self.sharded else super().current()

    def sample(self, index: int) -> None:
        if not self.sharded:
            return super().sample(index)
        self.samples.append((index, None))          # (its model is assembled from the shards)
        self._assemble(("sample", len(self.samples) - 1))

    def save_now(self, total: int, counters: dict, state: dict) -> None:
        if not self.sharded:
            return super().save_now(total, counters, state)
        self._assemble(("save", total, counters, state))

    def _assemble(self, what: tuple) -> None:
        """Ask every shard for its keys now; ``what`` is done once all have answered (a sample's
        model, or a snapshot's). Each shard answers with its keys as they are when asked: the
        model of an asynchronous server is never one version everywhere."""
        token = self.tokens
        self.tokens += 1
        self.pending[token] = [what, {0: self.theta.copy()}]
        for s in range(1, len(self.bounds)):
            self.comm.send(("want", token), s, tag=(TAG, "ctl"))

    def _got_part(self, token: int, shard: int, keys: np.ndarray) -> None:
        p = self.pending.get(token)
        if p is None:
            return
        p[1][shard] = keys
        if len(p[1]) == len(self.bounds):
            del self.pending[token]
            self._assembled(p[0], np.concatenate([p[1][s] for s in range(len(self.bounds))]))

    def _assembled(self, what: tuple, theta: np.ndarray) -> None:
        if what[0] == "sample":
            index = what[1]
            self.samples[index] = (self.samples[index][0], theta)
            self.evaluate_ready()
        else:
            _, total, counters, state = what
            self.run.save(total, final=True, arrays={"theta": theta, **counters}, **state)

    def end_shards(self, theta: np.ndarray) -> None:
        """The run is over and ``theta`` is every shard's final keys: the samples still waiting
        for a shard take its final keys; snapshots not assembled are dropped (the final one
        follows); the server is whole again.

        The last row is sampled again at ``theta``, so that its objective is the result's: a
        push in flight when rank 0 stopped the run is not applied there (as with one server)
        but may have been by a shard that had not heard of the stop yet."""
        for token in sorted(self.pending):
            what, parts = self.pending.pop(token)
            if what[0] == "sample":
                full = theta.copy()
                for s, keys in parts.items():
                    lo, hi = self.bounds[s]
                    full[lo:hi] = keys
                self._assembled(what, full)
        self.bounds = self.part = None
        self.theta = np.array(theta, dtype=np.float64)
        last = self.run.n_rows - 1
        if last >= 0 and any(i == last for i, _ in self.samples):
            self.samples = [(i, t) for i, t in self.samples if i != last]
            self.run.fill(last, objective=math.nan)     # (the final sample follows, at theta)

    def on_done(self) -> None:
        super().on_done()
        if self.sharded:
            for s in range(1, len(self.bounds)):
                self.comm.send(("done", 0), s, tag=(TAG, "ctl"))

    def handle(self, msg: tuple, rank: int) -> tuple | None:
        if msg[0] == "part":
            self._got_part(msg[1], msg[2], msg[3])
            return None
        return super().handle(msg, rank)

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
        return ("go", self.theta.copy() if pull else None, self._pulled[i], self.rate(), self.position[i], self.shard)

    def retry(self, i: int, need: Any) -> tuple | None:
        return self._answer(i, need)

    def first(self, i: int) -> tuple | None:
        return self._answer(i, True)

    def push(self, msg: tuple) -> tuple | None:
        _, i, acc, loss, pulled, elapsed, want_pull = msg
        self.flying.pop(i, None)
        tau = self.version - pulled
        eta = self.rate() / (max(tau, 1) if self.o["staleness"] == "divide" else 1.0)
        self.theta = self.spec.prox(self.theta - eta * acc, eta * self.push_every, self.part)
        self.version += 1
        self.position[i] += self.push_every
        if self.record_update(i, tau, elapsed, eta=eta, batch_loss=float(loss)):
            return ("stop",)
        return self._answer(i, want_pull)


class _SGDShard(_SGDServer):
    """Shard ``s > 0`` of :func:`~daskpml.optim.async_sgd`'s server, on rank ``s``: it keeps
    the keys ``bounds[s]`` and applies every push's part of the gradient to them, with its own
    version (one per push, as every push reaches every shard), staleness count and learning
    rate; it never holds a worker back (rank 0's shard does, for ``max_staleness``). Rank 0
    keeps the books (history, samples, snapshots, stopping rules) and asks for this shard's
    keys when it needs the whole model."""

    def __init__(self, objective: Any, o: dict, shard: int, bounds: list, theta: np.ndarray, version: int,
                 rows_done: int) -> None:
        self.objective, self.o = objective, o
        self.comm = objective.group
        self.P, self.n = objective.n_chunks, objective.n_samples
        self.spec = objective.spec
        self.rows_per_update = o["rows_per_update"]
        self.setup()
        # Only rank 0's shard holds a worker back for max_staleness: two shards holding back
        # on their own could each wait for a push the other holds (a deadlock). The others
        # apply each push as it comes and pull when the chunk pulls.
        self.bound = None
        self.shard, self.bounds, self.part = shard, bounds, bounds[shard]
        self.theta = np.array(theta[self.part[0]:self.part[1]], dtype=np.float64)
        self.version, self.rows_done = int(version), int(rows_done)
        self.position = [0] * self.P                # (rank 0 tells the chunks where they are)
        self.updates = np.zeros(self.P, dtype=np.int64)
        self.ctx = self.mail = self.stopper = None
        self.answering()

    def sample(self, index: int) -> None:
        raise AssertionError("a shard keeps no history")

    def on_done(self) -> None:
        self._release_waiting()

    def record_update(self, i: int, staleness: int, elapsed: float, save: bool = True, rows: int | None = None,
                      **extra: Any) -> bool:
        self.updates[i] += 1
        self.rows_done += self.rows_per_update if rows is None else int(rows)
        return self.done

    def handle(self, msg: tuple, rank: int) -> tuple | None:
        if msg[0] == "want":                        # rank 0 assembles the model
            self.comm.send(("part", msg[1], self.shard, self.theta.copy()), 0, tag=(TAG, "ctl"))
            return None
        if msg[0] == "done":                        # rank 0 stopped the run
            self.set_done()
            return None
        return super().handle(msg, rank)


def shard_bounds(n_params: int, n_shards: int) -> list[tuple[int, int]]:
    """Key ranges of ``n_shards`` server shards over ``n_params`` parameters, as even as can be.

    Examples
    --------
    >>> shard_bounds(10, 3)
    [(0, 4), (4, 7), (7, 10)]
    """
    q, r = divmod(n_params, n_shards)               # (the larger parts first, like numpy.array_split)
    out, lo = [], 0
    for size in [q + (s < r) for s in range(n_shards)]:
        out.append((lo, lo + size))
        lo += size
    return out


def n_shards(n_servers: int | None, n_params: int, n_ranks: int, shard_bytes: int | None) -> int:
    """How many ranks keep a part of the server: ``n_servers``, or with None one per
    ``shard_bytes`` of float64 model (None: one server); never more than the ranks or the
    parameters.

    Examples
    --------
    >>> n_shards(None, 1_000, 4, 4 << 20), n_shards(None, 2_000_000, 4, 4 << 20), n_shards(8, 10, 2, None)
    (1, 4, 2)
    >>> n_shards(None, 2_000_000, 4, None)
    1
    """
    if n_servers is not None:
        want = int(n_servers)
    else:
        want = 1 if shard_bytes is None else max(1, math.ceil(8 * n_params / int(shard_bytes)))
    return max(1, min(want, n_ranks, n_params))


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
    _, theta, pulled, rate, position = answer[:5]
    if isinstance(theta, list):                     # a sharded server: every shard's keys
        theta = np.concatenate([keys for _, keys in theta])
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
        _, new_theta, pulled, rate, _ = answer[:5]
        if isinstance(new_theta, list):             # the keys of the shards that sent theirs
            local = new_local.copy()
            for (lo, hi), keys in new_theta:
                local[lo:hi] = keys
            if sum(hi - lo for (lo, hi), _ in new_theta) == len(local):
                theta, local, since_pull = local, None, 0
        elif new_theta is not None:                 # a pull (due, or forced by max_staleness)
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


def _schedule(learning_rate: str, eta0: float, power_t: float, gamma: float, decay_every: int, max_iter: float,
              max_time: float | None, eval_every: int | None, checkpoint: Any, checkpoint_every: int, resume: bool,
              random_state: Any, delay: Any, tol: float | None, n_iter_no_change: int) -> dict:
    if tol is not None and not tol >= 0:
        raise ValueError(f"tol must be None or a non-negative number, got {tol}.")
    if int(n_iter_no_change) < 1:
        raise ValueError(f"n_iter_no_change must be a positive integer, got {n_iter_no_change}.")
    return dict(learning_rate=learning_rate, eta0=eta0, power_t=power_t, gamma=gamma, decay_every=decay_every,
                max_iter=max_iter, max_time=max_time, eval_every=eval_every, checkpoint=checkpoint,
                checkpoint_every=checkpoint_every, resume=resume, seed=resolve_seed(random_state), delay=delay,
                tol=None if tol is None else float(tol), n_iter_no_change=int(n_iter_no_change))


def async_sgd_on_ranks(objective: Any, theta0: np.ndarray, *, batch_size: int = 256, learning_rate: str = "invscaling",
                       eta0: float = 0.1, power_t: float = 0.25, gamma: float = 0.1, decay_every: int = 10,
                       staleness: str = "none", max_staleness: int | None = None, push_every: int = 1,
                       pull_every: int = 1, max_iter: float = 10, max_time: float | None = None,
                       tol: float | None = None, n_iter_no_change: int = 3, eval_every: int | None = None,
                       delay: Any = None, random_state: Any = None, callback: Any = None, progress: Any = None,
                       checkpoint: Any = None, checkpoint_every: int = 10, resume: bool = False,
                       n_servers: int | None = None) -> Any:
    """What every rank runs for :func:`~daskpml.optim.async_sgd` (see the module's description)."""
    from .. import _config
    from ._async import check_async_sgd

    bound = check_async_sgd(batch_size, eta0, staleness, push_every, pull_every, max_staleness, max_iter, max_time,
                            n_servers)
    S = n_shards(n_servers, len(theta0), objective.group.size, _config.get("optim.shard-bytes"))
    o = dict(_schedule(learning_rate, eta0, power_t, gamma, decay_every, max_iter, max_time, eval_every, checkpoint,
                       checkpoint_every, resume, random_state, delay, tol, n_iter_no_change),
             batch=int(batch_size), push_every=int(push_every), pull_every=int(pull_every), bound=bound,
             staleness=staleness, rows_per_update=int(batch_size) * int(push_every),
             bounds=shard_bounds(len(theta0), S))
    attrs = dict(batch_size=int(batch_size), staleness=staleness, max_staleness=-1 if bound is None else bound,
                 push_every=int(push_every), pull_every=int(pull_every), n_servers=S)
    return _run(objective, theta0, o, _SGDServer, attrs,
                lambda i, X, y, c: _drive(_chunk_worker(i, X, y, o, objective.spec, c.address), c.ask))


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
                       checkpoint_every, resume, random_state, delay, tol, n_iter_no_change),
             batch=int(batch_size), local_steps=tau, alpha=alpha, synchronous=bool(synchronous),
             rows_per_update=int(batch_size) * tau)
    attrs = dict(local_steps=tau, alpha=alpha, synchronous=int(bool(synchronous)), batch_size=int(batch_size))
    return _run(objective, theta0, o, _EASGDServer, attrs,
                lambda i, X, y, c: _drive(_easgd_worker(i, X, y, o, objective.spec, c.address), c.ask))


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
            self.replied_stop.add(i)
            return ("stop", prev, self._take_marks(i))
        return self._go(i, prev)

    def on_done(self) -> None:
        for m in self.marks:                        # every chunk's newest model is part of the result
            m.append(("f",))

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
                    self.evaluate_ready()
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

    def extra_state(self) -> dict:
        return {"made_at": list(self.made_at)}

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

    def final_model(self) -> np.ndarray:
        """The row-weighted average of every chunk's newest model (once all are in)."""
        self.theta = sum(self.weights[j] * self.final[j] for j in range(self.P))
        return self.theta


def gossip_peer(seed: int, chunk: int, position: int, n_chunks: int) -> int:
    """The peer chunk ``chunk`` averages with in its update that starts at ``position`` (drawn
    by the chunk itself, so that it can ask for the peer's model ahead of time; the same draw
    after a restart from a snapshot)."""
    j = int(np.random.default_rng([seed, 11, chunk, position]).integers(n_chunks - 1))
    return j + (j >= chunk)


def _gossip_chunk(i: int, X: Any, y: Any, o: dict, spec: Any, c: "_Chunks") -> None:
    """One chunk's gossip loop: average with a peer's newest model, ``local_steps`` steps, push the
    bookkeeping to rank 0, and send its previous model where a sample or snapshot marked it. The
    next peer's model is asked for before the push, so that the two round trips overlap."""
    ask, request, receive, publish, piece = c.ask, c.request, c.receive, c.publish, c.piece
    theta0 = c.theta0
    answer = ask(("hello", i, c.address))
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


class _Mailroom:
    """The only reader of this rank's connections while an asynchronous solver runs. It hands the
    control messages to the server (rank 0), answers the peers' requests for this rank's gossip
    models, evaluates the objective on this rank's rows when rank 0 asks (a thread of its own),
    gives each chunk the answers tagged for it, and keeps anything else (a collective a finished
    peer started) for its own receive. It ends when this rank's chunks are done and every other
    rank said so too."""

    def __init__(self, comm: Any, chunks: list, server: _Server | None, objective: Any) -> None:
        import queue

        self.comm, self.server, self.objective = comm, server, objective
        self.boxes = {i: queue.Queue() for i in chunks}        # the server's answers
        self.replies = {i: queue.Queue() for i in chunks}      # the peers' models (gossip)
        self.models: dict[int, tuple] = {}          # this rank's chunks: (newest model, made at)
        self.asked: dict[int, list] = {}            # requests for a model not published yet
        self.lock = threading.Lock()
        self.byes = 0
        self.local_done = threading.Event()
        self.evals: queue.Queue = queue.Queue()
        self.threads = [threading.Thread(target=self._guard, args=(self._run,), daemon=True,
                                         name="daskpml-async-mailroom"),
                        threading.Thread(target=self._guard, args=(self._evaluator,), daemon=True,
                                         name="daskpml-async-evaluator")]
        for t in self.threads:
            t.start()

    def join(self) -> None:
        self.threads[0].join()
        self.evals.put(None)
        self.threads[1].join()

    # -- gossip models ----------------------------------------------------------------------
    def publish(self, i: int, model: np.ndarray, made: int) -> None:
        with self.lock:
            self.models[i] = (model, made)
            asked = self.asked.pop(i, [])
        for src, j in asked:
            self.comm.send(("model", model, made), src, tag=(TAG, j))

    # -- the objective on this rank's rows ---------------------------------------------------
    def evaluate_everywhere(self, sid: int, theta: np.ndarray) -> None:
        """(Rank 0) every rank sums its rows' loss at ``theta``, for the server's sample ``sid``."""
        for r in range(self.comm.size):
            if r != self.comm.rank:
                self.comm.send((sid, theta), r, tag=(TAG, "eval"))
        self.evals.put((sid, theta))

    def _evaluator(self) -> None:
        spec = self.objective.spec
        while True:
            item = self.evals.get()
            if item is None:
                return
            sid, theta = item
            thetas = theta[None, :]
            parts = self.objective.map_blocks(lambda i, X, y: chunk_losses(X, y, thetas, spec.family, spec.layout))
            total = float(sum(float(p[0]) for p in parts))
            if self.comm.rank == 0:
                with self.server.lock:
                    self.server.add_eval(sid, total)
            else:
                self.comm.send(("evalsum", sid, total), 0, tag=(TAG, "ctl"))

    # -- reading --------------------------------------------------------------------------------
    def _guard(self, fn: Any) -> None:
        try:
            fn()
        except BaseException as e:                  # every waiting chunk (and the server) end with it
            for box in [*self.boxes.values(), *self.replies.values()]:
                box.put(e)
            if self.server is not None:
                with self.server.lock:
                    self.server.error = e
                    self.server.done = True
                    self.server.lock.notify_all()

    def _run(self) -> None:
        comm = self.comm
        peers = [r for r in range(comm.size) if r != comm.rank]
        while not (self.local_done.is_set() and self.byes == len(peers)):
            if not peers:                           # a group of one rank: nothing to read
                self.local_done.wait(0.2)
                continue
            for p, tag, obj in comm.next_messages(peers, 0.2):
                self._route(p, comm.channels[p], tag, obj)

    def _route(self, src: int, ch: Any, tag: Any, obj: Any) -> None:
        user = tag[1] if tag[0] == "u" else None
        if not (isinstance(user, tuple) and len(user) == 2 and user[0] == TAG):
            ch.pending.setdefault(tag, []).append(obj)
            return
        what = user[1]
        if what == "ctl":
            with self.server.lock:
                if obj[0] == "evalsum":
                    self.server.add_eval(obj[1], obj[2])
                    return
                answer = self.server.handle(obj, src)
            if answer is not None:
                self.comm.send(answer, src, tag=(TAG, obj[1]))
        elif what == "get":
            j, i = obj
            with self.lock:
                have = self.models.get(j)
                if have is None:                    # (chunk j has not started yet)
                    self.asked.setdefault(j, []).append((src, i))
            if have is not None:
                self.comm.send(("model", *have), src, tag=(TAG, i))
        elif what == "eval":
            self.evals.put(obj)
        elif what == "bye":
            self.byes += 1
        else:
            (self.replies if obj[0] == "model" else self.boxes)[what].put(obj)

    def wait(self, i: int, model: bool = False) -> tuple:
        """The server's next answer to chunk ``i`` (``model``: the next peer's model)."""
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


class _Chunks:
    """What a chunk's loop calls: ``ask`` the server (directly on rank 0), and for gossip
    ``request``/``receive`` a peer's model, ``publish`` its own, send a marked ``piece``."""

    def __init__(self, comm: Any, server: _Server | None, mail: _Mailroom, owner: dict, theta0: np.ndarray,
                 address: str, shard: _Server | None = None, bounds: list | None = None) -> None:
        self.comm, self.server, self.mail, self.owner = comm, server, mail, owner
        self.theta0, self.address = theta0, address
        self.shard, self.bounds = shard, bounds      # a sharded server: this rank's shard, the key ranges
        self.publish = mail.publish
        self.errors: list = []

    def ask(self, msg: tuple) -> tuple:
        if self.bounds is not None:
            return self.ask_shards(msg)
        if self.server is not None:
            return self.server.ask_local(msg)
        self.comm.send(msg, 0, tag=(TAG, "ctl"))
        return self.mail.wait(msg[1])

    def ask_shards(self, msg: tuple) -> tuple:
        """A sharded server: shard ``s`` (on rank ``s``) gets the hello, or its keys' part of
        the push, all at once; the answer is ``("go", [(bounds, keys) of the shards that sent
        theirs], the version pulled from each, rank 0's rate, rank 0's position)``, or a stop."""
        i, S = msg[1], len(self.bounds)
        if msg[0] == "hello":
            parts = [msg] * S
        else:
            _, _, acc, loss, pulled, elapsed, want_pull = msg
            parts = [("push", i, acc[lo:hi], loss, pulled[s], elapsed, want_pull)
                     for s, (lo, hi) in enumerate(self.bounds)]
        for s, part in enumerate(parts):
            if s != self.comm.rank:
                self.comm.send(part, s, tag=(TAG, "ctl"))
        answers = [self.shard.ask_local(parts[self.comm.rank])] if self.shard is not None else []
        while len(answers) < S:
            answers.append(self.mail.wait(i))
        if any(a[0] == "stop" for a in answers):
            return ("stop",)
        by = {a[5]: a for a in answers}
        keys = [(self.bounds[s], by[s][1]) for s in range(S) if by[s][1] is not None]
        return ("go", keys or None, tuple(by[s][2] for s in range(S)), by[0][3], by[0][4])

    def piece(self, i: int, marks: list, model: np.ndarray) -> None:
        if not marks:
            return
        if self.server is not None:
            with self.server.lock:
                self.server.add_piece(i, marks, model)
        else:
            self.comm.send(("piece", i, marks, model), 0, tag=(TAG, "ctl"))

    def request(self, j: int, i: int) -> None:
        if self.owner[j] != self.comm.rank:
            self.comm.send((j, i), self.owner[j], tag=(TAG, "get"))

    def receive(self, j: int, i: int) -> tuple:
        if self.owner[j] == self.comm.rank:         # the newest, read in place
            while j not in self.mail.models:        # (a chunk of this rank that has not started yet)
                if self.errors:
                    raise self.errors[0]
                time.sleep(0.001)
            return self.mail.models[j]
        _, model, made = self.mail.wait(i, model=True)
        return model, made


def _run(objective: Any, theta0: np.ndarray, o: dict, server_cls: type, attrs: dict, chunk: Any) -> Any:
    """Every rank: the server (rank 0), the mailroom, this rank's chunks (one thread each:
    ``chunk(i, X, y, context)``), then the objective at the samples not evaluated yet."""
    comm = objective.group
    o.update(factors=[slowdown(o["delay"], i) for i in range(objective.n_chunks)], n_chunks=objective.n_chunks)
    server = server_cls(objective, theta0, o, attrs) if comm.rank == 0 else None
    if server is not None:
        server.theta0 = np.array(theta0, dtype=np.float64)
    try:
        from distributed import get_worker

        address = get_worker().address
    except Exception:
        address = ""
    owner = {j: r for r, chunks in enumerate(comm.allgather(list(objective.block_index))) for j in chunks}
    blocks = list(zip(objective.block_index, objective._blocks))
    bounds, shard = o.get("bounds"), None
    if bounds is not None and len(bounds) > 1:      # the server split by key range over ranks 0..S-1
        start = comm.broadcast((server.theta, server.version, server.rows_done) if server is not None else None)
        if server is not None:
            server.keep_shard(bounds)
            shard = server
        elif comm.rank < len(bounds):
            shard = _SGDShard(objective, o, comm.rank, bounds, *start)
    else:
        bounds = None
    mail = _Mailroom(comm, [i for i, _ in blocks], server or shard, objective)
    if server is not None:
        with server.lock:
            server.mail = mail
            server.evaluate_ready()                 # (samples restored from a snapshot wait for the end)
    c = _Chunks(comm, server, mail, owner, theta0, address, shard, bounds)

    def run(i: int, X: Any, y: Any) -> None:
        try:
            chunk(i, X, y, c)
        except BaseException as e:                  # re-raised in the rank's thread
            c.errors.append(e)

    threads = [threading.Thread(target=run, args=(i, X, y), daemon=True, name=f"daskpml-chunk-{i}")
               for i, (X, y) in blocks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if c.errors:
        raise c.errors[0]
    for r in range(comm.size):                      # no more requests or pieces from this rank
        if r != comm.rank:
            comm.send(None, r, tag=(TAG, "bye"))
    mail.local_done.set()
    mail.join()
    if server is not None and server.error is not None:
        raise server.error
    if shard is not None and shard.error is not None:
        raise shard.error
    if bounds is not None:                          # the shards' final keys, whole on rank 0
        parts = comm.gather(shard.theta if shard is not None else None, root=0)
        if server is not None:
            server.end_shards(np.concatenate([p for p in parts[:len(bounds)]]))
    todo = None
    if server is not None:                          # the final model is always sampled
        theta = server.final_model()
        last = server.run.n_rows - 1
        if last < 0:
            server.run.record(0, None, math.nan, math.nan, update_worker=-1, version=0, staleness=0, rows=0)
            last = 0
        if not any(i == last for i, _ in server.samples):
            server.samples.append((last, theta.copy()))
        todo = server.unevaluated()
    # the samples without an objective yet: every rank sums its rows' losses, one allreduce
    thetas = comm.broadcast(np.stack([t for _, t in todo]) if todo else None)
    sums = None
    if thetas is not None:
        spec = objective.spec
        sums = objective.reduce_blocks(lambda i, X, y: chunk_losses(X, y, thetas, spec.family, spec.layout),
                                       count=False)
    if server is None:
        return None
    filled = []
    if sums is not None:
        obj = objective
        filled = [(index, s / server.n + obj.lam * obj.penalty.value(t[obj.mask])) for (index, t), s in zip(todo, sums)]
    return server.finish(filled)


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
                       checkpoint_every, resume, random_state, delay, tol, n_iter_no_change),
             batch=int(batch_size), local_steps=H, rows_per_update=int(batch_size) * H)
    return _run(objective, theta0, o, _GossipServer, dict(local_steps=H, batch_size=int(batch_size)),
                lambda i, X, y, c: _gossip_chunk(i, X, y, o, objective.spec, c))


# -- hogwild ----------------------------------------------------------------------------------------

class _HogwildServer(_Server):
    """:func:`~daskpml.optim.hogwild`'s rounds: every chunk runs ``epochs_per_round`` epochs of
    lock-free threads from the round's model; once all have pushed, rank 0 averages them
    (weighted by rows) and every chunk starts the next round from the average."""

    solver = "hogwild"

    def setup(self) -> None:
        self.E = self.o["epochs_per_round"]
        self.epoch = 0
        self.sgd_updates = np.zeros(self.P)
        self.weights = np.asarray(self.objective.row_chunks, dtype=float) / self.n
        self.arrived: dict[int, tuple] = {}

    def restore(self, snap: Any) -> None:
        self.theta = np.array(snap.arrays["theta"])
        self.sgd_updates = np.array(snap.arrays["sgd_updates"], dtype=float)
        self.epoch = int(snap.state["epoch"])

    def arrays(self) -> dict:
        return {"theta": self.theta, "sgd_updates": self.sgd_updates}

    def extra_state(self) -> dict:
        return {"epoch": self.epoch}

    def _go(self) -> tuple:
        return ("go", self.theta, self.epoch)

    def first(self, i: int) -> tuple | None:
        return self._go()

    def push(self, msg: tuple) -> tuple | None:
        _, i, model, loss, updates, elapsed = msg
        self.arrived[i] = (model, loss, updates, elapsed)
        if len(self.arrived) < self.P:
            self.waiting[i] = True                  # answered when every worker has arrived
            return None
        self.theta = sum(self.weights[j] * self.arrived[j][0] for j in range(self.P))
        self.epoch += self.E
        self.version += 1
        rounds, self.arrived = self.arrived, {}
        for j in range(self.P):                     # a row for every worker of the round
            _, loss_j, updates_j, elapsed_j = rounds[j]
            self.sgd_updates[j] += updates_j
            self.record_update(j, 0, elapsed_j, save=j == self.P - 1, rows=updates_j, batch_loss=float(loss_j),
                               updates_per_second=updates_j / max(elapsed_j, 1e-12))
        if self.done:
            return ("stop",)
        for j in list(self.waiting):                # everyone goes on with the new round
            self.waiting.pop(j)
            self._deliver(j, self._go())
        return self._go()

    def totals(self) -> dict:
        return {"sgd_updates": self.sgd_updates, "updates_per_second": self.sgd_updates / np.maximum(self.busy, 1e-12)}


def _hogwild_worker(i: int, X: Any, y: Any, o: dict, address: str):
    """One chunk's rounds: ``epochs_per_round`` epochs of Hogwild from the round's model."""
    from ._hogwild import hogwild_epochs

    answer = yield ("hello", i, address)
    while answer[0] != "stop":
        _, theta, epoch = answer
        model, loss, updates, elapsed = hogwild_epochs(X, y, theta, chunk=i, first_epoch=epoch,
                                                       epochs=o["epochs_per_round"], factor=o["factors"][i],
                                                       **o["kernel"])
        answer = yield ("push", i, model, loss, updates, elapsed)


def hogwild_on_ranks(objective: Any, theta0: np.ndarray, *, n_threads: int = 2, learning_rate: str = "optimal",
                     eta0: float = 0.01, power_t: float = 0.5, epochs_per_round: int = 1, max_iter: int = 5,
                     max_time: float | None = None, tol: float | None = None, n_iter_no_change: int = 3,
                     delay: Any = None, random_state: Any = None, callback: Any = None, progress: Any = None,
                     checkpoint: Any = None, checkpoint_every: int = 10, resume: bool = False) -> Any:
    """What every rank runs for :func:`~daskpml.optim.hogwild` (the round's average on rank 0)."""
    from ._hogwild import check_hogwild

    seed = resolve_seed(random_state)
    kernel = check_hogwild(objective, n_threads, learning_rate, eta0, power_t, epochs_per_round, seed)
    if not max_iter > 0:
        raise ValueError(f"max_iter (epochs) must be positive, got {max_iter}.")
    if max_time is not None and not max_time > 0:
        raise ValueError(f"max_time must be a positive number of seconds, got {max_time}.")
    E, P = int(epochs_per_round), objective.n_chunks
    o = dict(_schedule(learning_rate, eta0, power_t, 0.1, 10, max_iter, max_time, P, checkpoint,
                       checkpoint_every, resume, seed, delay, tol, n_iter_no_change),
             epochs_per_round=E, kernel=kernel, rows_per_update=math.ceil(objective.n_samples / P) * E)
    attrs = dict(n_threads=int(n_threads), epochs_per_round=E)
    return _run(objective, theta0, o, _HogwildServer, attrs,
                lambda i, X, y, c: _drive(_hogwild_worker(i, X, y, o, c.address), c.ask))
