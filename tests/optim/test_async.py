"""Asynchronous solvers on futures: they reach the synchronous optimum, keep their
staleness bound, stop on time / interrupt, and survive a killed worker."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from distributed import Client, LocalCluster

import daskpml.linear_model as dl
from _helpers import worker_killer
from daskpml.optim import Layout, Objective, async_sgd, fit_linear, get_family, get_penalty

LAM = 1e-2


def _problem(n=8000, d=8, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = (X @ rng.standard_normal(d) + 0.5 * rng.logistic(size=n) > 0).astype(float)
    return X, y


@pytest.fixture(scope="module")
def cluster4():
    with LocalCluster(n_workers=4, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster, set_as_default=True) as c:
        yield c


@pytest.fixture(scope="module")
def data():
    X, y = _problem()
    _, _, res = fit_linear(X, y, family="logistic", lam=LAM, solver="lbfgs", tol=1e-10)
    return X, y, float(res.history.objective.values[-1])


def _gap(res, fstar):
    f = float(res.history.objective.values[-1])
    return (f - fstar) / fstar


# variant -> (options, stated tolerance on the relative objective gap to the sync optimum)
VARIANTS = {
    "async_sgd": (dict(solver="async_sgd", staleness="none", eta0=0.5, batch_size=64, max_iter=4), 5e-3),
    "async_sgd_divide": (dict(solver="async_sgd", staleness="divide", eta0=1.0, batch_size=64, max_iter=6), 5e-3),
    "async_sgd_downpour": (dict(solver="async_sgd", push_every=4, pull_every=8, eta0=0.5, batch_size=32,
                                max_iter=4), 5e-3),
    "easgd_async": (dict(solver="easgd", local_steps=8, eta0=1.0, max_iter=4), 5e-3),
    "easgd_sync": (dict(solver="easgd", local_steps=8, synchronous=True, eta0=1.0, max_iter=4), 5e-3),
    "gossip_sgd": (dict(solver="gossip_sgd", local_steps=8, eta0=1.0, max_iter=4), 5e-3),
    "hogwild": (dict(solver="hogwild", learning_rate="invscaling", eta0=0.5, max_iter=4), 5e-3),
    "hogwild_optimal": (dict(solver="hogwild", max_iter=4), 5e-3),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_reaches_the_synchronous_optimum(cluster4, data, variant):
    X, y, fstar = data
    options, tolerance = VARIANTS[variant]
    _, _, res = fit_linear(X, y, family="logistic", lam=LAM, random_state=0, **options)
    gap = _gap(res, fstar)
    assert 0 <= gap < tolerance
    h = res.history
    assert h.sizes["worker"] == 4 and int(h.updates.sum()) == res.n_iter
    assert h.attrs["lost_tasks"] == 0


@pytest.mark.timeout(120)
def test_bounded_staleness_is_never_violated(cluster4, data):
    X, y, _ = data
    slow = {0: 4.0}
    common = dict(family="logistic", lam=LAM, solver="async_sgd", eta0=0.5, batch_size=64, max_iter=1,
                  delay=slow, random_state=0)
    _, _, free = fit_linear(X, y, **common)
    assert int(free.history.staleness.max()) > 2          # without a bound the straggler's pushes go stale
    _, _, bounded = fit_linear(X, y, max_staleness=2, **common)
    assert int(bounded.history.staleness.max()) <= 2
    assert bounded.history.attrs["max_staleness"] == 2
    _, _, serial = fit_linear(X, y, max_staleness=0, **dict(common, max_iter=0.2))
    assert int(serial.history.staleness.max()) == 0


@pytest.mark.timeout(120)
def test_a_slow_worker_makes_fewer_updates_and_history_is_complete(cluster4, data):
    X, y, _ = data
    # tasks this small are mostly scheduling overhead, so the straggler's compute is slowed 300x
    _, _, res = fit_linear(X, y, family="logistic", lam=LAM, solver="async_sgd", staleness="divide", eta0=1.0,
                           batch_size=64, max_iter=1, delay={0: 300.0}, eval_every=10, random_state=0)
    h = res.history
    updates = h.updates.values
    assert updates[0] < 0.5 * updates[1:].min()             # the straggler pushes less often
    # every update is in the history, with its worker (the straggler may not push at all on a
    # loaded machine)
    np.testing.assert_array_equal(np.bincount(h.update_worker.values, minlength=4), updates)
    assert updates[1:].min() > 0
    assert np.all(np.diff(h.version.values) == 1) and np.all(np.diff(h.time.values) >= 0)
    assert np.all(np.diff(h.rows.values) == 64) and h.rows.values[-1] >= len(X)
    sampled = np.isfinite(h.objective.values)
    assert sampled[9::10].all() and sampled[-1] and sampled.sum() <= len(h.objective) // 10 + 1
    assert {"staleness", "eta", "batch_loss", "lost", "busy_time", "address"} <= set(h.variables)
    steps = h.eta.values
    stale = np.maximum(h.staleness.values, 1)
    assert np.all(steps * stale <= steps.max() * stale.max())  # divided by the staleness
    busy = h.busy_time.values                    # counted from each pushed result: 0 for a straggler that never pushed
    assert np.all(busy[updates > 0] > 0) and np.all(busy[updates == 0] == 0)
    assert all(a.startswith(("tcp://", "inproc://")) for a in h.address.values)


@pytest.mark.timeout(60)
def test_max_time_returns_the_current_model(cluster4, data):
    X, y, _ = data
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        coef, _, res = fit_linear(X, y, family="logistic", lam=LAM, solver="easgd", eta0=1.0, max_iter=1000,
                                  max_time=1.0, random_state=0)
    assert time.perf_counter() - t0 < 8
    assert "max_time" in res.message and not res.converged
    assert res.history.rows.values[-1] < 1000 * len(X) and np.isfinite(res.history.objective.values[-1])
    assert np.all(np.isfinite(coef))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("solver", ["async_sgd", "gossip_sgd"])
def test_keyboard_interrupt_returns_the_current_model(cluster4, data, solver):
    X, y, _ = data

    def interrupt(record):
        if record["iteration"] == 25:
            raise KeyboardInterrupt

    coef, _, res = fit_linear(X, y, family="logistic", lam=LAM, solver=solver, eta0=0.5, max_iter=100,
                              callback=interrupt, random_state=0)
    assert "KeyboardInterrupt" in res.message and res.n_iter == 25
    assert np.isfinite(res.history.objective.values[-1]) and np.all(np.isfinite(coef))


@pytest.mark.timeout(60)
def test_tol_stops_on_the_sampled_objective(cluster4, data):
    X, y, _ = data
    _, _, res = fit_linear(X, y, family="logistic", lam=LAM, solver="async_sgd", eta0=0.5, max_iter=50,
                           tol=1e-2, n_iter_no_change=2, random_state=0)
    assert res.converged and "did not improve" in res.message
    assert res.history.rows.values[-1] < 50 * len(X)
    assert res.history.attrs["monitor"] == "online"


@pytest.mark.timeout(120)
def test_hogwild_sparse_and_reproducible_with_one_thread(cluster4):
    rng = np.random.default_rng(1)
    X = sp.random(6000, 50, density=0.1, format="csr", random_state=1)
    y = (X @ rng.standard_normal(50) > 0).astype(float)
    _, _, ref = fit_linear(X, y, family="logistic", lam=1e-3, solver="lbfgs", tol=1e-10)
    fstar = float(ref.history.objective.values[-1])
    runs = [fit_linear(X, y, family="logistic", lam=1e-3, solver="hogwild", n_threads=1, max_iter=6,
                       random_state=3)[2] for _ in range(2)]
    np.testing.assert_array_equal(runs[0].theta, runs[1].theta)
    assert (runs[0].history.objective.values[-1] - fstar) / fstar < 1e-2
    _, _, two = fit_linear(X, y, family="logistic", lam=1e-3, solver="hogwild", n_threads=2, max_iter=6,
                           random_state=3)
    assert (two.history.objective.values[-1] - fstar) / fstar < 1e-2
    h = two.history
    assert np.all(h.updates_per_second.values > 0) and int(h.sgd_updates.sum()) == 6 * 6000


def test_estimators_take_the_async_solvers(cluster4, data):
    X, y, fstar = data
    reference = dl.LogisticRegression(C=1 / (LAM * len(X)), tol=1e-10).fit(X, y)
    model = dl.LogisticRegression(C=1 / (LAM * len(X)), solver="async_sgd", max_iter=4, tol=None, random_state=0,
                                  solver_kwargs={"eta0": 1.0, "batch_size": 64, "staleness": "divide"}).fit(X, y)
    assert model.solver_ == "async_sgd" and "staleness" in model.history_
    assert np.mean(model.predict(X) == reference.predict(X)) > 0.98
    target = X @ np.arange(8.0) + np.random.default_rng(2).standard_normal(len(X))
    exact = dl.Ridge(alpha=1.0).fit(X, target)
    ridge = dl.Ridge(alpha=1.0, solver="easgd", max_iter=6, tol=None, random_state=0,
                     solver_kwargs={"eta0": 0.2, "power_t": 0.5}).fit(X, target)
    np.testing.assert_allclose(ridge.coef_, exact.coef_, atol=0.03)


def test_bad_options_fail_clearly(cluster4, data):
    X, y, _ = data
    with pytest.raises(ValueError, match="staleness must be"):
        fit_linear(X, y, family="logistic", solver="async_sgd", staleness="half")
    with pytest.raises(ValueError, match="multiple of push_every"):
        fit_linear(X, y, family="logistic", solver="async_sgd", push_every=3, pull_every=4)
    with pytest.raises(ValueError, match="max_staleness"):
        fit_linear(X, y, family="logistic", solver="async_sgd", max_staleness=-1)
    with pytest.raises(ValueError, match="delay factors must be >= 1"):
        fit_linear(X, y, family="logistic", solver="async_sgd", delay={0: 0.5})
    with pytest.raises(ValueError, match="hogwild supports"):
        fit_linear(X, (y > 0).astype(int), family="multinomial", n_classes=2, solver="hogwild")
    with pytest.raises(ValueError, match="L2 penalties only"):
        fit_linear(X, y, family="logistic", penalty="l1", lam=0.1, solver="hogwild")
    with pytest.raises(ValueError, match="needs an L2 penalty"):
        fit_linear(X, y, family="logistic", lam=0.0, solver="hogwild")
    with pytest.raises(ValueError, match="at least 2 chunks"):
        fit_linear(X, y, family="logistic", solver="gossip_sgd", chunks=len(X))
    with pytest.raises(ValueError, match="alpha"):
        fit_linear(X, y, family="logistic", solver="easgd", alpha=0.5, synchronous=True)
    fam, pen = get_family("logistic"), get_penalty("l2")
    local = Objective(X, y, fam, pen, LAM, Layout(8, 1, True))
    with pytest.raises(RuntimeError, match="dask.distributed futures"):
        async_sgd(local, np.zeros(9))


@pytest.mark.distributed
@pytest.mark.timeout(150)
@pytest.mark.parametrize("nanny_client", [3], indirect=True)
@pytest.mark.parametrize("solver", ["async_sgd", "gossip_sgd", "easgd", "async_sgd_sharded"])
def test_worker_killed_mid_run_finishes_and_counts_lost_work(solver, nanny_client):
    X, y = _problem(n=6000)
    _, _, ref = fit_linear(X, y, family="logistic", lam=LAM, solver="lbfgs", tol=1e-10)
    fstar = float(ref.history.objective.values[-1])
    client = nanny_client
    kill_one, killed = worker_killer(client, at=20)

    t0 = time.perf_counter()
    # the three run on the ranks: the group ends with the worker and restarts from the client's
    # newest snapshot on the workers that remain, and says so; the updates since it are lost work
    # (sharded: the last rank keeps a shard of the server; the restarted group has one rank less)
    extra = dict(n_servers=3) if solver == "async_sgd_sharded" else {}
    with pytest.warns(RuntimeWarning, match="Restarting from"):
        _, _, res = fit_linear(X, y, family="logistic", lam=LAM, solver=solver.removesuffix("_sharded"), eta0=1.0,
                               max_iter=4, delay={1: 3.0}, callback=kill_one, random_state=0, **extra)
    assert killed and time.perf_counter() - t0 < 100
    h = res.history
    assert h.attrs["lost_tasks"] >= 1 and int(h.lost.sum()) == h.attrs["lost_tasks"]
    assert h.rows.values[-1] >= 4 * len(X)
    assert (h.objective.values[-1] - fstar) / fstar < 2e-2


@pytest.mark.parametrize("solver", ["sgd", "local_sgd"])
def test_the_delay_hook_slows_but_does_not_change_synchronous_solvers(cluster4, data, solver):
    X, y, _ = data
    opts = dict(family="logistic", lam=LAM, solver=solver, max_iter=1, random_state=0, chunks=2000)
    _, _, plain = fit_linear(X, y, **opts)
    _, _, slowed = fit_linear(X, y, delay={1: 3.0}, **opts)
    np.testing.assert_array_equal(plain.theta, slowed.theta)
    with pytest.raises(TypeError, match="delay must map"):
        fit_linear(X, y, delay=3.0, **opts)


class _Stop(Exception):
    pass


@pytest.mark.timeout(120)
@pytest.mark.parametrize("variant", ["async_sgd", "easgd_async", "easgd_sync", "gossip_sgd", "hogwild"])
def test_resume_from_a_checkpoint(cluster4, data, variant, tmp_path):
    """An asynchronous run stopped by an error resumes from its newest snapshot: the history up to
    the snapshot is kept, the counters go on, and the run ends with its full work and quality."""
    import json

    X, y, fstar = data
    options, tolerance = VARIANTS[variant]
    kw = dict(family="logistic", lam=LAM, random_state=0, checkpoint=tmp_path, checkpoint_every=8, **options)
    at = 10 if variant == "hogwild" else 30          # hogwild: one update per worker per epoch, 16 in all

    def stop(record):
        if record["iteration"] >= at:
            raise _Stop

    with pytest.raises(_Stop):
        fit_linear(X, y, callback=stop, **kw)
    latest = (tmp_path / "latest").read_text()
    manifest = json.loads((tmp_path / latest / "manifest.json").read_text())
    saved = manifest["iteration"]
    assert 8 <= saved <= at and saved % 8 == 0
    _, _, res = fit_linear(X, y, resume=True, **kw)
    h = res.history
    assert h.sizes["iteration"] > saved
    np.testing.assert_array_equal(h.version.values[:saved], manifest["history"]["version"])
    assert int(h.version.values[saved]) > int(h.version.values[saved - 1])      # the counter goes on
    assert h.attrs["epochs"] >= options["max_iter"] and int(h.updates.sum()) == res.n_iter
    assert np.isfinite(h.objective.values[:saved]).sum() >= 1                     # samples kept or evaluated
    assert 0 <= _gap(res, fstar) < tolerance
    with pytest.raises(ValueError, match=r"written for lam=0.01 \(params\), but this run has lam=0.02"):
        fit_linear(X, y, resume=True, **{**kw, "lam": 2 * LAM})


@pytest.mark.timeout(60)
def test_keyboard_interrupt_snapshot_resumes_to_the_end(cluster4, data, tmp_path):
    X, y, fstar = data
    kw = dict(family="logistic", lam=LAM, solver="async_sgd", eta0=0.5, batch_size=64, max_iter=4, random_state=0,
              checkpoint=tmp_path, checkpoint_every=1000)

    def interrupt(record):
        if record["iteration"] == 25:
            raise KeyboardInterrupt

    _, _, first = fit_linear(X, y, callback=interrupt, **kw)
    assert "KeyboardInterrupt" in first.message
    assert (tmp_path / "latest").read_text() == "iter-000025"          # the final snapshot of the stopped run
    _, _, res = fit_linear(X, y, resume=True, **kw)
    assert res.history.attrs["epochs"] >= 4 and 0 <= _gap(res, fstar) < 5e-3
    np.testing.assert_array_equal(res.history.staleness.values[:25], first.history.staleness.values)


@pytest.mark.timeout(120)
def test_gossip_on_the_ranks_samples_the_exact_average(cluster4, data):
    """gossip_sgd on the ranks: peers fetch each other's models directly; rank 0 keeps the books.
    The sampled objective of the last row is the objective of the returned model (the row-weighted
    average of every chunk's newest model), and every update names another chunk as its peer."""
    X, y, _ = data
    _, _, res = fit_linear(X, y, family="logistic", lam=LAM, solver="gossip_sgd", local_steps=8, eta0=1.0,
                           max_iter=3, eval_every=7, random_state=0)
    h = res.history
    assert h.attrs["on_ranks"] == 1 and h.attrs["lost_tasks"] == 0
    local = Objective(X, y, get_family("logistic"), get_penalty("l2"), LAM, Layout(8, 1, True))
    assert float(h.objective.values[-1]) == pytest.approx(local.value(res.theta), rel=1e-10)
    sampled = np.flatnonzero(np.isfinite(h.objective.values))
    assert len(sampled) >= res.n_iter // 7
    assert np.all(h.peer.values != h.update_worker.values) and set(h.peer.values) <= {0, 1, 2, 3}
    assert np.all(h.staleness.values >= 0) and h.attrs["epochs"] >= 3


@pytest.mark.timeout(120)
def test_gossip_with_every_chunk_on_one_worker(data):
    """One rank holding all chunks: the chunks gossip among themselves, nothing to send."""
    X, y, fstar = data
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            Client(cluster):
        _, _, res = fit_linear(X, y, family="logistic", lam=LAM, solver="gossip_sgd", local_steps=8, eta0=1.0,
                               max_iter=4, chunks=2000, random_state=0)
    h = res.history
    assert h.attrs["on_ranks"] == 1 and h.sizes["worker"] == 4 and int(h.updates.sum()) == res.n_iter
    assert 0 <= _gap(res, fstar) < 5e-3


@pytest.mark.timeout(120)
def test_hogwild_rounds_on_the_ranks_equal_the_futures(cluster4, data):
    """With one thread per worker Hogwild is deterministic: its rounds on the ranks (the average
    on rank 0) give the bits of the rounds driven from the client."""
    import dask

    X, y, _ = data
    kw = dict(family="logistic", lam=LAM, solver="hogwild", n_threads=1, max_iter=3, random_state=0)
    _, _, ranks = fit_linear(X, y, **kw)
    with dask.config.set({"daskpml.optim.on-ranks": False}):
        _, _, futures = fit_linear(X, y, **kw)
    assert ranks.history.attrs["on_ranks"] == 1 and not futures.history.attrs.get("on_ranks")
    np.testing.assert_array_equal(ranks.theta, futures.theta)
    np.testing.assert_array_equal(ranks.history.sgd_updates.values, futures.history.sgd_updates.values)
    np.testing.assert_allclose(ranks.history.objective.values[-1], futures.history.objective.values[-1], rtol=1e-12)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("n_servers", [2, 4])
def test_a_sharded_server_reaches_the_optimum(cluster4, data, n_servers):
    """async_sgd's server split by key range over several ranks: every push reaches every shard,
    rank 0 keeps the books and assembles the model it samples; the result is as good as one
    server's, and the last row's objective is the returned model's."""
    X, y, fstar = data
    options, tolerance = VARIANTS["async_sgd"]
    _, _, res = fit_linear(X, y, family="logistic", lam=LAM, random_state=0, n_servers=n_servers, eval_every=20,
                           **options)
    h = res.history
    assert h.attrs["on_ranks"] == 1 and h.attrs["n_servers"] == n_servers
    assert 0 <= _gap(res, fstar) < tolerance
    assert int(h.updates.sum()) == res.n_iter and np.all(np.diff(h.version.values) == 1)
    local = Objective(X, y, get_family("logistic"), get_penalty("l2"), LAM, Layout(8, 1, True))
    assert float(h.objective.values[-1]) == pytest.approx(local.value(res.theta), rel=1e-10)
    sampled = np.flatnonzero(np.isfinite(h.objective.values))
    assert len(sampled) >= res.n_iter // 20                  # every sample's model was assembled


@pytest.mark.timeout(120)
def test_a_sharded_server_keeps_the_staleness_bound_with_a_straggler(cluster4, data):
    """Only rank 0's shard holds workers back (two shards holding back on their own could each
    wait for a push the other holds): a straggler and a tight bound finish, within the bound."""
    X, y, fstar = data
    _, _, res = fit_linear(X, y, family="logistic", lam=LAM, solver="async_sgd", eta0=0.5, batch_size=64,
                           max_iter=1, delay={0: 4.0}, max_staleness=1, n_servers=3, random_state=0)
    h = res.history
    assert h.attrs["n_servers"] == 3 and int(h.staleness.max()) <= 1 and h.attrs["epochs"] >= 1


@pytest.mark.timeout(120)
def test_a_sharded_server_resumes_from_its_snapshot(cluster4, data, tmp_path):
    """The snapshots of a sharded server hold the whole model, gathered from the shards; a run
    resumed from one splits it again and ends with its full work and quality."""
    import json

    X, y, fstar = data
    options, tolerance = VARIANTS["async_sgd"]
    kw = dict(family="logistic", lam=LAM, random_state=0, checkpoint=tmp_path, checkpoint_every=8, n_servers=2,
              **options)

    def stop(record):
        if record["iteration"] >= 30:
            assert record["theta"] is None              # (the whole model is nowhere while it runs)
            raise _Stop

    with pytest.raises(_Stop):
        fit_linear(X, y, callback=stop, **kw)
    latest = (tmp_path / "latest").read_text()
    saved = json.loads((tmp_path / latest / "manifest.json").read_text())["iteration"]
    assert 8 <= saved <= 30 and saved % 8 == 0
    _, _, res = fit_linear(X, y, resume=True, **kw)
    h = res.history
    assert h.sizes["iteration"] > saved and h.attrs["epochs"] >= options["max_iter"]
    assert 0 <= _gap(res, fstar) < tolerance


def test_the_model_size_picks_the_number_of_shards(cluster4, data):
    import dask

    X, y, _ = data
    kw = dict(family="logistic", lam=LAM, solver="async_sgd", eta0=0.5, max_iter=1, random_state=0)
    with dask.config.set({"daskpml.optim.shard-bytes": 8 * 5}):         # 9 parameters: two shards of 5 and 4
        _, _, res = fit_linear(X, y, **kw)
    assert res.history.attrs["n_servers"] == 2
    _, _, res = fit_linear(X, y, **kw)                                    # 72 bytes: one server
    assert res.history.attrs["n_servers"] == 1
    _, _, res = fit_linear(X, y, n_servers=64, **kw)                      # at most one shard per rank
    assert res.history.attrs["n_servers"] == 4


def test_n_servers_is_checked_and_needs_the_ranks(cluster4, data):
    import dask

    X, y, _ = data
    kw = dict(family="logistic", lam=LAM, solver="async_sgd", max_iter=1, random_state=0)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="n_servers must be a positive integer or None"):
            fit_linear(X, y, n_servers=bad, **kw)
    with dask.config.set({"daskpml.optim.on-ranks": False}):
        with pytest.raises(ValueError, match="n_servers=2 splits the server over the ranks"):
            fit_linear(X, y, n_servers=2, **kw)
        _, _, res = fit_linear(X, y, n_servers=1, **kw)
    assert not res.history.attrs.get("on_ranks")
