"""Graph partitions: owned and halo nodes, exchange lists that reproduce A @ X, statistics."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import scipy.sparse as sp

from daskpml.datasets import make_sbm
from daskpml.partition import METHODS, partition_graph
from daskpml.sparse import from_array


def grid(rows, cols):
    """A rows x cols grid graph (4 neighbours), node id r * cols + c."""
    n = rows * cols
    ids = np.arange(n).reshape(rows, cols)
    a = np.concatenate([ids[:, :-1].ravel(), ids[:-1, :].ravel()])
    b = np.concatenate([ids[:, 1:].ravel(), ids[1:, :].ravel()])
    A = sp.csr_matrix((np.ones(a.shape[0]), (a, b)), shape=(n, n))
    return (A + A.T).tocsr()


def exchange_product(parts, X):
    """A @ X computed partition by partition, halo rows filled only through recv/send lists."""
    out = np.zeros((len(parts.assignment), X.shape[1]))
    owned_rows = [X[q.owned] for q in parts]
    for q in parts:
        halo_rows = np.full((q.n_halo, X.shape[1]), np.nan)
        for r, where in q.recv.items():
            halo_rows[where] = owned_rows[r][parts[r].send[q.part]]
        assert not np.isnan(halo_rows).any()
        out[q.owned] = q.adjacency @ np.vstack([owned_rows[q.part], halo_rows])
    return out


METHODS_HERE = [m for m in METHODS if m != "metis" or importlib.util.find_spec("pymetis")]


@pytest.mark.parametrize("method", METHODS_HERE)
@pytest.mark.parametrize("n_parts", [1, 3, 4])
def test_halo_exchange_reproduces_the_product(method, n_parts):
    A, _ = make_sbm(300, 6, in_degree=8, out_degree=1, random_state=1)
    A = A.compute()
    A = A.multiply(np.random.default_rng(0).random(A.shape)).tocsr()      # weighted, still 300 x 300
    X = np.random.default_rng(1).random((300, 5))
    parts = partition_graph(A, n_parts, method=method)
    assert len(parts) == n_parts
    # every node is owned exactly once; halos hold exactly the outside neighbours
    owned = np.concatenate([q.owned for q in parts])
    np.testing.assert_array_equal(np.sort(owned), np.arange(300))
    for q in parts:
        neighbours = np.unique(A[q.owned].indices)
        np.testing.assert_array_equal(np.sort(q.halo), np.setdiff1d(neighbours, q.owned))
        np.testing.assert_array_equal(parts.assignment[q.halo], q.halo_owner)
        assert q.adjacency.shape == (q.n_owned, q.n_owned + q.n_halo)
        local = q.adjacency.tocoo()                     # local columns name the same edges as A
        np.testing.assert_allclose(local.data, A[q.owned[local.row], q.nodes[local.col]].A1)
    np.testing.assert_allclose(exchange_product(parts, X), A @ X, rtol=1e-12)
    st = parts.stats
    coo = A.tocoo()
    assert st.attrs["edge_cut"] == int((parts.assignment[coo.row] != parts.assignment[coo.col]).sum())
    assert int(st.halo.sum()) == int(st.recv.sum()) == int(st.send.sum())
    assert int(st.edges.sum()) == A.nnz
    if method != "metis":
        assert st.owned.values.max() - st.owned.values.min() <= 1


def test_locality_methods_cut_fewer_edges_than_contiguous_on_a_shuffled_graph():
    A, _ = make_sbm(600, 4, in_degree=10, out_degree=0.3, shuffle=True, random_state=2)
    A = A.compute()
    cut = {m: partition_graph(A, 4, method=m).stats.attrs["edge_cut"] for m in METHODS_HERE}
    assert cut["spectral"] < 0.3 * cut["contiguous"]
    assert cut["bfs"] < cut["contiguous"]
    # balanced refinement swaps boundary nodes: fewer cut edges, the same sizes
    plain = partition_graph(A, 4, method="bfs", refine=0).stats
    refined = partition_graph(A, 4, method="bfs").stats
    assert refined.attrs["edge_cut"] < 0.5 * plain.attrs["edge_cut"]
    np.testing.assert_array_equal(refined.owned, plain.owned)
    # on a grid, BFS pieces are bands: few cut edges and halos no wider than a band's boundary
    G = grid(20, 30)
    bfs = partition_graph(G, 4, method="bfs").stats
    assert bfs.attrs["edge_cut"] <= 2 * 3 * 2 * 30


def test_disconnected_graph_and_isolated_nodes():
    A = sp.block_diag([grid(5, 5), grid(4, 4), sp.csr_matrix((3, 3))]).tocsr()
    for method in METHODS_HERE:
        parts = partition_graph(A, 3, method=method)
        np.testing.assert_array_equal(np.sort(np.concatenate([q.owned for q in parts])), np.arange(A.shape[0]))
        X = np.arange(A.shape[0] * 2, dtype=float).reshape(-1, 2)
        np.testing.assert_allclose(exchange_product(parts, X), A @ X)


def test_dask_input_and_determinism():
    A, _ = make_sbm(200, 4, in_degree=6, out_degree=1, random_state=3)
    one = partition_graph(A, 3, method="spectral", random_state=5)
    two = partition_graph(from_array(A.compute()), 3, method="spectral", random_state=5)
    np.testing.assert_array_equal(one.assignment, two.assignment)
    dense = partition_graph(A.compute().toarray(), 3, method="bfs")
    assert sp.issparse(dense[0].adjacency)


def test_bad_input():
    A = grid(3, 3)
    with pytest.raises(ValueError, match="method must be one of"):
        partition_graph(A, 2, method="random")
    with pytest.raises(ValueError, match="n_parts must be an integer from 1"):
        partition_graph(A, 0)
    with pytest.raises(ValueError, match="n_parts must be an integer from 1"):
        partition_graph(A, 10)
    with pytest.raises(ValueError, match="refine must be"):
        partition_graph(A, 2, refine=-1)
    with pytest.raises(ValueError, match="square"):
        partition_graph(sp.random(4, 5, density=0.5, format="csr"), 2)
    bad = A.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        partition_graph(bad, 2)
    neg = A.copy()
    neg.data[0] = -1
    with pytest.raises(ValueError, match="negative"):
        partition_graph(neg, 2)
    with pytest.raises(ValueError, match="empty"):
        partition_graph(sp.csr_matrix((0, 0)), 1)
