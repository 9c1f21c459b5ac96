"""Markov clustering: known answers, mcl's pruning rules, the mcl program, bad input."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import adjusted_rand_score

from _helpers import on
from daskpml.cluster import MarkovClustering
from daskpml.datasets import load_graph, make_sbm, read_clusters, save_graph, write_clusters
from daskpml.graph import interpret, mcl
from daskpml.graph import _mcl as M
from daskpml.graph._mcl_kernels import expand_rows, prune_bar, sort_entries
from daskpml.sparse import from_array


def cliques(sizes, bridges=True, isolated=0):
    """Cliques of the given sizes, consecutive ones joined by one edge, then isolated nodes."""
    n = sum(sizes) + isolated
    A = np.zeros((n, n))
    start = 0
    for k, size in enumerate(sizes):
        A[start:start + size, start:start + size] = 1
        if bridges and k + 1 < len(sizes):
            A[start + size - 1, start + size] = A[start + size, start + size - 1] = 1
        start += size
    np.fill_diagonal(A, 0)
    return sp.csr_matrix(A)


def as_sets(clusters):
    return sorted(sorted(int(x) for x in c) for c in clusters)


def test_cliques_joined_by_single_edges(backend):
    A = cliques([6, 5, 7, 4])
    result = mcl(on(backend, A), 2.0)
    assert result.converged and result.n_iter < 30
    assert as_sets(result.clusters) == [list(range(0, 6)), list(range(6, 11)), list(range(11, 18)),
                                        list(range(18, 22))]
    # clusters are numbered largest first, labels follow
    assert [len(c) for c in result.clusters] == [7, 6, 5, 4]
    assert list(result.labels.values[11:18]) == [0] * 7
    assert set(result.history.data_vars) >= {"nnz", "chaos", "time", "bytes", "expanded"}
    assert result.history.chaos.values[-1] < 1e-6


def test_disconnected_parts_and_isolated_nodes_are_their_own_clusters():
    A = cliques([5, 5, 3], bridges=False, isolated=3)
    result = mcl(A, 2.0)
    assert as_sets(result.clusters) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12], [13], [14], [15]]
    model = MarkovClustering(inflation=2.0).fit(A)
    assert model.n_clusters_ == 6 and model.converged_
    assert len(set(model.labels_[13:])) == 3


def test_same_result_for_any_blocking_and_expansion_three():
    A, _ = make_sbm(600, 6, in_degree=10, out_degree=0.5, random_state=1)
    one = mcl(A, 1.8, n_blocks=1)
    many = mcl(A, 1.8, n_blocks=7)
    np.testing.assert_array_equal(one.labels.values, many.labels.values)
    np.testing.assert_allclose(one.limit.toarray(), many.limit.toarray(), atol=1e-6)
    cubed = mcl(cliques([6, 6, 6]), 2.0, expansion=3)
    assert cubed.converged and as_sets(cubed.clusters) == [list(range(0, 6)), list(range(6, 12)),
                                                           list(range(12, 18))]


def reference_prune(v, threshold, select, recover, pct):
    """mcl's rules on one vector, written out plainly (ties at a bar are kept)."""
    def kth(values, k):
        return np.sort(values)[::-1][k - 1]
    above = v[v >= threshold]
    if recover and len(above) < recover and above.sum() < pct:
        return kth(v, recover) if len(v) > recover else -1.0
    if select and len(above) > select:
        sbar = kth(above, select)
        kept = above[above >= sbar]
        if recover and len(kept) < recover and kept.sum() < pct:
            return kth(above, recover) if recover < len(above) else threshold
        return sbar
    return threshold


@pytest.mark.parametrize("seed", range(4))
def test_prune_rules_match_mcl(seed):
    rng = np.random.default_rng(seed)
    for _ in range(50):
        v = rng.pareto(1.0 + rng.random(), size=int(rng.integers(1, 300)))
        v = np.round(v / v.sum(), 4) + 1e-6                 # repeated values: ties at the bars
        v /= v.sum()
        for threshold, select, recover, pct in [(1e-2, 20, 40, 0.9), (1e-3, 5, 8, 0.99), (0.05, 3, 0, 0.9),
                                                (1e-4, 0, 30, 0.95), (0.02, 10, 5, 0.9)]:
            got = prune_bar(v, v.shape[0], threshold, select, recover, pct)
            assert got == pytest.approx(reference_prune(v, threshold, select, recover, pct), abs=0), \
                (threshold, select, recover, pct)


