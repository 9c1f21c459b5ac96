"""Fault injection: a worker dies (``os._exit`` inside it, or SIGKILL from outside) in the middle
of every iterative algorithm, on a LocalCluster with nannies. The run must end with the
undisturbed result (within the algorithm's tolerance) or with an error that says what was
lost and how to resume; nothing may hang (every test has a hard timeout)."""

from __future__ import annotations

import os
import re
import warnings

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
from _faults import Killer, recover

pytestmark = [pytest.mark.distributed, pytest.mark.timeout(180)]

RNG = np.random.default_rng(0)
X = RNG.standard_normal((4000, 10))
Y = (X @ RNG.standard_normal(10) + 0.3 * RNG.standard_normal(4000) > 0).astype(float)


def _xy():
    return da.from_array(X, chunks=1000), da.from_array(Y, chunks=1000)


def _linear(solver, **kw):
    def run(client, callback):
        from daskpml.optim import fit_linear

        Xd, yd = _xy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = fit_linear(Xd, yd, family="logistic", penalty="l2", lam=1e-3, solver=solver, callback=callback,
                             **kw)[2]
        if solver in ("async_sgd", "easgd"):        # order-dependent: compare the final objective
            return np.array([float(res.history.objective.dropna("iteration")[-1])])
        return res.theta
    return run


def _kmeans(client, callback):
    from daskpml.cluster import kmeans
    from daskpml.datasets import make_blobs

    P, _ = make_blobs(6000, 4, centers=12, random_state=1, chunks=1500)
    return np.sort(kmeans(P, 5, random_state=0, init="random", tol=1e-10, callback=callback)["centers"], axis=0)


def _eigsh(client, callback):
    from daskpml.linalg import eigsh
    from daskpml.sparse import from_array

    M = sp.random(3000, 3000, density=0.002, random_state=2, format="csr")
    A = from_array(M + M.T, chunks=750)
    return eigsh(A, 4, tol=1e-8, ncv=12, random_state=0, callback=callback, return_eigenvectors=False)


def _nmf(client, callback):
    from daskpml.decomposition import nmf

    A = da.from_array(np.abs(np.random.default_rng(1).standard_normal((1200, 80))), chunks=(300, 80))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = nmf(A, 4, max_iter=30, tol=0, random_state=0, callback=callback, progress=False)
    return np.asarray(res.H)


def _mcl(client, callback):
    from daskpml.datasets import make_sbm
    from daskpml.graph import mcl

    A, _ = make_sbm(2000, 5, in_degree=10, out_degree=1, random_state=0)
    return np.asarray(mcl(A, 2.0, n_blocks=4, callback=callback).labels.values)


def _gnn(client, callback):
    from daskpml.datasets import make_sbm
    from daskpml.graph import train_gnn

    A, y = make_sbm(600, 3, in_degree=8, out_degree=2, random_state=0)
    A, y = A.to_scipy(), np.asarray(y)
    feats = (np.random.default_rng(0).standard_normal((600, 8)) + y[:, None]).astype(np.float32)
    res = train_gnn(A, feats, y, np.arange(0, 600, 5), epochs=12, n_parts=2, random_state=0,
                    callback=callback, progress=False)
    return np.asarray(res.params[0][0])


def _cascade(client, callback):
    from daskpml.svm import CascadeSVC

    rng = np.random.default_rng(3)
    Xs = rng.standard_normal((1600, 6))
    ys = np.where(Xs[:, 0] * Xs[:, 1] + 0.2 * rng.standard_normal(1600) > 0, 1, -1)
    model = CascadeSVC(C=1.0, gamma=0.5, n_partitions=4, max_passes=3, tol=1e-6, random_state=0)
    return np.array([model.fit(Xs, ys, callback=callback).objective_])


def _close(rtol):
    def check(ref, got):
        np.testing.assert_allclose(got, ref, rtol=rtol, atol=rtol)
    return check


def _equal(ref, got):
    np.testing.assert_array_equal(got, ref)


#: name -> (run(client, callback), compare(reference, result), the callback call that kills)
CASES = {
    "lbfgs": (_linear("lbfgs", tol=1e-8, max_iter=40), _close(1e-6), 3),
    "gradient_descent": (_linear("gradient_descent", tol=1e-5, max_iter=40), _close(1e-6), 3),
    "sgd": (_linear("sgd", random_state=0, max_iter=4, eval_every=4), _close(1e-10), 3),
    "local_sgd": (_linear("local_sgd", random_state=0, max_iter=4, local_steps=5), _close(1e-10), 2),
    "async_sgd": (_linear("async_sgd", random_state=0, max_iter=3), _close(0.1), 20),
    "easgd": (_linear("easgd", random_state=0, max_iter=3), _close(0.1), 20),
    "kmeans": (_kmeans, _close(1e-8), 2),
    "lanczos": (_eigsh, _close(1e-6), 1),
    "nmf": (_nmf, _close(1e-8), 5),
    "mcl": (_mcl, _equal, 3),
    "gnn": (_gnn, _close(1e-6), 3),
    "cascade_svm": (_cascade, _close(1e-6), 1),
}

#: per algorithm and kind of kill, the outcome (written to $DASKPML_FAULT_LOG when set)
OUTCOMES: dict = {}


def _log(name: str, how: str, outcome: str) -> None:
    OUTCOMES[(name, how)] = outcome
    path = os.environ.get("DASKPML_FAULT_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write(f"{name}\t{how}\t{outcome}\n")


#: known failures, reported rather than hidden (sgd with SIGKILL once stalled for minutes in an
#: earlier version of this suite; 12 later trials of the same case recovered in 2-3 s, so it runs)
HANGS: dict = {}


@pytest.mark.parametrize("name,how", [
    pytest.param(n, h, marks=[pytest.mark.skip(reason=HANGS[(n, h)])] if (n, h) in HANGS else [])
    for n in CASES for h in ("exit", "sigkill")])
def test_worker_killed_mid_run(nanny_client, name, how):
    run, compare, at = CASES[name]
    recover(nanny_client)
    reference = run(nanny_client, None)
    killer = Killer(nanny_client, how, at=at)
    try:
        result = run(nanny_client, killer)
    except Exception as exc:                        # a clear error is an acceptable end
        message = str(exc)
        _log(name, how, f"clear error: {message[:160]}")
        assert killer.killed, f"{name} failed without a kill: {message}"
        assert re.search(r"lost", message, re.I), message
        assert re.search(r"resume|checkpoint|again", message, re.I), message
    else:
        assert killer.killed, f"{name}: the run ended before the kill (call {at}); kill earlier"
        compare(reference, result)
        _log(name, how, "same result")
