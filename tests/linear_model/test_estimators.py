"""scikit-learn compatibility, lazy dask outputs, bad input, sklearn parity of the estimators."""

import warnings

import dask.array as da
import numpy as np
import pytest
from sklearn import linear_model as sk
from sklearn import svm as sksvm
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils.estimator_checks import check_estimator

import daskpml.linear_model as dl

ESTIMATORS = [dl.LinearRegression(), dl.Ridge(), dl.Lasso(), dl.ElasticNet(), dl.LogisticRegression(),
              dl.LinearSVC()]


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_check_estimator_numpy_path(estimator):
    # No check is excluded. Tiny check data can stop at max_iter: that warning is expected there.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        results = check_estimator(estimator, on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert not failed


def _classification(n=2000, d=5, seed=0, classes=2):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    W = rng.standard_normal((d, classes))
    y = np.argmax(X @ W + rng.gumbel(size=(n, classes)), axis=1)
    return X, y


@pytest.mark.parametrize("make", [lambda: (sk.LogisticRegression(C=0.5, tol=1e-12, max_iter=10_000),
                                           dl.LogisticRegression(C=0.5, tol=1e-10))])
@pytest.mark.parametrize("classes", [2, 3])
def test_logistic_matches_sklearn_numpy_and_dask(make, classes):
    X, y = _classification(classes=classes)
    ref, ours = make()
    ref.fit(X, y)
    ours.fit(da.from_array(X, chunks=(500, 5)), da.from_array(y, chunks=500))
    assert np.max(np.abs(ours.coef_ - ref.coef_)) < 1e-4 * np.max(np.abs(ref.coef_))
    assert ours.coef_.shape == ref.coef_.shape and ours.intercept_.shape == ref.intercept_.shape
    Xd = da.from_array(X, chunks=(500, 5))
    proba = ours.predict_proba(Xd)
    pred = ours.predict(Xd)
    assert isinstance(proba, da.Array) and isinstance(pred, da.Array)      # lazy outputs
    np.testing.assert_allclose(proba.compute(), ref.predict_proba(X), atol=1e-5)
    np.testing.assert_array_equal(pred.compute(), ours.predict(X))
    assert abs(ours.score(Xd, da.from_array(y, chunks=500)) - ref.score(X, y)) < 1e-3


def test_regressors_match_sklearn():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((1000, 8))
    y = X @ rng.standard_normal(8) + 2.0 + 0.3 * rng.standard_normal(1000)
    pairs = [(sk.LinearRegression(), dl.LinearRegression(tol=1e-10)),
             (sk.Ridge(alpha=30.0), dl.Ridge(alpha=30.0, tol=1e-10)),
             (sk.Lasso(alpha=0.1, tol=1e-12, max_iter=100_000), dl.Lasso(alpha=0.1, tol=1e-10)),
             (sk.ElasticNet(alpha=0.1, l1_ratio=0.7, tol=1e-12, max_iter=100_000),
              dl.ElasticNet(alpha=0.1, l1_ratio=0.7, tol=1e-10))]
    Xd, yd = da.from_array(X, chunks=(250, 8)), da.from_array(y, chunks=250)
    for ref, ours in pairs:
        ref.fit(X, y)
        ours.fit(Xd, yd)
        assert np.max(np.abs(ours.coef_ - ref.coef_)) < 1e-4 * np.max(np.abs(ref.coef_)), type(ours).__name__
        assert abs(ours.intercept_ - ref.intercept_) < 1e-4
        assert abs(ours.score(Xd, yd) - ref.score(X, y)) < 1e-6
        assert isinstance(ours.predict(Xd), da.Array)


def test_linear_svc_squared_hinge_matches_sklearn_objective():
    X, y = _classification(n=1500, seed=3)
    ours = dl.LinearSVC(C=0.1, tol=1e-10).fit(X, y)
    # liblinear penalizes its intercept; with a huge intercept_scaling that penalty vanishes
    ref = sksvm.LinearSVC(C=0.1, tol=1e-12, max_iter=1_000_000, intercept_scaling=1e3).fit(X, y)
    assert np.max(np.abs(ours.coef_ - ref.coef_)) < 1e-3 * np.max(np.abs(ref.coef_))
    hinge = dl.LinearSVC(C=0.1, loss="hinge", random_state=0, max_iter=20).fit(X, y)
    assert hinge.solver_ == "sgd" and hinge.score(X, y) > 0.8


@pytest.mark.parametrize("solver", ["sgd", "local_sgd", "one_shot_average", "newton", "newton_cg",
                                    "gradient_descent"])
def test_every_solver_is_selectable(solver):
    X, y = _classification(n=1200, seed=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = dl.LogisticRegression(solver=solver, random_state=0, max_iter=30).fit(
            da.from_array(X, chunks=(400, 5)), da.from_array(y, chunks=400))
    assert model.score(X, y) > 0.8 and model.history_.sizes["iteration"] >= 1


def test_bad_input_messages():
    X, y = _classification(n=300)
    Xd = da.from_array(X, chunks=(100, 5))
    with pytest.raises(ValueError, match="only one class"):
        dl.LogisticRegression().fit(X, np.zeros(300))
    with pytest.raises(ValueError, match="only one class"):
        dl.LogisticRegression().fit(Xd, da.zeros(300, chunks=100))
    with pytest.raises(ValueError, match="Only binary classification is supported.*3 classes"):
        dl.LinearSVC().fit(X, np.arange(300) % 3)
    Xnan = X.copy()
    Xnan[250, 2] = np.nan
    with pytest.raises(ValueError, match="NaN.*chunk"):
        dl.LogisticRegression().fit(da.from_array(Xnan, chunks=(100, 5)), da.from_array(y, chunks=100))
    with pytest.raises(ValueError, match="different numbers of samples: 300 and 299"):
        dl.Ridge().fit(Xd, da.from_array(y[:299].astype(float), chunks=100))
    with pytest.raises(ValueError, match=r"rechunk\(\{1: X.shape\[1\]\}\)"):
        dl.Ridge().fit(da.from_array(X, chunks=(100, 2)), da.from_array(y.astype(float), chunks=100))
    with pytest.raises(NotFittedError, match="not fitted yet"):
        dl.LogisticRegression().predict(Xd)
    with pytest.raises(ValueError, match="valid solvers are: auto, .*lbfgs"):
        dl.Ridge(solver="cholesky").fit(X, y.astype(float))
    with pytest.raises(ValueError, match="cannot handle the l1 penalty"):
        dl.LogisticRegression(penalty="l1", solver="lbfgs").fit(X, y)
    model = dl.LogisticRegression().fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but LogisticRegression is expecting 5"):
        model.predict(da.from_array(X[:, :3], chunks=(100, 3)))
