"""kNN / epsilon / Gaussian graphs against scikit-learn."""

import dask
import dask.array as da
import numpy as np
import pytest
from _helpers import host, on
from sklearn.neighbors import NearestNeighbors, kneighbors_graph, radius_neighbors_graph

from daskpml.graph import epsilon_graph, gaussian_graph, kneighbors, knn_graph

X = np.random.default_rng(0).normal(size=(900, 6))


@pytest.mark.parametrize("algorithm", ["brute", "kd_tree"])
@pytest.mark.parametrize("chunks", [128, 900])
def test_kneighbors_exactly_sklearn(backend, algorithm, chunks):
    Xd = da.from_array(on(backend, X), chunks=(chunks, -1))
    dist, idx = kneighbors(Xd, 7, algorithm=algorithm)
    ref_d, ref_i = NearestNeighbors(n_neighbors=7).fit(X).kneighbors()
    np.testing.assert_array_equal(host(idx), ref_i)
    np.testing.assert_allclose(host(dist), ref_d, rtol=1e-10, atol=1e-12)
    dist, idx = kneighbors(Xd, 5, include_self=True, algorithm=algorithm)
    np.testing.assert_array_equal(host(idx), NearestNeighbors(n_neighbors=5).fit(X).kneighbors(X)[1])


@pytest.mark.parametrize("blocks_per_tree", [1, 3])
def test_kd_trees_over_groups_of_blocks(blocks_per_tree):
    """Several trees (groups of blocks), later ones searched within the k-th distance so far."""
    Xd = da.from_array(X, chunks=(100, -1))
    with dask.config.set({"daskpml.graph.tree-bytes": blocks_per_tree * 100 * 6 * 8}):
        dist, idx = kneighbors(Xd, 9, algorithm="kd_tree")
        assert len([k for k in dict(idx.dask) if "knn-tree" in str(k)]) == -(-9 // blocks_per_tree)
        dist, idx = dask.compute(dist, idx)
    ref_d, ref_i = NearestNeighbors(n_neighbors=9).fit(X).kneighbors()
    np.testing.assert_array_equal(idx, ref_i)
    np.testing.assert_allclose(dist, ref_d, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("tree_bytes", [1, 2 * 50 * 2 * 8, 2**30])
def test_ties_go_to_the_smaller_index(tree_bytes):
    """Grid points: many equal distances and duplicates; the result must not depend on blocks or trees."""
    grid = np.random.default_rng(1).integers(0, 4, size=(400, 2)).astype(float)
    d2 = ((grid[:, None] - grid[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    order = np.lexsort((np.broadcast_to(np.arange(400), d2.shape), d2), axis=-1)[:, :6]
    for algorithm in ("brute", "kd_tree"):
        with dask.config.set({"daskpml.graph.tree-bytes": tree_bytes}):
            dist, idx = dask.compute(*kneighbors(da.from_array(grid, chunks=(50, -1)), 6, algorithm=algorithm))
        np.testing.assert_array_equal(idx, order)
        np.testing.assert_allclose(dist ** 2, np.take_along_axis(d2, order, 1), atol=1e-12)


@pytest.mark.parametrize("mode", ["connectivity", "distance"])
def test_knn_graph_equals_kneighbors_graph(mode):
    G = knn_graph(da.from_array(X, chunks=(200, -1)), 8, mode=mode, symmetrize=None)
    ref = kneighbors_graph(X, 8, mode=mode)
    np.testing.assert_allclose(host(G), ref.toarray(), rtol=1e-10, atol=1e-12)


def test_symmetrize_and_gaussian():
    C = kneighbors_graph(X, 6).toarray()
    G = host(knn_graph(X, 6, symmetrize="mean"))
    np.testing.assert_allclose(G, (C + C.T) / 2)
    G = host(knn_graph(X, 6, symmetrize="max"))
    np.testing.assert_allclose(G, np.maximum(C, C.T))
    D = kneighbors_graph(X, 6, mode="distance").toarray()
    G = host(knn_graph(X, 6, mode="gaussian", gamma=0.5, symmetrize=None))
    np.testing.assert_allclose(G, np.where(C > 0, np.exp(-0.5 * D ** 2), 0), rtol=1e-10)


def test_epsilon_and_gaussian_graph():
    E = host(epsilon_graph(da.from_array(X, chunks=(250, -1)), 1.5, mode="distance"))
    np.testing.assert_allclose(E, radius_neighbors_graph(X, 1.5, mode="distance").toarray(), rtol=1e-10)
    G = host(gaussian_graph(X, gamma=0.8, threshold=1e-3))
    d2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    ref = np.exp(-0.8 * d2)
    ref[(ref < 1e-3) | np.eye(len(X), dtype=bool)] = 0
    np.testing.assert_allclose(G, ref, rtol=1e-9, atol=1e-12)


def test_bad_input():
    with pytest.raises(ValueError, match=r"rechunk\(\{1: 6\}\)"):
        knn_graph(da.from_array(X, chunks=(100, 3)), 5)
    with pytest.raises(ValueError, match="n_neighbors"):
        knn_graph(X[:10], 10)
    bad = X.copy()
    bad[5, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        knn_graph(bad, 3)
    with pytest.raises(ValueError, match="symmetrize"):
        knn_graph(X, 3, symmetrize="both")
    with pytest.raises(ValueError, match="mode"):
        knn_graph(X, 3, mode="rbf")
    with pytest.raises(ValueError, match="radius"):
        epsilon_graph(X, -1.0)
