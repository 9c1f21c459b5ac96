"""The collective layer against the raw TCP floor, Distributed's comm and a task-graph all-reduce.

    python benchmarks/bench_comm.py [--quick] [--scheduler tcp://host:8786]

Measured in one run, on one machine:

1. The floor: a 1 KB ping-pong between two plain Python processes over one TCP connection
   (blocking sockets, TCP_NODELAY), and the link's one-way bandwidth (100 MB streamed).
2. Distributed's comm, as the issue measured it: a 1 KB ping-pong over a persistent
   ``distributed.comm`` connection between two workers, driven from a task with
   ``sync(worker.loop, ...)`` (the echo is a handler registered on the other worker).
3. The task-graph all-reduce daskpml used before (``tree_sum`` of per-chunk arrays, one
   ``compute`` from the client), 1 KB on 2 workers.
4. ``daskpml.comm``: a 1 KB send/recv ping-pong between two ranks, and ``allreduce`` of 8 B to
   100 MB on 2 ranks, then 4 and 8 ranks (this machine has 2 cores: 4 and 8 ranks oversubscribe it).
   The 2-rank figures again with ``daskpml.comm.transport: distributed`` (Distributed's comm, what
   a tls:// or ucx:// cluster uses by default), as ratios to the sockets.
5. Where distributed-ucxx is installed (``pip install ".[ucx]"``): the 2-rank figures on a
   ``ucx://`` cluster of 2 worker processes (the default transport there: Distributed's comm over
   UCX; on a machine without a GPU or InfiniBand UCX runs over TCP and shared memory).

Every figure is the median of many repetitions (timed inside the ranks, after a warm-up). The
cluster is the default one a user gets (``daskpml.connect()``: worker processes), or the
scheduler given by ``--scheduler`` (``dask scheduler`` + ``dask worker`` processes).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import socket
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from _common import machine

RESULTS = Path(__file__).parent / "results"


# -- 1. the floor ---------------------------------------------------------------------------
def _echo_server(port_q, n: int, size: int) -> None:
    srv = socket.create_server(("127.0.0.1", 0))
    port_q.put(srv.getsockname()[1])
    conn, _ = srv.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray(size)
    view = memoryview(buf)
    for _ in range(n):
        got = 0
        while got < size:
            got += conn.recv_into(view[got:], size - got)
        conn.sendall(buf)
    # bandwidth part: read until closed
    sink = bytearray(1 << 22)
    while conn.recv_into(sink):
        pass
    conn.close()


def raw_tcp(n: int, size: int, stream_bytes: int) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_echo_server, args=(q, n, size))
    p.start()
    port = q.get()
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = bytes(size)
    buf = bytearray(size)
    view = memoryview(buf)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        s.sendall(msg)
        got = 0
        while got < size:
            got += s.recv_into(view[got:], size - got)
        times.append(time.perf_counter() - t0)
    block = np.ones(stream_bytes // 8).view(np.uint8)
    t0 = time.perf_counter()
    s.sendall(block)
    s.shutdown(socket.SHUT_WR)
    p.join()
    bw_time = time.perf_counter() - t0
    s.close()
    return {"rtt_1KB_us": statistics.median(times[n // 10:]) * 1e6,
            "link_GBps": stream_bytes / bw_time / 1e9, "stream_bytes": stream_bytes}


# -- 2. Distributed's comm -----------------------------------------------------------------------
async def _echo(comm, **kwargs):
    while True:
        try:
            msg = await comm.read()
        except Exception:
            return
        await comm.write(msg)


def _install_echo(dask_worker=None):
    dask_worker.handlers["daskpml_bench_echo"] = _echo


def _ping_distributed(peer: str, n: int, size: int) -> float:
    from distributed import get_worker
    from distributed.comm import connect
    from distributed.utils import sync

    w = get_worker()
    comm = sync(w.loop, connect, peer)
    sync(w.loop, comm.write, {"op": "daskpml_bench_echo", "reply": False})
    payload = {"x": bytes(size)}
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        sync(w.loop, comm.write, payload)
        sync(w.loop, comm.read)
        times.append(time.perf_counter() - t0)
    sync(w.loop, comm.close)
    return statistics.median(times[n // 10:]) * 1e6


def distributed_comm(client, n: int) -> float:
    workers = sorted(client.scheduler_info()["workers"])[:2]
    client.run(_install_echo, workers=[workers[1]])
    return client.submit(_ping_distributed, workers[1], n, 1024, workers=[workers[0]], pure=False).result()


# -- 3. the task-graph all-reduce ----------------------------------------------------------------
def task_allreduce(client, n: int) -> float:
    import dask
    import dask.array as da

    from daskpml._blocks import tree_sum

    nw = len(client.scheduler_info()["workers"])
    parts_arr = da.ones((nw, 128), chunks=(1, 128)).persist()
    times = []
    for i in range(n):
        parts = [dask.delayed(np.add)(b.reshape(-1), i) for b in parts_arr.to_delayed().ravel()]
        root, _ = tree_sum(parts, 8)
        t0 = time.perf_counter()
        dask.compute(root)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[2:]) * 1e3


# -- 4. daskpml.comm ------------------------------------------------------------------------------
def _rank_bench(comm, blocks, sizes, reps_small, reps_large, pingpong):
    out = {}
    if pingpong and comm.size >= 2 and comm.rank < 2:
        other = 1 - comm.rank
        msg = np.ones(128)
        times = []
        for i in range(pingpong):
            t0 = time.perf_counter()
            if comm.rank == 0:
                comm.send(msg, other)
                comm.recv(other)
            else:
                comm.send(comm.recv(other), other)
            times.append(time.perf_counter() - t0)
        out["pingpong_1KB_us"] = statistics.median(times[len(times) // 10:]) * 1e6
    comm.barrier()
    for size in sizes:
        x = np.ones(max(1, size // 8))
        reps = reps_small if size <= 65536 else reps_large if size <= 1 << 24 else 3
        times = []
        for i in range(reps + 2):
            buf = x.copy()
            comm.barrier()
            t0 = time.perf_counter()
            comm.allreduce(buf)
            times.append(time.perf_counter() - t0)
            if i == 0:
                assert buf[0] == comm.size, (buf[0], comm.size)
        times = comm.allreduce(np.array([statistics.median(times[2:])]), op="max")
        out[size] = float(times[0])
    return out


def comm_figures(client, n_ranks: int, sizes, reps_small, reps_large, pingpong):
    import dask.array as da

    from daskpml.comm import spmd

    workers = sorted(client.scheduler_info()["workers"])[:n_ranks]
    parts = [client.submit(np.zeros, 1, workers=[w], pure=False) for w in workers]
    x = da.concatenate([da.from_delayed(p, (1,), float) for p in parts])
    x = client.persist(x)
    res = spmd(_rank_bench, x, args=(sizes, reps_small, reps_large, pingpong), name="bench")
    return res[0]


def allreduce_model(nbytes: float, P: int, a: float, b: float, small: int = 65536) -> float:
    """The collectives' own cost model (daskpml/comm/_communicator.py): recursive doubling up to
    ``small`` bytes (and on 2 ranks), the ring beyond; a count that is not a power of two pays
    two extra messages."""
    if P <= 1:
        return 0.0
    if nbytes <= small or P == 2:
        p2 = 1 << (P.bit_length() - 1)
        return (math.log2(p2) + (2 if p2 != P else 0)) * (a + b * nbytes)
    return 2 * (P - 1) * (a + b * nbytes / P)


def predictions(client, floor_rtt_us: float) -> dict:
    """Fitted constants of the ranks' transport and the speedups they predict at 16, 64 and 256
    workers for the L-BFGS and async-SGD families of benchmarks/scaling.py (a prediction from
    measured constants, not a measurement)."""
    import warnings

    from daskpml.comm import calibrate
    from daskpml.optim import Layout, chunk_loss_grad, fit_linear, get_family

    m = calibrate(client, repeats=20)
    a, b = m.latency, m.inv_bandwidth
    print(f"\n  fitted (daskpml.comm.calibrate): latency per message {a * 1e6:.1f} us, per allreduce level "
          f"(one exchange) {a * 1e6:.1f} us + {b * 1e9:.2f} ns/byte; bandwidth {1 / b / 1e9:.2f} GB/s; "
          f"group start {m.fit['group_start_s'] * 1e3:.0f} ms; largest fit error {m.fit['max_rel_error']:.0%}",
          flush=True)
    # L-BFGS, scaling.py's problem: 1,000,000 x 50 logistic, 15 iterations (16 evaluations)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((1_000_000, 50))
    y = (X[:, 0] > 0).astype(float)
    fam, lay = get_family("logistic"), Layout(50, 1, True)
    theta = np.zeros(51)
    t0 = time.perf_counter()
    for _ in range(3):
        chunk_loss_grad(X, y, theta, fam, lay)
    t_eval = (time.perf_counter() - t0) / 3
    evals, msg = 16, 8 * 53
    start = m.fit["group_start_s"]

    def lbfgs_time(P: int) -> float:
        return (start if P > 1 else 0.0) + evals * (t_eval / P + allreduce_model(msg, P, a, b))

    # async SGD, 200,000 x 20, batch 256: a worker's compute per update c, the server's time per
    # update s (from one rank, where rank 0's chunk calls the server directly: 1 / rate = c + s)
    Xs = X[:200_000, :20]
    ys = y[:200_000]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, _, one = fit_linear(da_rows(Xs, 1), da_rows(ys, 1), family="logistic", lam=1e-4, solver="async_sgd",
                               batch_size=256, max_iter=1, random_state=0, progress=False)
    h = one.history
    c = float(h.busy_time.values.sum()) / one.n_iter
    s_h = max(float(h.time.values[-1]) / one.n_iter - c, 1e-7)

    def async_rate(P: int) -> float:
        return min(P / (c + 2 * a + s_h), 1 / s_h)

    out = {"latency_s": a, "inv_bandwidth_s_per_byte": b, "group_start_s": start, "fit": m.fit,
           "lbfgs_eval_s_1_worker": t_eval, "async_compute_per_update_s": c, "async_server_per_update_s": s_h,
           "predicted": {}}
    print(f"  L-BFGS: one evaluation of 1M x 50 takes {t_eval * 1e3:.0f} ms on one worker; async SGD: "
          f"{c * 1e6:.0f} us of compute and {s_h * 1e6:.0f} us of server time per update", flush=True)
    for P in (2, 16, 64, 256):
        sp = lbfgs_time(1) / lbfgs_time(P)
        out["predicted"][P] = {"allreduce_408B_s": allreduce_model(msg, P, a, b), "lbfgs_speedup": sp,
                               "async_updates_per_s": async_rate(P)}
        print(f"  PREDICTED (model, not measured) at {P:3d} workers: allreduce 408 B "
              f"{allreduce_model(msg, P, a, b) * 1e3:.3f} ms; L-BFGS speedup {sp:5.1f} "
              f"(efficiency {sp / P:.0%}); async SGD {async_rate(P):8.0f} updates/s "
              f"(the server's limit is {1 / s_h:.0f}/s)", flush=True)
    return out


def ucx_figures(sizes, n: int) -> dict | None:
    """The 2-rank figures on a ucx:// LocalCluster (None without distributed-ucxx)."""
    import importlib.util

    from distributed import Client, LocalCluster

    if importlib.util.find_spec("distributed_ucxx") is None:
        print("  ucx:// skipped: distributed-ucxx is not installed (pip install \".[ucx]\")", flush=True)
        return None
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, protocol="ucx://",
                      dashboard_address=None, silence_logs=50) as cluster, Client(cluster) as client:
        res = comm_figures(client, 2, sizes, n, 10, n)
    return {"pingpong_1KB_us": res["pingpong_1KB_us"], **{human(s): res[s] * 1e3 for s in sizes}}


