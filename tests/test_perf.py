"""daskpml.perf: the cost models against hand-worked values, the collectives against
NumPy sums, the calibration and the task-stream split."""

import math

import numpy as np
import pytest
from _helpers import host, on

from daskpml import perf
from daskpml.backend import backend_name

A, B = 2e-3, 1e-9


# ----------------------------------------------------------------------------- the formulas
@pytest.mark.parametrize("P", [2, 4, 8, 16])
def test_allreduce_power_of_two_is_rabenseifner_plus_one_split_level(P):
    n = 1e6
    expected = (2 * math.log2(P) + 1) * A + 2 * B * (P - 1) / P * n
    assert perf.allreduce_time(n, P, latency=A, inv_bandwidth=B) == pytest.approx(expected)


def test_allreduce_folds_extra_workers():
    n = 1e6                                 # P = 3: fold (a + b n), 2 + 1 levels among 2, hand back (a + b n)
    expected = 2 * (A + B * n) + 3 * A + 2 * B * n / 2
    assert perf.allreduce_time(n, 3, latency=A, inv_bandwidth=B) == pytest.approx(expected)


def test_parameter_server_and_gossip():
    n, P = 1e6, 5
    assert perf.parameter_server_time(n, P, latency=A, inv_bandwidth=B) == pytest.approx(2 * A + 2 * B * (P - 1) * n)
    assert perf.gossip_time(n, P, latency=A, inv_bandwidth=B) == pytest.approx(A + B * n)
    assert perf.gossip_time(n, P, latency=A, inv_bandwidth=B, peers=2) == pytest.approx(A + 2 * B * n)
    for f in (perf.allreduce_time, perf.parameter_server_time, perf.gossip_time):
        assert f(n, 1, latency=A, inv_bandwidth=B) == 0.0


def test_shared_bandwidth_bounds_a_level():
    # no per-link limit, the machine moves 1 byte/s: each allreduce step of 4 workers x m bytes takes 4 m s
    n = 8.0
    t = perf.allreduce_time(n, 4, latency=0.0, inv_bandwidth=0.0, shared_inv_bandwidth=1.0)
    assert t == pytest.approx(2 * 4 * (n / 2 + n / 4))
    # and the per-task cost counts the tasks of each level: split 8, scatter 8 then 4, gather 4 + 4
    t = perf.allreduce_time(n, 4, latency=0.0, inv_bandwidth=0.0, per_task=1.0)
    assert t == pytest.approx(8 + 8 + 4 + 4 + 4)


def test_models_refuse_bad_input():
    with pytest.raises(ValueError, match="nbytes"):
        perf.allreduce_time(-1, 2, latency=A, inv_bandwidth=B)
    with pytest.raises(ValueError, match="n_workers"):
        perf.gossip_time(10, 0, latency=A, inv_bandwidth=B)
    with pytest.raises(ValueError, match="pattern"):
        perf.CommModel(latency=A, inv_bandwidth=B).comm_time(10, 2, "ring")


def test_speedup_prediction():
    free = perf.CommModel(latency=0.0, inv_bandwidth=0.0, compute_per_byte=1e-9)
    assert free.speedup(model_bytes=800, data_bytes=1e9, n_workers=8) == pytest.approx(8.0)
    shared = perf.CommModel(latency=0.0, inv_bandwidth=0.0, compute_per_byte=1e-9, cores=2)
    assert shared.speedup(model_bytes=800, data_bytes=1e9, n_workers=8) == pytest.approx(2.0)
    real = perf.CommModel(latency=5e-3, inv_bandwidth=1e-9, overhead=1e-2, compute_per_byte=1e-10)
    s = [real.speedup(model_bytes=8e6, data_bytes=1e8, n_workers=P) for P in (1, 2, 4, 8)]
    assert s[0] == 1.0 and all(0 < v < P for v, P in zip(s[1:], (2, 4, 8)))
    # one iteration on 4 workers, by hand: overhead + compute / 4 + 2 a + 2 b 3 n
    assert real.iteration_time(model_bytes=8e6, data_bytes=1e8, n_workers=4) == pytest.approx(
        1e-2 + 1e-10 * 1e8 / 4 + 2 * 5e-3 + 2 * 1e-9 * 3 * 8e6)
    # a measured compute time in place of the data size
    assert real.iteration_time(model_bytes=8e6, compute_s=0.5, n_workers=4) == pytest.approx(
        1e-2 + 0.5 / 4 + 2 * 5e-3 + 2 * 1e-9 * 3 * 8e6)
    with pytest.raises(ValueError, match="exactly one"):
        real.speedup(model_bytes=8, n_workers=2)
    with pytest.raises(ValueError, match="exactly one"):
        real.speedup(model_bytes=8, n_workers=2, data_bytes=1.0, compute_s=1.0)


@pytest.mark.parametrize("old,new", [("allreduce_cost", "daskpml.perf.allreduce_time"),
                                     ("cascade_svm", "daskpml.svm.cascade_svm")])
def test_a_moved_name_says_where_it_went(old, new):
    import daskpml.optim

    with pytest.raises(AttributeError, match=f"daskpml.optim.{old} is now {new}"):
        getattr(daskpml.optim, old)
    with pytest.raises(ImportError):
        exec(f"from daskpml.optim import {old}")


# ----------------------------------------------------------------------------- collectives on futures
def _parts(client, values, workers):
    from distributed import wait

    futures = [client.scatter(v, workers=[w]) for v, w in zip(values, workers)]
    wait(futures)
    return futures