def test_sort_entries_orders_by_value_then_column():
    rng = np.random.default_rng(5)
    stack = np.empty(128, dtype=np.int64)
    for n in [0, 1, 2, 15, 16, 17, 300, 2000]:
        vals = rng.integers(0, 7, n).astype(np.float32)          # many ties
        cols = rng.permutation(10 * n + 1)[:n].astype(np.int32)
        v, c = vals.copy(), cols.copy()
        sort_entries(v, c, 0, n, True, stack)
        order = np.lexsort((cols, -vals))
        np.testing.assert_array_equal(v, vals[order])
        np.testing.assert_array_equal(c, cols[order])
        v, c = vals.copy(), cols.copy()
        sort_entries(v, c, 0, n, False, stack)
        np.testing.assert_array_equal(c, np.sort(cols))
        np.testing.assert_array_equal(v, vals[np.argsort(cols)])


@pytest.mark.parametrize("sort_rows", [True, False])
def test_kernel_read_back_modes_agree_exactly(sort_rows):
    """The kernel's three ways of reading back a row's columns (a list, a bitmap, a scan
    of the scratch row) give the same rows, bit for bit, in a canonical order."""
    A, _ = make_sbm(600, 6, in_degree=12, out_degree=2, random_state=4)
    R = M.prepare(A, dtype=np.float32, n_blocks=1, sort_rows=True).compute().tocsr()
    rules = M._Rules(1e-3, 30, 40, 0.9, 1e-5, 1 << 20)
    R, _ = M._expand_block(R, 0, R, (1.6,), rules, True, True)      # rows of varied spread
    L = R[100:400]
    args = (L.indptr.astype(np.int64), L.indices, L.data, R.indptr.astype(np.int64), R.indices, R.data,
            R.shape[1], np.float32(1e-3), 30, 40, 0.9, 1.6, 1e-5, sort_rows, L.nnz, 100)
    # always a list; always a bitmap; always a scan; the default choice
    runs = [expand_rows(*args, touch, scan) for touch, scan in [(0, 0), (10**9, 0), (10**9, 10**9), (4, 8)]]
    for ptr, ind, val, stats in runs[1:]:
        np.testing.assert_array_equal(ptr, runs[0][0])
        np.testing.assert_array_equal(ind, runs[0][1])
        np.testing.assert_array_equal(val, runs[0][2])
        np.testing.assert_array_equal(stats, runs[0][3])
    ptr, ind, val, _ = runs[0]
    for i in range(ptr.shape[0] - 1):
        row_v, row_c = val[ptr[i]:ptr[i + 1]], ind[ptr[i]:ptr[i + 1]]
        order = np.lexsort((row_c, -row_v)) if sort_rows else np.argsort(row_c)
        np.testing.assert_array_equal(order, np.arange(order.shape[0]))


def test_compiled_kernel_equals_array_path_in_phases(monkeypatch):
    """The compiled row kernel and the array-operation path (cut into phases) agree exactly
    when every product is computed, with select and recover both at work."""
    A, _ = make_sbm(400, 4, in_degree=14, out_degree=2, random_state=3)
    R = M.prepare(A, dtype=np.float64, n_blocks=3, sort_rows=True).compute().tocsr()
    rules = M._Rules(2e-3, 25, 35, 0.9, 0.0, 64 * 1024)   # tiny phases: many per block
    L, offset = R[130:270], 130
    fast, s_fast = M._expand_block(L, offset, R, (1.0, 1.7), rules, True, False)
    slow, s_slow = M._expand_block(L, offset, R, (1.0, 1.7), rules, False, False)
    np.testing.assert_allclose(fast.toarray(), slow.toarray(), atol=1e-12)
    np.testing.assert_allclose(s_fast[[0, 1, 3, 4, 5]], s_slow[[0, 1, 3, 4, 5]], rtol=1e-9)
    # skipping products below product_tol / nnz(row) moves each expanded entry by at most product_tol
    R2, _ = M._expand_block(R, 0, R, (1.7,), rules, True, True)           # spread-out rows, sorted
    exact = M._Rules(0, 0, 0, 0.9, 0.0, 1 << 20)
    full, s_full = M._expand_block(R2, 0, R2, (1.0,), exact, True, False)
    skipped, s_skip = M._expand_block(R2, 0, R2, (1.0,), M._Rules(0, 0, 0, 0.9, 0.02, 1 << 20), True, False)
    assert s_skip[2] < 0.8 * s_full[2]                                     # fewer products
    raw_full, _ = M._expand_block(R2, 0, R2, (1.0,), exact, False, False)
    np.testing.assert_allclose(full.toarray(), raw_full.toarray(), atol=1e-12)
    # before normalization every expanded entry is low by at most product_tol
    exact_rows = (R2 @ R2).toarray()
    assert np.abs(skipped.toarray() - full.toarray()).max() > 0
    for i in range(0, R2.shape[0], 37):
        row, stats = M._expand_block(R2[i:i + 1], i, R2, (1.0,), M._Rules(0, 0, 0, 0.9, 0.02, 1 << 20), True, False)
        low = exact_rows[i] - row.toarray()[0] * stats[4]
        assert low.min() > -1e-12 and low.max() <= 0.02


