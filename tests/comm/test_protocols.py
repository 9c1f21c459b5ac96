"""Clusters on other protocols than tcp://: the ranks talk over Distributed's comm (the "auto"
transport), never over plain sockets. On tls:// that keeps the cluster's certificates and
encryption; on ucx:// (distributed-ucxx; here on its TCP and shared-memory transports, as on a
machine without a GPU or InfiniBand) it keeps the fabric. The solvers on the ranks run through both."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from distributed import Client, LocalCluster, futures_of, wait

from daskpml.comm import spmd

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(600)]


@pytest.fixture(scope="module", params=["tls", "ucx"])
def proto_client(request):
    """A 2-worker cluster of processes on ``request.param``, and its client."""
    if request.param == "tls":
        pytest.importorskip("cryptography", reason="Security.temporary() needs the cryptography package")
        from distributed.security import Security

        security = Security.temporary()
    else:
        pytest.importorskip("distributed_ucxx", reason="ucx:// needs the distributed-ucxx package")
        security = None
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, protocol=f"{request.param}://",
                      security=security, dashboard_address=None, silence_logs=50) as cluster, \
            Client(cluster, security=security) as client:
        yield client


def _scheme(client) -> str:
    return client.scheduler.address.split("://")[0]


def _channels_and_sums(comm, blocks):
    small = comm.allreduce(np.arange(5.0) * (comm.rank + 1))
    large = comm.allreduce(np.ones(1 << 18) * comm.rank)
    return ({type(ch).__name__ for ch in comm.channels.values()},
            {ch.comm.peer_address.split("://")[0] for ch in comm.channels.values()},
            small.tolist(), float(large.sum()))


def test_auto_uses_the_clusters_own_comm(proto_client):
    scheme = _scheme(proto_client)
    assert all(a.startswith(f"{scheme}://") for a in proto_client.scheduler_info()["workers"])
    X = proto_client.persist(da.ones((400, 2), chunks=100))
    res = spmd(_channels_and_sums, X)
    assert len(res) == 2
    for kinds, schemes, small, large in res:
        assert kinds == {"StreamChannel"} and schemes == {scheme}
        assert small == [0.0, 3.0, 6.0, 9.0, 12.0] and large == float(1 << 18)


def _sizes(comm, blocks):
    """Sums of 0 B to 8 MB of float64 and of int64 over the ranks."""
    out = []
    for n in (0, 1, 129, 1 << 15, 1 << 20):
        for dtype in ("float64", "int64"):
            x = (np.arange(n) % 7 + comm.rank).astype(dtype)
            out.append(comm.allreduce(x).tolist() == ((np.arange(n) % 7) * comm.size
                                                     + sum(range(comm.size))).astype(dtype).tolist())
    got = comm.allgather(np.full(3, comm.rank))
    return all(out) and [g.tolist() for g in got] == [[r] * 3 for r in range(comm.size)]


def test_message_sizes_and_dtypes_over_the_clusters_comm(proto_client):
    X = proto_client.persist(da.ones((400, 2), chunks=100))
    assert spmd(_sizes, X) == [True, True]


def test_sockets_can_still_be_forced_and_say_so(proto_client):
    X = proto_client.persist(da.ones((400, 2), chunks=100))
    with dask.config.set({"daskpml.comm.transport": "sockets"}):
        res = spmd(lambda comm, b: {type(ch).__name__ for ch in comm.channels.values()}, X)
    assert res == [{"Channel"}, {"Channel"}]


def test_lbfgs_and_async_sgd_run_on_the_ranks_of_the_cluster(proto_client):
    from daskpml.optim import fit_linear

    rng = np.random.default_rng(0)
    X = rng.standard_normal((20_000, 5))
    y = (X @ np.arange(1.0, 6.0) + rng.standard_normal(20_000) > 0).astype(float)
    # the row blocks alternate between the two workers (left to the scheduler, all four once
    # landed on one worker, and the fit ran one rank)
    workers = sorted(proto_client.scheduler_info()["workers"])
    parts = [(proto_client.scatter(X[i:i + 5000], workers=[workers[(i // 5000) % 2]]),
              proto_client.scatter(y[i:i + 5000], workers=[workers[(i // 5000) % 2]])) for i in range(0, 20_000, 5000)]
    Xd = da.concatenate([da.from_delayed(px, (5000, 5), float) for px, _ in parts])
    yd = da.concatenate([da.from_delayed(py, (5000,), float) for _, py in parts])
    _, _, ranks = fit_linear(Xd, yd, family="logistic", lam=1e-3, solver="lbfgs", tol=1e-8, progress=False)
    with dask.config.set({"daskpml.optim.on-ranks": False}):
        _, _, graphs = fit_linear(Xd, yd, family="logistic", lam=1e-3, solver="lbfgs", tol=1e-8, progress=False)
    assert ranks.history.attrs["n_ranks"] == 2
    assert ranks.n_iter == graphs.n_iter
    np.testing.assert_allclose(ranks.theta, graphs.theta, rtol=1e-7)
    _, _, asynchronous = fit_linear(X, y, family="logistic", lam=1e-3, solver="async_sgd", max_iter=2,
                                    eta0=0.5, random_state=0, progress=False)
    h = asynchronous.history
    assert h.attrs["on_ranks"] == 1 and int(h.updates.sum()) == asynchronous.n_iter > 0
    assert (h.updates.values > 0).all() and np.isfinite(h.objective.values[-1])
    assert all(a.startswith(f"{_scheme(proto_client)}://") for a in h.address.values)


def test_transport_for_and_a_bad_setting():
    from daskpml.comm import transport_for

    assert transport_for(["tcp://127.0.0.1:1", "inproc://x/1/2"]) == "sockets"
    assert transport_for(["ucx://10.0.0.1:1"]) == "distributed"
    with dask.config.set({"daskpml.comm.transport": "distributed"}):
        assert transport_for(["tcp://127.0.0.1:1"]) == "distributed"
    with dask.config.set({"daskpml.comm.transport": "mpi"}):
        with pytest.raises(ValueError, match="must be 'auto', 'sockets' or 'distributed', got 'mpi'"):
            transport_for(["tcp://127.0.0.1:1"])


def _kill_rank_1(comm, blocks):
    import os
    import signal

    for i in range(100000):
        if comm.rank == 1 and i == 20:
            os.kill(os.getpid(), signal.SIGKILL)
        comm.allreduce(np.ones(16))


def test_a_killed_rank_ends_the_group_with_comm_error(proto_client):
    """(Last in the module: the nanny brings the worker back for nothing after it.)"""
    import time

    from daskpml.comm import CommError

    X = proto_client.persist(da.ones((400, 2), chunks=100))
    wait(futures_of(X))
    workers = sorted({w for ws in proto_client.who_has(futures_of(X)).values() for w in ws})
    assert len(workers) == 2
    t0 = time.perf_counter()
    with dask.config.set({"daskpml.comm.timeout": "30s"}):
        with pytest.raises(CommError, match="lost rank 1 on"):
            spmd(_kill_rank_1, X)
    assert time.perf_counter() - t0 < 30


@pytest.mark.parametrize("address,expected", [
    ("ucx://127.0.0.1:8786", "distributed-ucxx"), ("foo://127.0.0.1:8786", "unknown scheme 'foo'")])
def test_a_scheme_without_its_package_is_named(monkeypatch, address, expected):
    import daskpml.runtime as runtime

    monkeypatch.setattr(runtime, "comm_schemes", lambda: ["inproc", "tcp", "tls", "ws", "wss"])
    with pytest.raises(ValueError, match=expected):
        runtime.check_address(address)


def test_every_scheme_distributed_knows_is_accepted():
    from daskpml.runtime import check_address, comm_schemes

    assert {"tcp", "tls", "inproc"} <= set(comm_schemes())
    for scheme in comm_schemes():
        assert check_address(f"{scheme}://127.0.0.1:8786") == f"{scheme}://127.0.0.1:8786"
