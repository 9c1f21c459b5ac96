from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import scipy.sparse as sp

from daskpml.sparse import from_array
from daskpml.validation import NotFittedError, check_array, check_graph, check_is_fitted, check_X_y


def test_nan_in_numpy_and_sparse():
    X = np.ones((4, 3))
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"X contains 1 NaN or infinite value\(s\).*impute"):
        check_array(X)
    S = sp.csr_matrix(np.eye(3))
    S.data[0] = np.inf
    with pytest.raises(ValueError, match="1 NaN or infinite"):
        check_array(S)


def test_nan_deep_inside_a_dask_array_is_found_and_located():
    X = np.ones((1000, 5))
    X[987, 3] = np.inf
    Xd = da.from_array(X, chunks=(100, 5))
    with pytest.raises(ValueError, match=r"1 NaN or infinite value\(s\) \(first in chunk \(9, 0\), rows 900-999\)"):
        check_array(Xd)


def test_lazy_check_fires_when_the_data_is_read():
    X = np.ones((100, 2))
    X[55, 0] = np.nan
    checked = check_array(da.from_array(X, chunks=(10, 2)), ensure_finite="lazy", name="features")
    assert dask.is_dask_collection(checked)
    with pytest.raises(ValueError, match=r"features contains 1 NaN or infinite value\(s\) in chunk \(5, 0\) \(rows 50-59\)"):
        checked.sum().compute()


def test_nan_in_distributed_sparse_matrix():
    M = sp.random(50, 50, density=0.1, format="csr", random_state=0)
    M.data[-1] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        check_array(from_array(M, chunks=10))


def test_shapes_empty_and_dtype():
    with pytest.raises(ValueError, match="must be 2-D, got 1-D.*reshape"):
        check_array(np.ones(3))
    assert check_array(np.ones(3), allow_1d=True).shape == (3,)
    with pytest.raises(ValueError, match=r"0 sample\(s\) \(shape=\(0, 3\)\) while a minimum of 1 is required.*empty"):
        check_array(np.ones((0, 3)))
    with pytest.raises(TypeError, match="not numeric"):
        check_array(np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="sparse.*toarray"):
        check_array(sp.eye(3), accept_sparse=False)
    assert check_array(np.ones((2, 2)).astype(object)).dtype == np.float64      # numbers as objects
    with pytest.raises(TypeError, match="argument must be .* string.* number"):
        check_array(np.array([[{"a": 1}, 1.0]], dtype=object))
    with pytest.raises(ValueError, match="Complex data not supported.*x.real"):
        check_array(np.ones((2, 2)) * 1j)
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        x = da.ones(10, chunks=5)
        check_array(x[x > 0].reshape(-1, 1) if False else x[x > 0][:, None])


def test_negative_values_counted_with_chunk():
    X = np.ones((30, 2))
    X[25, 1] = -1
    X[26, 0] = -2
    with pytest.raises(ValueError, match=r"2 negative value\(s\) \(first in chunk \(2, 0\), rows 20-29\)"):
        check_array(da.from_array(X, chunks=(10, 2)), ensure_non_negative=True)


def test_graph_checks():
    with pytest.raises(ValueError, match=r"square adjacency matrix.*\(3, 4\)"):
        check_graph(np.ones((3, 4)))
    with pytest.raises(ValueError, match="not symmetric.*Symmetrize"):
        check_graph(np.triu(np.ones((3, 3))), symmetric=True)
    with pytest.raises(ValueError, match="negative"):
        check_graph(-np.eye(3))
    M = sp.random(40, 40, density=0.1, format="csr", random_state=1)
    with pytest.raises(ValueError, match="not symmetric"):
        check_graph(from_array(M, chunks=9), symmetric=True)
    A = from_array(M + M.T, chunks=9)
    assert check_graph(A, symmetric=True) is A
    check_graph(da.from_array((M + M.T).toarray(), chunks=10), symmetric=True)


def test_check_X_y():
    with pytest.raises(ValueError, match="different numbers of samples: 3 and 2"):
        check_X_y(np.ones((3, 2)), np.ones(2))
    with pytest.raises(ValueError, match="y must be 1-D"):
        check_X_y(np.ones((3, 2)), np.ones((3, 2)))


def test_check_is_fitted():
    class Est:
        def __init__(self):
            self.alpha = 1.0

    est = Est()
    with pytest.raises(NotFittedError, match="Est instance is not fitted yet"):
        check_is_fitted(est)
    est.coef_ = np.ones(2)
    check_is_fitted(est)
    with pytest.raises(NotFittedError):
        check_is_fitted(est, ["coef_", "intercept_"])


# -- declared parameter constraints: every estimator and public function --------------------

def _estimators():
    from daskpml.cluster import KMeans, MarkovClustering, SpectralClustering, SpectralEmbedding
    from daskpml.decomposition import NMF, PCA, TruncatedSVD
    from daskpml.gnn import GCN, GraphSAGE
    from daskpml.linear_model import ElasticNet, Lasso, LinearRegression, LinearSVC, LogisticRegression, Ridge
    from daskpml.svm import CascadeSVC

    return [KMeans, MarkovClustering, SpectralClustering, SpectralEmbedding, NMF, PCA, TruncatedSVD, GCN, GraphSAGE,
            ElasticNet, Lasso, LinearRegression, LinearSVC, LogisticRegression, Ridge, CascadeSVC]


