"""Every scikit-learn-style estimator passes scikit-learn's own estimator checks, as a user's tooling
runs them (``parametrize_with_checks``), with tags that describe it: ``pairwise`` for graph input
(MarkovClustering, ``affinity="precomputed"``), ``sparse`` where sparse input works, ``requires_y``
for the classifiers. A check that cannot apply is listed in ``EXPECTED`` with the reason (pytest
reports it as xfail), never skipped silently.

Not here: the linear models (``tests/linear_model/test_estimators.py`` runs the same checks on them)
and the GNN estimators (``GCN``, ``GraphSAGE``), whose ``fit`` takes a graph, node features, labels
and the training nodes together: scikit-learn's checks have no input of that shape.
"""

import warnings

import dask
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from daskpml.cluster import KMeans, MarkovClustering, SpectralClustering, SpectralEmbedding
from daskpml.decomposition import NMF, PCA, TruncatedSVD
from daskpml.svm import CascadeSVC

GRAPH_INPUT = ("check_clustering feeds 50 points in 2-D (standardized, negative coordinates) to every "
               "clusterer; this one clusters a graph (an n x n non-negative adjacency), so points are refused")

ESTIMATORS = [
    KMeans(3, random_state=0),
    SpectralClustering(2, random_state=0),
    SpectralClustering(2, affinity="precomputed", random_state=0),
    SpectralEmbedding(2, random_state=0),
    SpectralEmbedding(2, affinity="precomputed", random_state=0),
    PCA(2),
    TruncatedSVD(1),
    NMF(2, max_iter=50, random_state=0, progress=False),
    CascadeSVC(random_state=0),
    MarkovClustering(),
]


def _expected(estimator):
    if isinstance(estimator, MarkovClustering) or getattr(estimator, "affinity", None) == "precomputed":
        return {"check_clustering": GRAPH_INPUT} if hasattr(estimator, "fit_predict") else {}
    return {}


@pytest.fixture(autouse=True)
def _in_process():
    # the checks fit hundreds of tiny problems: run them in this process, whatever client other tests left
    with dask.config.set(scheduler="sync"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tiny check data can stop at max_iter
        yield


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected)
def test_sklearn_compatible(estimator, check):
    check(estimator)