def test_interpret_overlap_modes():
    # nodes 0 and 2 are attractors; node 1 flows to both equally; node 3 only to 2
    limit = sp.csr_matrix(np.array([[1, 0, 0, 0], [0.5, 0, 0.5, 0], [0, 0, 1, 0], [0, 0, 1, 0]], dtype=float))
    _, removed = interpret(limit, "remove")
    assert as_sets(removed) == [[0], [1], [2, 3]]
    labels, cut = interpret(limit, "cut")
    assert as_sets(cut) == [[0, 1], [2, 3]] and labels[1] == labels[0]
    _, kept = interpret(limit, "keep")
    assert as_sets(kept) == [[0, 1], [1, 2, 3]]


@pytest.mark.skipif(shutil.which("mcl") is None, reason="the mcl program (Debian package mcl) is not installed")
@pytest.mark.parametrize("inflation", [1.6, 2.0])
def test_same_clusters_as_the_mcl_program(tmp_path, inflation):
    A, _ = make_sbm(3000, 30, in_degree=10, out_degree=1, random_state=7)
    graph = tmp_path / "g.abc"
    save_graph(graph, A)
    subprocess.run(["mcl", str(graph), "--abc", "-I", str(inflation), "-o", str(tmp_path / "out")], check=True,
                   capture_output=True)
    theirs = np.full(A.shape[0], -1)
    for c, names in enumerate(read_clusters(tmp_path / "out")):
        theirs[[int(float(x)) for x in names]] = c
    loaded = load_graph(graph, duplicates="max")
    ours = mcl(loaded.adjacency, inflation, nodes=loaded.nodes)
    labels = np.empty(A.shape[0], dtype=int)
    labels[np.asarray(loaded.nodes).astype(float).astype(int)] = ours.labels.values
    assert adjusted_rand_score(theirs, labels) >= 0.99


def test_abc_input_and_cluster_output(tmp_path):
    path = tmp_path / "g.abc"
    path.write_text("a\tb\t1\nb\tc\t1\na\tc\t1\nc\td\t0.1\nd\te\t1\ne\tf\t1\nd\tf\t1\nb\ta\t0.5\nb\ta\t3\n")
    loaded = load_graph(path, duplicates="max")
    A = loaded.adjacency.to_scipy()
    assert A[0, 1] == 3 and A[1, 0] == 3                      # repeated edges keep the largest, mirrored
    result = mcl(loaded.adjacency, 2.0, nodes=loaded.nodes)
    assert list(result.labels.node.values) == list("abcdef")
    out = tmp_path / "clusters.txt"
    write_clusters(out, result.clusters, nodes=loaded.nodes)
    assert sorted(sorted(c) for c in read_clusters(out)) == [["a", "b", "c"], ["d", "e", "f"]]
    assert out.read_text().splitlines()[0].count("\t") == 2


def test_bad_input_is_refused_with_a_clear_message():
    good = cliques([4, 4])
    bad = good.copy()
    bad[0, 1] = -1.0
    with pytest.raises(ValueError, match="negative"):
        mcl(bad)
    bad = good.toarray()
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        mcl(bad)
    with pytest.raises(ValueError, match="square"):
        mcl(sp.random(5, 6, density=0.5, format="csr", random_state=0))
    with pytest.raises(ValueError, match="node list has 3 names but the graph has 8"):
        mcl(good, nodes=["a", "b", "c"])
    with pytest.raises(ValueError, match="inflation must be a number > 1"):
        mcl(good, 1.0)
    with pytest.raises(ValueError, match="expansion"):
        mcl(good, expansion=1)
    with pytest.raises(ValueError, match="empty"):
        mcl(sp.csr_matrix((0, 0)))
    with pytest.raises(ValueError, match="overlap"):
        MarkovClustering(overlap="merge").fit(good)


def test_on_a_cluster_equals_threaded(client):
    A, _ = make_sbm(800, 8, in_degree=10, out_degree=1, random_state=5)
    local = mcl(A.to_scipy(), 1.7, n_blocks=4)
    distributed = mcl(from_array(A.to_scipy(), chunks=200), 1.7, n_blocks=4)
    np.testing.assert_array_equal(local.labels.values, distributed.labels.values)
    assert local.n_iter == distributed.n_iter