def da_rows(x, chunks: int):
    import dask.array as da

    return da.from_array(x, chunks=(-(-x.shape[0] // chunks),) + x.shape[1:]).persist()


def human(size: int) -> str:
    for unit, f in (("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= f:
            return f"{size // f} {unit}"
    return f"{size} B"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--scheduler", default=None, help="a running `dask scheduler` (its workers are used)")
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    import daskpml

    n = 300 if args.quick else 3000
    large = 16 << 20 if args.quick else 100 << 20
    sizes = [8, 1024, 65536, 1 << 20, large]
    result: dict = {"machine": machine(), "argv": sys.argv[1:]}
    floor = raw_tcp(n, 1024, large)
    result["raw_tcp"] = floor
    print(f"raw TCP between two processes: 1 KB round trip {floor['rtt_1KB_us']:.1f} us, "
          f"link {floor['link_GBps']:.2f} GB/s", flush=True)
    layouts = []
    if args.scheduler:
        layouts.append(("dask scheduler + dask worker", lambda: Client(args.scheduler)))
    else:
        layouts.append(("daskpml.connect() (worker processes)", lambda: daskpml.connect()))
    for label, make in layouts:
        client = make()
        rec: dict = {}
        result[label] = rec
        nw = len(client.scheduler_info()["workers"])
        print(f"\n{label}: {nw} workers", flush=True)
        rec["distributed_comm_pingpong_1KB_us"] = distributed_comm(client, n)
        print(f"  distributed.comm ping-pong 1 KB (task, sync(worker.loop)): "
              f"{rec['distributed_comm_pingpong_1KB_us']:.0f} us = "
              f"{rec['distributed_comm_pingpong_1KB_us'] / floor['rtt_1KB_us']:.1f} x raw TCP", flush=True)
        rec["task_graph_allreduce_1KB_ms"] = task_allreduce(client, 30 if args.quick else 100)
        print(f"  task-graph all-reduce 1 KB (tree_sum + compute): {rec['task_graph_allreduce_1KB_ms']:.2f} ms",
              flush=True)
        two = comm_figures(client, 2, sizes, n, 20, n)
        rec["comm_pingpong_1KB_us"] = two["pingpong_1KB_us"]
        print(f"  daskpml.comm send/recv ping-pong 1 KB: {two['pingpong_1KB_us']:.0f} us = "
              f"{two['pingpong_1KB_us'] / floor['rtt_1KB_us']:.1f} x raw TCP", flush=True)
        rec["allreduce_2"] = {human(s): two[s] * 1e3 for s in sizes}
        for s in sizes:
            line = f"  allreduce 2 ranks {human(s):>7}: {two[s] * 1e3:9.3f} ms"
            if s == large:
                twice = 2 * s / (floor["link_GBps"] * 1e9)
                rec["allreduce_large_vs_link"] = two[s] / twice
                line += f"   ({two[s] / twice:.2f} x moving {human(s)} twice over the link, {twice * 1e3:.1f} ms)"
            if s <= 1024:
                line += f"   ({two[s] * 1e6 / floor['rtt_1KB_us']:.1f} x the raw TCP round trip)"
            print(line, flush=True)
        # the same on Distributed's comm (the transport a tls:// or ucx:// cluster gets)
        import dask

        with dask.config.set({"daskpml.comm.transport": "distributed"}):
            dist = comm_figures(client, 2, sizes, n // 3, 10, n // 3)
        rec["distributed_transport"] = {"pingpong_1KB_us": dist["pingpong_1KB_us"],
                                        **{human(s): dist[s] * 1e3 for s in sizes}}
        print(f"  transport=distributed (Distributed's comm; the default on tls:// and ucx://): ping-pong 1 KB "
              f"{dist['pingpong_1KB_us']:.0f} us = {dist['pingpong_1KB_us'] / floor['rtt_1KB_us']:.1f} x raw TCP; "
              "allreduce 2 ranks " + ", ".join(f"{human(s)} {dist[s] * 1e3:.3f} ms ({dist[s] / two[s]:.1f} x sockets)"
                                               for s in sizes), flush=True)
        rec["model"] = predictions(client, floor["rtt_1KB_us"])
        cluster = getattr(client, "cluster", None)
        client.close()
        if cluster is not None:
            cluster.close()
    if not args.scheduler:
        ucx = ucx_figures(sizes, n // 3)
        if ucx is not None:
            result["ucx"] = ucx
            two = result[layouts[0][0]]["allreduce_2"]
            print("  ucx:// cluster, 2 worker processes (Distributed's comm over UCX): ping-pong 1 KB "
                  f"{ucx['pingpong_1KB_us']:.0f} us = {ucx['pingpong_1KB_us'] / floor['rtt_1KB_us']:.1f} x raw TCP; "
                  "allreduce 2 ranks " + ", ".join(f"{k} {ucx[k]:.3f} ms ({ucx[k] / two[k]:.1f} x sockets)"
                                                   for k in two), flush=True)
        for ranks in (4, 8):
            client = Client(LocalCluster(n_workers=ranks, threads_per_worker=1, processes=True,
                                         dashboard_address=None))
            small = [8, 1024, 1 << 20]
            res = comm_figures(client, ranks, small, n // 3, 10, 0)
            result[f"allreduce_{ranks}"] = {human(s): res[s] * 1e3 for s in small}
            print(f"  allreduce {ranks} ranks (oversubscribed: {ranks} processes on this machine's cores): " +
                  ", ".join(f"{human(s)} {res[s] * 1e3:.3f} ms" for s in small), flush=True)
            cluster = client.cluster
            client.close()
            cluster.close()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_comm.json").write_text(json.dumps(result, indent=1, default=str))
    print(f"\nresults: {RESULTS / 'bench_comm.json'}")


if __name__ == "__main__":
    main()
