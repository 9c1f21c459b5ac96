"""The synchronous solvers on the ranks of an SPMD group: the same iterates as the task-graph
version, the protocol (callback, checkpoint, warnings) through the client, elastic restart."""

from __future__ import annotations

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
from distributed import Client, LocalCluster
from sklearn.exceptions import ConvergenceWarning

from daskpml.optim import fit_linear
from tests._helpers import worker_killer

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(600)]

SOLVERS = {
    "lbfgs": dict(tol=1e-8, max_iter=200),
    "newton": dict(tol=1e-8, max_iter=50),
    "newton_cg": dict(tol=1e-8, max_iter=50),
    "gradient_descent": dict(tol=1e-5, max_iter=300),
    "proximal_gradient": dict(tol=1e-6, max_iter=300, penalty="elasticnet"),
    "sgd": dict(batch_size=512, max_iter=3, random_state=0, eta0=0.2),
    "local_sgd": dict(batch_size=128, local_steps=5, max_iter=3, random_state=0, eta0=0.2),
}


@pytest.fixture(scope="module")
def cluster_client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=50) as cluster, Client(cluster) as c:
        yield c


def data(n=6000, d=8, chunks=1000, seed=0):
    rng = da.random.default_rng(seed)
    X = rng.standard_normal((n, d), chunks=(chunks, d))
    w = np.linspace(-1, 1, d)
    y = ((X @ w + rng.standard_normal(n, chunks=chunks)) > 0).astype(float)
    return dask.persist(X, y)


def fit(X, y, solver, on_ranks=True, **extra):
    opts = dict(SOLVERS[solver])
    penalty = opts.pop("penalty", "l2")
    with dask.config.set({"daskpml.optim.on-ranks": on_ranks}), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return fit_linear(X, y, family="logistic", lam=1e-2, penalty=penalty, solver=solver, progress=False,
                          **{**opts, **extra})


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_same_iterates_as_the_task_graphs(cluster_client, solver):
    X, y = data()
    coef_r, b_r, res_r = fit(X, y, solver, True)
    coef_g, b_g, res_g = fit(X, y, solver, False)
    assert res_r.n_iter == res_g.n_iter and res_r.status == res_g.status
    np.testing.assert_allclose(res_r.theta, res_g.theta, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(res_r.history.objective.values, res_g.history.objective.values, rtol=1e-9)
    assert res_r.history.rounds.values.tolist() == res_g.history.rounds.values.tolist()
    assert res_r.history.bytes.attrs["source"] == "measured" and res_g.history.bytes.attrs["source"] == "model"
    assert res_r.history.bytes.values.sum() > 0
    if "drift" in res_g.history:
        np.testing.assert_allclose(res_r.history.drift.values, res_g.history.drift.values, rtol=1e-6)


def test_the_callback_runs_here_and_stops_every_rank(cluster_client):
    X, y = data()
    seen = []

    def stop_at_2(record):
        seen.append((record["iteration"], record["theta"].shape))
        return record["iteration"] == 2

    _, _, res = fit(X, y, "lbfgs", callback=stop_at_2)
    assert res.status == "stopped" and res.n_iter == 2 and seen == [(1, (9,)), (2, (9,))]


def test_checkpoint_resume_on_the_ranks_equals_one_run(cluster_client, tmp_path):
    X, y = data()
    _, _, whole = fit(X, y, "lbfgs", max_iter=12, tol=0.0)
    fit(X, y, "lbfgs", max_iter=5, tol=0.0, checkpoint=tmp_path / "cp", checkpoint_every=2)
    assert (tmp_path / "cp").is_dir()
    _, _, resumed = fit(X, y, "lbfgs", max_iter=12, tol=0.0, checkpoint=tmp_path / "cp", checkpoint_every=2,
                        resume=True)
    assert resumed.n_iter == 12
    np.testing.assert_allclose(resumed.theta, whole.theta, rtol=1e-9)
    assert resumed.history.sizes["iteration"] == 12


def test_convergence_warnings_reach_the_caller(cluster_client):
    X, y = data()
    with dask.config.set({"daskpml.optim.on-ranks": True}):
        with pytest.warns(ConvergenceWarning, match="lbfgs did not converge"):
            fit_linear(X, y, family="logistic", solver="lbfgs", max_iter=2, tol=1e-12, progress=False)


@pytest.mark.parametrize("nanny_client", [3], indirect=True)
def test_a_lost_worker_restarts_the_group_from_the_snapshot(nanny_client, tmp_path):
    X, y = data(chunks=500)
    _, _, reference = fit(X, y, "lbfgs", max_iter=30, tol=0.0)
    kill, killed = worker_killer(nanny_client, at=7)
    with pytest.warns(RuntimeWarning, match="Restarting from the newest snapshot"):
        _, _, res = fit(X, y, "lbfgs", max_iter=30, tol=0.0, callback=kill, checkpoint=tmp_path / "cp",
                        checkpoint_every=5)
    assert killed
    assert res.n_iter == reference.n_iter
    # (the restarted group has other ranks, so its sums run in another order)
    np.testing.assert_allclose(res.theta, reference.theta, rtol=1e-6, atol=1e-9)


def test_without_a_folder_the_client_keeps_the_snapshot(nanny_client):
    X, y = data(chunks=500)
    _, _, reference = fit(X, y, "lbfgs", max_iter=10, tol=0.0)
    kill, killed = worker_killer(nanny_client, at=8)
    with pytest.warns(RuntimeWarning, match="Restarting from the snapshot of iteration 5"):
        _, _, res = fit(X, y, "lbfgs", max_iter=10, tol=0.0, callback=kill, checkpoint_every=5)
    assert killed and res.n_iter == reference.n_iter
    np.testing.assert_allclose(res.theta, reference.theta, rtol=1e-6, atol=1e-9)
