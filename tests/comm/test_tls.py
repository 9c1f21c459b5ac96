"""A tls:// cluster: the ranks talk over Distributed's comm with the cluster's certificates (the
"auto" transport), never over plain sockets; the solvers on the ranks run through it."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from distributed import Client, LocalCluster

from daskpml.comm import spmd

pytest.importorskip("cryptography", reason="Security.temporary() needs the cryptography package")
from distributed.security import Security  # noqa: E402

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def tls_client():
    security = Security.temporary()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, protocol="tls://",
                      security=security, dashboard_address=None, silence_logs=50) as cluster, \
            Client(cluster, security=security) as client:
        yield client


def _channels_and_sums(comm, blocks):
    small = comm.allreduce(np.arange(5.0) * (comm.rank + 1))
    large = comm.allreduce(np.ones(1 << 18) * comm.rank)
    return ({type(ch).__name__ for ch in comm.channels.values()},
            {ch.comm.peer_address.split("://")[0] for ch in comm.channels.values()},
            small.tolist(), float(large.sum()))


def test_auto_uses_the_clusters_tls_comm(tls_client):
    assert all(a.startswith("tls://") for a in tls_client.scheduler_info()["workers"])
    X = tls_client.persist(da.ones((400, 2), chunks=100))
    res = spmd(_channels_and_sums, X)
    assert len(res) == 2
    for kinds, schemes, small, large in res:
        assert kinds == {"StreamChannel"} and schemes == {"tls"}
        assert small == [0.0, 3.0, 6.0, 9.0, 12.0] and large == float(1 << 18)


def test_sockets_can_still_be_forced_and_say_so(tls_client):
    X = tls_client.persist(da.ones((400, 2), chunks=100))
    with dask.config.set({"daskpml.comm.transport": "sockets"}):
        res = spmd(lambda comm, b: {type(ch).__name__ for ch in comm.channels.values()}, X)
    assert res == [{"Channel"}, {"Channel"}]


def test_lbfgs_and_async_sgd_run_on_the_ranks_of_a_tls_cluster(tls_client):
    from daskpml.optim import fit_linear

    rng = np.random.default_rng(0)
    X = rng.standard_normal((20_000, 5))
    y = (X @ np.arange(1.0, 6.0) + rng.standard_normal(20_000) > 0).astype(float)
    Xd, yd = da.from_array(X, chunks=5000), da.from_array(y, chunks=5000)
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
    assert all(a.startswith("tls://") for a in h.address.values)


def test_transport_for_and_a_bad_setting():
    from daskpml.comm import transport_for

    assert transport_for(["tcp://127.0.0.1:1", "inproc://x/1/2"]) == "sockets"
    assert transport_for(["ucx://10.0.0.1:1"]) == "distributed"
    with dask.config.set({"daskpml.comm.transport": "distributed"}):
        assert transport_for(["tcp://127.0.0.1:1"]) == "distributed"
    with dask.config.set({"daskpml.comm.transport": "mpi"}):
        with pytest.raises(ValueError, match="must be 'auto', 'sockets' or 'distributed', got 'mpi'"):
            transport_for(["tcp://127.0.0.1:1"])