@pytest.mark.parametrize("P", [1, 2, 3, 4, 5])
def test_allreduce_sums_on_every_worker(client, P, backend):
    names = sorted(client.scheduler_info()["workers"])
    where = [names[i % len(names)] for i in range(P)]
    rng = np.random.default_rng(P)
    values = [rng.standard_normal(37) for _ in range(P)]          # odd length: halves of unequal size
    out = perf.allreduce(client, _parts(client, [on(backend, v) for v in values], where), workers=where)
    results = client.gather(out)
    for r in results:
        assert backend_name(r) == backend
        np.testing.assert_allclose(host(r), np.sum(values, axis=0), rtol=1e-12)
    who = client.who_has(out)
    assert all(where[i] in who[f.key] for i, f in enumerate(out))


def test_parameter_server_and_gossip_rounds(client):
    names = sorted(client.scheduler_info()["workers"])
    where = [names[0], names[1], names[0]]
    values = [np.full(5, float(i + 1)) for i in range(3)]
    ps = client.gather(perf.parameter_server_round(client, _parts(client, values, where), workers=where))
    for r in ps:
        np.testing.assert_array_equal(r, np.full(5, 6.0))
    gossip = client.gather(perf.gossip_round(client, _parts(client, values, where), workers=where))
    np.testing.assert_array_equal(np.array(gossip)[:, 0], [1.5, 2.5, 2.0])


def test_collectives_refuse_bad_input(client):
    with pytest.raises(ValueError, match="at least one part"):
        perf.allreduce(client, [])
    values = _parts(client, [np.ones(3)], sorted(client.scheduler_info()["workers"])[:1])
    with pytest.raises(ValueError, match="one per part"):
        perf.allreduce(client, values, workers=["a", "b"])
    with pytest.raises(ValueError, match="pattern"):
        perf.measure(client, "ring", 1000)


def test_calibrate_and_measure(client, backend):
    model = perf.calibrate(client, sizes=(1_000, 100_000, 1_000_000), repeats=1, rounds=(1, 3), backend=backend)
    assert 0 < model.latency + model.per_task < 1.0
    assert model.inv_bandwidth >= 0 and model.shared_inv_bandwidth >= 0 and model.reduce_per_byte > 0
    assert model.overhead > 0 and model.compute_per_byte > 0 and model.workers == 2
    assert len(model.fit["single_s"]) == 3 and np.isfinite(model.fit["max_rel_error"])
    measured = perf.measure(client, "gossip", 1_000, repeats=1, backend=backend)
    assert 0 < measured < 1.0
    assert model.to_dict()["latency"] == model.latency


def test_calibrate_refuses(client):
    with pytest.raises(ValueError, match="at least 2 workers"):
        perf.calibrate(client, n_workers=1)
    with pytest.raises(ValueError, match="two different sizes"):
        perf.calibrate(client, sizes=(1000, 1000))
    with pytest.raises(ValueError, match="positive"):
        perf.calibrate(client, sizes=(0, 1000))
    with pytest.raises(ValueError, match="backend must be 'numpy' or 'cupy'"):
        perf.calibrate(client, backend="torch")
    with pytest.raises(ValueError, match="backend must be 'numpy' or 'cupy'"):
        perf.measure(client, "gossip", 1000, backend="gpu")


# ----------------------------------------------------------------------------- task stream
def test_time_split():
    records = [
        {"startstops": ({"action": "transfer", "start": 0.0, "stop": 0.5},
                        {"action": "compute", "start": 0.5, "stop": 2.0})},
        {"startstops": (("compute", 1.0, 2.0),)},
        {"startstops": ({"action": "disk-read", "start": 0.0, "stop": 9.0},)},
    ]
    split = perf.time_split(records, wall=4.0, n_threads=2)
    assert split["compute_s"] == pytest.approx(2.5) and split["transfer_s"] == pytest.approx(0.5)
    assert split["waiting_s"] == pytest.approx(5.0)
    assert split["compute"] + split["transfer"] + split["waiting"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="wall"):
        perf.time_split(records, wall=0, n_threads=1)


def test_time_split_from_a_real_task_stream(client):
    import dask.array as da
    from distributed import get_task_stream

    with get_task_stream(client=client) as ts:
        x = da.ones((2000, 2000), chunks=500)
        (x @ x.T).sum().compute()
    split = perf.time_split(ts.data, wall=10.0, n_threads=2)
    assert split["compute_s"] > 0 and 0 <= split["waiting"] <= 1


# ----------------------------------------------------------------------------- critical batch size
def test_critical_batch_size_matches_the_dense_formula(backend):
    import dask.array as da
    import scipy.sparse as sp

    from daskpml.optim import critical_batch_size
    from daskpml.sparse import from_array

    rng = np.random.default_rng(0)
    X = rng.standard_normal((3000, 40)) / np.arange(1, 41) ** 0.5
    expected = (X * X).sum(1).mean() / np.linalg.eigvalsh(X.T @ X / 3000)[-1]
    assert critical_batch_size(on(backend, X)) == pytest.approx(expected, rel=1e-10)
    assert critical_batch_size(on(backend, da.from_array(X, chunks=700))) == pytest.approx(expected, rel=1e-10)
    assert critical_batch_size(on(backend, sp.csr_matrix(X))) == pytest.approx(expected, rel=1e-10)
    # CSRMatrix: lambda_max by power iteration
    assert critical_batch_size(on(backend, from_array(sp.csr_matrix(X), chunks=1000)), tol=1e-12) == pytest.approx(
        expected, rel=1e-6)
    # isotropic rows: E||x||^2 / lambda_max is about d
    Z = rng.standard_normal((20000, 10))
    assert 8 < critical_batch_size(on(backend, Z)) < 10.5


def test_critical_batch_size_refuses_bad_input():
    from daskpml.optim import critical_batch_size

    with pytest.raises(ValueError, match="zeros"):
        critical_batch_size(np.zeros((10, 3)))
    X = np.ones((10, 3))
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        critical_batch_size(X)
