"""CascadeSVC against scikit-learn's SVC on all the data (an independent reference)."""

import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import make_classification
from sklearn.exceptions import NotFittedError
from sklearn.svm import SVC

from daskpml.svm._cascade_svm import dual_objective, kernel_matrix
from daskpml.svm import CascadeSVC


@pytest.fixture(scope="module")
def data():
    X, y = make_classification(800, 6, n_informative=4, flip_y=0.1, random_state=0)
    return X, y


def reference_objective(X, y, **kw):
    ref = SVC(tol=1e-6, **kw).fit(X, y)
    params = dict(kernel=ref.kernel, gamma=ref._gamma, degree=ref.degree, coef0=ref.coef0)
    return ref, dual_objective(ref.support_vectors_, ref.dual_coef_, params)


@pytest.mark.parametrize("solver", ["smo", "libsvm"])
@pytest.mark.parametrize("partition", ["random", "kmeans"])
def test_converged_cascade_reaches_the_single_svc_objective(data, solver, partition):
    X, y = data
    ref, f_ref = reference_objective(X, y)
    model = CascadeSVC(n_partitions=4, partition=partition, solver=solver, max_passes=10, tol=1e-6,
                       random_state=0).fit(X, y)
    assert model.converged_ and 2 <= model.n_passes_ < 10
    assert abs(model.objective_ - f_ref) <= 1e-3 * f_ref
    assert abs(model.objective_ - f_ref) <= 1e-6 * f_ref
    np.testing.assert_allclose(model.decision_function(X), ref.decision_function(X), atol=1e-4)
    assert set(model.support_) == set(ref.support_)
    np.testing.assert_array_equal(model.n_support_, ref.n_support_)
    # the attributes describe the model: K(X, SV) dual_coef + intercept
    K = kernel_matrix(X, model.support_vectors_, "rbf", model.gamma_, 3, 0.0)
    np.testing.assert_allclose(K @ model.dual_coef_[0] + model.intercept_[0], model.decision_function(X),
                               atol=1e-10)
    np.testing.assert_array_equal(model.support_vectors_, X[model.support_])
    h = model.history_
    top = h.where(h["layer"] == h["layer"].max(), drop=True)
    assert top.sizes["iteration"] == model.n_passes_
    assert np.all(np.diff(top["objective"].values) >= -1e-6 * f_ref)   # Graf et al.: never decreases
    assert int(h["n_train"][0]) == len(y) and int(h["n_nodes"][0]) == 4


def test_one_pass_is_close_and_kernels_and_odd_partitions(data):
    X, y = data
    for kernel in ("linear", "poly"):
        ref, f_ref = reference_objective(X, y, kernel=kernel, C=0.5)
        model = CascadeSVC(C=0.5, kernel=kernel, n_partitions=3, max_passes=6, tol=1e-6, random_state=1).fit(X, y)
        assert abs(model.objective_ - f_ref) <= 1e-3 * f_ref, kernel
        assert (model.predict(X) == ref.predict(X)).mean() > 0.99


def test_sparse_dask_and_multiclass_inputs(data):
    X, y = data
    ref = SVC().fit(X, y)
    Xs = sp.csr_matrix(np.where(np.abs(X) > 0.5, X, 0.0))
    ref_s = SVC(tol=1e-6).fit(Xs, y)
    m = CascadeSVC(n_partitions=2, max_passes=10, tol=1e-6, random_state=0).fit(Xs, y)
    np.testing.assert_allclose(m.decision_function(Xs), ref_s.decision_function(Xs), atol=1e-4)
    dX, dy = da.from_array(X, chunks=(300, 6)), da.from_array(y, chunks=300)
    md = CascadeSVC(n_partitions=2, random_state=0).fit(dX, dy)
    lazy = md.predict(dX)
    assert isinstance(lazy, da.Array)
    assert (lazy.compute() == ref.predict(X)).mean() > 0.97
    X3, y3 = make_classification(600, 5, n_informative=3, n_redundant=0, n_classes=3, random_state=2)
    ref3 = SVC().fit(X3, y3)
    m3 = CascadeSVC(n_partitions=2, max_passes=5, random_state=0).fit(X3, y3)
    assert m3.estimator_ is not None and np.isnan(m3.objective_)
    assert (m3.predict(X3) == ref3.predict(X3)).mean() > 0.97
    assert m3.decision_function(X3).shape == ref3.decision_function(X3).shape


def test_same_seed_same_model_on_a_cluster(data, client):
    X, y = data
    a = CascadeSVC(n_partitions=4, max_passes=2, random_state=3).fit(X, y)
    b = CascadeSVC(n_partitions=4, max_passes=2, random_state=3).fit(da.from_array(X, chunks=(200, 6)), y)
    np.testing.assert_array_equal(np.sort(a.support_), np.sort(b.support_))
    assert a.objective_ == pytest.approx(b.objective_, rel=1e-12)


def test_bad_input(data):
    X, y = data
    with pytest.raises(ValueError, match="NaN"):
        Xn = X.copy(); Xn[3, 2] = np.nan
        CascadeSVC().fit(Xn, y)
    with pytest.raises(ValueError, match="only one class"):
        CascadeSVC().fit(X, np.ones(len(y)))
    with pytest.raises(ValueError, match="different numbers of samples"):
        CascadeSVC().fit(X, y[:-1])
    with pytest.raises(ValueError, match="y must be 1-D"):
        CascadeSVC().fit(X, np.stack([y, y], axis=1))
    with pytest.raises(ValueError, match="requires y to be passed"):
        CascadeSVC().fit(X, None)
    with pytest.raises(ValueError, match="class labels must be finite"):
        yn = y.astype(float); yn[0] = np.nan
        CascadeSVC().fit(X, yn)
    for kw, msg in [(dict(C=0), "C must be"), (dict(kernel="cubic"), "kernel must be"),
                    (dict(partition="hash"), "partition must be"), (dict(max_passes=0), "max_passes"),
                    (dict(gamma=-1.0), "gamma must be"), (dict(n_partitions=1000), "n_partitions"),
                    (dict(solver="cg"), "solver must be")]:
        with pytest.raises(ValueError, match=msg):
            CascadeSVC(**kw).fit(X, y)
    with pytest.raises(ValueError, match="binary problems"):
        CascadeSVC(solver="smo", n_partitions=2).fit(X, np.arange(len(y)) % 3)
    with pytest.raises(NotFittedError):
        CascadeSVC().predict(X)
    model = CascadeSVC(n_partitions=2, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="expecting 6 features"):
        model.predict(X[:, :4])
