"""Solvers against scikit-learn optima, histories, determinism across schedulers."""

import warnings

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import linear_model as sk
from sklearn.exceptions import ConvergenceWarning

from daskpml.optim import SOLVERS, fit_linear, get_solver
from daskpml.sparse import from_array as csr_from_array

from _helpers import on


def _logistic_data(n=3000, d=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ w + 0.3)))).astype(float)
    return X, y


def _sk_logistic(X, y, C=1.0):
    ref = sk.LogisticRegression(C=C, tol=1e-12, max_iter=10_000).fit(X, y)
    return ref.coef_.ravel(), ref.intercept_


def _rel(a, b):
    return np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b))


@pytest.mark.parametrize("solver", ["lbfgs", "newton", "newton_cg", "gradient_descent"])
def test_batch_solvers_reach_sklearn_logistic_optimum(backend, solver):
    X, y = _logistic_data()
    ref_w, ref_b = _sk_logistic(X, y)
    Xd = da.from_array(on(backend, X), chunks=(700, 6))
    yd = da.from_array(on(backend, y), chunks=700)
    with warnings.catch_warnings():
        # gradient descent may reach the floating-point floor just above tol=1e-9 on some
        # machines: it then stops with status "stagnated" (and a ConvergenceWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        coef, b, res = fit_linear(Xd, yd, family="logistic", penalty="l2", lam=1 / len(y), solver=solver,
                                  tol=1e-9, max_iter=5000)
    assert res.converged or (solver == "gradient_descent" and res.status == "stagnated"
                             and res.history["grad_norm"].values[-1] < 1e-7)
    assert _rel(coef, ref_w) < 1e-4 and abs(b[0] - ref_b[0]) < 1e-4
    h = res.history
    assert {"objective", "grad_norm", "time", "rounds", "bytes"} <= set(h.data_vars)
    assert np.all(np.diff(h["rounds"].values) >= 1) and h["bytes"].values.sum() > 0
    assert h.attrs["n_chunks"] == 5 and h.attrs["solver"] == solver


def test_gradient_descent_stops_when_no_decrease_is_representable():
    """A tolerance below what float64 can reach: gradient descent used to halve and double its
    step for all of max_iter (about 60 rounds per wasted iteration); it must stop soon after
    the objective stops decreasing, with status "stagnated" and a warning that says so."""
    X, y = _logistic_data()
    Xd, yd = da.from_array(X, chunks=(700, 6)), da.from_array(y, chunks=700)
    with pytest.warns(ConvergenceWarning, match="no decrease of the objective is representable"):
        coef, b, res = fit_linear(Xd, yd, family="logistic", penalty="l2", lam=1 / len(y),
                                  solver="gradient_descent", tol=0.0, max_iter=5000)
    assert res.status == "stagnated" and not res.converged
    assert res.n_iter < 500 and res.history.attrs["status"] == "stagnated"
    objective = res.history["objective"].values
    assert np.all(np.diff(objective) < 0)          # every recorded iteration decreased f
    ref_w, ref_b = _sk_logistic(X, y)
    assert _rel(coef, ref_w) < 1e-6


def test_proximal_gradient_matches_sklearn_lasso_and_elastic_net():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((800, 10))
    y = X @ np.r_[np.arange(1, 6), np.zeros(5)] + rng.standard_normal(800)
    Xd, yd = da.from_array(X, chunks=(200, 10)), da.from_array(y, chunks=200)
    for penalty, l1, model in [("l1", 1.0, sk.Lasso(alpha=0.5, tol=1e-12, max_iter=100_000)),
                               ("elasticnet", 0.3, sk.ElasticNet(alpha=0.5, l1_ratio=0.3, tol=1e-12,
                                                                 max_iter=100_000))]:
        ref = model.fit(X, y)
        coef, b, res = fit_linear(Xd, yd, family="squared", penalty=penalty, l1_ratio=l1, lam=0.5,
                                  solver="proximal_gradient", tol=1e-10, max_iter=20_000)
        assert _rel(coef, ref.coef_) < 1e-4 and abs(b[0] - ref.intercept_) < 1e-4
    assert np.sum(coef == 0) >= 1       # exact zeros from soft thresholding


def test_multinomial_and_sparse_input_match_sklearn():
    rng = np.random.default_rng(2)
    X = sp.random(1500, 20, density=0.3, format="csr", random_state=3)
    y = rng.integers(0, 3, 1500)
    y = np.where(np.asarray(X[:, 0].todense()).ravel() > 0.5, 2, y).astype(float)
    ref = sk.LogisticRegression(C=1.0, tol=1e-12, max_iter=10_000).fit(X, y)
    A = csr_from_array(X, chunks=400)
    coef, b, res = fit_linear(A, da.from_array(y, chunks=400), family="multinomial", n_classes=3, lam=1 / 1500,
                              solver="lbfgs", tol=1e-9, max_iter=2000)
    # softmax parameters are defined up to a shift per feature; both fits centre them (L2)
    assert _rel(coef.T, ref.coef_) < 1e-4
    assert np.max(np.abs((b - b.mean()) - (ref.intercept_ - ref.intercept_.mean()))) < 1e-4