def _functions():
    from daskpml import datasets, graph, linalg, optim
    from daskpml.cluster import kmeans, spectral_embedding
    from daskpml.decomposition import nmf

    return [kmeans, spectral_embedding, nmf, graph.mcl, graph.train_gnn, graph.knn_graph, graph.epsilon_graph,
            graph.gaussian_graph, linalg.eigsh, linalg.laplacian_eigsh, linalg.laplacian, linalg.truncated_svd,
            linalg.randomized_svd, optim.fit_linear, optim.shotgun, datasets.make_blobs, datasets.make_regression,
            datasets.make_classification, datasets.make_low_rank]


class _Invalid:
    """A value that meets no constraint."""

    def __repr__(self) -> str:
        return "<invalid>"


def _fit_args(cls):
    import inspect

    required = [p for p in inspect.signature(cls.fit).parameters.values()
                if p.default is inspect.Parameter.empty and p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD]
    return (None,) * len(required)


@pytest.mark.parametrize("cls", _estimators(), ids=lambda c: c.__name__)
def test_every_estimator_refuses_each_bad_parameter_before_any_work(cls):
    from daskpml.validation import ParamsValidated

    assert issubclass(cls, ParamsValidated)
    names = set(cls().get_params())
    constrained = {}
    for klass in cls.__mro__:
        constrained.update(getattr(klass, "_parameter_constraints", {}) or {})
    missing = sorted(names - set(constrained))
    assert not missing, f"{cls.__name__} declares no constraint for {missing}"
    for name in sorted(names):
        with pytest.raises((TypeError, ValueError), match=rf"^{cls.__name__}: {name} must be .*; got <invalid>"):
            cls(**{name: _Invalid()}).fit(*_fit_args(cls))


def _valid(allowed):
    """A value that meets one of ``allowed``."""
    from daskpml.validation import Interval, Options

    for c in allowed:
        if isinstance(c, Interval):
            return 2 if c.left is None or c.left < 2 else c.left + 1
        if isinstance(c, Options):
            return c.values[0]
        if c is None:
            return None
    return None


@pytest.mark.parametrize("function", _functions(), ids=lambda f: f.__name__)
def test_every_public_function_refuses_each_bad_argument(function):
    import inspect

    constraints = function.__wrapped_constraints__
    assert constraints
    required = [p.name for p in inspect.signature(function).parameters.values()
                if p.default is inspect.Parameter.empty and p.kind is not p.VAR_KEYWORD]
    for name in constraints:
        kwargs = {p: _valid(constraints[p]) if p in constraints else None for p in required}
        kwargs[name] = _Invalid()
        with pytest.raises((TypeError, ValueError), match=rf"^{function.__name__}: {name} must be .*; got <invalid>"):
            function(**kwargs)


@pytest.mark.parametrize("params,message", [
    ({"C": "1"}, r"LogisticRegression: C must be a number > 0; got '1' \(str\)"),
    ({"max_iter": "10"}, r"LogisticRegression: max_iter must be a number > 0; got '10' \(str\)"),
    ({"max_iter": 0}, r"max_iter must be a number > 0; got 0"),
    ({"tol": -1}, r"tol must be None or a number >= 0; got -1"),
    ({"penalty": "l3"}, r"penalty must be one of 'l2', 'l1', 'elasticnet', 'none' or None; got 'l3'"),
    ({"fit_intercept": 1}, r"fit_intercept must be True or False; got 1"),
])
def test_messages_name_the_parameter_what_it_must_be_and_what_it_got(params, message):
    from daskpml.linear_model import LogisticRegression

    X, y = np.random.default_rng(0).standard_normal((20, 2)), np.arange(20) % 2
    with pytest.raises((TypeError, ValueError), match=message):
        LogisticRegression(**params).fit(X, y)


def test_string_numbers_are_type_errors_and_numpy_numbers_are_accepted():
    from daskpml.cluster import KMeans
    from daskpml.validation import Interval, check_params
    from numbers import Integral, Real

    with pytest.raises(TypeError):
        check_params("f", {"k": [Interval(Integral, 1, None)]}, {"k": "3"})
    with pytest.raises(ValueError):
        check_params("f", {"k": [Interval(Integral, 1, None)]}, {"k": 0})
    check_params("f", {"k": [Interval(Integral, 1, None)], "t": [Interval(Real, 0, 1)]},
                 {"k": np.int64(3), "t": np.float32(0.5)})
    with pytest.raises(ValueError, match="KMeans: max_iter must be an integer >= 1; got 0"):
        KMeans(2, max_iter=0).fit(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="KMeans: tol must be a number >= 0; got -1"):
        KMeans(2, tol=-1).fit(np.zeros((4, 2)))


def test_kmeans_warns_when_there_are_fewer_distinct_points_than_clusters():
    from sklearn.exceptions import ConvergenceWarning

    from daskpml.cluster import KMeans

    X = np.repeat(np.arange(5.0)[:, None] * [1.0, 2.0], 40, axis=0)       # 5 distinct points
    with pytest.warns(ConvergenceWarning, match=r"Number of distinct clusters \(5\) found smaller than "
                                                 r"n_clusters \(8\)"):
        km = KMeans(8, random_state=0, init="k-means++").fit(X)
    assert len(np.unique(km.labels_)) == 5
