"""daskpml.comm: the collectives against NumPy on 1-8 ranks, failures, concurrent groups."""

from __future__ import annotations

import os
import signal
import threading
import time

import dask
import dask.array as da
import numpy as np
import pytest
from distributed import Client, LocalCluster

from daskpml.comm import CommError, Communicator, spmd

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def eight():
    """Eight worker processes (this machine has 2 cores: oversubscribed, as a cluster under load)."""
    with LocalCluster(n_workers=8, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=50) as cluster, Client(cluster) as c:
        yield c


@pytest.fixture(params=["sockets", "distributed"])
def transport(request):
    """Both transports: plain sockets (a tcp:// cluster's default) and Distributed's comm (the
    default on tls:// and ucx:// clusters), forced through daskpml.comm.transport."""
    with dask.config.set({"daskpml.comm.transport": request.param}):
        yield request.param


CHANNEL = {"sockets": "Channel", "distributed": "StreamChannel"}


def on_ranks(client, n_ranks: int, blocks_per_rank: int = 1):
    """A dask array with ``blocks_per_rank`` one-element blocks on each of ``n_ranks`` workers
    (block ``i`` holds ``i``)."""
    workers = sorted(client.scheduler_info()["workers"])[:n_ranks]
    parts = []
    for r, w in enumerate(workers):
        for b in range(blocks_per_rank):
            i = r * blocks_per_rank + b
            parts.append(client.submit(np.full, 1, float(i), workers=[w], pure=False, key=f"part-{i}-{time.time()}"))
    x = da.concatenate([da.from_delayed(p, (1,), float) for p in parts])
    return client.persist(x), workers


def contribution(rank: int, size: int, dtype: str) -> np.ndarray:
    rng = np.random.default_rng([rank, size])
    if np.dtype(dtype).kind == "i":
        return rng.integers(-1000, 1000, size=(3, max(1, size)), dtype=dtype)
    return rng.standard_normal((3, max(1, size))).astype(dtype)


def _collectives(comm: Communicator, blocks, dtype, n):
    mine = np.random.default_rng([comm.rank, 99]).standard_normal(n).astype(dtype) \
        if np.dtype(dtype).kind == "f" else np.random.default_rng([comm.rank, 99]).integers(-50, 50, n).astype(dtype)
    out = {"blocks": [float(b[0]) for b in blocks], "block_index": comm.blocks}
    s = mine.copy()
    returned = comm.allreduce(s)
    out["sum"], out["in_place"] = s, returned is s
    out["max"] = comm.allreduce(mine.copy(), op="max")
    out["min"] = comm.allreduce(mine.copy(), op="min")
    out["scalar"] = comm.allreduce(comm.rank + 1)
    out["bcast0"] = comm.broadcast(mine.copy() if comm.rank == 0 else None)
    root = comm.size - 1
    out["bcast_last"] = comm.broadcast({"from": comm.rank} if comm.rank == root else None, root=root)
    out["reduce"] = comm.reduce(mine.copy(), root=root)
    out["gather"] = comm.gather(comm.rank * 10, root=0)
    out["allgather"] = comm.allgather(("r", comm.rank))
    comm.barrier()
    # point to point: a ring with two tags sent in the reverse order of their receipt
    if comm.size > 1:
        right, left = (comm.rank + 1) % comm.size, (comm.rank - 1) % comm.size
        wait_b = comm.isend(f"b{comm.rank}", right, tag="b")
        wait_a = comm.isend(f"a{comm.rank}", right, tag="a")
        out["p2p"] = (comm.recv(left, tag="a"), comm.recv(left, tag="b"))
        wait_a()
        wait_b()
    out["mine"] = mine
    out["channel"] = {type(ch).__name__ for ch in comm.channels.values()}
    return out