def test_stochastic_solvers_approach_the_optimum():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((4000, 5))
    y = X @ np.arange(1.0, 6.0) + 0.5 + 0.1 * rng.standard_normal(4000)
    Xd, yd = da.from_array(X, chunks=(1000, 5)), da.from_array(y, chunks=1000)
    exact = np.r_[np.linalg.lstsq(np.c_[X, np.ones(4000)], y, rcond=None)[0]]
    runs = {
        "sgd": dict(batch_size=64, eta0=0.05, learning_rate="constant", max_iter=8, momentum=0.5),
        "local_sgd": dict(batch_size=16, local_steps=10, eta0=0.02, learning_rate="constant", max_iter=8),
        "one_shot_average": dict(tol=1e-10),
    }
    for solver, opts in runs.items():
        coef, b, res = fit_linear(Xd, yd, family="squared", penalty=None, solver=solver, random_state=0, **opts)
        assert np.max(np.abs(np.r_[coef, b] - exact)) < 0.05, solver
        h = res.history
        if solver != "sgd":
            assert h.sizes["worker"] == 4 and "worker_bytes" in h
    assert h["local_converged"].values.all()


def test_local_sgd_communicates_once_per_h_steps():
    X, y = _logistic_data(n=2000)
    Xd, yd = da.from_array(X, chunks=(500, 6)), da.from_array(y, chunks=500)
    rounds = {}
    for H in (1, 10):
        _, _, res = fit_linear(Xd, yd, family="logistic", lam=1e-3, solver="local_sgd", local_steps=H,
                               batch_size=50, max_iter=1, random_state=0, eta0=0.1)
        rounds[H] = int(res.history["rounds"].values[-1])
        assert {"local_loss", "drift"} <= set(res.history.data_vars)
    assert rounds == {1: 10, 10: 1}


def test_same_seed_same_model_threads_and_distributed(client):
    X, y = _logistic_data(n=1200)
    Xd, yd = da.from_array(X, chunks=(300, 6)), da.from_array(y, chunks=300)
    kw = dict(family="logistic", lam=1e-3, batch_size=60, max_iter=2, random_state=7, eta0=0.2)
    out = {}
    for solver in ("sgd", "local_sgd"):
        with dask.config.set(scheduler="threads"):
            t_coef = fit_linear(Xd, yd, solver=solver, **kw)[0]
        d_coef = fit_linear(Xd, yd, solver=solver, **kw)[0]     # the client fixture's cluster
        np.testing.assert_allclose(t_coef, d_coef, rtol=1e-12, atol=1e-14)
        out[solver] = d_coef
    other = fit_linear(Xd, yd, solver="sgd", **dict(kw, random_state=8))[0]
    assert not np.allclose(other, out["sgd"])


def test_unknown_solver_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown solver 'adam'; valid solvers are: .*lbfgs.*sgd"):
        get_solver("adam")
    assert set(SOLVERS) >= {"gradient_descent", "lbfgs", "newton_cg", "proximal_gradient", "sgd", "local_sgd",
                            "one_shot_average"}


def test_smooth_solvers_refuse_l1_and_nonsmooth_losses():
    X, y = _logistic_data(n=100)
    with pytest.raises(ValueError, match="use solver='proximal_gradient'"):
        fit_linear(X, y, family="logistic", penalty="l1", lam=0.1, solver="lbfgs")
    with pytest.raises(TypeError, match="not twice differentiable"):
        fit_linear(X, y, family="hinge", lam=0.1, solver="newton_cg")


def test_max_iter_warns_and_callback_stops():
    from sklearn.exceptions import ConvergenceWarning

    X, y = _logistic_data(n=300)
    with pytest.warns(ConvergenceWarning, match="lbfgs did not converge"):
        fit_linear(X, y, family="logistic", lam=1e-3, solver="lbfgs", max_iter=2, tol=1e-12)
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, _, res = fit_linear(X, y, family="logistic", lam=1e-3, solver="lbfgs", tol=1e-12,
                               callback=lambda r: seen.append(r["iteration"]) or r["iteration"] == 3)
    assert seen == [1, 2, 3] and res.n_iter == 3 and res.message == "stopped by the callback"


def test_feature_chunked_dask_input_is_refused():
    X, y = _logistic_data(n=100)
    with pytest.raises(ValueError, match=r"chunked along the feature axis.*rechunk\(\{1: X.shape\[1\]\}\)"):
        fit_linear(da.from_array(X, chunks=(50, 3)), y, family="logistic")


def test_minibatch_gathers_reuse_a_buffer_and_equal_fancy_indexing():
    """The SGD solvers gather their mini-batches into a buffer each thread reuses (a fresh
    temporary is a fresh mmap on a nanny's worker); the rows equal X[rows] for every layout."""
    from daskpml.optim._stochastic import _take

    rng = np.random.default_rng(0)
    base = rng.standard_normal((500, 7))
    layouts = {"C": base[:, :6].copy(), "column slice": base[:, :6], "F": np.asfortranarray(base[:, :6]),
               "float32": base[:, :6].astype(np.float32), "every other row": base[::2, :6]}
    for name, X in layouts.items():
        rows = rng.permutation(X.shape[0])[:300]
        first = _take(X, rows)
        np.testing.assert_array_equal(first, X[rows], err_msg=name)
        again = _take(X, rows[::-1])
        assert again is first, name                   # the same buffer, overwritten
        np.testing.assert_array_equal(again, X[rows[::-1]], err_msg=name)
        np.testing.assert_array_equal(_take(X, rows[:7]), X[rows[:7]], err_msg=name)   # another shape
    S = sp.random(50, 6, density=0.3, format="csr", random_state=0)
    rows = np.arange(0, 50, 3)
    assert (_take(S, rows) != S[rows]).nnz == 0
    v = rng.standard_normal(40)
    np.testing.assert_array_equal(_take(v, np.arange(5)), v[:5])