@pytest.mark.parametrize("n_ranks", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("dtype", ["float64", "float32", "int64"])
def test_collectives_against_numpy(eight, n_ranks, dtype, transport):
    x, workers = on_ranks(eight, n_ranks)
    n = 37
    res = spmd(_collectives, x, args=(dtype, n))
    assert len(res) == n_ranks
    mine = [r["mine"] for r in res]
    total = np.sum(mine, axis=0, dtype=dtype) if dtype != "float32" else np.sum(np.array(mine, dtype=np.float64), axis=0)
    for rank, r in enumerate(res):
        assert r["blocks"] == [float(rank)] and r["block_index"] == [rank]
        assert r["channel"] == ({CHANNEL[transport]} if n_ranks > 1 else set())
        rtol = 1e-5 if dtype == "float32" else 1e-12
        np.testing.assert_allclose(r["sum"], total, rtol=rtol)
        assert r["in_place"] and r["sum"].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(r["sum"], res[0]["sum"])           # the same bits on every rank
        np.testing.assert_array_equal(r["max"], np.max(mine, axis=0))
        np.testing.assert_array_equal(r["min"], np.min(mine, axis=0))
        assert r["scalar"] == n_ranks * (n_ranks + 1) // 2
        np.testing.assert_array_equal(r["bcast0"], mine[0])
        assert r["bcast_last"] == {"from": n_ranks - 1}
        assert r["allgather"] == [("r", i) for i in range(n_ranks)]
        if n_ranks > 1:
            left = (rank - 1) % n_ranks
            assert r["p2p"] == (f"a{left}", f"b{left}")
    np.testing.assert_allclose(res[-1]["reduce"], total, rtol=1e-5 if dtype == "float32" else 1e-12)
    assert all(r["reduce"] is None for r in res[:-1])
    assert res[0]["gather"] == [10 * i for i in range(n_ranks)]
    assert all(r["gather"] is None for r in res[1:])


def _sizes(comm, blocks, sizes, small_bytes):
    out = []
    for nbytes in sizes:
        n = nbytes // 8
        x = np.arange(n, dtype=np.float64) * (comm.rank + 1)
        comm.allreduce(x)
        out.append((nbytes, float(x[:5].sum()) if n else 0.0, float(x[-1]) if n else 0.0, x.shape))
    return out


@pytest.mark.parametrize("n_ranks", [2, 3, 4])
def test_message_sizes_from_empty_to_100MB(eight, n_ranks, transport):
    """Recursive doubling and the ring (small-bytes lowered so that the ring runs from 4 KB on)."""
    x, _ = on_ranks(eight, n_ranks)
    sizes = [0, 8, 1024, 4096 + 8, 1 << 20] + ([100 << 20] if n_ranks == 3 else [])
    with dask.config.set({"daskpml.comm.small-bytes": 4096}):
        res = spmd(_sizes, x, args=(sizes, 4096))
    factor = n_ranks * (n_ranks + 1) / 2
    for rank_out in res:
        for nbytes, head, last, shape in rank_out:
            n = nbytes // 8
            assert shape == (n,)
            if n:
                assert head == pytest.approx(factor * sum(range(min(5, n))))
                assert last == pytest.approx(factor * (n - 1))


def _several(comm, blocks):
    local = np.array([sum(float(b[0]) for b in blocks)])
    return comm.blocks, comm.allreduce(local)[0]


def test_a_worker_with_several_blocks_gets_them_all_in_order(eight, transport):
    x, _ = on_ranks(eight, 3, blocks_per_rank=2)
    res = spmd(_several, x)
    assert [r[0] for r in res] == [[0, 1], [2, 3], [4, 5]]
    assert all(r[1] == 15.0 for r in res)


def _sum_of(comm, blocks, value):
    acc = []
    for i in range(200):
        v = np.array([float(value + i)])
        comm.allreduce(v)
        acc.append(v[0])
    return acc


def test_two_groups_at_once_do_not_cross_messages(eight, transport):
    x1, _ = on_ranks(eight, 4)
    x2, _ = on_ranks(eight, 3)
    out = {}

    def run(name, x, value):
        out[name] = spmd(_sum_of, x, args=(value,))

    threads = [threading.Thread(target=run, args=("a", x1, 1000.0)),
               threading.Thread(target=run, args=("b", x2, -5.0))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert [v for v in out["a"][0]] == [4 * (1000.0 + i) for i in range(200)]
    assert [v for v in out["b"][2]] == [3 * (-5.0 + i) for i in range(200)]


def _fails_on_rank_1(comm, blocks):
    if comm.rank == 1:
        raise ValueError("rank 1 found bad data")
    for _ in range(1000):
        comm.allreduce(np.ones(4))


def test_a_rank_error_reaches_the_caller_and_ends_the_others(eight, transport):
    x, _ = on_ranks(eight, 3)
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="rank 1 found bad data"):
        spmd(_fails_on_rank_1, x)
    assert time.perf_counter() - t0 < 20


def _silent_rank(comm, blocks):
    if comm.rank == 1:
        time.sleep(8)
        return None
    while True:
        comm.allreduce(np.ones(2))


def test_a_silent_peer_ends_the_group_within_the_timeout(eight, transport):
    x, _ = on_ranks(eight, 2)
    t0 = time.perf_counter()
    with dask.config.set({"daskpml.comm.timeout": "2s"}):
        with pytest.raises(CommError, match="sent nothing for daskpml.comm.timeout=2"):
            spmd(_silent_rank, x)
    assert time.perf_counter() - t0 < 15


def _kill_rank_1(comm, blocks):
    for i in range(100000):
        if comm.rank == 1 and i == 50:
            os.kill(os.getpid(), signal.SIGKILL)
        comm.allreduce(np.ones(16))


def test_a_killed_rank_ends_every_rank_with_comm_error(nanny_client, transport):
    x, workers = on_ranks(nanny_client, 2)
    t0 = time.perf_counter()
    with dask.config.set({"daskpml.comm.timeout": "30s"}):
        with pytest.raises(CommError) as info:
            spmd(_kill_rank_1, x)
    assert time.perf_counter() - t0 < 30                 # noticed at once (the connection closes), no hang
    assert workers[1] in str(info.value)


def test_in_memory_input_runs_one_rank_here():
    got = []
    res = spmd(lambda comm, parts: (comm.size, comm.rank, comm.allreduce(np.array([2.0]))[0],
                                    comm.report("hi"), parts[0].sum()),
               np.arange(4.0), on_message=lambda m, r, g: got.append((m, r)))
    assert res == [(1, 0, 2.0, None, 6.0)] and got == [("hi", 0)]


def _reporter(comm, blocks):
    for i in range(20):
        comm.report((comm.rank, i))
    return comm.rank


def test_reports_reach_the_caller_in_order(eight):
    x, _ = on_ranks(eight, 3)
    got = {0: [], 1: [], 2: []}
    res = spmd(_reporter, x, on_message=lambda m, rank, group: got[rank].append(m))
    assert res == [0, 1, 2]
    for r in range(3):
        assert got[r] == [(r, i) for i in range(20)]


def test_mismatched_collections_are_refused(eight):
    a = da.ones(10, chunks=5).persist()
    b = da.ones(10, chunks=2).persist()
    with pytest.raises(ValueError, match="same number of blocks"):
        spmd(lambda comm, x, y: None, a, b)


def _counted(comm, blocks):
    if comm.rank == 0:
        comm.send(np.ones(1 << 17), 1)
        comm.recv(1)
    else:
        comm.recv(0)
        comm.send("ok", 0)
    comm.barrier()
    return comm.bytes_sent, sum(ch.bytes_received for ch in comm.channels.values())


def test_each_channel_counts_the_bytes_it_sends_and_receives(eight, transport):
    x, _ = on_ranks(eight, 2)
    (sent0, got0), (sent1, got1) = spmd(_counted, x)
    assert sent0 >= 1 << 20 and got1 >= 1 << 20          # the 1 MB array, each way it is counted
    assert 0 < sent1 < 1 << 16 and 0 < got0 < 1 << 16


def test_a_result_lost_with_its_worker_before_it_is_fetched_is_a_comm_error(nanny_client, monkeypatch):
    """The ranks finished, then a rank's worker died holding its result: the scheduler would run
    the task again only there, so a gather waited forever (a fault test hung in CI). Now the
    group ends with CommError naming the worker."""
    from daskpml.comm import _spmd

    x, workers = on_ranks(nanny_client, 2)
    original = _spmd.SpmdGroup._results

    def kill_first(group):
        pid = nanny_client.run(os.getpid, workers=[workers[1]])[workers[1]]
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while workers[1] in group._alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        return original(group)

    monkeypatch.setattr(_spmd.SpmdGroup, "_results", kill_first)
    t0 = time.perf_counter()
    with pytest.raises(CommError, match=f"lost rank 1 on {workers[1]} before its result"):
        spmd(lambda comm, b: comm.rank, x)
    assert time.perf_counter() - t0 < 40
